//! Reading a relocatable BPF ELF object into plain data, and writing one back.
//!
//! [`Object::parse`] reads an object the way libbpf sees it: every section with the header fields
//! needed to re-emit it, every symbol, every relocation, and on top of those an analysis: the
//! [`Function`]s in code sections with their decoded instructions and classified relocations, the
//! [`Program`]s (entry points, typed by section name as libbpf's `SEC()` table does), the [`Map`]s
//! (BTF-defined `.maps`, legacy `maps`, global data, `.kconfig`) and the [`Extern`]s (`.ksyms`
//! kfuncs and variables, `.kconfig`).
//!
//! [`Object::write`] emits a standard relocatable BPF ELF from [`Object::sections`],
//! [`Object::symbols`], the section relocations and [`Object::btf`]/[`Object::btf_ext`].
//! Relocations are `SHT_REL` (addend 0): the implicit addend stays in the instruction or data bytes,
//! exactly as clang emits it.
//!
//! # What is dropped on reading
//!
//! DWARF (`.debug_*`) with its relocation sections, `.rel.BTF`/`.rel.BTF.ext` and `.llvm_addrsig`
//! are not kept, so written objects do not carry them. Line information lives in `.BTF.ext`, which
//! is kept byte for byte; `llvm-objdump -S` shows no source for written objects, `bpftool` and the
//! verifier log still do. The names of dropped sections are listed in [`Object::dropped_sections`].
//!
//! # What is converted on writing
//!
//! A legacy `maps` section (`struct bpf_map_def`) cannot be opened by libbpf ≥ 1.0, so [`Object::write`]
//! re-emits its maps as BTF-defined maps in `.maps` (type, key/value sizes, max entries, flags,
//! pinning), appending the needed BTF types. An object without `.BTF` gets a synthesized one with a
//! `FUNC` per function and a `DATASEC` per data section, so later stages can add programs to it.
//!
//! # Example
//!
//! ```
//! # fn main() -> Result<(), opsplit::Error> {
//! let bytes = include_bytes!("../../fixtures/multi_prog.o");
//! let obj = opsplit::obj::Object::parse(bytes)?;
//! for prog in &obj.programs {
//!     let f = &obj.functions[prog.function];
//!     println!("{} in {}: {:?}, {} slots", f.name, prog.section_name, prog.prog_type, f.insns.len());
//! }
//! // Writing and re-reading gives the same programs and maps.
//! let again = opsplit::obj::Object::parse(&obj.write()?)?;
//! assert_eq!(again.programs, obj.programs);
//! assert_eq!(again.maps, obj.maps);
//! # Ok(())
//! # }
//! ```

mod analyze;
mod convert;
pub mod disasm;
pub mod maps;
pub mod progs;
mod read;
pub mod reloc;
mod write;

pub use maps::{LegacyMapDef, Map, MapDef, MapKind, MapValue, Pinning};
pub use progs::{ProgramType, program_type};
pub use reloc::{InsnReloc, RelocKind};

use crate::btf::{Btf, BtfExt};
use crate::insn::{RawInsn, SlotInsn};

/// Index into [`Object::sections`].
pub type SectionId = usize;
/// Index into [`Object::symbols`]. The ELF null symbol is not in the list, so ELF symbol index
/// `i` is `SymbolId` `i - 1` for objects as read.
pub type SymbolId = usize;
/// Index into [`Object::functions`].
pub type FunctionId = usize;

/// ELF relocation types of `EM_BPF` (LLVM `BPFRelocs.def`). `object` names only some of them.
pub mod r_type {
    pub const R_BPF_NONE: u32 = 0;
    /// `ld_imm64` (64-bit immediate split over two slots).
    pub const R_BPF_64_64: u32 = 1;
    /// 64-bit absolute data word (`.maps` initialisers, `.struct_ops` function pointers).
    pub const R_BPF_64_ABS64: u32 = 2;
    /// 32-bit absolute data word (DWARF, `.BTF.ext`).
    pub const R_BPF_64_ABS32: u32 = 3;
    /// 32-bit data word not resolved by dynamic loaders (`.BTF` DATASEC offsets in old LLVM).
    pub const R_BPF_64_NODYLD32: u32 = 4;
    /// Call instruction immediate (BPF-to-BPF and kfunc calls).
    pub const R_BPF_64_32: u32 = 10;
}

/// A relocatable BPF object.
///
/// `sections`, `symbols` and the relocations inside the sections are what [`Object::write`] emits;
/// `.BTF` and `.BTF.ext` bytes come from [`Object::btf`] and [`Object::btf_ext`]. `functions`,
/// `programs`, `maps`, `externs`, `license` and `kernel_version` are the analysis [`Object::parse`]
/// computed from them. Instructions of a function may be edited in place (same slot count): `write`
/// encodes every function back into its section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// ELF header `e_flags` (clang: 0).
    pub elf_flags: u32,
    /// Every kept section in file order, without the null section, the symbol/string tables and the
    /// relocation sections (relocations live in [`Section::relocations`]).
    pub sections: Vec<Section>,
    /// Every kept symbol in symbol table order, without the null symbol.
    pub symbols: Vec<Symbol>,
    /// The `.BTF` section, if the object has one. Its [`Section`] entry keeps only the position;
    /// [`Object::write`] serializes this.
    pub btf: Option<Btf>,
    /// The `.BTF.ext` section (func_info, line_info, CO-RE relocations), if present.
    pub btf_ext: Option<BtfExt>,
    /// Every function (`STT_FUNC` symbol with a size) in a code section, ordered by section, then offset.
    pub functions: Vec<Function>,
    /// Entry points: functions outside `.text`.
    pub programs: Vec<Program>,
    pub maps: Vec<Map>,
    pub externs: Vec<Extern>,
    /// The `license` section's string, without the terminating NUL.
    pub license: Option<String>,
    /// The `version` section's u32 (legacy kprobe objects).
    pub kernel_version: Option<u32>,
    /// Names of sections not kept (DWARF, `.rel.BTF*`, `.llvm_addrsig`), in file order.
    pub dropped_sections: Vec<String>,
}

/// What a section holds, derived from its name, type and flags the way libbpf classifies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// Executable (`SHF_EXECINSTR`) `SHT_PROGBITS`: BPF instructions.
    Code,
    /// `.maps`: BTF-defined map definitions.
    Maps,
    /// `maps`: legacy `struct bpf_map_def` array.
    LegacyMaps,
    /// `.data`, `.data.*`: writable initialised global data.
    Data,
    /// `.rodata`, `.rodata.*`: read-only global data.
    ReadOnlyData,
    /// `.bss`, `.bss.*` (`SHT_NOBITS`).
    Bss,
    /// `.struct_ops`, `.struct_ops.link` and their `?` variants.
    StructOps,
    License,
    Version,
    Btf,
    BtfExt,
    /// Anything else, kept verbatim.
    Other,
}

/// One ELF section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub kind: SectionKind,
    /// `sh_type` (`SHT_PROGBITS`, `SHT_NOBITS`, ...).
    pub sh_type: u32,
    /// `sh_flags` (`SHF_ALLOC`, `SHF_WRITE`, `SHF_EXECINSTR`, ...).
    pub flags: u64,
    pub align: u64,
    pub entsize: u64,
    /// Section contents; empty for `SHT_NOBITS`, and for `.BTF`/`.BTF.ext`, whose contents are
    /// [`Object::btf`] and [`Object::btf_ext`].
    pub data: Vec<u8>,
    /// `sh_size`; equals `data.len()` except for `SHT_NOBITS` and the BTF sections.
    pub size: u64,
    /// Relocations applied to this section (its `.rel<name>` section), in file order.
    pub relocations: Vec<Relocation>,
}

impl Section {
    pub fn is_code(&self) -> bool {
        self.kind == SectionKind::Code
    }
}

/// One `SHT_REL` relocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relocation {
    /// Byte offset inside the relocated section.
    pub offset: u64,
    pub symbol: SymbolId,
    /// One of the [`r_type`] constants.
    pub r_type: u32,
}

/// Where a symbol is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolPlace {
    /// `SHN_UNDEF`: an extern.
    Undefined,
    /// `SHN_ABS` (e.g. the `STT_FILE` symbol).
    Absolute,
    /// `SHN_COMMON`.
    Common,
    Section(SectionId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Local,
    Global,
    Weak,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolKind {
    NoType,
    Object,
    Func,
    Section,
    File,
    /// Any other `STT_*` value, kept verbatim.
    Other(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Default,
    Internal,
    Hidden,
    Protected,
}

/// One ELF symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub place: SymbolPlace,
    pub value: u64,
    pub size: u64,
    pub binding: Binding,
    pub kind: SymbolKind,
    pub visibility: Visibility,
}

/// A function in a code section: a program entry point or a subprogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    pub symbol: SymbolId,
    pub section: SectionId,
    /// Byte offset of the first instruction in the section.
    pub offset: u64,
    /// The function's instructions, decoded; slots count from the function start.
    pub insns: Vec<SlotInsn>,
    /// Relocations inside this function, classified, by slot.
    pub relocations: Vec<InsnReloc>,
}

impl Function {
    /// Slot index of the function start inside its section.
    pub fn first_slot(&self) -> usize {
        (self.offset / RawInsn::SIZE as u64) as usize
    }

    /// Number of 8-byte slots the function occupies.
    pub fn slot_count(&self) -> usize {
        self.insns.last().map_or(0, |i| i.slot + i.insn.slots())
    }

    /// Byte length of the function.
    pub fn byte_len(&self) -> u64 {
        (self.slot_count() * RawInsn::SIZE) as u64
    }
}

/// A BPF program: a function in a code section other than `.text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub function: FunctionId,
    pub section_name: String,
    pub prog_type: ProgramType,
    /// Static (`STB_LOCAL`) entry points are read, but libbpf refuses to load them.
    pub is_static: bool,
}

/// Where an extern is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExternKind {
    /// `extern ... __ksym` function: a kfunc.
    Kfunc,
    /// `extern ... __ksym` variable: a kernel variable (ld_imm64 with a BTF id).
    Ksym,
    /// `extern ... __kconfig`: a value libbpf supplies from the kernel config.
    Kconfig,
}

/// An undefined symbol the object refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extern {
    pub name: String,
    pub symbol: SymbolId,
    pub kind: ExternKind,
    /// Declared `__weak`: libbpf resolves it to 0 if the kernel lacks it.
    pub weak: bool,
    /// The BTF `FUNC`/`VAR` type id, when the object has BTF.
    pub btf_id: Option<u32>,
}

impl Object {
    /// Reads an object. See the [module documentation](self) for what is kept.
    pub fn parse(bytes: &[u8]) -> Result<Object, crate::Error> {
        let mut obj = read::read_elf(bytes)?;
        analyze::analyze(&mut obj)?;
        Ok(obj)
    }

    /// Writes the object as a standard relocatable BPF ELF. See the [module documentation](self) for
    /// the conversions applied.
    pub fn write(&self) -> Result<Vec<u8>, crate::Error> {
        write::write(self)
    }

    /// Recomputes functions, programs, maps and externs from the sections, symbols and BTF, e.g.
    /// after editing those. Function instructions edited in place are written back first.
    pub fn reanalyze(&mut self) -> Result<(), crate::Error> {
        write::sync_functions(self)?;
        analyze::analyze(self)
    }

    /// Renumbers the BTF types with `map` and rewrites every id that refers to them: inside
    /// `.BTF`, in `.BTF.ext` (func_info, CO-RE records), in instructions (`ld_imm64` with
    /// `BPF_PSEUDO_BTF_ID`, kfunc calls with `BPF_PSEUDO_KFUNC_CALL`), and in the analysis
    /// (map and extern ids). Nothing changes on error.
    pub fn apply_btf_id_map(&mut self, map: &crate::btf::TypeIdMap) -> Result<(), crate::Error> {
        use crate::insn::{Call, Insn, LdImm64};
        let Some(btf) = &self.btf else {
            return Err(crate::Error::Unsupported(
                "BTF id remap on an object without .BTF".into(),
            ));
        };
        let mut out = self.clone();
        let mut btf = btf.clone();
        btf.apply_id_map(map)?;
        out.btf = Some(btf);
        if let Some(ext) = &mut out.btf_ext {
            ext.apply_id_map(map)?;
        }
        let remap = |id: &mut u32| -> Result<(), crate::Error> {
            *id = map.map_id(*id)?;
            Ok(())
        };
        for f in &mut out.functions {
            for si in &mut f.insns {
                // Unresolved references (id 0, as clang emits them) are left for libbpf.
                let id = match &mut si.insn {
                    Insn::LdImm64 {
                        value: LdImm64::BtfId { btf_id, .. },
                        ..
                    } => btf_id,
                    Insn::Call(Call::Kfunc { btf_id, .. }) => btf_id,
                    _ => continue,
                };
                if *id > 0 {
                    let mut new = *id as u32;
                    remap(&mut new).map_err(|e| crate::Error::Instruction {
                        section: self.sections[f.section].name.clone(),
                        function: f.name.clone(),
                        slot: si.slot,
                        message: e.to_string(),
                    })?;
                    *id = new as i32;
                }
            }
        }
        fn remap_def(def: &mut MapDef, map: &crate::btf::TypeIdMap) -> Result<(), crate::Error> {
            for id in [&mut def.key_type, &mut def.value_type]
                .into_iter()
                .flatten()
            {
                *id = map.map_id(*id)?;
            }
            if let Some(inner) = &mut def.inner {
                remap_def(inner, map)?;
            }
            Ok(())
        }
        for m in &mut out.maps {
            if let Some(id) = &mut m.btf_id {
                remap(id)?;
            }
            remap_def(&mut m.def, map)?;
        }
        for e in &mut out.externs {
            if let Some(id) = &mut e.btf_id {
                remap(id)?;
            }
        }
        *self = out;
        Ok(())
    }

    pub fn section_by_name(&self, name: &str) -> Option<(SectionId, &Section)> {
        self.sections
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
    }

    pub fn function_by_name(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name)
    }

    pub fn program_by_name(&self, name: &str) -> Option<&Program> {
        self.programs
            .iter()
            .find(|p| self.functions[p.function].name == name)
    }

    pub fn extern_by_name(&self, name: &str) -> Option<&Extern> {
        self.externs.iter().find(|e| e.name == name)
    }

    pub fn map_by_name(&self, name: &str) -> Option<&Map> {
        self.maps.iter().find(|m| m.name == name)
    }
}
