//! The BTF codec's error type: every variant names the section and, where one exists, the byte
//! offset inside that section and the type id, so a user can find the problem with a hex dump.

use super::TypeId;
use std::fmt;

/// Which ELF section an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// `.BTF`
    Btf,
    /// `.BTF.ext`
    BtfExt,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Btf => ".BTF",
            Section::BtfExt => ".BTF.ext",
        })
    }
}

/// Everything that can go wrong reading, checking, querying or editing BTF.
///
/// Byte offsets are relative to the start of the named section (not of the ELF file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BtfError {
    /// The data ends before a structure that the headers say is there.
    #[error(
        "{section}: truncated {what} at byte {offset}: needs {need} bytes, only {available} present"
    )]
    Truncated {
        section: Section,
        what: &'static str,
        offset: usize,
        need: u64,
        available: usize,
    },
    /// A header, layout or string-table problem that is not tied to one type.
    #[error("{section} at byte {offset}: {what}")]
    Malformed {
        section: Section,
        offset: usize,
        what: String,
    },
    /// A problem in one `.BTF` type record. `kind` is the raw kind number from the record.
    #[error(".BTF type [{id}] {} at byte {offset}: {what}", kind_name(*.kind))]
    BadType {
        id: TypeId,
        kind: u8,
        offset: usize,
        what: String,
    },
    /// Well-formed input using something this codec does not handle (big-endian BTF, unknown
    /// header version, data outside the known sub-sections).
    #[error("{section}: unsupported: {what}")]
    Unsupported { section: Section, what: String },
    /// A `.BTF.ext` record refers to something `.BTF` does not have (found by
    /// [`super::BtfExt::check`], which works on parsed records and so has no byte offset).
    #[error(".BTF.ext: {what}")]
    ExtRef { what: String },
    /// A query could not be answered (missing type, wrong kind, reference cycle).
    #[error("BTF type [{id}]: {what}")]
    Lookup { id: TypeId, what: String },
    /// A BTF-defined map (`.maps` variable) does not follow libbpf's conventions.
    #[error("BTF map '{map}': {what}")]
    MapDef { map: String, what: String },
    /// A type id map cannot be applied.
    #[error("BTF id remap: {what}")]
    Remap { what: String },
}

/// Name of a raw kind number as the kernel and bpftool spell it.
pub(crate) fn kind_name(kind: u8) -> String {
    match super::Kind::from_u8(kind) {
        Some(k) => k.name().to_string(),
        None => format!("kind {kind}"),
    }
}

impl From<BtfError> for crate::Error {
    fn from(e: BtfError) -> Self {
        match e {
            // crate::Error already says "unsupported: ", so only the section and reason go in.
            BtfError::Unsupported { section, what } => {
                crate::Error::Unsupported(format!("{section}: {what}"))
            }
            _ => crate::Error::Malformed(e.to_string()),
        }
    }
}
