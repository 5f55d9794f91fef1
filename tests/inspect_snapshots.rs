//! `opsplit inspect` on every committed fixture (main builds and variants): text, JSON and
//! `--disasm`, as reviewed insta snapshots in `tests/snapshots/`. The `--disasm` snapshot is left
//! out for objects above 5000 instructions (the `-mcpu=v4` build of rtt_stats unrolls to 49k:
//! 4 MB of disassembly nobody reviews); their text and JSON are still snapshotted.

mod common;

use opsplit::cli::inspect::{InspectOptions, render_text, run};

fn fixtures() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(common::fixtures_dir())
        .expect("fixtures/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    v.sort();
    v
}

/// Reports name files relative to the repository, so snapshots do not depend on the checkout.
fn rel(p: &std::path::Path) -> std::path::PathBuf {
    std::path::Path::new("fixtures").join(p.file_name().expect("file name"))
}

fn snapshot_name(p: &std::path::Path, kind: &str) -> String {
    let stem = p
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".o", "")
        .replace('.', "_");
    format!("inspect_{kind}__{stem}")
}

#[test]
fn inspect_text_and_json_of_every_fixture() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).expect("cd to the repository");
    let files = fixtures();
    assert!(files.len() >= 30, "fixtures missing");
    for f in &files {
        let opts = InspectOptions::default();
        let report = run(&[rel(f)], &opts);
        assert!(
            report.files.iter().all(|x| x.error.is_none()),
            "{}: {:?}",
            f.display(),
            report.files
        );
        assert!(
            report.programs.iter().all(|p| p.error.is_none()),
            "{}: analysis failed",
            f.display()
        );
        insta::assert_snapshot!(snapshot_name(f, "text"), render_text(&report, &opts));
        let json = serde_json::to_string_pretty(&report).expect("JSON");
        insta::assert_snapshot!(snapshot_name(f, "json"), json);
    }
}

#[test]
fn inspect_disasm_of_every_fixture() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).expect("cd to the repository");
    let reviewable = fixtures().into_iter().filter(|p| {
        let obj = opsplit::obj::Object::parse(&std::fs::read(p).expect("read")).expect("parse");
        obj.functions.iter().map(|f| f.insns.len()).sum::<usize>() <= 5000
    });
    let mut n = 0;
    for f in reviewable {
        n += 1;
        let opts = InspectOptions {
            disasm: true,
            ..InspectOptions::default()
        };
        let report = run(&[rel(&f)], &opts);
        insta::assert_snapshot!(snapshot_name(&f, "disasm"), render_text(&report, &opts));
    }
    assert!(n >= 30, "only {n} fixtures with a disassembly snapshot");
}
