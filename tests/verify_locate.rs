//! `verify` locates a difference at the instruction that made the differing value on each side:
//! the exit that vetoed, the store to `reply`, the header option helper call, and the last
//! write into a differing final map entry (a store, an atomic, or a helper's update). Each case
//! hand-mutates one instruction of a split output and checks the reported function and slot.

use std::path::Path;

use opsplit::insn::{AluOp, Call, Insn, Reg, Size, Src, Width};
use opsplit::obj::Object;
use opsplit::runtime::builtin;
use opsplit::runtime::scenario::{Event, hex};
use opsplit::runtime::verify::{Difference, Source, verify};

fn split(fixture: &str) -> (Object, Object) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(fixture);
    let bytes = std::fs::read(path).unwrap();
    let (out, _) = opsplit::split::convert(&bytes).unwrap();
    (Object::parse(&bytes).unwrap(), Object::parse(&out).unwrap())
}

fn function(obj: &Object, name: &str) -> usize {
    obj.functions
        .iter()
        .position(|f| f.name == name)
        .unwrap_or_else(|| panic!("no function {name}"))
}

/// Index of the first instruction of `obj`'s function `fi` at or after `from` that `want` accepts.
fn find(obj: &Object, fi: usize, from: usize, want: impl Fn(&Insn) -> bool) -> usize {
    let f = &obj.functions[fi];
    (from..f.insns.len())
        .find(|&i| want(&f.insns[i].insn))
        .unwrap_or_else(|| panic!("{}: no such instruction after #{from}", f.name))
}

/// The slot as `verify` reports it: counted from the function's start.
fn slot(obj: &Object, fi: usize, i: usize) -> usize {
    let f = &obj.functions[fi];
    f.insns[i].slot - f.insns[0].slot
}

fn mov(dst: Reg, k: i32) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst,
        src: Src::Imm(k),
    }
}

fn is_mov(i: &Insn, dst: Reg, k: i32) -> bool {
    matches!(*i, Insn::Alu { op: AluOp::Mov, dst: d, src: Src::Imm(x), .. } if d == dst && x == k)
}

fn first_difference(original: &Object, mutant: &Object) -> Difference {
    first_difference_on(original, mutant, &Source::AllBuiltin)
}

fn first_difference_on(original: &Object, mutant: &Object, source: &Source) -> Difference {
    let r = verify(original, mutant, source).unwrap();
    r.scenarios
        .iter()
        .find_map(|s| s.difference.clone())
        .expect("the mutant differs")
}

/// The slot in `function` that a location names.
fn reported_slot(at: &str, function: &str) -> usize {
    let rest = at
        .split_once(&format!("function `{function}`, slot "))
        .unwrap_or_else(|| panic!("{at}: not in {function}"))
        .1;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn at(side: &Option<String>) -> &str {
    side.as_deref().unwrap_or("")
}

#[test]
fn a_veto_is_located_at_the_exit_returning_0() {
    let (original, split) = split("syn_rto_rwnd.o");
    let fi = function(&split, "syn_rto_rwnd_op1");
    // TIMEOUT_INIT's `return 1` after counting a peer without policy: return 0 vetoes.
    let ret = find(&split, fi, 2, |i| {
        matches!(
            *i,
            Insn::Alu {
                op: AluOp::Mov,
                dst: Reg::R0,
                src: Src::Imm(1),
                ..
            }
        )
    });
    assert!(matches!(
        split.functions[fi].insns[ret + 1].insn,
        Insn::Exit { .. }
    ));
    let mut m = split.clone();
    m.functions[fi].insns[ret].insn = Insn::Alu {
        width: Width::W32,
        op: AluOp::Mov,
        dst: Reg::R0,
        src: Src::Imm(0),
    };
    let d = first_difference(&original, &m);
    assert_eq!((d.what.as_str(), d.op), ("result", Some(1)), "{d:#?}");
    assert_eq!(d.candidate, "-1");
    let exit = slot(&split, fi, ret + 1);
    assert!(
        at(&d.candidate_at).contains(&format!("function `syn_rto_rwnd_op1`, slot {exit} (")),
        "{d:#?}"
    );
    assert!(at(&d.candidate_at).contains("syn_rto_rwnd.c:"), "{d:#?}");
    assert_eq!(
        d.candidate_insn.as_deref(),
        Some("exit (returns 0: veto)"),
        "{d:#?}"
    );
    // The original returned 1 without a veto: located at its own exit in `syn_rto_rwnd`.
    assert!(
        at(&d.original_at).contains("function `syn_rto_rwnd`"),
        "{d:#?}"
    );
    assert!(
        d.original_insn
            .as_deref()
            .is_some_and(|i| i.starts_with("exit (returns 1")),
        "{d:#?}"
    );
}

#[test]
fn a_differing_reply_is_located_at_the_store_to_reply() {
    let (original, split) = split("syn_rto_rwnd.o");
    let fi = function(&split, "syn_rto_rwnd_op1");
    // `reply = (rto * hz + 999) / 1000`: change the rounding constant.
    let add = find(&split, fi, 0, |i| {
        matches!(
            *i,
            Insn::Alu {
                op: AluOp::Add,
                src: Src::Imm(999),
                ..
            }
        )
    });
    let Insn::Alu { width, dst, .. } = split.functions[fi].insns[add].insn else {
        unreachable!()
    };
    let store = find(&split, fi, add, |i| {
        matches!(
            *i,
            Insn::Store {
                size: Size::W,
                off: 4,
                ..
            }
        )
    });
    let mut m = split.clone();
    m.functions[fi].insns[add].insn = Insn::Alu {
        width,
        op: AluOp::Add,
        dst,
        src: Src::Imm(1999),
    };
    // The path that computes a reply needs a policy for the peer (127.0.0.1): user space
    // fills `dst_policy` first.
    let words = |ws: &[u32]| ws.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
    let mut key = words(&[2]);
    key.extend_from_slice(&[127, 0, 0, 1]);
    key.extend_from_slice(&[0; 12]);
    let mut events = vec![Event::Map {
        name: "dst_policy".into(),
        key: hex(&key),
        value: hex(&words(&[3000, 40, 1, 0])),
    }];
    events.extend(builtin::scenario("loopback").unwrap());
    let trace = Source::Trace {
        name: "policy".into(),
        events,
    };
    assert!(verify(&original, &split, &trace).unwrap().equal());
    let d = first_difference_on(&original, &m, &trace);
    assert_eq!((d.what.as_str(), d.op), ("result", Some(1)), "{d:#?}");
    let s = slot(&split, fi, store);
    assert!(
        at(&d.candidate_at).contains(&format!("function `syn_rto_rwnd_op1`, slot {s} (")),
        "{d:#?}"
    );
    assert!(
        d.candidate_insn
            .as_deref()
            .is_some_and(|i| i.ends_with("(store to reply)")),
        "{d:#?}"
    );
    // The original's own store to reply, in the original function.
    let of = function(&original, "syn_rto_rwnd");
    let os = reported_slot(at(&d.original_at), "syn_rto_rwnd");
    let f = &original.functions[of];
    let insn = f
        .insns
        .iter()
        .find(|i| i.slot - f.insns[0].slot == os)
        .unwrap()
        .insn;
    assert!(
        matches!(insn, Insn::Store { size: Size::W, off: 4, dst, .. } if dst != Reg::R10),
        "{insn:?}: {d:#?}"
    );
    assert_eq!(
        d.original_insn, d.candidate_insn,
        "the same store on both sides"
    );
}

#[test]
fn differing_option_bytes_are_located_at_the_store_hdr_opt_call() {
    let (original, split) = split("hdr_opt.o");
    let fi = function(&split, "hdr_opt_op15");
    // The hint's second magic byte.
    let magic = find(&split, fi, 0, |i| {
        matches!(
            *i,
            Insn::Alu {
                op: AluOp::Mov,
                src: Src::Imm(0x53),
                ..
            }
        )
    });
    let Insn::Alu { width, dst, .. } = split.functions[fi].insns[magic].insn else {
        unreachable!()
    };
    let store_call = find(&split, fi, magic, |i| {
        *i == Insn::Call(Call::Helper(143)) // bpf_store_hdr_opt
    });
    let mut m = split.clone();
    m.functions[fi].insns[magic].insn = Insn::Alu {
        width,
        op: AluOp::Mov,
        dst,
        src: Src::Imm(0x54),
    };
    let d = first_difference(&original, &m);
    assert_eq!(
        (d.what.as_str(), d.op),
        ("option bytes written", Some(15)),
        "{d:#?}"
    );
    let s = slot(&split, fi, store_call);
    assert!(
        at(&d.candidate_at).contains(&format!("function `hdr_opt_op15`, slot {s} (")),
        "{d:#?}"
    );
    assert_eq!(d.candidate_insn.as_deref(), Some("call bpf_store_hdr_opt"));
    assert_eq!(d.original_insn.as_deref(), Some("call bpf_store_hdr_opt"));
    assert!(at(&d.original_at).contains("function `hdr_opt`"), "{d:#?}");
}

#[test]
fn a_differing_map_entry_is_located_at_its_last_atomic_write() {
    let (original, split) = split("tcp_iw.o");
    let fi = function(&split, "tcp_iw_op3");
    // `__sync_fetch_and_add(cnt, 1)`: add 2 instead.
    let one = find(&split, fi, 0, |i| is_mov(i, Reg::R1, 1));
    let atomic = one + 1;
    assert!(
        matches!(split.functions[fi].insns[atomic].insn, Insn::Atomic { .. }),
        "{:?}",
        split.functions[fi].insns[atomic]
    );
    let mut m = split.clone();
    m.functions[fi].insns[one].insn = mov(Reg::R1, 2);
    let d = first_difference(&original, &m);
    assert!(d.what.starts_with("final contents of map `"), "{d:#?}");
    assert!(d.what.contains("byte 0)"), "{d:#?}");
    let s = slot(&split, fi, atomic);
    assert!(
        at(&d.candidate_at).contains(&format!(
            "program `tcp_iw_op3`, function `tcp_iw_op3`, slot {s} ("
        )),
        "{d:#?}"
    );
    let insn = d.candidate_insn.as_deref().unwrap_or("");
    assert!(
        insn.starts_with("lock ") && insn.contains("last write to byte 0 of entry"),
        "{d:#?}"
    );
    // The original's own atomic, in `tcp_iw`.
    assert!(
        at(&d.original_at).contains("function `tcp_iw`, slot "),
        "{d:#?}"
    );
    assert!(
        d.original_insn
            .as_deref()
            .is_some_and(|i| i.starts_with("lock ")),
        "{d:#?}"
    );
}

#[test]
fn a_differing_value_handed_to_a_helper_is_located_at_the_call() {
    let (original, split) = split("hdr_opt.o");
    let fi = function(&split, "hdr_opt_op4");
    // ACTIVE_ESTABLISHED's `fresh = { .seen_on = 4 }`, one 8-byte store of 0x40000: also set
    // byte 3 (`pad`), which no later write touches. The value goes into the map through
    // bpf_map_update_elem, whose record carries the bytes it reads, so the difference shows at
    // that call (before the final map contents would show it).
    let init = find(&split, fi, 0, |i| is_mov(i, Reg::R1, 0x40000));
    let update = find(&split, fi, init, |i| *i == Insn::Call(Call::Helper(2)));
    let mut m = split.clone();
    m.functions[fi].insns[init].insn = mov(Reg::R1, 0x104_0000);
    let d = first_difference(&original, &m);
    assert!(d.what.starts_with("call #"), "{d:#?}");
    assert!(
        d.original.starts_with("bpf_map_update_elem(")
            && d.original.contains(" arg3=[")
            && d.candidate.contains(" arg3=["),
        "{d:#?}"
    );
    assert_ne!(d.original, d.candidate);
    let s = slot(&split, fi, update);
    assert!(
        at(&d.candidate_at).contains(&format!("function `hdr_opt_op4`, slot {s} (")),
        "{d:#?}"
    );
    assert!(at(&d.original_at).contains("function `hdr_opt`"), "{d:#?}");
}

#[test]
fn the_text_report_shows_both_locations() {
    let (original, split) = split("tcp_iw.o");
    let fi = function(&split, "tcp_iw_op3");
    let one = find(&split, fi, 0, |i| is_mov(i, Reg::R1, 1));
    let mut m = split.clone();
    m.functions[fi].insns[one].insn = mov(Reg::R1, 2);
    let r = verify(&original, &m, &Source::Builtin("loopback".into())).unwrap();
    let text = opsplit::cli::verify::render_text(&r);
    let line = |side: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(side))
            .unwrap_or_else(|| panic!("no `{side}` line: {text}"))
            .to_string()
    };
    assert!(line("original at:").contains("function `tcp_iw`"), "{text}");
    assert!(
        line("candidate at:").contains("function `tcp_iw_op3`")
            && line("candidate at:").contains(": lock "),
        "{text}"
    );
    let json = serde_json::to_value(&r).unwrap();
    let d = &json["scenarios"][0]["difference"];
    assert!(
        d["candidate_insn"].as_str().unwrap().starts_with("lock "),
        "{d}"
    );
    assert!(
        d["original_at"].as_str().unwrap().contains("tcp_iw.c:"),
        "{d}"
    );
}

/// Every store into a map value of RTT_CB's program, made to store a constant instead: the
/// final entry differs at the bytes that store wrote, and the last writer of the first
/// differing byte is that store in the candidate and the same source line's store in the
/// original (a `.bss` counter, a histogram bucket, and three fields of one `conns` entry, each
/// located by its own byte).
#[test]
fn a_differing_map_entry_is_located_at_its_last_store() {
    let (original, split) = split("rtt_stats.o");
    let fi = function(&split, "rtt_stats_op12");
    let f = &split.functions[fi];
    let line = |at: &str| at.split_once(" (").map(|x| x.1.to_string());
    let mut located = 0;
    for (i, si) in f.insns.iter().enumerate() {
        let Insn::Store {
            size,
            dst,
            off,
            src: Src::Reg(_),
        } = si.insn
        else {
            continue;
        };
        if dst == Reg::R10 {
            continue;
        }
        let mut m = split.clone();
        m.functions[fi].insns[i].insn = Insn::Store {
            size,
            dst,
            off,
            src: Src::Imm(0x7777),
        };
        let r = verify(&original, &m, &Source::AllBuiltin).unwrap();
        let Some(d) = r.scenarios.iter().find_map(|s| s.difference.clone()) else {
            continue;
        };
        if !d.what.starts_with("final contents of map") {
            continue;
        }
        let s = slot(&split, fi, i);
        assert_eq!(
            reported_slot(at(&d.candidate_at), "rtt_stats_op12"),
            s,
            "{d:#?}"
        );
        assert!(
            d.candidate_insn
                .as_deref()
                .is_some_and(|x| x.contains("= 0x7777 (last write to byte ")),
            "{d:#?}"
        );
        let os = reported_slot(at(&d.original_at), "rtt_stats");
        let of = function(&original, "rtt_stats");
        let ofn = &original.functions[of];
        let oi = ofn
            .insns
            .iter()
            .find(|x| x.slot - ofn.insns[0].slot == os)
            .unwrap();
        assert!(matches!(oi.insn, Insn::Store { .. }), "{oi:?}: {d:#?}");
        assert_eq!(
            line(at(&d.original_at)),
            line(at(&d.candidate_at)),
            "{d:#?}"
        );
        located += 1;
    }
    assert!(located >= 4, "{located} stores located");
}

#[test]
fn a_differing_sk_txhash_is_located_at_the_store_to_it() {
    let (original, split) = split("sk_storage_state.o");
    let fi = function(&split, "sk_storage_state_op4");
    // `skops->sk_txhash = st->txhash` (offset 164): store a constant instead.
    let is_txhash = |i: &Insn| matches!(*i, Insn::Store { size: Size::W, off: 164, dst, src: Src::Reg(_) } if dst != Reg::R10);
    let store = find(&split, fi, 0, is_txhash);
    let Insn::Store { size, dst, off, .. } = split.functions[fi].insns[store].insn else {
        unreachable!()
    };
    let mut m = split.clone();
    m.functions[fi].insns[store].insn = Insn::Store {
        size,
        dst,
        off,
        src: Src::Imm(0x7777),
    };
    let d = first_difference(&original, &m);
    assert_eq!((d.what.as_str(), d.op), ("sk_txhash", Some(4)), "{d:#?}");
    assert_eq!(d.candidate, "0x7777");
    assert_eq!(
        reported_slot(at(&d.candidate_at), "sk_storage_state_op4"),
        slot(&split, fi, store),
        "{d:#?}"
    );
    assert_eq!(
        d.candidate_insn.as_deref(),
        Some("*(u32 *)(r6 + 0xa4) = 0x7777 (store to sk_txhash)"),
        "{d:#?}"
    );
    let of = function(&original, "sk_storage_state");
    let os = reported_slot(at(&d.original_at), "sk_storage_state");
    let ofn = &original.functions[of];
    let oi = ofn
        .insns
        .iter()
        .find(|x| x.slot - ofn.insns[0].slot == os)
        .unwrap();
    assert!(is_txhash(&oi.insn), "{oi:?}: {d:#?}");
}
