//! `opsplit verify` on the command line: exit codes (0 equal, 3 different, 1 input problem),
//! the per-op text report, `--json`, `--scenario` and `--trace`.

use std::process::Command;

fn opsplit(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_opsplit"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn equal_objects_exit_0_with_per_op_counts() {
    let (code, out, _) = opsplit(&["verify", "fixtures/rtt_stats.o", "fixtures/rtt_stats.v1.o"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("scenario loopback:"), "{out}");
    assert!(out.contains("scenario edges:"), "{out}");
    assert!(out.contains("RTT_CB"), "{out}");
    // One row per built-in scenario, all equal; no dispatcher-only rows for a candidate
    // that is not in split form.
    assert_eq!(
        out.matches("  equal\n").count(),
        opsplit::runtime::builtin::SCENARIOS.len(),
        "{out}"
    );
    assert!(!out.contains("dispatcher only"), "{out}");
}

#[test]
fn a_difference_exits_3_and_names_event_op_and_values() {
    let (code, out, _) = opsplit(&[
        "verify",
        "fixtures/rto_retrans.o",
        "fixtures/ref/rto_retrans.op8.o",
        "--scenario",
        "edges",
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("DIFFERS at event "), "{out}");
    assert!(out.contains("program rto_retrans"), "{out}");
    assert!(
        out.contains("original:") && out.contains("candidate:"),
        "{out}"
    );
    assert!(
        !out.contains("scenario loopback"),
        "only the scenario asked for: {out}"
    );
}

#[test]
fn json_report_has_scenarios_ops_and_the_difference() {
    let (code, out, _) = opsplit(&[
        "verify",
        "fixtures/hdr_opt.o",
        "fixtures/ref/hdr_opt.op14.o",
        "--json",
        "--scenario",
        "loopback",
    ]);
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let s = &v["scenarios"][0];
    assert_eq!(s["scenario"], "loopback");
    // The op-14-only build does nothing in LISTEN, where the original sets TCP_SAVE_SYN.
    assert_eq!(s["per_op"]["11"], 1, "{s}");
    assert_eq!(s["difference"]["op"], 11, "{s}");
    assert!(s["difference"]["event"].is_u64(), "{s}");
    // Located at the original's instruction with its source line.
    let at = s["difference"]["original_at"].as_str().unwrap();
    assert!(at.contains("slot ") && at.contains("hdr_opt.c:"), "{at}");
    assert!(
        s["difference"]["original"]
            .as_str()
            .unwrap()
            .contains("bpf_setsockopt"),
        "{s}"
    );
}

#[test]
fn a_trace_file_is_read_and_bad_input_exits_1() {
    let dir = std::env::temp_dir().join(format!("opsplit-verify-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("t.jsonl");
    std::fs::write(
        &trace,
        "# one socket, connect and RTT\n\
         {\"kind\":\"socket\",\"id\":1,\"family\":2,\"local\":\"10.0.0.1\",\"local_port\":1,\"remote\":\"10.0.0.2\",\"remote_port\":2,\"state\":2}\n\
         {\"kind\":\"call\",\"sock\":1,\"op\":3}\n\
         {\"kind\":\"call\",\"sock\":1,\"op\":12,\"args\":[100,800,0,0]}\n",
    )
    .unwrap();
    let t = trace.to_str().unwrap();
    let (code, out, _) = opsplit(&[
        "verify",
        "fixtures/rtt_stats.o",
        "fixtures/rtt_stats.o",
        "--trace",
        t,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("3 events"), "{out}");

    std::fs::write(&trace, "{\"kind\":\"call\"}\n").unwrap();
    let (code, _, err) = opsplit(&[
        "verify",
        "fixtures/rtt_stats.o",
        "fixtures/rtt_stats.o",
        "--trace",
        t,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("line 1"), "{err}");

    let (code, _, err) = opsplit(&[
        "verify",
        "fixtures/rtt_stats.o",
        "fixtures/rtt_stats.o",
        "--scenario",
        "nope",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no built-in scenario `nope`"), "{err}");

    // Different programs: the candidate lacks the original's program.
    let (code, _, err) = opsplit(&["verify", "fixtures/rtt_stats.o", "fixtures/tcp_iw.o"]);
    assert_eq!(code, 1);
    assert!(err.contains("no sock_ops program `rtt_stats`"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
