//! Typed instructions to bytes: the exact inverse of decoding.

use super::RawInsn;
use super::opcode::*;
use super::types::*;

fn raw(code: u8, dst: Reg, src: u8, off: i16, imm: i32) -> RawInsn {
    RawInsn {
        code,
        dst: dst.index(),
        src,
        off,
        imm,
    }
}

fn alu_class(w: Width) -> u8 {
    match w {
        Width::W32 => BPF_ALU,
        Width::W64 => BPF_ALU64,
    }
}

fn jmp_class(w: Width) -> u8 {
    match w {
        Width::W32 => BPF_JMP32,
        Width::W64 => BPF_JMP,
    }
}

fn size_bits(s: Size) -> u8 {
    match s {
        Size::B => BPF_B,
        Size::H => BPF_H,
        Size::W => BPF_W,
        Size::DW => BPF_DW,
    }
}

/// `(code | source bit, src field, imm)` of a register-or-immediate operand.
fn operand(s: Src) -> (u8, u8, i32) {
    match s {
        Src::Reg(r) => (BPF_X, r.index(), 0),
        Src::Imm(i) => (BPF_K, 0, i),
    }
}

impl Insn {
    /// Number of 8-byte slots the instruction occupies.
    pub const fn slots(&self) -> usize {
        match self {
            Insn::LdImm64 { .. } => 2,
            _ => 1,
        }
    }

    /// The raw slots: the first, and the second for `ld_imm64`.
    ///
    /// Every value `decode` produces encodes back to the bytes it came from. A hand-built value
    /// outside the kernel's ISA (only `MovSx` of width 32 from `NarrowSize::W`) is encoded
    /// field by field all the same, and will not decode.
    pub fn to_raw(&self) -> (RawInsn, Option<RawInsn>) {
        let r0 = Reg::R0;
        let one = match *self {
            Insn::Alu {
                width,
                op,
                dst,
                src,
            } => {
                let (bits, off) = match op {
                    AluOp::Add => (BPF_ADD, 0),
                    AluOp::Sub => (BPF_SUB, 0),
                    AluOp::Mul => (BPF_MUL, 0),
                    AluOp::Div => (BPF_DIV, 0),
                    AluOp::SDiv => (BPF_DIV, 1),
                    AluOp::Or => (BPF_OR, 0),
                    AluOp::And => (BPF_AND, 0),
                    AluOp::Lsh => (BPF_LSH, 0),
                    AluOp::Rsh => (BPF_RSH, 0),
                    AluOp::Mod => (BPF_MOD, 0),
                    AluOp::SMod => (BPF_MOD, 1),
                    AluOp::Xor => (BPF_XOR, 0),
                    AluOp::Mov => (BPF_MOV, 0),
                    AluOp::Arsh => (BPF_ARSH, 0),
                };
                let (x, s, imm) = operand(src);
                raw(alu_class(width) | bits | x, dst, s, off, imm)
            }
            Insn::Neg { width, dst } => raw(alu_class(width) | BPF_NEG, dst, 0, 0, 0),
            Insn::MovSx {
                width,
                from,
                dst,
                src,
            } => raw(
                alu_class(width) | BPF_MOV | BPF_X,
                dst,
                src.index(),
                from.bits() as i16,
                0,
            ),
            Insn::End { order, bits, dst } => {
                let code = match order {
                    ByteOrder::Le => BPF_ALU | BPF_END | BPF_TO_LE,
                    ByteOrder::Be => BPF_ALU | BPF_END | BPF_TO_BE,
                    ByteOrder::Swap => BPF_ALU64 | BPF_END | BPF_TO_LE,
                };
                raw(code, dst, 0, 0, bits.bits() as i32)
            }
            Insn::AddrSpaceCast {
                dst,
                src,
                dst_as,
                src_as,
            } => raw(
                BPF_ALU64 | BPF_MOV | BPF_X,
                dst,
                src.index(),
                BPF_ADDR_SPACE_CAST,
                ((dst_as as u32) << 16 | src_as as u32) as i32,
            ),
            Insn::LdImm64 { dst, value } => {
                let (src, lo, hi) = match value {
                    LdImm64::Imm(v) => (0, v as i32, (v >> 32) as i32),
                    LdImm64::MapFd(fd) => (BPF_PSEUDO_MAP_FD, fd, 0),
                    LdImm64::MapValue { fd, off } => (BPF_PSEUDO_MAP_VALUE, fd, off as i32),
                    LdImm64::BtfId { btf_id, btf_fd } => (BPF_PSEUDO_BTF_ID, btf_id, btf_fd),
                    LdImm64::Func { offset, next_imm } => (BPF_PSEUDO_FUNC, offset, next_imm),
                    LdImm64::MapIdx(idx) => (BPF_PSEUDO_MAP_IDX, idx, 0),
                    LdImm64::MapIdxValue { idx, off } => {
                        (BPF_PSEUDO_MAP_IDX_VALUE, idx, off as i32)
                    }
                };
                return (raw(LD_IMM64, dst, src, 0, lo), Some(raw(0, r0, 0, 0, hi)));
            }
            Insn::Load {
                size,
                dst,
                src,
                off,
            } => raw(
                BPF_LDX | BPF_MEM | size_bits(size),
                dst,
                src.index(),
                off,
                0,
            ),
            Insn::LoadSx {
                size,
                dst,
                src,
                off,
            } => raw(
                BPF_LDX | BPF_MEMSX | size_bits(size.size()),
                dst,
                src.index(),
                off,
                0,
            ),
            Insn::Store {
                size,
                dst,
                off,
                src,
            } => match src {
                Src::Reg(s) => raw(BPF_STX | BPF_MEM | size_bits(size), dst, s.index(), off, 0),
                Src::Imm(i) => raw(BPF_ST | BPF_MEM | size_bits(size), dst, 0, off, i),
            },
            Insn::Atomic {
                width,
                op,
                dst,
                src,
                off,
            } => {
                let size = match width {
                    Width::W32 => BPF_W,
                    Width::W64 => BPF_DW,
                };
                let imm = match op {
                    AtomicOp::Add => BPF_ADD as i32,
                    AtomicOp::Or => BPF_OR as i32,
                    AtomicOp::And => BPF_AND as i32,
                    AtomicOp::Xor => BPF_XOR as i32,
                    AtomicOp::FetchAdd => BPF_ADD as i32 | BPF_FETCH,
                    AtomicOp::FetchOr => BPF_OR as i32 | BPF_FETCH,
                    AtomicOp::FetchAnd => BPF_AND as i32 | BPF_FETCH,
                    AtomicOp::FetchXor => BPF_XOR as i32 | BPF_FETCH,
                    AtomicOp::Xchg => BPF_XCHG,
                    AtomicOp::CmpXchg => BPF_CMPXCHG,
                };
                raw(BPF_STX | BPF_ATOMIC | size, dst, src.index(), off, imm)
            }
            Insn::LoadAcquire {
                size,
                dst,
                src,
                off,
            } => raw(
                BPF_STX | BPF_ATOMIC | size_bits(size),
                dst,
                src.index(),
                off,
                BPF_LOAD_ACQ,
            ),
            Insn::StoreRelease {
                size,
                dst,
                src,
                off,
            } => raw(
                BPF_STX | BPF_ATOMIC | size_bits(size),
                dst,
                src.index(),
                off,
                BPF_STORE_REL,
            ),
            Insn::LdAbs { size, imm } => {
                raw(BPF_LD | BPF_ABS | size_bits(size.size()), r0, 0, 0, imm)
            }
            Insn::LdInd { size, src, imm } => raw(
                BPF_LD | BPF_IND | size_bits(size.size()),
                r0,
                src.index(),
                0,
                imm,
            ),
            Insn::Ja { off } => raw(BPF_JMP | BPF_JA, r0, 0, off, 0),
            Insn::Gotol { off } => raw(BPF_JMP32 | BPF_JA, r0, 0, 0, off),
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                off,
            } => {
                let bits = match cond {
                    JmpCond::Eq => BPF_JEQ,
                    JmpCond::Ne => BPF_JNE,
                    JmpCond::Gt => BPF_JGT,
                    JmpCond::Ge => BPF_JGE,
                    JmpCond::Lt => BPF_JLT,
                    JmpCond::Le => BPF_JLE,
                    JmpCond::Sgt => BPF_JSGT,
                    JmpCond::Sge => BPF_JSGE,
                    JmpCond::Slt => BPF_JSLT,
                    JmpCond::Sle => BPF_JSLE,
                    JmpCond::Set => BPF_JSET,
                };
                let (x, s, imm) = operand(src);
                raw(jmp_class(width) | bits | x, dst, s, off, imm)
            }
            Insn::MayGoto { off } => raw(BPF_JMP | BPF_JCOND, r0, BPF_MAY_GOTO, off, 0),
            Insn::Call(c) => {
                let (src, off, imm) = match c {
                    Call::Helper(id) => (0, 0, id),
                    Call::Local(rel) => (BPF_PSEUDO_CALL, 0, rel),
                    Call::Kfunc { btf_id, off } => (BPF_PSEUDO_KFUNC_CALL, off, btf_id),
                };
                raw(BPF_JMP | BPF_CALL, r0, src, off, imm)
            }
            Insn::Exit { off } => raw(BPF_JMP | BPF_EXIT, r0, 0, off, 0),
        };
        (one, None)
    }

    /// Appends the instruction's bytes.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let (a, b) = self.to_raw();
        out.extend_from_slice(&a.to_le_bytes());
        if let Some(b) = b {
            out.extend_from_slice(&b.to_le_bytes());
        }
    }
}

/// Encodes a sequence of instructions (plain `Insn`s or decoded `SlotInsn`s) into section bytes.
pub fn encode<T: AsRef<Insn>>(insns: impl IntoIterator<Item = T>) -> Vec<u8> {
    let it = insns.into_iter();
    let mut out = Vec::with_capacity(it.size_hint().0 * RawInsn::SIZE);
    for i in it {
        i.as_ref().encode_into(&mut out);
    }
    out
}
