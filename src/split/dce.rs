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
use crate::optable::helper::{self, Access, Extent};

/// Key and value sizes of maps, by the symbol an `ld_imm64` relocation names: what
/// `bpf_map_*_elem` reads through its key and value pointers.
pub type MapSizes = HashMap<usize, (u32, u32)>;

/// The key and value sizes of `obj`'s maps that have both.
pub fn map_sizes(obj: &crate::obj::Object) -> MapSizes {
    obj.maps
        .iter()
        .filter_map(|m| Some((m.symbol?, (m.def.key_size?, m.def.value_size?))))
        .collect()
}

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
/// `spills`: whether a stack pointer may have been stored to memory, so that a load from the
/// stack may bring one back.
fn pointers(code: &[CInsn], spills: bool) -> Vec<Option<[P; 11]>> {
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
                if spills && get(&r, src).stackish() =>
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

/// The stack bytes a call reads, when known exactly: `Some(ranges)`; `None` = maybe any. A
/// helper's reads come from its prototype (`optable::helper::MEMORY_ARGS`); write-only
/// arguments read nothing. Subprograms, kfuncs and unknown helpers given a stack pointer may
/// read anything.
fn call_reads(insn: &Insn, regs: &[P; 11], maps: &MapSizes) -> Option<Vec<(i64, u32)>> {
    let arg = |k: usize| regs[k];
    let args_stackish = (1..=5).any(|k| arg(k).stackish());
    if !args_stackish {
        return Some(Vec::new());
    }
    let Insn::Call(Call::Helper(id)) = *insn else {
        return None;
    };
    let mem = helper::memory_args(id)?;
    let size = |e: Extent| -> Option<u32> {
        match e {
            Extent::SizeArg(k) => match arg(usize::from(k)) {
                P::Const(n) if (0..=FRAME).contains(&n) => Some(n as u32),
                _ => None,
            },
            Extent::MapKey(k) | Extent::MapValue(k) => match arg(usize::from(k)) {
                P::Map(m) => maps.get(&m).map(|s| {
                    if matches!(e, Extent::MapKey(_)) {
                        s.0
                    } else {
                        s.1
                    }
                }),
                _ => None,
            },
        }
    };
    let mut out = Vec::new();
    for k in 1..=5u8 {
        let p = arg(usize::from(k));
        if !p.stackish() {
            continue;
        }
        let m = mem.iter().find(|m| m.arg == k)?;
        if m.access == Access::Write {
            continue;
        }
        match p {
            P::Stack(o) => out.push((o, size(m.extent)?)),
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
/// byte), from the forward pointer pass: stored by the function itself, or by a callee given
/// one (a subprogram, kfunc or callback may store it through another; helpers with a known
/// prototype only write data).
fn stack_escapes(code: &[CInsn], regs: &[Option<[P; 11]>]) -> bool {
    code.iter().zip(regs).any(|(c, r)| {
        let Some(r) = r else { return false };
        match c.insn {
            Insn::Store {
                src: Src::Reg(x), ..
            }
            | Insn::StoreRelease { src: x, .. }
            | Insn::Atomic { src: x, .. } => r[x.index() as usize].stackish(),
            Insn::Call(call) => {
                let known = matches!(call, Call::Helper(id) if helper::memory_args(id).is_some());
                !known && (1..=5).any(|k| r[k].stackish())
            }
            _ => false,
        }
    })
}

/// The pointer pass and whether the stack escapes. The pass first assumes no stack pointer is
/// ever stored, so that values loaded from the stack are not pointers into it; if the result
/// shows a store of one after all, it is redone without the assumption.
fn pointers_and_escape(code: &[CInsn]) -> (Vec<Option<[P; 11]>>, bool) {
    let optimistic = pointers(code, false);
    if !stack_escapes(code, &optimistic) {
        return (optimistic, false);
    }
    let regs = pointers(code, true);
    let escapes = stack_escapes(code, &regs);
    (regs, escapes)
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
    let (regs, escapes) = pointers_and_escape(code);
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

/// Which instructions are dead, by index: those whose only effect is a register or stack
/// bytes that nothing reads afterwards — what one round of [`run`] removes, jumps aside.
pub fn dead_instructions(code: &[CInsn], maps: &MapSizes) -> Vec<bool> {
    dead(code, maps)
}

/// Where execution lands from instruction `i`, following unconditional jumps (a bounded
/// number, so that a `goto -1` loop ends).
fn landing(code: &[CInsn], mut i: usize) -> usize {
    for _ in 0..16 {
        match code.get(i) {
            Some(CInsn {
                insn: Insn::Ja { .. } | Insn::Gotol { .. },
                target: Some(t),
                ..
            }) => i = *t,
            _ => break,
        }
    }
    i
}

/// Removes dead instructions, jumps to the next instruction and conditional jumps whose two
/// ways land on the same instruction, until nothing changes.
pub fn run(code: &mut Vec<CInsn>, maps: &MapSizes) {
    loop {
        let mut drop = dead(code, maps);
        for (i, c) in code.iter().enumerate() {
            let to_next = c.target == Some(i + 1);
            match c.insn {
                Insn::Ja { .. } | Insn::Gotol { .. } if to_next => drop[i] = true,
                Insn::Jmp { .. } if to_next => drop[i] = true,
                // Both ways lead to the same instruction (`if c goto X; goto X`, typically
                // where specialization decided what the two paths did differently).
                Insn::Jmp { .. }
                    if c.target.map(|t| landing(code, t)) == Some(landing(code, i + 1)) =>
                {
                    drop[i] = true
                }
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

    fn mov(dst: Reg, src: Src) -> CInsn {
        CInsn::new(Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst,
            src,
        })
    }

    fn add(dst: Reg, k: i32) -> CInsn {
        CInsn::new(Insn::Alu {
            width: Width::W64,
            op: AluOp::Add,
            dst,
            src: Src::Imm(k),
        })
    }

    fn st(off: i16, src: Src) -> CInsn {
        CInsn::new(Insn::Store {
            size: Size::W,
            dst: Reg::R10,
            off,
            src,
        })
    }

    /// `int one = 1` for a setsockopt on another op's path, an 8-byte buffer passed to
    /// `bpf_load_hdr_opt` (size 8) or `bpf_getsockopt` (size 8), and a byte copied from the
    /// stack to the stack (a load from the stack: not a stack pointer, since none is stored).
    fn hdr_prog(helper: i32) -> Vec<CInsn> {
        vec![
            st(-0x14, Src::Imm(1)),
            st(-8, Src::Imm(0)),
            st(-4, Src::Imm(0)),
            CInsn::new(Insn::Load {
                size: Size::W,
                dst: Reg::R3,
                src: Reg::R10,
                off: -8,
            }),
            CInsn::new(Insn::Store {
                size: Size::W,
                dst: Reg::R10,
                off: -0x10,
                src: Src::Reg(Reg::R3),
            }),
            mov(Reg::R1, Src::Reg(Reg::R6)),
            mov(Reg::R2, Src::Imm(6)),
            mov(Reg::R3, Src::Imm(14)),
            mov(Reg::R4, Src::Reg(Reg::R10)),
            add(Reg::R4, -8),
            mov(Reg::R5, Src::Imm(8)),
            CInsn::new(Insn::Call(Call::Helper(helper))),
            mov(Reg::R0, Src::Imm(1)),
            CInsn::new(Insn::EXIT),
        ]
    }

    fn stores(code: &[CInsn]) -> Vec<String> {
        code.iter()
            .filter(|c| matches!(c.insn, Insn::Store { .. }))
            .map(|c| c.insn.to_string())
            .collect()
    }

    #[test]
    fn helpers_read_what_their_prototype_says() {
        // bpf_setsockopt(ctx, level, optname, optval = fp-8, optlen = 8) reads the 8 bytes:
        // both halves of the buffer stay, `one` and the copy nobody reads go.
        let mut code = hdr_prog(helper::SETSOCKOPT);
        run(&mut code, &MapSizes::new());
        assert_eq!(
            stores(&code),
            ["*(u32 *)(r10 - 0x8) = 0x0", "*(u32 *)(r10 - 0x4) = 0x0"]
        );
        // bpf_getsockopt's optval is ARG_PTR_TO_UNINIT_MEM: written, never read, so the
        // initialisation is dead too.
        let mut code = hdr_prog(helper::GETSOCKOPT);
        run(&mut code, &MapSizes::new());
        assert_eq!(stores(&code), Vec::<String>::new());
    }

    #[test]
    fn unknown_helpers_and_subprograms_given_the_stack_keep_it() {
        // A helper outside the prototype table may read (and store) any stack byte.
        let mut code = hdr_prog(9999);
        run(&mut code, &MapSizes::new());
        assert_eq!(stores(&code).len(), 4, "{:?}", stores(&code));
        // A subprogram given a stack pointer may store it, so loads from the stack may be
        // stack pointers: every store stays, the copy included.
        let mut code = hdr_prog(0);
        code[11] = CInsn::new(Insn::Call(Call::Local(-1)));
        run(&mut code, &MapSizes::new());
        assert_eq!(stores(&code).len(), 4, "{:?}", stores(&code));
    }

    #[test]
    fn a_branch_whose_ways_meet_goes() {
        // if r1 == 0 goto L; goto L; r0 = 2; L: r0 = 1; exit — after specialization both
        // ways of the compare do the same; the compare, then the goto, then the dead r0 = 2 go.
        let jmp = CInsn {
            insn: Insn::Jmp {
                width: Width::W64,
                cond: crate::insn::JmpCond::Eq,
                dst: Reg::R1,
                src: Src::Imm(0),
                off: 0,
            },
            target: Some(3),
            reloc: None,
            origin: None,
        };
        let ja = CInsn {
            insn: Insn::Ja { off: 0 },
            target: Some(3),
            reloc: None,
            origin: None,
        };
        let mut code = vec![
            jmp.clone(),
            ja.clone(),
            mov(Reg::R0, Src::Imm(2)),
            mov(Reg::R0, Src::Imm(1)),
            CInsn::new(Insn::EXIT),
        ];
        run(&mut code, &MapSizes::new());
        let text: Vec<String> = code.iter().map(|c| c.insn.to_string()).collect();
        assert_eq!(text, ["r0 = 0x1", "exit"]);
        // Different landings stay.
        let mut code = vec![
            jmp,
            ja,
            mov(Reg::R0, Src::Imm(2)),
            CInsn::new(Insn::EXIT),
            mov(Reg::R0, Src::Imm(1)),
            CInsn::new(Insn::EXIT),
        ];
        code[1].target = Some(4);
        run(&mut code, &MapSizes::new());
        assert_eq!(code.len(), 6);
    }

    #[test]
    fn unknown_sizes_keep_every_store() {
        let mut code = prog();
        run(&mut code, &MapSizes::new());
        assert_eq!(code.len(), 8);
    }
}
