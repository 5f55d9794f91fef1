//! The crate-wide error type. Every stage reports through it so the CLI can map errors to exit codes.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// The input is not a BPF object we can read (not ELF, truncated, inconsistent).
    #[error("malformed input: {0}")]
    Malformed(String),
    /// The input is well formed but uses something opsplit does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
