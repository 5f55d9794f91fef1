//! Our own BTF and BTF.ext codec.
//!
//! * [`Btf`]: the `.BTF` section as plain data: the header as read, types by id (id 0 = `void`),
//!   and the string table as exact bytes. [`Btf::parse`] validates everything a consumer relies
//!   on (layout, kinds, vlen against the remaining bytes, type ids, name offsets, string table
//!   terminators) and [`Btf::to_bytes`] re-emits byte-identical output for anything it accepted.
//! * [`BtfExt`]: the `.BTF.ext` section: func_info, line_info and CO-RE relocation records, each
//!   sub-section keeping its record size and its per-ELF-section grouping in file order.
//! * Lookups used by the object reader ([`Btf::skip_mods_and_typedefs`], [`Btf::resolve_size`],
//!   [`Btf::find_by_name`], [`Btf::map_defs`] for libbpf's BTF-defined maps, ...).
//! * Edits: append-only additions ([`Btf::add_string`], [`Btf::add_type`] and helpers) and a
//!   single id remap ([`TypeIdMap`], [`Btf::apply_id_map`], [`BtfExt::apply_id_map`]).
//! * [`Btf::dump_raw`]: `bpftool btf dump ... format raw` text.
//!
//! Only little-endian, non-split (base) BTF is supported: big-endian input is
//! [`BtfError::Unsupported`], not malformed.
//!
//! ```
//! use opsplit::btf::{Btf, FuncLinkage, Kind};
//!
//! // Synthesize BTF for a program, serialize it, and read it back.
//! let mut btf = Btf::new();
//! let func = btf.add_program_func("my_prog", FuncLinkage::Global)?;
//! let bytes = btf.to_bytes();
//! let back = Btf::parse(&bytes)?;
//! assert_eq!(back.find_by_name("my_prog", Kind::Func), Some(func));
//! assert_eq!(back.to_bytes(), bytes);
//! assert!(back.dump_raw().contains("FUNC 'my_prog' type_id=3 linkage=global"));
//! # Ok::<(), opsplit::btf::BtfError>(())
//! ```

mod dump;
mod edit;
mod error;
mod ext;
mod lookup;
mod maps;
mod strings;
mod types;

pub use edit::{SynthVar, TypeIdMap};
pub use error::{BtfError, Section};
pub use ext::{
    BtfExt, BtfExtHeader, CoreRelo, CoreReloKind, ExtRecord, ExtSection, ExtSubsection, FuncInfo,
    LineInfo,
};
pub use lookup::DatasecVar;
pub use maps::{
    BtfMapDef, MAP_TYPE_ARRAY_OF_MAPS, MAP_TYPE_HASH_OF_MAPS, MAP_TYPE_PROG_ARRAY, MapValues,
    MapValuesKind,
};
pub use strings::StringTable;
pub use types::*;

/// `BTF_MAGIC` as stored little-endian.
pub const BTF_MAGIC: u16 = 0xeb9f;
/// Size of `struct btf_header` as of BTF version 1.
pub const BTF_HEADER_LEN: u32 = 24;

/// `struct btf_header`, every field as read. `extra` holds the bytes of a header longer than the
/// 24 bytes this codec knows (the kernel requires them to be zero; they are kept verbatim).
///
/// [`Btf::to_bytes`] does not trust the offsets and lengths here: it recomputes them from the
/// content, keeping the original order of the type and string sections, so that edits need not
/// touch the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfHeader {
    pub magic: u16,
    pub version: u8,
    pub flags: u8,
    pub hdr_len: u32,
    pub type_off: u32,
    pub type_len: u32,
    pub str_off: u32,
    pub str_len: u32,
    pub extra: Vec<u8>,
}

impl Default for BtfHeader {
    fn default() -> Self {
        BtfHeader {
            magic: BTF_MAGIC,
            version: 1,
            flags: 0,
            hdr_len: BTF_HEADER_LEN,
            type_off: 0,
            type_len: 0,
            str_off: 0,
            str_len: 1,
            extra: Vec::new(),
        }
    }
}

/// A parsed `.BTF` section.
///
/// Invariants that [`Btf::validate`] checks (and [`Btf::parse`] guarantees): `types[0]` is
/// [`TypeKind::Void`] and no other type is; every referenced id is `< types.len()`; every name
/// offset is inside the string table; vlen-carrying lists fit in 16 bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Btf {
    pub header: BtfHeader,
    /// Types by id; index 0 is `void`.
    pub types: Vec<BtfType>,
    pub strings: StringTable,
}

impl Default for Btf {
    fn default() -> Self {
        Btf::new()
    }
}

pub(crate) fn rd_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

pub(crate) fn rd_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

const INFO_UNUSED_BITS: u32 = 0x60ff_0000;
const INT_UNUSED_BITS: u32 = 0xf000_ff00;

/// The start every `.BTF` and `.BTF.ext` header shares: magic, version, flags, header length.
pub(crate) struct Prelude {
    pub magic: u16,
    pub version: u8,
    pub flags: u8,
    pub hdr_len: u32,
}

/// Checks the shared header start of `.BTF` and `.BTF.ext`: little-endian magic (big-endian is
/// unsupported, not malformed), version 1, and a header length from `min_len` (named `min_what`
/// in the error) up to the section size.
pub(crate) fn parse_prelude(
    data: &[u8],
    sec: Section,
    min_len: u32,
    min_what: &str,
) -> Result<Prelude, BtfError> {
    let truncated = |need: u32| BtfError::Truncated {
        section: sec,
        what: "header",
        offset: 0,
        need: u64::from(need),
        available: data.len(),
    };
    if data.len() < 4 {
        return Err(truncated(min_len));
    }
    let magic = rd_u16(data, 0);
    if magic == BTF_MAGIC.swap_bytes() {
        return Err(BtfError::Unsupported {
            section: sec,
            what: "big-endian BTF".into(),
        });
    }
    if magic != BTF_MAGIC {
        return Err(BtfError::Malformed {
            section: sec,
            offset: 0,
            what: format!("bad magic {magic:#06x} (expected {BTF_MAGIC:#06x})"),
        });
    }
    let version = data[2];
    if version != 1 {
        return Err(BtfError::Unsupported {
            section: sec,
            what: format!(
                "{} version {version} (only version 1 exists)",
                match sec {
                    Section::Btf => "BTF",
                    Section::BtfExt => "BTF.ext",
                }
            ),
        });
    }
    if data.len() < min_len as usize {
        return Err(truncated(min_len));
    }
    let hdr_len = rd_u32(data, 4);
    if hdr_len < min_len {
        return Err(BtfError::Malformed {
            section: sec,
            offset: 4,
            what: format!("header length {hdr_len} is shorter than the {min_len}-byte {min_what}"),
        });
    }
    if u64::from(hdr_len) > data.len() as u64 {
        return Err(truncated(hdr_len));
    }
    Ok(Prelude {
        magic,
        version,
        flags: data[3],
        hdr_len,
    })
}

impl Btf {
    /// An empty BTF (only `void`), version 1, 24-byte header.
    pub fn new() -> Btf {
        Btf {
            header: BtfHeader::default(),
            types: vec![BtfType {
                name_off: 0,
                kind: TypeKind::Void,
            }],
            strings: StringTable::default(),
        }
    }

    /// Parses and validates a `.BTF` section.
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        let sec = Section::Btf;
        let Prelude {
            magic,
            version,
            flags,
            hdr_len,
        } = parse_prelude(data, sec, BTF_HEADER_LEN, "BTF header")?;
        let header = BtfHeader {
            magic,
            version,
            flags,
            hdr_len,
            type_off: rd_u32(data, 8),
            type_len: rd_u32(data, 12),
            str_off: rd_u32(data, 16),
            str_len: rd_u32(data, 20),
            extra: data[BTF_HEADER_LEN as usize..hdr_len as usize].to_vec(),
        };
        let body = &data[hdr_len as usize..];
        let base = hdr_len as usize;
        check_layout(
            sec,
            base,
            body.len(),
            &[
                ("type", 8, header.type_off, header.type_len),
                ("string", 16, header.str_off, header.str_len),
            ],
        )?;
        if !header.type_off.is_multiple_of(4) {
            return Err(BtfError::Malformed {
                section: sec,
                offset: 8,
                what: format!(
                    "type section offset {} is not 4-byte aligned",
                    header.type_off
                ),
            });
        }
        let str_start = header.str_off as usize;
        let strings = StringTable::from_bytes(
            body[str_start..str_start + header.str_len as usize].to_vec(),
            base + str_start,
        )?;
        let type_start = header.type_off as usize;
        let type_bytes = &body[type_start..type_start + header.type_len as usize];
        let types = parse_types(type_bytes, base + type_start)?;
        let btf = Btf {
            header,
            types,
            strings,
        };
        btf.validate_refs(Some(base + type_start))?;
        Ok(btf)
    }

    /// Serializes to `.BTF` bytes. For a [`Btf::parse`] result that was not edited, this is the
    /// input byte for byte. Section order (types or strings first) follows the header as read;
    /// offsets and lengths come from the content (see [`Btf::refresh_header`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut types = Vec::new();
        for t in self.types.iter().skip(1) {
            encode_type(t, &mut types);
        }
        let strs = self.strings.as_bytes();
        let h = self.layout(types.len());
        let mut out = Vec::with_capacity(h.hdr_len as usize + types.len() + strs.len());
        out.extend_from_slice(&h.magic.to_le_bytes());
        out.push(h.version);
        out.push(h.flags);
        for v in [h.hdr_len, h.type_off, h.type_len, h.str_off, h.str_len] {
            put_u32(&mut out, v);
        }
        out.extend_from_slice(&h.extra);
        if h.str_off < h.type_off {
            out.extend_from_slice(strs);
            out.extend_from_slice(&types);
        } else {
            out.extend_from_slice(&types);
            out.extend_from_slice(strs);
        }
        out
    }

    /// Sets the header's lengths and offsets to what [`Btf::to_bytes`] will write, so that after
    /// edits `Btf::parse(&btf.to_bytes()) == btf`.
    pub fn refresh_header(&mut self) {
        let type_len = self
            .types
            .iter()
            .skip(1)
            .map(|t| encoded_len(&t.kind))
            .sum();
        self.header = self.layout(type_len);
    }

    /// The header `to_bytes` writes for a type section of `type_len` bytes.
    fn layout(&self, type_len: usize) -> BtfHeader {
        let str_len = self.strings.len() as u32;
        let type_len = type_len as u32;
        let strings_first = self.header.str_off < self.header.type_off;
        let (type_off, str_off) = if strings_first {
            (str_len, 0)
        } else {
            (0, type_len)
        };
        BtfHeader {
            hdr_len: BTF_HEADER_LEN + self.header.extra.len() as u32,
            type_off,
            type_len,
            str_off,
            str_len,
            ..self.header.clone()
        }
    }

    /// Re-checks the invariants after edits: `void` only at id 0, references in range, name
    /// offsets in the string table, lists that fit their 16-bit vlen, encodable member offsets.
    pub fn validate(&self) -> Result<(), BtfError> {
        self.validate_refs(None)
    }

    /// `type_base`: byte offset of the type section inside `.BTF`, when known, for messages.
    fn validate_refs(&self, type_base: Option<usize>) -> Result<(), BtfError> {
        let n = self.types.len();
        let str_len = self.strings.len();
        match self.types.first() {
            Some(BtfType {
                kind: TypeKind::Void,
                ..
            }) => {}
            _ => {
                return Err(BtfError::Lookup {
                    id: 0,
                    what: "type 0 must be void".into(),
                });
            }
        }
        let mut off = type_base.unwrap_or(0);
        for (id, t) in self.types.iter().enumerate().skip(1) {
            let id = id as TypeId;
            let kind = t.kind.kind() as u8;
            let bad = |what: String| BtfError::BadType {
                id,
                kind,
                offset: off,
                what,
            };
            if matches!(t.kind, TypeKind::Void) {
                return Err(bad(
                    "void (kind 0) is only valid as the implicit type 0".into()
                ));
            }
            if t.name_off as usize >= str_len {
                return Err(bad(format!(
                    "name offset {} is past the end of the {str_len}-byte string table",
                    t.name_off
                )));
            }
            let mut err = None;
            t.kind.for_each_ref(|r| {
                if err.is_none() && r as usize >= n {
                    err = Some(format!(
                        "references type id {r}, but the last type id is {}",
                        n - 1
                    ));
                }
            });
            t.kind.for_each_name_off(|o| {
                if err.is_none() && o as usize >= str_len {
                    err = Some(format!(
                        "member/param/enumerator name offset {o} is past the end of the {str_len}-byte string table"
                    ));
                }
            });
            if let Some(vlen) = vlen_of(&t.kind)
                && vlen > 0xffff
            {
                err.get_or_insert(format!("{vlen} entries do not fit the 16-bit vlen"));
            }
            if let TypeKind::Struct(c) | TypeKind::Union(c) = &t.kind
                && c.bitfield_encoding
                && let Some(m) = c.members.iter().find(|m| m.bit_offset > 0x00ff_ffff)
            {
                err.get_or_insert(format!(
                    "member bit offset {} does not fit 24 bits (bitfield encoding)",
                    m.bit_offset
                ));
            }
            if let TypeKind::Struct(c) | TypeKind::Union(c) = &t.kind
                && !c.bitfield_encoding
                && c.members.iter().any(|m| m.bitfield_size != 0)
            {
                err.get_or_insert(
                    "member has a bitfield size but the struct's kind flag is clear".into(),
                );
            }
            if let Some(e) = err {
                return Err(bad(e));
            }
            off += encoded_len(&t.kind);
        }
        Ok(())
    }
}

/// Checks that the sections named in a header tile `body` exactly: in offset order, the first at
/// 0, each starting where the previous ends, the last ending at the end of the data. This is the
/// kernel's rule; it is also what makes a byte-exact re-emission possible without keeping gaps.
/// Each entry: (name, header byte offset of its `off` field, off, len).
pub(crate) fn check_layout(
    sec: Section,
    base: usize,
    body_len: usize,
    parts: &[(&'static str, usize, u32, u32)],
) -> Result<(), BtfError> {
    for &(name, field, off, len) in parts {
        let end = u64::from(off) + u64::from(len);
        if end > body_len as u64 {
            return Err(BtfError::Malformed {
                section: sec,
                offset: field,
                what: format!(
                    "{name} section (offset {off}, length {len}) ends at {end}, past the {body_len} bytes after the header"
                ),
            });
        }
    }
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| (parts[i].2, i));
    let mut pos: u64 = 0;
    let mut prev = "header";
    for &i in &order {
        let (name, field, off, len) = parts[i];
        let off = u64::from(off);
        if off < pos {
            return Err(BtfError::Malformed {
                section: sec,
                offset: field,
                what: format!(
                    "{name} section at offset {off} overlaps the {prev} section ending at {pos}"
                ),
            });
        }
        if off > pos {
            return Err(BtfError::Unsupported {
                section: sec,
                what: format!(
                    "{} bytes of unknown data between the {prev} section and the {name} section (at byte {})",
                    off - pos,
                    base as u64 + pos
                ),
            });
        }
        pos = off + u64::from(len);
        prev = name;
    }
    if pos != body_len as u64 {
        return Err(BtfError::Unsupported {
            section: sec,
            what: format!(
                "{} bytes of unknown data after the {prev} section (at byte {})",
                body_len as u64 - pos,
                base as u64 + pos
            ),
        });
    }
    Ok(())
}

/// Number of trailing entries a kind encodes in vlen, if it has a list.
fn vlen_of(k: &TypeKind) -> Option<usize> {
    Some(match k {
        TypeKind::Struct(c) | TypeKind::Union(c) => c.members.len(),
        TypeKind::Enum(e) => e.values.len(),
        TypeKind::Enum64(e) => e.values.len(),
        TypeKind::FuncProto(p) => p.params.len(),
        TypeKind::Datasec(d) => d.vars.len(),
        _ => return None,
    })
}

/// Encoded size of one type record in bytes.
pub(crate) fn encoded_len(k: &TypeKind) -> usize {
    12 + match k {
        TypeKind::Void
        | TypeKind::Ptr { .. }
        | TypeKind::Fwd { .. }
        | TypeKind::Typedef { .. }
        | TypeKind::Volatile { .. }
        | TypeKind::Const { .. }
        | TypeKind::Restrict { .. }
        | TypeKind::Func { .. }
        | TypeKind::Float { .. }
        | TypeKind::TypeTag { .. } => 0,
        TypeKind::Int(_) | TypeKind::Var(_) | TypeKind::DeclTag(_) => 4,
        TypeKind::Array(_) => 12,
        TypeKind::Struct(c) | TypeKind::Union(c) => 12 * c.members.len(),
        TypeKind::Enum(e) => 8 * e.values.len(),
        TypeKind::Enum64(e) => 12 * e.values.len(),
        TypeKind::FuncProto(p) => 8 * p.params.len(),
        TypeKind::Datasec(d) => 12 * d.vars.len(),
    }
}

fn info(kind: Kind, kflag: bool, vlen: usize) -> u32 {
    (u32::from(kflag) << 31) | ((kind as u32) << 24) | (vlen as u32 & 0xffff)
}

fn encode_type(t: &BtfType, out: &mut Vec<u8>) {
    let k = t.kind.kind();
    let mut head = |kflag: bool, vlen: usize, size_type: u32| {
        put_u32(out, t.name_off);
        put_u32(out, info(k, kflag, vlen));
        put_u32(out, size_type);
    };
    match &t.kind {
        TypeKind::Void => head(false, 0, 0),
        TypeKind::Int(i) => {
            head(false, 0, i.size);
            put_u32(
                out,
                (u32::from(i.encoding.to_bits()) << 24)
                    | (u32::from(i.offset) << 16)
                    | u32::from(i.bits),
            );
        }
        TypeKind::Ptr { type_id }
        | TypeKind::Typedef { type_id }
        | TypeKind::Volatile { type_id }
        | TypeKind::Const { type_id }
        | TypeKind::Restrict { type_id } => head(false, 0, *type_id),
        TypeKind::TypeTag { type_id, attr } => head(*attr, 0, *type_id),
        TypeKind::Array(a) => {
            head(false, 0, 0);
            put_u32(out, a.elem_type);
            put_u32(out, a.index_type);
            put_u32(out, a.nelems);
        }
        TypeKind::Struct(c) | TypeKind::Union(c) => {
            head(c.bitfield_encoding, c.members.len(), c.size);
            for m in &c.members {
                put_u32(out, m.name_off);
                put_u32(out, m.type_id);
                put_u32(out, m.raw_offset(c.bitfield_encoding));
            }
        }
        TypeKind::Enum(e) => {
            head(e.signed, e.values.len(), e.size);
            for v in &e.values {
                put_u32(out, v.name_off);
                put_u32(out, v.val);
            }
        }
        TypeKind::Enum64(e) => {
            head(e.signed, e.values.len(), e.size);
            for v in &e.values {
                put_u32(out, v.name_off);
                put_u32(out, v.val as u32);
                put_u32(out, (v.val >> 32) as u32);
            }
        }
        TypeKind::Fwd { union } => head(*union, 0, 0),
        TypeKind::Func { proto, linkage } => head(false, *linkage as usize, *proto),
        TypeKind::FuncProto(p) => {
            head(false, p.params.len(), p.ret);
            for prm in &p.params {
                put_u32(out, prm.name_off);
                put_u32(out, prm.type_id);
            }
        }
        TypeKind::Var(v) => {
            head(false, 0, v.type_id);
            put_u32(out, v.linkage as u32);
        }
        TypeKind::Datasec(d) => {
            head(false, d.vars.len(), d.size);
            for v in &d.vars {
                put_u32(out, v.type_id);
                put_u32(out, v.offset);
                put_u32(out, v.size);
            }
        }
        TypeKind::Float { size } => head(false, 0, *size),
        TypeKind::DeclTag(d) => {
            head(d.attr, 0, d.type_id);
            put_u32(out, d.component_idx as u32);
        }
    }
}

/// Parses the type section. `base` is its byte offset inside `.BTF`, for messages.
fn parse_types(b: &[u8], base: usize) -> Result<Vec<BtfType>, BtfError> {
    let mut types = vec![BtfType {
        name_off: 0,
        kind: TypeKind::Void,
    }];
    let mut pos = 0usize;
    while pos < b.len() {
        let id = types.len() as TypeId;
        let at = base + pos;
        if b.len() - pos < 12 {
            return Err(BtfError::Truncated {
                section: Section::Btf,
                what: "type record",
                offset: at,
                need: 12,
                available: b.len() - pos,
            });
        }
        let name_off = rd_u32(b, pos);
        let inf = rd_u32(b, pos + 4);
        let size_type = rd_u32(b, pos + 8);
        let raw_kind = ((inf >> 24) & 0x1f) as u8;
        let kflag = inf >> 31 != 0;
        let vlen = (inf & 0xffff) as usize;
        let bad = |what: String| BtfError::BadType {
            id,
            kind: raw_kind,
            offset: at,
            what,
        };
        let Some(kind) = Kind::from_u8(raw_kind).filter(|k| *k != Kind::Void) else {
            return Err(bad(format!("unknown kind {raw_kind} (info {inf:#010x})")));
        };
        if inf & INFO_UNUSED_BITS != 0 {
            return Err(bad(format!("unused info bits set (info {inf:#010x})")));
        }
        let extra_len = match kind {
            Kind::Int | Kind::Var | Kind::DeclTag => 4,
            Kind::Array => 12,
            Kind::Struct | Kind::Union | Kind::Enum64 | Kind::Datasec => 12 * vlen,
            Kind::Enum | Kind::FuncProto => 8 * vlen,
            _ => 0,
        };
        if b.len() - pos - 12 < extra_len {
            return Err(bad(format!(
                "vlen {vlen} needs {extra_len} bytes after the 12-byte header, only {} remain in the type section",
                b.len() - pos - 12
            )));
        }
        let has_list = matches!(
            kind,
            Kind::Struct
                | Kind::Union
                | Kind::Enum
                | Kind::Enum64
                | Kind::FuncProto
                | Kind::Datasec
        );
        // FUNC keeps its linkage in vlen; every other kind without a list must have vlen 0.
        if !has_list && kind != Kind::Func && vlen != 0 {
            return Err(bad(format!("vlen must be 0, is {vlen}")));
        }
        let flag_meaningful = matches!(
            kind,
            Kind::Struct
                | Kind::Union
                | Kind::Enum
                | Kind::Enum64
                | Kind::Fwd
                | Kind::DeclTag
                | Kind::TypeTag
        );
        if kflag && !flag_meaningful {
            return Err(bad("kind flag must be clear for this kind".into()));
        }
        let x = pos + 12;
        let tk = match kind {
            Kind::Void => unreachable!("filtered above"),
            Kind::Int => {
                let v = rd_u32(b, x);
                if v & INT_UNUSED_BITS != 0 {
                    return Err(bad(format!("unused INT encoding bits set ({v:#010x})")));
                }
                let enc_bits = ((v >> 24) & 0x0f) as u8;
                let encoding = IntEncoding::from_bits(enc_bits)
                    .ok_or_else(|| bad(format!("invalid INT encoding {enc_bits:#x}")))?;
                TypeKind::Int(Int {
                    size: size_type,
                    encoding,
                    offset: (v >> 16) as u8,
                    bits: v as u8,
                })
            }
            Kind::Ptr => TypeKind::Ptr { type_id: size_type },
            Kind::Typedef => TypeKind::Typedef { type_id: size_type },
            Kind::Volatile => TypeKind::Volatile { type_id: size_type },
            Kind::Const => TypeKind::Const { type_id: size_type },
            Kind::Restrict => TypeKind::Restrict { type_id: size_type },
            Kind::TypeTag => TypeKind::TypeTag {
                type_id: size_type,
                attr: kflag,
            },
            Kind::Array => {
                if size_type != 0 {
                    return Err(bad(format!("ARRAY size field must be 0, is {size_type}")));
                }
                TypeKind::Array(Array {
                    elem_type: rd_u32(b, x),
                    index_type: rd_u32(b, x + 4),
                    nelems: rd_u32(b, x + 8),
                })
            }
            Kind::Struct | Kind::Union => {
                let members = (0..vlen)
                    .map(|i| {
                        let m = x + 12 * i;
                        Member::from_raw_offset(
                            rd_u32(b, m),
                            rd_u32(b, m + 4),
                            rd_u32(b, m + 8),
                            kflag,
                        )
                    })
                    .collect();
                let c = Composite {
                    size: size_type,
                    bitfield_encoding: kflag,
                    members,
                };
                if kind == Kind::Struct {
                    TypeKind::Struct(c)
                } else {
                    TypeKind::Union(c)
                }
            }
            Kind::Enum => TypeKind::Enum(Enum {
                size: size_type,
                signed: kflag,
                values: (0..vlen)
                    .map(|i| EnumValue {
                        name_off: rd_u32(b, x + 8 * i),
                        val: rd_u32(b, x + 8 * i + 4),
                    })
                    .collect(),
            }),
            Kind::Enum64 => TypeKind::Enum64(Enum64 {
                size: size_type,
                signed: kflag,
                values: (0..vlen)
                    .map(|i| {
                        let e = x + 12 * i;
                        Enum64Value {
                            name_off: rd_u32(b, e),
                            val: u64::from(rd_u32(b, e + 4)) | u64::from(rd_u32(b, e + 8)) << 32,
                        }
                    })
                    .collect(),
            }),
            Kind::Fwd => {
                if size_type != 0 {
                    return Err(bad(format!("FWD type field must be 0, is {size_type}")));
                }
                TypeKind::Fwd { union: kflag }
            }
            Kind::Func => TypeKind::Func {
                proto: size_type,
                linkage: FuncLinkage::from_u32(vlen as u32)
                    .ok_or_else(|| bad(format!("invalid FUNC linkage {vlen}")))?,
            },
            Kind::FuncProto => TypeKind::FuncProto(FuncProto {
                ret: size_type,
                params: (0..vlen)
                    .map(|i| Param {
                        name_off: rd_u32(b, x + 8 * i),
                        type_id: rd_u32(b, x + 8 * i + 4),
                    })
                    .collect(),
            }),
            Kind::Var => {
                let l = rd_u32(b, x);
                TypeKind::Var(Var {
                    type_id: size_type,
                    linkage: VarLinkage::from_u32(l)
                        .ok_or_else(|| bad(format!("invalid VAR linkage {l}")))?,
                })
            }
            Kind::Datasec => TypeKind::Datasec(Datasec {
                size: size_type,
                vars: (0..vlen)
                    .map(|i| {
                        let v = x + 12 * i;
                        VarSecinfo {
                            type_id: rd_u32(b, v),
                            offset: rd_u32(b, v + 4),
                            size: rd_u32(b, v + 8),
                        }
                    })
                    .collect(),
            }),
            Kind::Float => TypeKind::Float { size: size_type },
            Kind::DeclTag => TypeKind::DeclTag(DeclTag {
                type_id: size_type,
                component_idx: rd_u32(b, x) as i32,
                attr: kflag,
            }),
        };
        types.push(BtfType { name_off, kind: tk });
        pos = x + extra_len;
    }
    Ok(types)
}
