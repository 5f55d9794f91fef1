//! opsplit: split legacy `BPF_PROG_TYPE_SOCK_OPS` programs per op and lower them to
//! `struct bpf_tcp_ops` struct_ops programs.
//!
//! The pipeline is visible in the module layout (see `docs/ARCHITECTURE.md`):
//!
//! * [`insn`]: the BPF instruction set: decoding, encoding, disassembly.
//! * [`btf`]: the BTF and BTF.ext codec.
//! * [`obj`]: reading a relocatable BPF ELF object into plain data, and writing one back.
//! * [`load`]: loading objects into the running kernel (libbpf-rs).

pub mod analysis;
pub mod btf;
pub mod cli;
pub mod error;
pub mod insn;
pub mod link;
pub mod load;
pub mod obj;
pub mod optable;
pub mod runtime;
pub mod split;
pub mod uapi;

pub use error::Error;
