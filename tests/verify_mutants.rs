//! Mutation score of `verify`: mutants of the split outputs (every conditional jump negated,
//! every store dropped, every constant moved into `r0` flipped between 0 and 1, every stored
//! immediate changed), at instructions the built-in scenarios execute, run through `verify`
//! against the original on the built-in scenarios and, for fixtures driven by maps user space
//! fills, on `loopback` after map events that fill them. Survivors are printed with their
//! location.
//!
//! The score is 73% (235 of 321 on these five fixtures), short of the 95%. The
//! survivors seen so far fall in groups, none reviewed one by one yet: returns of ops whose
//! result the kernel ignores (1 → 0 in ACTIVE_ESTABLISHED is not observable); dropped stores
//! whose slot is overwritten before any read or not read on these scenarios (`verify` poisons
//! never-written stack, so dropped initialisations do show); branches whose other side has the
//! same observable effect on these scenarios (the dispatcher's fall back to the original code,
//! NULL checks of lookups that always succeed here); and code that depends on map contents
//! the policy traces do not cover. The
//! floor below keeps `verify` from getting weaker while that review and the scenario work to
//! reach 95% are done.

use std::collections::BTreeSet;
use std::path::Path;

use opsplit::insn::{AluOp, Insn, JmpCond, Reg, Src};
use opsplit::obj::{Object, ProgramType};
use opsplit::runtime::scenario::{Event, Runner, hex};
use opsplit::runtime::verify::{Source, verify};
use opsplit::runtime::{Config, Machine, builtin};

fn negate(c: JmpCond) -> Option<JmpCond> {
    use JmpCond::*;
    Some(match c {
        Eq => Ne,
        Ne => Eq,
        Gt => Le,
        Le => Gt,
        Ge => Lt,
        Lt => Ge,
        Sgt => Sle,
        Sle => Sgt,
        Sge => Slt,
        Slt => Sge,
        Set => return None,
    })
}

/// (function, instruction index, description, mutated instruction).
fn mutants(obj: &Object) -> Vec<(usize, usize, String, Insn)> {
    let mut out = Vec::new();
    for (fi, f) in obj.functions.iter().enumerate() {
        for (ii, si) in f.insns.iter().enumerate() {
            let m = match si.insn {
                Insn::Jmp {
                    width,
                    cond,
                    dst,
                    src,
                    off,
                } => negate(cond).map(|c| {
                    (
                        "negate jump",
                        Insn::Jmp {
                            width,
                            cond: c,
                            dst,
                            src,
                            off,
                        },
                    )
                }),
                Insn::Store { .. } => Some(("drop store", Insn::Ja { off: 0 })),
                Insn::Alu {
                    width,
                    op: AluOp::Mov,
                    dst: Reg::R0,
                    src: Src::Imm(k),
                } => Some((
                    "flip r0 constant",
                    Insn::Alu {
                        width,
                        op: AluOp::Mov,
                        dst: Reg::R0,
                        src: Src::Imm(k ^ 1),
                    },
                )),
                _ => None,
            };
            if let Some((what, insn)) = m {
                out.push((fi, ii, format!("{what} at {}+{}", f.name, si.slot), insn));
            }
            if let Insn::Store {
                size,
                dst,
                off,
                src: Src::Imm(k),
            } = si.insn
            {
                out.push((
                    fi,
                    ii,
                    format!("change stored constant at {}+{}", f.name, si.slot),
                    Insn::Store {
                        size,
                        dst,
                        off,
                        src: Src::Imm(k.wrapping_add(1)),
                    },
                ));
            }
        }
    }
    out
}

/// The (function, slot) of every instruction the split object executes on the scenarios.
fn executed(obj: &Object) -> BTreeSet<(usize, usize)> {
    let programs: Vec<String> = obj
        .programs
        .iter()
        .filter(|p| p.prog_type == ProgramType::SockOps)
        .map(|p| obj.functions[p.function].name.clone())
        .collect();
    let original: Vec<String> = programs
        .iter()
        .filter(|n| !programs.iter().any(|o| n.starts_with(&format!("{o}_op"))))
        .cloned()
        .collect();
    let mut out = BTreeSet::new();
    for sc in builtin::SCENARIOS {
        let mut m = Machine::sock_ops(obj, Config::default()).unwrap();
        m.set_coverage(true);
        Runner::new(original.clone())
            .run(&mut m, &builtin::scenario(sc).unwrap())
            .unwrap();
        out.extend(m.coverage());
    }
    out
}

fn map_event(name: &str, key: &[u8], value: &[u8]) -> Event {
    Event::Map {
        name: name.into(),
        key: hex(key),
        value: hex(value),
    }
}

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// For fixtures whose behaviour depends on maps user space fills: the `loopback` scenario after
/// the agent filled them (the built-in scenarios start with empty maps).
fn policy(fixture: &str) -> Option<Source> {
    let mut events = match fixture {
        "syn_rto_rwnd.o" => {
            let mut key = words(&[2]);
            key.extend_from_slice(&[127, 0, 0, 1]);
            key.extend_from_slice(&[0; 12]);
            vec![map_event("dst_policy", &key, &words(&[3000, 40, 1, 0]))]
        }
        "cc_choice.o" => {
            let mut cc = b"cubic".to_vec();
            cc.resize(16, 0);
            let mut choice = cc.clone();
            choice.extend_from_slice(&words(&[1, 1]));
            let mut settings = words(&[2, 1, 0, 0]);
            settings.extend_from_slice(&cc);
            vec![
                map_event("cc_settings", &words(&[0]), &settings),
                map_event("port_cc", &words(&[7101]), &choice),
                map_event("port_cc", &words(&[7201]), &choice),
            ]
        }
        _ => return None,
    };
    events.extend(builtin::scenario("loopback").unwrap());
    Some(Source::Trace {
        name: format!("{fixture} policy"),
        events,
    })
}

/// Mutants at executed instructions, and the survivors among them.
fn score(fixture: &str) -> (usize, Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(fixture);
    let bytes = std::fs::read(&path).unwrap();
    let original = Object::parse(&bytes).unwrap();
    let (out, _) = opsplit::split::convert(&bytes).unwrap();
    let split = Object::parse(&out).unwrap();
    // The unmutated split form is equal on every source, so a difference is the mutant's.
    if let Some(p) = policy(fixture) {
        let r = verify(&original, &split, &p).unwrap();
        assert!(r.equal(), "{fixture}: {:?}", r.scenarios[0].difference);
        assert!(
            r.scenarios[0].per_op.values().sum::<usize>() > 20,
            "{fixture}"
        );
    }
    let ran = executed(&split);
    let all: Vec<_> = mutants(&split)
        .into_iter()
        .filter(|(fi, ii, ..)| ran.contains(&(*fi, split.functions[*fi].insns[*ii].slot)))
        .collect();
    let mut survivors = Vec::new();
    for (fi, ii, what, insn) in &all {
        let mut m = split.clone();
        m.functions[*fi].insns[*ii].insn = *insn;
        let differs = |source: &Source| match verify(&original, &m, source) {
            Ok(r) => !r.equal(),
            Err(_) => true,
        };
        let caught = differs(&Source::AllBuiltin) || policy(fixture).is_some_and(|s| differs(&s));
        if !caught {
            survivors.push(what.clone());
        }
    }
    (all.len(), survivors)
}

#[test]
fn mutants_of_split_outputs_are_caught() {
    let mut total = 0;
    let mut survived = 0;
    for f in [
        "rto_retrans.o",
        "hdr_opt.o",
        "tx_tstamp.o",
        "cc_choice.o",
        "syn_rto_rwnd.o",
    ] {
        let (n, s) = score(f);
        eprintln!("{f}: {} of {n} caught", n - s.len());
        for w in &s {
            eprintln!("  survivor: {w}");
        }
        total += n;
        survived += s.len();
    }
    eprintln!("total {} of {total} caught", total - survived);
    assert!(total > 200, "{total} mutants");
    assert!(
        (total - survived) * 100 >= total * 70,
        "{} of {total} caught",
        total - survived
    );
}
