//! `verify` runs a split-form candidate a second time with its dispatch tables (the vtables the
//! split pass emits) left empty: the dispatchers alone, as the kernel runs them when the vtable
//! is not filled. Those rows catch a change in the dispatcher's fallback body that the ordinary
//! run never reaches; the unmodified split form of every fixture is equal there too.

use std::path::{Path, PathBuf};

use opsplit::insn::Insn;
use opsplit::obj::Object;
use opsplit::runtime::verify::{Options, Source, dispatch_tables, verify, verify_with};
use opsplit::runtime::{Config, Machine, builtin};

const SUFFIX: &str = " (dispatcher only)";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn split(name: &str) -> (Object, Object) {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let (out, _) = opsplit::split::convert(&bytes).unwrap();
    (Object::parse(&bytes).unwrap(), Object::parse(&out).unwrap())
}

#[test]
fn a_changed_fallback_body_is_caught_only_with_the_dispatchers_alone() {
    let (original, split) = split("hdr_opt.o");
    // `int one = 1` in the dispatcher's copy of the original body: read only by TCP_LISTEN_CB's
    // setsockopt, which the vtable sends to its per-op program.
    let fi = split
        .functions
        .iter()
        .position(|f| f.name == "hdr_opt")
        .unwrap();
    let ii = split.functions[fi]
        .insns
        .iter()
        .position(|i| i.slot == 7)
        .unwrap();
    assert!(
        matches!(split.functions[fi].insns[ii].insn, Insn::Store { .. }),
        "{:?}",
        split.functions[fi].insns[ii]
    );
    let mut mutant = split.clone();
    mutant.functions[fi].insns[ii].insn = Insn::Ja { off: 0 };

    let plain = Options {
        dispatcher_only: false,
    };
    let r = verify_with(&original, &mutant, &Source::AllBuiltin, &plain).unwrap();
    assert!(r.equal(), "the vtable hides the fallback: {r:?}");
    assert_eq!(r.scenarios.len(), builtin::SCENARIOS.len());

    let r = verify(&original, &mutant, &Source::AllBuiltin).unwrap();
    assert!(!r.equal());
    assert_eq!(r.scenarios.len(), 2 * builtin::SCENARIOS.len());
    for s in &r.scenarios {
        let alone = s.scenario.ends_with(SUFFIX);
        assert_eq!(alone, s.empty_prog_arrays == ["hdr_opt_vtable"], "{s:?}");
        assert_eq!(alone, s.difference.is_some(), "{s:?}");
        if let Some(d) = &s.difference {
            // TCP_LISTEN_CB's setsockopt now reads the poisoned stack slot.
            assert_eq!(d.op, Some(11), "{d:?}");
            assert_eq!(d.scenario, s.scenario);
        }
    }
    // Each dispatcher-only row follows its scenario's row, with the same per-op counts on the
    // unmodified split form.
    let r = verify(&original, &split, &Source::AllBuiltin).unwrap();
    for pair in r.scenarios.chunks(2) {
        assert_eq!(pair[1].scenario, format!("{}{SUFFIX}", pair[0].scenario));
        assert_eq!(pair[0].per_op, pair[1].per_op);
        assert!(pair[1].per_op.contains_key(&11), "{:?}", pair[1]);
    }
}

#[test]
fn every_fixture_split_is_equal_with_its_dispatchers_alone() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".o"))
        .collect();
    names.sort();
    let mut with_tables = 0;
    for n in &names {
        let (original, split) = split(n);
        let programs: Vec<String> = original
            .programs
            .iter()
            .filter(|p| p.prog_type == opsplit::obj::ProgramType::SockOps)
            .map(|p| original.functions[p.function].name.clone())
            .collect();
        let tables = dispatch_tables(&original, &split, &programs);
        // The split pass names each vtable after its program; the detection does not rely on it.
        for t in &tables {
            assert!(
                programs.iter().any(|p| t == &format!("{p}_vtable")),
                "{n}: {t}"
            );
        }
        let r = verify(&original, &split, &Source::AllBuiltin).unwrap();
        let alone: Vec<_> = r
            .scenarios
            .iter()
            .filter(|s| s.scenario.ends_with(SUFFIX))
            .collect();
        if tables.is_empty() {
            assert!(alone.is_empty(), "{n}");
            continue;
        }
        with_tables += 1;
        assert_eq!(alone.len(), builtin::SCENARIOS.len(), "{n}");
        for s in alone {
            assert_eq!(s.empty_prog_arrays, tables, "{n}");
            assert!(
                s.difference.is_none(),
                "{n} {}: {:#?}",
                s.scenario,
                s.difference
            );
            assert!(s.per_op.values().sum::<usize>() > 0, "{n} {}", s.scenario);
        }
        // An object against itself is not a split-form candidate: its own PROG_ARRAYs stay.
        assert!(dispatch_tables(&split, &split, &programs).is_empty(), "{n}");
    }
    assert!(with_tables >= 10, "{with_tables} split fixtures");
}

#[test]
fn an_original_that_tail_calls_keeps_its_own_prog_array() {
    let (original, split) = split("tail_call.o");
    assert!(
        original
            .maps
            .iter()
            .any(|m| m.def.map_type == 3 && !m.values.is_empty()),
        "tail_call.o fills a PROG_ARRAY statically"
    );
    let programs: Vec<String> = original
        .programs
        .iter()
        .filter(|p| p.prog_type == opsplit::obj::ProgramType::SockOps)
        .map(|p| original.functions[p.function].name.clone())
        .collect();
    for t in dispatch_tables(&original, &split, &programs) {
        assert!(
            !original.maps.iter().any(|m| m.name == t),
            "{t} belongs to the original"
        );
    }
}

#[test]
fn empty_prog_arrays_must_name_a_prog_array() {
    let (_, split) = split("hdr_opt.o");
    let load = |name: &str| {
        Machine::sock_ops(
            &split,
            Config {
                empty_prog_arrays: [name.to_string()].into(),
                ..Config::default()
            },
        )
    };
    assert!(load("hdr_opt_vtable").is_ok());
    let e = load("peer_hints").unwrap_err().to_string();
    assert!(
        e.contains("peer_hints") && e.contains("not a PROG_ARRAY"),
        "{e}"
    );
    let e = load("nope").unwrap_err().to_string();
    assert!(e.contains("nope") && e.contains("no such map"), "{e}");
}
