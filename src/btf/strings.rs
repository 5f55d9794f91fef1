//! The BTF string table, kept as its exact bytes.

use super::error::{BtfError, Section};

/// The `.BTF` string section: NUL-terminated strings addressed by byte offset. Offset 0 is the
/// empty string. The bytes are kept exactly as read so that serialization is byte-identical,
/// and appended strings go at the end (existing offsets never move).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringTable {
    bytes: Vec<u8>,
}

impl Default for StringTable {
    fn default() -> Self {
        StringTable { bytes: vec![0] }
    }
}

impl StringTable {
    /// Checks the kernel's rules: non-empty, first byte NUL (offset 0 is ""), last byte NUL (every
    /// string is terminated). `base` is the table's byte offset inside `.BTF`, for messages.
    pub fn from_bytes(bytes: Vec<u8>, base: usize) -> Result<StringTable, BtfError> {
        if bytes.is_empty() {
            return Err(BtfError::Malformed {
                section: Section::Btf,
                offset: base,
                what: "string table is empty (it must hold at least the empty string)".into(),
            });
        }
        if bytes[0] != 0 {
            return Err(BtfError::Malformed {
                section: Section::Btf,
                offset: base,
                what: format!(
                    "string table does not start with NUL (first byte {:#04x}); offset 0 must be the empty string",
                    bytes[0]
                ),
            });
        }
        if bytes[bytes.len() - 1] != 0 {
            return Err(BtfError::Malformed {
                section: Section::Btf,
                offset: base + bytes.len() - 1,
                what: "string table is not NUL-terminated".into(),
            });
        }
        Ok(StringTable { bytes })
    }

    /// The table's exact bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Length in bytes (the header's `str_len`).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false for a valid table; present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The NUL-free bytes starting at `off` (up to the next NUL), or `None` past the end.
    pub fn get_bytes(&self, off: u32) -> Option<&[u8]> {
        let rest = self.bytes.get(off as usize..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..end])
    }

    /// The string at `off`, or `None` if `off` is past the end or the bytes are not UTF-8
    /// (identifiers always are; line-info source text might not be, see [`Self::get_lossy`]).
    pub fn get(&self, off: u32) -> Option<&str> {
        std::str::from_utf8(self.get_bytes(off)?).ok()
    }

    /// The string at `off` with invalid UTF-8 replaced, or `None` past the end.
    pub fn get_lossy(&self, off: u32) -> Option<std::borrow::Cow<'_, str>> {
        Some(String::from_utf8_lossy(self.get_bytes(off)?))
    }

    /// Offset of an existing string equal to `s` (a whole string, i.e. preceded by a NUL).
    pub fn find(&self, s: &str) -> Option<u32> {
        if s.is_empty() {
            return Some(0);
        }
        let needle = s.as_bytes();
        if needle.contains(&0) {
            return None;
        }
        let mut start = 1;
        while start < self.bytes.len() {
            let end = start + self.bytes[start..].iter().position(|&b| b == 0)?;
            if &self.bytes[start..end] == needle {
                return u32::try_from(start).ok();
            }
            start = end + 1;
        }
        None
    }

    /// Appends `s` unless an equal string already exists; returns its offset. A string with an
    /// interior NUL cannot be represented and is rejected.
    pub fn add(&mut self, s: &str) -> Result<u32, BtfError> {
        if s.as_bytes().contains(&0) {
            return Err(BtfError::Malformed {
                section: Section::Btf,
                offset: self.bytes.len(),
                what: format!("cannot add string {s:?}: it contains a NUL byte"),
            });
        }
        if let Some(off) = self.find(s) {
            return Ok(off);
        }
        let off = u32::try_from(self.bytes.len()).map_err(|_| BtfError::Malformed {
            section: Section::Btf,
            offset: self.bytes.len(),
            what: "string table exceeds 4 GiB".into(),
        })?;
        self.bytes.extend_from_slice(s.as_bytes());
        self.bytes.push(0);
        Ok(off)
    }
}
