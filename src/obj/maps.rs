//! Maps: BTF-defined `.maps`, legacy `maps` (`struct bpf_map_def`), global data and `.kconfig`.

use super::r_type::{R_BPF_64_64, R_BPF_64_ABS64};
use super::{Object, SectionId, SectionKind, SymbolId, SymbolKind, SymbolPlace};
use crate::Error;
use crate::btf::BtfMapDef;

/// `BPF_MAP_TYPE_*` values used by the reader.
pub mod map_type {
    pub const HASH: u32 = 1;
    pub const ARRAY: u32 = 2;
    pub const PROG_ARRAY: u32 = 3;
    pub const ARRAY_OF_MAPS: u32 = 12;
    pub const HASH_OF_MAPS: u32 = 13;
    pub const STRUCT_OPS: u32 = 26;
}

/// `BPF_F_*` map flags libbpf sets on global data maps.
pub mod map_flags {
    pub const RDONLY_PROG: u32 = 1 << 7;
    pub const MMAPABLE: u32 = 1 << 10;
}

/// Where libbpf pins a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pinning {
    #[default]
    None,
    /// `LIBBPF_PIN_BY_NAME` (1): `<pin root>/<map name>`.
    ByName,
    /// Any other value, kept verbatim (libbpf refuses it).
    Other(u32),
}

impl Pinning {
    pub fn from_u32(v: u32) -> Pinning {
        match v {
            0 => Pinning::None,
            1 => Pinning::ByName,
            v => Pinning::Other(v),
        }
    }

    pub fn to_u32(self) -> u32 {
        match self {
            Pinning::None => 0,
            Pinning::ByName => 1,
            Pinning::Other(v) => v,
        }
    }
}

/// The definition the kernel map is created from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MapDef {
    pub map_type: u32,
    /// Key size in bytes (`key_size`, or the size of the `key` type).
    pub key_size: Option<u32>,
    pub value_size: Option<u32>,
    /// BTF type id of the key (`__type(key, ...)`), when given as a type.
    pub key_type: Option<u32>,
    pub value_type: Option<u32>,
    pub max_entries: u32,
    pub map_flags: u32,
    pub pinning: Pinning,
    pub numa_node: Option<u32>,
    pub map_extra: u64,
    /// The inner map definition of a map-in-map (`__array(values, struct inner)`).
    pub inner: Option<Box<MapDef>>,
}

/// The raw `struct bpf_map_def` of a legacy `maps` section entry.
///
/// The first five fields are libbpf's; the rest exist only if the entry is long enough. Two
/// longer layouts are in use: samples/bpf's (`inner_map_idx`, `numa_node`: 28 bytes) and
/// iproute2's `struct bpf_elf_map` (`id`, `pinning`, `inner_id`, `inner_idx`: 36 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegacyMapDef {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    /// Every u32 after `map_flags`, verbatim.
    pub extra: Vec<u32>,
}

impl LegacyMapDef {
    /// iproute2's pinning (`PIN_GLOBAL_NS` = 2) or none: libbpf's by-name pinning is the closest
    /// equivalent of the global namespace.
    pub fn pinning(&self) -> Pinning {
        if self.extra.len() >= 4 && self.extra[1] == 2 {
            Pinning::ByName
        } else {
            Pinning::None
        }
    }

    pub fn numa_node(&self) -> Option<u32> {
        (self.extra.len() == 2).then(|| self.extra[1])
    }
}

/// An initialiser of a PROG_ARRAY or map-in-map slot (`.values = { [i] = &x }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapValue {
    /// Slot `index` holds the program whose function is named `function`.
    Program { index: u32, function: String },
    /// Slot `index` holds the map `map`.
    Map { index: u32, map: String },
}

/// Where a map comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// A variable in `.maps`, described by its BTF type.
    BtfDefined,
    /// An entry of a legacy `maps` section.
    Legacy,
    /// A global data section (`.data*`, `.rodata*`, `.bss*`): an ARRAY with one element.
    GlobalData,
    /// The `.kconfig` externs, which libbpf backs with a read-only ARRAY.
    Kconfig,
}

/// One map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    /// The symbol name, or the section name for global data and `.kconfig`.
    pub name: String,
    pub kind: MapKind,
    /// The section holding the definition or data (none for `.kconfig`).
    pub section: Option<SectionId>,
    pub symbol: Option<SymbolId>,
    /// Byte offset and size of the definition inside its section.
    pub offset: u64,
    pub size: u64,
    pub def: MapDef,
    /// Initialised slots, for PROG_ARRAY and map-in-map.
    pub values: Vec<MapValue>,
    /// The raw definition of a legacy map.
    pub legacy: Option<LegacyMapDef>,
    /// BTF `VAR` id of a BTF-defined map, `DATASEC` id of a global data map.
    pub btf_id: Option<u32>,
}

/// Reads the legacy `maps` section: one `struct bpf_map_def` per `OBJECT` symbol, as libbpf
/// before 1.0 did.
pub(super) fn legacy_maps(obj: &Object, sec_id: SectionId) -> Result<Vec<Map>, Error> {
    let sec = &obj.sections[sec_id];
    let mut syms: Vec<(SymbolId, &super::Symbol)> = obj
        .symbols
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.place == SymbolPlace::Section(sec_id)
                && matches!(s.kind, SymbolKind::Object | SymbolKind::NoType)
        })
        .collect();
    syms.sort_by_key(|(_, s)| s.value);
    let mut out = Vec::new();
    for (i, (id, sym)) in syms.iter().enumerate() {
        let bad = |message: String| Error::Map {
            map: sym.name.clone(),
            message,
        };
        // Symbols without a size (hand-written assembly) extend to the next definition.
        let size = if sym.size != 0 {
            sym.size
        } else {
            let next = syms.get(i + 1).map_or(sec.size, |(_, n)| n.value);
            next.saturating_sub(sym.value)
        };
        if size < 20 || size % 4 != 0 {
            return Err(bad(format!(
                "legacy map definition of {size} bytes; expected 20 or more, a multiple of 4"
            )));
        }
        let end = sym
            .value
            .checked_add(size)
            .filter(|&e| e <= sec.data.len() as u64)
            .ok_or_else(|| {
                bad(format!(
                    "definition [{:#x}, +{size}) lies outside section `maps` ({} bytes)",
                    sym.value,
                    sec.data.len()
                ))
            })?;
        let words: Vec<u32> = sec.data[sym.value as usize..end as usize]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let legacy = LegacyMapDef {
            map_type: words[0],
            key_size: words[1],
            value_size: words[2],
            max_entries: words[3],
            map_flags: words[4],
            extra: words[5..].to_vec(),
        };
        out.push(Map {
            name: sym.name.clone(),
            kind: MapKind::Legacy,
            section: Some(sec_id),
            symbol: Some(*id),
            offset: sym.value,
            size,
            def: MapDef {
                map_type: legacy.map_type,
                key_size: Some(legacy.key_size),
                value_size: Some(legacy.value_size),
                max_entries: legacy.max_entries,
                map_flags: legacy.map_flags,
                pinning: legacy.pinning(),
                numa_node: legacy.numa_node(),
                ..MapDef::default()
            },
            values: Vec::new(),
            legacy: Some(legacy),
            btf_id: None,
        });
    }
    Ok(out)
}

/// The ARRAY map libbpf creates for a global data section.
pub(super) fn global_data_map(obj: &Object, sec_id: SectionId) -> Map {
    let sec = &obj.sections[sec_id];
    let btf_id = obj
        .btf
        .as_ref()
        .and_then(|b| b.find_datasec(&sec.name))
        .map(|(id, _)| id);
    let mut flags = map_flags::MMAPABLE;
    if sec.kind == SectionKind::ReadOnlyData {
        flags |= map_flags::RDONLY_PROG;
    }
    Map {
        name: sec.name.clone(),
        kind: MapKind::GlobalData,
        section: Some(sec_id),
        symbol: None,
        offset: 0,
        size: sec.size,
        def: MapDef {
            map_type: map_type::ARRAY,
            key_size: Some(4),
            value_size: Some(sec.size as u32),
            max_entries: 1,
            map_flags: flags,
            ..MapDef::default()
        },
        values: Vec::new(),
        legacy: None,
        btf_id,
    }
}

fn def_from_btf(d: &BtfMapDef) -> MapDef {
    MapDef {
        map_type: d.map_type.unwrap_or(0),
        key_size: d.key_size,
        value_size: d.value_size,
        key_type: d.key_type_id,
        value_type: d.value_type_id,
        max_entries: d.max_entries.unwrap_or(0),
        map_flags: d.map_flags.unwrap_or(0),
        pinning: Pinning::from_u32(d.pinning.unwrap_or(0)),
        numa_node: d.numa_node,
        map_extra: d.map_extra.unwrap_or(0),
        inner: d
            .values
            .as_ref()
            .and_then(|v| v.kind.inner())
            .map(|i| Box::new(def_from_btf(i))),
    }
}

/// BTF-defined maps: each `.maps` VAR of the BTF, placed by its symbol (clang leaves DATASEC
/// offsets 0; libbpf matches variables to symbols by name too), with the `values` initialisers
/// read from the section's relocations.
pub(super) fn btf_maps(obj: &Object, sec_id: SectionId) -> Result<Vec<Map>, Error> {
    let sec = &obj.sections[sec_id];
    let mut syms: Vec<(SymbolId, &super::Symbol)> = obj
        .symbols
        .iter()
        .enumerate()
        .filter(|(_, s)| s.place == SymbolPlace::Section(sec_id) && s.kind == SymbolKind::Object)
        .collect();
    syms.sort_by_key(|(_, s)| s.value);
    let Some(btf) = &obj.btf else {
        return match syms.first() {
            None => Ok(Vec::new()),
            Some((_, s)) => Err(Error::Map {
                map: s.name.clone(),
                message: "BTF-defined map in `.maps`, but the object has no .BTF".into(),
            }),
        };
    };
    let defs = btf.map_defs()?;
    let mut out = Vec::new();
    for (id, sym) in syms {
        let bad = |message: String| Error::Map {
            map: sym.name.clone(),
            message,
        };
        let d = defs
            .iter()
            .find(|d| d.name == sym.name)
            .ok_or_else(|| bad("no VAR of that name in the `.maps` DATASEC".into()))?;
        if sym.value.checked_add(sym.size).is_none_or(|e| e > sec.size) {
            return Err(bad(format!(
                "symbol [{:#x}, +{:#x}) lies outside `.maps` ({:#x} bytes)",
                sym.value, sym.size, sec.size
            )));
        }
        let mut values = Vec::new();
        if let Some(v) = &d.values {
            let start = sym.value + u64::from(v.member_offset);
            let end = sym.value + sym.size;
            for (ri, r) in sec.relocations.iter().enumerate() {
                if r.offset < start || r.offset >= end {
                    continue;
                }
                let bad_rel = |message: String| Error::Relocation {
                    section: sec.name.clone(),
                    index: ri,
                    offset: r.offset,
                    message,
                };
                if (r.offset - start) % 8 != 0 {
                    return Err(bad_rel(format!(
                        "not at an 8-byte slot of `{}`'s values",
                        sym.name
                    )));
                }
                if r.r_type != R_BPF_64_ABS64 && r.r_type != R_BPF_64_64 {
                    return Err(bad_rel(format!(
                        "type {} for a `values` initialiser, expected R_BPF_64_ABS64",
                        r.r_type
                    )));
                }
                let index = ((r.offset - start) / 8) as u32;
                let target = &obj.symbols[r.symbol];
                let value = match (v.kind.inner(), target.kind) {
                    (None, SymbolKind::Func) => MapValue::Program {
                        index,
                        function: target.name.clone(),
                    },
                    (Some(_), SymbolKind::Object)
                        if target.place == SymbolPlace::Section(sec_id) =>
                    {
                        MapValue::Map {
                            index,
                            map: target.name.clone(),
                        }
                    }
                    _ => {
                        return Err(bad_rel(format!(
                            "`{}`'s values slot {index} refers to `{}`, which is not a {}",
                            sym.name,
                            target.name,
                            if v.kind.inner().is_some() {
                                "map in `.maps`"
                            } else {
                                "program"
                            }
                        )));
                    }
                };
                values.push(value);
            }
        }
        out.push(Map {
            name: sym.name.clone(),
            kind: MapKind::BtfDefined,
            section: Some(sec_id),
            symbol: Some(id),
            offset: sym.value,
            size: sym.size,
            def: def_from_btf(d),
            values,
            legacy: None,
            btf_id: Some(d.var_id),
        });
    }
    Ok(out)
}
