//! Dead code elimination after specialization: instructions whose only effect is a register or
//! a stack slot nobody reads any more (typically the op, its derived values and their spills),
//! and jumps to the next instruction.
//!
//! Stack liveness is per byte of the 512-byte frame. When the function forms a pointer into its
//! stack (other than as the base of a load or store), every call and every load through another
//! register is assumed to read the whole frame.

use super::code::{CInsn, remove};
use crate::insn::{Insn, Reg, RegSet};

const FRAME: i64 = 512;

#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct Live {
    regs: u16,
    stack: [u64; 8],
}

impl Live {
    fn union(&mut self, o: &Live) -> bool {
        let before = *self;
        self.regs |= o.regs;
        for k in 0..8 {
            self.stack[k] |= o.stack[k];
        }
        *self != before
    }

    fn bytes(off: i64, n: u32) -> impl Iterator<Item = usize> {
        (off..off + i64::from(n))
            .filter(|b| (-FRAME..0).contains(b))
            .map(|b| (b + FRAME) as usize)
    }

    fn gen_stack(&mut self, off: i64, n: u32) {
        for b in Live::bytes(off, n) {
            self.stack[b / 64] |= 1 << (b % 64);
        }
    }

    fn kill_stack(&mut self, off: i64, n: u32) {
        for b in Live::bytes(off, n) {
            self.stack[b / 64] &= !(1 << (b % 64));
        }
    }

    fn any_stack(&self, off: i64, n: u32) -> bool {
        Live::bytes(off, n).any(|b| self.stack[b / 64] & (1 << (b % 64)) != 0)
    }
}

fn succs(code: &[CInsn], i: usize) -> Vec<usize> {
    let c = &code[i];
    let n = code.len();
    let mut v = Vec::new();
    match c.insn {
        Insn::Exit { .. } => {}
        Insn::Ja { .. } | Insn::Gotol { .. } => v.extend(c.target),
        Insn::Jmp { .. } | Insn::MayGoto { .. } => {
            if i + 1 < n {
                v.push(i + 1);
            }
            v.extend(c.target);
        }
        _ => {
            if i + 1 < n {
                v.push(i + 1);
            }
        }
    }
    v
}

/// Whether the function forms pointers into its own stack.
fn stack_escapes(code: &[CInsn]) -> bool {
    code.iter().any(|c| {
        let base_only = match c.insn {
            Insn::Load { src, .. } | Insn::LoadSx { src, .. } | Insn::LoadAcquire { src, .. } => {
                src == Reg::R10
            }
            Insn::Store { dst, src, .. } => {
                dst == Reg::R10 && src != crate::insn::Src::Reg(Reg::R10)
            }
            Insn::Atomic { dst, src, .. } | Insn::StoreRelease { dst, src, .. } => {
                dst == Reg::R10 && src != Reg::R10
            }
            _ => false,
        };
        !base_only && c.insn.regs_read().contains(Reg::R10)
    })
}

/// Live-in of instruction `i` given its live-out.
fn step(c: &CInsn, out: &Live, escapes: bool) -> Live {
    let mut l = *out;
    let w = c.insn.regs_written();
    l.regs &= !w.bits();
    match c.insn {
        Insn::Store { dst, off, size, .. } if dst == Reg::R10 => {
            l.kill_stack(i64::from(off), size.bytes())
        }
        Insn::Load { src, off, size, .. } if src == Reg::R10 => {
            l.gen_stack(i64::from(off), size.bytes())
        }
        Insn::LoadSx { src, off, size, .. } if src == Reg::R10 => {
            l.gen_stack(i64::from(off), size.size().bytes())
        }
        Insn::Atomic {
            dst, off, width, ..
        } if dst == Reg::R10 => l.gen_stack(
            i64::from(off),
            if width == crate::insn::Width::W64 {
                8
            } else {
                4
            },
        ),
        Insn::Call(_)
        | Insn::Load { .. }
        | Insn::LoadSx { .. }
        | Insn::LoadAcquire { .. }
        | Insn::Atomic { .. }
            if escapes =>
        {
            l.stack = [u64::MAX; 8]
        }
        Insn::Exit { .. } => l.stack = [0; 8],
        _ => {}
    }
    let r = match c.insn {
        Insn::Exit { .. } => RegSet::of(Reg::R0),
        _ => c.insn.regs_read(),
    };
    l.regs |= r.bits();
    l
}

fn removable(c: &CInsn, out: &Live) -> bool {
    if c.reloc.is_some() {
        return false;
    }
    let dead_dst = |d: Reg| out.regs & (1 << d.index()) == 0;
    match c.insn {
        Insn::Alu { dst, .. }
        | Insn::Neg { dst, .. }
        | Insn::End { dst, .. }
        | Insn::MovSx { dst, .. }
        | Insn::LdImm64 { dst, .. } => dead_dst(dst) && dst != Reg::R10,
        Insn::Load { dst, src, .. } | Insn::LoadSx { dst, src, .. } => {
            src == Reg::R10 && dead_dst(dst)
        }
        Insn::Store { dst, off, size, .. } => {
            dst == Reg::R10 && !out.any_stack(i64::from(off), size.bytes())
        }
        Insn::Jmp { .. } | Insn::Ja { .. } | Insn::Gotol { .. } => false,
        _ => false,
    }
}

/// One liveness pass; returns the instructions to drop.
fn dead(code: &[CInsn]) -> Vec<bool> {
    let n = code.len();
    let escapes = stack_escapes(code);
    let succ: Vec<Vec<usize>> = (0..n).map(|i| succs(code, i)).collect();
    let mut live_in = vec![Live::default(); n];
    let mut live_out = vec![Live::default(); n];
    let mut changed = true;
    while changed {
        changed = false;
        for i in (0..n).rev() {
            let mut out = Live::default();
            for &s in &succ[i] {
                out.union(&live_in[s]);
            }
            live_out[i] = out;
            let inn = step(&code[i], &out, escapes);
            if inn != live_in[i] {
                live_in[i] = inn;
                changed = true;
            }
        }
    }
    (0..n).map(|i| removable(&code[i], &live_out[i])).collect()
}

/// Removes dead instructions and jumps to the next instruction, until nothing changes.
pub fn run(code: &mut Vec<CInsn>) {
    loop {
        let mut drop = dead(code);
        for (i, c) in code.iter().enumerate() {
            let to_next = c.target == Some(i + 1);
            match c.insn {
                Insn::Ja { .. } | Insn::Gotol { .. } if to_next => drop[i] = true,
                Insn::Jmp { .. } if to_next => drop[i] = true,
                _ => {}
            }
        }
        if !drop.iter().any(|d| *d) {
            return;
        }
        remove(code, &drop);
    }
}
