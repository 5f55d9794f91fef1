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
    /// Not an ELF file at all (empty, no magic, truncated header).
    #[error("not an ELF file: {0}")]
    NotElf(String),
    /// An ELF file for another machine.
    #[error("not a BPF object: ELF machine {name} ({machine}), expected EM_BPF (247)")]
    WrongMachine { machine: u16, name: String },
    /// The ELF container is inconsistent; `context` names the section or table.
    #[error("malformed ELF: {context}: {message}")]
    Elf { context: String, message: String },
    /// A relocation that cannot be applied as libbpf would.
    #[error("bad relocation #{index} of section `{section}` at offset {offset:#x}: {message}")]
    Relocation {
        section: String,
        index: usize,
        offset: u64,
        message: String,
    },
    /// An instruction that cannot be decoded; `slot` counts from the function start.
    #[error(
        "bad instruction in function `{function}` (section `{section}`), slot {slot}: {message}"
    )]
    Instruction {
        section: String,
        function: String,
        slot: usize,
        message: String,
    },
    /// A map definition that cannot be read or converted.
    #[error("map `{map}`: {message}")]
    Map { map: String, message: String },
    /// The object model is inconsistent and cannot be written (e.g. an edited function changed
    /// its slot count).
    #[error("cannot write object: {0}")]
    Write(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
