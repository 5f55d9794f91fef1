//! The memory model: every byte a program can touch lives in a typed [`Region`], and a pointer is
//! a (region, offset) pair packed into a 64-bit register value.
//!
//! Packing keeps registers plain `u64`, so pointer arithmetic works as in the kernel and the
//! interpreter's hot loop stays branch-light, while every access is still checked against the one
//! region the pointer came from. The layout of a pointer value is
//!
//! ```text
//!   bits 63..32: region id (0 = no region: NULL and every scalar below 4 GiB)
//!   bits 31..0 : offset + 2^31
//! ```
//!
//! The 2^31 bias means a pointer moved a little *before* its region (`p - 8`) keeps its region id
//! and is reported as an out-of-bounds access of that region, instead of silently landing in the
//! previous one. Regions are at most 2 GiB, far above anything BPF can address.

use std::fmt;

/// Index into [`Memory`]'s region table. 0 is reserved: it is what NULL and small scalars
/// decode to.
pub type RegionId = u32;

/// `MAX_BPF_STACK`: bytes of stack a call chain may use, and a single frame's maximum.
pub const MAX_BPF_STACK: u32 = 512;

const OFFSET_BIAS: u64 = 1 << 31;

/// The pointer value for `offset` bytes into `region`.
#[inline]
pub const fn pointer(region: RegionId, offset: u32) -> u64 {
    ((region as u64) << 32) + OFFSET_BIAS + offset as u64
}

/// Splits a pointer value into region id and signed offset.
#[inline]
pub const fn split_pointer(addr: u64) -> (RegionId, i64) {
    (
        (addr >> 32) as RegionId,
        (addr & 0xffff_ffff) as i64 - OFFSET_BIAS as i64,
    )
}

/// The instruction that last wrote a byte of a map value: the interpreter's instruction index and
/// the program running, packed; [`Writer::NONE`] when no program wrote it (initial contents, user
/// space). `Machine::site` turns it into program, function, slot and source line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Writer(u64);

impl Writer {
    pub const NONE: Writer = Writer(0);

    pub(crate) fn new(op: usize, program: usize) -> Writer {
        Writer::at(Writer::program_bits(program), op)
    }

    /// The program's part of a writer, for [`Writer::at`].
    #[inline(always)]
    pub(crate) fn program_bits(program: usize) -> u64 {
        (program as u64) << 32
    }

    #[inline(always)]
    pub(crate) fn at(program_bits: u64, op: usize) -> Writer {
        Writer(program_bits | (op as u64 + 1))
    }

    /// (instruction index, program index), unless [`Writer::NONE`].
    pub(crate) fn parts(self) -> Option<(usize, usize)> {
        (self.0 != 0).then(|| ((self.0 as u32 - 1) as usize, (self.0 >> 32) as usize))
    }
}

/// What a region models. The kind decides what may be done with it, and names it in faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegionKind {
    /// Region 0: never valid.
    Null,
    /// The stack of call frame `frame` (0 = the program's own frame).
    Stack { frame: u8 },
    /// The program context (`r1` at entry).
    Ctx,
    /// The value of one element of map `map` (index into the machine's maps).
    MapValue { map: u32 },
    /// The map itself (`struct bpf_map *` from `ld_imm64`): passed to helpers, never dereferenced.
    MapObject { map: u32 },
    /// A ring buffer record reserved by `bpf_ringbuf_reserve`, until submitted or discarded.
    RingbufRecord { map: u32 },
    /// The packet window (`skb_data` .. `skb_data_end`).
    Packet,
    /// A simulated kernel object (socket, `tcp_sock`, ...); `what` names it in faults.
    Kernel { what: &'static str },
    /// A function address (`ld_imm64` of a callback): passed to helpers, never dereferenced.
    Function { function: u32 },
    /// A released region (a deleted map element) waiting to be reused.
    Free,
}

impl fmt::Display for RegionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionKind::Null => write!(f, "null"),
            RegionKind::Stack { frame } => write!(f, "stack of frame {frame}"),
            RegionKind::Ctx => write!(f, "context"),
            RegionKind::MapValue { map } => write!(f, "value of map #{map}"),
            RegionKind::MapObject { map } => write!(f, "map object #{map}"),
            RegionKind::RingbufRecord { map } => write!(f, "ring buffer record of map #{map}"),
            RegionKind::Packet => write!(f, "packet"),
            RegionKind::Kernel { what } => write!(f, "kernel object `{what}`"),
            RegionKind::Function { function } => write!(f, "function #{function}"),
            RegionKind::Free => write!(f, "freed map element"),
        }
    }
}

/// What a context rule decides about one access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allow,
    /// A write the kernel accepts but drops (sock_ops `sk_txhash` on an unlocked socket).
    Skip,
    /// An access the verifier refuses; the reason names the rule.
    Deny(&'static str),
}

/// Field-level rules of a context, on top of bounds, permission and alignment:
/// `(offset, size, write, tag) -> Access`, `tag` being per-call state (e.g. "socket locked").
/// The interpreter applies them in a separate instance of its loop (see `RunState::ctx_rule`),
/// so that other runs pay nothing for them.
pub type AccessRule = fn(u32, u32, bool, u64) -> Access;

/// One region: its bytes and what may be done with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub kind: RegionKind,
    pub data: Vec<u8>,
    pub writable: bool,
    /// Accesses must be aligned to their size (the verifier's rule for stack and context).
    pub strict_align: bool,
    /// Per byte, who wrote it last: kept for map values only (empty otherwise), so that a
    /// differing final map entry can be located; stores elsewhere pay one length check.
    pub writers: Vec<Writer>,
}

impl Region {
    fn dereferenceable(&self) -> bool {
        !matches!(
            self.kind,
            RegionKind::Null
                | RegionKind::MapObject { .. }
                | RegionKind::Function { .. }
                | RegionKind::Free
        )
    }
}

/// Why a memory access failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessFault {
    /// The address decodes to no region: NULL, a scalar, or a mangled pointer.
    NotAPointer {
        addr: u64,
    },
    /// The pointer's region is not memory (a map object, a function address).
    NotMemory {
        kind: RegionKind,
    },
    OutOfBounds {
        kind: RegionKind,
        offset: i64,
        size: u64,
        len: u64,
    },
    Misaligned {
        kind: RegionKind,
        offset: i64,
        size: u64,
    },
    ReadOnly {
        kind: RegionKind,
        offset: i64,
    },
}

impl fmt::Display for AccessFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessFault::NotAPointer { addr: 0 } => write!(f, "NULL pointer dereference"),
            AccessFault::NotAPointer { addr } => {
                write!(f, "access through {addr:#x}, which is not a pointer")
            }
            AccessFault::NotMemory { kind } => write!(f, "{kind} is not readable memory"),
            AccessFault::OutOfBounds {
                kind,
                offset,
                size,
                len,
            } => write!(
                f,
                "{size}-byte access at offset {offset} of {kind} ({len} bytes) is out of bounds"
            ),
            AccessFault::Misaligned { kind, offset, size } => {
                write!(
                    f,
                    "misaligned {size}-byte access at offset {offset} of {kind}"
                )
            }
            AccessFault::ReadOnly { kind, offset } => {
                write!(f, "write at offset {offset} of read-only {kind}")
            }
        }
    }
}

/// Marks `len` bytes from `off` as written by `writer`. Out of line: only map values keep
/// writers, so the hot store path keeps one length check.
#[inline(never)]
fn stamp(writers: &mut [Writer], off: usize, len: usize, writer: Writer) {
    if let Some(w) = writers.get_mut(off..off + len) {
        w.fill(writer);
    }
}

/// The region table.
#[derive(Debug, Clone)]
pub struct Memory {
    regions: Vec<Region>,
    free: Vec<RegionId>,
    /// Who writes through [`Memory::store`], [`Memory::write_bytes`], [`Memory::region_mut`]
    /// and [`Memory::alloc`] now: the helper call in progress (set by the interpreter), else
    /// [`Writer::NONE`].
    writer: Writer,
}

impl Default for Memory {
    fn default() -> Self {
        Self::new()
    }
}

impl Memory {
    pub fn new() -> Memory {
        Memory {
            regions: vec![Region {
                kind: RegionKind::Null,
                data: Vec::new(),
                writable: false,
                strict_align: false,
                writers: Vec::new(),
            }],
            free: Vec::new(),
            writer: Writer::NONE,
        }
    }

    /// Adds a region, reusing a released id if there is one (as the kernel's element free lists
    /// reuse memory, a stale pointer to a deleted element may see a newer element).
    pub fn alloc(&mut self, kind: RegionKind, data: Vec<u8>, writable: bool) -> RegionId {
        let strict_align = matches!(kind, RegionKind::Stack { .. } | RegionKind::Ctx);
        let writers = if matches!(kind, RegionKind::MapValue { .. }) {
            vec![self.writer; data.len()]
        } else {
            Vec::new()
        };
        let region = Region {
            kind,
            data,
            writable,
            strict_align,
            writers,
        };
        if let Some(id) = self.free.pop() {
            self.regions[id as usize] = region;
            id
        } else {
            self.regions.push(region);
            (self.regions.len() - 1) as RegionId
        }
    }

    /// Releases a region; its id will be reused.
    pub fn release(&mut self, id: RegionId) {
        if id == 0 {
            return;
        }
        let r = &mut self.regions[id as usize];
        r.kind = RegionKind::Free;
        r.data = Vec::new();
        r.writers = Vec::new();
        self.free.push(id);
    }

    pub fn region(&self, id: RegionId) -> Option<&Region> {
        self.regions.get(id as usize)
    }

    /// The region, for a change made by [`Memory::writer`]'s author (every byte is taken as
    /// written by it).
    pub fn region_mut(&mut self, id: RegionId) -> Option<&mut Region> {
        let r = self.regions.get_mut(id as usize)?;
        r.writers.fill(self.writer);
        Some(r)
    }

    /// Who writes through the plain accessors from now on; returns the previous one.
    pub fn set_writer(&mut self, writer: Writer) -> Writer {
        std::mem::replace(&mut self.writer, writer)
    }

    pub fn writer(&self) -> Writer {
        self.writer
    }

    /// Region and byte range of an access of `size` bytes at `addr`.
    #[inline]
    fn locate(&self, addr: u64, size: u64) -> Result<(usize, usize), AccessFault> {
        let (id, offset) = split_pointer(addr);
        let Some(r) = self.regions.get(id as usize) else {
            return Err(AccessFault::NotAPointer { addr });
        };
        let len = r.data.len() as u64;
        // `offset as u64` wraps negatives far above any length, so one compare covers both ends.
        if (offset as u64).wrapping_add(size) > len || offset < 0 {
            return Err(self.slow_fault(id, offset, size, addr));
        }
        if r.strict_align && (offset as u64) & (size - 1) != 0 {
            return Err(AccessFault::Misaligned {
                kind: r.kind,
                offset,
                size,
            });
        }
        Ok((id as usize, offset as usize))
    }

    #[cold]
    fn slow_fault(&self, id: RegionId, offset: i64, size: u64, addr: u64) -> AccessFault {
        let r = &self.regions[id as usize];
        if id == 0 {
            AccessFault::NotAPointer { addr }
        } else if !r.dereferenceable() {
            AccessFault::NotMemory { kind: r.kind }
        } else {
            AccessFault::OutOfBounds {
                kind: r.kind,
                offset,
                size,
                len: r.data.len() as u64,
            }
        }
    }

    /// Loads `size` (1, 2, 4 or 8) bytes at `addr`, little-endian, zero-extended.
    #[inline]
    pub fn load(&self, addr: u64, size: u64) -> Result<u64, AccessFault> {
        let (id, off) = self.locate(addr, size)?;
        let d = &self.regions[id].data[off..off + size as usize];
        Ok(match size {
            1 => d[0] as u64,
            2 => u16::from_le_bytes([d[0], d[1]]) as u64,
            4 => u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as u64,
            _ => u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]),
        })
    }

    /// Stores the low `size` bytes of `value` at `addr`.
    #[inline(always)]
    pub fn store(&mut self, addr: u64, size: u64, value: u64) -> Result<(), AccessFault> {
        self.store_by(addr, size, value, self.writer)
    }

    /// [`Memory::store`] by `writer` (the interpreter's store instructions).
    #[inline(always)]
    pub fn store_by(
        &mut self,
        addr: u64,
        size: u64,
        value: u64,
        writer: Writer,
    ) -> Result<(), AccessFault> {
        let (id, off) = self.locate(addr, size)?;
        let r = &mut self.regions[id];
        if !r.writable {
            return Err(AccessFault::ReadOnly {
                kind: r.kind,
                offset: off as i64,
            });
        }
        let b = value.to_le_bytes();
        r.data[off..off + size as usize].copy_from_slice(&b[..size as usize]);
        if !r.writers.is_empty() {
            stamp(&mut r.writers, off, size as usize, writer);
        }
        Ok(())
    }

    /// Bytes `[addr, addr + len)`, all in one region (helpers reading their memory arguments).
    pub fn read_bytes(&self, addr: u64, len: u64) -> Result<&[u8], AccessFault> {
        if len == 0 {
            return Ok(&[]);
        }
        let (id, off) = self.locate_unaligned(addr, len)?;
        Ok(&self.regions[id].data[off..off + len as usize])
    }

    /// Writes `bytes` at `addr`, all in one writable region (helpers filling their buffers).
    pub fn write_bytes(&mut self, addr: u64, bytes: &[u8]) -> Result<(), AccessFault> {
        if bytes.is_empty() {
            return Ok(());
        }
        let (id, off) = self.locate_unaligned(addr, bytes.len() as u64)?;
        let r = &mut self.regions[id];
        if !r.writable {
            return Err(AccessFault::ReadOnly {
                kind: r.kind,
                offset: off as i64,
            });
        }
        r.data[off..off + bytes.len()].copy_from_slice(bytes);
        if !r.writers.is_empty() {
            stamp(&mut r.writers, off, bytes.len(), self.writer);
        }
        Ok(())
    }

    fn locate_unaligned(&self, addr: u64, len: u64) -> Result<(usize, usize), AccessFault> {
        let (id, offset) = split_pointer(addr);
        match self.regions.get(id as usize) {
            Some(r)
                if offset >= 0 && (offset as u64).saturating_add(len) <= r.data.len() as u64 =>
            {
                Ok((id as usize, offset as usize))
            }
            Some(_) => Err(self.slow_fault(id, offset, len, addr)),
            None => Err(AccessFault::NotAPointer { addr }),
        }
    }

    /// The region kind a pointer value points into, if it points into a live region.
    pub fn kind_of(&self, addr: u64) -> Option<RegionKind> {
        let (id, _) = split_pointer(addr);
        match self.regions.get(id as usize)?.kind {
            RegionKind::Null => None,
            k => Some(k),
        }
    }

    pub fn region_count(&self) -> usize {
        self.regions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_round_trip_and_negative_offsets_stay_in_region() {
        let p = pointer(7, 16);
        assert_eq!(split_pointer(p), (7, 16));
        assert_eq!(split_pointer(p.wrapping_sub(24)), (7, -8));
        assert_eq!(split_pointer(0).0, 0);
    }

    #[test]
    fn accesses_are_bounds_checked_per_region() {
        let mut m = Memory::new();
        let a = m.alloc(RegionKind::MapValue { map: 0 }, vec![0; 8], true);
        let b = m.alloc(RegionKind::MapValue { map: 1 }, vec![0; 8], true);
        m.store(pointer(a, 0), 8, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(m.load(pointer(a, 4), 4).unwrap(), 0x1122_3344);
        // Adjacent regions do not leak into each other.
        assert!(matches!(
            m.load(pointer(a, 8), 1),
            Err(AccessFault::OutOfBounds { offset: 8, .. })
        ));
        assert!(matches!(
            m.load(pointer(b, 0).wrapping_sub(1), 1),
            Err(AccessFault::OutOfBounds { offset: -1, .. })
        ));
        assert_eq!(
            m.load(0, 4),
            Err(AccessFault::NotAPointer { addr: 0 }),
            "NULL"
        );
        assert!(matches!(
            m.load(pointer(a, 6), 4),
            Err(AccessFault::OutOfBounds { .. })
        ));
    }

    #[test]
    fn read_only_misaligned_and_non_memory_regions_fault() {
        let mut m = Memory::new();
        let ro = m.alloc(RegionKind::MapValue { map: 0 }, vec![1; 8], false);
        let st = m.alloc(RegionKind::Stack { frame: 0 }, vec![0; 16], true);
        let mo = m.alloc(RegionKind::MapObject { map: 0 }, Vec::new(), false);
        assert_eq!(m.load(pointer(ro, 0), 1).unwrap(), 1);
        assert!(matches!(
            m.store(pointer(ro, 0), 1, 0),
            Err(AccessFault::ReadOnly { .. })
        ));
        assert!(matches!(
            m.store(pointer(st, 2), 4, 0),
            Err(AccessFault::Misaligned { .. })
        ));
        assert_eq!(
            m.load(pointer(mo, 0), 8),
            Err(AccessFault::NotMemory {
                kind: RegionKind::MapObject { map: 0 }
            })
        );
    }

    #[test]
    fn map_values_keep_their_last_writer_per_byte() {
        let mut m = Memory::new();
        let (store, helper) = (Writer::new(7, 0), Writer::new(9, 1));
        let v = m.alloc(RegionKind::MapValue { map: 0 }, vec![0; 8], true);
        let st = m.alloc(RegionKind::Stack { frame: 0 }, vec![0; 8], true);
        assert_eq!(m.region(v).unwrap().writers, vec![Writer::NONE; 8]);
        m.store_by(pointer(v, 2), 2, 0xffff, store).unwrap();
        m.store_by(pointer(st, 0), 8, 1, store).unwrap();
        assert!(m.region(st).unwrap().writers.is_empty(), "only map values");
        // A helper's writes (through the plain accessors) are its call's.
        let outer = m.set_writer(helper);
        m.write_bytes(pointer(v, 3), &[1, 2]).unwrap();
        m.set_writer(outer);
        m.store(pointer(v, 6), 1, 0).unwrap();
        let w = &m.region(v).unwrap().writers;
        assert_eq!(w[..2], [Writer::NONE; 2]);
        assert_eq!(w[2], store);
        assert_eq!(w[3..5], [helper; 2]);
        assert_eq!(w[6], Writer::NONE, "user space");
        assert_eq!(store.parts(), Some((7, 0)));
        assert_eq!(Writer::NONE.parts(), None);
        // A failed store leaves the writers as they were.
        assert!(m.store_by(pointer(v, 7), 2, 0, helper).is_err());
        assert_eq!(m.region(v).unwrap().writers[7], Writer::NONE);
    }

    #[test]
    fn released_ids_are_reused() {
        let mut m = Memory::new();
        let a = m.alloc(RegionKind::MapValue { map: 0 }, vec![0; 4], true);
        m.release(a);
        assert!(m.load(pointer(a, 0), 4).is_err());
        let b = m.alloc(RegionKind::MapValue { map: 0 }, vec![9; 4], true);
        assert_eq!(a, b);
    }
}
