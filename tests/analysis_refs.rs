//! The per-op reachable instruction sets against clang's own per-op specialisations
//! (`fixtures/ref/<name>.op<K>.o`, built with the op as a compile-time constant).
//!
//! Soundness: every helper clang's specialisation calls for an op is called on that op's
//! reachable set. Size: the reachable set is not smaller than what clang's specialisation needs
//! for the op (its own instructions reachable for that op: clang sometimes spills the constant op
//! and compares it again after a helper call, which the analysis folds), unless clang duplicated
//! code the original shares (more call instructions in the specialisation than on the reachable
//! set: inlined copies that the general build merged). The table (run with `--nocapture`)
//! gives the excess: the op's way through the original's dispatch compares, which the
//! specialisation does not have.

mod common;

use std::collections::BTreeSet;

use opsplit::analysis::Module;
use opsplit::analysis::callgraph::CallGraph;
use opsplit::analysis::facts::{Env, analyze_program};
use opsplit::insn::{Call, Insn};
use opsplit::obj::{Object, ProgramType};

fn parse(p: &std::path::Path) -> Object {
    Object::parse(&std::fs::read(p).expect("fixture readable")).expect("fixture parses")
}

fn is_call(i: &Insn) -> bool {
    matches!(i, Insn::Call(Call::Helper(_) | Call::Kfunc { .. }))
}

#[test]
fn reachable_sets_cover_clangs_per_op_builds() {
    let refs_dir = common::fixtures_dir().join("ref");
    let mut refs: Vec<_> = std::fs::read_dir(&refs_dir)
        .expect("fixtures/ref")
        .map(|e| e.expect("entry").path())
        .collect();
    refs.sort();
    assert!(!refs.is_empty());
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut compared = 0;
    for r in &refs {
        let file = r.file_name().unwrap().to_string_lossy().to_string();
        let stem = file.trim_end_matches(".o");
        let (name, op) = stem.rsplit_once(".op").expect("<name>.op<K>.o");
        let op: usize = op.parse().expect("op number");
        let orig = parse(&common::fixtures_dir().join(format!("{name}.o")));
        let refo = parse(r);
        let om = Module::from_object(&orig).unwrap();
        let rm = Module::from_object(&refo).unwrap();
        let env = Env::from_object(&orig);
        for p in refo
            .programs
            .iter()
            .filter(|p| p.prog_type == ProgramType::SockOps)
        {
            let pname = &refo.functions[p.function].name;
            let Some(q) = orig
                .programs
                .iter()
                .find(|q| &orig.functions[q.function].name == pname)
            else {
                failures.push(format!("{file}: program {pname} missing in {name}.o"));
                continue;
            };
            let facts = analyze_program(&om, q.function, &env).expect("analysis");
            let ours = facts.ops[op].insns;
            let mut our_calls = 0;
            for (f, rs) in facts.reach.iter().enumerate() {
                for (i, r) in rs.iter().enumerate() {
                    if r.contains(op as u8) {
                        our_calls += usize::from(is_call(&om.funcs[f].insns[i].insn));
                    }
                }
            }
            let (mut clang, mut clang_calls) = (0, 0);
            let mut clang_helpers = BTreeSet::new();
            for f in CallGraph::build(&rm).reachable_from(p.function) {
                for si in &refo.functions[f].insns {
                    clang += 1;
                    clang_calls += usize::from(is_call(&si.insn));
                    if let Insn::Call(Call::Helper(id)) = si.insn {
                        clang_helpers.insert(opsplit::uapi::helper_name(id).unwrap().to_string());
                    }
                }
            }
            let needed = analyze_program(&rm, p.function, &Env::from_object(&refo))
                .expect("analysis of the reference")
                .ops[op]
                .insns;
            compared += 1;
            rows.push(format!(
                "{name:<17} {pname:<20} op {op:>2}: ours {ours:>4}  clang {clang:>4} (needed {needed:>4})  excess {:>+4.0}%  calls {our_calls}/{clang_calls}",
                (ours as f64 / clang as f64 - 1.0) * 100.0
            ));
            let ours_helpers: BTreeSet<String> = facts.ops[op].helpers.iter().cloned().collect();
            let missing: Vec<_> = clang_helpers.difference(&ours_helpers).collect();
            if !missing.is_empty() {
                failures.push(format!(
                    "{file}: {pname} op {op}: clang calls {missing:?}, not on the reachable set"
                ));
            }
            if ours < needed && clang_calls <= our_calls {
                failures.push(format!(
                    "{file}: {pname} op {op}: {ours} reachable instructions < the {needed} clang's build needs, without duplicated calls in it"
                ));
            }
        }
    }
    println!("{}", rows.join("\n"));
    assert!(
        compared >= 70,
        "only {compared} reference programs compared"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
