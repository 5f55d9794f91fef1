//! Plain-data model of BTF types, one variant per kind, fields as the kernel's `uapi/linux/btf.h`
//! defines them.

/// A BTF type id: an index into [`super::Btf::types`]. Id 0 is `void`.
pub type TypeId = u32;

/// The kind numbers of `uapi/linux/btf.h` (`BTF_KIND_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// `BTF_KIND_UNKN`: only the implicit type 0 (`void`) has it.
    Void = 0,
    Int = 1,
    Ptr = 2,
    Array = 3,
    Struct = 4,
    Union = 5,
    Enum = 6,
    Fwd = 7,
    Typedef = 8,
    Volatile = 9,
    Const = 10,
    Restrict = 11,
    Func = 12,
    FuncProto = 13,
    Var = 14,
    Datasec = 15,
    Float = 16,
    DeclTag = 17,
    TypeTag = 18,
    Enum64 = 19,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        use Kind::*;
        Some(match v {
            0 => Void,
            1 => Int,
            2 => Ptr,
            3 => Array,
            4 => Struct,
            5 => Union,
            6 => Enum,
            7 => Fwd,
            8 => Typedef,
            9 => Volatile,
            10 => Const,
            11 => Restrict,
            12 => Func,
            13 => FuncProto,
            14 => Var,
            15 => Datasec,
            16 => Float,
            17 => DeclTag,
            18 => TypeTag,
            19 => Enum64,
            _ => return None,
        })
    }

    /// The kind's name as bpftool prints it (`"FUNC_PROTO"`); `"UNKNOWN"` for void.
    pub fn name(self) -> &'static str {
        use Kind::*;
        match self {
            Void => "UNKNOWN",
            Int => "INT",
            Ptr => "PTR",
            Array => "ARRAY",
            Struct => "STRUCT",
            Union => "UNION",
            Enum => "ENUM",
            Fwd => "FWD",
            Typedef => "TYPEDEF",
            Volatile => "VOLATILE",
            Const => "CONST",
            Restrict => "RESTRICT",
            Func => "FUNC",
            FuncProto => "FUNC_PROTO",
            Var => "VAR",
            Datasec => "DATASEC",
            Float => "FLOAT",
            DeclTag => "DECL_TAG",
            TypeTag => "TYPE_TAG",
            Enum64 => "ENUM64",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One BTF type: its name (an offset into the string table, 0 = anonymous) and kind-specific data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfType {
    pub name_off: u32,
    pub kind: TypeKind,
}

/// Kind-specific data. Referenced types are [`TypeId`]s; names are string-table offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeKind {
    /// The implicit type 0. It has no encoding and never appears at another id.
    Void,
    Int(Int),
    Ptr {
        type_id: TypeId,
    },
    Array(Array),
    Struct(Composite),
    Union(Composite),
    Enum(Enum),
    Enum64(Enum64),
    /// A forward declaration of a struct (or of a union if `union`).
    Fwd {
        union: bool,
    },
    Typedef {
        type_id: TypeId,
    },
    Volatile {
        type_id: TypeId,
    },
    Const {
        type_id: TypeId,
    },
    Restrict {
        type_id: TypeId,
    },
    /// A function: `proto` is its FUNC_PROTO.
    Func {
        proto: TypeId,
        linkage: FuncLinkage,
    },
    FuncProto(FuncProto),
    Var(Var),
    Datasec(Datasec),
    Float {
        size: u32,
    },
    DeclTag(DeclTag),
    /// `attr` is the kind flag (6.14+: the tag is a plain attribute rather than `btf_type_tag`).
    TypeTag {
        type_id: TypeId,
        attr: bool,
    },
}

/// `BTF_KIND_INT`: size in bytes plus the 32-bit trailer (encoding, bit offset, bit count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int {
    pub size: u32,
    pub encoding: IntEncoding,
    /// `BTF_INT_OFFSET`: bit offset of the value inside the storage (bits 16..24 of the trailer).
    pub offset: u8,
    /// `BTF_INT_BITS`: number of value bits (bits 0..8 of the trailer).
    pub bits: u8,
}

/// `BTF_INT_ENCODING`: the kernel accepts at most one of these flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntEncoding {
    None,
    Signed,
    Char,
    Bool,
}

impl IntEncoding {
    pub fn to_bits(self) -> u8 {
        match self {
            IntEncoding::None => 0,
            IntEncoding::Signed => 1,
            IntEncoding::Char => 2,
            IntEncoding::Bool => 4,
        }
    }

    pub fn from_bits(b: u8) -> Option<IntEncoding> {
        Some(match b {
            0 => IntEncoding::None,
            1 => IntEncoding::Signed,
            2 => IntEncoding::Char,
            4 => IntEncoding::Bool,
            _ => return None,
        })
    }
}

/// `BTF_KIND_ARRAY` (`struct btf_array`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Array {
    pub elem_type: TypeId,
    pub index_type: TypeId,
    pub nelems: u32,
}

/// `BTF_KIND_STRUCT` / `BTF_KIND_UNION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composite {
    pub size: u32,
    /// The kind flag: member offsets carry a bitfield size in their top 8 bits.
    pub bitfield_encoding: bool,
    pub members: Vec<Member>,
}

/// One member of a struct or union.
///
/// With [`Composite::bitfield_encoding`] the file stores `bitfield_size << 24 | bit_offset`;
/// without it, the whole 32-bit word is `bit_offset` and `bitfield_size` is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub name_off: u32,
    pub type_id: TypeId,
    pub bit_offset: u32,
    pub bitfield_size: u8,
}

impl Member {
    /// The member's 32-bit `offset` word as stored in the file.
    pub fn raw_offset(&self, bitfield_encoding: bool) -> u32 {
        if bitfield_encoding {
            (u32::from(self.bitfield_size) << 24) | (self.bit_offset & 0x00ff_ffff)
        } else {
            self.bit_offset
        }
    }

    pub fn from_raw_offset(
        name_off: u32,
        type_id: TypeId,
        raw: u32,
        bitfield_encoding: bool,
    ) -> Member {
        let (bit_offset, bitfield_size) = if bitfield_encoding {
            (raw & 0x00ff_ffff, (raw >> 24) as u8)
        } else {
            (raw, 0)
        };
        Member {
            name_off,
            type_id,
            bit_offset,
            bitfield_size,
        }
    }
}

/// `BTF_KIND_ENUM`: 32-bit enumerators. `signed` is the kind flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enum {
    pub size: u32,
    pub signed: bool,
    pub values: Vec<EnumValue>,
}

/// One 32-bit enumerator: `val` holds the raw bits; [`EnumValue::value`] interprets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnumValue {
    pub name_off: u32,
    pub val: u32,
}

impl EnumValue {
    pub fn value(&self, signed: bool) -> i64 {
        if signed {
            i64::from(self.val as i32)
        } else {
            i64::from(self.val)
        }
    }
}

/// `BTF_KIND_ENUM64`: 64-bit enumerators. `signed` is the kind flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enum64 {
    pub size: u32,
    pub signed: bool,
    pub values: Vec<Enum64Value>,
}

/// One 64-bit enumerator (`lo32 | hi32 << 32` in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enum64Value {
    pub name_off: u32,
    pub val: u64,
}

/// FUNC linkage, stored in the `vlen` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuncLinkage {
    Static = 0,
    Global = 1,
    Extern = 2,
}

impl FuncLinkage {
    pub fn from_u32(v: u32) -> Option<FuncLinkage> {
        Some(match v {
            0 => FuncLinkage::Static,
            1 => FuncLinkage::Global,
            2 => FuncLinkage::Extern,
            _ => return None,
        })
    }

    /// As bpftool prints it.
    pub fn name(self) -> &'static str {
        match self {
            FuncLinkage::Static => "static",
            FuncLinkage::Global => "global",
            FuncLinkage::Extern => "extern",
        }
    }
}

/// `BTF_KIND_FUNC_PROTO`. A variadic prototype ends with a parameter whose name and type are 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncProto {
    pub ret: TypeId,
    pub params: Vec<Param>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub name_off: u32,
    pub type_id: TypeId,
}

/// `BTF_KIND_VAR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    pub type_id: TypeId,
    pub linkage: VarLinkage,
}

/// VAR linkage (`BTF_VAR_STATIC`, `BTF_VAR_GLOBAL_ALLOCATED`, `BTF_VAR_GLOBAL_EXTERN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarLinkage {
    Static = 0,
    Global = 1,
    Extern = 2,
}

impl VarLinkage {
    pub fn from_u32(v: u32) -> Option<VarLinkage> {
        Some(match v {
            0 => VarLinkage::Static,
            1 => VarLinkage::Global,
            2 => VarLinkage::Extern,
            _ => return None,
        })
    }

    /// As bpftool prints it.
    pub fn name(self) -> &'static str {
        match self {
            VarLinkage::Static => "static",
            VarLinkage::Global => "global",
            VarLinkage::Extern => "extern",
        }
    }
}

/// `BTF_KIND_DATASEC`: the variables placed in one ELF data section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datasec {
    pub size: u32,
    pub vars: Vec<VarSecinfo>,
}

/// `struct btf_var_secinfo`: `type_id` is a VAR (or, for `.ksyms`, a FUNC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarSecinfo {
    pub type_id: TypeId,
    pub offset: u32,
    pub size: u32,
}

/// `BTF_KIND_DECL_TAG`: tags `type_id` itself (`component_idx == -1`) or its member/parameter
/// number `component_idx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeclTag {
    pub type_id: TypeId,
    pub component_idx: i32,
    /// The kind flag (6.14+: a plain attribute rather than `btf_decl_tag`).
    pub attr: bool,
}

impl TypeKind {
    pub fn kind(&self) -> Kind {
        match self {
            TypeKind::Void => Kind::Void,
            TypeKind::Int(_) => Kind::Int,
            TypeKind::Ptr { .. } => Kind::Ptr,
            TypeKind::Array(_) => Kind::Array,
            TypeKind::Struct(_) => Kind::Struct,
            TypeKind::Union(_) => Kind::Union,
            TypeKind::Enum(_) => Kind::Enum,
            TypeKind::Enum64(_) => Kind::Enum64,
            TypeKind::Fwd { .. } => Kind::Fwd,
            TypeKind::Typedef { .. } => Kind::Typedef,
            TypeKind::Volatile { .. } => Kind::Volatile,
            TypeKind::Const { .. } => Kind::Const,
            TypeKind::Restrict { .. } => Kind::Restrict,
            TypeKind::Func { .. } => Kind::Func,
            TypeKind::FuncProto(_) => Kind::FuncProto,
            TypeKind::Var(_) => Kind::Var,
            TypeKind::Datasec(_) => Kind::Datasec,
            TypeKind::Float { .. } => Kind::Float,
            TypeKind::DeclTag(_) => Kind::DeclTag,
            TypeKind::TypeTag { .. } => Kind::TypeTag,
        }
    }

    /// Calls `f` on every type id this type refers to, in file order. This is the one place that
    /// knows where references live; remapping and validation both go through it.
    pub fn for_each_ref_mut(&mut self, mut f: impl FnMut(&mut TypeId)) {
        match self {
            TypeKind::Void
            | TypeKind::Int(_)
            | TypeKind::Enum(_)
            | TypeKind::Enum64(_)
            | TypeKind::Fwd { .. }
            | TypeKind::Float { .. } => {}
            TypeKind::Ptr { type_id }
            | TypeKind::Typedef { type_id }
            | TypeKind::Volatile { type_id }
            | TypeKind::Const { type_id }
            | TypeKind::Restrict { type_id }
            | TypeKind::TypeTag { type_id, .. } => f(type_id),
            TypeKind::Array(a) => {
                f(&mut a.elem_type);
                f(&mut a.index_type);
            }
            TypeKind::Struct(c) | TypeKind::Union(c) => {
                for m in &mut c.members {
                    f(&mut m.type_id);
                }
            }
            TypeKind::Func { proto, .. } => f(proto),
            TypeKind::FuncProto(p) => {
                f(&mut p.ret);
                for prm in &mut p.params {
                    f(&mut prm.type_id);
                }
            }
            TypeKind::Var(v) => f(&mut v.type_id),
            TypeKind::Datasec(d) => {
                for v in &mut d.vars {
                    f(&mut v.type_id);
                }
            }
            TypeKind::DeclTag(t) => f(&mut t.type_id),
        }
    }

    /// Calls `f` on every type id this type refers to, in the same order as
    /// [`TypeKind::for_each_ref_mut`].
    pub fn for_each_ref(&self, mut f: impl FnMut(TypeId)) {
        match self {
            TypeKind::Void
            | TypeKind::Int(_)
            | TypeKind::Enum(_)
            | TypeKind::Enum64(_)
            | TypeKind::Fwd { .. }
            | TypeKind::Float { .. } => {}
            TypeKind::Ptr { type_id }
            | TypeKind::Typedef { type_id }
            | TypeKind::Volatile { type_id }
            | TypeKind::Const { type_id }
            | TypeKind::Restrict { type_id }
            | TypeKind::TypeTag { type_id, .. } => f(*type_id),
            TypeKind::Array(a) => {
                f(a.elem_type);
                f(a.index_type);
            }
            TypeKind::Struct(c) | TypeKind::Union(c) => c.members.iter().for_each(|m| f(m.type_id)),
            TypeKind::Func { proto, .. } => f(*proto),
            TypeKind::FuncProto(p) => {
                f(p.ret);
                p.params.iter().for_each(|prm| f(prm.type_id));
            }
            TypeKind::Var(v) => f(v.type_id),
            TypeKind::Datasec(d) => d.vars.iter().for_each(|v| f(v.type_id)),
            TypeKind::DeclTag(t) => f(t.type_id),
        }
    }

    /// Every type id this type refers to, in file order.
    pub fn refs(&self) -> Vec<TypeId> {
        let mut out = Vec::new();
        self.for_each_ref(|id| out.push(id));
        out
    }

    /// Calls `f` on every string offset inside the kind data (member, parameter and enumerator
    /// names). The type's own name is [`BtfType::name_off`].
    pub fn for_each_name_off(&self, mut f: impl FnMut(u32)) {
        match self {
            TypeKind::Struct(c) | TypeKind::Union(c) => {
                c.members.iter().for_each(|m| f(m.name_off))
            }
            TypeKind::Enum(e) => e.values.iter().for_each(|v| f(v.name_off)),
            TypeKind::Enum64(e) => e.values.iter().for_each(|v| f(v.name_off)),
            TypeKind::FuncProto(p) => p.params.iter().for_each(|p| f(p.name_off)),
            _ => {}
        }
    }
}
