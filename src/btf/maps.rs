//! BTF-defined maps: libbpf's `.maps` convention.
//!
//! A map is a global VAR in the `.maps` DATASEC whose type is a STRUCT. Each member encodes one
//! attribute by its *type*, never by a value in the section data:
//!
//! * `__uint(name, N)` is `int (*name)[N]`: PTR to ARRAY with `nelems = N` (`type`,
//!   `max_entries`, `map_flags`, `numa_node`, `key_size`, `value_size`, `pinning`, `map_extra`).
//!   `map_extra` may also be `__ulong`: an ENUM/ENUM64 with one enumerator holding the value.
//! * `__type(name, T)` is `typeof(T) *name`: PTR to T (`key`, `value`); the size is T's size.
//! * `__array(values, T)` is `typeof(T) *values[]`: zero-length ARRAY of PTR. For a PROG_ARRAY
//!   the pointee is a FUNC_PROTO; for ARRAY_OF_MAPS/HASH_OF_MAPS it is the inner map's STRUCT,
//!   parsed with the same rules (it may not be pinned or have its own `values`). `values` must be
//!   the last member and forces a 4-byte value size.
//!
//! The rules and their errors follow libbpf's `parse_btf_map_def` (libbpf 1.x).

use super::{Btf, BtfError, Kind, TypeId, TypeKind, VarLinkage};

/// `BPF_MAP_TYPE_PROG_ARRAY`.
pub const MAP_TYPE_PROG_ARRAY: u32 = 3;
/// `BPF_MAP_TYPE_ARRAY_OF_MAPS`.
pub const MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;
/// `BPF_MAP_TYPE_HASH_OF_MAPS`.
pub const MAP_TYPE_HASH_OF_MAPS: u32 = 13;

/// A BTF-defined map definition. `None` means the attribute was not declared.
///
/// `key_size`/`value_size` hold what libbpf derives: the explicit `__uint(key_size, ..)` or the
/// size of the `__type(key, ..)` type (both present must agree), and 4 for maps with `values`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BtfMapDef {
    /// The VAR's name (for an inner definition: `"<outer>.inner"`, as libbpf names it).
    pub name: String,
    /// The VAR in `.maps` (0 for an inner definition).
    pub var_id: TypeId,
    /// The STRUCT describing the map (after skipping modifiers/typedefs).
    pub def_id: TypeId,
    /// Offset and size of the variable as the `.maps` DATASEC records them. clang writes offset
    /// 0 for every variable (libbpf fixes offsets up from the ELF symbols), so the object layer
    /// should take the offset from the map's symbol.
    pub offset: u32,
    pub size: u32,
    pub map_type: Option<u32>,
    pub max_entries: Option<u32>,
    pub map_flags: Option<u32>,
    pub numa_node: Option<u32>,
    pub key_size: Option<u32>,
    pub value_size: Option<u32>,
    pub map_extra: Option<u64>,
    /// `LIBBPF_PIN_NONE` (0) or `LIBBPF_PIN_BY_NAME` (1).
    pub pinning: Option<u32>,
    /// The `__type(key, T)` type T.
    pub key_type_id: Option<TypeId>,
    /// The `__type(value, T)` type T.
    pub value_type_id: Option<TypeId>,
    /// The `values` member, for PROG_ARRAY and map-in-map initialisers.
    pub values: Option<MapValues>,
    /// Member names libbpf does not know (libbpf ≥ 1.0 refuses such maps unless relaxed).
    pub unknown_fields: Vec<String>,
}

/// The `values` member of a PROG_ARRAY or map-in-map definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapValues {
    /// Id of the zero-length ARRAY type of the `values` member; its element is a PTR.
    pub array_type_id: TypeId,
    /// Byte offset of the `values` member inside the map's struct: initialiser relocations in
    /// `.rel.maps` sit at `var offset + this + 8 * index`.
    pub member_offset: u32,
    pub kind: MapValuesKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapValuesKind {
    /// PROG_ARRAY: the pointee FUNC_PROTO.
    ProgArray { proto: TypeId },
    /// Map-in-map: the inner map's definition.
    Inner(Box<BtfMapDef>),
}

impl Btf {
    /// Every BTF-defined map in the `.maps` DATASEC, in DATASEC order. No `.maps` → empty.
    pub fn map_defs(&self) -> Result<Vec<BtfMapDef>, BtfError> {
        let Some((sec_id, _)) = self.find_datasec(".maps") else {
            return Ok(Vec::new());
        };
        let vars = self.datasec_vars(sec_id)?;
        let mut out = Vec::with_capacity(vars.len());
        for (i, dv) in vars.iter().enumerate() {
            let name = dv.name.to_string();
            let err = |what: String| BtfError::MapDef {
                map: if name.is_empty() {
                    format!("#{i}")
                } else {
                    name.clone()
                },
                what,
            };
            if name.is_empty() {
                return Err(err("empty name".into()));
            }
            let Some(var) = dv.var else {
                return Err(err(format!("[{}] is not a VAR", dv.type_id)));
            };
            if var.linkage != VarLinkage::Global {
                return Err(err(format!(
                    "unsupported map linkage {} (must be global)",
                    var.linkage.name()
                )));
            }
            let def_id = self.skip_mods_and_typedefs(var.type_id)?;
            let def_kind = self.get(def_id)?.kind.kind();
            if def_kind != Kind::Struct {
                return Err(err(format!(
                    "unexpected def kind {def_kind} (must be STRUCT)"
                )));
            }
            let mut def = self.parse_map_def(&name, def_id, true)?;
            def.var_id = dv.type_id;
            def.offset = dv.secinfo.offset;
            def.size = dv.secinfo.size;
            let struct_size = self.resolve_size(def_id)?;
            if struct_size > dv.secinfo.size {
                return Err(err(format!(
                    "invalid def size: struct is {struct_size} bytes, variable is {}",
                    dv.secinfo.size
                )));
            }
            out.push(def);
        }
        Ok(out)
    }

    /// Reads the map definition STRUCT `def_id` (the VAR's type, modifiers skipped). `outer` is
    /// false for an inner (map-in-map) definition, which may not be pinned or nest further.
    pub fn parse_map_def(
        &self,
        name: &str,
        def_id: TypeId,
        outer: bool,
    ) -> Result<BtfMapDef, BtfError> {
        let err = |what: String| BtfError::MapDef {
            map: name.to_string(),
            what,
        };
        let (def_id, c) = self.composite(def_id)?;
        let mut d = BtfMapDef {
            name: name.to_string(),
            def_id,
            ..BtfMapDef::default()
        };
        let n = c.members.len();
        for (i, m) in c.members.iter().enumerate() {
            let Some(field) = self.strings.get(m.name_off) else {
                return Err(err(format!("invalid field #{i}")));
            };
            let set_size = |slot: &mut Option<u32>, sz: u32, what: &str| {
                if let Some(old) = *slot
                    && old != 0
                    && old != sz
                {
                    return Err(err(format!("conflicting {what} size {old} != {sz}")));
                }
                *slot = Some(sz);
                Ok(())
            };
            match field {
                "type" => d.map_type = Some(self.map_uint(name, field, m.type_id)?),
                "max_entries" => d.max_entries = Some(self.map_uint(name, field, m.type_id)?),
                "map_flags" => d.map_flags = Some(self.map_uint(name, field, m.type_id)?),
                "numa_node" => d.numa_node = Some(self.map_uint(name, field, m.type_id)?),
                "key_size" => {
                    let sz = self.map_uint(name, field, m.type_id)?;
                    set_size(&mut d.key_size, sz, "key")?;
                }
                "value_size" => {
                    let sz = self.map_uint(name, field, m.type_id)?;
                    set_size(&mut d.value_size, sz, "value")?;
                }
                "key" | "value" => {
                    let t = self
                        .get(m.type_id)
                        .map_err(|_| err(format!("{field} type [{}] not found", m.type_id)))?;
                    let TypeKind::Ptr { type_id } = t.kind else {
                        return Err(err(format!("{field} spec is not PTR: {}", t.kind.kind())));
                    };
                    let sz = self.resolve_size(type_id).map_err(|e| {
                        err(format!(
                            "can't determine {field} size for type [{type_id}]: {e}"
                        ))
                    })?;
                    if field == "key" {
                        set_size(&mut d.key_size, sz, "key")?;
                        d.key_type_id = Some(type_id);
                    } else {
                        set_size(&mut d.value_size, sz, "value")?;
                        d.value_type_id = Some(type_id);
                    }
                }
                "values" => {
                    let mt = d.map_type.unwrap_or(0);
                    let is_mim = mt == MAP_TYPE_ARRAY_OF_MAPS || mt == MAP_TYPE_HASH_OF_MAPS;
                    let is_prog = mt == MAP_TYPE_PROG_ARRAY;
                    let desc = if is_mim {
                        "map-in-map inner"
                    } else {
                        "prog-array value"
                    };
                    if !outer {
                        return Err(err("multi-level inner maps not supported".into()));
                    }
                    if i != n - 1 {
                        return Err(err(format!("'{field}' member should be last")));
                    }
                    if !is_mim && !is_prog {
                        return Err(err("should be map-in-map or prog-array".into()));
                    }
                    set_size(&mut d.value_size, 4, "value")?;
                    let arr = self
                        .get(m.type_id)
                        .map_err(|_| err(format!("{desc} type [{}] not found", m.type_id)))?;
                    let elem = match arr.kind {
                        TypeKind::Array(a) if a.nelems == 0 => a.elem_type,
                        _ => return Err(err(format!("{desc} spec is not a zero-sized array"))),
                    };
                    let ptr = self.skip_mods_and_typedefs(elem)?;
                    let TypeKind::Ptr { type_id: pointee } = self.get(ptr)?.kind else {
                        return Err(err(format!(
                            "{desc} def is of unexpected kind {}",
                            self.get(ptr)?.kind.kind()
                        )));
                    };
                    let target = self.skip_mods_and_typedefs(pointee)?;
                    let tk = self.get(target)?.kind.kind();
                    let kind = if is_prog {
                        if tk != Kind::FuncProto {
                            return Err(err(format!(
                                "prog-array value def is of unexpected kind {tk}"
                            )));
                        }
                        MapValuesKind::ProgArray { proto: target }
                    } else {
                        if tk != Kind::Struct {
                            return Err(err(format!(
                                "map-in-map inner def is of unexpected kind {tk}"
                            )));
                        }
                        let inner = self.parse_map_def(&format!("{name}.inner"), target, false)?;
                        MapValuesKind::Inner(Box::new(inner))
                    };
                    d.values = Some(MapValues {
                        array_type_id: m.type_id,
                        member_offset: m.bit_offset / 8,
                        kind,
                    });
                }
                "pinning" => {
                    if !outer {
                        return Err(err("inner def can't be pinned".into()));
                    }
                    let v = self.map_uint(name, field, m.type_id)?;
                    if v > 1 {
                        return Err(err(format!("invalid pinning value {v}")));
                    }
                    d.pinning = Some(v);
                }
                "map_extra" => d.map_extra = Some(self.map_ulong(name, field, m.type_id)?),
                other => d.unknown_fields.push(other.to_string()),
            }
        }
        if d.map_type.unwrap_or(0) == 0 {
            return Err(err("map type isn't specified".into()));
        }
        Ok(d)
    }

    /// `__uint(field, N)`: PTR (after modifiers/typedefs) to an ARRAY whose `nelems` is N.
    fn map_uint(&self, map: &str, field: &str, member_type: TypeId) -> Result<u32, BtfError> {
        let err = |what: String| BtfError::MapDef {
            map: map.to_string(),
            what: format!("attr '{field}': {what}"),
        };
        let p = self.skip_mods_and_typedefs(member_type)?;
        let TypeKind::Ptr { type_id } = self.get(p)?.kind else {
            return Err(err(format!(
                "expected PTR, got {}",
                self.get(p)?.kind.kind()
            )));
        };
        match &self
            .get(type_id)
            .map_err(|_| err(format!("type [{type_id}] not found")))?
            .kind
        {
            TypeKind::Array(a) => Ok(a.nelems),
            other => Err(err(format!("expected ARRAY, got {}", other.kind()))),
        }
    }

    /// `map_extra`: `__uint` (PTR to ARRAY) or `__ulong` (ENUM/ENUM64 with one enumerator).
    fn map_ulong(&self, map: &str, field: &str, member_type: TypeId) -> Result<u64, BtfError> {
        let err = |what: String| BtfError::MapDef {
            map: map.to_string(),
            what: format!("attr '{field}': {what}"),
        };
        let t = self.skip_mods_and_typedefs(member_type)?;
        match &self.get(t)?.kind {
            TypeKind::Ptr { .. } => self.map_uint(map, field, member_type).map(u64::from),
            TypeKind::Enum(e) if e.values.len() == 1 => Ok(u64::from(e.values[0].val)),
            TypeKind::Enum64(e) if e.values.len() == 1 => Ok(e.values[0].val),
            TypeKind::Enum(_) | TypeKind::Enum64(_) => Err(err("invalid __ulong".into())),
            other => Err(err(format!(
                "expected ENUM or ENUM64, got {}",
                other.kind()
            ))),
        }
    }
}
