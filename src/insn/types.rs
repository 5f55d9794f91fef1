//! The typed instruction: one plain-data value per instruction, every field the kernel gives a
//! meaning to and nothing else, so that encoding a decoded instruction reproduces its bytes.

use std::fmt;

/// A BPF register, `r0` to `r10` (`r10` is the read-only frame pointer).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(u8);

impl Reg {
    pub const R0: Reg = Reg(0);
    pub const R1: Reg = Reg(1);
    pub const R2: Reg = Reg(2);
    pub const R3: Reg = Reg(3);
    pub const R4: Reg = Reg(4);
    pub const R5: Reg = Reg(5);
    pub const R6: Reg = Reg(6);
    pub const R7: Reg = Reg(7);
    pub const R8: Reg = Reg(8);
    pub const R9: Reg = Reg(9);
    pub const R10: Reg = Reg(10);
    /// The frame pointer.
    pub const FP: Reg = Reg(10);
    /// Number of registers the kernel knows (`MAX_BPF_REG`).
    pub const COUNT: u8 = 11;

    /// `None` for 11..=15: the 4-bit field can hold them, the kernel rejects them.
    pub const fn new(n: u8) -> Option<Reg> {
        if n < Self::COUNT { Some(Reg(n)) } else { None }
    }

    pub const fn index(self) -> u8 {
        self.0
    }
}

impl fmt::Debug for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Operation width: `ALU` vs `ALU64`, `JMP32` vs `JMP`, and the W/DW operand of atomic
/// read-modify-write operations.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Width {
    W32,
    W64,
}

/// Memory access size.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    pub const fn bytes(self) -> u32 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }
}

/// The sizes below 64 bits: sign-extending loads and moves, and legacy packet loads, exist only
/// for these.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum NarrowSize {
    B,
    H,
    W,
}

impl NarrowSize {
    pub const fn size(self) -> Size {
        match self {
            NarrowSize::B => Size::B,
            NarrowSize::H => Size::H,
            NarrowSize::W => Size::W,
        }
    }

    pub const fn bits(self) -> u32 {
        self.size().bytes() * 8
    }
}

/// Second operand of ALU, jump and store instructions: a register (`X` source) or the 32-bit
/// immediate (`K` source).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Src {
    Reg(Reg),
    Imm(i32),
}

/// Binary ALU operations. `SDiv`/`SMod` are the v4 signed forms (`off` = 1 in the encoding).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    SDiv,
    Or,
    And,
    Lsh,
    Rsh,
    Mod,
    SMod,
    Xor,
    Mov,
    Arsh,
}

/// What an `END` instruction does: convert to little or big endian (`ALU`), or swap
/// unconditionally (`ALU64`, v4 `bswap`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ByteOrder {
    Le,
    Be,
    Swap,
}

/// Operand width of an `END` instruction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SwapBits {
    B16,
    B32,
    B64,
}

impl SwapBits {
    pub const fn bits(self) -> u32 {
        match self {
            SwapBits::B16 => 16,
            SwapBits::B32 => 32,
            SwapBits::B64 => 64,
        }
    }
}

/// Conditions of conditional jumps.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum JmpCond {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Sgt,
    Sge,
    Slt,
    Sle,
    /// `dst & src != 0`.
    Set,
}

/// Atomic read-modify-write operations (`STX|ATOMIC` with `imm` other than load-acquire and
/// store-release).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AtomicOp {
    Add,
    Or,
    And,
    Xor,
    FetchAdd,
    FetchOr,
    FetchAnd,
    FetchXor,
    /// Exchange; the old value lands in `src`.
    Xchg,
    /// Compare `r0` with memory, store `src` if equal; the old value lands in `r0`.
    CmpXchg,
}

impl AtomicOp {
    /// Whether the old memory value is written back to a register.
    pub const fn fetches(self) -> bool {
        !matches!(
            self,
            AtomicOp::Add | AtomicOp::Or | AtomicOp::And | AtomicOp::Xor
        )
    }
}

/// The target of a `call`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Call {
    /// A kernel helper by id (`src` = 0).
    Helper(i32),
    /// A BPF-to-BPF call (`src` = `BPF_PSEUDO_CALL`): the callee starts at
    /// `slot + 1 + offset`. In relocatable objects clang leaves -1 here and a relocation.
    Local(i32),
    /// A kfunc (`src` = `BPF_PSEUDO_KFUNC_CALL`): BTF id of the function, and in `off` the
    /// `fd_array` index of the module BTF it lives in (0 = vmlinux).
    Kfunc { btf_id: i32, off: i16 },
}

/// The value loaded by a two-slot `ld_imm64`, by its pseudo `src` form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LdImm64 {
    /// A plain 64-bit constant (`src` = 0). Relocatable objects also use this form, with a
    /// relocation, for map and global-data references.
    Imm(i64),
    /// `BPF_PSEUDO_MAP_FD`: pointer to the map whose fd is given.
    MapFd(i32),
    /// `BPF_PSEUDO_MAP_VALUE`: pointer into the value of the map with this fd, at `off`.
    MapValue { fd: i32, off: u32 },
    /// `BPF_PSEUDO_BTF_ID`: address of a kernel variable by BTF id; `btf_fd` names the module
    /// BTF (0 = vmlinux).
    BtfId { btf_id: i32, btf_fd: i32 },
    /// `BPF_PSEUDO_FUNC`: address of the subprogram starting at `slot + 1 + offset`.
    /// `next_imm` is the second slot's immediate, which the kernel ignores for this form;
    /// compilers and libbpf leave it 0. It is kept so that re-encoding is byte-exact.
    Func { offset: i32, next_imm: i32 },
    /// `BPF_PSEUDO_MAP_IDX`: like `MapFd` but through the `fd_array` index.
    MapIdx(i32),
    /// `BPF_PSEUDO_MAP_IDX_VALUE`: like `MapValue` but through the `fd_array` index.
    MapIdxValue { idx: i32, off: u32 },
}

/// One BPF instruction. `LdImm64` takes two 8-byte slots, everything else one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Insn {
    /// `dst = dst op src` (`dst = src` for `Mov`), 32- or 64-bit.
    Alu {
        width: Width,
        op: AluOp,
        dst: Reg,
        src: Src,
    },
    /// `dst = -dst`.
    Neg {
        width: Width,
        dst: Reg,
    },
    /// v4 sign-extending move `dst = (s8/s16/s32)src`. The 32-bit form exists only from 8 and
    /// 16 bits.
    MovSx {
        width: Width,
        from: NarrowSize,
        dst: Reg,
        src: Reg,
    },
    /// Byte swap of `dst`: `le`/`be` conversions (`ALU|END`) or `bswap` (`ALU64|END`).
    End {
        order: ByteOrder,
        bits: SwapBits,
        dst: Reg,
    },
    /// Arena pointer conversion `dst = addr_space_cast(src, dst_as, src_as)`
    /// (`ALU64|MOV|X`, `off` = 1, `imm` = `dst_as << 16 | src_as`).
    AddrSpaceCast {
        dst: Reg,
        src: Reg,
        dst_as: u16,
        src_as: u16,
    },
    /// The two-slot 64-bit immediate load.
    LdImm64 {
        dst: Reg,
        value: LdImm64,
    },
    /// `dst = *(size *)(src + off)`, zero-extending.
    Load {
        size: Size,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// v4 `dst = *(s8/s16/s32 *)(src + off)`, sign-extending.
    LoadSx {
        size: NarrowSize,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// `*(size *)(dst + off) = src`: `STX` for a register, `ST` for an immediate.
    Store {
        size: Size,
        dst: Reg,
        off: i16,
        src: Src,
    },
    /// Atomic read-modify-write on `*(width *)(dst + off)` with `src`.
    Atomic {
        width: Width,
        op: AtomicOp,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// `dst = load_acquire((size *)(src + off))`.
    LoadAcquire {
        size: Size,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// `store_release((size *)(dst + off), src)`.
    StoreRelease {
        size: Size,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// Legacy packet load `r0 = *(size *)skb[imm]` (implicit context in `r6`).
    LdAbs {
        size: NarrowSize,
        imm: i32,
    },
    /// Legacy packet load `r0 = *(size *)skb[src + imm]`.
    LdInd {
        size: NarrowSize,
        src: Reg,
        imm: i32,
    },
    /// Unconditional jump to `slot + 1 + off`.
    Ja {
        off: i16,
    },
    /// v4 long unconditional jump (`JMP32|JA`, offset in `imm`).
    Gotol {
        off: i32,
    },
    /// Conditional jump to `slot + 1 + off` if `dst cond src`.
    Jmp {
        width: Width,
        cond: JmpCond,
        dst: Reg,
        src: Src,
        off: i16,
    },
    /// `may_goto`: a bounded-loop escape the kernel may take; jumps to `slot + 1 + off`.
    MayGoto {
        off: i16,
    },
    Call(Call),
    /// Return `r0`. `off` is not checked by the kernel and is 0 from every compiler; it is kept
    /// so that re-encoding is byte-exact.
    Exit {
        off: i16,
    },
}

impl Insn {
    /// The ordinary `exit`.
    pub const EXIT: Insn = Insn::Exit { off: 0 };
}

/// An instruction with the index of its first 8-byte slot in its section.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SlotInsn {
    pub slot: usize,
    pub insn: Insn,
}

impl AsRef<Insn> for SlotInsn {
    fn as_ref(&self) -> &Insn {
        &self.insn
    }
}

impl AsRef<Insn> for Insn {
    fn as_ref(&self) -> &Insn {
        self
    }
}
