//! The op analysis on hand-assembled instruction sequences: one test per flow the interpreter
//! must follow (spills, callee-saved registers, jmp32, bit tricks, ranges, signed trees,
//! subprograms, callbacks) and per way the op gets lost (map round-trip, tail call).

use opsplit::analysis::facts::{Env, ProgramFacts, Value, analyze_program};
use opsplit::analysis::{FindingKind, Func, MapInfo, Module, Ref, Severity};
use opsplit::insn::{AluOp, Call, Insn, JmpCond, LdImm64, Reg, Size, SlotInsn, Src, Width};

/// A tiny assembler with labels.
enum A {
    I(Insn),
    L(&'static str),
    J(Width, JmpCond, Reg, Src, &'static str),
}
use A::*;

fn asm(items: Vec<A>) -> Vec<SlotInsn> {
    let mut labels = std::collections::HashMap::new();
    let mut slot = 0usize;
    for it in &items {
        match it {
            L(n) => {
                labels.insert(*n, slot);
            }
            I(i) => slot += i.slots(),
            J(..) => slot += 1,
        }
    }
    let mut out = Vec::new();
    let mut slot = 0usize;
    for it in items {
        let insn = match it {
            L(_) => continue,
            I(i) => i,
            J(width, cond, dst, src, l) => Insn::Jmp {
                width,
                cond,
                dst,
                src,
                off: (labels[l] as i64 - slot as i64 - 1) as i16,
            },
        };
        out.push(SlotInsn { slot, insn });
        slot += insn.slots();
    }
    out
}

const R0: Reg = Reg::R0;
const R1: Reg = Reg::R1;
const R2: Reg = Reg::R2;
const R3: Reg = Reg::R3;
const R6: Reg = Reg::R6;
const R7: Reg = Reg::R7;
const FP: Reg = Reg::R10;

fn alu(width: Width, op: AluOp, dst: Reg, src: Src) -> A {
    I(Insn::Alu {
        width,
        op,
        dst,
        src,
    })
}
fn mov(dst: Reg, k: i32) -> A {
    alu(Width::W64, AluOp::Mov, dst, Src::Imm(k))
}
fn movr(dst: Reg, src: Reg) -> A {
    alu(Width::W64, AluOp::Mov, dst, Src::Reg(src))
}
fn load(size: Size, dst: Reg, src: Reg, off: i16) -> A {
    I(Insn::Load {
        size,
        dst,
        src,
        off,
    })
}
fn store(size: Size, dst: Reg, off: i16, src: Reg) -> A {
    I(Insn::Store {
        size,
        dst,
        off,
        src: Src::Reg(src),
    })
}
/// `r = ctx->op` (the u32 load clang emits).
fn ld_op(dst: Reg) -> A {
    load(Size::W, dst, R1, 0)
}
fn jeq(dst: Reg, k: i32, l: &'static str) -> A {
    J(Width::W64, JmpCond::Eq, dst, Src::Imm(k), l)
}
fn call(id: i32) -> A {
    I(Insn::Call(Call::Helper(id)))
}
fn exit() -> A {
    I(Insn::EXIT)
}
/// `r0 = 1; exit` at `l`, preceded by `r0 = 0; exit`.
fn ret_0_or_1(l: &'static str) -> Vec<A> {
    vec![mov(R0, 0), exit(), L(l), mov(R0, 1), exit()]
}

fn func(name: &str, items: Vec<A>) -> Func {
    Func::new(name, asm(items)).expect("valid CFG")
}

fn analyze(funcs: Vec<Func>, maps: Vec<MapInfo>) -> ProgramFacts {
    let m = Module { funcs, maps };
    analyze_program(&m, 0, &Env::default()).expect("analysis succeeds")
}

/// Ops (0..=20, and 21 for "some op above 20") that run instruction `i` of function `f`.
fn ops_at(p: &ProgramFacts, f: usize, i: usize) -> Vec<u8> {
    let r = p.reach[f][i];
    let mut v: Vec<u8> = (0..=20).filter(|&o| r.contains(o)).collect();
    if (21..=255).any(|o| r.contains(o)) {
        v.push(21);
    }
    v
}

fn returns(p: &ProgramFacts, op: usize) -> Vec<Value> {
    p.ops[op].returns.clone()
}

const ALL: std::ops::RangeInclusive<u8> = 0..=21;

#[test]
fn spill_and_fill_through_different_slots() {
    let mut items = vec![
        ld_op(R2),
        store(Size::DW, FP, -8, R2),
        load(Size::DW, R3, FP, -8),
        store(Size::W, FP, -16, R3),
        mov(R3, 0),
        load(Size::W, R0, FP, -16),
        jeq(R0, 4, "hit"),
    ];
    items.extend(ret_0_or_1("hit"));
    let p = analyze(vec![func("prog", items)], vec![]);
    let hit = p.reach[0].len() - 2;
    assert_eq!(ops_at(&p, 0, hit), [4]);
    assert_eq!(returns(&p, 4), [Value::Known(1)]);
    assert_eq!(returns(&p, 5), [Value::Known(0)]);
    assert_eq!(p.own_behaviour, [4]);
}

#[test]
fn callee_saved_register_survives_a_helper_call_and_r1_r5_do_not() {
    let mut items = vec![
        ld_op(R6),
        ld_op(R2),
        call(5), // bpf_ktime_get_ns
        jeq(R2, 3, "clobbered"),
        jeq(R6, 3, "hit"),
        mov(R0, 0),
        exit(),
        L("clobbered"),
        mov(R0, 2),
        exit(),
    ];
    items.extend(vec![L("hit"), mov(R0, 1), exit()]);
    let p = analyze(vec![func("prog", items)], vec![]);
    // r2 was clobbered by the call: its branch is taken for every op.
    assert_eq!(ops_at(&p, 0, 7), ALL.collect::<Vec<_>>());
    // r6 still holds the op: only op 3 reaches `hit`.
    assert_eq!(ops_at(&p, 0, 9), [3]);
    assert!(ops_at(&p, 0, 5).iter().all(|&o| o != 3));
}

#[test]
fn jmp32_compares_the_low_half() {
    let mut items = vec![
        ld_op(R2),
        I(Insn::LdImm64 {
            dst: R3,
            value: LdImm64::Imm(0x1_0000_0000),
        }),
        alu(Width::W64, AluOp::Or, R2, Src::Reg(R3)),
        // 64-bit: never equal to 7; 32-bit: equal for op 7.
        jeq(R2, 7, "never"),
        J(Width::W32, JmpCond::Eq, R2, Src::Imm(7), "hit"),
        mov(R0, 0),
        exit(),
        L("never"),
        mov(R0, 2),
        exit(),
    ];
    items.extend(vec![L("hit"), mov(R0, 1), exit()]);
    let p = analyze(vec![func("prog", items)], vec![]);
    assert_eq!(ops_at(&p, 0, 7), Vec::<u8>::new());
    assert_eq!(ops_at(&p, 0, 9), [7]);
    assert_eq!(returns(&p, 7), [Value::Known(1)]);
}

#[test]
fn op_and_not_one_selects_a_pair() {
    let mut items = vec![
        ld_op(R2),
        alu(Width::W32, AluOp::And, R2, Src::Imm(-2)),
        J(Width::W32, JmpCond::Eq, R2, Src::Imm(4), "hit"),
    ];
    items.extend(ret_0_or_1("hit"));
    let p = analyze(vec![func("prog", items)], vec![]);
    assert_eq!(ops_at(&p, 0, 5), [4, 5]);
    assert_eq!(p.own_behaviour, [4, 5]);
}

#[test]
fn shift_and_mask_after_a_bound_check() {
    let mut items = vec![
        ld_op(R2),
        J(Width::W32, JmpCond::Gt, R2, Src::Imm(20), "out"),
        mov(R3, 1),
        alu(Width::W64, AluOp::Lsh, R3, Src::Reg(R2)),
        alu(Width::W64, AluOp::And, R3, Src::Imm((1 << 3) | (1 << 11))),
        J(Width::W64, JmpCond::Ne, R3, Src::Imm(0), "hit"),
        L("out"),
    ];
    items.extend(ret_0_or_1("hit"));
    let p = analyze(vec![func("prog", items)], vec![]);
    assert_eq!(ops_at(&p, 0, 8), [3, 11]);
    assert_eq!(p.own_behaviour, [3, 11]);
    assert_eq!(p.reachable(3), [(0, vec![0, 1, 2, 3, 4, 5, 8, 9])]);
    assert_eq!(p.reachable(25), [(0, vec![0, 1, 6, 7])]);
}

#[test]
fn subtraction_gives_a_range() {
    let mut items = vec![
        ld_op(R2),
        alu(Width::W32, AluOp::Add, R2, Src::Imm(-8)),
        J(Width::W32, JmpCond::Lt, R2, Src::Imm(3), "hit"),
    ];
    items.extend(ret_0_or_1("hit"));
    let p = analyze(vec![func("prog", items)], vec![]);
    assert_eq!(ops_at(&p, 0, 5), [8, 9, 10]);
}

#[test]
fn signed_tree() {
    // if (s32)op > 8 { if op == 12 -> A } else { if (s32)op < 3 -> B }
    let items = vec![
        ld_op(R2),
        J(Width::W32, JmpCond::Sgt, R2, Src::Imm(8), "high"),
        J(Width::W32, JmpCond::Slt, R2, Src::Imm(3), "b"),
        mov(R0, 0),
        exit(),
        L("high"),
        J(Width::W32, JmpCond::Eq, R2, Src::Imm(12), "a"),
        mov(R0, 0),
        exit(),
        L("a"),
        mov(R0, 1),
        exit(),
        L("b"),
        mov(R0, 1),
        exit(),
    ];
    let p = analyze(vec![func("prog", items)], vec![]);
    assert_eq!(ops_at(&p, 0, 9), [12]);
    assert_eq!(ops_at(&p, 0, 11), [0, 1, 2]);
    // Ops above 127 are negative as s8? No: the op is zero-extended, so all of 21..=255 are > 8.
    assert_eq!(ops_at(&p, 0, 5), (9..=21).collect::<Vec<_>>());
}

/// `prog` calls `sub(op)`, which returns `op == 12`.
fn prog_calling(global: bool) -> ProgramFacts {
    let mut caller = func(
        "prog",
        vec![
            ld_op(R1),
            I(Insn::Call(Call::Local(-1))),
            jeq(R0, 1, "hit"),
            mov(R0, 0),
            exit(),
            L("hit"),
            mov(R0, 1),
            exit(),
        ],
    );
    caller.refs.insert(1, Ref::Call(1));
    let mut sub = func(
        "sub",
        vec![
            jeq(R1, 12, "yes"),
            mov(R0, 0),
            exit(),
            L("yes"),
            mov(R0, 1),
            exit(),
        ],
    );
    sub.global = global;
    analyze(vec![caller, sub], vec![])
}

#[test]
fn static_subprogram_sees_the_op() {
    let p = prog_calling(false);
    assert_eq!(ops_at(&p, 1, 3), [12]);
    assert_eq!(ops_at(&p, 0, 5), [12]);
    assert_eq!(p.own_behaviour, [12]);
    assert_eq!(p.functions, ["prog", "sub"]);
}

#[test]
fn global_subprogram_gets_unknown_arguments() {
    let p = prog_calling(true);
    // Verified on its own: both paths of the global function run for every op that calls it.
    assert_eq!(ops_at(&p, 1, 3), ALL.collect::<Vec<_>>());
    assert_eq!(ops_at(&p, 1, 1), ALL.collect::<Vec<_>>());
    // ... and its return value is unknown to the caller.
    assert_eq!(ops_at(&p, 0, 5), ALL.collect::<Vec<_>>());
    assert!(
        p.ops[12]
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::OpLost && f.slot == Some(1))
    );
}

#[test]
fn global_subprogram_still_reads_the_op_through_the_ctx() {
    let mut caller = func(
        "prog",
        vec![I(Insn::Call(Call::Local(-1))), mov(R0, 1), exit()],
    );
    caller.refs.insert(0, Ref::Call(1));
    let mut sub = func(
        "sub",
        vec![
            ld_op(R2),
            jeq(R2, 9, "yes"),
            mov(R0, 0),
            exit(),
            L("yes"),
            mov(R0, 1),
            exit(),
        ],
    );
    sub.global = true;
    let p = analyze(vec![caller, sub], vec![]);
    assert_eq!(ops_at(&p, 1, 4), [9]);
}

#[test]
fn bpf_loop_callback_reads_the_op_through_its_context() {
    // struct { u32 op; u32 hit; } c on the stack at fp-8; bpf_loop(4, cb, &c, 0).
    let mut prog = func(
        "prog",
        vec![
            ld_op(R2),
            store(Size::W, FP, -8, R2),
            mov(R3, 0),
            store(Size::W, FP, -4, R3),
            mov(R1, 4),
            I(Insn::LdImm64 {
                dst: R2,
                value: LdImm64::Imm(0),
            }),
            movr(R3, FP),
            alu(Width::W64, AluOp::Add, R3, Src::Imm(-8)),
            mov(Reg::R4, 0),
            call(181),
            load(Size::W, R0, FP, -4),
            exit(),
        ],
    );
    prog.refs.insert(5, Ref::FuncAddr(1));
    let cb = func(
        "cb",
        vec![
            load(Size::W, R3, R2, 0),
            jeq(R3, 11, "yes"),
            mov(R0, 0),
            exit(),
            L("yes"),
            mov(R3, 1),
            store(Size::W, R2, 4, R3),
            mov(R0, 1),
            exit(),
        ],
    );
    let p = analyze(vec![prog, cb], vec![]);
    assert_eq!(ops_at(&p, 1, 4), [11]);
    assert_eq!(p.functions, ["prog", "cb"]);
    // Zero or more iterations: op 11 may return 0 or 1; every other op returns 0.
    assert_eq!(returns(&p, 11), [Value::Unknown("unknown")]);
    assert_eq!(returns(&p, 10), [Value::Known(0)]);
}

#[test]
fn op_through_a_map_is_lost_and_everything_after_is_reachable() {
    let mut prog = func(
        "prog",
        vec![
            movr(R7, R1),
            ld_op(R6),
            mov(R2, 0),
            store(Size::W, FP, -4, R2),
            I(Insn::LdImm64 {
                dst: R1,
                value: LdImm64::Imm(0),
            }),
            movr(R2, FP),
            alu(Width::W64, AluOp::Add, R2, Src::Imm(-4)),
            call(1),
            jeq(R0, 0, "out"),
            store(Size::W, R0, 0, R6),
            load(Size::W, R3, R0, 0),
            jeq(R3, 4, "hit"),
            L("out"),
            mov(R0, 0),
            exit(),
            L("hit"),
            mov(R0, 1),
            exit(),
        ],
    );
    prog.refs.insert(4, Ref::Map(0));
    let maps = vec![MapInfo {
        name: "m".into(),
        map_type: 2,
        programs: vec![],
    }];
    let p = analyze(vec![prog], maps);
    let hit = p.reach[0].len() - 2;
    assert_eq!(ops_at(&p, 0, hit), ALL.collect::<Vec<_>>());
    let lost = |slot: usize, sev: Severity| {
        p.ops[4]
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::OpLost && f.slot == Some(slot) && f.severity == sev)
    };
    // The store (slot 10) is noted, the branch on the value read back (slot 12) is the loss.
    assert!(lost(10, Severity::Info));
    assert!(lost(12, Severity::Warning));
}

#[test]
fn tail_call_is_reported_with_its_target_per_op() {
    let mut prog = func(
        "prog",
        vec![
            ld_op(R3),
            I(Insn::LdImm64 {
                dst: R2,
                value: LdImm64::Imm(0),
            }),
            call(12),
            mov(R0, 1),
            exit(),
        ],
    );
    prog.refs.insert(1, Ref::Map(0));
    let maps = vec![MapInfo {
        name: "jmp".into(),
        map_type: 3,
        programs: vec![(2, "handle_rwnd".into())],
    }];
    let p = analyze(vec![prog], maps);
    let tc = |op: usize| {
        p.ops[op]
            .findings
            .iter()
            .find(|f| f.kind == FindingKind::TailCall)
            .map(|f| f.message.clone())
    };
    assert!(tc(2).unwrap().contains("program `handle_rwnd` (slot 2)"));
    assert!(
        tc(3)
            .unwrap()
            .contains("slot 3 (no program there at load time)")
    );
    assert!(
        tc(21)
            .unwrap()
            .contains("235 slots (21..=255), none with a program")
    );
    assert!(tc(21).unwrap().contains("jmp"));
    // The index differs per op: every op has its own behaviour.
    assert_eq!(p.own_behaviour, (0..=20).collect::<Vec<_>>());
}

#[test]
fn reply_written_is_read_back_as_args0() {
    let mut items = vec![
        mov(R2, 7),
        store(Size::W, R1, 4, R2),
        load(Size::W, R3, R1, 4),
        jeq(R3, 7, "hit"),
    ];
    items.extend(ret_0_or_1("hit"));
    let p = analyze(vec![func("prog", items)], vec![]);
    assert_eq!(ops_at(&p, 0, 5), Vec::<u8>::new());
    assert_eq!(p.ops[1].fields_written, ["reply"]);
    assert_eq!(p.ops[1].fields_read, ["args[0]"]);
    assert_eq!(p.ops[1].reply, [Value::Known(7)]);
}

#[test]
fn load_time_constants_are_not_folded() {
    // `r2 = 1` patched by a CO-RE existence relocation, and a .rodata value.
    let mut f = func(
        "prog",
        vec![
            mov(R2, 1),
            jeq(R2, 1, "a"),
            L("a"),
            I(Insn::LdImm64 {
                dst: R3,
                value: LdImm64::Imm(0),
            }),
            load(Size::W, R3, R3, 0),
            jeq(R3, 0, "b"),
            L("b"),
            mov(R0, 1),
            exit(),
        ],
    );
    f.load_time_imm.insert(0);
    f.refs.insert(
        2,
        Ref::Data {
            section: ".rodata".into(),
        },
    );
    let p = analyze(vec![f], vec![]);
    // Both jumps go both ways: the fall-through instructions after them are reachable.
    assert_eq!(ops_at(&p, 0, 2), ALL.collect::<Vec<_>>());
    assert_eq!(ops_at(&p, 0, 5), ALL.collect::<Vec<_>>());
    let _ = R7;
}

#[test]
fn migration_findings_from_the_op_table() {
    // op 8: read args[2]; op 1: write sk_txhash, return 0; every op: socket cookie.
    let items = vec![
        movr(R6, R1),
        call(46),
        ld_op_from(R2, R6),
        jeq(R2, 8, "rto"),
        jeq(R2, 1, "init"),
        mov(R0, 1),
        exit(),
        L("rto"),
        load(Size::W, R3, R6, 12),
        mov(R0, 1),
        exit(),
        L("init"),
        mov(R3, 5),
        store(Size::W, R6, 164, R3),
        mov(R0, 0),
        exit(),
    ];
    let p = analyze(vec![func("prog", items)], vec![]);
    let kinds =
        |op: usize| -> Vec<FindingKind> { p.ops[op].findings.iter().map(|f| f.kind).collect() };
    assert!(kinds(8).contains(&FindingKind::RtoExpired));
    assert!(kinds(8).contains(&FindingKind::CbFlagGating));
    assert!(kinds(8).contains(&FindingKind::SocketCookie));
    assert!(kinds(1).contains(&FindingKind::TxhashWrite));
    assert!(kinds(1).contains(&FindingKind::ReturnZeroVeto));
    assert!(!kinds(1).contains(&FindingKind::RtoExpired));
    // Every op calls bpf_get_socket_cookie; op 3 does nothing else.
    assert_eq!(kinds(3), [FindingKind::SocketCookie]);
    assert!(
        p.findings
            .iter()
            .any(|f| f.kind == FindingKind::NonGplLicense)
    );
}

fn ld_op_from(dst: Reg, ctx: Reg) -> A {
    load(Size::W, dst, ctx, 0)
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    const HELPERS: [i32; 12] = [1, 2, 5, 12, 25, 46, 49, 57, 59, 142, 170, 181];
    const OFFS: [i16; 10] = [-16, -8, -4, 0, 4, 8, 12, 164, 184, 192];

    /// A typed instruction from random numbers; jumps target an instruction index, fixed up to
    /// slots once the layout is known.
    fn insn(k: u8, a: u8, b: u8, c: i16, d: i32, n: usize, at: usize) -> (Insn, Option<usize>) {
        let reg = |x: u8| Reg::new(x % 11).unwrap();
        let dst = Reg::new(a % 10).unwrap();
        let width = if b & 1 == 0 { Width::W64 } else { Width::W32 };
        // Mostly small immediates (shift counts, ops), sometimes extreme ones (offsets that
        // overflow when added).
        let imm = if c & 0x700 == 0 { d } else { d % 32 };
        let src = if b & 2 == 0 {
            Src::Imm(imm)
        } else {
            Src::Reg(reg(b >> 2))
        };
        let size = [Size::B, Size::H, Size::W, Size::DW][(b >> 4) as usize % 4];
        let off = OFFS[c.unsigned_abs() as usize % OFFS.len()];
        let target = at + 1 + (c.unsigned_abs() as usize % (n - at));
        match k % 12 {
            0 | 1 => {
                let ops = [
                    AluOp::Mov,
                    AluOp::Add,
                    AluOp::Sub,
                    AluOp::And,
                    AluOp::Or,
                    AluOp::Lsh,
                    AluOp::Rsh,
                    AluOp::Mul,
                    AluOp::Div,
                    AluOp::Mod,
                    AluOp::Xor,
                    AluOp::Arsh,
                ];
                (
                    Insn::Alu {
                        width,
                        op: ops[(d as u32 % 12) as usize],
                        dst,
                        src,
                    },
                    None,
                )
            }
            2 => (
                Insn::Load {
                    size,
                    dst,
                    src: reg(b >> 2),
                    off,
                },
                None,
            ),
            3 => (
                Insn::Store {
                    size,
                    dst: reg(a),
                    off,
                    src,
                },
                None,
            ),
            4 | 5 => {
                let conds = [
                    JmpCond::Eq,
                    JmpCond::Ne,
                    JmpCond::Gt,
                    JmpCond::Ge,
                    JmpCond::Lt,
                    JmpCond::Le,
                    JmpCond::Sgt,
                    JmpCond::Sge,
                    JmpCond::Slt,
                    JmpCond::Sle,
                    JmpCond::Set,
                ];
                (
                    Insn::Jmp {
                        width,
                        cond: conds[(d as u32 % 11) as usize],
                        dst,
                        src,
                        off: 0,
                    },
                    Some(target),
                )
            }
            6 => (Insn::Ja { off: 0 }, Some(target)),
            7 => (
                Insn::Call(Call::Helper(HELPERS[(d as u32 % 12) as usize])),
                None,
            ),
            8 => (Insn::Call(Call::Local(-1)), None),
            9 => (
                Insn::LdImm64 {
                    dst,
                    value: LdImm64::Imm(i64::from(d)),
                },
                None,
            ),
            10 => (
                Insn::MovSx {
                    width: Width::W64,
                    from: opsplit::insn::NarrowSize::B,
                    dst,
                    src: reg(b),
                },
                None,
            ),
            _ => (Insn::EXIT, None),
        }
    }

    fn build(spec: &[(u8, u8, u8, i16, i32)]) -> Vec<SlotInsn> {
        let n = spec.len();
        let raw: Vec<(Insn, Option<usize>)> = spec
            .iter()
            .enumerate()
            .map(|(i, &(k, a, b, c, d))| insn(k, a, b, c, d, n, i))
            .chain(std::iter::once((Insn::EXIT, None)))
            .collect();
        let mut slots = Vec::new();
        let mut slot = 0;
        for (i, _) in &raw {
            slots.push(slot);
            slot += i.slots();
        }
        raw.iter()
            .enumerate()
            .map(|(k, (i, t))| {
                let mut insn = *i;
                if let Some(t) = t {
                    let rel = (slots[*t] as i64 - slots[k] as i64 - 1) as i16;
                    match &mut insn {
                        Insn::Jmp { off, .. } | Insn::Ja { off } => *off = rel,
                        _ => {}
                    }
                }
                SlotInsn {
                    slot: slots[k],
                    insn,
                }
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256)
        ))]

        /// Random programs (two functions, calls and callbacks between them, global or static)
        /// are analysed without a panic, and every op reaches the entry instruction.
        #[test]
        fn random_programs_do_not_panic(
            a in proptest::collection::vec(any::<(u8, u8, u8, i16, i32)>(), 1..48),
            b in proptest::collection::vec(any::<(u8, u8, u8, i16, i32)>(), 1..24),
            global in any::<bool>(),
        ) {
            let (ia, ib) = (build(&a), build(&b));
            let mut f0 = Func::new("prog", ia.clone()).expect("jumps are in range");
            let mut f1 = Func::new("sub", ib.clone()).expect("jumps are in range");
            f1.global = global;
            for si in &ia {
                match si.insn {
                    Insn::Call(Call::Local(_)) => { f0.refs.insert(si.slot, Ref::Call(1)); }
                    Insn::LdImm64 { .. } if si.slot % 3 == 0 => { f0.refs.insert(si.slot, Ref::FuncAddr(1)); }
                    _ => {}
                }
            }
            // `sub` calls nothing (no recursion): its local calls stay unresolved.
            let m = Module { funcs: vec![f0, f1], maps: vec![] };
            let p = analyze_program(&m, 0, &Env::default()).expect("analysis");
            prop_assert!(p.reach[0][0].len() == 256);
        }
    }
}

/// `v = <value>; *(map value) = v` after a lookup: what is stored decides whether an op
/// behaves on its own.
fn store_into_map(compute: Vec<A>) -> ProgramFacts {
    let mut items = vec![
        movr(R7, R1),
        mov(R2, 0),
        store(Size::W, FP, -4, R2),
        I(Insn::LdImm64 {
            dst: R1,
            value: LdImm64::Imm(0),
        }),
        movr(R2, FP),
        alu(Width::W64, AluOp::Add, R2, Src::Imm(-4)),
        call(1),
        jeq(R0, 0, "out"),
        movr(R6, R0),
        ld_op_from(R2, R7),
    ];
    items.extend(compute);
    items.extend(vec![
        store(Size::W, R6, 0, R3),
        L("out"),
        mov(R0, 1),
        exit(),
    ]);
    let mut prog = func("prog", items);
    prog.refs.insert(3, Ref::Map(0));
    let maps = vec![MapInfo {
        name: "m".into(),
        map_type: 2,
        programs: vec![],
    }];
    analyze(vec![prog], maps)
}

#[test]
fn storing_the_op_itself_is_the_same_behaviour_for_every_op() {
    let p = store_into_map(vec![movr(R3, R2)]);
    assert!(p.own_behaviour.is_empty(), "{:?}", p.own_behaviour);
}

#[test]
fn storing_an_op_test_gives_that_op_its_own_behaviour() {
    // r3 = op == 5
    let p = store_into_map(vec![
        mov(R3, 0),
        J(Width::W32, JmpCond::Ne, R2, Src::Imm(5), "store"),
        mov(R3, 1),
        L("store"),
    ]);
    assert_eq!(p.own_behaviour, [5]);
}
