//! Conversions [`Object::write`] applies: legacy `maps` to BTF-defined `.maps`, and BTF for
//! objects without it. Both only append to the BTF, so existing type ids stay valid.

use super::maps::MapKind;
use super::{Binding, Object, SectionKind, SymbolKind, SymbolPlace, r_type};
use crate::Error;
use crate::btf::{Btf, BtfMapDef, FuncLinkage, SynthVar, VarLinkage, VarSecinfo};
use crate::insn::opcode::LD_IMM64;

pub(super) fn prepare_for_write(obj: &mut Object) -> Result<(), Error> {
    if obj.btf.is_none() {
        synthesize_btf(obj)?;
    }
    if obj
        .sections
        .iter()
        .any(|s| s.kind == SectionKind::LegacyMaps)
    {
        convert_legacy_maps(obj)?;
    }
    Ok(())
}

/// Gives an object without `.BTF` one: a FUNC per function and a DATASEC per global data
/// section with symbols, placed where clang would put `.BTF` (after the other sections).
fn synthesize_btf(obj: &mut Object) -> Result<(), Error> {
    let mut btf = Btf::new();
    for f in &obj.functions {
        let linkage = match obj.symbols[f.symbol].binding {
            Binding::Local => FuncLinkage::Static,
            _ => FuncLinkage::Global,
        };
        btf.add_program_func(&f.name, linkage)?;
    }
    for (id, sec) in obj.sections.iter().enumerate() {
        if !matches!(
            sec.kind,
            SectionKind::Data | SectionKind::ReadOnlyData | SectionKind::Bss
        ) {
            continue;
        }
        let vars: Vec<SynthVar> = obj
            .symbols
            .iter()
            .filter(|s| s.place == SymbolPlace::Section(id) && s.kind == SymbolKind::Object)
            .map(|s| SynthVar {
                name: s.name.clone(),
                offset: s.value as u32,
                size: s.size as u32,
                linkage: if s.binding == Binding::Local {
                    VarLinkage::Static
                } else {
                    VarLinkage::Global
                },
            })
            .collect();
        // The kernel rejects an empty DATASEC; sections without variables (merged strings) are
        // still mapped by libbpf from the ELF section alone.
        if !vars.is_empty() {
            btf.add_data_section(&sec.name, sec.size as u32, &vars)?;
        }
    }
    btf.validate()?;
    obj.btf = Some(btf);
    if !obj.sections.iter().any(|s| s.kind == SectionKind::Btf) {
        obj.sections.push(super::Section {
            name: ".BTF".into(),
            kind: SectionKind::Btf,
            sh_type: object::elf::SHT_PROGBITS.0,
            flags: 0,
            align: 4,
            entsize: 0,
            data: Vec::new(),
            size: 0,
            relocations: Vec::new(),
        });
    }
    Ok(())
}

/// Re-emits every legacy `struct bpf_map_def` as a BTF-defined map: the `maps` section becomes
/// `.maps` (one pointer-sized slot per declared attribute, as `bpf_helpers.h` lays them out), the
/// map symbols move to their new offsets, and BTF gets a STRUCT, VAR and `.maps` DATASEC entry.
fn convert_legacy_maps(obj: &mut Object) -> Result<(), Error> {
    let sec_id = obj
        .sections
        .iter()
        .position(|s| s.kind == SectionKind::LegacyMaps)
        .expect("caller checked");
    if obj.sections.iter().any(|s| s.kind == SectionKind::Maps) {
        return Err(Error::Unsupported(
            "object has both a legacy `maps` and a BTF `.maps` section".into(),
        ));
    }
    let legacy: Vec<_> = obj
        .maps
        .iter()
        .filter(|m| m.kind == MapKind::Legacy)
        .cloned()
        .collect();
    // clang describes the legacy section with a DATASEC named `maps`; libbpf would look for that
    // ELF section, which no longer exists, so the DATASEC goes (nothing refers to a DATASEC).
    let old_ds = obj
        .btf
        .as_ref()
        .and_then(|b| b.find_datasec("maps"))
        .map(|(id, _)| id);
    if let Some(old_ds) = old_ds {
        let len = obj.btf.as_ref().map_or(0, |b| b.types.len());
        let map = crate::btf::TypeIdMap::compacting(len, |id| id != old_ds);
        obj.apply_btf_id_map(&map)?;
    }
    let btf = obj.btf.as_mut().expect("synthesized before");
    let mut offset = 0u64;
    let mut moves = Vec::new();
    for m in &legacy {
        let def = &m.def;
        let bdef = BtfMapDef {
            name: m.name.clone(),
            map_type: Some(def.map_type),
            key_size: def.key_size,
            value_size: def.value_size,
            max_entries: Some(def.max_entries),
            map_flags: (def.map_flags != 0).then_some(def.map_flags),
            numa_node: def.numa_node,
            pinning: (def.pinning != super::Pinning::None).then(|| def.pinning.to_u32()),
            ..BtfMapDef::default()
        };
        if def.inner.is_some()
            || m.legacy
                .as_ref()
                .is_some_and(|l| l.extra.len() >= 4 && l.extra[3] != 0)
        {
            return Err(Error::Map {
                map: m.name.clone(),
                message: "legacy map-in-map (inner map index) cannot be converted".into(),
            });
        }
        // BTF map definitions spell "unspecified" as a missing `type`, so type 0 would come back
        // as a different, broken definition; the kernel refuses to create it anyway.
        // A BTF map is a named VAR; libbpf refuses an empty name.
        if m.name.is_empty() {
            return Err(Error::Map {
                map: "(unnamed)".into(),
                message: format!(
                    "the legacy map at offset {:#x} of `maps` has no symbol name, so it cannot \
                     be converted to a BTF-defined map",
                    m.offset
                ),
            });
        }
        if def.map_type == 0 {
            return Err(Error::Map {
                map: m.name.clone(),
                message: "legacy map of type 0 (BPF_MAP_TYPE_UNSPEC) cannot be converted".into(),
            });
        }
        let st = btf.add_map_def_struct(&bdef)?;
        let size = u64::from(btf.resolve_size(st)?);
        let var = btf.add_var(&m.name, st, VarLinkage::Global)?;
        btf.add_to_datasec(
            ".maps",
            VarSecinfo {
                type_id: var,
                offset: offset as u32,
                size: size as u32,
            },
        )?;
        moves.push((m.symbol, m.offset, offset, size));
        offset += size;
    }
    if let Some((ds, _)) = btf.find_datasec(".maps")
        && let crate::btf::TypeKind::Datasec(d) = &mut btf.types[ds as usize].kind
    {
        d.size = offset as u32;
    }
    btf.validate()?;

    // Code may address a map through the section symbol plus an offset in `imm` (static maps):
    // point such relocations at the map's own symbol so the new layout applies.
    let by_old_offset: Vec<(u64, usize)> = moves
        .iter()
        .filter_map(|&(sym, old, _, _)| sym.map(|s| (old, s)))
        .collect();
    for sec in obj
        .sections
        .iter_mut()
        .filter(|s| s.kind == SectionKind::Code)
    {
        for r in &mut sec.relocations {
            let s = &obj.symbols[r.symbol];
            if s.kind != SymbolKind::Section || s.place != SymbolPlace::Section(sec_id) {
                continue;
            }
            let at = r.offset as usize;
            if sec.data[at] != LD_IMM64 {
                continue;
            }
            let imm = i32::from_le_bytes(sec.data[at + 4..at + 8].try_into().expect("4 bytes"));
            let old = s.value.wrapping_add(imm as u32 as u64);
            let Some(&(_, map_sym)) = by_old_offset.iter().find(|(o, _)| *o == old) else {
                return Err(Error::Map {
                    map: format!("maps+{old:#x}"),
                    message: format!(
                        "section `{}` refers to no map definition at offset {:#x}",
                        sec.name, r.offset
                    ),
                });
            };
            sec.data[at + 4..at + 8].copy_from_slice(&0i32.to_le_bytes());
            r.symbol = map_sym;
        }
    }

    for &(sym, _, new_off, size) in &moves {
        if let Some(s) = sym {
            let s = &mut obj.symbols[s];
            s.value = new_off;
            s.size = size;
            s.kind = SymbolKind::Object;
            if s.binding == Binding::Local {
                return Err(Error::Map {
                    map: s.name.clone(),
                    message: "static legacy map: libbpf needs BTF-defined maps to be global".into(),
                });
            }
        }
    }
    let sec = &mut obj.sections[sec_id];
    if sec
        .relocations
        .iter()
        .any(|r| r.r_type != r_type::R_BPF_NONE)
    {
        return Err(Error::Unsupported(
            "relocations inside a legacy `maps` section".into(),
        ));
    }
    sec.name = ".maps".into();
    sec.kind = SectionKind::Maps;
    sec.sh_type = object::elf::SHT_PROGBITS.0;
    sec.flags = object::elf::SHF_ALLOC.0 | object::elf::SHF_WRITE.0;
    sec.align = 8;
    sec.entsize = 0;
    sec.data = vec![0; offset as usize];
    sec.size = offset;
    Ok(())
}
