//! [`Object::write`]: emit a standard relocatable BPF ELF with `object::write::elf::Writer`.

use object::Endianness;
use object::elf;
use object::write::elf::{FileHeader, Rel, SectionHeader, Sym, Writer};

use super::{Binding, Object, SectionKind, SymbolKind, SymbolPlace, Visibility};
use crate::Error;

pub(super) fn write(obj: &Object) -> Result<Vec<u8>, Error> {
    let mut obj = obj.clone();
    sync_functions(&mut obj)?;
    super::convert::prepare_for_write(&mut obj)?;
    emit(&obj)
}

/// Encodes every function's instructions back into its section, so that in-place edits of
/// instructions are what gets written.
pub(super) fn sync_functions(obj: &mut Object) -> Result<(), Error> {
    for f in &obj.functions {
        let sym = obj.symbols.get(f.symbol).ok_or_else(|| {
            Error::Write(format!(
                "function `{}`: symbol #{} is gone",
                f.name, f.symbol
            ))
        })?;
        let len = f.byte_len();
        if sym.size != len || sym.value != f.offset {
            return Err(Error::Write(format!(
                "function `{}` has {} slots at {:#x}, but its symbol covers {} slots at {:#x}; \
                 resizing a function needs the section rebuilt",
                f.name,
                f.slot_count(),
                f.offset,
                sym.size / 8,
                sym.value
            )));
        }
        let sec = obj.sections.get_mut(f.section).ok_or_else(|| {
            Error::Write(format!(
                "function `{}`: section #{} is gone",
                f.name, f.section
            ))
        })?;
        let start = f.offset as usize;
        let dst = sec
            .data
            .get_mut(start..start + len as usize)
            .ok_or_else(|| {
                Error::Write(format!(
                    "function `{}` lies outside section `{}`",
                    f.name, sec.name
                ))
            })?;
        dst.copy_from_slice(&crate::insn::encode(&f.insns));
    }
    Ok(())
}

fn werr(e: object::write::Error) -> Error {
    Error::Write(e.to_string())
}

/// Section contents as written: `.BTF`/`.BTF.ext` come from the object's BTF fields.
fn section_bytes(obj: &Object, id: usize) -> std::borrow::Cow<'_, [u8]> {
    let s = &obj.sections[id];
    match (s.kind, &obj.btf, &obj.btf_ext) {
        (SectionKind::Btf, Some(b), _) => b.to_bytes().into(),
        (SectionKind::BtfExt, _, Some(b)) => b.to_bytes().into(),
        _ => s.data.as_slice().into(),
    }
}

fn emit(obj: &Object) -> Result<Vec<u8>, Error> {
    let nsec = obj.sections.len();
    let contents: Vec<std::borrow::Cow<'_, [u8]>> =
        (0..nsec).map(|i| section_bytes(obj, i)).collect();
    for s in &obj.sections {
        if s.sh_type != elf::SHT_NOBITS.0
            && s.data.len() as u64 != s.size
            && !matches!(s.kind, SectionKind::Btf | SectionKind::BtfExt)
        {
            return Err(Error::Write(format!(
                "section `{}`: {} data bytes but size {}",
                s.name,
                s.data.len(),
                s.size
            )));
        }
        for r in &s.relocations {
            if r.symbol >= obj.symbols.len() {
                return Err(Error::Write(format!(
                    "section `{}`: relocation at {:#x} refers to missing symbol #{}",
                    s.name, r.offset, r.symbol
                )));
            }
        }
    }
    // ELF wants local symbols first; keep the original order otherwise.
    let mut order: Vec<usize> = (0..obj.symbols.len()).collect();
    order.sort_by_key(|&i| obj.symbols[i].binding != Binding::Local);
    let num_local = 1 + order
        .iter()
        .filter(|&&i| obj.symbols[i].binding == Binding::Local)
        .count() as u32;
    let mut new_index = vec![0u32; obj.symbols.len()];
    for (pos, &i) in order.iter().enumerate() {
        new_index[i] = pos as u32 + 1;
    }
    let rel_names: Vec<String> = obj
        .sections
        .iter()
        .map(|s| format!(".rel{}", s.name))
        .collect();

    let mut buf = Vec::new();
    let mut w = Writer::new(Endianness::Little, true, &mut buf);
    w.reserve_file_header();

    struct Placed {
        name: object::write::StringId,
        index: object::write::elf::SectionIndex,
        offset: u64,
        rel_name: Option<object::write::StringId>,
        rel_index: object::write::elf::SectionIndex,
        rel_offset: u64,
    }
    let mut placed = Vec::with_capacity(nsec);
    for (i, s) in obj.sections.iter().enumerate() {
        let name = w.add_section_name(s.name.as_bytes());
        let index = w.reserve_section_index();
        let len = if s.sh_type == elf::SHT_NOBITS.0 {
            0
        } else {
            contents[i].len() as u64
        };
        let offset = w.reserve(len, s.align.max(1).next_power_of_two());
        let (rel_name, rel_index) = if s.relocations.is_empty() {
            (None, Default::default())
        } else {
            (
                Some(w.add_section_name(rel_names[i].as_bytes())),
                w.reserve_section_index(),
            )
        };
        placed.push(Placed {
            name,
            index,
            offset,
            rel_name,
            rel_index,
            rel_offset: 0,
        });
    }

    w.reserve_null_symbol_index();
    let mut sym_names = vec![None; obj.symbols.len()];
    for &i in &order {
        let s = &obj.symbols[i];
        if !s.name.is_empty() {
            sym_names[i] = Some(w.add_string(s.name.as_bytes()));
        }
        let sec = match s.place {
            SymbolPlace::Section(id) => Some(
                placed
                    .get(id)
                    .ok_or_else(|| {
                        Error::Write(format!("symbol `{}` is in missing section #{id}", s.name))
                    })?
                    .index,
            ),
            _ => None,
        };
        w.reserve_symbol_index(sec);
    }
    let symtab_index = w.reserve_symtab_section_index();
    w.reserve_symtab();
    if w.symtab_shndx_needed() {
        w.reserve_symtab_shndx_section_index();
    }
    w.reserve_symtab_shndx();
    w.reserve_strtab_section_index();
    w.reserve_strtab().map_err(werr)?;
    for (p, s) in placed.iter_mut().zip(&obj.sections) {
        if !s.relocations.is_empty() {
            p.rel_offset = w.reserve_relocations(s.relocations.len(), false);
        }
    }
    w.reserve_shstrtab_section_index();
    w.reserve_shstrtab().map_err(werr)?;
    w.reserve_section_headers();

    w.write_file_header(&FileHeader {
        os_abi: elf::ELFOSABI_NONE,
        abi_version: 0,
        e_type: elf::ET_REL,
        e_machine: elf::EM_BPF,
        e_entry: 0,
        e_flags: elf::FileFlags(obj.elf_flags),
    })
    .map_err(werr)?;
    for (i, s) in obj.sections.iter().enumerate() {
        w.write_align(s.align.max(1).next_power_of_two());
        debug_assert_eq!(placed[i].offset, w.len());
        if s.sh_type != elf::SHT_NOBITS.0 {
            w.write(&contents[i]);
        }
    }
    w.write_null_symbol();
    for &i in &order {
        let s = &obj.symbols[i];
        let (section, st_shndx) = match s.place {
            SymbolPlace::Undefined => (None, elf::SHN_UNDEF),
            SymbolPlace::Absolute => (None, elf::SHN_ABS),
            SymbolPlace::Common => (None, elf::SHN_COMMON),
            SymbolPlace::Section(id) => (Some(placed[id].index.0), elf::SymbolSection(0)),
        };
        let bind = match s.binding {
            Binding::Local => elf::STB_LOCAL,
            Binding::Global => elf::STB_GLOBAL,
            Binding::Weak => elf::STB_WEAK,
        };
        let ty = match s.kind {
            SymbolKind::NoType => elf::STT_NOTYPE,
            SymbolKind::Object => elf::STT_OBJECT,
            SymbolKind::Func => elf::STT_FUNC,
            SymbolKind::Section => elf::STT_SECTION,
            SymbolKind::File => elf::STT_FILE,
            SymbolKind::Other(t) => elf::SymbolType(t),
        };
        let vis = match s.visibility {
            Visibility::Default => elf::STV_DEFAULT,
            Visibility::Internal => elf::STV_INTERNAL,
            Visibility::Hidden => elf::STV_HIDDEN,
            Visibility::Protected => elf::STV_PROTECTED,
        };
        w.write_symbol(&Sym {
            section,
            st_name: w.string_offset(sym_names[i]),
            st_info: elf::SymbolInfo::new(bind, ty),
            st_other: elf::SymbolOther(vis.0),
            st_shndx,
            st_value: s.value,
            st_size: s.size,
        });
    }
    w.write_symtab_shndx();
    w.write_strtab();
    for s in &obj.sections {
        if s.relocations.is_empty() {
            continue;
        }
        w.write_align_relocation();
        for r in &s.relocations {
            w.write_relocation(
                false,
                &Rel {
                    r_offset: r.offset,
                    r_sym: new_index[r.symbol],
                    r_type: elf::RelocationType(r.r_type),
                    r_addend: 0,
                },
            );
        }
    }
    w.write_shstrtab();
    w.write_null_section_header();
    for (i, (p, s)) in placed.iter().zip(&obj.sections).enumerate() {
        w.write_section_header(&SectionHeader {
            sh_name: w.section_name_offset(Some(p.name)),
            sh_type: elf::SectionType(s.sh_type),
            sh_flags: elf::SectionFlags(s.flags),
            sh_addr: 0,
            sh_offset: p.offset,
            sh_size: if s.sh_type == elf::SHT_NOBITS.0 {
                s.size
            } else {
                contents[i].len() as u64
            },
            sh_link: 0,
            sh_info: 0,
            sh_addralign: s.align,
            sh_entsize: s.entsize,
        });
        if let Some(rel_name) = p.rel_name {
            w.write_relocation_section_header(
                rel_name,
                p.index,
                symtab_index,
                p.rel_offset,
                s.relocations.len(),
                false,
            );
            debug_assert_eq!(p.rel_index.0, p.index.0 + 1);
        }
    }
    w.write_symtab_section_header(num_local);
    w.write_symtab_shndx_section_header();
    w.write_strtab_section_header();
    w.write_shstrtab_section_header();
    debug_assert_eq!(w.reserved_len(), w.len());
    Ok(buf)
}
