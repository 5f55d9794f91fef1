//! Random programs over the whole ISA, with map handles, stack and map-value pointers in random
//! registers and helpers called on whatever the registers hold, on a raw context and on sock_ops
//! contexts with the verifier's context rules: loading either succeeds or is an error, running
//! either returns or faults. Nothing may panic.

use opsplit::insn::{
    AluOp, AtomicOp, ByteOrder, Call, Insn, JmpCond, LdImm64, NarrowSize, Reg, Size, Src, SwapBits,
    Width,
};
use opsplit::runtime::sockops::{HookCall, Skb, SockCommon, SockExtra, Socket, TcpFields};
use opsplit::runtime::{
    Config, Machine, MapInit, Module, ModuleFunction, ModuleMap, ModuleProgram, Target,
    assign_slots,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

const ALU: [AluOp; 14] = [
    AluOp::Add,
    AluOp::Sub,
    AluOp::Mul,
    AluOp::Div,
    AluOp::SDiv,
    AluOp::Or,
    AluOp::And,
    AluOp::Lsh,
    AluOp::Rsh,
    AluOp::Mod,
    AluOp::SMod,
    AluOp::Xor,
    AluOp::Mov,
    AluOp::Arsh,
];
const ATOMIC: [AtomicOp; 10] = [
    AtomicOp::Add,
    AtomicOp::Or,
    AtomicOp::And,
    AtomicOp::Xor,
    AtomicOp::FetchAdd,
    AtomicOp::FetchOr,
    AtomicOp::FetchAnd,
    AtomicOp::FetchXor,
    AtomicOp::Xchg,
    AtomicOp::CmpXchg,
];
const SIZES: [Size; 4] = [Size::B, Size::H, Size::W, Size::DW];
const NARROW: [NarrowSize; 3] = [NarrowSize::B, NarrowSize::H, NarrowSize::W];
/// Generic helpers plus ids the runtime does not have (load errors) and tail_call.
const HELPERS: [i32; 16] = [
    1, 2, 3, 5, 6, 7, 8, 12, 25, 118, 130, 131, 132, 133, 181, 49,
];

/// Any register as a source or base.
fn reg(n: u8) -> Reg {
    Reg::new(n % 11).expect("r0..r10")
}

/// A register that may be written (the loader refuses writes to r10).
fn wreg(n: u8) -> Reg {
    Reg::new(n % 10).expect("r0..r9")
}

type Raw = (u8, u8, u8, i32, u16);

/// One instruction, and a relocation for `ld_imm64` forms that name a map or function.
/// `at` is the instruction's index and `len` the body length, so jumps stay inside.
fn insn((k, a, b, imm, c): Raw, at: usize, len: usize) -> (Insn, Option<Target>) {
    // Backward or forward, landing inside [0, len] (len is the final exit).
    let jump = (imm.rem_euclid(len as i32 + 1) - at as i32 - 1) as i16;
    let width = if c & 1 == 0 { Width::W64 } else { Width::W32 };
    let src = if c & 2 == 0 {
        Src::Imm(imm)
    } else {
        Src::Reg(reg(b))
    };
    let off = (imm % 600) as i16;
    let size = SIZES[usize::from(c >> 2) % 4];
    let i = match k % 20 {
        0..=3 => Insn::Alu {
            width,
            op: ALU[usize::from(c >> 2) % ALU.len()],
            dst: wreg(a),
            src,
        },
        4 => Insn::Neg {
            width,
            dst: wreg(a),
        },
        5 => Insn::MovSx {
            width: Width::W64,
            from: NARROW[usize::from(c >> 2) % 3],
            dst: wreg(a),
            src: reg(b),
        },
        6 => Insn::End {
            order: [ByteOrder::Le, ByteOrder::Be, ByteOrder::Swap][usize::from(c >> 2) % 3],
            bits: [SwapBits::B16, SwapBits::B32, SwapBits::B64][usize::from(c >> 4) % 3],
            dst: wreg(a),
        },
        7 => {
            let t = match c % 4 {
                0 => Some(Target::Map(usize::from(b) % 3)),
                1 => Some(Target::GlobalData {
                    map: 3,
                    offset: imm.rem_euclid(16) as u32,
                }),
                2 => Some(Target::FuncAddr(0)),
                _ => None,
            };
            return (
                Insn::LdImm64 {
                    dst: wreg(a),
                    value: LdImm64::Imm(i64::from(imm) << (c % 40)),
                },
                t,
            );
        }
        8 | 9 => Insn::Load {
            size,
            dst: wreg(a),
            src: reg(b),
            off,
        },
        10 => Insn::LoadSx {
            size: NARROW[usize::from(c >> 2) % 3],
            dst: wreg(a),
            src: reg(b),
            off,
        },
        11 | 12 => Insn::Store {
            size,
            dst: reg(a),
            off,
            src,
        },
        13 => Insn::Atomic {
            width,
            op: ATOMIC[usize::from(c >> 2) % ATOMIC.len()],
            dst: reg(a),
            src: reg(b),
            off,
        },
        14 => Insn::LdInd {
            size: NARROW[usize::from(c >> 2) % 3],
            src: reg(b),
            imm,
        },
        15 | 16 => Insn::Jmp {
            width,
            cond: [
                JmpCond::Eq,
                JmpCond::Ne,
                JmpCond::Sgt,
                JmpCond::Lt,
                JmpCond::Set,
            ][usize::from(c >> 2) % 5],
            dst: wreg(a),
            src,
            off: jump,
        },
        17 => match c % 3 {
            0 => Insn::Ja { off: jump },
            1 => Insn::MayGoto { off: jump },
            _ => Insn::Gotol { off: jump.into() },
        },
        18 => Insn::Call(Call::Helper(HELPERS[usize::from(c) % HELPERS.len()])),
        _ => Insn::EXIT,
    };
    (i, None)
}

fn maps() -> Vec<ModuleMap> {
    let def = |name: &str, map_type, key, value, max, init| ModuleMap {
        name: name.into(),
        map_type,
        key_size: key,
        value_size: value,
        max_entries: max,
        map_flags: 0,
        read_only: false,
        init,
    };
    vec![
        def("hash", 1, 4, 8, 4, MapInit::Empty),
        def("rb", 27, 0, 0, 4096, MapInit::Empty),
        def("jmp", 3, 4, 4, 2, MapInit::Programs(vec![(0, 0)])),
        def(".data", 2, 4, 16, 1, MapInit::Data(vec![1; 16])),
    ]
}

/// A hook call whose op, lock state, socket kind and packet come from `seed`.
fn hook(seed: u64) -> HookCall {
    let common = SockCommon {
        family: if seed & 1 == 0 { 2 } else { 10 },
        remote_port: seed as u16,
        state: (seed >> 8) as u8,
        ..SockCommon::default()
    };
    HookCall {
        op: (seed >> 16) as u32 % 21,
        args: [seed as u32, (seed >> 32) as u32, 0, 1],
        socket: if seed & 2 == 0 {
            Socket::Full {
                common,
                tcp: TcpFields {
                    cb_flags: (seed >> 24) as u8,
                    sk_txhash: (seed >> 40) as u32,
                    ..TcpFields::default()
                },
                extra: SockExtra::default(),
            }
        } else {
            Socket::Request { common }
        },
        locked: seed & 4 == 0,
        skb: (seed & 8 == 0).then(|| Skb {
            window: vec![0x45; (seed >> 48) as usize % 61],
            len: (seed >> 48) as u32,
            tcp_flags: 0x12,
            hwtstamp: seed,
        }),
    }
}

proptest! {
    #[test]
    fn random_programs_never_panic(
        body in prop::collection::vec(any::<Raw>(), 1..64),
        args in any::<[u64; 5]>(),
    ) {
        let mut insns = Vec::new();
        let mut targets = Vec::new();
        let len = body.len();
        for (at, raw) in body.into_iter().enumerate() {
            let (i, t) = insn(raw, at, len);
            insns.push(i);
            targets.push(t);
        }
        insns.push(Insn::EXIT);
        targets.push(None);
        let slots = assign_slots(&insns);
        let relocations = slots
            .iter()
            .zip(targets)
            .filter_map(|(si, t)| t.map(|t| (si.slot, t)))
            .collect();
        let module = Module {
            functions: vec![ModuleFunction {
                name: "p".into(),
                section: "text".into(),
                insns: slots,
                relocations,
                lines: Vec::new(),
            }],
            maps: maps(),
            programs: vec![ModuleProgram { name: "p".into(), function: 0 }],
        };
        let config = Config { insn_budget: 20_000, ..Config::default() };
        if let Ok(mut m) = Machine::new(module, config) {
            let ctx = m.alloc(opsplit::runtime::RegionKind::Ctx, vec![0; 64], true);
            let _ = m.run_program(0, [ctx, args[1], args[2], args[3], args[4]]);
            let _ = m.run_program(0, args);
            // Again on a sock_ops context, with the verifier's context rules on.
            let call = hook(args[0]);
            let c = m.sock_ops_context(&call);
            let _ = m.run_program(0, [c.ctx, args[1], args[2], args[3], args[4]]);
            m.release_sock_ops_context(c);
            prop_assert!(m.stats.runs == 3);
        }
    }
}

#[test]
fn most_random_programs_load() {
    // The generator must exercise the interpreter, not just the loader's refusals.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop::collection::vec(any::<Raw>(), 1..64);
    let (mut loaded, total) = (0, 200);
    for _ in 0..total {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        let len = body.len();
        let insns: Vec<Insn> = body
            .into_iter()
            .enumerate()
            .map(|(at, raw)| insn(raw, at, len).0)
            .chain([Insn::EXIT])
            .collect();
        if Machine::new(Module::single("p", &insns), Config::default()).is_ok() {
            loaded += 1;
        }
    }
    assert!(loaded * 4 > total, "only {loaded} of {total} loaded");
}
