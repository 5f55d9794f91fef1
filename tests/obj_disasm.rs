//! Disassembly of object functions with BTF line info, and the `opsplit dump` command around it.

mod common;

use std::process::Command;

use opsplit::insn::{DisasmOptions, NoAnnotations, disassemble};
use opsplit::obj::Object;

fn parse(name: &str) -> Object {
    let bytes = std::fs::read(common::fixtures_dir().join(name)).expect("fixture");
    Object::parse(&bytes).expect("parses")
}

/// Removes what annotations add (headers, `; source` lines, relocation lines), leaving the
/// instruction lines.
fn insn_lines(s: &str) -> Vec<&str> {
    s.lines()
        .filter(|l| {
            !l.is_empty() && !l.starts_with(';') && !l.starts_with("\t\t") && !l.ends_with(">:")
        })
        .map(|l| l.split(" <").next().unwrap_or(l))
        .collect()
}

#[test]
fn annotated_disassembly_keeps_every_instruction_and_adds_source_lines() {
    for path in common::fixture_objects() {
        let obj = Object::parse(&std::fs::read(&path).unwrap()).unwrap();
        let has_lines = obj
            .btf_ext
            .as_ref()
            .is_some_and(|e| !e.line_info.is_empty());
        for (i, f) in obj.functions.iter().enumerate() {
            let annotated = obj.disassemble_function(i, DisasmOptions::default());
            let mut plain = String::new();
            disassemble(
                &mut plain,
                &f.insns,
                &NoAnnotations,
                DisasmOptions::default(),
            )
            .unwrap();
            assert_eq!(
                insn_lines(&annotated),
                insn_lines(&plain),
                "{}: {}",
                path.display(),
                f.name
            );
            let source_lines = annotated.lines().filter(|l| l.starts_with("; ")).count();
            assert_eq!(
                source_lines > 0,
                has_lines,
                "{}: {}: {source_lines} source lines, line info present: {has_lines}",
                path.display(),
                f.name
            );
            assert!(
                obj.function_lines(i).len() >= source_lines,
                "at most one printed line per record"
            );
        }
    }
}

#[test]
fn source_lines_come_from_btf_line_info() {
    let obj = parse("syn_rto_rwnd.o");
    let f = obj
        .functions
        .iter()
        .position(|f| f.name == "syn_rto_rwnd")
        .unwrap();
    let lines = obj.function_lines(f);
    assert_eq!(lines[0].slot, 0);
    assert_eq!(
        lines[0].text,
        "int syn_rto_rwnd(struct bpf_sock_ops *skops)"
    );
    assert!(
        lines[0].file.ends_with("syn_rto_rwnd.c"),
        "{}",
        lines[0].file
    );
    let text = obj.disassemble_function(f, DisasmOptions::default());
    let first: Vec<&str> = text.lines().skip_while(|l| l.is_empty()).take(3).collect();
    assert_eq!(
        first,
        [
            "0000000000000000 <syn_rto_rwnd>:",
            "; int syn_rto_rwnd(struct bpf_sock_ops *skops)",
            "       0:\tr7 = r1"
        ]
    );
    // Relocated instructions say what they refer to.
    assert!(text.contains(".rodata+0x0"), "{text}");
    assert!(text.contains("map dst_policy"), "{text}");
}

#[test]
fn objects_without_btf_have_no_source_lines() {
    let obj = parse("nobtf_basic.o");
    assert!(obj.btf_ext.is_none());
    for i in 0..obj.functions.len() {
        assert!(obj.function_lines(i).is_empty());
    }
}

fn opsplit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_opsplit"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs")
}

#[test]
fn dump_command_shows_programs_maps_and_code() {
    let out = opsplit(&["dump", "fixtures/sockmap_est.o", "--disasm"]);
    assert_eq!(out.status.code(), Some(0));
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("section sockops"), "{s}");
    assert!(s.contains("section sk_msg"), "{s}");
    assert!(s.contains("sockhash"), "{s}");
    assert!(s.contains("Disassembly of "), "{s}");
    assert!(
        s.contains("call 0x46"),
        "bpf_sock_hash_update is helper 70: {s}"
    );
}

#[test]
fn dump_exit_codes_follow_the_cli_table() {
    let dir = std::env::temp_dir().join(format!("opsplit-dump-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.o");
    std::fs::write(&junk, b"definitely not ELF").unwrap();
    let out = opsplit(&["dump", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("junk.o"), "{err}");
    // A directory stands for its objects; one bad file makes the whole run exit 1.
    let out = opsplit(&["dump", dir.to_str().unwrap(), "fixtures/tcp_iw.o"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("tcp_iw"));
    std::fs::remove_dir_all(&dir).unwrap();
    let out = opsplit(&["dump", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}
