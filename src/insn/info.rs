//! Facts about single instructions that control-flow and data-flow passes need.

use std::fmt;

use super::types::*;

/// A set of registers (bit `n` = `rn`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RegSet(u16);

impl RegSet {
    pub const EMPTY: RegSet = RegSet(0);
    /// `r1` to `r5`: helper and subprogram arguments, clobbered by every call.
    pub const ARGS: RegSet = RegSet(0b11_1110);
    /// `r0` to `r5`: everything a call may change.
    pub const CALLER_SAVED: RegSet = RegSet(0b11_1111);

    pub const fn of(r: Reg) -> RegSet {
        RegSet(1 << r.index())
    }

    pub const fn contains(self, r: Reg) -> bool {
        self.0 & (1 << r.index()) != 0
    }

    pub const fn with(self, r: Reg) -> RegSet {
        RegSet(self.0 | 1 << r.index())
    }

    pub const fn union(self, o: RegSet) -> RegSet {
        RegSet(self.0 | o.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn len(self) -> u32 {
        self.0.count_ones()
    }

    pub const fn bits(self) -> u16 {
        self.0
    }

    pub fn iter(self) -> impl Iterator<Item = Reg> {
        (0..Reg::COUNT).filter_map(move |i| {
            if self.0 & (1 << i) != 0 {
                Reg::new(i)
            } else {
                None
            }
        })
    }
}

impl std::ops::BitOr for RegSet {
    type Output = RegSet;
    fn bitor(self, o: RegSet) -> RegSet {
        self.union(o)
    }
}

impl FromIterator<Reg> for RegSet {
    fn from_iter<I: IntoIterator<Item = Reg>>(it: I) -> RegSet {
        it.into_iter().fold(RegSet::EMPTY, RegSet::with)
    }
}

impl fmt::Debug for RegSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

fn src_set(s: Src) -> RegSet {
    match s {
        Src::Reg(r) => RegSet::of(r),
        Src::Imm(_) => RegSet::EMPTY,
    }
}

fn target(slot: usize, off: i64) -> i64 {
    slot as i64 + 1 + off
}

impl Insn {
    /// Relative offset of a jump (`goto`, `gotol`, conditional jumps, `may_goto`), in slots
    /// from the next slot.
    pub fn jump_offset(&self) -> Option<i32> {
        match *self {
            Insn::Ja { off } | Insn::Jmp { off, .. } | Insn::MayGoto { off } => Some(off.into()),
            Insn::Gotol { off } => Some(off),
            _ => None,
        }
    }

    /// Target slot of a jump at `slot`. It may lie outside the section in malformed input:
    /// callers check bounds.
    pub fn jump_target(&self, slot: usize) -> Option<i64> {
        self.jump_offset().map(|o| target(slot, o.into()))
    }

    /// Slot of the subprogram a BPF-to-BPF call or an `ld_imm64` function address at `slot`
    /// refers to, from the immediate. (In relocatable objects the immediate of a call is
    /// usually -1 with a relocation, which the object layer resolves instead.)
    pub fn subprog_target(&self, slot: usize) -> Option<i64> {
        match *self {
            Insn::Call(Call::Local(rel)) => Some(target(slot, rel.into())),
            Insn::LdImm64 {
                value: LdImm64::Func { offset, .. },
                ..
            } => Some(target(slot, offset.into())),
            _ => None,
        }
    }

    /// Helper id of a helper call.
    pub fn helper_id(&self) -> Option<i32> {
        match *self {
            Insn::Call(Call::Helper(id)) => Some(id),
            _ => None,
        }
    }

    /// Any jump, conditional or not (calls are not jumps).
    pub fn is_jump(&self) -> bool {
        self.jump_offset().is_some()
    }

    /// Jumps whose condition decides at run time: conditional jumps and `may_goto`.
    pub fn is_cond_jump(&self) -> bool {
        matches!(self, Insn::Jmp { .. } | Insn::MayGoto { .. })
    }

    /// Whether execution may continue at the next instruction.
    pub fn falls_through(&self) -> bool {
        !matches!(
            self,
            Insn::Ja { .. } | Insn::Gotol { .. } | Insn::Exit { .. }
        )
    }

    /// Whether the instruction ends a basic block: jumps and `exit`. Calls return, so they do
    /// not (the verifier treats even `bpf_tail_call` as returning on failure).
    pub fn ends_block(&self) -> bool {
        self.is_jump() || matches!(self, Insn::Exit { .. })
    }

    /// Registers whose value the instruction uses. Calls count as reading all of `r1`-`r5`:
    /// the number of arguments is not known at this level.
    pub fn regs_read(&self) -> RegSet {
        let one = RegSet::of;
        match *self {
            Insn::Alu {
                op: AluOp::Mov,
                src,
                ..
            } => src_set(src),
            Insn::Alu { dst, src, .. } => one(dst) | src_set(src),
            Insn::Neg { dst, .. } | Insn::End { dst, .. } => one(dst),
            Insn::MovSx { src, .. } | Insn::AddrSpaceCast { src, .. } => one(src),
            Insn::LdImm64 { .. } => RegSet::EMPTY,
            Insn::Load { src, .. } | Insn::LoadSx { src, .. } | Insn::LoadAcquire { src, .. } => {
                one(src)
            }
            Insn::Store { dst, src, .. } => one(dst) | src_set(src),
            Insn::StoreRelease { dst, src, .. } => one(dst) | one(src),
            Insn::Atomic {
                op: AtomicOp::CmpXchg,
                dst,
                src,
                ..
            } => one(dst) | one(src) | one(Reg::R0),
            Insn::Atomic { dst, src, .. } => one(dst) | one(src),
            Insn::LdAbs { .. } => one(Reg::R6),
            Insn::LdInd { src, .. } => one(Reg::R6) | one(src),
            Insn::Ja { .. } | Insn::Gotol { .. } | Insn::MayGoto { .. } => RegSet::EMPTY,
            Insn::Jmp { dst, src, .. } => one(dst) | src_set(src),
            Insn::Call(_) => RegSet::ARGS,
            Insn::Exit { .. } => one(Reg::R0),
        }
    }

    /// Registers the instruction may change. Calls and legacy packet loads (which the kernel
    /// implements as calls) clobber `r0`-`r5`.
    pub fn regs_written(&self) -> RegSet {
        let one = RegSet::of;
        match *self {
            Insn::Alu { dst, .. }
            | Insn::Neg { dst, .. }
            | Insn::End { dst, .. }
            | Insn::MovSx { dst, .. }
            | Insn::AddrSpaceCast { dst, .. }
            | Insn::LdImm64 { dst, .. }
            | Insn::Load { dst, .. }
            | Insn::LoadSx { dst, .. }
            | Insn::LoadAcquire { dst, .. } => one(dst),
            Insn::Atomic {
                op: AtomicOp::CmpXchg,
                ..
            } => one(Reg::R0),
            Insn::Atomic { op, src, .. } if op.fetches() => one(src),
            Insn::LdAbs { .. } | Insn::LdInd { .. } | Insn::Call(_) => RegSet::CALLER_SAVED,
            Insn::Atomic { .. }
            | Insn::Store { .. }
            | Insn::StoreRelease { .. }
            | Insn::Ja { .. }
            | Insn::Gotol { .. }
            | Insn::Jmp { .. }
            | Insn::MayGoto { .. }
            | Insn::Exit { .. } => RegSet::EMPTY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(regs: &[u8]) -> RegSet {
        regs.iter().map(|&r| Reg::new(r).unwrap()).collect()
    }

    #[test]
    fn registers_read_and_written() {
        let (r0, r1, r2) = (Reg::R0, Reg::R1, Reg::R2);
        let cases: Vec<(Insn, &[u8], &[u8])> = vec![
            (
                Insn::Alu {
                    width: Width::W64,
                    op: AluOp::Mov,
                    dst: r1,
                    src: Src::Reg(r2),
                },
                &[2],
                &[1],
            ),
            (
                Insn::Alu {
                    width: Width::W32,
                    op: AluOp::Add,
                    dst: r1,
                    src: Src::Reg(r2),
                },
                &[1, 2],
                &[1],
            ),
            (
                Insn::Alu {
                    width: Width::W64,
                    op: AluOp::Mov,
                    dst: r1,
                    src: Src::Imm(3),
                },
                &[],
                &[1],
            ),
            (
                Insn::Alu {
                    width: Width::W64,
                    op: AluOp::Lsh,
                    dst: r1,
                    src: Src::Imm(3),
                },
                &[1],
                &[1],
            ),
            (
                Insn::Neg {
                    width: Width::W64,
                    dst: r1,
                },
                &[1],
                &[1],
            ),
            (
                Insn::MovSx {
                    width: Width::W64,
                    from: NarrowSize::B,
                    dst: r1,
                    src: r2,
                },
                &[2],
                &[1],
            ),
            (
                Insn::LdImm64 {
                    dst: r1,
                    value: LdImm64::Imm(5),
                },
                &[],
                &[1],
            ),
            (
                Insn::Load {
                    size: Size::W,
                    dst: r1,
                    src: Reg::R10,
                    off: -4,
                },
                &[10],
                &[1],
            ),
            (
                Insn::Store {
                    size: Size::W,
                    dst: Reg::R10,
                    off: -4,
                    src: Src::Reg(r1),
                },
                &[1, 10],
                &[],
            ),
            (
                Insn::Store {
                    size: Size::W,
                    dst: Reg::R10,
                    off: -4,
                    src: Src::Imm(0),
                },
                &[10],
                &[],
            ),
            (
                Insn::Atomic {
                    width: Width::W64,
                    op: AtomicOp::Add,
                    dst: r1,
                    src: r2,
                    off: 0,
                },
                &[1, 2],
                &[],
            ),
            (
                Insn::Atomic {
                    width: Width::W64,
                    op: AtomicOp::FetchOr,
                    dst: r1,
                    src: r2,
                    off: 0,
                },
                &[1, 2],
                &[2],
            ),
            (
                Insn::Atomic {
                    width: Width::W64,
                    op: AtomicOp::Xchg,
                    dst: r1,
                    src: r2,
                    off: 0,
                },
                &[1, 2],
                &[2],
            ),
            (
                Insn::Atomic {
                    width: Width::W32,
                    op: AtomicOp::CmpXchg,
                    dst: r1,
                    src: r2,
                    off: 0,
                },
                &[0, 1, 2],
                &[0],
            ),
            (
                Insn::LoadAcquire {
                    size: Size::DW,
                    dst: r0,
                    src: r1,
                    off: 0,
                },
                &[1],
                &[0],
            ),
            (
                Insn::StoreRelease {
                    size: Size::DW,
                    dst: r1,
                    src: r2,
                    off: 0,
                },
                &[1, 2],
                &[],
            ),
            (
                Insn::LdAbs {
                    size: NarrowSize::B,
                    imm: 1,
                },
                &[6],
                &[0, 1, 2, 3, 4, 5],
            ),
            (
                Insn::LdInd {
                    size: NarrowSize::B,
                    src: Reg::R7,
                    imm: 1,
                },
                &[6, 7],
                &[0, 1, 2, 3, 4, 5],
            ),
            (
                Insn::Jmp {
                    width: Width::W32,
                    cond: JmpCond::Set,
                    dst: r1,
                    src: Src::Reg(r2),
                    off: 1,
                },
                &[1, 2],
                &[],
            ),
            (
                Insn::Call(Call::Helper(1)),
                &[1, 2, 3, 4, 5],
                &[0, 1, 2, 3, 4, 5],
            ),
            (Insn::EXIT, &[0], &[]),
            (Insn::Ja { off: 1 }, &[], &[]),
        ];
        for (insn, read, written) in cases {
            assert_eq!(insn.regs_read(), set(read), "read by {insn:?}");
            assert_eq!(insn.regs_written(), set(written), "written by {insn:?}");
        }
    }

    #[test]
    fn control_flow_facts() {
        let j = Insn::Jmp {
            width: Width::W64,
            cond: JmpCond::Eq,
            dst: Reg::R1,
            src: Src::Imm(0),
            off: -3,
        };
        assert_eq!(j.jump_target(10), Some(8));
        assert!(j.is_jump() && j.is_cond_jump() && j.ends_block() && j.falls_through());
        let ja = Insn::Ja { off: 2 };
        assert_eq!(ja.jump_target(0), Some(3));
        assert!(ja.ends_block() && !ja.falls_through() && !ja.is_cond_jump());
        assert_eq!(Insn::Gotol { off: -70000 }.jump_target(5), Some(-69994));
        let mg = Insn::MayGoto { off: 4 };
        assert!(mg.is_cond_jump() && mg.falls_through() && mg.jump_target(1) == Some(6));
        assert!(Insn::EXIT.ends_block() && !Insn::EXIT.falls_through() && !Insn::EXIT.is_jump());
        let call = Insn::Call(Call::Helper(12));
        assert_eq!(call.helper_id(), Some(12));
        assert!(!call.ends_block() && call.falls_through() && call.jump_target(0).is_none());
        assert_eq!(Insn::Call(Call::Local(-1)).subprog_target(7), Some(7));
        let f = Insn::LdImm64 {
            dst: Reg::R2,
            value: LdImm64::Func {
                offset: 3,
                next_imm: 0,
            },
        };
        assert_eq!((f.subprog_target(4), f.slots()), (Some(8), 2));
        assert_eq!(
            Insn::Call(Call::Kfunc { btf_id: 5, off: 0 }).helper_id(),
            None
        );
    }

    #[test]
    fn regset_basics() {
        let s = set(&[0, 10, 3]);
        assert_eq!(s.len(), 3);
        assert!(s.contains(Reg::R10) && !s.contains(Reg::R1));
        assert_eq!(s.iter().collect::<Vec<_>>(), [Reg::R0, Reg::R3, Reg::R10]);
        assert_eq!(format!("{s:?}"), "{r0, r3, r10}");
        assert!(RegSet::EMPTY.is_empty());
        assert_eq!(RegSet::ARGS | RegSet::of(Reg::R0), RegSet::CALLER_SAVED);
    }
}
