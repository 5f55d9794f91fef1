//! The BPF instruction set: raw 8-byte slots, opcode constants, typed decoding, encoding and
//! disassembly.
//!
//! Everything position-related in BPF (jump offsets, call targets, relocation offsets, line info)
//! counts in 8-byte *slots*; `ld_imm64` takes two. Types here keep slot indices explicit.
//!
//! * [`decode`] turns a section's bytes into [`SlotInsn`]s (typed [`Insn`] + first slot), with a
//!   precise [`DecodeError`] for anything the kernel would not load;
//! * [`encode`] is its exact inverse, byte for byte;
//! * [`disassemble`] prints llvm-objdump's syntax, with optional source lines and labels;
//! * [`Insn`] methods answer what passes ask: registers read and written, jump targets, block
//!   ends, helper ids, slot length.
//!
//! ```
//! use opsplit::insn::{decode, encode, Insn, Reg, Src, AluOp, Width};
//!
//! // r0 = 1; exit
//! let bytes = [0xb7, 0x00, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
//! let insns = decode(&bytes).unwrap();
//! assert_eq!(
//!     insns[0].insn,
//!     Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R0, src: Src::Imm(1) }
//! );
//! assert_eq!(insns[1].insn.to_string(), "exit");
//! assert_eq!(encode(&insns), bytes);
//! ```

mod decode;
pub mod disasm;
mod encode;
mod info;
pub mod opcode;
mod types;

pub use decode::{DecodeError, DecodeErrorKind, Decoder, Field, decode, decode_one, decode_raw};
pub use disasm::{
    Annotations, DisasmOptions, NoAnnotations, SourceLine, SymbolLabels, disassemble, write_insn,
};
pub use encode::encode;
pub use info::RegSet;
pub use types::*;

/// One raw 8-byte instruction slot, little-endian, as stored in an ELF section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RawInsn {
    pub code: u8,
    /// Destination register (low nibble of byte 1 on little-endian).
    pub dst: u8,
    /// Source register (high nibble of byte 1 on little-endian).
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl RawInsn {
    pub const SIZE: usize = 8;

    /// Decodes one little-endian slot.
    pub fn from_le_bytes(b: [u8; 8]) -> RawInsn {
        RawInsn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    pub fn to_le_bytes(self) -> [u8; 8] {
        let o = self.off.to_le_bytes();
        let i = self.imm.to_le_bytes();
        [
            self.code,
            (self.src << 4) | (self.dst & 0x0f),
            o[0],
            o[1],
            i[0],
            i[1],
            i[2],
            i[3],
        ]
    }
}

/// Splits a section's bytes into raw slots. A length that is not a multiple of 8 is malformed;
/// the caller names the section.
pub fn raw_slots(bytes: &[u8]) -> Result<Vec<RawInsn>, usize> {
    if !bytes.len().is_multiple_of(RawInsn::SIZE) {
        return Err(bytes.len());
    }
    Ok(bytes
        .chunks_exact(RawInsn::SIZE)
        .map(|c| RawInsn::from_le_bytes(c.try_into().expect("chunk of 8")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trip_keeps_register_nibbles_apart() {
        let b = [0x61, 0x21, 0xfe, 0xff, 0x78, 0x56, 0x34, 0x12];
        let r = RawInsn::from_le_bytes(b);
        assert_eq!(
            (r.code, r.dst, r.src, r.off, r.imm),
            (0x61, 1, 2, -2, 0x12345678)
        );
        assert_eq!(r.to_le_bytes(), b);
    }

    #[test]
    fn raw_slots_rejects_partial_slot() {
        assert_eq!(raw_slots(&[0; 12]), Err(12));
        assert_eq!(raw_slots(&[0; 16]).unwrap().len(), 2);
    }
}
