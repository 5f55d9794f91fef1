//! `runtime::verify` on the fixture corpus: every fixture verifies equal against itself and
//! against its split form (`opsplit::split::convert`) on every built-in scenario, a build that
//! keeps only one op's behaviour is caught, and the instructions the runtime executes for an op
//! are a subset of the op analysis' reachable set for that op.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use opsplit::analysis::Module as Analysis;
use opsplit::analysis::facts::{Env, analyze_program};
use opsplit::obj::{Object, ProgramType};
use opsplit::runtime::scenario::Runner;
use opsplit::runtime::verify::{Source, verify};
use opsplit::runtime::{Config, Machine, builtin};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    v.sort();
    assert!(v.len() > 30);
    v
}

fn object(p: &Path) -> Object {
    Object::parse(&std::fs::read(p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_fixture_verifies_equal_against_itself_on_every_scenario() {
    for p in fixtures() {
        let obj = object(&p);
        let r =
            verify(&obj, &obj, &Source::AllBuiltin).unwrap_or_else(|e| panic!("{}: {e}", name(&p)));
        assert_eq!(r.scenarios.len(), builtin::SCENARIOS.len());
        for s in &r.scenarios {
            assert!(s.difference.is_none(), "{}: {:?}", name(&p), s.difference);
        }
        // Every fixture's programs run on some hook call of the scenarios.
        let calls: usize = r.scenarios.iter().flat_map(|s| s.per_op.values()).sum();
        assert!(calls > 0, "{}", name(&p));
    }
}

#[test]
fn every_fixture_verifies_equal_against_its_split_form_on_every_scenario() {
    let mut compared = 0usize;
    for p in fixtures() {
        let bytes = std::fs::read(&p).unwrap();
        let (out, _) = opsplit::split::convert(&bytes)
            .unwrap_or_else(|e| panic!("{}: convert: {e}", name(&p)));
        let (a, b) = (object(&p), Object::parse(&out).unwrap());
        let r = verify(&a, &b, &Source::AllBuiltin).unwrap_or_else(|e| panic!("{}: {e}", name(&p)));
        for s in &r.scenarios {
            assert!(
                s.difference.is_none(),
                "{} scenario {}: {:#?}",
                name(&p),
                s.scenario,
                s.difference
            );
            compared += s.per_op.values().sum::<usize>();
        }
    }
    assert!(compared > 1000, "only {compared} hook calls compared");
}

/// `fixtures/ref/<name>.op<K>.o` keeps only op K's behaviour: verify must find a difference,
/// on an op other than K.
#[test]
fn a_build_with_one_op_only_is_caught_on_another_op() {
    for (fixture, k) in [
        ("rto_retrans", 8),
        ("hdr_opt", 14),
        ("tx_tstamp", 20),
        ("rtt_stats", 12),
    ] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let a = object(&dir.join(format!("{fixture}.o")));
        let b = object(&dir.join(format!("ref/{fixture}.op{k}.o")));
        let r = verify(&a, &b, &Source::AllBuiltin).unwrap();
        assert!(!r.equal(), "{fixture}: op-{k}-only build verified equal");
        let d = r
            .scenarios
            .iter()
            .find_map(|s| s.difference.clone())
            .unwrap();
        assert_ne!(d.op, Some(k), "{fixture}: {d:?}");
    }
}

/// Instructions executed per op ⊆ the analysis' reachable set for that op (union over the
/// object's programs, since tail calls and several programs share one hook call).
#[test]
fn executed_instructions_are_within_the_analysis_reachable_set() {
    let mut checked = 0usize;
    for p in fixtures() {
        let obj = object(&p);
        let analysis = Analysis::from_object(&obj).unwrap();
        let env = Env::from_object(&obj);
        let facts: Vec<_> = obj
            .programs
            .iter()
            .filter(|pr| pr.prog_type == ProgramType::SockOps)
            .map(|pr| analyze_program(&analysis, pr.function, &env).unwrap())
            .collect();
        // op → allowed (function, slot)
        let mut allowed: BTreeMap<u32, BTreeSet<(usize, usize)>> = BTreeMap::new();
        for op in 1..=20u8 {
            let set = allowed.entry(op.into()).or_default();
            for f in &facts {
                for (func, idx) in f.reachable(op) {
                    for i in idx {
                        set.insert((func, obj.functions[func].insns[i].slot));
                    }
                }
            }
        }
        let programs: Vec<String> = obj
            .programs
            .iter()
            .filter(|pr| pr.prog_type == ProgramType::SockOps)
            .map(|pr| obj.functions[pr.function].name.clone())
            .collect();
        for sc in builtin::SCENARIOS {
            let mut m = Machine::sock_ops(&obj, Config::default()).unwrap();
            let mut runner = Runner::new(programs.clone());
            for (i, e) in builtin::scenario(sc).unwrap().iter().enumerate() {
                m.set_coverage(true);
                let r = runner.event(&mut m, i, e).unwrap();
                let Some(op) = r.op else { continue };
                let ran = m.coverage();
                let ok = &allowed[&op];
                let outside: Vec<_> = ran.iter().filter(|x| !ok.contains(x)).collect();
                assert!(
                    outside.is_empty(),
                    "{} {sc} event {i} op {op}: executed outside the reachable set: {outside:?}",
                    name(&p)
                );
                checked += ran.len();
            }
        }
    }
    assert!(checked > 10_000, "{checked}");
}
