//! The ELF layer of [`Object::parse`]: header checks, sections, symbols and relocations.

use object::Endianness;
use object::elf;
use object::read::elf::{FileHeader, SectionHeader, Sym};

use super::r_type::*;
use super::{
    Binding, Object, Relocation, Section, SectionId, SectionKind, Symbol, SymbolId, SymbolKind,
    SymbolPlace, Visibility,
};
use crate::Error;
use crate::btf::{Btf, BtfExt};

const SHT_LLVM_ADDRSIG: u32 = 0x6fff_4c03;

fn elf_err(context: impl Into<String>, message: impl std::fmt::Display) -> Error {
    Error::Elf {
        context: context.into(),
        message: message.to_string(),
    }
}

fn machine_name(m: u16) -> &'static str {
    match m {
        0 => "EM_NONE",
        3 => "x86 (EM_386)",
        8 => "MIPS",
        20 => "PowerPC",
        21 => "PowerPC64",
        22 => "s390",
        40 => "ARM",
        62 => "x86-64",
        183 => "AArch64",
        243 => "RISC-V",
        247 => "BPF",
        258 => "LoongArch",
        _ => "unknown machine",
    }
}

/// Checks the identification bytes before handing the file to `object`, so that the common
/// "wrong file" cases get precise messages.
fn check_ident(bytes: &[u8]) -> Result<(), Error> {
    if bytes.is_empty() {
        return Err(Error::NotElf("empty file".into()));
    }
    if bytes.len() < 4 || bytes[..4] != elf::ELFMAG {
        return Err(Error::NotElf(format!(
            "no ELF magic (first bytes {:02x?})",
            &bytes[..bytes.len().min(4)]
        )));
    }
    if bytes.len() < 20 {
        return Err(Error::NotElf(format!(
            "truncated ELF header ({} bytes)",
            bytes.len()
        )));
    }
    // EI_DATA: 1 little-endian, 2 big-endian.
    let big = match bytes[5] {
        1 => false,
        2 => true,
        d => return Err(elf_err("ELF header", format!("unknown data encoding {d}"))),
    };
    let machine = if big {
        u16::from_be_bytes([bytes[18], bytes[19]])
    } else {
        u16::from_le_bytes([bytes[18], bytes[19]])
    };
    if machine != elf::EM_BPF.0 {
        return Err(Error::WrongMachine {
            machine,
            name: machine_name(machine).into(),
        });
    }
    if big {
        return Err(Error::Unsupported("big-endian BPF object".into()));
    }
    // EI_CLASS 2: ELFCLASS64.
    if bytes[4] != 2 {
        return Err(Error::Unsupported(format!(
            "ELF class {} (BPF objects are ELF64)",
            bytes[4]
        )));
    }
    if bytes.len() < 64 {
        return Err(Error::NotElf(format!(
            "truncated ELF header ({} of 64 bytes)",
            bytes.len()
        )));
    }
    let e_type = u16::from_le_bytes([bytes[16], bytes[17]]);
    if e_type != elf::ET_REL.0 {
        return Err(Error::Unsupported(format!(
            "ELF type {e_type}: only relocatable objects (ET_REL, clang -c) are read"
        )));
    }
    Ok(())
}

/// Classifies a kept section the way libbpf does (by name for data, by flags for code).
fn section_kind(name: &str, sh_type: u32, flags: u64) -> SectionKind {
    let exec = flags & elf::SHF_EXECINSTR.0 != 0;
    let named = |prefix: &str| name == prefix || name.starts_with(&format!("{prefix}."));
    if sh_type == elf::SHT_PROGBITS.0 && exec {
        SectionKind::Code
    } else if name == ".maps" {
        SectionKind::Maps
    } else if name == "maps" {
        SectionKind::LegacyMaps
    } else if name == "license" {
        SectionKind::License
    } else if name == "version" {
        SectionKind::Version
    } else if name == ".BTF" {
        SectionKind::Btf
    } else if name == ".BTF.ext" {
        SectionKind::BtfExt
    } else if matches!(
        name,
        ".struct_ops" | ".struct_ops.link" | "?.struct_ops" | "?.struct_ops.link"
    ) {
        SectionKind::StructOps
    } else if sh_type == elf::SHT_NOBITS.0 && named(".bss") {
        SectionKind::Bss
    } else if named(".rodata") {
        SectionKind::ReadOnlyData
    } else if named(".data") {
        SectionKind::Data
    } else {
        SectionKind::Other
    }
}

/// Sections whose content only serves DWARF consumers and linkers; see the module docs.
fn is_dropped(name: &str, sh_type: u32) -> bool {
    name.starts_with(".debug_") || sh_type == SHT_LLVM_ADDRSIG
}

/// Bytes a relocation of this type patches, counted from `r_offset`.
fn reloc_width(r_type: u32) -> Option<u64> {
    match r_type {
        R_BPF_64_64 => Some(16),
        R_BPF_64_ABS64 | R_BPF_64_32 => Some(8),
        R_BPF_64_ABS32 | R_BPF_64_NODYLD32 => Some(4),
        _ => None,
    }
}

fn strtab_terminated(
    hdr: &elf::SectionHeader64<Endianness>,
    e: Endianness,
    bytes: &[u8],
    what: &str,
) -> Result<(), Error> {
    if hdr.sh_type(e) != elf::SHT_STRTAB {
        return Err(elf_err(
            what.to_string(),
            format!(
                "linked section has type {:#x}, not SHT_STRTAB",
                hdr.sh_type(e).0
            ),
        ));
    }
    let data = hdr
        .data(e, bytes)
        .map_err(|_| elf_err(what.to_string(), "string table lies outside the file"))?;
    if let Some(&last) = data.last()
        && last != 0
    {
        return Err(elf_err(
            what.to_string(),
            "string table is not NUL-terminated",
        ));
    }
    Ok(())
}

fn utf8(bytes: &[u8], context: impl FnOnce() -> String) -> Result<String, Error> {
    String::from_utf8(bytes.to_vec()).map_err(|_| elf_err(context(), "name is not UTF-8"))
}

/// Reads the ELF container. The analysis (functions, maps, ...) is left empty.
pub(super) fn read_elf(bytes: &[u8]) -> Result<Object, Error> {
    check_ident(bytes)?;
    let header =
        elf::FileHeader64::<Endianness>::parse(bytes).map_err(|e| elf_err("ELF header", e))?;
    let e = header.endian().map_err(|err| elf_err("ELF header", err))?;
    let table = header
        .sections(e, bytes)
        .map_err(|err| elf_err("section header table", err))?;
    let shstrndx = header
        .shstrndx(e, bytes)
        .map_err(|err| elf_err("ELF header", err))?;
    if shstrndx != 0 {
        let h = table
            .section(object::SectionIndex(shstrndx as usize))
            .map_err(|err| elf_err("section name table", err))?;
        strtab_terminated(h, e, bytes, "section name table")?;
    }

    let headers: Vec<&elf::SectionHeader64<Endianness>> = table.iter().collect();
    let mut obj = Object {
        elf_flags: header.e_flags(e).0,
        sections: Vec::new(),
        symbols: Vec::new(),
        btf: None,
        btf_ext: None,
        functions: Vec::new(),
        programs: Vec::new(),
        maps: Vec::new(),
        externs: Vec::new(),
        license: None,
        kernel_version: None,
        dropped_sections: Vec::new(),
    };

    // ELF section index -> kept SectionId.
    let mut kept: Vec<Option<SectionId>> = vec![None; headers.len()];
    let mut names: Vec<String> = vec![String::new(); headers.len()];
    let mut rel_sections = Vec::new();
    let mut symtab = None;
    for (i, h) in headers.iter().enumerate().skip(1) {
        let name_bytes = table
            .section_name(e, h)
            .map_err(|err| elf_err(format!("section #{i}"), format!("bad name: {err}")))?;
        let name = utf8(name_bytes, || format!("section #{i}"))?;
        names[i] = name.clone();
        let sh_type = h.sh_type(e).0;
        let ctx = || format!("section `{name}` (#{i})");
        match h.sh_type(e) {
            elf::SHT_SYMTAB => {
                if symtab.is_some() {
                    return Err(elf_err(ctx(), "second symbol table"));
                }
                symtab = Some(i);
                continue;
            }
            elf::SHT_STRTAB | elf::SHT_SYMTAB_SHNDX => continue,
            elf::SHT_REL => {
                rel_sections.push(i);
                continue;
            }
            elf::SHT_RELA => {
                return Err(Error::Unsupported(format!(
                    "{}: RELA relocations (BPF objects use REL)",
                    ctx()
                )));
            }
            elf::SHT_GROUP => {
                return Err(Error::Unsupported(format!("{}: section groups", ctx())));
            }
            _ => {}
        }
        if is_dropped(&name, sh_type) {
            obj.dropped_sections.push(name);
            continue;
        }
        let flags = h.sh_flags(e).0;
        let size = h.sh_size(e);
        let align = h.sh_addralign(e);
        // Alignment drives the writer's layout; anything beyond a page is nonsense for BPF and
        // would make the output file huge.
        if align > 1 && (!align.is_power_of_two() || align > 4096) {
            return Err(elf_err(
                ctx(),
                format!("alignment {align} is not a power of two up to 4096"),
            ));
        }
        let data = if h.sh_type(e) == elf::SHT_NOBITS {
            Vec::new()
        } else {
            h.data(e, bytes)
                .map_err(|_| {
                    elf_err(
                        ctx(),
                        format!(
                            "contents [{:#x}, +{:#x}) extend past the end of the file ({:#x} bytes)",
                            h.sh_offset(e),
                            size,
                            bytes.len()
                        ),
                    )
                })?
                .to_vec()
        };
        let kind = section_kind(&name, sh_type, flags);
        match kind {
            SectionKind::Btf => obj.btf = Some(Btf::parse(&data)?),
            SectionKind::BtfExt => obj.btf_ext = Some(BtfExt::parse(&data)?),
            SectionKind::License => {
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                obj.license = Some(String::from_utf8_lossy(&data[..end]).into_owned());
            }
            SectionKind::Version => {
                let v: [u8; 4] = data.as_slice().try_into().map_err(|_| {
                    elf_err(
                        ctx(),
                        format!("{} bytes, expected a 4-byte u32", data.len()),
                    )
                })?;
                obj.kernel_version = Some(u32::from_le_bytes(v));
            }
            SectionKind::Code if size % 8 != 0 => {
                return Err(elf_err(
                    ctx(),
                    format!("code section size {size} is not a multiple of 8"),
                ));
            }
            _ => {}
        }
        let (data, size) = match kind {
            SectionKind::Btf | SectionKind::BtfExt => (Vec::new(), 0),
            _ => (data, size),
        };
        kept[i] = Some(obj.sections.len());
        obj.sections.push(Section {
            name,
            kind,
            sh_type,
            flags,
            align,
            entsize: h.sh_entsize(e),
            data,
            size,
            relocations: Vec::new(),
        });
    }

    // Symbols: ELF index -> kept SymbolId.
    let mut sym_map: Vec<Option<SymbolId>> = vec![None];
    if let Some(si) = symtab {
        let ctx = "symbol table (.symtab)";
        let sh = headers[si];
        let link = sh.sh_link(e) as usize;
        let strh = headers
            .get(link)
            .ok_or_else(|| elf_err(ctx, format!("links to missing string table #{link}")))?;
        strtab_terminated(strh, e, bytes, "symbol string table")?;
        let syms = table
            .symbols(e, bytes, elf::SHT_SYMTAB)
            .map_err(|err| elf_err(ctx, err))?;
        for (idx, sym) in syms.enumerate().skip(1) {
            let name = syms
                .symbol_name(e, sym)
                .map_err(|err| elf_err(ctx, format!("symbol #{}: bad name: {err}", idx.0)))?;
            let name = utf8(name, || format!("{ctx}, symbol #{}", idx.0))?;
            let shndx = sym.st_shndx(e);
            let place = if shndx == elf::SHN_UNDEF {
                SymbolPlace::Undefined
            } else if shndx == elf::SHN_ABS {
                SymbolPlace::Absolute
            } else if shndx == elf::SHN_COMMON {
                SymbolPlace::Common
            } else {
                let sec = syms
                    .symbol_section(e, sym, idx)
                    .map_err(|err| elf_err(ctx, format!("symbol `{name}`: {err}")))?
                    .map(|s| s.0)
                    .unwrap_or(0);
                if sec == 0 || sec >= headers.len() {
                    return Err(elf_err(
                        ctx,
                        format!("symbol `{name}` refers to missing section #{sec}"),
                    ));
                }
                match kept[sec] {
                    Some(id) => SymbolPlace::Section(id),
                    None if obj.dropped_sections.contains(&names[sec]) => {
                        sym_map.push(None);
                        continue;
                    }
                    None => {
                        return Err(elf_err(
                            ctx,
                            format!(
                                "symbol `{name}` is defined in `{}`, which is not a content section",
                                names[sec]
                            ),
                        ));
                    }
                }
            };
            let binding = match sym.st_bind() {
                elf::STB_LOCAL => Binding::Local,
                elf::STB_GLOBAL => Binding::Global,
                elf::STB_WEAK => Binding::Weak,
                b => {
                    return Err(Error::Unsupported(format!(
                        "symbol `{name}`: binding {}",
                        b.0
                    )));
                }
            };
            let kind = match sym.st_type() {
                elf::STT_NOTYPE => SymbolKind::NoType,
                elf::STT_OBJECT => SymbolKind::Object,
                elf::STT_FUNC => SymbolKind::Func,
                elf::STT_SECTION => SymbolKind::Section,
                elf::STT_FILE => SymbolKind::File,
                t => SymbolKind::Other(t.0),
            };
            let visibility = match sym.st_visibility() {
                elf::STV_INTERNAL => Visibility::Internal,
                elf::STV_HIDDEN => Visibility::Hidden,
                elf::STV_PROTECTED => Visibility::Protected,
                _ => Visibility::Default,
            };
            sym_map.push(Some(obj.symbols.len()));
            obj.symbols.push(Symbol {
                name,
                place,
                value: sym.st_value(e),
                size: sym.st_size(e),
                binding,
                kind,
                visibility,
            });
        }
    }

    for ri in rel_sections {
        let h = headers[ri];
        let rel_name = &names[ri];
        let target = h.sh_info(e) as usize;
        if target == 0 || target >= headers.len() {
            return Err(elf_err(
                format!("relocation section `{rel_name}`"),
                format!("applies to missing section #{target}"),
            ));
        }
        let Some(tid) = kept[target] else {
            // Relocations of dropped sections (DWARF) go with them; so do .rel.BTF/.rel.BTF.ext,
            // which only matter to linkers (libbpf ignores them).
            obj.dropped_sections.push(rel_name.clone());
            continue;
        };
        if matches!(
            obj.sections[tid].kind,
            SectionKind::Btf | SectionKind::BtfExt
        ) {
            obj.dropped_sections.push(rel_name.clone());
            continue;
        }
        if symtab.is_none_or(|s| h.sh_link(e) as usize != s) {
            return Err(elf_err(
                format!("relocation section `{rel_name}`"),
                "does not link to the symbol table",
            ));
        }
        let (rels, _) = h
            .rel(e, bytes)
            .map_err(|err| elf_err(format!("relocation section `{rel_name}`"), err))?
            .ok_or_else(|| elf_err(format!("relocation section `{rel_name}`"), "not SHT_REL"))?;
        let tsec = &obj.sections[tid];
        let mut out = Vec::with_capacity(rels.len());
        for (index, rel) in rels.iter().enumerate() {
            let offset = rel.r_offset.get(e);
            let r_type = rel.r_type(e).0;
            let r_sym = rel.r_sym(e) as usize;
            let bad = |message: String| Error::Relocation {
                section: tsec.name.clone(),
                index,
                offset,
                message,
            };
            let width = reloc_width(r_type)
                .ok_or_else(|| bad(format!("unknown BPF relocation type {r_type}")))?;
            if offset.checked_add(width).is_none_or(|end| end > tsec.size) {
                return Err(bad(format!(
                    "patches {width} bytes past the end of the section ({:#x} bytes)",
                    tsec.size
                )));
            }
            if r_sym == 0 {
                return Err(bad("refers to the null symbol".into()));
            }
            let symbol = match sym_map.get(r_sym) {
                None => {
                    return Err(bad(format!(
                        "refers to symbol #{r_sym}, but the symbol table has {} entries",
                        sym_map.len()
                    )));
                }
                Some(None) => {
                    return Err(bad(format!(
                        "refers to symbol #{r_sym} of a dropped debug section"
                    )));
                }
                Some(Some(s)) => *s,
            };
            out.push(Relocation {
                offset,
                symbol,
                r_type,
            });
        }
        if !obj.sections[tid].relocations.is_empty() {
            return Err(elf_err(
                format!("relocation section `{rel_name}`"),
                format!("second relocation section for `{}`", obj.sections[tid].name),
            ));
        }
        obj.sections[tid].relocations = out;
    }
    match (&obj.btf, &obj.btf_ext) {
        (Some(btf), Some(ext)) => ext.check(btf)?,
        // .BTF.ext names sections and files through .BTF's string table and types by .BTF id:
        // without .BTF none of it can be interpreted (or re-emitted against synthesized BTF).
        (None, Some(_)) => {
            return Err(elf_err(
                "section `.BTF.ext`",
                "present without a `.BTF` section, whose strings and types it refers to",
            ));
        }
        _ => {}
    }
    Ok(obj)
}
