//! The commands behind the `opsplit` binary. `src/main.rs` only parses arguments and maps results
//! to exit codes; each command lives in its own module and writes to the given output.
//!
//! Exit codes are one table for the whole CLI (`docs/CLI.md`).

pub mod convert;
pub mod dump;
pub mod inspect;
pub mod load;
pub mod verify;

use std::path::{Path, PathBuf};

/// Process exit codes of the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// An input problem: unreadable file, malformed or unsupported object, kernel refusal.
    Input = 1,
    /// Bad command line (clap's own exit code for usage errors).
    Usage = 2,
    /// `verify`: the candidate behaves differently from the original.
    Differs = 3,
}

/// Expands the command's FILE arguments: a directory stands for the `*.o` files directly in it,
/// sorted by name.
pub fn expand_inputs(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "o"))
                .collect();
            v.sort();
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Reads and parses one object, with the file name in front of any error.
pub fn read_object(path: &Path) -> Result<crate::obj::Object, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::obj::Object::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}
