//! Bytes to typed instructions.
//!
//! Acceptance follows the kernel's load-time checks (`check_and_resolve_insns`: register range,
//! `ld_imm64` shape, `bpf_opcode_in_insntable`, `check_insn_fields`) plus the `imm` of atomics
//! (`check_atomic`), so that everything the kernel can load decodes and everything that
//! decodes re-encodes to the same bytes. Value checks the verifier does later (division by a
//! zero immediate, shift ranges, the two arena address spaces `addr_space_cast` may name) are
//! semantic, not encoding, and are left to it.

use std::fmt;

use thiserror::Error;

use super::RawInsn;
use super::opcode::*;
use super::types::*;

/// Which field of an instruction an error is about.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Field {
    Dst,
    Src,
    Off,
    Imm,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Dst => "dst register",
            Field::Src => "src register",
            Field::Off => "off",
            Field::Imm => "imm",
        })
    }
}

/// Why a slot does not decode.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Error)]
pub enum DecodeErrorKind {
    #[error("unknown opcode {0:#04x}")]
    UnknownOpcode(u8),
    #[error("gotox (indirect jump through a jump table) is not supported")]
    Gotox,
    #[error("invalid {field} r{reg} (only r0 to r10 exist)")]
    InvalidRegister { field: Field, reg: u8 },
    /// A field the kernel requires to hold particular values holds another.
    #[error("{insn}: {field} is {value}, expected {expected}")]
    BadField {
        insn: &'static str,
        field: Field,
        value: i64,
        expected: &'static str,
    },
    #[error("unknown atomic operation imm {0:#x}")]
    UnknownAtomicOp(i32),
    #[error("atomic read-modify-write needs a W or DW operand, not {0:?}")]
    NarrowAtomic(Size),
    #[error("unknown ld_imm64 pseudo source {0}")]
    UnknownLdImm64Src(u8),
    #[error("ld_imm64 is missing its second half: the section ends after its first slot")]
    LdImm64Truncated,
    #[error(
        "ld_imm64 is missing its second half: the next slot ({}) must have code, registers and \
         off all zero",
        hex_bytes(.0)
    )]
    LdImm64BadSecondHalf([u8; 8]),
    #[error("the section ends with a partial slot of {0} bytes (slots are 8 bytes)")]
    Truncated(usize),
}

/// A slot that does not decode, with its index and bytes (for `Truncated`, only the first
/// `n` bytes are real).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Error)]
pub struct DecodeError {
    pub slot: usize,
    pub bytes: [u8; 8],
    pub kind: DecodeErrorKind,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = match self.kind {
            DecodeErrorKind::Truncated(n) => n.min(8),
            _ => 8,
        };
        write!(
            f,
            "instruction {} ({}): {}",
            self.slot,
            hex_bytes(&self.bytes[..len]),
            self.kind
        )
    }
}

fn hex_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// Decodes a whole program section. Instructions come with the slot they start at.
pub fn decode(bytes: &[u8]) -> Result<Vec<SlotInsn>, DecodeError> {
    let mut out = Vec::with_capacity(bytes.len() / RawInsn::SIZE);
    let mut slot = 0;
    while let Some(rest) = bytes.get(slot * RawInsn::SIZE..).filter(|r| !r.is_empty()) {
        let insn = decode_one(rest, slot)?;
        out.push(SlotInsn { slot, insn });
        slot += insn.slots();
    }
    Ok(out)
}

/// Streaming decoder over a section's bytes; stops after the first error.
#[derive(Clone, Debug)]
pub struct Decoder<'a> {
    bytes: &'a [u8],
    slot: usize,
    failed: bool,
}

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Decoder {
            bytes,
            slot: 0,
            failed: false,
        }
    }
}

impl Iterator for Decoder<'_> {
    type Item = Result<SlotInsn, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let at = self.slot * RawInsn::SIZE;
        let rest = self.bytes.get(at..)?;
        if rest.is_empty() {
            return None;
        }
        match decode_one(rest, self.slot) {
            Ok(insn) => {
                let slot = self.slot;
                self.slot += insn.slots();
                Some(Ok(SlotInsn { slot, insn }))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.bytes.len() / RawInsn::SIZE).saturating_sub(self.slot);
        (0, Some(left + 1))
    }
}

/// Decodes the instruction at the start of `bytes` (which may extend past it); `slot` is only
/// used for error reports.
pub fn decode_one(bytes: &[u8], slot: usize) -> Result<Insn, DecodeError> {
    let Some(first) = bytes.first_chunk::<8>() else {
        let mut b = [0u8; 8];
        b[..bytes.len()].copy_from_slice(bytes);
        return Err(DecodeError {
            slot,
            bytes: b,
            kind: DecodeErrorKind::Truncated(bytes.len()),
        });
    };
    let next = bytes.get(8..).and_then(|b| b.first_chunk::<8>());
    let raw = RawInsn::from_le_bytes(*first);
    let next = next.map(|b| RawInsn::from_le_bytes(*b));
    decode_raw(raw, next).map_err(|kind| DecodeError {
        slot,
        bytes: *first,
        kind,
    })
}

type Res<T> = Result<T, DecodeErrorKind>;

#[inline]
fn reg(field: Field, n: u8) -> Res<Reg> {
    Reg::new(n).ok_or(DecodeErrorKind::InvalidRegister { field, reg: n })
}

#[inline]
fn zero(insn: &'static str, field: Field, value: i64) -> Res<()> {
    if value == 0 {
        Ok(())
    } else {
        Err(DecodeErrorKind::BadField {
            insn,
            field,
            value,
            expected: "0",
        })
    }
}

fn width(class: u8) -> Width {
    if class == BPF_ALU64 || class == BPF_JMP {
        Width::W64
    } else {
        Width::W32
    }
}

fn mem_size(code: u8) -> Size {
    match size(code) {
        BPF_B => Size::B,
        BPF_H => Size::H,
        BPF_W => Size::W,
        _ => Size::DW,
    }
}

fn narrow_size(code: u8) -> Option<NarrowSize> {
    match size(code) {
        BPF_B => Some(NarrowSize::B),
        BPF_H => Some(NarrowSize::H),
        BPF_W => Some(NarrowSize::W),
        _ => None,
    }
}

/// Decodes one instruction from its first slot and, for `ld_imm64`, the slot after it.
pub fn decode_raw(r: RawInsn, next: Option<RawInsn>) -> Result<Insn, DecodeErrorKind> {
    use DecodeErrorKind as E;
    let code = r.code;
    if code == BPF_JMP | BPF_JA | BPF_X {
        return Err(E::Gotox);
    }
    if code == LD_IMM64 {
        return decode_ld_imm64(r, next);
    }
    let dst = reg(Field::Dst, r.dst)?;
    let src_reg = reg(Field::Src, r.src)?;
    let (off, imm) = (r.off, r.imm);
    let unknown = Err(E::UnknownOpcode(code));
    match class(code) {
        BPF_ALU | BPF_ALU64 => decode_alu(r, dst, src_reg),
        BPF_JMP | BPF_JMP32 => decode_jmp(r, dst, src_reg),
        BPF_LDX => {
            let m = mode(code);
            if m != BPF_MEM && m != BPF_MEMSX {
                return unknown;
            }
            zero("load", Field::Imm, imm.into())?;
            if m == BPF_MEM {
                Ok(Insn::Load {
                    size: mem_size(code),
                    dst,
                    src: src_reg,
                    off,
                })
            } else {
                let Some(size) = narrow_size(code) else {
                    return unknown;
                };
                Ok(Insn::LoadSx {
                    size,
                    dst,
                    src: src_reg,
                    off,
                })
            }
        }
        BPF_ST => {
            if mode(code) != BPF_MEM {
                return unknown;
            }
            zero("store of an immediate", Field::Src, r.src.into())?;
            Ok(Insn::Store {
                size: mem_size(code),
                dst,
                off,
                src: Src::Imm(imm),
            })
        }
        BPF_STX => match mode(code) {
            BPF_MEM => {
                zero("store of a register", Field::Imm, imm.into())?;
                Ok(Insn::Store {
                    size: mem_size(code),
                    dst,
                    off,
                    src: Src::Reg(src_reg),
                })
            }
            BPF_ATOMIC => decode_atomic(r, dst, src_reg),
            _ => unknown,
        },
        _ => {
            // BPF_LD: the only modes left are the legacy packet loads.
            let m = mode(code);
            let Some(size) = narrow_size(code) else {
                return unknown;
            };
            if m != BPF_ABS && m != BPF_IND {
                return unknown;
            }
            let what = if m == BPF_ABS { "ld_abs" } else { "ld_ind" };
            zero(what, Field::Dst, r.dst.into())?;
            zero(what, Field::Off, off.into())?;
            if m == BPF_ABS {
                zero(what, Field::Src, r.src.into())?;
                Ok(Insn::LdAbs { size, imm })
            } else {
                Ok(Insn::LdInd {
                    size,
                    src: src_reg,
                    imm,
                })
            }
        }
    }
}

fn decode_ld_imm64(r: RawInsn, next: Option<RawInsn>) -> Res<Insn> {
    use DecodeErrorKind as E;
    let Some(n) = next else {
        return Err(E::LdImm64Truncated);
    };
    if n.code != 0 || n.dst != 0 || n.src != 0 || n.off != 0 {
        return Err(E::LdImm64BadSecondHalf(n.to_le_bytes()));
    }
    let dst = reg(Field::Dst, r.dst)?;
    zero("ld_imm64", Field::Off, r.off.into())?;
    let (lo, hi) = (r.imm, n.imm);
    let map_fd_like = |what| -> Res<()> {
        if hi == 0 {
            Ok(())
        } else {
            Err(E::BadField {
                insn: what,
                field: Field::Imm,
                value: hi.into(),
                expected: "0 in the second slot",
            })
        }
    };
    let value = match r.src {
        0 => LdImm64::Imm(((hi as u32 as u64) << 32 | lo as u32 as u64) as i64),
        BPF_PSEUDO_MAP_FD => {
            map_fd_like("ld_imm64 map fd")?;
            LdImm64::MapFd(lo)
        }
        BPF_PSEUDO_MAP_VALUE => LdImm64::MapValue {
            fd: lo,
            off: hi as u32,
        },
        BPF_PSEUDO_BTF_ID => LdImm64::BtfId {
            btf_id: lo,
            btf_fd: hi,
        },
        BPF_PSEUDO_FUNC => LdImm64::Func {
            offset: lo,
            next_imm: hi,
        },
        BPF_PSEUDO_MAP_IDX => {
            map_fd_like("ld_imm64 map index")?;
            LdImm64::MapIdx(lo)
        }
        BPF_PSEUDO_MAP_IDX_VALUE => LdImm64::MapIdxValue {
            idx: lo,
            off: hi as u32,
        },
        s => return Err(E::UnknownLdImm64Src(s)),
    };
    Ok(Insn::LdImm64 { dst, value })
}

fn decode_alu(r: RawInsn, dst: Reg, src_reg: Reg) -> Res<Insn> {
    use DecodeErrorKind as E;
    let (code, off, imm) = (r.code, r.off, r.imm);
    let c = class(code);
    let width = width(c);
    let is_x = source(code) == BPF_X;
    let op = match op(code) {
        BPF_ADD => AluOp::Add,
        BPF_SUB => AluOp::Sub,
        BPF_MUL => AluOp::Mul,
        BPF_DIV => AluOp::Div,
        BPF_OR => AluOp::Or,
        BPF_AND => AluOp::And,
        BPF_LSH => AluOp::Lsh,
        BPF_RSH => AluOp::Rsh,
        BPF_MOD => AluOp::Mod,
        BPF_XOR => AluOp::Xor,
        BPF_ARSH => AluOp::Arsh,
        BPF_MOV => return decode_mov(r, dst, src_reg),
        BPF_NEG => {
            if is_x {
                return Err(E::UnknownOpcode(code));
            }
            zero("neg", Field::Src, r.src.into())?;
            zero("neg", Field::Off, off.into())?;
            zero("neg", Field::Imm, imm.into())?;
            return Ok(Insn::Neg { width, dst });
        }
        BPF_END => {
            let order = match (c, source(code)) {
                (BPF_ALU, BPF_TO_LE) => ByteOrder::Le,
                (BPF_ALU, _) => ByteOrder::Be,
                (_, BPF_TO_LE) => ByteOrder::Swap,
                _ => return Err(E::UnknownOpcode(code)),
            };
            zero("byte swap", Field::Src, r.src.into())?;
            zero("byte swap", Field::Off, off.into())?;
            let bits = match imm {
                16 => SwapBits::B16,
                32 => SwapBits::B32,
                64 => SwapBits::B64,
                v => {
                    return Err(E::BadField {
                        insn: "byte swap",
                        field: Field::Imm,
                        value: v.into(),
                        expected: "16, 32 or 64",
                    });
                }
            };
            return Ok(Insn::End { order, bits, dst });
        }
        _ => return Err(E::UnknownOpcode(code)),
    };
    let signed = matches!(op, AluOp::Div | AluOp::Mod);
    let op = match (op, off) {
        (_, 0) => op,
        (AluOp::Div, 1) => AluOp::SDiv,
        (AluOp::Mod, 1) => AluOp::SMod,
        _ => {
            return Err(E::BadField {
                insn: "alu",
                field: Field::Off,
                value: off.into(),
                expected: if signed {
                    "0, or 1 for the signed form"
                } else {
                    "0"
                },
            });
        }
    };
    let src = if is_x {
        zero("alu", Field::Imm, imm.into())?;
        Src::Reg(src_reg)
    } else {
        zero("alu", Field::Src, r.src.into())?;
        Src::Imm(imm)
    };
    Ok(Insn::Alu {
        width,
        op,
        dst,
        src,
    })
}

fn decode_mov(r: RawInsn, dst: Reg, src: Reg) -> Res<Insn> {
    use DecodeErrorKind as E;
    let (off, imm) = (r.off, r.imm);
    let width = width(class(r.code));
    if source(r.code) == BPF_K {
        zero("mov", Field::Src, r.src.into())?;
        zero("mov", Field::Off, off.into())?;
        return Ok(Insn::Alu {
            width,
            op: AluOp::Mov,
            dst,
            src: Src::Imm(imm),
        });
    }
    if width == Width::W64 && off == BPF_ADDR_SPACE_CAST {
        return Ok(Insn::AddrSpaceCast {
            dst,
            src,
            dst_as: (imm as u32 >> 16) as u16,
            src_as: imm as u32 as u16,
        });
    }
    zero("mov", Field::Imm, imm.into())?;
    let from = match (off, width) {
        (0, _) => {
            return Ok(Insn::Alu {
                width,
                op: AluOp::Mov,
                dst,
                src: Src::Reg(src),
            });
        }
        (8, _) => NarrowSize::B,
        (16, _) => NarrowSize::H,
        (32, Width::W64) => NarrowSize::W,
        _ => {
            return Err(E::BadField {
                insn: "mov",
                field: Field::Off,
                value: off.into(),
                expected: match width {
                    Width::W32 => "0, or 8/16 for movsx",
                    Width::W64 => "0, 1 for addr_space_cast, or 8/16/32 for movsx",
                },
            });
        }
    };
    Ok(Insn::MovSx {
        width,
        from,
        dst,
        src,
    })
}

fn decode_jmp(r: RawInsn, dst: Reg, src_reg: Reg) -> Res<Insn> {
    use DecodeErrorKind as E;
    let (code, off, imm) = (r.code, r.off, r.imm);
    let c = class(code);
    let is_x = source(code) == BPF_X;
    let cond = match op(code) {
        BPF_JA => {
            if is_x {
                // JMP|JA|X is gotox and handled before; JMP32|JA|X does not exist.
                return Err(E::UnknownOpcode(code));
            }
            zero("goto", Field::Dst, r.dst.into())?;
            zero("goto", Field::Src, r.src.into())?;
            return if c == BPF_JMP {
                zero("goto", Field::Imm, imm.into())?;
                Ok(Insn::Ja { off })
            } else {
                zero("gotol", Field::Off, off.into())?;
                Ok(Insn::Gotol { off: imm })
            };
        }
        BPF_CALL => {
            if is_x || c == BPF_JMP32 {
                // callx is LLVM-only; the kernel has no indirect call.
                return Err(E::UnknownOpcode(code));
            }
            zero("call", Field::Dst, r.dst.into())?;
            let call = match r.src {
                0 => {
                    zero("helper call", Field::Off, off.into())?;
                    Call::Helper(imm)
                }
                BPF_PSEUDO_CALL => {
                    zero("bpf-to-bpf call", Field::Off, off.into())?;
                    Call::Local(imm)
                }
                BPF_PSEUDO_KFUNC_CALL => Call::Kfunc { btf_id: imm, off },
                s => {
                    return Err(E::BadField {
                        insn: "call",
                        field: Field::Src,
                        value: s.into(),
                        expected: "0 (helper), 1 (bpf-to-bpf) or 2 (kfunc)",
                    });
                }
            };
            return Ok(Insn::Call(call));
        }
        BPF_EXIT => {
            if is_x || c == BPF_JMP32 {
                return Err(E::UnknownOpcode(code));
            }
            zero("exit", Field::Dst, r.dst.into())?;
            zero("exit", Field::Src, r.src.into())?;
            zero("exit", Field::Imm, imm.into())?;
            return Ok(Insn::Exit { off });
        }
        BPF_JCOND => {
            if is_x || c == BPF_JMP32 {
                return Err(E::UnknownOpcode(code));
            }
            // src selects the condition; may_goto (0) is the only one.
            zero("may_goto", Field::Src, r.src.into())?;
            zero("may_goto", Field::Dst, r.dst.into())?;
            zero("may_goto", Field::Imm, imm.into())?;
            return Ok(Insn::MayGoto { off });
        }
        BPF_JEQ => JmpCond::Eq,
        BPF_JNE => JmpCond::Ne,
        BPF_JGT => JmpCond::Gt,
        BPF_JGE => JmpCond::Ge,
        BPF_JLT => JmpCond::Lt,
        BPF_JLE => JmpCond::Le,
        BPF_JSGT => JmpCond::Sgt,
        BPF_JSGE => JmpCond::Sge,
        BPF_JSLT => JmpCond::Slt,
        BPF_JSLE => JmpCond::Sle,
        BPF_JSET => JmpCond::Set,
        _ => return Err(E::UnknownOpcode(code)),
    };
    let src = if is_x {
        zero("conditional jump", Field::Imm, imm.into())?;
        Src::Reg(src_reg)
    } else {
        zero("conditional jump", Field::Src, r.src.into())?;
        Src::Imm(imm)
    };
    Ok(Insn::Jmp {
        width: width(c),
        cond,
        dst,
        src,
        off,
    })
}

fn decode_atomic(r: RawInsn, dst: Reg, src: Reg) -> Res<Insn> {
    use DecodeErrorKind as E;
    let size = mem_size(r.code);
    let off = r.off;
    let op = match r.imm {
        BPF_LOAD_ACQ => {
            return Ok(Insn::LoadAcquire {
                size,
                dst,
                src,
                off,
            });
        }
        BPF_STORE_REL => {
            return Ok(Insn::StoreRelease {
                size,
                dst,
                src,
                off,
            });
        }
        0x00 => AtomicOp::Add,
        0x40 => AtomicOp::Or,
        0x50 => AtomicOp::And,
        0xa0 => AtomicOp::Xor,
        0x01 => AtomicOp::FetchAdd,
        0x41 => AtomicOp::FetchOr,
        0x51 => AtomicOp::FetchAnd,
        0xa1 => AtomicOp::FetchXor,
        BPF_XCHG => AtomicOp::Xchg,
        BPF_CMPXCHG => AtomicOp::CmpXchg,
        v => return Err(E::UnknownAtomicOp(v)),
    };
    let width = match size {
        Size::W => Width::W32,
        Size::DW => Width::W64,
        s => return Err(E::NarrowAtomic(s)),
    };
    Ok(Insn::Atomic {
        width,
        op,
        dst,
        src,
        off,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
        RawInsn {
            code,
            dst,
            src,
            off,
            imm,
        }
        .to_le_bytes()
    }

    #[test]
    fn v4_and_kernel_only_forms() {
        let d = |b: [u8; 8]| decode(&b).map(|v| v[0].insn);
        let (r1, r2) = (Reg::R1, Reg::R2);
        assert_eq!(
            d(s(0x3f, 1, 2, 1, 0)),
            Ok(Insn::Alu {
                width: Width::W64,
                op: AluOp::SDiv,
                dst: r1,
                src: Src::Reg(r2)
            })
        );
        assert_eq!(
            d(s(0x94, 1, 0, 1, 7)),
            Ok(Insn::Alu {
                width: Width::W32,
                op: AluOp::SMod,
                dst: r1,
                src: Src::Imm(7)
            })
        );
        assert_eq!(
            d(s(0xbf, 1, 2, 32, 0)),
            Ok(Insn::MovSx {
                width: Width::W64,
                from: NarrowSize::W,
                dst: r1,
                src: r2
            })
        );
        assert_eq!(
            d(s(0xbf, 1, 2, 1, 0x0001_0000)),
            Ok(Insn::AddrSpaceCast {
                dst: r1,
                src: r2,
                dst_as: 1,
                src_as: 0
            })
        );
        assert_eq!(
            d(s(0xd7, 1, 0, 0, 64)),
            Ok(Insn::End {
                order: ByteOrder::Swap,
                bits: SwapBits::B64,
                dst: r1
            })
        );
        assert_eq!(d(s(0x06, 0, 0, 0, -5)), Ok(Insn::Gotol { off: -5 }));
        assert_eq!(d(s(0xe5, 0, 0, 3, 0)), Ok(Insn::MayGoto { off: 3 }));
        assert_eq!(
            d(s(0x85, 0, 2, 1, 99)),
            Ok(Insn::Call(Call::Kfunc { btf_id: 99, off: 1 }))
        );
        assert_eq!(
            d(s(0x91, 1, 2, -2, 0)),
            Ok(Insn::LoadSx {
                size: NarrowSize::B,
                dst: r1,
                src: r2,
                off: -2
            })
        );
        assert_eq!(
            d(s(0xcb, 1, 2, 0, 0x100)),
            Ok(Insn::LoadAcquire {
                size: Size::H,
                dst: r1,
                src: r2,
                off: 0
            })
        );
        assert_eq!(
            d(s(0xd3, 1, 2, 0, 0x110)),
            Ok(Insn::StoreRelease {
                size: Size::B,
                dst: r1,
                src: r2,
                off: 0
            })
        );
        // The kernel does not check `off` of exit; it is kept.
        assert_eq!(d(s(0x95, 0, 0, 9, 0)), Ok(Insn::Exit { off: 9 }));
    }

    #[test]
    fn reserved_fields_the_kernel_rejects() {
        let kind = |b: [u8; 8]| decode(&b).unwrap_err().kind;
        let bad = |f: Field| move |k: DecodeErrorKind| matches!(k, DecodeErrorKind::BadField { field, .. } if field == f);
        assert!(
            bad(Field::Off)(kind(s(0x0f, 1, 2, 1, 0))),
            "off=1 only for div/mod"
        );
        assert!(
            bad(Field::Imm)(kind(s(0x0f, 1, 2, 0, 5))),
            "X source with imm"
        );
        assert!(
            bad(Field::Src)(kind(s(0x07, 1, 2, 0, 5))),
            "K source with src"
        );
        assert!(
            bad(Field::Off)(kind(s(0xbc, 1, 2, 1, 0))),
            "32-bit mov has no addr_space_cast"
        );
        assert!(bad(Field::Imm)(kind(s(0xbf, 1, 2, 8, 1))), "movsx with imm");
        assert!(bad(Field::Imm)(kind(s(0x87, 1, 0, 0, 1))), "neg with imm");
        assert!(bad(Field::Imm)(kind(s(0x05, 0, 0, 1, 1))), "ja with imm");
        assert!(bad(Field::Off)(kind(s(0x06, 0, 0, 1, 1))), "gotol with off");
        assert!(bad(Field::Dst)(kind(s(0x05, 1, 0, 1, 0))), "ja with dst");
        assert!(
            bad(Field::Off)(kind(s(0x85, 0, 0, 1, 1))),
            "helper call with off"
        );
        assert!(bad(Field::Src)(kind(s(0x85, 0, 3, 0, 1))), "call src 3");
        assert!(bad(Field::Imm)(kind(s(0x95, 0, 0, 0, 1))), "exit with imm");
        assert!(
            bad(Field::Src)(kind(s(0xe5, 0, 1, 0, 0))),
            "jcond other than may_goto"
        );
        assert!(bad(Field::Imm)(kind(s(0x61, 1, 2, 0, 1))), "ldx with imm");
        assert!(bad(Field::Imm)(kind(s(0x63, 1, 2, 0, 1))), "stx with imm");
        assert!(bad(Field::Src)(kind(s(0x62, 1, 2, 0, 1))), "st with src");
        assert!(
            bad(Field::Src)(kind(s(0x20, 0, 1, 0, 1))),
            "ld_abs with src"
        );
        assert!(
            bad(Field::Dst)(kind(s(0x40, 1, 1, 0, 1))),
            "ld_ind with dst"
        );
        let ld = |first: [u8; 8]| {
            decode(&[first, s(0, 0, 0, 0, 0)].concat())
                .unwrap_err()
                .kind
        };
        assert!(
            bad(Field::Off)(ld(s(0x18, 1, 0, 1, 1))),
            "ld_imm64 with off"
        );
        assert_eq!(
            kind(s(0xbf, 1, 12, 0, 0)),
            DecodeErrorKind::InvalidRegister {
                field: Field::Src,
                reg: 12
            }
        );
        // The one typed value outside the ISA encodes field by field and is refused on the way
        // back.
        let bad_movsx = Insn::MovSx {
            width: Width::W32,
            from: NarrowSize::W,
            dst: Reg::R1,
            src: Reg::R2,
        };
        assert!(bad(Field::Off)(kind(bad_movsx.to_raw().0.to_le_bytes())));
    }
}
