//! Differential test: random atomic-free programs (ALU/ALU64 with both operand forms, byte swaps,
//! JMP/JMP32 conditional forward jumps, stack stores and loads of every size) must leave the same
//! registers on this runtime and on rbpf 0.4's interpreter.
//!
//! Left out where rbpf departs from the kernel (each covered by `runtime_interp` instead):
//! * a 32-bit modulo by a zero register: rbpf keeps the upper half, the kernel clears it;
//! * negative immediates of 64-bit unsigned compares (`jeq/jne/jgt/jge/jlt/jle`): rbpf
//!   zero-extends them, the kernel sign-extends (`(u64)IMM` of the `s32` field);
//! * `neg` (rbpf overflows on `i64::MIN`).

use opsplit::insn::{
    AluOp, ByteOrder, Insn, JmpCond, LdImm64, Reg, Size, Src, SwapBits, Width, encode,
};
use opsplit::runtime::{Config, Machine, Module, assign_slots};
use proptest::prelude::*;

const ALU_OPS: [AluOp; 11] = [
    AluOp::Add,
    AluOp::Sub,
    AluOp::Mul,
    AluOp::Or,
    AluOp::And,
    AluOp::Xor,
    AluOp::Lsh,
    AluOp::Rsh,
    AluOp::Arsh,
    AluOp::Mov,
    AluOp::Div,
];
const CONDS: [JmpCond; 11] = [
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
const SIZES: [Size; 4] = [Size::B, Size::H, Size::W, Size::DW];

fn reg(n: u8) -> Reg {
    Reg::new(n % 10).expect("r0..r9")
}

/// One instruction from a random tuple; `left` = instructions before the epilogue (jump room).
fn insn((kind, a, b, imm, c): (u8, u8, u8, i32, u8), left: usize) -> Insn {
    let width = if c & 1 == 0 { Width::W64 } else { Width::W32 };
    let src = if c & 2 == 0 {
        Src::Imm(imm)
    } else {
        Src::Reg(reg(b))
    };
    match kind % 8 {
        0..=2 => {
            let op = ALU_OPS[usize::from(c >> 2) % ALU_OPS.len()];
            let src = match (op, src) {
                // Division by a register is fine (0 gives 0 in both); by an immediate 0 the
                // kernel refuses to load.
                (AluOp::Div, Src::Imm(0)) => Src::Imm(7),
                (_, s) => s,
            };
            Insn::Alu {
                width,
                op,
                dst: reg(a),
                src,
            }
        }
        3 => Insn::Alu {
            width,
            op: AluOp::Mod,
            dst: reg(a),
            // See the module comment: only immediates, never 0.
            src: Src::Imm(if imm == 0 { 3 } else { imm }),
        },
        4 => Insn::End {
            order: if c & 4 == 0 {
                ByteOrder::Le
            } else {
                ByteOrder::Be
            },
            bits: [SwapBits::B16, SwapBits::B32, SwapBits::B64][usize::from(b) % 3],
            dst: reg(a),
        },
        5 => {
            let cond = CONDS[usize::from(c >> 2) % CONDS.len()];
            let unsigned = matches!(
                cond,
                JmpCond::Eq | JmpCond::Ne | JmpCond::Gt | JmpCond::Ge | JmpCond::Lt | JmpCond::Le
            );
            let src = match src {
                Src::Imm(i) if width == Width::W64 && unsigned => Src::Imm(i & i32::MAX),
                s => s,
            };
            Insn::Jmp {
                width,
                cond,
                dst: reg(a),
                src,
                off: (imm.unsigned_abs() as usize % (left + 1)) as i16,
            }
        }
        6 => {
            let size = SIZES[usize::from(b) % 4];
            let slot = -8 * (1 + i16::from(c % 8));
            Insn::Store {
                size,
                dst: Reg::R10,
                off: slot + (imm.rem_euclid(8) as i16 / size.bytes() as i16) * size.bytes() as i16,
                src: if c & 64 == 0 {
                    Src::Reg(reg(a))
                } else {
                    Src::Imm(imm)
                },
            }
        }
        _ => {
            let size = SIZES[usize::from(b) % 4];
            let slot = -8 * (1 + i16::from(c % 8));
            Insn::Load {
                size,
                dst: reg(a),
                src: Reg::R10,
                off: slot + (imm.rem_euclid(8) as i16 / size.bytes() as i16) * size.bytes() as i16,
            }
        }
    }
}

fn program(init: &[i64; 10], body: &[(u8, u8, u8, i32, u8)]) -> Vec<Insn> {
    let mut p: Vec<Insn> = (0..10)
        .map(|i| Insn::LdImm64 {
            dst: reg(i as u8),
            value: LdImm64::Imm(init[i]),
        })
        .collect();
    for (i, t) in body.iter().enumerate() {
        p.push(insn(*t, body.len() - i - 1));
    }
    // r0 = fold of every register, rotating so that swapped registers still differ.
    for r in 1..10u8 {
        p.push(Insn::Alu {
            width: Width::W64,
            op: AluOp::Mul,
            dst: Reg::R0,
            src: Src::Imm(31),
        });
        p.push(Insn::Alu {
            width: Width::W64,
            op: AluOp::Xor,
            dst: Reg::R0,
            src: Src::Reg(reg(r)),
        });
    }
    p.push(Insn::EXIT);
    p
}

proptest! {
    #[test]
    fn same_result_as_rbpf(
        init in any::<[i64; 10]>(),
        body in prop::collection::vec(any::<(u8, u8, u8, i32, u8)>(), 1..48),
    ) {
        let insns = program(&init, &body);
        let mut m = Machine::new(Module::single("p", &insns), Config::default()).unwrap();
        let ours = m.run("p", 0).unwrap();
        let bytes = encode(assign_slots(&insns));
        let vm = rbpf::EbpfVmNoData::new(Some(&bytes)).unwrap();
        let theirs = vm.execute_program().unwrap();
        prop_assert_eq!(ours, theirs, "program: {:#?}", insns);
    }
}
