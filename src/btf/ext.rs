//! The `.BTF.ext` section: func_info, line_info and CO-RE relocation records.
//!
//! Each sub-section starts with a record size and then holds groups `{sec_name_off, num_info,
//! records[num_info]}`, one per ELF code section, in file order. The record size from the file is
//! kept: records longer than this codec knows keep their extra bytes (in
//! [`ExtSection::record_extra`]) so the output is byte-identical.
//!
//! `insn_off` in every record is a **byte** offset into the code section, as stored in the ELF
//! file. libbpf divides it by 8 before handing func/line info to the kernel, which counts
//! instructions. The records keep the file's value; [`FuncInfo::insn_slot`] and friends convert.

use super::error::{BtfError, Section};
use super::{Btf, TypeId, TypeIdMap, TypeKind, check_layout, rd_u32};

/// Length of the `.BTF.ext` header fields this codec knows (func_info, line_info, core_relo).
pub const BTF_EXT_HEADER_LEN: u32 = 32;
/// The oldest `.BTF.ext` header: func_info and line_info only.
pub const BTF_EXT_HEADER_LEN_V1: u32 = 24;

/// `struct btf_ext_header`, every field as read.
///
/// A header shorter than 32 bytes has no core_relo fields (they read as 0 here). `extra` holds
/// header bytes beyond the known fields. As for `.BTF`, [`BtfExt::to_bytes`] recomputes offsets
/// and lengths from the content, keeping the sub-sections in their original order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfExtHeader {
    pub magic: u16,
    pub version: u8,
    pub flags: u8,
    pub hdr_len: u32,
    pub func_info_off: u32,
    pub func_info_len: u32,
    pub line_info_off: u32,
    pub line_info_len: u32,
    pub core_relo_off: u32,
    pub core_relo_len: u32,
    pub extra: Vec<u8>,
}

impl Default for BtfExtHeader {
    fn default() -> Self {
        BtfExtHeader {
            magic: super::BTF_MAGIC,
            version: 1,
            flags: 0,
            hdr_len: BTF_EXT_HEADER_LEN,
            func_info_off: 0,
            func_info_len: 0,
            line_info_off: 0,
            line_info_len: 0,
            core_relo_off: 0,
            core_relo_len: 0,
            extra: Vec::new(),
        }
    }
}

/// A fixed-layout `.BTF.ext` record.
pub trait ExtRecord: Copy + std::fmt::Debug + PartialEq {
    /// Size of the fields this codec knows; the file's record size may be larger.
    const SIZE: usize;
    /// Sub-section name for messages.
    const NAME: &'static str;
    /// Reads from at least `SIZE` bytes.
    fn read(b: &[u8]) -> Self;
    fn write(&self, out: &mut Vec<u8>);
    /// The record's `insn_off` (bytes).
    fn insn_off(&self) -> u32;
}

/// `struct bpf_func_info`: the function starting at `insn_off` has BTF FUNC `type_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuncInfo {
    /// Byte offset into the code section (divide by 8 for the instruction slot).
    pub insn_off: u32,
    pub type_id: TypeId,
}

/// `struct bpf_line_info`: the instruction at `insn_off` comes from `file:line:col`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineInfo {
    /// Byte offset into the code section (divide by 8 for the instruction slot).
    pub insn_off: u32,
    /// `.BTF` string offset of the source file name.
    pub file_name_off: u32,
    /// `.BTF` string offset of the source line text.
    pub line_off: u32,
    pub line: u32,
    pub col: u32,
}

impl LineInfo {
    /// The file's `line_col` word: line in the top 22 bits, column in the low 10.
    pub fn line_col(&self) -> u32 {
        (self.line << 10) | (self.col & 0x3ff)
    }
}

/// `struct bpf_core_relo`: a CO-RE relocation of the instruction at `insn_off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreRelo {
    /// Byte offset into the code section (divide by 8 for the instruction slot).
    pub insn_off: u32,
    /// The local (program-side) root type of the access.
    pub type_id: TypeId,
    /// `.BTF` string offset of the access spec (`"0:1:2"`).
    pub access_str_off: u32,
    pub kind: CoreReloKind,
}

/// `enum bpf_core_relo_kind`. Unknown values are kept (libbpf refuses them at load time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreReloKind {
    FieldByteOffset,
    FieldByteSize,
    FieldExists,
    FieldSigned,
    FieldLshiftU64,
    FieldRshiftU64,
    TypeIdLocal,
    TypeIdTarget,
    TypeExists,
    TypeSize,
    EnumvalExists,
    EnumvalValue,
    TypeMatches,
    Unknown(u32),
}

impl CoreReloKind {
    pub fn from_u32(v: u32) -> CoreReloKind {
        use CoreReloKind::*;
        match v {
            0 => FieldByteOffset,
            1 => FieldByteSize,
            2 => FieldExists,
            3 => FieldSigned,
            4 => FieldLshiftU64,
            5 => FieldRshiftU64,
            6 => TypeIdLocal,
            7 => TypeIdTarget,
            8 => TypeExists,
            9 => TypeSize,
            10 => EnumvalExists,
            11 => EnumvalValue,
            12 => TypeMatches,
            v => Unknown(v),
        }
    }

    pub fn to_u32(self) -> u32 {
        use CoreReloKind::*;
        match self {
            FieldByteOffset => 0,
            FieldByteSize => 1,
            FieldExists => 2,
            FieldSigned => 3,
            FieldLshiftU64 => 4,
            FieldRshiftU64 => 5,
            TypeIdLocal => 6,
            TypeIdTarget => 7,
            TypeExists => 8,
            TypeSize => 9,
            EnumvalExists => 10,
            EnumvalValue => 11,
            TypeMatches => 12,
            Unknown(v) => v,
        }
    }

    /// libbpf's name for the kind (`"byte_off"`, `"type_id"`...), as in its debug output.
    pub fn name(self) -> &'static str {
        use CoreReloKind::*;
        match self {
            FieldByteOffset => "byte_off",
            FieldByteSize => "byte_sz",
            FieldExists => "field_exists",
            FieldSigned => "signed",
            FieldLshiftU64 => "lshift_u64",
            FieldRshiftU64 => "rshift_u64",
            TypeIdLocal => "local_type_id",
            TypeIdTarget => "target_type_id",
            TypeExists => "type_exists",
            TypeSize => "type_size",
            EnumvalExists => "enumval_exists",
            EnumvalValue => "enumval_value",
            TypeMatches => "type_matches",
            Unknown(_) => "unknown",
        }
    }
}

macro_rules! slot_accessors {
    ($t:ty) => {
        impl $t {
            /// The instruction slot (`insn_off / 8`). A byte offset that is not a multiple of 8
            /// rounds down; [`BtfExt::check`] reports it.
            pub fn insn_slot(&self) -> u32 {
                self.insn_off / 8
            }

            /// Sets `insn_off` from an instruction slot (saturating at `u32::MAX`).
            pub fn set_insn_slot(&mut self, slot: u32) {
                self.insn_off = slot.saturating_mul(8);
            }
        }
    };
}
slot_accessors!(FuncInfo);
slot_accessors!(LineInfo);
slot_accessors!(CoreRelo);

impl ExtRecord for FuncInfo {
    const SIZE: usize = 8;
    const NAME: &'static str = "func_info";
    fn read(b: &[u8]) -> Self {
        FuncInfo {
            insn_off: rd_u32(b, 0),
            type_id: rd_u32(b, 4),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.insn_off.to_le_bytes());
        out.extend_from_slice(&self.type_id.to_le_bytes());
    }
    fn insn_off(&self) -> u32 {
        self.insn_off
    }
}

impl ExtRecord for LineInfo {
    const SIZE: usize = 16;
    const NAME: &'static str = "line_info";
    fn read(b: &[u8]) -> Self {
        let lc = rd_u32(b, 12);
        LineInfo {
            insn_off: rd_u32(b, 0),
            file_name_off: rd_u32(b, 4),
            line_off: rd_u32(b, 8),
            line: lc >> 10,
            col: lc & 0x3ff,
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        for v in [
            self.insn_off,
            self.file_name_off,
            self.line_off,
            self.line_col(),
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    fn insn_off(&self) -> u32 {
        self.insn_off
    }
}

impl ExtRecord for CoreRelo {
    const SIZE: usize = 16;
    const NAME: &'static str = "core_relo";
    fn read(b: &[u8]) -> Self {
        CoreRelo {
            insn_off: rd_u32(b, 0),
            type_id: rd_u32(b, 4),
            access_str_off: rd_u32(b, 8),
            kind: CoreReloKind::from_u32(rd_u32(b, 12)),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        for v in [
            self.insn_off,
            self.type_id,
            self.access_str_off,
            self.kind.to_u32(),
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    fn insn_off(&self) -> u32 {
        self.insn_off
    }
}

/// The records of one ELF code section (`sec_name_off` names it in the `.BTF` string table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtSection<T> {
    pub sec_name_off: u32,
    pub records: Vec<T>,
    /// Bytes past `T::SIZE` of each record, concatenated (`record_size - T::SIZE` per record),
    /// when the file's record size is larger than this codec knows. Records without stored extra
    /// bytes are padded with zeros on output.
    pub record_extra: Vec<u8>,
}

impl<T> ExtSection<T> {
    pub fn new(sec_name_off: u32) -> ExtSection<T> {
        ExtSection {
            sec_name_off,
            records: Vec::new(),
            record_extra: Vec::new(),
        }
    }
}

/// One sub-section (func_info, line_info or core_relo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtSubsection<T> {
    /// The record size from the file; `None` when the sub-section was absent (length 0). On
    /// output `None` with records present uses `T::SIZE`.
    pub record_size: Option<u32>,
    pub sections: Vec<ExtSection<T>>,
}

impl<T: ExtRecord> ExtSubsection<T> {
    /// An empty sub-section that still carries its record size (as clang emits func/line info).
    pub fn empty() -> Self {
        ExtSubsection {
            record_size: Some(T::SIZE as u32),
            sections: Vec::new(),
        }
    }

    /// An absent sub-section (length 0 in the header).
    pub fn absent() -> Self {
        ExtSubsection {
            record_size: None,
            sections: Vec::new(),
        }
    }

    /// The group for the ELF section whose name is at `sec_name_off`, if any.
    pub fn section(&self, sec_name_off: u32) -> Option<&ExtSection<T>> {
        self.sections
            .iter()
            .find(|s| s.sec_name_off == sec_name_off)
    }

    /// Total number of records.
    pub fn len(&self) -> usize {
        self.sections.iter().map(|s| s.records.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.record_size.is_none() && self.sections.is_empty() {
            return out;
        }
        let rs = self.record_size.unwrap_or(T::SIZE as u32);
        let extra = (rs as usize).saturating_sub(T::SIZE);
        out.extend_from_slice(&rs.to_le_bytes());
        for s in &self.sections {
            out.extend_from_slice(&s.sec_name_off.to_le_bytes());
            out.extend_from_slice(&(s.records.len() as u32).to_le_bytes());
            for (i, r) in s.records.iter().enumerate() {
                r.write(&mut out);
                if extra > 0 {
                    match s.record_extra.get(i * extra..(i + 1) * extra) {
                        Some(e) => out.extend_from_slice(e),
                        None => out.resize(out.len() + extra, 0),
                    }
                }
            }
        }
        out
    }

    /// `b`: the sub-section bytes; `base`: their offset inside `.BTF.ext`, for messages.
    fn decode(b: &[u8], base: usize) -> Result<Self, BtfError> {
        if b.is_empty() {
            return Ok(Self::absent());
        }
        let sec = Section::BtfExt;
        if b.len() < 4 {
            return Err(BtfError::Truncated {
                section: sec,
                what: "sub-section record size",
                offset: base,
                need: 4,
                available: b.len(),
            });
        }
        let rs = rd_u32(b, 0);
        if (rs as usize) < T::SIZE || !rs.is_multiple_of(4) {
            return Err(BtfError::Malformed {
                section: sec,
                offset: base,
                what: format!(
                    "{} record size {rs} is invalid (at least {} and a multiple of 4)",
                    T::NAME,
                    T::SIZE
                ),
            });
        }
        let mut sections = Vec::new();
        let mut pos = 4usize;
        while pos < b.len() {
            if b.len() - pos < 8 {
                return Err(BtfError::Truncated {
                    section: sec,
                    what: "sub-section group header",
                    offset: base + pos,
                    need: 8,
                    available: b.len() - pos,
                });
            }
            let sec_name_off = rd_u32(b, pos);
            let n = rd_u32(b, pos + 4);
            pos += 8;
            let need = u64::from(n) * u64::from(rs);
            if need > (b.len() - pos) as u64 {
                return Err(BtfError::Truncated {
                    section: sec,
                    what: T::NAME,
                    offset: base + pos,
                    need,
                    available: b.len() - pos,
                });
            }
            let mut s = ExtSection::new(sec_name_off);
            s.records.reserve(n as usize);
            for _ in 0..n {
                let rec = &b[pos..pos + rs as usize];
                s.records.push(T::read(rec));
                s.record_extra.extend_from_slice(&rec[T::SIZE..]);
                pos += rs as usize;
            }
            sections.push(s);
        }
        Ok(ExtSubsection {
            record_size: Some(rs),
            sections,
        })
    }
}

/// A parsed `.BTF.ext` section. String offsets and type ids in it refer to the object's `.BTF`;
/// [`BtfExt::check`] verifies them against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfExt {
    pub header: BtfExtHeader,
    pub func_info: ExtSubsection<FuncInfo>,
    pub line_info: ExtSubsection<LineInfo>,
    pub core_relo: ExtSubsection<CoreRelo>,
}

impl Default for BtfExt {
    fn default() -> Self {
        BtfExt::new()
    }
}

impl BtfExt {
    /// An empty `.BTF.ext` laid out as clang emits one: 32-byte header, func_info and line_info
    /// present with their record sizes, core_relo absent.
    pub fn new() -> BtfExt {
        BtfExt {
            header: BtfExtHeader::default(),
            func_info: ExtSubsection::empty(),
            line_info: ExtSubsection::empty(),
            core_relo: ExtSubsection::absent(),
        }
    }

    /// Parses a `.BTF.ext` section (structure only; see [`BtfExt::check`] for references).
    pub fn parse(data: &[u8]) -> Result<BtfExt, BtfError> {
        let sec = Section::BtfExt;
        let super::Prelude {
            magic,
            version,
            flags,
            hdr_len,
        } = super::parse_prelude(data, sec, BTF_EXT_HEADER_LEN_V1, "minimum")?;
        let has_core = hdr_len >= BTF_EXT_HEADER_LEN;
        let known = if has_core {
            BTF_EXT_HEADER_LEN
        } else {
            BTF_EXT_HEADER_LEN_V1
        };
        let header = BtfExtHeader {
            magic,
            version,
            flags,
            hdr_len,
            func_info_off: rd_u32(data, 8),
            func_info_len: rd_u32(data, 12),
            line_info_off: rd_u32(data, 16),
            line_info_len: rd_u32(data, 20),
            core_relo_off: if has_core { rd_u32(data, 24) } else { 0 },
            core_relo_len: if has_core { rd_u32(data, 28) } else { 0 },
            extra: data[known as usize..hdr_len as usize].to_vec(),
        };
        let base = hdr_len as usize;
        let body = &data[base..];
        let mut parts = vec![
            ("func_info", 8, header.func_info_off, header.func_info_len),
            ("line_info", 16, header.line_info_off, header.line_info_len),
        ];
        if has_core {
            parts.push(("core_relo", 24, header.core_relo_off, header.core_relo_len));
        }
        check_layout(sec, base, body.len(), &parts)?;
        for &(name, field, off, _) in &parts {
            if !off.is_multiple_of(4) {
                return Err(BtfError::Malformed {
                    section: sec,
                    offset: field,
                    what: format!("{name} offset {off} is not 4-byte aligned"),
                });
            }
        }
        let sub = |off: u32, len: u32| &body[off as usize..off as usize + len as usize];
        Ok(BtfExt {
            func_info: ExtSubsection::decode(
                sub(header.func_info_off, header.func_info_len),
                base + header.func_info_off as usize,
            )?,
            line_info: ExtSubsection::decode(
                sub(header.line_info_off, header.line_info_len),
                base + header.line_info_off as usize,
            )?,
            core_relo: ExtSubsection::decode(
                sub(header.core_relo_off, header.core_relo_len),
                base + header.core_relo_off as usize,
            )?,
            header,
        })
    }

    /// Serializes; byte-identical to the input of [`BtfExt::parse`] when nothing was edited.
    ///
    /// A header that was shorter than 32 bytes grows to 32 (dropping its unknown extra bytes)
    /// only if CO-RE records were added.
    pub fn to_bytes(&self) -> Vec<u8> {
        let subs = [
            self.func_info.encode(),
            self.line_info.encode(),
            self.core_relo.encode(),
        ];
        let short = self.header.hdr_len < BTF_EXT_HEADER_LEN;
        let (known, extra): (u32, &[u8]) = if short && subs[2].is_empty() {
            (BTF_EXT_HEADER_LEN_V1, &self.header.extra)
        } else if short {
            (BTF_EXT_HEADER_LEN, &[])
        } else {
            (BTF_EXT_HEADER_LEN, &self.header.extra)
        };
        let hdr_len = known + extra.len() as u32;
        let orig = [
            self.header.func_info_off,
            self.header.line_info_off,
            self.header.core_relo_off,
        ];
        let mut order = [0usize, 1, 2];
        order.sort_by_key(|&i| (orig[i], i));
        let mut offs = [0u32; 3];
        let mut pos = 0u32;
        for &i in &order {
            offs[i] = pos;
            pos += subs[i].len() as u32;
        }
        let mut out = Vec::with_capacity(hdr_len as usize + pos as usize);
        out.extend_from_slice(&self.header.magic.to_le_bytes());
        out.push(self.header.version);
        out.push(self.header.flags);
        out.extend_from_slice(&hdr_len.to_le_bytes());
        for i in 0..(if known == BTF_EXT_HEADER_LEN { 3 } else { 2 }) {
            out.extend_from_slice(&offs[i].to_le_bytes());
            out.extend_from_slice(&(subs[i].len() as u32).to_le_bytes());
        }
        out.extend_from_slice(extra);
        for &i in &order {
            out.extend_from_slice(&subs[i]);
        }
        out
    }

    /// Checks the references into `.BTF`: section names, file names, source lines and access
    /// strings are string offsets inside `btf`'s table; func_info types are FUNCs; CO-RE types
    /// exist; every `insn_off` is a multiple of 8 (a whole instruction).
    pub fn check(&self, btf: &Btf) -> Result<(), BtfError> {
        let bad = |what: String| BtfError::ExtRef { what };
        let str_ok = |off: u32| (off as usize) < btf.strings.len();
        let sec_name = |off: u32| btf.strings.get_lossy(off).unwrap_or_default().into_owned();
        fn groups<T: ExtRecord>(
            s: &ExtSubsection<T>,
            str_ok: &dyn Fn(u32) -> bool,
            bad: &dyn Fn(String) -> BtfError,
        ) -> Result<(), BtfError> {
            for g in &s.sections {
                if !str_ok(g.sec_name_off) {
                    return Err(bad(format!(
                        "{} section name offset {} is past the end of the .BTF string table",
                        T::NAME,
                        g.sec_name_off
                    )));
                }
                if let Some(r) = g.records.iter().find(|r| !r.insn_off().is_multiple_of(8)) {
                    return Err(bad(format!(
                        "{} record insn_off {} is not a multiple of 8 (a whole instruction)",
                        T::NAME,
                        r.insn_off()
                    )));
                }
            }
            Ok(())
        }
        groups(&self.func_info, &str_ok, &bad)?;
        groups(&self.line_info, &str_ok, &bad)?;
        groups(&self.core_relo, &str_ok, &bad)?;
        for g in &self.func_info.sections {
            for r in &g.records {
                match btf.types.get(r.type_id as usize).map(|t| &t.kind) {
                    Some(TypeKind::Func { .. }) => {}
                    Some(other) => {
                        return Err(bad(format!(
                            "func_info in '{}' at insn_off {}: type [{}] is {}, not FUNC",
                            sec_name(g.sec_name_off),
                            r.insn_off,
                            r.type_id,
                            other.kind()
                        )));
                    }
                    None => {
                        return Err(bad(format!(
                            "func_info in '{}' at insn_off {}: type id {} does not exist",
                            sec_name(g.sec_name_off),
                            r.insn_off,
                            r.type_id
                        )));
                    }
                }
            }
        }
        for g in &self.line_info.sections {
            for r in &g.records {
                if !str_ok(r.file_name_off) || !str_ok(r.line_off) {
                    return Err(bad(format!(
                        "line_info in '{}' at insn_off {}: file/line string offset ({}, {}) is past the end of the .BTF string table",
                        sec_name(g.sec_name_off),
                        r.insn_off,
                        r.file_name_off,
                        r.line_off
                    )));
                }
            }
        }
        for g in &self.core_relo.sections {
            for r in &g.records {
                if r.type_id as usize >= btf.types.len() {
                    return Err(bad(format!(
                        "core_relo in '{}' at insn_off {}: type id {} does not exist",
                        sec_name(g.sec_name_off),
                        r.insn_off,
                        r.type_id
                    )));
                }
                if !str_ok(r.access_str_off) {
                    return Err(bad(format!(
                        "core_relo in '{}' at insn_off {}: access string offset {} is past the end of the .BTF string table",
                        sec_name(g.sec_name_off),
                        r.insn_off,
                        r.access_str_off
                    )));
                }
            }
        }
        Ok(())
    }

    /// Rewrites the type ids outside `.BTF` that this section holds: func_info `type_id` and
    /// CO-RE `type_id`. Use the same map as [`Btf::apply_id_map`].
    pub fn apply_id_map(&mut self, map: &TypeIdMap) -> Result<(), BtfError> {
        let mut out = self.clone();
        for g in &mut out.func_info.sections {
            for r in &mut g.records {
                r.type_id = map.map_id(r.type_id)?;
            }
        }
        for g in &mut out.core_relo.sections {
            for r in &mut g.records {
                r.type_id = map.map_id(r.type_id)?;
            }
        }
        *self = out;
        Ok(())
    }
}
