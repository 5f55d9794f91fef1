//! The interpreter on hand-assembled programs: every instruction class with values worked out by
//! hand, BPF-to-BPF calls, tail calls, callbacks, and faults located by slot.

use opsplit::insn::{
    AluOp, AtomicOp, ByteOrder, Call, Insn, JmpCond, LdImm64, NarrowSize, Reg, Size, Src, SwapBits,
    Width,
};
use opsplit::runtime::helpers::ringbuf_stale_bytes;
use opsplit::runtime::memory::AccessFault;
use opsplit::runtime::{
    Config, FaultKind, Machine, MapInit, Module, ModuleFunction, ModuleMap, ModuleProgram, Record,
    RegionKind, Target, assign_slots,
};

fn r(n: u8) -> Reg {
    Reg::new(n).unwrap()
}
fn alu(width: Width, op: AluOp, d: u8, src: Src) -> Insn {
    Insn::Alu {
        width,
        op,
        dst: r(d),
        src,
    }
}
fn a64(op: AluOp, d: u8, k: i32) -> Insn {
    alu(Width::W64, op, d, Src::Imm(k))
}
fn x64(op: AluOp, d: u8, s: u8) -> Insn {
    alu(Width::W64, op, d, Src::Reg(r(s)))
}
fn a32(op: AluOp, d: u8, k: i32) -> Insn {
    alu(Width::W32, op, d, Src::Imm(k))
}
fn x32(op: AluOp, d: u8, s: u8) -> Insn {
    alu(Width::W32, op, d, Src::Reg(r(s)))
}
fn mov(d: u8, k: i32) -> Insn {
    a64(AluOp::Mov, d, k)
}
fn ld64(d: u8, v: i64) -> Insn {
    Insn::LdImm64 {
        dst: r(d),
        value: LdImm64::Imm(v),
    }
}
fn ldx(size: Size, d: u8, s: u8, off: i16) -> Insn {
    Insn::Load {
        size,
        dst: r(d),
        src: r(s),
        off,
    }
}
fn stx(size: Size, d: u8, off: i16, s: u8) -> Insn {
    Insn::Store {
        size,
        dst: r(d),
        off,
        src: Src::Reg(r(s)),
    }
}
fn jmp(width: Width, cond: JmpCond, d: u8, src: Src, off: i16) -> Insn {
    Insn::Jmp {
        width,
        cond,
        dst: r(d),
        src,
        off,
    }
}
fn call_helper(id: i32) -> Insn {
    Insn::Call(Call::Helper(id))
}
const EXIT: Insn = Insn::EXIT;

/// Runs a single-function program and returns r0.
fn run(insns: &[Insn]) -> u64 {
    let mut m = Machine::new(Module::single("p", insns), Config::default()).unwrap();
    m.run("p", 0).unwrap()
}

fn fault(insns: &[Insn]) -> opsplit::runtime::Fault {
    let mut m = Machine::new(Module::single("p", insns), Config::default()).unwrap();
    m.run("p", 0).unwrap_err()
}

#[test]
fn alu64_arithmetic_and_signed_division() {
    // -7 / 2 truncates toward zero: -3; -7 % 2 keeps the dividend's sign: -1.
    assert_eq!(run(&[mov(0, -7), a64(AluOp::SDiv, 0, 2), EXIT]) as i64, -3);
    assert_eq!(run(&[mov(0, -7), a64(AluOp::SMod, 0, 2), EXIT]) as i64, -1);
    // Unsigned division sees -7 as 2^64 - 7.
    assert_eq!(
        run(&[mov(0, -7), a64(AluOp::Div, 0, 2), EXIT]),
        (u64::MAX - 6) / 2
    );
    // INT64_MIN / -1 overflows to INT64_MIN, and INT64_MIN % -1 is 0.
    assert_eq!(
        run(&[ld64(0, i64::MIN), a64(AluOp::SDiv, 0, -1), EXIT]),
        i64::MIN as u64
    );
    assert_eq!(run(&[ld64(0, i64::MIN), a64(AluOp::SMod, 0, -1), EXIT]), 0);
    // 64-bit immediates are sign-extended: 5 + (-1) = 4, 3 * -2 = -6.
    assert_eq!(run(&[mov(0, 5), a64(AluOp::Add, 0, -1), EXIT]), 4);
    assert_eq!(run(&[mov(0, 3), a64(AluOp::Mul, 0, -2), EXIT]) as i64, -6);
    assert_eq!(
        run(&[
            mov(0, 0x0f),
            a64(AluOp::Or, 0, 0x30),
            a64(AluOp::Xor, 0, 0x3),
            EXIT
        ]),
        0x3c
    );
    assert_eq!(run(&[mov(0, -1), a64(AluOp::And, 0, 0x1234), EXIT]), 0x1234);
    // Arithmetic vs logical right shift of -16 by 2.
    assert_eq!(run(&[mov(0, -16), a64(AluOp::Arsh, 0, 2), EXIT]) as i64, -4);
    assert_eq!(
        run(&[mov(0, -16), a64(AluOp::Rsh, 0, 2), EXIT]),
        (-16i64 as u64) >> 2
    );
    // Register shift amounts are masked to 6 bits: 1 << 65 == 1 << 1.
    assert_eq!(
        run(&[mov(0, 1), mov(1, 65), x64(AluOp::Lsh, 0, 1), EXIT]),
        2
    );
    assert_eq!(
        run(&[
            mov(0, 5),
            Insn::Neg {
                width: Width::W64,
                dst: r(0)
            },
            EXIT
        ]) as i64,
        -5
    );
}

#[test]
fn division_by_zero_follows_bpf() {
    // dst / 0 = 0; dst % 0 = dst (64-bit: unchanged).
    assert_eq!(
        run(&[mov(0, 10), mov(1, 0), x64(AluOp::Div, 0, 1), EXIT]),
        0
    );
    assert_eq!(
        run(&[mov(0, 10), mov(1, 0), x64(AluOp::Mod, 0, 1), EXIT]),
        10
    );
    assert_eq!(
        run(&[mov(0, -10), mov(1, 0), x64(AluOp::SDiv, 0, 1), EXIT]),
        0
    );
    assert_eq!(
        run(&[mov(0, -10), mov(1, 0), x64(AluOp::SMod, 0, 1), EXIT]) as i64,
        -10
    );
    // 32-bit: the low half stays, the high half is cleared like any ALU32 result.
    assert_eq!(
        run(&[
            ld64(0, 0x7777_7777_0000_0005),
            mov(1, 0),
            x32(AluOp::Mod, 0, 1),
            EXIT
        ]),
        5
    );
    assert_eq!(
        run(&[
            ld64(0, 0x7777_7777_0000_0005),
            mov(1, 0),
            x32(AluOp::Div, 0, 1),
            EXIT
        ]),
        0
    );
    assert_eq!(
        run(&[
            ld64(0, 0x7777_7777_ffff_fff6),
            mov(1, 0),
            x32(AluOp::SMod, 0, 1),
            EXIT
        ]),
        0xffff_fff6
    );
}

#[test]
fn alu32_wraps_and_zero_extends() {
    // 0xffffffff + 1 wraps to 0 in 32 bits.
    assert_eq!(
        run(&[a32(AluOp::Mov, 0, -1), a32(AluOp::Add, 0, 1), EXIT]),
        0
    );
    // Any 32-bit operation clears the upper half: -1 (64-bit) + 0 (32-bit) = 0xffffffff.
    assert_eq!(run(&[mov(0, -1), a32(AluOp::Add, 0, 0), EXIT]), 0xffff_ffff);
    // mov32 of an immediate does not sign-extend.
    assert_eq!(run(&[a32(AluOp::Mov, 0, -2), EXIT]), 0xffff_fffe);
    // 32-bit arithmetic shift keeps the sign inside 32 bits only.
    assert_eq!(
        run(&[ld64(0, 0x8000_0000), a32(AluOp::Arsh, 0, 4), EXIT]),
        0xf800_0000
    );
    // Shift amounts are masked to 5 bits: 1 << 33 == 1 << 1.
    assert_eq!(
        run(&[mov(0, 1), mov(1, 33), x32(AluOp::Lsh, 0, 1), EXIT]),
        2
    );
    // 32-bit signed division: -8 / 3 = -2, as a zero-extended 32-bit value.
    assert_eq!(
        run(&[a32(AluOp::Mov, 0, -8), a32(AluOp::SDiv, 0, 3), EXIT]),
        (-2i32) as u32 as u64
    );
    assert_eq!(
        run(&[a32(AluOp::Mov, 0, 3), a32(AluOp::Mul, 0, 0x5555_5556), EXIT]),
        3u32.wrapping_mul(0x5555_5556) as u64
    );
    assert_eq!(
        run(&[
            mov(0, 1),
            Insn::Neg {
                width: Width::W32,
                dst: r(0)
            },
            EXIT
        ]),
        0xffff_ffff
    );
    // mov32 reg truncates: w0 = w1 with r1 = -1.
    assert_eq!(run(&[mov(1, -1), x32(AluOp::Mov, 0, 1), EXIT]), 0xffff_ffff);
}

#[test]
fn movsx_and_byte_swaps() {
    let movsx = |width, from| Insn::MovSx {
        width,
        from,
        dst: r(0),
        src: r(1),
    };
    assert_eq!(
        run(&[mov(1, 0x80), movsx(Width::W64, NarrowSize::B), EXIT]),
        0xffff_ffff_ffff_ff80
    );
    assert_eq!(
        run(&[mov(1, 0x8000), movsx(Width::W32, NarrowSize::H), EXIT]),
        0xffff_8000
    );
    assert_eq!(
        run(&[
            ld64(1, 0x1_8000_0000),
            movsx(Width::W64, NarrowSize::W),
            EXIT
        ]),
        0xffff_ffff_8000_0000
    );
    let end = |order, bits| Insn::End {
        order,
        bits,
        dst: r(0),
    };
    let v = 0x1122_3344_5566_7788i64;
    assert_eq!(
        run(&[ld64(0, v), end(ByteOrder::Be, SwapBits::B16), EXIT]),
        0x8877
    );
    assert_eq!(
        run(&[ld64(0, v), end(ByteOrder::Be, SwapBits::B32), EXIT]),
        0x8877_6655
    );
    assert_eq!(
        run(&[ld64(0, v), end(ByteOrder::Swap, SwapBits::B64), EXIT]),
        0x8877_6655_4433_2211
    );
    assert_eq!(
        run(&[ld64(0, v), end(ByteOrder::Le, SwapBits::B16), EXIT]),
        0x7788
    );
    assert_eq!(
        run(&[ld64(0, v), end(ByteOrder::Le, SwapBits::B32), EXIT]),
        0x5566_7788
    );
    assert_eq!(
        run(&[ld64(0, v), end(ByteOrder::Le, SwapBits::B64), EXIT]),
        v as u64
    );
}

#[test]
fn jumps_signed_unsigned_and_32_bit() {
    // r1 = 0xffffffff: negative as w1, positive as r1. r0 = 1 if the jump is taken.
    let taken = |j: Insn| run(&[mov(0, 0), a32(AluOp::Mov, 1, -1), j, EXIT, mov(0, 1), EXIT]);
    assert_eq!(taken(jmp(Width::W32, JmpCond::Slt, 1, Src::Imm(0), 1)), 1);
    assert_eq!(taken(jmp(Width::W64, JmpCond::Slt, 1, Src::Imm(0), 1)), 0);
    assert_eq!(
        taken(jmp(Width::W64, JmpCond::Gt, 1, Src::Imm(0x7fff_ffff), 1)),
        1
    );
    // The immediate -1 is 0xffffffff for JMP32 and 2^64-1 for JMP.
    assert_eq!(taken(jmp(Width::W32, JmpCond::Eq, 1, Src::Imm(-1), 1)), 1);
    assert_eq!(taken(jmp(Width::W64, JmpCond::Eq, 1, Src::Imm(-1), 1)), 0);
    assert_eq!(
        taken(jmp(Width::W64, JmpCond::Set, 1, Src::Imm(0x100), 1)),
        1
    );
    assert_eq!(taken(jmp(Width::W64, JmpCond::Set, 1, Src::Imm(0), 1)), 0);
    assert_eq!(taken(Insn::Gotol { off: 1 }), 1);
    // A counted loop: sum 1..=10 with a backward jump.
    assert_eq!(
        run(&[
            mov(0, 0),
            mov(1, 10),
            x64(AluOp::Add, 0, 1),
            a64(AluOp::Sub, 1, 1),
            jmp(Width::W64, JmpCond::Ne, 1, Src::Imm(0), -3),
            EXIT
        ]),
        55
    );
}

#[test]
fn may_goto_escapes_after_bpf_max_loops() {
    // r0 counts iterations of an otherwise infinite loop.
    let prog = [
        mov(0, 0),
        Insn::MayGoto { off: 2 },
        a64(AluOp::Add, 0, 1),
        Insn::Ja { off: -3 },
        EXIT,
    ];
    let mut m = Machine::new(
        Module::single("p", &prog),
        Config {
            insn_budget: 40_000_000,
            ..Config::default()
        },
    )
    .unwrap();
    assert_eq!(m.run("p", 0).unwrap(), 1 << 23);
}

#[test]
fn stack_loads_stores_and_sign_extension() {
    let prog = [
        ld64(1, 0x8182_8384_8586_8788u64 as i64),
        stx(Size::DW, 10, -8, 1),
        // Little-endian halves.
        ldx(Size::W, 2, 10, -8),
        ldx(Size::W, 3, 10, -4),
        Insn::LoadSx {
            size: NarrowSize::B,
            dst: r(4),
            src: r(10),
            off: -1,
        },
        Insn::Store {
            size: Size::H,
            dst: r(10),
            off: -16,
            src: Src::Imm(-2),
        },
        ldx(Size::DW, 5, 10, -16),
        // r0 = r2 ^ r3 ^ r4 ^ r5
        x64(AluOp::Mov, 0, 2),
        x64(AluOp::Xor, 0, 3),
        x64(AluOp::Xor, 0, 4),
        x64(AluOp::Xor, 0, 5),
        EXIT,
    ];
    let expect = 0x8586_8788u64 ^ 0x8182_8384 ^ 0xffff_ffff_ffff_ff81 ^ 0xfffe;
    assert_eq!(run(&prog), expect);
}

fn atomic(width: Width, op: AtomicOp, s: u8) -> Insn {
    Insn::Atomic {
        width,
        op,
        dst: r(10),
        src: r(s),
        off: -8,
    }
}

#[test]
fn atomics_return_old_values() {
    let setup = [mov(1, 40), stx(Size::DW, 10, -8, 1), mov(2, 2)];
    let with = |tail: &[Insn]| {
        let mut p = setup.to_vec();
        p.extend_from_slice(tail);
        run(&p)
    };
    // fetch_add: r2 = old (40), memory = 42; r0 = r2 * 1000 + mem.
    let fetch_then = |op| {
        with(&[
            atomic(Width::W64, op, 2),
            ldx(Size::DW, 0, 10, -8),
            a64(AluOp::Mul, 2, 1000),
            x64(AluOp::Add, 0, 2),
            EXIT,
        ])
    };
    assert_eq!(fetch_then(AtomicOp::FetchAdd), 40_000 + 42);
    assert_eq!(fetch_then(AtomicOp::FetchOr), 40_000 + 42);
    assert_eq!(fetch_then(AtomicOp::FetchAnd), 40_000);
    assert_eq!(fetch_then(AtomicOp::FetchXor), 40_000 + 42);
    assert_eq!(fetch_then(AtomicOp::Xchg), 40_000 + 2);
    // Non-fetching add leaves r2 alone.
    assert_eq!(fetch_then(AtomicOp::Add), 2000 + 42);
    // cmpxchg: r0 = expected; success stores r2 and returns old in r0.
    let cmpxchg = |expected: i32| {
        with(&[
            mov(0, expected),
            atomic(Width::W64, AtomicOp::CmpXchg, 2),
            ldx(Size::DW, 3, 10, -8),
            a64(AluOp::Mul, 0, 1000),
            x64(AluOp::Add, 0, 3),
            EXIT,
        ])
    };
    assert_eq!(cmpxchg(40), 40_000 + 2);
    assert_eq!(cmpxchg(41), 40_000 + 40);
    // 32-bit atomic add wraps inside the word and leaves the neighbouring word alone.
    let p = [
        ld64(1, 0x0000_0007_ffff_ffff),
        stx(Size::DW, 10, -8, 1),
        mov(2, 1),
        atomic(Width::W32, AtomicOp::FetchAdd, 2),
        ldx(Size::DW, 0, 10, -8),
        x64(AluOp::Add, 0, 2),
        EXIT,
    ];
    assert_eq!(run(&p), 0x0000_0007_0000_0000 + 0xffff_ffff);
    // Load-acquire and store-release are plain accesses here.
    let p = [
        mov(1, 99),
        Insn::StoreRelease {
            size: Size::W,
            dst: r(10),
            src: r(1),
            off: -4,
        },
        Insn::LoadAcquire {
            size: Size::W,
            dst: r(0),
            src: r(10),
            off: -4,
        },
        EXIT,
    ];
    assert_eq!(run(&p), 99);
}

#[test]
fn stack_out_of_bounds_is_a_located_fault() {
    let f = fault(&[mov(0, 0), ldx(Size::DW, 0, 10, -520), EXIT]);
    assert_eq!(
        (f.program.as_str(), f.function.as_str(), f.slot),
        ("p", "p", 1)
    );
    assert!(
        matches!(
            f.kind,
            FaultKind::Memory(AccessFault::OutOfBounds {
                kind: RegionKind::Stack { frame: 0 },
                offset: -8,
                size: 8,
                len: 512
            })
        ),
        "{f}"
    );
    // Reading at r10 itself is past the frame's end.
    let f = fault(&[mov(0, 0), mov(1, 0), ldx(Size::B, 0, 10, 0), EXIT]);
    assert_eq!(f.slot, 2);
    // Stack accesses must be aligned.
    let f = fault(&[ldx(Size::W, 0, 10, -6), EXIT]);
    assert!(matches!(
        f.kind,
        FaultKind::Memory(AccessFault::Misaligned { .. })
    ));
    // A scalar is not a pointer.
    let f = fault(&[mov(1, 0x1000), ldx(Size::W, 0, 1, 0), EXIT]);
    assert!(
        matches!(
            f.kind,
            FaultKind::Memory(AccessFault::NotAPointer { addr: 0x1000 })
        ),
        "{f}"
    );
    assert!(f.to_string().contains("slot 1"), "{f}");
}

#[test]
fn budget_exhaustion_is_reported() {
    let mut m = Machine::new(
        Module::single("spin", &[mov(0, 0), Insn::Ja { off: -1 }, EXIT]),
        Config {
            insn_budget: 1000,
            ..Config::default()
        },
    )
    .unwrap();
    let f = m.run("spin", 0).unwrap_err();
    assert_eq!(f.kind, FaultKind::Budget { budget: 1000 });
    assert_eq!(f.slot, 1);
    assert_eq!(m.stats.last_run_insns, 1000);
}

/// A module of functions, each with its relocations.
/// (name, instructions, relocations by slot)
type FuncSpec<'a> = (&'a str, Vec<Insn>, Vec<(usize, Target)>);

fn module(funcs: Vec<FuncSpec>, maps: Vec<ModuleMap>) -> Module {
    let functions: Vec<ModuleFunction> = funcs
        .into_iter()
        .map(|(name, insns, relocations)| ModuleFunction {
            name: name.to_string(),
            section: "text".into(),
            insns: assign_slots(&insns),
            relocations,
            lines: Vec::new(),
        })
        .collect();
    Module {
        programs: vec![ModuleProgram {
            name: functions[0].name.clone(),
            function: 0,
        }],
        functions,
        maps,
    }
}

const CALL: Insn = Insn::Call(Call::Local(-1));

#[test]
fn bpf_to_bpf_calls_preserve_callee_saved_registers_and_frames() {
    // main: r6 = 7; *(r10-8) = 100; r1 = 5; call double; r0 += r6; r0 += *(r10-8); exit
    // double: r6 = 1000; *(r10-8) = 1; r0 = r1 * 2; exit
    let main = vec![
        mov(6, 7),
        mov(2, 100),
        stx(Size::DW, 10, -8, 2),
        mov(1, 5),
        CALL,
        x64(AluOp::Add, 0, 6),
        ldx(Size::DW, 2, 10, -8),
        x64(AluOp::Add, 0, 2),
        EXIT,
    ];
    let double = vec![
        mov(6, 1000),
        mov(2, 1),
        stx(Size::DW, 10, -8, 2),
        x64(AluOp::Mov, 0, 1),
        a64(AluOp::Mul, 0, 2),
        EXIT,
    ];
    let m = module(
        vec![
            ("main", main, vec![(4, Target::Call(1))]),
            ("double", double, vec![]),
        ],
        vec![],
    );
    let mut m = Machine::new(m, Config::default()).unwrap();
    assert_eq!(m.run("main", 0).unwrap(), 10 + 7 + 100);
}

#[test]
fn call_depth_and_combined_stack_limits() {
    // A function calling itself: the 9th frame is refused at the call.
    let rec = vec![mov(0, 0), CALL, EXIT];
    let m = module(vec![("rec", rec, vec![(1, Target::Call(0))])], vec![]);
    let f = Machine::new(m, Config::default())
        .unwrap()
        .run("rec", 0)
        .unwrap_err();
    assert_eq!(f.kind, FaultKind::CallDepth { frames: 9 });
    assert_eq!((f.function.as_str(), f.slot), ("rec", 1));

    // 320 + 320 bytes of stack over two frames is more than 512.
    let big = |calls: bool| {
        let mut v = vec![mov(1, 0), stx(Size::DW, 10, -320, 1)];
        if calls {
            v.push(CALL);
        }
        v.extend([mov(0, 0), EXIT]);
        v
    };
    let m = module(
        vec![
            ("a", big(true), vec![(2, Target::Call(1))]),
            ("b", big(false), vec![]),
        ],
        vec![],
    );
    let f = Machine::new(m, Config::default())
        .unwrap()
        .run("a", 0)
        .unwrap_err();
    assert_eq!(
        f.kind,
        FaultKind::StackSize {
            frames: 2,
            bytes: 640
        }
    );
    assert_eq!(f.slot, 2);
}

fn map_def(name: &str, map_type: u32, key: u32, value: u32, max: u32, init: MapInit) -> ModuleMap {
    ModuleMap {
        name: name.into(),
        map_type,
        key_size: key,
        value_size: value,
        max_entries: max,
        map_flags: 0,
        read_only: false,
        init,
    }
}

const LD_MAP: Insn = Insn::LdImm64 {
    dst: Reg::R1,
    value: LdImm64::Imm(0),
};

#[test]
fn map_helpers_and_null_value_dereference() {
    // key = 1; update(key, value = 5, NOEXIST) twice; r0 = first * 100 + second ret (low 32).
    let prog = vec![
        mov(1, 1),
        stx(Size::W, 10, -4, 1),
        mov(1, 5),
        stx(Size::DW, 10, -16, 1),
        LD_MAP, // slot 4
        x64(AluOp::Mov, 2, 10),
        a64(AluOp::Add, 2, -4),
        x64(AluOp::Mov, 3, 10),
        a64(AluOp::Add, 3, -16),
        mov(4, 1),
        call_helper(2),
        x64(AluOp::Mov, 6, 0),
        LD_MAP, // slot 13
        x64(AluOp::Mov, 2, 10),
        a64(AluOp::Add, 2, -4),
        x64(AluOp::Mov, 3, 10),
        a64(AluOp::Add, 3, -16),
        mov(4, 1),
        call_helper(2),
        a64(AluOp::Mul, 6, 1000),
        x64(AluOp::Add, 0, 6),
        EXIT,
    ];
    let m = module(
        vec![("p", prog, vec![(4, Target::Map(0)), (13, Target::Map(0))])],
        vec![map_def("h", 1, 4, 8, 4, MapInit::Empty)],
    );
    let mut m = Machine::new(m, Config::default()).unwrap();
    // First update returns 0, second -EEXIST (-17).
    assert_eq!(m.run("p", 0).unwrap() as i64, -17);
    let h = m.map_index("h").unwrap();
    assert_eq!(
        m.maps[h].entries(&m.memory),
        vec![(1u32.to_le_bytes().to_vec(), 5u64.to_le_bytes().to_vec())]
    );

    // Lookup of a missing key returns NULL; dereferencing it faults at that slot.
    let prog = vec![
        mov(1, 9),
        stx(Size::W, 10, -4, 1),
        LD_MAP, // slot 2
        x64(AluOp::Mov, 2, 10),
        a64(AluOp::Add, 2, -4),
        call_helper(1),
        ldx(Size::DW, 0, 0, 0), // slot 7
        EXIT,
    ];
    let m = module(
        vec![("p", prog.clone(), vec![(2, Target::Map(0))])],
        vec![map_def("h", 1, 4, 8, 4, MapInit::Empty)],
    );
    let f = Machine::new(m, Config::default())
        .unwrap()
        .run("p", 0)
        .unwrap_err();
    assert_eq!(f.slot, 7);
    assert_eq!(
        f.kind,
        FaultKind::Memory(AccessFault::NotAPointer { addr: 0 })
    );
    assert!(f.to_string().contains("NULL pointer dereference"), "{f}");

    // An array value is exactly value_size bytes: reading past it faults.
    let mut past = prog;
    past[0] = mov(1, 2);
    past[6] = ldx(Size::DW, 0, 0, 8);
    let m = module(
        vec![("p", past, vec![(2, Target::Map(0))])],
        vec![map_def("a", 2, 4, 8, 4, MapInit::Empty)],
    );
    let f = Machine::new(m, Config::default())
        .unwrap()
        .run("p", 0)
        .unwrap_err();
    assert!(
        matches!(
            f.kind,
            FaultKind::Memory(AccessFault::OutOfBounds {
                kind: RegionKind::MapValue { map: 0 },
                offset: 8,
                ..
            })
        ),
        "{f}"
    );
}

#[test]
fn global_data_is_addressed_and_rodata_is_read_only() {
    // r1 = &data[4]; r0 = *(u32 *)r1; *(u32 *)(r1 - 4) = r0 + 1
    let prog = vec![
        LD_MAP,
        ldx(Size::W, 0, 1, 0),
        mov(2, 0),
        x64(AluOp::Mov, 2, 0),
        a64(AluOp::Add, 2, 1),
        stx(Size::W, 1, -4, 2),
        EXIT,
    ];
    let data = |ro| ModuleMap {
        read_only: ro,
        ..map_def(
            ".data",
            2,
            4,
            8,
            1,
            MapInit::Data(vec![0, 0, 0, 0, 41, 0, 0, 0]),
        )
    };
    let m = module(
        vec![(
            "p",
            prog.clone(),
            vec![(0, Target::GlobalData { map: 0, offset: 4 })],
        )],
        vec![data(false)],
    );
    let mut m = Machine::new(m, Config::default()).unwrap();
    assert_eq!(m.run("p", 0).unwrap(), 41);
    let d = m.map_index(".data").unwrap();
    assert_eq!(
        m.maps[d].entries(&m.memory)[0].1,
        vec![42, 0, 0, 0, 41, 0, 0, 0]
    );

    let m = module(
        vec![(
            "p",
            prog,
            vec![(0, Target::GlobalData { map: 0, offset: 4 })],
        )],
        vec![data(true)],
    );
    let f = Machine::new(m, Config::default())
        .unwrap()
        .run("p", 0)
        .unwrap_err();
    assert_eq!(f.slot, 6);
    assert!(
        matches!(f.kind, FaultKind::Memory(AccessFault::ReadOnly { .. })),
        "{f}"
    );
}

#[test]
fn tail_calls_stop_after_33() {
    // Each run of `p` bumps counter[0] and tail-calls itself through slot 0.
    let prog = vec![
        x64(AluOp::Mov, 6, 1),
        LD_MAP, // slot 1: counter value
        ldx(Size::DW, 0, 1, 0),
        a64(AluOp::Add, 0, 1),
        stx(Size::DW, 1, 0, 0),
        x64(AluOp::Mov, 1, 6),
        Insn::LdImm64 {
            dst: Reg::R2,
            value: LdImm64::Imm(0),
        }, // slot 7: prog array
        mov(3, 0),
        call_helper(12),
        // Reached once the limit stops the chain.
        mov(0, 1),
        EXIT,
    ];
    let m = module(
        vec![(
            "p",
            prog,
            vec![
                (1, Target::GlobalData { map: 0, offset: 0 }),
                (7, Target::Map(1)),
            ],
        )],
        vec![
            map_def(".bss", 2, 4, 8, 1, MapInit::Data(vec![0; 8])),
            map_def("jmp", 3, 4, 4, 2, MapInit::Programs(vec![(0, 0)])),
        ],
    );
    let mut m = Machine::new(m, Config::default()).unwrap();
    assert_eq!(m.run("p", 0).unwrap(), 1);
    // The first run plus 33 tail calls.
    assert_eq!(
        m.maps[0].entries(&m.memory)[0].1,
        34u64.to_le_bytes().to_vec()
    );
    // An empty slot falls through without running anything.
    m.set_prog_array_slot(1, 0, None).unwrap();
    assert_eq!(m.run("p", 0).unwrap(), 1);
    assert_eq!(
        m.maps[0].entries(&m.memory)[0].1,
        35u64.to_le_bytes().to_vec()
    );
}

#[test]
fn bpf_loop_runs_callbacks_in_their_own_frame() {
    // main: *(u64 *)(r10-8) = 0; bpf_loop(10, cb, r10-8, 0); r0 = *(r10-8)
    // cb(i, ctx): *ctx += i; return i == 6 (stop after the 7th call)
    let main = vec![
        mov(1, 0),
        stx(Size::DW, 10, -8, 1),
        mov(1, 10),
        Insn::LdImm64 {
            dst: Reg::R2,
            value: LdImm64::Imm(0),
        }, // slot 3
        x64(AluOp::Mov, 3, 10),
        a64(AluOp::Add, 3, -8),
        mov(4, 0),
        call_helper(181),
        x64(AluOp::Mov, 6, 0),
        ldx(Size::DW, 0, 10, -8),
        a64(AluOp::Mul, 6, 1000),
        x64(AluOp::Add, 0, 6),
        EXIT,
    ];
    let cb = vec![
        ldx(Size::DW, 3, 2, 0),
        x64(AluOp::Add, 3, 1),
        stx(Size::DW, 2, 0, 3),
        mov(0, 0),
        jmp(Width::W64, JmpCond::Ne, 1, Src::Imm(6), 1),
        mov(0, 1),
        EXIT,
    ];
    let m = module(
        vec![
            ("main", main, vec![(3, Target::FuncAddr(1))]),
            ("cb", cb, vec![]),
        ],
        vec![],
    );
    let mut m = Machine::new(m, Config::default()).unwrap();
    // 7 calls, sum 0..=6 = 21.
    assert_eq!(m.run("main", 0).unwrap(), 7 * 1000 + 21);
}

#[test]
fn bpf_loop_counts_past_u32_depend_on_inlining() {
    // bpf_loop(2^32 + 2, cb, 0, flags) with cb returning 0. Flags a known 0 (`r4 = 0`): the
    // verifier inlines the loop, which compares the whole count: -E2BIG. Flags loaded from
    // memory (0 at run time, unknown to the verifier): the helper runs and takes the count as
    // u32, 2 calls. Found by tests/kernel_probe_generic.rs on 6.18.
    let prog = |flags: Insn| {
        vec![
            Insn::LdImm64 {
                dst: Reg::R1,
                value: LdImm64::Imm((1 << 32) + 2),
            },
            Insn::LdImm64 {
                dst: Reg::R2,
                value: LdImm64::Imm(0),
            }, // slot 2
            mov(3, 0),
            mov(5, 0),
            stx(Size::DW, 10, -8, 5),
            flags,
            call_helper(181),
            EXIT,
        ]
    };
    let cb = vec![mov(0, 0), EXIT];
    let run = |flags: Insn| {
        let m = module(
            vec![
                ("main", prog(flags), vec![(2, Target::FuncAddr(1))]),
                ("cb", cb.clone(), vec![]),
            ],
            vec![],
        );
        Machine::new(m, Config::default())
            .unwrap()
            .run("main", 0)
            .unwrap()
    };
    assert_eq!(run(mov(4, 0)) as i64, -7, "inlined: -E2BIG");
    assert_eq!(run(ldx(Size::DW, 4, 10, -8)), 2, "helper: u32 count");
}

#[test]
fn trace_printk_formats_and_records() {
    // "x=%d u=%u %05x|%-3c|\n\0" on the stack, args -3, -1, 0xab, 'z'
    let fmt = b"x=%d u=%u %05x|\0\0\0\0\0\0\0\0\0";
    let mut prog = Vec::new();
    for (i, chunk) in fmt.chunks(8).enumerate() {
        let v = i64::from_le_bytes(chunk.try_into().unwrap());
        prog.push(ld64(1, v));
        prog.push(stx(Size::DW, 10, -24 + 8 * i as i16, 1));
    }
    prog.extend([
        x64(AluOp::Mov, 1, 10),
        a64(AluOp::Add, 1, -24),
        mov(2, 17),
        mov(3, -3),
        mov(4, -1),
        mov(5, 0xab),
        call_helper(6),
        EXIT,
    ]);
    let mut m = Machine::new(Module::single("p", &prog), Config::default()).unwrap();
    let text = "x=-3 u=4294967295 000ab|";
    assert_eq!(m.run("p", 0).unwrap(), text.len() as u64);
    assert_eq!(m.records, vec![Record::TracePrintk { text: text.into() }]);
}

#[test]
fn virtual_clock_and_seeded_random_are_deterministic() {
    let prog = [
        call_helper(7),
        x64(AluOp::Mov, 6, 0),
        call_helper(7),
        a64(AluOp::Lsh, 0, 32),
        x64(AluOp::Or, 0, 6),
        EXIT,
    ];
    let mut a = Machine::new(Module::single("p", &prog), Config::default()).unwrap();
    let mut b = Machine::new(Module::single("p", &prog), Config::default()).unwrap();
    let x = a.run("p", 0).unwrap();
    assert_eq!(x, b.run("p", 0).unwrap());
    assert_ne!(x >> 32, x & 0xffff_ffff, "two draws differ");
    let mut c = Machine::new(
        Module::single("p", &prog),
        Config {
            seed: 1,
            ..Config::default()
        },
    )
    .unwrap();
    assert_ne!(x, c.run("p", 0).unwrap());

    // jiffies at 4 s of virtual time with HZ=250: INITIAL_JIFFIES + 1000.
    let mut m = Machine::new(
        Module::single("j", &[call_helper(118), EXIT]),
        Config::default(),
    )
    .unwrap();
    m.now_ns = 4_000_000_000;
    assert_eq!(
        m.run("j", 0).unwrap(),
        ((-300i64 * 250) as u32 as u64) + 1000
    );
    let mut m = Machine::new(
        Module::single("t", &[call_helper(5), EXIT]),
        Config::default(),
    )
    .unwrap();
    m.now_ns = 123;
    assert_eq!(m.run("t", 0).unwrap(), 123);
}

#[test]
fn load_errors_name_function_slot_and_map() {
    let e = Machine::new(
        Module::single("p", &[call_helper(49), EXIT]),
        Config::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("slot 0") && e.contains("bpf_setsockopt"), "{e}");
    let e = Machine::new(Module::single("p", &[mov(0, 0)]), Config::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("fall off"), "{e}");
    let e = Machine::new(
        Module::single("p", &[Insn::Ja { off: 5 }, EXIT]),
        Config::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("jump to slot 6"), "{e}");
    let m = module(
        vec![("p", vec![mov(0, 0), EXIT], vec![])],
        vec![map_def("stacky", 23, 0, 4, 4, MapInit::Empty)],
    );
    let e = Machine::new(m, Config::default()).unwrap_err().to_string();
    assert!(
        e.contains("map `stacky`") && e.contains("map type stack (23)"),
        "{e}"
    );
}

const RINGBUF: u32 = 27;

#[test]
fn ringbuf_reserve_submit_discard_and_output_account_for_space() {
    // r6 = reserve(rb, 16, 0); if !r6 return 0; *(u64 *)r6 = 7; submit(r6);
    // r6 = reserve(rb, 8, 0); discard(r6); r0 = output(rb, r10-8, 8, 0)
    let ld_rb = |d: Reg| Insn::LdImm64 {
        dst: d,
        value: LdImm64::Imm(0),
    };
    let prog = vec![
        ld_rb(Reg::R1), // slot 0
        mov(2, 16),
        mov(3, 0),
        call_helper(131),
        x64(AluOp::Mov, 6, 0),
        jmp(Width::W64, JmpCond::Ne, 6, Src::Imm(0), 1),
        EXIT,
        mov(1, 7),
        stx(Size::DW, 6, 0, 1),
        x64(AluOp::Mov, 1, 6),
        mov(2, 0),
        call_helper(132),
        ld_rb(Reg::R1), // slot 13
        mov(2, 8),
        mov(3, 0),
        call_helper(131),
        x64(AluOp::Mov, 1, 0),
        mov(2, 0),
        call_helper(133),
        mov(1, 0x55),
        stx(Size::DW, 10, -8, 1),
        ld_rb(Reg::R1), // slot 23
        x64(AluOp::Mov, 2, 10),
        a64(AluOp::Add, 2, -8),
        mov(3, 8),
        mov(4, 0),
        call_helper(130),
        EXIT,
    ];
    let m = module(
        vec![(
            "p",
            prog,
            vec![
                (0, Target::Map(0)),
                (13, Target::Map(0)),
                (23, Target::Map(0)),
            ],
        )],
        vec![map_def("rb", RINGBUF, 0, 0, 4096, MapInit::Empty)],
    );
    let mut m = Machine::new(m, Config::default()).unwrap();
    assert_eq!(m.run("p", 0).unwrap(), 0);
    assert_eq!(
        m.records,
        vec![
            Record::Ringbuf {
                map: 0,
                // The second word was never written: it keeps what the ring held.
                data: [&7u64.to_le_bytes()[..], &ringbuf_stale_bytes(16)[8..]].concat()
            },
            Record::Ringbuf {
                map: 0,
                data: 0x55u64.to_le_bytes().to_vec()
            },
        ]
    );
    // Each run takes 24 + 16 + 16 bytes of the 4096 (a discarded record keeps its space until
    // a consumer reads past it, as in the kernel): 73 runs fit (4088 bytes), then the first
    // reservation fails and the program returns 0 early.
    for _ in 0..72 {
        m.run("p", 0).unwrap();
    }
    assert_eq!(m.records.len(), 146);
    assert_eq!(m.run("p", 0).unwrap(), 0);
    assert_eq!(m.records.len(), 146, "no room: reserve returned NULL");
    m.consume_ringbuf(0);
    m.run("p", 0).unwrap();
    assert_eq!(m.records.len(), 148);
}

#[test]
fn ringbuf_reservations_hold_stale_bytes_not_zeroes() {
    // The kernel never clears a reservation: every byte of the pattern differs from 0 and from
    // its neighbours, so a field left unwritten cannot pass for a zeroed one.
    let stale = ringbuf_stale_bytes(64);
    assert!(stale.iter().all(|&b| b != 0));
    assert!(stale.windows(2).all(|w| w[0] != w[1]));
    assert_eq!(ringbuf_stale_bytes(8), stale[..8], "the same on every run");
}

#[test]
fn perf_event_output_checks_the_cpu_index() {
    // r0 = perf_event_output(ctx, map, flags, r10-8, 8)
    let prog = |flags: i64| {
        vec![
            mov(1, 0x66),
            stx(Size::DW, 10, -8, 1),
            mov(1, 0),
            Insn::LdImm64 {
                dst: Reg::R2,
                value: LdImm64::Imm(0),
            }, // slot 3
            ld64(3, flags),
            x64(AluOp::Mov, 4, 10),
            a64(AluOp::Add, 4, -8),
            mov(5, 8),
            call_helper(25),
            EXIT,
        ]
    };
    let run_with = |flags: i64| {
        let m = module(
            vec![("p", prog(flags), vec![(3, Target::Map(0))])],
            vec![map_def("events", 4, 4, 4, 2, MapInit::Empty)],
        );
        let mut m = Machine::new(m, Config::default()).unwrap();
        let r = m.run("p", 0).unwrap() as i64;
        (r, m.records)
    };
    let (r, rec) = run_with(0xffff_ffff); // BPF_F_CURRENT_CPU
    assert_eq!(r, 0);
    assert_eq!(
        rec,
        vec![Record::PerfEvent {
            map: 0,
            cpu: 0,
            // 8 bytes + the 4-byte size, padded to 16: 4 zero bytes follow.
            data: [&0x66u64.to_le_bytes()[..], &[0; 4]].concat()
        }]
    );
    assert_eq!(run_with(1).0, 0);
    assert_eq!(run_with(2).0, -7, "index past max_entries: -E2BIG");
    assert_eq!(run_with(1 << 32).0, -22, "unknown flag bits: -EINVAL");
}

#[test]
fn a_fault_inside_a_callback_names_the_callback() {
    // main calls bpf_loop(1, cb, 0, 0); cb dereferences its NULL ctx at slot 1.
    let main = vec![
        mov(1, 1),
        Insn::LdImm64 {
            dst: Reg::R2,
            value: LdImm64::Imm(0),
        },
        mov(3, 0),
        mov(4, 0),
        call_helper(181),
        EXIT,
    ];
    let cb = vec![mov(0, 0), ldx(Size::W, 0, 2, 0), EXIT];
    let m = module(
        vec![
            ("main", main, vec![(1, Target::FuncAddr(1))]),
            ("cb", cb, vec![]),
        ],
        vec![],
    );
    let mut m = Machine::new(m, Config::default()).unwrap();
    let f = m.run("main", 0).unwrap_err();
    assert_eq!(
        (f.program.as_str(), f.function.as_str(), f.slot),
        ("main", "cb", 1)
    );
    // The machine is usable again after a fault.
    let f2 = m.run("main", 0).unwrap_err();
    assert_eq!(f, f2);
}

#[test]
fn tail_call_from_a_subprogram_needs_a_small_stack_below_it() {
    // main uses 320 bytes and calls sub, which contains a tail call: refused (>= 256 below it).
    let main = vec![mov(1, 0), stx(Size::DW, 10, -320, 1), CALL, EXIT];
    let sub = vec![
        Insn::LdImm64 {
            dst: Reg::R2,
            value: LdImm64::Imm(0),
        },
        mov(3, 0),
        call_helper(12),
        mov(0, 3),
        EXIT,
    ];
    let build = |depth: i16| {
        let mut main = main.clone();
        main[1] = stx(Size::DW, 10, depth, 1);
        module(
            vec![
                ("main", main, vec![(2, Target::Call(1))]),
                ("sub", sub.clone(), vec![(0, Target::Map(0))]),
            ],
            vec![map_def("jmp", 3, 4, 4, 1, MapInit::Empty)],
        )
    };
    let f = Machine::new(build(-320), Config::default())
        .unwrap()
        .run("main", 0)
        .unwrap_err();
    assert_eq!(f.kind, FaultKind::TailCallStack { bytes: 320 });
    assert_eq!((f.function.as_str(), f.slot), ("main", 2));
    // With 64 bytes below, the (empty-slot) tail call falls through and sub returns 3.
    let mut m = Machine::new(build(-64), Config::default()).unwrap();
    assert_eq!(m.run("main", 0).unwrap(), 3);
}

#[test]
fn legacy_packet_loads_read_network_order_and_end_the_program_out_of_bounds() {
    let prog = |off: i32| {
        vec![
            mov(0, 99),
            Insn::LdAbs {
                size: NarrowSize::H,
                imm: off,
            },
            a64(AluOp::Add, 0, 1),
            EXIT,
        ]
    };
    let mut m = Machine::new(Module::single("p", &prog(2)), Config::default()).unwrap();
    m.packet = Some(m.alloc(RegionKind::Packet, vec![0x11, 0x22, 0x33, 0x44], false));
    assert_eq!(m.run("p", 0).unwrap(), 0x3344 + 1);
    let mut m = Machine::new(Module::single("p", &prog(3)), Config::default()).unwrap();
    m.packet = Some(m.alloc(RegionKind::Packet, vec![0x11, 0x22, 0x33, 0x44], false));
    assert_eq!(
        m.run("p", 0).unwrap(),
        0,
        "out of bounds: the program returns 0"
    );
}

#[test]
fn coverage_lists_executed_slots_across_functions() {
    // main: r1 = 5; call f; if r0 == 10 goto +1; r0 = 0 (skipped); exit.  f: r0 = r1 * 2; exit
    let main = vec![
        ld64(1, 5),
        CALL,
        jmp(Width::W64, JmpCond::Eq, 0, Src::Imm(10), 1),
        mov(0, 0),
        EXIT,
    ];
    let f = vec![x64(AluOp::Mov, 0, 1), a64(AluOp::Mul, 0, 2), EXIT];
    let m = module(
        vec![("main", main, vec![(2, Target::Call(1))]), ("f", f, vec![])],
        vec![],
    );
    let mut m = Machine::new(m, Config::default()).unwrap();
    assert_eq!(m.coverage(), vec![], "off by default");
    m.set_coverage(true);
    assert_eq!(m.run("main", 0).unwrap(), 10);
    // ld_imm64 takes slots 0-1; the skipped `r0 = 0` is slot 4.
    assert_eq!(
        m.coverage(),
        vec![(0, 0), (0, 2), (0, 3), (0, 5), (1, 0), (1, 1), (1, 2)]
    );
    m.set_coverage(false);
    assert_eq!(m.coverage(), vec![]);
}

#[test]
fn hostile_helper_arguments_are_errors_not_crashes() {
    // ringbuf_reserve of 2^64 - 4 bytes: NULL, not an overflow.
    let prog = vec![
        Insn::LdImm64 {
            dst: Reg::R1,
            value: LdImm64::Imm(0),
        },
        mov(2, -4),
        mov(3, 0),
        call_helper(131),
        EXIT,
    ];
    let m = module(
        vec![("p", prog, vec![(0, Target::Map(0))])],
        vec![map_def("rb", RINGBUF, 0, 0, 4096, MapInit::Empty)],
    );
    assert_eq!(
        Machine::new(m, Config::default())
            .unwrap()
            .run("p", 0)
            .unwrap(),
        0
    );
    // trace_printk with a huge fmt_size: a located memory fault.
    let f = fault(&[
        x64(AluOp::Mov, 1, 10),
        a64(AluOp::Add, 1, -8),
        mov(2, -1),
        call_helper(6),
        EXIT,
    ]);
    assert_eq!(f.slot, 3);
    assert!(
        matches!(f.kind, FaultKind::Memory(AccessFault::OutOfBounds { .. })),
        "{f}"
    );
    // A field width with many digits is clamped, not overflowed: "%99999999999999999999d\0".
    let fmt = b"%99999999999999999999d\0\0";
    let mut prog = Vec::new();
    for (i, chunk) in fmt.chunks(8).enumerate() {
        prog.push(ld64(1, i64::from_le_bytes(chunk.try_into().unwrap())));
        prog.push(stx(Size::DW, 10, -24 + 8 * i as i16, 1));
    }
    prog.extend([
        x64(AluOp::Mov, 1, 10),
        a64(AluOp::Add, 1, -24),
        mov(2, 23),
        mov(3, 7),
        call_helper(6),
        EXIT,
    ]);
    let mut m = Machine::new(Module::single("p", &prog), Config::default()).unwrap();
    assert_eq!(m.run("p", 0).unwrap(), 4096);
}

#[test]
fn call_traces_show_pointers_by_region_and_offset() {
    use opsplit::runtime::CallArg;
    // *(u32 *)(r10-4) = 1; *(u64 *)(r10-16) = 5; update(h, r10-4, r10-16, BPF_ANY); ktime; exit
    let prog = vec![
        mov(1, 1),
        stx(Size::W, 10, -4, 1),
        mov(1, 5),
        stx(Size::DW, 10, -16, 1),
        LD_MAP, // slot 4
        x64(AluOp::Mov, 2, 10),
        a64(AluOp::Add, 2, -4),
        x64(AluOp::Mov, 3, 10),
        a64(AluOp::Add, 3, -16),
        mov(4, 0),
        call_helper(2),
        call_helper(5),
        EXIT,
    ];
    let m = module(
        vec![("p", prog, vec![(4, Target::Map(0))])],
        vec![map_def("h", 1, 4, 8, 4, MapInit::Empty)],
    );
    let mut m = Machine::new(m, Config::default()).unwrap();
    m.run("p", 0).unwrap();
    assert!(m.records.is_empty(), "tracing is off by default");
    m.trace_calls = true;
    m.now_ns = 42;
    assert_eq!(m.run("p", 0).unwrap(), 42);
    let stack = |offset| CallArg::Pointer {
        kind: RegionKind::Stack { frame: 0 },
        offset,
    };
    // Call sites are located; the values are compared without them.
    for r in &mut m.records {
        if let Record::Call { at, .. } = r {
            let site = at.take().expect("traced calls are located");
            assert_eq!(site.program, "p");
        }
    }
    assert_eq!(
        m.records,
        vec![
            Record::Call {
                name: "bpf_map_update_elem".into(),
                args: vec![
                    CallArg::Pointer {
                        kind: RegionKind::MapObject { map: 0 },
                        offset: 0
                    },
                    stack(508),
                    stack(496),
                    CallArg::Scalar(0),
                ],
                ret: CallArg::Scalar(0),
                at: None,
                // The key and the value, as the helper read them.
                inputs: vec![(2, vec![1, 0, 0, 0]), (3, vec![5, 0, 0, 0, 0, 0, 0, 0])],
            },
            Record::Call {
                name: "bpf_ktime_get_ns".into(),
                args: vec![],
                ret: CallArg::Scalar(42),
                at: None,
                inputs: vec![],
            },
        ]
    );
}

#[test]
fn map_in_map_lookup_yields_the_inner_map() {
    // key = r6; inner = lookup(outer, &key); if !inner return 99; v = lookup(inner, &zero);
    // return v ? *v : 98
    let prog = |key: i32| {
        vec![
            mov(1, key),
            stx(Size::W, 10, -4, 1),
            mov(1, 0),
            stx(Size::W, 10, -8, 1),
            LD_MAP, // slot 4: outer
            x64(AluOp::Mov, 2, 10),
            a64(AluOp::Add, 2, -4),
            call_helper(1),
            mov(6, 99),
            jmp(Width::W64, JmpCond::Eq, 0, Src::Imm(0), 8),
            x64(AluOp::Mov, 1, 0),
            x64(AluOp::Mov, 2, 10),
            a64(AluOp::Add, 2, -8),
            call_helper(1),
            mov(6, 98),
            jmp(Width::W64, JmpCond::Eq, 0, Src::Imm(0), 2),
            ldx(Size::DW, 6, 0, 0),
            Insn::Ja { off: 0 },
            x64(AluOp::Mov, 0, 6),
            EXIT,
        ]
    };
    for (outer_type, key, want) in [(12, 0, 1234), (12, 1, 99), (13, 0, 1234), (13, 5, 99)] {
        let m = module(
            vec![("p", prog(key), vec![(4, Target::Map(0))])],
            vec![
                map_def("outer", outer_type, 4, 4, 2, MapInit::Maps(vec![(0, 1)])),
                map_def("inner", 2, 4, 8, 1, MapInit::Empty),
            ],
        );
        let mut m = Machine::new(m, Config::default()).unwrap();
        let inner = m.map_index("inner").unwrap();
        m.maps[inner]
            .update(
                &mut m.memory,
                &0u32.to_le_bytes(),
                &1234u64.to_le_bytes(),
                0,
            )
            .unwrap();
        assert_eq!(m.run("p", 0).unwrap(), want, "type {outer_type}, key {key}");
    }
}
