//! Mutation score of `verify`: mutants of the split outputs (every conditional jump negated,
//! every store dropped, every constant moved into `r0` flipped between 0 and 1, every stored
//! immediate changed), at instructions the built-in scenarios execute, run through `verify`
//! against the original on the built-in scenarios and, for fixtures driven by maps user space
//! fills, on every built-in scenario again after map events that fill them (one trace per
//! policy: cc_choice in MODE_PER_PORT and in MODE_GLOBAL; syn_rto_rwnd with entries for the v4,
//! v6, v4-mapped and global-IPv6 peers; hdr_opt with its `my_class` rodata knob set).
//!
//! Left out of the score, because a proof shows no behaviour can change (and the test checks
//! that `verify` indeed sees none of them):
//! * `unobservable_return`: a constant moved into `r0` right before `exit` in a per-op program
//!   whose ops' result the kernel ignores (`ResultUse::Ignored` in `src/optable.rs`: the kernel
//!   neither vetoes nor reads `reply`), or anywhere in a subprogram whose callers all overwrite
//!   `r0` before reading it, when only `exit` reads it there (`analysis::liveness`);
//! * `Proofs::dead_stores`: a store (dropped or changed) to stack bytes that nothing reads afterwards,
//!   by the split pass' own stack liveness (`split::dce`). The per-op programs have none left;
//!   the dispatcher's fallback is the original code unchanged and keeps clang's.
//!
//! They are printed as "left out".
//!
//! Every survivor must be listed, with why it is not observable, in
//! `tests/data/mutant_survivors.txt`, and every listed line must still survive: a survivor that
//! is not reviewed, or a reviewed one that is now caught, fails the test. What survives today:
//! two stores into a hash map value that the same call deletes right after, and three
//! zero-initialisations overwritten on every path by a store liveness cannot attribute. The
//! score is 292 of 297 (98%); `FLOOR` is the bar, 95%.

use std::collections::BTreeSet;
use std::path::Path;

use opsplit::analysis::callgraph::CallGraph;
use opsplit::analysis::{Module, liveness};
use opsplit::insn::{AluOp, Insn, JmpCond, Reg, Src};
use opsplit::obj::{Object, ProgramType};
use opsplit::optable::{ResultUse, op_info};
use opsplit::runtime::scenario::{Event, Runner, hex};
use opsplit::runtime::verify::{Source, verify};
use opsplit::runtime::{Config, Machine, builtin};
use opsplit::split::dce;

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
/// the agent filled them (the built-in scenarios start with empty maps), one trace per policy.
fn policies(fixture: &str) -> Vec<Source> {
    let lists: Vec<Vec<Event>> = match fixture {
        "syn_rto_rwnd.o" => {
            let mut v4 = words(&[2]);
            v4.extend_from_slice(&[127, 0, 0, 1]);
            v4.extend_from_slice(&[0; 12]);
            // ::1, so that the IPv6 key building (every address word) decides the lookup.
            let mut v6 = words(&[10]);
            v6.extend_from_slice(&[0; 15]);
            v6.push(1);
            // The v4-mapped peers of `edges`' dual-stack listener: a non-zero third word.
            let mapped = |last: u8| {
                let mut k = words(&[10]);
                k.extend_from_slice(&[0; 10]);
                k.extend_from_slice(&[0xff, 0xff, 10, 0, 0, last]);
                k
            };
            // `edges`' global IPv6 path: every address word non-zero.
            let global = |addr: &str| {
                let ip: std::net::Ipv6Addr = addr.parse().unwrap();
                let mut k = words(&[10]);
                k.extend_from_slice(&ip.octets());
                k
            };
            vec![vec![
                map_event(
                    "dst_policy",
                    &global("2001:db8:1:2::10"),
                    &words(&[250, 60, 0, 0]),
                ),
                map_event(
                    "dst_policy",
                    &global("2001:db8:3:4::20"),
                    &words(&[0, 70, 3, 0]),
                ),
                map_event("dst_policy", &v4, &words(&[3000, 40, 1, 0])),
                map_event("dst_policy", &v6, &words(&[700, 20, 1, 0])),
                map_event("dst_policy", &mapped(1), &words(&[900, 30, 1, 0])),
                map_event("dst_policy", &mapped(2), &words(&[1100, 50, 0, 0])),
            ]]
        }
        "cc_choice.o" => {
            let mut cc = b"cubic".to_vec();
            cc.resize(16, 0);
            let mut choice = cc.clone();
            choice.extend_from_slice(&words(&[1, 1]));
            let mut per_port = words(&[2, 1, 0, 0]);
            per_port.extend_from_slice(&cc);
            // MODE_GLOBAL with ECN and a TCP-NV base RTT.
            let mut global = words(&[1, 1, 100, 0]);
            global.extend_from_slice(&cc);
            vec![
                vec![
                    map_event("cc_settings", &words(&[0]), &per_port),
                    map_event("port_cc", &words(&[7101]), &choice),
                    map_event("port_cc", &words(&[7201]), &choice),
                ],
                vec![map_event("cc_settings", &words(&[0]), &global)],
            ]
        }
        // The node agent sets this host's class (the `my_class` rodata knob) before load, so
        // the hints carry a non-zero class.
        "hdr_opt.o" => vec![vec![map_event(".rodata", &words(&[0]), &[5])]],
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for (i, mut events) in lists.into_iter().enumerate() {
        for sc in builtin::SCENARIOS {
            events.extend(builtin::scenario(sc).unwrap());
            out.push(Source::Trace {
                name: format!("{fixture} policy {i} {sc}"),
                events: events.clone(),
            });
            events.retain(|e| matches!(e, Event::Map { .. }));
        }
    }
    out
}

/// Whether the mutant only changes a returned value nobody reads: a constant moved into `r0`
/// - right before `exit` in the per-op program of ops whose result is `ResultUse::Ignored` in
///   the op table (the kernel neither vetoes nor reads `reply` for them), or
/// - in a subprogram whose every caller overwrites `r0` before reading it (register liveness,
///   `analysis::liveness::result_unused`; callbacks are never left out), where nothing but
///   `exit` reads it.
///
/// Such a mutant cannot be observed, so it is left out of the score rather than counted as a
/// miss.
fn unobservable_return(p: &Proofs, obj: &Object, fi: usize, ii: usize) -> bool {
    let f = &obj.functions[fi];
    let is_r0_const = matches!(
        f.insns[ii].insn,
        Insn::Alu {
            op: AluOp::Mov,
            dst: Reg::R0,
            src: Src::Imm(_),
            ..
        }
    );
    if !is_r0_const {
        return false;
    }
    if !p.programs.contains(&fi) {
        return liveness::result_unused(&p.module, &p.calls, &p.programs, fi)
            && !liveness::live_out_with(&p.module.funcs[fi], false)[ii].contains(Reg::R0);
    }
    if !matches!(f.insns.get(ii + 1).map(|i| i.insn), Some(Insn::Exit { .. })) {
        return false;
    }
    let ops: Option<Vec<u8>> = f
        .name
        .rsplit_once("_op")
        .filter(|(base, _)| !base.ends_with('_'))
        .and_then(|(_, ops)| ops.split('_').map(|o| o.parse().ok()).collect());
    ops.is_some_and(|ops| {
        !ops.is_empty()
            && ops
                .iter()
                .all(|&o| op_info(o).is_some_and(|i| i.result == ResultUse::Ignored))
    })
}

/// What the left-out rules need about the split object, computed once per fixture.
struct Proofs {
    module: Module,
    calls: CallGraph,
    /// Functions that are programs.
    programs: Vec<usize>,
    /// Per function, per instruction: a store to stack bytes nothing reads afterwards, by the
    /// split pass' own stack liveness (`split::dce`), so dropping it or changing the value
    /// stored cannot change behaviour. The split pass removes such stores from per-op
    /// programs; they remain in the dispatcher's fallback, which is the original code
    /// unchanged.
    dead_stores: Vec<Vec<bool>>,
}

impl Proofs {
    fn new(obj: &Object) -> Proofs {
        let module = Module::from_object(obj).unwrap();
        let calls = CallGraph::build(&module);
        let map_sizes = dce::map_sizes(obj);
        let dead_stores = (0..obj.functions.len())
            .map(|fi| {
                let code = opsplit::split::code::from_function(obj, fi).unwrap();
                assert_eq!(code.len(), obj.functions[fi].insns.len());
                let dead = dce::dead_instructions(&code, &map_sizes);
                code.iter()
                    .zip(dead)
                    .map(|(c, d)| d && matches!(c.insn, Insn::Store { .. }))
                    .collect()
            })
            .collect();
        Proofs {
            module,
            calls,
            programs: obj.programs.iter().map(|p| p.function).collect(),
            dead_stores,
        }
    }
}

/// Mutants scored at executed instructions, mutants left out as unobservable, and the
/// survivors.
fn score(fixture: &str) -> (usize, Vec<String>, Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(fixture);
    let bytes = std::fs::read(&path).unwrap();
    let original = Object::parse(&bytes).unwrap();
    let (out, _) = opsplit::split::convert(&bytes).unwrap();
    let split = Object::parse(&out).unwrap();
    let policies = policies(fixture);
    // The unmutated split form is equal on every source, so a difference is the mutant's.
    for p in &policies {
        let r = verify(&original, &split, p).unwrap();
        assert!(r.equal(), "{fixture}: {:?}", r.scenarios[0].difference);
        let calls: usize = r.scenarios[0].per_op.values().sum();
        eprintln!("{}: {calls} calls", r.scenarios[0].scenario);
        assert!(calls > 10, "{}: {calls} calls", r.scenarios[0].scenario);
    }
    let ran = executed(&split);
    let proofs = Proofs::new(&split);
    let (excluded, all): (Vec<_>, Vec<_>) = mutants(&split)
        .into_iter()
        .filter(|(fi, ii, ..)| ran.contains(&(*fi, split.functions[*fi].insns[*ii].slot)))
        .partition(|(fi, ii, what, _)| {
            (what.starts_with("flip r0") && unobservable_return(&proofs, &split, *fi, *ii))
                || proofs.dead_stores[*fi][*ii]
        });
    let caught = |fi: usize, ii: usize, insn: Insn| {
        let mut m = split.clone();
        m.functions[fi].insns[ii].insn = insn;
        let differs = |source: &Source| match verify(&original, &m, source) {
            Ok(r) => !r.equal(),
            Err(_) => true,
        };
        differs(&Source::AllBuiltin) || policies.iter().any(differs)
    };
    let mut survivors = Vec::new();
    for (fi, ii, what, insn) in &all {
        if !caught(*fi, *ii, *insn) {
            survivors.push(what.clone());
        }
    }
    // A mutant left out as unobservable that verify catches would mean the rule (or the
    // runtime) is wrong.
    for (fi, ii, what, insn) in &excluded {
        assert!(
            !caught(*fi, *ii, *insn),
            "{fixture}: {what} is left out as unobservable, but verify sees it"
        );
    }
    let excluded = excluded.into_iter().map(|(_, _, w, _)| w).collect();
    (all.len(), excluded, survivors)
}

/// The reviewed survivors: `fixture | mutation | why it is not observable`, `#` comments.
fn reviewed() -> BTreeSet<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mutant_survivors.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.splitn(3, " | ").map(str::trim).collect();
        assert!(
            parts.len() == 3 && !parts[2].is_empty(),
            "mutant_survivors.txt:{}: want `fixture | mutation | reason`",
            n + 1
        );
        assert!(
            out.insert((parts[0].to_string(), parts[1].to_string())),
            "mutant_survivors.txt:{}: listed twice",
            n + 1
        );
    }
    out
}

/// Floor on the score (caught / scored, in percent): the bar. The survivor list pins
/// the exact score.
const FLOOR: usize = 95;

#[test]
fn mutants_of_split_outputs_are_caught() {
    let mut total = 0;
    let mut survived = BTreeSet::new();
    for f in [
        "rto_retrans.o",
        "hdr_opt.o",
        "tx_tstamp.o",
        "cc_choice.o",
        "syn_rto_rwnd.o",
    ] {
        let (n, excluded, s) = score(f);
        eprintln!(
            "{f}: {} of {n} caught ({} left out as unobservable)",
            n - s.len(),
            excluded.len()
        );
        for w in &excluded {
            eprintln!("  left out: {w}");
        }
        for w in &s {
            eprintln!("  survivor: {w}");
        }
        total += n;
        survived.extend(s.into_iter().map(|w| (f.to_string(), w)));
    }
    let caught = total - survived.len();
    eprintln!("total {caught} of {total} caught");
    assert!(total > 200, "{total} mutants");
    let listed = reviewed();
    let unreviewed: Vec<_> = survived.difference(&listed).collect();
    assert!(
        unreviewed.is_empty(),
        "survivors not in tests/data/mutant_survivors.txt: {unreviewed:?}"
    );
    // A listed survivor that is now caught must leave the list, so the list stays the review
    // of what survives today.
    let stale: Vec<_> = listed.difference(&survived).collect();
    assert!(
        stale.is_empty(),
        "listed in tests/data/mutant_survivors.txt but caught now: {stale:?}"
    );
    assert!(
        caught * 100 >= total * FLOOR,
        "{caught} of {total} caught, floor {FLOOR}%"
    );
}
