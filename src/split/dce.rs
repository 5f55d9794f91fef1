//! Dead code elimination after specialization: instructions whose only effect is a register or
//! a stack slot nobody reads any more (typically the op, its derived values and their spills),
//! and jumps to the next instruction.
//!
//! Stack liveness is per byte of the 512-byte frame. When the function forms a pointer into its
//! stack (other than as the base of a load or store), every call and every load through another
//! register is assumed to read the whole frame.

use std::collections::HashMap;

use super::code::{CInsn, Reloc, remove};
use crate::insn::{AluOp, Call, Insn, Reg, RegSet, Src, Width};

/// Key and value sizes of maps, by the symbol an `ld_imm64` relocation names: what
/// `bpf_map_*_elem` reads through its key and value pointers.
pub type MapSizes = HashMap<usize, (u32, u32)>;

/// What a register holds, as far as stack liveness cares.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum P {
    /// Not a pointer into this function's stack.
    No,
    /// The frame pointer plus a constant.
    Stack(i64),
    /// Possibly a pointer into this function's stack, offset unknown.
    Maybe,
    /// A map (`ld_imm64` relocated against symbol `.0`).
    Map(usize),
    Const(i64),
}

impl P {
    fn join(self, o: P) -> P {
        match (self, o) {
            (a, b) if a == b => a,
            (P::Stack(_) | P::Maybe, _) | (_, P::Stack(_) | P::Maybe) => P::Maybe,
            _ => P::No,
        }
    }

    fn stackish(self) -> bool {
        matches!(self, P::Stack(_) | P::Maybe)
    }
}

/// Forward pass: what every register holds before each instruction. `None` for unreachable.
fn pointers(code: &[CInsn]) -> Vec<Option<[P; 11]>> {
    let n = code.len();
    let mut at: Vec<Option<[P; 11]>> = vec![None; n];
    if n == 0 {
        return at;
    }
    let mut entry = [P::No; 11];
    entry[10] = P::Stack(0);
    at[0] = Some(entry);
    let mut work: std::collections::BTreeSet<usize> = [0].into();
    while let Some(i) = work.pop_first() {
        let mut r = at[i].expect("queued with a state");
        let c = &code[i];
        let get = |r: &[P; 11], x: Reg| r[x.index() as usize];
        match c.insn {
            Insn::Alu {
                width,
                op,
                dst,
                src,
            } => {
                let d = dst.index() as usize;
                let b = match src {
                    Src::Reg(x) => get(&r, x),
                    Src::Imm(k) => P::Const(i64::from(k)),
                };
                r[d] = match (op, width, r[d], b) {
                    (AluOp::Mov, Width::W64, _, b) => b,
                    (AluOp::Mov, Width::W32, _, P::Const(k)) => P::Const(i64::from(k as u32)),
                    (AluOp::Add, Width::W64, P::Stack(o), P::Const(k)) => P::Stack(o + k),
                    (AluOp::Sub, Width::W64, P::Stack(o), P::Const(k)) => P::Stack(o - k),
                    (_, _, a, b) if a.stackish() || b.stackish() => P::Maybe,
                    _ => P::No,
                };
            }
            Insn::LdImm64 { dst, .. } => {
                r[dst.index() as usize] = match &c.reloc {
                    Some(Reloc::Symbol(s)) => P::Map(*s),
                    _ => P::No,
                };
            }
            // A spilled stack pointer may come back from the stack.
            Insn::Load { dst, src, .. } | Insn::LoadSx { dst, src, .. }
                if get(&r, src).stackish() =>
            {
                r[dst.index() as usize] = P::Maybe
            }
            _ => {
                for w in c.insn.regs_written().iter() {
                    r[w.index() as usize] = P::No;
                }
            }
        }
        for s in succs(code, i) {
            let new = match at[s] {
                None => r,
                Some(old) => std::array::from_fn(|k| old[k].join(r[k])),
            };
            if at[s] != Some(new) {
                at[s] = Some(new);
                work.insert(s);
            }
        }
    }
    at
}

/// The stack bytes a call reads, when known exactly: `Some(ranges)`; `None` = maybe any.
fn call_reads(insn: &Insn, regs: &[P; 11], maps: &MapSizes) -> Option<Vec<(i64, u32)>> {
    let arg = |k: usize| regs[k];
    let args_stackish = (1..=5).any(|k| arg(k).stackish());
    let Insn::Call(Call::Helper(id)) = *insn else {
        return if args_stackish {
            None
        } else {
            Some(Vec::new())
        };
    };
    // (argument holding a pointer, its size).
    let sized: Vec<(usize, Option<u32>)> = match (id, arg(1)) {
        (1 | 3, P::Map(m)) => vec![(2, maps.get(&m).map(|s| s.0))],
        (2, P::Map(m)) => vec![
            (2, maps.get(&m).map(|s| s.0)),
            (3, maps.get(&m).map(|s| s.1)),
        ],
        // bpf_setsockopt(ctx, level, optname, optval, optlen)
        (49, _) => vec![(
            4,
            match arg(5) {
                P::Const(k) if (0..=512).contains(&k) => Some(k as u32),
                _ => None,
            },
        )],
        _ => {
            return if args_stackish {
                None
            } else {
                Some(Vec::new())
            };
        }
    };
    let mut out = Vec::new();
    for k in 1..=5 {
        let p = arg(k);
        if !p.stackish() {
            continue;
        }
        match (p, sized.iter().find(|(a, _)| *a == k)) {
            (P::Stack(o), Some((_, Some(n)))) => out.push((o, *n)),
            _ => return None,
        }
    }
    Some(out)
}

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

/// Whether a stack pointer may be stored to memory (then any load or call may reach any stack
/// byte), from the forward pointer pass.
fn stack_escapes(code: &[CInsn], regs: &[Option<[P; 11]>]) -> bool {
    code.iter().zip(regs).any(|(c, r)| {
        let Some(r) = r else { return false };
        match c.insn {
            Insn::Store {
                src: Src::Reg(x), ..
            }
            | Insn::StoreRelease { src: x, .. }
            | Insn::Atomic { src: x, .. } => r[x.index() as usize].stackish(),
            _ => false,
        }
    })
}

/// Live-in of instruction `i` given its live-out. `regs`: what the registers hold before it
/// (`None` if unknown); `escapes`: stack pointers may live in memory.
fn step(c: &CInsn, out: &Live, escapes: bool, regs: Option<&[P; 11]>, maps: &MapSizes) -> Live {
    let mut l = *out;
    let w = c.insn.regs_written();
    l.regs &= !w.bits();
    let base = |r: Reg| regs.map_or(P::Maybe, |rs| rs[r.index() as usize]);
    let all = |l: &mut Live| l.stack = [u64::MAX; 8];
    match c.insn {
        Insn::Store { dst, off, size, .. } if dst == Reg::R10 => {
            l.kill_stack(i64::from(off), size.bytes())
        }
        Insn::Exit { .. } => l.stack = [0; 8],
        _ if escapes => match c.insn {
            Insn::Load { src, off, size, .. } if src == Reg::R10 => {
                l.gen_stack(i64::from(off), size.bytes())
            }
            Insn::LoadSx { src, off, size, .. } if src == Reg::R10 => {
                l.gen_stack(i64::from(off), size.size().bytes())
            }
            Insn::Call(_)
            | Insn::Load { .. }
            | Insn::LoadSx { .. }
            | Insn::LoadAcquire { .. }
            | Insn::Atomic { .. } => all(&mut l),
            _ => {}
        },
        Insn::Load { src, off, size, .. } => match base(src) {
            P::Stack(o) => l.gen_stack(o + i64::from(off), size.bytes()),
            P::Maybe => all(&mut l),
            _ => {}
        },
        Insn::LoadSx { src, off, size, .. } => match base(src) {
            P::Stack(o) => l.gen_stack(o + i64::from(off), size.size().bytes()),
            P::Maybe => all(&mut l),
            _ => {}
        },
        Insn::LoadAcquire { src, off, size, .. } => match base(src) {
            P::Stack(o) => l.gen_stack(o + i64::from(off), size.bytes()),
            P::Maybe => all(&mut l),
            _ => {}
        },
        Insn::Atomic {
            dst, off, width, ..
        } => match base(dst) {
            P::Stack(o) => l.gen_stack(
                o + i64::from(off),
                if width == crate::insn::Width::W64 {
                    8
                } else {
                    4
                },
            ),
            P::Maybe => all(&mut l),
            _ => {}
        },
        Insn::Call(_) => match regs.and_then(|r| call_reads(&c.insn, r, maps)) {
            Some(ranges) => {
                for (o, n) in ranges {
                    l.gen_stack(o, n);
                }
            }
            None => all(&mut l),
        },
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
fn dead(code: &[CInsn], maps: &MapSizes) -> Vec<bool> {
    let n = code.len();
    let regs = pointers(code);
    let escapes = stack_escapes(code, &regs);
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
            let inn = step(&code[i], &out, escapes, regs[i].as_ref(), maps);
            if inn != live_in[i] {
                live_in[i] = inn;
                changed = true;
            }
        }
    }
    (0..n).map(|i| removable(&code[i], &live_out[i])).collect()
}

/// Removes dead instructions and jumps to the next instruction, until nothing changes.
pub fn run(code: &mut Vec<CInsn>, maps: &MapSizes) {
    loop {
        let mut drop = dead(code, maps);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{LdImm64, Size};

    fn prog() -> Vec<CInsn> {
        let st = |off, src| {
            CInsn::new(Insn::Store {
                size: Size::W,
                dst: Reg::R10,
                off,
                src,
            })
        };
        let alu = |op, dst, src| {
            CInsn::new(Insn::Alu {
                width: Width::W64,
                op,
                dst,
                src,
            })
        };
        vec![
            // A struct initialised for another op's path: nobody reads it here.
            st(-0x20, Src::Imm(0)),
            // The map key.
            st(-4, Src::Reg(Reg::R6)),
            alu(AluOp::Mov, Reg::R2, Src::Reg(Reg::R10)),
            alu(AluOp::Add, Reg::R2, Src::Imm(-4)),
            CInsn {
                insn: Insn::LdImm64 {
                    dst: Reg::R1,
                    value: LdImm64::Imm(0),
                },
                target: None,
                reloc: Some(Reloc::Symbol(7)),
                origin: None,
            },
            CInsn::new(Insn::Call(Call::Helper(1))),
            alu(AluOp::Mov, Reg::R0, Src::Imm(1)),
            CInsn::new(Insn::EXIT),
        ]
    }

    #[test]
    fn map_helpers_read_exactly_the_key() {
        let mut code = prog();
        run(&mut code, &MapSizes::from([(7, (4, 8))]));
        assert_eq!(code.len(), 7);
        assert_eq!(code[0].insn.to_string(), "*(u32 *)(r10 - 0x4) = r6");
    }

    #[test]
    fn unknown_sizes_keep_every_store() {
        let mut code = prog();
        run(&mut code, &MapSizes::new());
        assert_eq!(code.len(), 8);
    }
}
