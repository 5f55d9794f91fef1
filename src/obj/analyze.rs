//! The analysis part of [`Object::parse`]: functions, programs, maps, externs and classified
//! code relocations, computed from sections, symbols and BTF.

use super::maps::{self, Map, MapDef, MapKind, map_flags, map_type};
use super::reloc::{self, InsnReloc, RelocKind, Target};
use super::{
    Binding, Extern, ExternKind, Function, Object, Program, SectionKind, SymbolId, SymbolKind,
    SymbolPlace, progs,
};
use crate::Error;
use crate::insn::{RawInsn, decode};

pub(super) fn analyze(obj: &mut Object) -> Result<(), Error> {
    obj.functions = functions(obj)?;
    obj.programs = programs(obj);
    obj.maps = maps(obj)?;
    obj.externs = externs(obj)?;
    if obj.externs.iter().any(|e| e.kind == ExternKind::Kconfig) {
        obj.maps.push(Map {
            name: ".kconfig".into(),
            kind: MapKind::Kconfig,
            section: None,
            symbol: None,
            offset: 0,
            size: 0,
            def: MapDef {
                map_type: map_type::ARRAY,
                key_size: Some(4),
                max_entries: 1,
                map_flags: map_flags::MMAPABLE | map_flags::RDONLY_PROG,
                ..MapDef::default()
            },
            values: Vec::new(),
            legacy: None,
            btf_id: None,
        });
    }
    classify_relocations(obj)?;
    Ok(())
}

/// Every sized `STT_FUNC` symbol in a code section, with its slots checked for the one
/// structural property the ELF layer can see: `ld_imm64` has its second half.
fn functions(obj: &Object) -> Result<Vec<Function>, Error> {
    let mut out = Vec::new();
    for (id, sym) in obj.symbols.iter().enumerate() {
        let SymbolPlace::Section(sec_id) = sym.place else {
            continue;
        };
        let sec = &obj.sections[sec_id];
        if sym.kind != SymbolKind::Func || sec.kind != SectionKind::Code {
            continue;
        }
        let bad = |message: String| Error::Elf {
            context: format!("function `{}` in section `{}`", sym.name, sec.name),
            message,
        };
        if sym.size == 0 {
            return Err(bad("function symbol without a size".into()));
        }
        if sym.value % 8 != 0 || sym.size % 8 != 0 {
            return Err(bad(format!(
                "range [{:#x}, +{:#x}) is not slot aligned",
                sym.value, sym.size
            )));
        }
        let end = sym.value.checked_add(sym.size).filter(|&e| e <= sec.size);
        let Some(end) = end else {
            return Err(bad(format!(
                "range [{:#x}, +{:#x}) extends past the section end ({:#x})",
                sym.value, sym.size, sec.size
            )));
        };
        let insns = decode(&sec.data[sym.value as usize..end as usize]).map_err(|e| {
            Error::Instruction {
                section: sec.name.clone(),
                function: sym.name.clone(),
                slot: e.slot,
                message: format!("{} (bytes {:02x?})", e.kind, e.bytes),
            }
        })?;
        out.push(Function {
            name: sym.name.clone(),
            symbol: id,
            section: sec_id,
            offset: sym.value,
            insns,
            relocations: Vec::new(),
        });
    }
    out.sort_by_key(|f| (f.section, f.offset));
    for w in out.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a.section == b.section && a.offset + a.byte_len() > b.offset {
            return Err(Error::Elf {
                context: format!("section `{}`", obj.sections[a.section].name),
                message: format!("functions `{}` and `{}` overlap", a.name, b.name),
            });
        }
    }
    Ok(out)
}

fn programs(obj: &Object) -> Vec<Program> {
    obj.functions
        .iter()
        .enumerate()
        .filter(|(_, f)| obj.sections[f.section].name != ".text")
        .map(|(i, f)| {
            let section_name = obj.sections[f.section].name.clone();
            Program {
                function: i,
                prog_type: progs::program_type(&section_name),
                section_name,
                is_static: obj.symbols[f.symbol].binding == Binding::Local,
            }
        })
        .collect()
}

fn maps(obj: &Object) -> Result<Vec<Map>, Error> {
    let mut out = Vec::new();
    for (id, sec) in obj.sections.iter().enumerate() {
        match sec.kind {
            SectionKind::LegacyMaps => out.extend(maps::legacy_maps(obj, id)?),
            SectionKind::Maps => out.extend(maps::btf_maps(obj, id)?),
            SectionKind::Data | SectionKind::ReadOnlyData | SectionKind::Bss => {
                out.push(maps::global_data_map(obj, id))
            }
            _ => {}
        }
    }
    Ok(out)
}

fn is_kconfig_name(name: &str) -> bool {
    name.starts_with("CONFIG_") || name.starts_with("LINUX_")
}

fn externs(obj: &Object) -> Result<Vec<Extern>, Error> {
    let mut declared: Vec<(&str, ExternKind, u32)> = Vec::new();
    if let Some(btf) = &obj.btf {
        for sec in [".kconfig", ".ksyms"] {
            let Some((ds, _)) = btf.find_datasec(sec) else {
                continue;
            };
            for v in btf.datasec_vars(ds)? {
                let kind = match (sec, v.var) {
                    (".kconfig", _) => ExternKind::Kconfig,
                    (_, None) => ExternKind::Kfunc,
                    (_, Some(_)) => ExternKind::Ksym,
                };
                declared.push((v.name, kind, v.type_id));
            }
        }
    }
    let called: std::collections::HashSet<SymbolId> = obj
        .sections
        .iter()
        .filter(|s| s.kind == SectionKind::Code)
        .flat_map(|s| s.relocations.iter())
        .filter(|r| r.r_type == super::r_type::R_BPF_64_32)
        .map(|r| r.symbol)
        .collect();
    Ok(obj
        .symbols
        .iter()
        .enumerate()
        .filter(|(_, s)| s.place == SymbolPlace::Undefined && !s.name.is_empty())
        .map(|(id, s)| {
            // The BTF DATASEC an extern is declared in decides, as in libbpf; objects without BTF
            // fall back to usage and libbpf's naming conventions.
            let (kind, btf_id) = match declared.iter().find(|(n, _, _)| *n == s.name) {
                Some(&(_, kind, btf_id)) => (kind, Some(btf_id)),
                None if called.contains(&id) || s.kind == SymbolKind::Func => {
                    (ExternKind::Kfunc, None)
                }
                None if is_kconfig_name(&s.name) => (ExternKind::Kconfig, None),
                None => (ExternKind::Ksym, None),
            };
            Extern {
                name: s.name.clone(),
                symbol: id,
                kind,
                weak: s.binding == Binding::Weak,
                btf_id,
            }
        })
        .collect())
}

fn classify_relocations(obj: &mut Object) -> Result<(), Error> {
    let mut per_function: Vec<Vec<InsnReloc>> = vec![Vec::new(); obj.functions.len()];
    for (sec_id, sec) in obj.sections.iter().enumerate() {
        if sec.kind != SectionKind::Code {
            continue;
        }
        for (index, rel) in sec.relocations.iter().enumerate() {
            let bad = |message: String| Error::Relocation {
                section: sec.name.clone(),
                index,
                offset: rel.offset,
                message,
            };
            let fid = obj
                .functions
                .iter()
                .position(|f| {
                    f.section == sec_id
                        && rel.offset >= f.offset
                        && rel.offset < f.offset + f.byte_len()
                })
                .ok_or_else(|| bad("not inside any function".into()))?;
            let f = &obj.functions[fid];
            // Code relocations patch whole instructions: one that starts inside an instruction
            // (or runs past the section) cannot be applied by any loader.
            if rel.offset % RawInsn::SIZE as u64 != 0 {
                return Err(bad("not at an instruction boundary".into()));
            }
            let slot = ((rel.offset - f.offset) / RawInsn::SIZE as u64) as usize;
            let at = rel.offset as usize;
            let bytes: [u8; RawInsn::SIZE] = sec
                .data
                .get(at..at + RawInsn::SIZE)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("instruction runs past the end of the section".into()))?;
            let raw = RawInsn::from_le_bytes(bytes);
            let target = reloc::classify(obj, sec_id, index, rel, &raw)?;
            let kind = match target {
                Target::Map { section, offset } => {
                    let map = obj
                        .maps
                        .iter()
                        .find(|m| m.section == Some(section) && m.offset == offset)
                        .ok_or_else(|| {
                            bad(format!(
                                "no map defined at offset {offset:#x} of section `{}`",
                                obj.sections[section].name
                            ))
                        })?;
                    RelocKind::Map {
                        map: map.name.clone(),
                    }
                }
                Target::Data { section, offset } => RelocKind::GlobalData { section, offset },
                Target::Code {
                    section,
                    offset,
                    call,
                } => {
                    let target = obj
                        .functions
                        .iter()
                        .position(|g| g.section == section && g.offset == offset)
                        .ok_or_else(|| {
                            bad(format!(
                                "{} target offset {offset:#x} of section `{}` is not a function start",
                                if call { "call" } else { "function address" },
                                obj.sections[section].name
                            ))
                        })?;
                    if call {
                        RelocKind::Call { target }
                    } else {
                        RelocKind::FuncAddr { target }
                    }
                }
                Target::ExternCall { symbol } => RelocKind::KfuncCall {
                    name: obj.symbols[symbol].name.clone(),
                },
                Target::ExternRef { symbol } => {
                    let ext = obj.externs.iter().find(|e| e.symbol == symbol);
                    RelocKind::Extern {
                        name: obj.symbols[symbol].name.clone(),
                        kind: ext.map_or(ExternKind::Ksym, |e| e.kind),
                    }
                }
            };
            per_function[fid].push(InsnReloc {
                slot,
                relocation: index,
                symbol: rel.symbol,
                kind,
            });
        }
    }
    for (f, relocs) in obj.functions.iter_mut().zip(per_function) {
        f.relocations = relocs;
    }
    Ok(())
}
