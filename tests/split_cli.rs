//! `opsplit convert`: output, text and JSON reports, `--no-verify`, exit codes.

mod common;

use std::process::Command;

fn opsplit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_opsplit"))
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("opsplit-split-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn convert_writes_the_object_and_both_reports() {
    let out = tmp("tcp_iw.split.o");
    let json = tmp("tcp_iw.json");
    let r = opsplit()
        .arg("convert")
        .arg(common::fixtures_dir().join("tcp_iw.o"))
        .args(["-o", out.to_str().unwrap(), "--target", "split", "--report"])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let text = String::from_utf8(r.stdout).unwrap();
    // Verification runs by default: both built-in scenarios, equal.
    assert!(
        text.contains("runtime verification (embedded runtime, original vs output)"),
        "{text}"
    );
    assert!(text.contains("scenario loopback"), "{text}");
    assert!(text.contains("scenario edges"), "{text}");
    assert!(!text.contains("DIFFERS"), "{text}");
    assert!(
        text.contains("program tcp_iw (section sockops): split"),
        "{text}"
    );
    assert!(text.contains("tcp_iw_op4"), "{text}");
    let obj = opsplit::obj::Object::parse(&std::fs::read(&out).unwrap()).unwrap();
    assert!(obj.program_by_name("tcp_iw_op4").is_some());
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["target"], "split");
    let p = &doc["programs"][0];
    assert_eq!(p["name"], "tcp_iw");
    assert_eq!(p["status"], "split");
    let ops: Vec<u64> = p["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["op"].as_u64().unwrap())
        .collect();
    assert_eq!(ops, [3, 4, 5, 11]);
    for o in p["ops"].as_array().unwrap() {
        assert!(o["insns_after"].as_u64() <= o["insns_reachable"].as_u64());
    }
}

#[test]
fn no_verify_skips_runtime_verification() {
    let out = tmp("syn.split.o");
    let r = opsplit()
        .arg("convert")
        .arg(common::fixtures_dir().join("syn_rto_rwnd.o"))
        .args(["-o", out.to_str().unwrap(), "--no-verify"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0));
    let text = String::from_utf8(r.stdout).unwrap();
    assert!(
        text.contains("runtime verification skipped (--no-verify)"),
        "{text}"
    );
    assert!(!text.contains("scenario loopback"), "{text}");
}

#[test]
fn bad_input_and_bad_usage_exit_codes() {
    let out = tmp("none.o");
    let r = opsplit()
        .args(["convert", "/nonexistent/x.o", "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("/nonexistent/x.o"));
    let r = opsplit()
        .arg("convert")
        .arg(common::fixtures_dir().join("tcp_iw.o"))
        .args(["-o", out.to_str().unwrap(), "--target", "struct_ops"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    let r = opsplit()
        .arg("convert")
        .arg(common::fixtures_dir().join("tcp_iw.o"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2), "-o is required");
}
