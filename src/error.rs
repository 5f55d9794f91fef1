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
    /// The kernel (or libbpf on its way to the kernel) refused an object or program.
    #[error("kernel load of {object} failed: {message}{}", if log_tail.is_empty() { String::new() } else { format!("\n--- libbpf/verifier log (tail) ---\n{log_tail}") })]
    Kernel {
        object: String,
        message: String,
        log_tail: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
