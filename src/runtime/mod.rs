//! The embedded runtime: runs BPF programs with a faithful model of the kernel (see `docs/RUNTIME.md`).

pub mod memory;
