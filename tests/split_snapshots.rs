//! Snapshots of the split report and of every per-op program's disassembly (with the cloned
//! subprograms it calls), for every main fixture build.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use opsplit::insn::DisasmOptions;
use opsplit::obj::{Object, RelocKind};

fn main_builds() -> Vec<std::path::PathBuf> {
    common::fixture_objects()
        .into_iter()
        .filter(|p| {
            let n = common::fixture_name(p);
            !n.starts_with("ref/") && n.matches('.').count() == 1
        })
        .collect()
}

#[test]
fn split_reports_and_per_op_disassembly() {
    let builds = main_builds();
    assert!(builds.len() >= 15, "{} main builds", builds.len());
    for p in builds {
        let name = common::fixture_name(&p);
        let stem = name.trim_end_matches(".o").to_string();
        let (bytes, report) = opsplit::split::convert(&std::fs::read(&p).unwrap()).unwrap();
        insta::assert_json_snapshot!(format!("split_report__{stem}"), report);
        let out = Object::parse(&bytes).unwrap();
        let mut text = String::new();
        for pr in report.programs.iter().filter(|p| p.status == "split") {
            let progs: BTreeSet<&str> = pr.ops.iter().map(|o| o.program.as_str()).collect();
            for prog in progs {
                let fid = out.functions.iter().position(|f| f.name == prog).unwrap();
                // The program, then every new subprogram it reaches (clones), once.
                let mut todo = vec![fid];
                let mut seen = BTreeSet::new();
                while let Some(f) = todo.pop() {
                    if !seen.insert(f) {
                        continue;
                    }
                    let func = &out.functions[f];
                    let is_new = f == fid || func.name.contains("__op");
                    if is_new {
                        let _ = writeln!(text, "==> {} <==", func.name);
                        text.push_str(&out.disassemble_function(f, DisasmOptions::default()));
                    } else {
                        let _ = writeln!(text, "==> {} (shared, original) <==", func.name);
                        continue;
                    }
                    for r in func.relocations.iter().rev() {
                        if let RelocKind::Call { target } | RelocKind::FuncAddr { target } = r.kind
                        {
                            todo.push(target);
                        }
                    }
                }
            }
        }
        insta::assert_snapshot!(format!("split_disasm__{stem}"), text);
    }
}
