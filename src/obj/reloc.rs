//! Classification of code relocations, following libbpf's `bpf_program__record_reloc`.

use super::r_type::*;
use super::{
    ExternKind, FunctionId, Object, Relocation, SectionId, SectionKind, SymbolId, SymbolPlace,
};
use crate::Error;
use crate::insn::RawInsn;
use crate::insn::opcode::{BPF_CALL, BPF_JMP, BPF_PSEUDO_CALL, LD_IMM64};

/// What a relocated instruction refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelocKind {
    /// `ld_imm64` of a map (BTF-defined `.maps` or legacy `maps`); names an [`Object::maps`] entry.
    Map { map: String },
    /// `ld_imm64` of an address in a global data section (`.data`, `.bss`, `.rodata*`): the
    /// section and the byte offset (symbol value plus the implicit addend in `imm`).
    GlobalData { section: SectionId, offset: u64 },
    /// BPF-to-BPF call (`call` with `src = BPF_PSEUDO_CALL`).
    Call { target: FunctionId },
    /// `ld_imm64` of a function address (`BPF_PSEUDO_FUNC`, e.g. a `bpf_loop` callback).
    FuncAddr { target: FunctionId },
    /// Call of an extern function: a kfunc.
    KfuncCall { name: String },
    /// `ld_imm64` of an extern: a `.ksyms` variable, a `.kconfig` value, or the address of a
    /// (weak) kfunc tested for existence.
    Extern { name: String, kind: ExternKind },
}

/// A classified relocation inside a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsnReloc {
    /// Slot index from the function start.
    pub slot: usize,
    /// Index into the section's [`super::Section::relocations`].
    pub relocation: usize,
    pub symbol: SymbolId,
    pub kind: RelocKind,
}

fn is_call(insn: &RawInsn) -> bool {
    insn.code == (BPF_JMP | BPF_CALL)
}

/// Where a code relocation points, before it is tied to a function or map.
pub(super) enum Target {
    Map {
        section: SectionId,
        offset: u64,
    },
    Data {
        section: SectionId,
        offset: u64,
    },
    Code {
        section: SectionId,
        offset: u64,
        call: bool,
    },
    ExternCall {
        symbol: SymbolId,
    },
    ExternRef {
        symbol: SymbolId,
    },
}

/// Classifies relocation `index` of code section `section` against the instruction it patches.
pub(super) fn classify(
    obj: &Object,
    section: SectionId,
    index: usize,
    rel: &Relocation,
    insn: &RawInsn,
) -> Result<Target, Error> {
    let sec = &obj.sections[section];
    let bad = |message: String| Error::Relocation {
        section: sec.name.clone(),
        index,
        offset: rel.offset,
        message,
    };
    if !rel.offset.is_multiple_of(RawInsn::SIZE as u64) {
        return Err(bad("offset is not at an instruction boundary".into()));
    }
    let sym = &obj.symbols[rel.symbol];
    let ld64 = insn.code == LD_IMM64;
    match rel.r_type {
        R_BPF_64_64 if !ld64 => {
            return Err(bad(format!(
                "R_BPF_64_64 on opcode {:#04x}, expected ld_imm64 (0x18)",
                insn.code
            )));
        }
        R_BPF_64_32 if !is_call(insn) => {
            return Err(bad(format!(
                "R_BPF_64_32 on opcode {:#04x}, expected call (0x85)",
                insn.code
            )));
        }
        R_BPF_64_64 | R_BPF_64_32 => {}
        t => {
            return Err(bad(format!(
                "relocation type {t} is not valid in a code section"
            )));
        }
    }
    let tsec = match sym.place {
        SymbolPlace::Undefined => {
            return Ok(if ld64 {
                Target::ExternRef { symbol: rel.symbol }
            } else {
                Target::ExternCall { symbol: rel.symbol }
            });
        }
        SymbolPlace::Section(s) => s,
        SymbolPlace::Absolute | SymbolPlace::Common => {
            return Err(bad(format!(
                "symbol `{}` is absolute or common, not in a section",
                sym.name
            )));
        }
    };
    let target = &obj.sections[tsec];
    if ld64 {
        let offset = sym.value.wrapping_add(insn.imm as u32 as u64);
        match target.kind {
            SectionKind::Maps | SectionKind::LegacyMaps => Ok(Target::Map {
                section: tsec,
                offset,
            }),
            SectionKind::Data | SectionKind::ReadOnlyData | SectionKind::Bss => Ok(Target::Data {
                section: tsec,
                offset,
            }),
            SectionKind::Code => Ok(Target::Code {
                section: tsec,
                offset,
                call: false,
            }),
            _ => Err(bad(format!(
                "ld_imm64 of `{}` in section `{}`, which is not a map, data or code section",
                sym.name, target.name
            ))),
        }
    } else {
        if insn.src != BPF_PSEUDO_CALL {
            return Err(bad(format!(
                "call of `{}` with src {}, expected BPF_PSEUDO_CALL (1)",
                sym.name, insn.src
            )));
        }
        if target.kind != SectionKind::Code {
            return Err(bad(format!(
                "call of `{}` in non-code section `{}`",
                sym.name, target.name
            )));
        }
        // The callee is `imm + 1` slots after the symbol: -1 against a FUNC symbol, the slot
        // offset against a section symbol.
        let slots = i64::from(insn.imm) + 1;
        let offset = (sym.value as i64).checked_add(slots * RawInsn::SIZE as i64);
        match offset {
            Some(o) if o >= 0 => Ok(Target::Code {
                section: tsec,
                offset: o as u64,
                call: true,
            }),
            _ => Err(bad(format!(
                "call target before the start of section `{}`",
                target.name
            ))),
        }
    }
}
