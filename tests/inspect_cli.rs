//! The `opsplit inspect` command line: inputs, filters, JSON schema fields and exit codes.

mod common;

use std::process::Command;

fn opsplit(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_opsplit"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run opsplit");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(args: &[&str]) -> serde_json::Value {
    let (code, out, err) = opsplit(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).expect("valid JSON")
}

#[test]
fn json_has_the_documented_fields() {
    let v = json(&["inspect", "--json", "fixtures/rto_retrans.o"]);
    assert_eq!(v["schema_version"], 1);
    let p = &v["programs"][0];
    for k in [
        "name",
        "section",
        "type",
        "ops",
        "functions",
        "own_behaviour",
    ] {
        assert!(!p[k].is_null(), "missing {k}");
    }
    assert_eq!(p["type"], "sock_ops");
    let ops = p["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 22);
    let rtt = &ops[12];
    assert_eq!(rtt["op"], 12);
    assert_eq!(rtt["name"], "BPF_SOCK_OPS_RTT_CB");
    assert_eq!(rtt["member"], "rtt");
    for k in [
        "insns",
        "fields_read",
        "fields_written",
        "helpers",
        "findings",
    ] {
        assert!(!rtt[k].is_null(), "missing {k}");
    }
    assert!(ops[6]["member"].is_null(), "NEEDS_ECN has no member");
    assert!(ops[21]["op"].is_null() && ops[21]["name"] == "other");
}

#[test]
fn op_filter_accepts_numbers_and_names() {
    for spec in ["8", "BPF_SOCK_OPS_RTO_CB", "rto_cb", "rto"] {
        let v = json(&["inspect", "--json", "--op", spec, "fixtures/rto_retrans.o"]);
        let ops = v["programs"][0]["ops"].as_array().unwrap();
        assert_eq!(ops.len(), 1, "{spec}");
        assert_eq!(ops[0]["op"], 8, "{spec}");
        let kinds: Vec<&str> = ops[0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"rto_expired"), "{kinds:?}");
    }
    let v = json(&["inspect", "--json", "--op", "200", "fixtures/rto_retrans.o"]);
    assert!(v["programs"][0]["ops"][0]["op"].is_null());
    let (code, _, err) = opsplit(&["inspect", "--op", "nope", "fixtures/rto_retrans.o"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn program_filter_and_other_program_types() {
    let v = json(&["inspect", "--json", "fixtures/sockmap_est.o"]);
    let progs = v["programs"].as_array().unwrap();
    let msg = progs
        .iter()
        .find(|p| p["type"] == "sk_msg")
        .expect("sk_msg listed");
    assert_eq!(msg["analyzed"], false);
    assert!(msg["ops"].as_array().unwrap().is_empty());
    let v = json(&[
        "inspect",
        "--json",
        "--program",
        "tune_server",
        "fixtures/multi_prog.o",
    ]);
    let progs = v["programs"].as_array().unwrap();
    assert_eq!(progs.len(), 1);
    assert_eq!(progs[0]["name"], "tune_server");
    let (code, _, err) = opsplit(&["inspect", "--program", "nope", "fixtures/multi_prog.o"]);
    assert_eq!(code, 1);
    assert!(err.contains("no program named `nope`"), "{err}");
}

#[test]
fn a_directory_inspects_every_object_and_bad_inputs_exit_1() {
    let v = json(&["inspect", "--json", "fixtures"]);
    let files = v["files"].as_array().unwrap();
    assert!(files.len() >= 30);
    assert!(files.iter().all(|f| f["error"].is_null()));
    let dir = std::env::temp_dir().join(format!("opsplit-inspect-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.o");
    std::fs::write(&bad, b"not an object").unwrap();
    let (code, out, err) = opsplit(&["inspect", "fixtures/tcp_iw.o", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.o"), "{err}");
    // The good file is still reported.
    assert!(out.contains("program tcp_iw"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn text_output_names_members_findings_and_source_lines() {
    let (code, out, _) = opsplit(&["inspect", "fixtures/sockmap_est.o"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("op 4 BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB"),
        "{out}"
    );
    assert!(out.contains("-> bpf_tcp_ops.active_established"), "{out}");
    assert!(
        out.contains("error[sockmap_update] sockmap_est+") && out.contains("sockmap_est.c:"),
        "{out}"
    );
    assert!(out.contains("not a sock_ops program"), "{out}");
    let (code, out, _) = opsplit(&["inspect", "--disasm", "--op", "4", "fixtures/tcp_iw.o"]);
    assert_eq!(code, 0);
    assert!(out.contains("disassembly of tcp_iw:"), "{out}");
    // Only instructions op 4 runs are listed, each with the ops that run it.
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("; ops ")).collect();
    assert!(!lines.is_empty());
    assert!(
        lines.iter().all(|l| !l.ends_with("unreachable")),
        "{lines:?}"
    );
}
