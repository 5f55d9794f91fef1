//! Queries over a parsed [`Btf`]. All of them are bounded: a reference cycle or an over-deep
//! chain is an error, never a hang or a stack overflow.

use super::{
    Btf, BtfError, BtfType, Composite, Datasec, FuncProto, Kind, Member, TypeId, TypeKind, Var,
    VarSecinfo,
};

/// libbpf's `MAX_RESOLVE_DEPTH`: how many modifier/typedef/array links a size or skip may follow.
const MAX_RESOLVE_DEPTH: usize = 32;

/// Size of a pointer on BPF.
pub const PTR_SIZE: u32 = 8;

/// One variable of a DATASEC, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasecVar<'a> {
    /// Id of the VAR (or, in `.ksyms`, FUNC) type.
    pub type_id: TypeId,
    /// Its name ("" if anonymous or not UTF-8).
    pub name: &'a str,
    /// The VAR data; `None` for a FUNC entry (kfunc externs in `.ksyms`).
    pub var: Option<&'a Var>,
    pub secinfo: &'a VarSecinfo,
}

impl Btf {
    fn lookup_err(id: TypeId, what: impl Into<String>) -> BtfError {
        BtfError::Lookup {
            id,
            what: what.into(),
        }
    }

    /// The type with `id`, or `None` if it does not exist.
    pub fn type_by_id(&self, id: TypeId) -> Option<&BtfType> {
        self.types.get(id as usize)
    }

    /// The type with `id`, or a [`BtfError::Lookup`] naming it.
    pub fn get(&self, id: TypeId) -> Result<&BtfType, BtfError> {
        self.type_by_id(id).ok_or_else(|| {
            Self::lookup_err(
                id,
                format!(
                    "no such type (the last type id is {})",
                    self.types.len().saturating_sub(1)
                ),
            )
        })
    }

    /// Number of types including `void`.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// True if only `void` exists.
    pub fn is_empty(&self) -> bool {
        self.types.len() <= 1
    }

    /// The string at offset `off` of the string table (`None` past the end or if not UTF-8).
    pub fn str_at(&self, off: u32) -> Option<&str> {
        self.strings.get(off)
    }

    /// The name of type `id` ("" for anonymous types); `None` if the type does not exist or its
    /// name is not valid UTF-8.
    pub fn name_of(&self, id: TypeId) -> Option<&str> {
        self.strings.get(self.type_by_id(id)?.name_off)
    }

    /// The kind of type `id`.
    pub fn kind_of(&self, id: TypeId) -> Option<Kind> {
        Some(self.type_by_id(id)?.kind.kind())
    }

    /// The first type named `name` of kind `kind`.
    pub fn find_by_name(&self, name: &str, kind: Kind) -> Option<TypeId> {
        self.types
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, t)| t.kind.kind() == kind && self.strings.get(t.name_off) == Some(name))
            .map(|(i, _)| i as TypeId)
    }

    /// Every type named `name`, any kind, in id order.
    pub fn find_all_by_name(&self, name: &str) -> Vec<TypeId> {
        self.types
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, t)| self.strings.get(t.name_off) == Some(name))
            .map(|(i, _)| i as TypeId)
            .collect()
    }

    /// Follows CONST/VOLATILE/RESTRICT/TYPE_TAG (the modifiers) and TYPEDEF to the underlying
    /// type, as libbpf's `skip_mods_and_typedefs` does.
    pub fn skip_mods_and_typedefs(&self, id: TypeId) -> Result<TypeId, BtfError> {
        self.skip(id, true)
    }

    /// Follows only the modifiers (CONST/VOLATILE/RESTRICT/TYPE_TAG), not TYPEDEF.
    pub fn skip_mods(&self, id: TypeId) -> Result<TypeId, BtfError> {
        self.skip(id, false)
    }

    fn skip(&self, start: TypeId, typedefs: bool) -> Result<TypeId, BtfError> {
        let mut id = start;
        for _ in 0..=self.types.len().min(1 << 20) {
            id = match &self.get(id)?.kind {
                TypeKind::Const { type_id }
                | TypeKind::Volatile { type_id }
                | TypeKind::Restrict { type_id }
                | TypeKind::TypeTag { type_id, .. } => *type_id,
                TypeKind::Typedef { type_id } if typedefs => *type_id,
                _ => return Ok(id),
            };
        }
        Err(Self::lookup_err(start, "modifier/typedef chain is cyclic"))
    }

    /// Size in bytes of type `id`, following libbpf's `btf__resolve_size`: sized kinds give their
    /// size, PTR is 8, modifiers/typedefs/VAR/DECL_TAG follow their target, ARRAY multiplies.
    /// FUNC, FUNC_PROTO, FWD and void have no size.
    pub fn resolve_size(&self, id: TypeId) -> Result<u32, BtfError> {
        let mut cur = id;
        let mut nelems: u64 = 1;
        for _ in 0..MAX_RESOLVE_DEPTH {
            let t = self.get(cur)?;
            let size = match &t.kind {
                TypeKind::Int(i) => i.size,
                TypeKind::Struct(c) | TypeKind::Union(c) => c.size,
                TypeKind::Enum(e) => e.size,
                TypeKind::Enum64(e) => e.size,
                TypeKind::Datasec(d) => d.size,
                TypeKind::Float { size } => *size,
                TypeKind::Ptr { .. } => PTR_SIZE,
                TypeKind::Typedef { type_id }
                | TypeKind::Volatile { type_id }
                | TypeKind::Const { type_id }
                | TypeKind::Restrict { type_id }
                | TypeKind::TypeTag { type_id, .. } => {
                    cur = *type_id;
                    continue;
                }
                TypeKind::Var(v) => {
                    cur = v.type_id;
                    continue;
                }
                TypeKind::DeclTag(d) => {
                    cur = d.type_id;
                    continue;
                }
                TypeKind::Array(a) => {
                    nelems = nelems.saturating_mul(u64::from(a.nelems));
                    cur = a.elem_type;
                    continue;
                }
                other => {
                    return Err(Self::lookup_err(
                        id,
                        format!("has no size: reaches [{cur}] {}", other.kind()),
                    ));
                }
            };
            let total = nelems.saturating_mul(u64::from(size));
            return u32::try_from(total)
                .map_err(|_| Self::lookup_err(id, format!("size {total} overflows 32 bits")));
        }
        Err(Self::lookup_err(
            id,
            format!("type chain deeper than {MAX_RESOLVE_DEPTH} links (or cyclic)"),
        ))
    }

    /// The STRUCT/UNION data of `id` (after skipping modifiers and typedefs).
    pub fn composite(&self, id: TypeId) -> Result<(TypeId, &Composite), BtfError> {
        let rid = self.skip_mods_and_typedefs(id)?;
        match &self.get(rid)?.kind {
            TypeKind::Struct(c) | TypeKind::Union(c) => Ok((rid, c)),
            other => Err(Self::lookup_err(
                id,
                format!("is {}, not STRUCT or UNION", other.kind()),
            )),
        }
    }

    /// The member of struct/union `id` named `name`, with its index. Only direct members; an
    /// anonymous member's own members are not searched.
    pub fn member_by_name(
        &self,
        id: TypeId,
        name: &str,
    ) -> Result<Option<(usize, &Member)>, BtfError> {
        let (_, c) = self.composite(id)?;
        Ok(c.members
            .iter()
            .enumerate()
            .find(|(_, m)| self.strings.get(m.name_off) == Some(name)))
    }

    /// The DATASEC named `name` (e.g. `".maps"`, `".data"`).
    pub fn find_datasec(&self, name: &str) -> Option<(TypeId, &Datasec)> {
        let id = self.find_by_name(name, Kind::Datasec)?;
        match &self.types[id as usize].kind {
            TypeKind::Datasec(d) => Some((id, d)),
            _ => None,
        }
    }

    /// The variables of DATASEC `id`, each resolved to its VAR (or FUNC for `.ksyms` kfuncs).
    pub fn datasec_vars(&self, id: TypeId) -> Result<Vec<DatasecVar<'_>>, BtfError> {
        let TypeKind::Datasec(d) = &self.get(id)?.kind else {
            return Err(Self::lookup_err(id, "is not a DATASEC"));
        };
        d.vars
            .iter()
            .map(|si| {
                let t = self.get(si.type_id)?;
                let var = match &t.kind {
                    TypeKind::Var(v) => Some(v),
                    TypeKind::Func { .. } => None,
                    other => {
                        return Err(Self::lookup_err(
                            id,
                            format!(
                                "DATASEC entry [{}] is {}, not VAR or FUNC",
                                si.type_id,
                                other.kind()
                            ),
                        ));
                    }
                };
                Ok(DatasecVar {
                    type_id: si.type_id,
                    name: self.strings.get(t.name_off).unwrap_or(""),
                    var,
                    secinfo: si,
                })
            })
            .collect()
    }

    /// The FUNC_PROTO of FUNC `id`: its id and data (return type, parameters).
    pub fn func_proto(&self, id: TypeId) -> Result<(TypeId, &FuncProto), BtfError> {
        let TypeKind::Func { proto, .. } = &self.get(id)?.kind else {
            return Err(Self::lookup_err(
                id,
                format!("is {}, not FUNC", self.get(id)?.kind.kind()),
            ));
        };
        match &self.get(*proto)?.kind {
            TypeKind::FuncProto(p) => Ok((*proto, p)),
            other => Err(Self::lookup_err(
                id,
                format!("FUNC's type [{proto}] is {}, not FUNC_PROTO", other.kind()),
            )),
        }
    }

    /// The FUNC named `name`.
    pub fn find_func(&self, name: &str) -> Option<TypeId> {
        self.find_by_name(name, Kind::Func)
    }
}
