//! Edits: append-only additions and the single id remap.
//!
//! BTF edits are either *append-only* (new strings at the end of the string table, new types at
//! the end of the type table, so no existing offset or id changes) or go through **one**
//! [`TypeIdMap`], applied everywhere a type id lives:
//!
//! * inside `.BTF`: [`Btf::apply_id_map`] (every reference of every kind: member/param/var types,
//!   DATASEC entries, DECL_TAG and TYPE_TAG targets, array element and index types...);
//! * in `.BTF.ext`: [`super::BtfExt::apply_id_map`] (func_info and CO-RE type ids);
//! * in instructions (done by the object layer with the same map): `ld_imm64` with
//!   `BPF_PSEUDO_BTF_ID`, and kfunc calls (`BPF_PSEUDO_KFUNC_CALL`) whose `imm` is a local BTF id.

use super::{
    Array, Btf, BtfError, BtfMapDef, BtfType, Composite, Datasec, FuncLinkage, FuncProto, Int,
    IntEncoding, Kind, MapValuesKind, Member, Param, TypeId, TypeKind, Var, VarLinkage, VarSecinfo,
};

/// A type id renumbering: entry `old` holds the new id of type `old`, or [`TypeIdMap::DROPPED`].
///
/// Applying it moves each kept type to its new id and rewrites every reference, so the kept new
/// ids must be exactly `0..k` (a dense permutation) and `0` (void) must map to `0`. The object
/// layer applies the same map to the ids in `.BTF.ext` and in instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeIdMap {
    new_ids: Vec<TypeId>,
}

impl TypeIdMap {
    /// Marks a type as removed; a reference to it is an error when the map is applied.
    pub const DROPPED: TypeId = u32::MAX;

    /// The map that changes nothing, for a BTF with `len` types (including void).
    pub fn identity(len: usize) -> TypeIdMap {
        TypeIdMap {
            new_ids: (0..len as u32).collect(),
        }
    }

    /// Wraps an explicit old → new table (`new_ids[old] = new`).
    pub fn from_vec(new_ids: Vec<TypeId>) -> TypeIdMap {
        TypeIdMap { new_ids }
    }

    /// Drops the types for which `keep` is false and closes the gaps, keeping the order.
    pub fn compacting(len: usize, mut keep: impl FnMut(TypeId) -> bool) -> TypeIdMap {
        let mut next = 0;
        let new_ids = (0..len as u32)
            .map(|old| {
                if old == 0 || keep(old) {
                    next += 1;
                    next - 1
                } else {
                    Self::DROPPED
                }
            })
            .collect();
        TypeIdMap { new_ids }
    }

    pub fn as_slice(&self) -> &[TypeId] {
        &self.new_ids
    }

    /// Number of old ids covered.
    pub fn len(&self) -> usize {
        self.new_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.new_ids.is_empty()
    }

    /// The new id of `old`; `None` if `old` is out of range or dropped.
    pub fn get(&self, old: TypeId) -> Option<TypeId> {
        self.new_ids
            .get(old as usize)
            .copied()
            .filter(|&n| n != Self::DROPPED)
    }

    /// The new id of `old`, or an error naming it.
    pub fn map_id(&self, old: TypeId) -> Result<TypeId, BtfError> {
        match self.new_ids.get(old as usize) {
            Some(&Self::DROPPED) => Err(BtfError::Remap {
                what: format!("type id {old} is referenced but was dropped"),
            }),
            Some(&n) => Ok(n),
            None => Err(BtfError::Remap {
                what: format!(
                    "type id {old} is outside the map (which covers ids 0..{})",
                    self.new_ids.len()
                ),
            }),
        }
    }

    /// Sets the new id of `old` (growing the map with identity entries if needed).
    pub fn set(&mut self, old: TypeId, new: TypeId) {
        let old = old as usize;
        if old >= self.new_ids.len() {
            let start = self.new_ids.len() as u32;
            self.new_ids.extend(start..=old as u32);
        }
        self.new_ids[old] = new;
    }
}

/// A variable of a synthesized data section ([`Btf::add_data_section`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthVar {
    pub name: String,
    pub offset: u32,
    pub size: u32,
    pub linkage: VarLinkage,
}

impl Btf {
    /// Adds `s` to the string table (reusing an equal existing string) and returns its offset.
    pub fn add_string(&mut self, s: &str) -> Result<u32, BtfError> {
        self.strings.add(s)
    }

    /// Appends a type and returns its id. References are not checked here, so a type may refer
    /// to one added later; call [`Btf::validate`] when done.
    pub fn add_type(&mut self, t: BtfType) -> TypeId {
        self.types.push(t);
        (self.types.len() - 1) as TypeId
    }

    fn add_named(&mut self, name: &str, kind: TypeKind) -> Result<TypeId, BtfError> {
        let name_off = self.add_string(name)?;
        Ok(self.add_type(BtfType { name_off, kind }))
    }

    /// Adds an INT of `size` bytes using all its bits.
    pub fn add_int(
        &mut self,
        name: &str,
        size: u32,
        encoding: IntEncoding,
    ) -> Result<TypeId, BtfError> {
        let bits = u8::try_from(size.saturating_mul(8)).map_err(|_| BtfError::Lookup {
            id: self.types.len() as TypeId,
            what: format!("INT '{name}' of {size} bytes has more than 255 bits"),
        })?;
        self.add_named(
            name,
            TypeKind::Int(Int {
                size,
                encoding,
                offset: 0,
                bits,
            }),
        )
    }

    /// The first INT named `name` with `size` and `encoding`, added if missing.
    pub fn find_or_add_int(
        &mut self,
        name: &str,
        size: u32,
        encoding: IntEncoding,
    ) -> Result<TypeId, BtfError> {
        let found = self.types.iter().position(|t| {
            matches!(&t.kind, TypeKind::Int(i) if i.size == size && i.encoding == encoding && i.offset == 0)
                && self.strings.get(t.name_off) == Some(name)
        });
        match found {
            Some(id) => Ok(id as TypeId),
            None => self.add_int(name, size, encoding),
        }
    }

    /// Adds an anonymous PTR to `target`.
    pub fn add_ptr(&mut self, target: TypeId) -> TypeId {
        self.add_type(BtfType {
            name_off: 0,
            kind: TypeKind::Ptr { type_id: target },
        })
    }

    /// The first anonymous PTR to `target`, added if missing.
    pub fn find_or_add_ptr(&mut self, target: TypeId) -> TypeId {
        match self.types.iter().position(|t| {
            t.name_off == 0 && matches!(t.kind, TypeKind::Ptr { type_id } if type_id == target)
        }) {
            Some(id) => id as TypeId,
            None => self.add_ptr(target),
        }
    }

    /// Adds an anonymous ARRAY.
    pub fn add_array(&mut self, elem_type: TypeId, index_type: TypeId, nelems: u32) -> TypeId {
        self.add_type(BtfType {
            name_off: 0,
            kind: TypeKind::Array(Array {
                elem_type,
                index_type,
                nelems,
            }),
        })
    }

    /// Adds a STRUCT without bitfields; members are `(name, type, bit offset)`.
    pub fn add_struct(
        &mut self,
        name: &str,
        size: u32,
        members: &[(&str, TypeId, u32)],
    ) -> Result<TypeId, BtfError> {
        let members = members
            .iter()
            .map(|&(n, type_id, bit_offset)| {
                Ok(Member {
                    name_off: self.add_string(n)?,
                    type_id,
                    bit_offset,
                    bitfield_size: 0,
                })
            })
            .collect::<Result<Vec<_>, BtfError>>()?;
        self.add_named(
            name,
            TypeKind::Struct(Composite {
                size,
                bitfield_encoding: false,
                members,
            }),
        )
    }

    /// Adds an anonymous FUNC_PROTO; params are `(name, type)`.
    pub fn add_func_proto(
        &mut self,
        ret: TypeId,
        params: &[(&str, TypeId)],
    ) -> Result<TypeId, BtfError> {
        let params = params
            .iter()
            .map(|&(n, type_id)| {
                Ok(Param {
                    name_off: self.add_string(n)?,
                    type_id,
                })
            })
            .collect::<Result<Vec<_>, BtfError>>()?;
        Ok(self.add_type(BtfType {
            name_off: 0,
            kind: TypeKind::FuncProto(FuncProto { ret, params }),
        }))
    }

    /// Adds a FUNC named `name` with prototype `proto`.
    pub fn add_func(
        &mut self,
        name: &str,
        proto: TypeId,
        linkage: FuncLinkage,
    ) -> Result<TypeId, BtfError> {
        self.add_named(name, TypeKind::Func { proto, linkage })
    }

    /// Adds a VAR.
    pub fn add_var(
        &mut self,
        name: &str,
        type_id: TypeId,
        linkage: VarLinkage,
    ) -> Result<TypeId, BtfError> {
        self.add_named(name, TypeKind::Var(Var { type_id, linkage }))
    }

    /// Adds a DATASEC.
    pub fn add_datasec(
        &mut self,
        name: &str,
        size: u32,
        vars: Vec<VarSecinfo>,
    ) -> Result<TypeId, BtfError> {
        self.add_named(name, TypeKind::Datasec(Datasec { size, vars }))
    }

    /// Adds `entry` to the DATASEC named `name`, creating the DATASEC (size 0, which libbpf
    /// fixes up from the ELF section) if there is none. Entries are kept sorted by offset, as the
    /// kernel requires. Returns the DATASEC id.
    pub fn add_to_datasec(&mut self, name: &str, entry: VarSecinfo) -> Result<TypeId, BtfError> {
        let id = match self.find_by_name(name, Kind::Datasec) {
            Some(id) => id,
            None => self.add_datasec(name, 0, Vec::new())?,
        };
        if let TypeKind::Datasec(d) = &mut self.types[id as usize].kind {
            let at = d.vars.partition_point(|v| v.offset <= entry.offset);
            d.vars.insert(at, entry);
        }
        Ok(id)
    }

    /// Synthesizes BTF for a program of an object without BTF: `int name(void *ctx)` as a FUNC
    /// with a FUNC_PROTO, reusing an existing `int` and `void *`. Returns the FUNC id (the
    /// func_info `type_id`).
    pub fn add_program_func(
        &mut self,
        name: &str,
        linkage: FuncLinkage,
    ) -> Result<TypeId, BtfError> {
        let int = self.find_or_add_int("int", 4, IntEncoding::Signed)?;
        let void_ptr = self.find_or_add_ptr(0);
        let proto = self.add_func_proto(int, &[("ctx", void_ptr)])?;
        self.add_func(name, proto, linkage)
    }

    /// Synthesizes a DATASEC for a global data section of an object without BTF: each variable
    /// becomes a VAR of type `unsigned char[size]`. `size` is the ELF section size. Returns the
    /// DATASEC id.
    pub fn add_data_section(
        &mut self,
        name: &str,
        size: u32,
        vars: &[SynthVar],
    ) -> Result<TypeId, BtfError> {
        let byte = self.find_or_add_int("unsigned char", 1, IntEncoding::None)?;
        let index = self.array_index_type()?;
        let mut infos = Vec::with_capacity(vars.len());
        for v in vars {
            let arr = self.add_array(byte, index, v.size);
            let var = self.add_var(&v.name, arr, v.linkage)?;
            infos.push(VarSecinfo {
                type_id: var,
                offset: v.offset,
                size: v.size,
            });
        }
        infos.sort_by_key(|v| v.offset);
        self.add_datasec(name, size, infos)
    }

    /// The `__ARRAY_SIZE_TYPE__` index type clang uses for arrays, added if missing.
    pub fn array_index_type(&mut self) -> Result<TypeId, BtfError> {
        self.find_or_add_int("__ARRAY_SIZE_TYPE__", 4, IntEncoding::None)
    }

    /// Encodes a map definition the way libbpf's `bpf_helpers.h` macros do (`__uint` members as
    /// `int (*name)[N]`, `__type` members as `T *name`) and returns the anonymous STRUCT's id.
    /// Present fields are emitted in the order `type, key/key_size, value/value_size,
    /// max_entries, map_flags, numa_node, map_extra, pinning`; `values` is not supported here.
    /// The caller adds the VAR (global linkage) and the `.maps` DATASEC entry.
    pub fn add_map_def_struct(&mut self, def: &BtfMapDef) -> Result<TypeId, BtfError> {
        if def.values.is_some() {
            return Err(BtfError::MapDef {
                map: def.name.clone(),
                what: "encoding 'values' initialisers is not supported".into(),
            });
        }
        if let Some(x) = def.map_extra
            && x > u64::from(u32::MAX)
        {
            return Err(BtfError::MapDef {
                map: def.name.clone(),
                what: format!("map_extra {x:#x} does not fit __uint"),
            });
        }
        let int = self.find_or_add_int("int", 4, IntEncoding::Signed)?;
        let index = self.array_index_type()?;
        let mut members: Vec<(String, TypeId)> = Vec::new();
        let uint = |btf: &mut Btf, v: u32| {
            let arr = btf.add_array(int, index, v);
            btf.add_ptr(arr)
        };
        if let Some(v) = def.map_type {
            members.push(("type".into(), uint(self, v)));
        }
        match (def.key_type_id, def.key_size) {
            (Some(t), _) => members.push(("key".into(), self.add_ptr(t))),
            (None, Some(sz)) => members.push(("key_size".into(), uint(self, sz))),
            (None, None) => {}
        }
        match (def.value_type_id, def.value_size) {
            (Some(t), _) => members.push(("value".into(), self.add_ptr(t))),
            (None, Some(sz)) => members.push(("value_size".into(), uint(self, sz))),
            (None, None) => {}
        }
        for (name, v) in [
            ("max_entries", def.max_entries),
            ("map_flags", def.map_flags),
            ("numa_node", def.numa_node),
            ("map_extra", def.map_extra.map(|x| x as u32)),
            ("pinning", def.pinning),
        ] {
            if let Some(v) = v {
                members.push((name.into(), uint(self, v)));
            }
        }
        let refs: Vec<(&str, TypeId, u32)> = members
            .iter()
            .enumerate()
            .map(|(i, (n, t))| (n.as_str(), *t, (i as u32) * 64))
            .collect();
        self.add_struct("", 8 * refs.len() as u32, &refs)
    }

    /// Rewrites every type reference inside `.BTF` with `f`, without moving any type. For a
    /// renumbering that also moves types, use [`Btf::apply_id_map`].
    pub fn remap(&mut self, mut f: impl FnMut(TypeId) -> TypeId) {
        for t in &mut self.types {
            t.kind.for_each_ref_mut(|r| *r = f(*r));
        }
    }

    /// Renumbers types: type `old` moves to `map[old]` (or is removed if dropped) and every
    /// reference is rewritten. Checks first, changes nothing on error: the map must cover exactly
    /// this BTF's ids, keep void at 0, send the kept types onto `0..k` without collisions, and no
    /// kept type may refer to a dropped one.
    pub fn apply_id_map(&mut self, map: &TypeIdMap) -> Result<(), BtfError> {
        let n = self.types.len();
        if map.len() != n {
            return Err(BtfError::Remap {
                what: format!("map covers {} ids but the BTF has {n} types", map.len()),
            });
        }
        if map.get(0) != Some(0) {
            return Err(BtfError::Remap {
                what: "void (id 0) must map to 0".into(),
            });
        }
        let kept = map
            .as_slice()
            .iter()
            .filter(|&&x| x != TypeIdMap::DROPPED)
            .count();
        let mut slots: Vec<Option<BtfType>> = vec![None; kept];
        let mut seen = vec![false; kept];
        for (old, &new) in map.as_slice().iter().enumerate() {
            if new == TypeIdMap::DROPPED {
                continue;
            }
            let Some(s) = seen.get_mut(new as usize) else {
                return Err(BtfError::Remap {
                    what: format!(
                        "type {old} maps to {new}, but the {kept} kept types must use ids 0..{kept}"
                    ),
                });
            };
            if std::mem::replace(s, true) {
                return Err(BtfError::Remap {
                    what: format!("two types map to id {new}"),
                });
            }
        }
        for (old, t) in self.types.iter().enumerate() {
            let Some(new) = map.get(old as TypeId) else {
                continue;
            };
            let mut t = t.clone();
            let mut err = None;
            t.kind.for_each_ref_mut(|r| match map.map_id(*r) {
                Ok(x) => *r = x,
                Err(e) => {
                    err.get_or_insert(BtfError::Remap {
                        what: format!("type [{old}]: {e}"),
                    });
                }
            });
            if let Some(e) = err {
                return Err(e);
            }
            slots[new as usize] = Some(t);
        }
        self.types = slots
            .into_iter()
            .map(|t| t.expect("every slot filled"))
            .collect();
        Ok(())
    }
}

impl MapValuesKind {
    /// The inner map definition, for map-in-map.
    pub fn inner(&self) -> Option<&BtfMapDef> {
        match self {
            MapValuesKind::Inner(d) => Some(d),
            MapValuesKind::ProgArray { .. } => None,
        }
    }
}
