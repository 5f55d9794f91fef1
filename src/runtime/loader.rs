//! From an [`Object`] to a [`Module`]: functions with their relocations tied to module indices,
//! maps with their initial contents, entry points and source lines.

use std::collections::HashMap;

use super::{Config, Machine, MapInit, Module, ModuleFunction, ModuleMap, ModuleProgram, Target};
use crate::Error;
use crate::obj::maps::map_flags;
use crate::obj::{ExternKind, MapKind, MapValue, Object, RelocKind, SectionKind};

impl Module {
    /// Builds the runnable form of every function, map and program of `obj`. Relocations the
    /// runtime cannot resolve (kernel variables, `.kconfig` values) are errors naming the
    /// function and slot; map types it cannot model are reported by [`Machine::new`].
    /// `config` supplies the `.kconfig` values libbpf would read from the kernel.
    pub fn from_object(obj: &Object, config: &Config) -> Result<Module, Error> {
        let mut maps = Vec::new();
        let mut map_index: HashMap<&str, usize> = HashMap::new();
        let mut global_by_section: HashMap<usize, usize> = HashMap::new();
        for m in &obj.maps {
            if m.kind == MapKind::Kconfig {
                // Backed by libbpf from the running kernel's config: only an `Extern`
                // relocation reaches it, and those are refused below.
                continue;
            }
            let index = maps.len();
            map_index.insert(m.name.as_str(), index);
            let err = |message: String| Error::Map {
                map: m.name.clone(),
                message,
            };
            let size_of = |size: Option<u32>, ty: Option<u32>, what: &str| -> Result<u32, Error> {
                if let Some(s) = size {
                    return Ok(s);
                }
                match (ty, &obj.btf) {
                    (Some(t), Some(btf)) => btf
                        .resolve_size(t)
                        .map_err(|e| err(format!("{what} type: {e}"))),
                    // Maps without keys or values (ringbuf, perf event array) have none.
                    _ => Ok(0),
                }
            };
            let key_size = size_of(m.def.key_size, m.def.key_type, "key")?;
            let value_size = size_of(m.def.value_size, m.def.value_type, "value")?;
            let mut read_only = m.def.map_flags & map_flags::RDONLY_PROG != 0;
            let init = if m.kind == MapKind::GlobalData {
                let sec_id = m
                    .section
                    .ok_or_else(|| err("global data map without a section".into()))?;
                let sec = &obj.sections[sec_id];
                read_only |= sec.kind == SectionKind::ReadOnlyData;
                global_by_section.insert(sec_id, index);
                MapInit::Data(sec.data.clone())
            } else {
                MapInit::Empty
            };
            maps.push(ModuleMap {
                name: m.name.clone(),
                map_type: m.def.map_type,
                key_size,
                value_size,
                max_entries: m.def.max_entries,
                map_flags: m.def.map_flags,
                read_only,
                init,
            });
        }
        let func_index: HashMap<&str, usize> = obj
            .functions
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.as_str(), i))
            .collect();
        // Initial PROG_ARRAY / map-in-map slots need every map and function indexed first.
        for m in &obj.maps {
            let Some(&index) = map_index.get(m.name.as_str()) else {
                continue;
            };
            let err = |message: String| Error::Map {
                map: m.name.clone(),
                message,
            };
            let mut programs = Vec::new();
            let mut inner = Vec::new();
            for v in &m.values {
                match v {
                    MapValue::Program { index, function } => {
                        let f = func_index.get(function.as_str()).ok_or_else(|| {
                            err(format!("slot {index} names unknown function `{function}`"))
                        })?;
                        programs.push((*index, *f));
                    }
                    MapValue::Map { index, map } => {
                        let i = map_index.get(map.as_str()).ok_or_else(|| {
                            err(format!("slot {index} names unknown map `{map}`"))
                        })?;
                        inner.push((*index, *i));
                    }
                }
            }
            if !programs.is_empty() {
                maps[index].init = MapInit::Programs(programs);
            } else if !inner.is_empty() {
                maps[index].init = MapInit::Maps(inner);
            }
        }

        // Each `.kconfig` extern gets its own read-only value; libbpf packs them into one map,
        // which programs cannot observe.
        let mut kconfig_maps: HashMap<&str, usize> = HashMap::new();
        let mut functions = Vec::with_capacity(obj.functions.len());
        for (fi, f) in obj.functions.iter().enumerate() {
            let section = obj.sections[f.section].name.clone();
            let err = |slot: usize, message: String| Error::Instruction {
                section: section.clone(),
                function: f.name.clone(),
                slot,
                message,
            };
            let mut relocations = Vec::with_capacity(f.relocations.len());
            for r in &f.relocations {
                let t = match &r.kind {
                    RelocKind::Map { map } => Target::Map(
                        *map_index
                            .get(map.as_str())
                            .ok_or_else(|| err(r.slot, format!("unknown map `{map}`")))?,
                    ),
                    RelocKind::GlobalData { section, offset } => {
                        let map = *global_by_section.get(section).ok_or_else(|| {
                            err(r.slot, format!("no global data map for section #{section}"))
                        })?;
                        let offset = u32::try_from(*offset).map_err(|_| {
                            err(r.slot, format!("global data offset {offset} is too large"))
                        })?;
                        Target::GlobalData { map, offset }
                    }
                    RelocKind::Call { target } => Target::Call(*target),
                    RelocKind::FuncAddr { target } => Target::FuncAddr(*target),
                    RelocKind::KfuncCall { name } => Target::Kfunc(name.clone()),
                    RelocKind::Extern {
                        name,
                        kind: ExternKind::Kconfig,
                    } => {
                        let map = match kconfig_maps.get(name.as_str()) {
                            Some(&m) => m,
                            None => {
                                let data = kconfig_value(obj, name, config)
                                    .map_err(|message| err(r.slot, message))?;
                                maps.push(ModuleMap {
                                    name: format!(".kconfig:{name}"),
                                    map_type: super::maps::map_type::ARRAY,
                                    key_size: 4,
                                    value_size: data.len() as u32,
                                    max_entries: 1,
                                    map_flags: map_flags::RDONLY_PROG,
                                    read_only: true,
                                    init: MapInit::Data(data),
                                });
                                kconfig_maps.insert(name.as_str(), maps.len() - 1);
                                maps.len() - 1
                            }
                        };
                        Target::GlobalData { map, offset: 0 }
                    }
                    RelocKind::Extern { name, kind } => {
                        return Err(err(
                            r.slot,
                            format!(
                                "extern `{name}` ({kind:?}) is resolved by libbpf from the running kernel; the runtime does not model it"
                            ),
                        ));
                    }
                };
                relocations.push((r.slot, t));
            }
            // Calls and function addresses inside one section are resolved by the assembler
            // and carry no relocation: the target is a slot of the same section.
            for si in &f.insns {
                if f.relocations.iter().any(|r| r.slot == si.slot) {
                    continue;
                }
                let Some(rel) = si.insn.subprog_target(si.slot) else {
                    continue;
                };
                let target_slot = f.first_slot() as i64 + rel;
                let callee = obj
                    .functions
                    .iter()
                    .position(|g| g.section == f.section && g.first_slot() as i64 == target_slot);
                let Some(callee) = callee else {
                    return Err(err(
                        si.slot,
                        format!(
                            "call or function address to section slot {target_slot}, which starts no function"
                        ),
                    ));
                };
                let t = match si.insn {
                    crate::insn::Insn::Call(_) => Target::Call(callee),
                    _ => Target::FuncAddr(callee),
                };
                relocations.push((si.slot, t));
            }
            let mut insns = f.insns.clone();
            let relos = core_relos(
                obj,
                &section,
                f.first_slot(),
                f.first_slot() + f.slot_count(),
            );
            if !relos.is_empty()
                && let Some(btf) = &obj.btf
            {
                let layout = super::kernel::layout();
                super::kernel::apply_core(layout, btf, &relos, &mut insns)
                    .map_err(|(slot, message)| err(slot, format!("CO-RE: {message}")))?;
            }
            functions.push(ModuleFunction {
                name: f.name.clone(),
                section,
                insns,
                relocations,
                lines: obj.function_lines(fi),
            });
        }
        let programs = obj
            .programs
            .iter()
            .map(|p| ModuleProgram {
                name: obj.functions[p.function].name.clone(),
                function: p.function,
            })
            .collect();
        Ok(Module {
            functions,
            maps,
            programs,
        })
    }
}

impl Machine {
    /// Loads `obj` with the generic helpers.
    pub fn from_object(obj: &Object, config: Config) -> Result<Machine, Error> {
        Machine::new(Module::from_object(obj, &config)?, config)
    }

    /// Loads `obj` as sock_ops programs: the generic helpers plus the sock_ops helpers and
    /// kfuncs ([`super::sockhelpers::sock_ops_table`]).
    /// Programs of other types in the object (an `sk_msg` program beside a sockmap) are not
    /// entry points: the kernel would load them with their own helper set.
    pub fn sock_ops(obj: &Object, config: Config) -> Result<Machine, Error> {
        let module = Module::sock_ops(obj, &config)?;
        Machine::sock_ops_module(module, config)
    }

    /// [`Machine::sock_ops`] from a module built by [`Module::sock_ops`]: building the module
    /// (CO-RE relocations included) is most of a load, so callers that need several machines
    /// of one object build it once and clone it.
    pub fn sock_ops_module(module: Module, config: Config) -> Result<Machine, Error> {
        Machine::with_helpers(module, config, &super::sockhelpers::sock_ops_table())
    }
}

impl Module {
    /// [`Module::from_object`] with only the sock_ops programs as entry points (what
    /// [`Machine::sock_ops`] runs).
    pub fn sock_ops(obj: &Object, config: &Config) -> Result<Module, Error> {
        let mut module = Module::from_object(obj, config)?;
        let keep: Vec<bool> = obj
            .programs
            .iter()
            .map(|p| p.prog_type == crate::obj::ProgramType::SockOps)
            .collect();
        let mut k = keep.iter();
        module.programs.retain(|_| *k.next().unwrap_or(&true));
        Ok(module)
    }
}

/// The bytes of `.kconfig` extern `name`, sized by its BTF type. Unknown values are 0 for weak
/// externs and an error otherwise, as in libbpf.
fn kconfig_value(obj: &Object, name: &str, config: &Config) -> Result<Vec<u8>, String> {
    let ext = obj
        .externs
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| format!("kconfig extern `{name}` is not declared"))?;
    let size = match (ext.btf_id, &obj.btf) {
        (Some(id), Some(btf)) => btf
            .resolve_size(id)
            .map_err(|e| format!("kconfig extern `{name}`: {e}"))?,
        _ => return Err(format!("kconfig extern `{name}` has no BTF type")),
    };
    if size == 0 || size > 8 {
        return Err(format!(
            "kconfig extern `{name}` of {size} bytes is not modelled"
        ));
    }
    let value = match name {
        "CONFIG_HZ" => Some(config.hz),
        "LINUX_KERNEL_VERSION" => Some(u64::from(config.kernel_version)),
        _ => config.kconfig.get(name).copied(),
    };
    let value = match (value, ext.weak) {
        (Some(v), _) => v,
        (None, true) => 0,
        (None, false) => {
            return Err(format!(
                "kconfig extern `{name}` has no value (set it in Config::kconfig)"
            ));
        }
    };
    Ok(value.to_le_bytes()[..size as usize].to_vec())
}

/// The CO-RE relocations of the function at section slots `[first, end)`, by function slot.
fn core_relos(
    obj: &Object,
    section: &str,
    first: usize,
    end: usize,
) -> Vec<(usize, crate::btf::CoreRelo)> {
    let (Some(btf), Some(ext)) = (&obj.btf, &obj.btf_ext) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for sec in &ext.core_relo.sections {
        if btf.strings.get(sec.sec_name_off) != Some(section) {
            continue;
        }
        for r in &sec.records {
            let s = (r.insn_off / 8) as usize;
            if (first..end).contains(&s) {
                out.push((s - first, *r));
            }
        }
    }
    out
}
