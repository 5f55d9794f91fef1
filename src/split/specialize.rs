//! Partial evaluation of one function for one op: constant propagation over registers and stack
//! slots (sparse enough for BPF's small frames), branch folding, and the rewrite that replaces
//! op reads and every instruction whose result became a constant by an immediate move.
//!
//! Soundness rests on two facts. Each per-op program starts with a guard, so inside it `ctx->op`
//! *is* the constant. And the op analysis is conservative: an edge into an instruction the
//! analysis never reaches for this op is never taken. Values not known here are simply kept: a
//! branch on them stays, still computing the real value (the conservative form).

use std::collections::{BTreeMap, BTreeSet};

use super::code::CInsn;
use crate::analysis::Func;
use crate::analysis::opval::{
    OpSet, eval_alu, eval_cond, eval_end, eval_loadsx, eval_movsx, eval_neg,
};
use crate::insn::{AluOp, Call, Insn, LdImm64, Reg, Size, Src, Width};
use crate::optable::helper;

/// An abstract value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum V {
    /// Anything, possibly a pointer into this function's stack.
    Unknown,
    Const(u64),
    /// This frame's stack pointer plus an offset.
    Fp(i64),
    /// Unknown, but certainly not a pointer into this function's stack (ctx, map values, helper
    /// results, the caller's stack seen from a callee).
    Opaque,
}

impl V {
    fn join(&self, o: &V) -> V {
        match (self, o) {
            (a, b) if a == b => a.clone(),
            (V::Fp(_) | V::Unknown, _) | (_, V::Fp(_) | V::Unknown) => V::Unknown,
            _ => V::Opaque,
        }
    }

    fn konst(&self) -> Option<u64> {
        match self {
            V::Const(c) => Some(*c),
            _ => None,
        }
    }

    /// The class of an unknown result computed from these operands.
    fn derived(a: &V, b: &V) -> V {
        if matches!(a, V::Fp(_) | V::Unknown) || matches!(b, V::Fp(_) | V::Unknown) {
            V::Unknown
        } else {
            V::Opaque
        }
    }
}

/// Register and stack state before an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct St {
    pub regs: [V; 11],
    /// Known stack slots: offset from the frame pointer → (bytes, value). Absent = unknown.
    pub stack: BTreeMap<i64, (u32, V)>,
}

impl St {
    /// Function entry: `args` are `r1`..`r5`, `r10` the frame pointer.
    pub fn entry(args: &[V; 5]) -> St {
        let mut regs: [V; 11] = std::array::from_fn(|_| V::Unknown);
        regs[1..6].clone_from_slice(args);
        regs[10] = V::Fp(0);
        St {
            regs,
            stack: BTreeMap::new(),
        }
    }

    fn join(&self, o: &St) -> St {
        let regs = std::array::from_fn(|i| self.regs[i].join(&o.regs[i]));
        let stack = self
            .stack
            .iter()
            .filter(|(k, v)| o.stack.get(k) == Some(v))
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        St { regs, stack }
    }

    fn reg(&self, r: Reg) -> &V {
        &self.regs[r.index() as usize]
    }

    fn set(&mut self, r: Reg, v: V) {
        self.regs[r.index() as usize] = v;
    }

    fn src(&self, s: Src) -> V {
        match s {
            Src::Reg(r) => self.reg(r).clone(),
            Src::Imm(k) => V::Const(k as i64 as u64),
        }
    }

    fn clobber(&mut self, at: i64, bytes: u32) {
        let end = at + i64::from(bytes);
        let hit: Vec<i64> = self
            .stack
            .range(at - 8..end)
            .filter(|(o, (s, _))| **o + i64::from(*s) > at)
            .map(|(o, _)| *o)
            .collect();
        for o in hit {
            self.stack.remove(&o);
        }
    }
}

fn mask(v: u64, size: Size) -> u64 {
    match size {
        Size::DW => v,
        s => v & ((1u64 << (s.bytes() * 8)) - 1),
    }
}

/// Helpers that only read the stack memory their pointer arguments point to: map lookup, update
/// and delete (1-3), trace_printk (6), tail_call (12), perf_event_output (25), setsockopt (49),
/// sk_storage_get (107, its initial value), ringbuf_output (130), store_hdr_opt (143). A stack
/// slot passed to any other helper may be written, so its known value is forgotten.
fn reads_stack_only(id: i32) -> bool {
    matches!(id, 1 | 2 | 3 | 6 | 12 | 25 | 49 | 107 | 130 | 143)
        || id == helper::SOCK_OPS_CB_FLAGS_SET
}

/// What the per-op evaluation of one function needs.
pub struct Input<'a> {
    pub func: &'a Func,
    pub fid: usize,
    /// The op, when specializing; `None` keeps op reads (never used by the pass today).
    pub op: Option<u8>,
    /// Per instruction index: the ops that reach it (the analysis' reach sets).
    pub reach: Option<&'a [OpSet]>,
    /// Slots where the analysis saw a read of `ctx->op`.
    pub op_reads: &'a BTreeSet<usize>,
    pub entry: St,
    /// The function's instructions as read ([`super::code::from_function`]): relocations.
    pub orig: &'a [CInsn],
    /// Known constant return values of callees.
    pub summaries: &'a BTreeMap<usize, u64>,
}

/// A call the specialized function makes.
#[derive(Debug, Clone)]
pub struct CallSite {
    pub callee: usize,
    pub args: [V; 5],
}

/// The outcome: rewritten code, its calls and callback references, and its return value.
pub struct Output {
    pub code: Vec<CInsn>,
    pub calls: Vec<CallSite>,
    pub callbacks: Vec<usize>,
    /// `Some(c)` if every reachable exit returns the constant `c`.
    pub returns: Option<u64>,
    /// Whether some exit is reachable at all.
    pub exits: bool,
}

enum Flow {
    Next,
    Exit,
}

/// The value `ctx->op` reads as: byte `off` of the zero-extended u8 op, `size` bytes.
fn op_read_value(insn: &Insn, op: u8) -> Option<(Reg, u64)> {
    match *insn {
        Insn::Load { size, dst, off, .. } if (0..4).contains(&off) && size != Size::DW => {
            let v = (u64::from(op) >> (8 * off as u64)) & ((1u64 << (size.bytes() * 8)) - 1);
            Some((dst, v))
        }
        _ => None,
    }
}

struct Ctx<'a, 'b> {
    inp: &'b Input<'a>,
    calls: Vec<CallSite>,
    callbacks: Vec<usize>,
    returns: Option<Option<u64>>,
}

impl Ctx<'_, '_> {
    fn callee_of(&self, i: usize) -> Option<usize> {
        let slot = self.inp.func.insns[i].slot;
        match self.inp.func.refs.get(&slot) {
            Some(crate::analysis::Ref::Call(c)) => Some(*c),
            _ => None,
        }
    }

    /// Applies instruction `i` to `st`.
    fn transfer(&mut self, i: usize, st: &mut St, record: bool) -> Flow {
        let f = self.inp.func;
        let si = f.insns[i];
        let insn = si.insn;
        if self.inp.op_reads.contains(&si.slot)
            && let Some(op) = self.inp.op
            && let Some((dst, v)) = op_read_value(&insn, op)
        {
            st.set(dst, V::Const(v));
            return Flow::Next;
        }
        let relocated = f.refs.contains_key(&si.slot) && !matches!(insn, Insn::Call(_));
        if f.load_time_imm.contains(&si.slot) || relocated {
            // Load-time constants and relocated values are never folded.
            for r in insn.regs_written().iter() {
                st.set(r, V::Opaque);
            }
            if record && let Some(crate::analysis::Ref::FuncAddr(cb)) = f.refs.get(&si.slot) {
                self.callbacks.push(*cb);
            }
            return Flow::Next;
        }
        match insn {
            Insn::Alu {
                width,
                op,
                dst,
                src,
            } => {
                let b = st.src(src);
                let v = if op == AluOp::Mov {
                    match (&b, width) {
                        (V::Const(c), _) => V::Const(eval_alu(width, op, 0, *c)),
                        (V::Fp(_), Width::W32) => V::Unknown,
                        _ => b.clone(),
                    }
                } else {
                    let a = st.reg(dst).clone();
                    match (&a, &b) {
                        (V::Const(x), V::Const(y)) => V::Const(eval_alu(width, op, *x, *y)),
                        (V::Fp(o), V::Const(y))
                            if width == Width::W64 && matches!(op, AluOp::Add | AluOp::Sub) =>
                        {
                            let d = *y as i64;
                            V::Fp(if op == AluOp::Add {
                                o.wrapping_add(d)
                            } else {
                                o.wrapping_sub(d)
                            })
                        }
                        _ => V::derived(&a, &b),
                    }
                };
                st.set(dst, v);
            }
            Insn::Neg { width, dst } => {
                let v = match st.reg(dst) {
                    V::Const(c) => V::Const(eval_neg(width, *c)),
                    a => V::derived(a, &V::Opaque),
                };
                st.set(dst, v);
            }
            Insn::End { order, bits, dst } => {
                let v = match st.reg(dst) {
                    V::Const(c) => V::Const(eval_end(order, bits, *c)),
                    a => V::derived(a, &V::Opaque),
                };
                st.set(dst, v);
            }
            Insn::MovSx {
                width,
                from,
                dst,
                src,
            } => {
                let v = match st.reg(src) {
                    V::Const(c) => V::Const(eval_movsx(width, from, *c)),
                    a => V::derived(a, &V::Opaque),
                };
                st.set(dst, v);
            }
            Insn::AddrSpaceCast { dst, .. } => st.set(dst, V::Unknown),
            Insn::LdImm64 { dst, value } => st.set(
                dst,
                match value {
                    LdImm64::Imm(v) => V::Const(v as u64),
                    _ => V::Opaque,
                },
            ),
            Insn::Load {
                size,
                dst,
                src,
                off,
                ..
            } => {
                let v = match st.reg(src) {
                    V::Fp(o) => {
                        let at = o + i64::from(off);
                        match st.stack.get(&at) {
                            Some((s, v)) if *s == size.bytes() => match v {
                                V::Const(c) => V::Const(mask(*c, size)),
                                v if size == Size::DW => v.clone(),
                                _ => V::Unknown,
                            },
                            _ => V::Unknown,
                        }
                    }
                    V::Unknown => V::Unknown,
                    _ => V::Opaque,
                };
                st.set(dst, v);
            }
            Insn::LoadSx {
                size,
                dst,
                src,
                off,
            } => {
                let v = match st.reg(src) {
                    V::Fp(o) => match st.stack.get(&(o + i64::from(off))) {
                        Some((s, V::Const(c))) if *s == size.size().bytes() => {
                            V::Const(eval_loadsx(size, *c))
                        }
                        _ => V::Unknown,
                    },
                    V::Unknown => V::Unknown,
                    _ => V::Opaque,
                };
                st.set(dst, v);
            }
            Insn::LoadAcquire { dst, src, .. } => {
                let v = V::derived(st.reg(src), &V::Opaque);
                st.set(dst, v);
            }
            Insn::Store {
                size,
                dst,
                off,
                src,
            } => {
                let v = st.src(src);
                self.store(st, dst, off, size, v);
            }
            Insn::StoreRelease {
                size,
                dst,
                src,
                off,
            } => {
                let v = st.reg(src).clone();
                self.store(st, dst, off, size, v);
            }
            Insn::Atomic {
                width, dst, off, ..
            } => {
                let bytes = if width == Width::W64 { 8 } else { 4 };
                match st.reg(dst).clone() {
                    V::Fp(o) => st.clobber(o + i64::from(off), bytes),
                    V::Unknown => st.stack.clear(),
                    _ => {}
                }
                for r in insn.regs_written().iter() {
                    st.set(r, V::Unknown);
                }
            }
            Insn::LdAbs { .. } | Insn::LdInd { .. } => {
                st.set(Reg::R0, V::Opaque);
                for r in 1..=5u8 {
                    st.set(Reg::new(r).expect("r1-r5"), V::Unknown);
                }
            }
            Insn::Call(c) => {
                let args: [V; 5] = std::array::from_fn(|k| st.regs[k + 1].clone());
                let fp_arg = args.iter().any(|a| matches!(a, V::Fp(_) | V::Unknown));
                let mut r0 = V::Opaque;
                match c {
                    Call::Helper(id) => {
                        if fp_arg && !reads_stack_only(id) {
                            st.stack.clear();
                        }
                    }
                    Call::Kfunc { .. } => {
                        if fp_arg {
                            st.stack.clear();
                        }
                    }
                    Call::Local(_) => {
                        if fp_arg {
                            st.stack.clear();
                        }
                        r0 = V::Unknown;
                        if let Some(callee) = self.callee_of(i) {
                            if let Some(c) = self.inp.summaries.get(&callee) {
                                r0 = V::Const(*c);
                            }
                            if record {
                                let args = args.map(|a| match a {
                                    // The caller's stack, seen from the callee.
                                    V::Fp(_) => V::Opaque,
                                    v => v,
                                });
                                self.calls.push(CallSite { callee, args });
                            }
                        }
                    }
                }
                st.set(Reg::R0, r0);
                for r in 1..=5u8 {
                    st.set(Reg::new(r).expect("r1-r5"), V::Unknown);
                }
            }
            Insn::Exit { .. } => {
                if record {
                    let r = st.reg(Reg::R0).konst();
                    self.returns = Some(match self.returns {
                        None => r,
                        Some(prev) if prev == r => r,
                        Some(_) => None,
                    });
                }
                return Flow::Exit;
            }
            Insn::Ja { .. } | Insn::Gotol { .. } | Insn::Jmp { .. } | Insn::MayGoto { .. } => {}
        }
        Flow::Next
    }

    fn store(&mut self, st: &mut St, dst: Reg, off: i16, size: Size, v: V) {
        match st.reg(dst).clone() {
            V::Fp(o) => {
                let at = o + i64::from(off);
                st.clobber(at, size.bytes());
                let kept = match (&v, size) {
                    (V::Const(c), _) => Some(V::Const(mask(*c, size))),
                    (V::Unknown, _) => None,
                    (v, Size::DW) => Some(v.clone()),
                    _ => None,
                };
                if let Some(k) = kept {
                    st.stack.insert(at, (size.bytes(), k));
                }
            }
            V::Unknown => st.stack.clear(),
            _ => {}
        }
    }
}

/// Whether a conditional jump's edges are feasible: (fall-through, taken).
fn decide(insn: &Insn, st: &St) -> (bool, bool) {
    match *insn {
        Insn::Jmp {
            width,
            cond,
            dst,
            src,
            ..
        } => match (st.reg(dst).konst(), st.src(src).konst()) {
            (Some(a), Some(b)) => {
                let t = eval_cond(width, cond, a, b);
                (!t, t)
            }
            _ => (true, true),
        },
        _ => (true, true),
    }
}

/// Specializes one function.
#[allow(clippy::needless_range_loop)]
pub fn run(inp: &Input<'_>) -> Output {
    let f = inp.func;
    let cfg = &f.cfg;
    let nb = cfg.blocks.len();
    let reach_ok = |i: usize| match (inp.reach, inp.op) {
        (Some(r), Some(op)) => r.get(i).is_some_and(|s| s.contains(op)),
        _ => true,
    };
    let mut cx = Ctx {
        inp,
        calls: Vec::new(),
        callbacks: Vec::new(),
        returns: None,
    };
    let mut ins: Vec<Option<St>> = vec![None; nb];
    if nb == 0 {
        return Output {
            code: Vec::new(),
            calls: Vec::new(),
            callbacks: Vec::new(),
            returns: None,
            exits: false,
        };
    }
    ins[0] = Some(inp.entry.clone());
    let mut work: BTreeSet<usize> = BTreeSet::from([0]);
    // Per block: feasible out edges (fall-through, taken) of its last instruction.
    let mut edges: Vec<(bool, bool)> = vec![(false, false); nb];
    while let Some(b) = work.pop_first() {
        let mut st = ins[b].clone().expect("queued with a state");
        let blk = &cfg.blocks[b];
        let mut exited = false;
        for i in blk.start..blk.end {
            if let Flow::Exit = cx.transfer(i, &mut st, false) {
                exited = true;
            }
        }
        if exited {
            continue;
        }
        let last = blk.end - 1;
        let insn = f.insns[last].insn;
        let target = insn
            .jump_target(f.insns[last].slot)
            .and_then(|t| crate::analysis::cfg::index_of_slot(&f.insns, t));
        let (mut fall, mut taken) = match insn {
            Insn::Ja { .. } | Insn::Gotol { .. } => (false, true),
            Insn::Jmp { .. } => decide(&insn, &st),
            Insn::MayGoto { .. } => (true, true),
            _ => (true, false),
        };
        let has_next = blk.end < f.insns.len();
        fall &= has_next && reach_ok(blk.end);
        if let Some(t) = target {
            taken &= reach_ok(t);
        } else {
            taken = false;
        }
        if !fall && !taken {
            // The analysis says this path dies here; keep the jump's both edges rather than
            // leave a block without an end.
            fall = has_next && !matches!(insn, Insn::Ja { .. } | Insn::Gotol { .. });
            taken = target.is_some();
        }
        edges[b] = (fall, taken);
        let mut push = |idx: usize, st: &St, ins: &mut Vec<Option<St>>| {
            let nbk = cfg.block_of[idx];
            let new = match &ins[nbk] {
                None => st.clone(),
                Some(old) => old.join(st),
            };
            if ins[nbk].as_ref() != Some(&new) {
                ins[nbk] = Some(new);
                work.insert(nbk);
            }
        };
        if fall {
            push(blk.end, &st, &mut ins);
        }
        if taken && let Some(t) = target {
            push(t, &st, &mut ins);
        }
    }

    // Rewrite, block by block in the original order; targets are original indices for now.
    let mut code: Vec<CInsn> = Vec::new();
    let mut orig_index: Vec<Option<usize>> = vec![None; f.insns.len()];
    for (b, blk) in cfg.blocks.iter().enumerate() {
        let Some(mut st) = ins[b].clone() else {
            continue;
        };
        for i in blk.start..blk.end {
            let si = f.insns[i];
            let flow = cx.transfer(i, &mut st, true);
            let mut c = CInsn {
                insn: si.insn,
                target: None,
                reloc: None,
                origin: Some((inp.fid, si.slot)),
            };
            c.reloc = inp.orig.get(i).and_then(|o| o.reloc.clone());
            let is_last = i + 1 == blk.end;
            if let Some(t) = si.insn.jump_target(si.slot) {
                let t = crate::analysis::cfg::index_of_slot(&f.insns, t).unwrap_or(i);
                if is_last && matches!(si.insn, Insn::Jmp { .. }) {
                    match edges[b] {
                        (true, true) => c.target = Some(t),
                        (false, true) => {
                            c.insn = Insn::Ja { off: 0 };
                            c.target = Some(t);
                        }
                        _ => continue,
                    }
                } else {
                    c.target = Some(t);
                }
            } else if c.reloc.is_none()
                && !f.load_time_imm.contains(&si.slot)
                && let Some(new) = folded(&si.insn, &st)
            {
                c.insn = new;
            }
            orig_index[i] = Some(code.len());
            code.push(c);
            if let Flow::Exit = flow {
                break;
            }
        }
    }
    // Resolve original-index targets to the first emitted instruction at or after them.
    let mut next = vec![code.len(); f.insns.len() + 1];
    for i in (0..f.insns.len()).rev() {
        next[i] = orig_index[i].unwrap_or(next[i + 1]);
    }
    for c in &mut code {
        if let Some(t) = c.target {
            c.target = Some(next[t]);
        }
    }
    let exits = cx.returns.is_some();
    Output {
        code,
        calls: cx.calls,
        callbacks: cx.callbacks,
        returns: cx.returns.flatten(),
        exits,
    }
}

/// The immediate move that replaces an instruction whose result is a known constant.
fn folded(insn: &Insn, after: &St) -> Option<Insn> {
    let (dst, w32) = match *insn {
        Insn::Alu { width, dst, .. } => (dst, width == Width::W32),
        Insn::Neg { width, dst } => (dst, width == Width::W32),
        Insn::MovSx { width, dst, .. } => (dst, width == Width::W32),
        Insn::End { dst, .. } => (dst, false),
        Insn::Load { size, dst, .. } => (dst, size != Size::DW),
        Insn::LoadSx { dst, .. } => (dst, false),
        _ => return None,
    };
    let c = after.reg(dst).konst()?;
    let s = c as i64;
    let (width, imm) = if w32 || (c >> 32 == 0 && s > i64::from(i32::MAX)) {
        if c >> 32 != 0 {
            return None;
        }
        (Width::W32, c as u32 as i32)
    } else if s >= i64::from(i32::MIN) && s <= i64::from(i32::MAX) {
        (Width::W64, s as i32)
    } else {
        return None;
    };
    Some(Insn::Alu {
        width,
        op: AluOp::Mov,
        dst,
        src: Src::Imm(imm),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{JmpCond, SlotInsn};

    fn asm(v: Vec<Insn>) -> Vec<SlotInsn> {
        let mut slot = 0;
        v.into_iter()
            .map(|insn| {
                let si = SlotInsn { slot, insn };
                slot += insn.slots();
                si
            })
            .collect()
    }

    fn alu(op: AluOp, width: Width, dst: u8, src: Src) -> Insn {
        Insn::Alu {
            width,
            op,
            dst: Reg::new(dst).unwrap(),
            src,
        }
    }

    fn run_for(insns: Vec<Insn>, op: u8, load_time: &[usize]) -> Vec<String> {
        let mut func = Func::new("f", asm(insns)).unwrap();
        func.load_time_imm = load_time.iter().copied().collect();
        let orig: Vec<CInsn> = func
            .insns
            .iter()
            .map(|si| CInsn {
                insn: si.insn,
                target: None,
                reloc: None,
                origin: Some((0, si.slot)),
            })
            .collect();
        let reads = BTreeSet::from([0]);
        let out = run(&Input {
            func: &func,
            fid: 0,
            op: Some(op),
            reach: None,
            op_reads: &reads,
            entry: St::entry(&[V::Opaque, V::Unknown, V::Unknown, V::Unknown, V::Unknown]),
            orig: &orig,
            summaries: &BTreeMap::new(),
        });
        let mut code = out.code;
        super::super::dce::run(&mut code, &Default::default());
        code.iter().map(|c| c.insn.to_string()).collect()
    }

    fn op_read() -> Insn {
        Insn::Load {
            size: Size::W,
            dst: Reg::R2,
            src: Reg::R1,
            off: 0,
        }
    }

    fn spill_fill_test(cmp_src: Insn) -> Vec<Insn> {
        vec![
            op_read(),
            Insn::Store {
                size: Size::W,
                dst: Reg::R10,
                off: -4,
                src: Src::Reg(Reg::R2),
            },
            Insn::Load {
                size: Size::W,
                dst: Reg::R3,
                src: Reg::R10,
                off: -4,
            },
            cmp_src,
            Insn::Jmp {
                width: Width::W32,
                cond: JmpCond::Eq,
                dst: Reg::R3,
                src: Src::Reg(Reg::R4),
                off: 2,
            },
            alu(AluOp::Mov, Width::W64, 0, Src::Imm(0)),
            Insn::EXIT,
            alu(AluOp::Mov, Width::W64, 0, Src::Imm(1)),
            Insn::EXIT,
        ]
    }

    #[test]
    fn spilled_op_is_folded_and_its_stack_traffic_removed() {
        let prog = spill_fill_test(alu(AluOp::Mov, Width::W64, 4, Src::Imm(4)));
        assert_eq!(run_for(prog.clone(), 4, &[]), ["r0 = 0x1", "exit"]);
        assert_eq!(run_for(prog, 5, &[]), ["r0 = 0x0", "exit"]);
    }

    #[test]
    fn load_time_constants_are_not_folded() {
        // `r4 = 4` carries a CO-RE (load-time) immediate: the compare must stay.
        let prog = spill_fill_test(alu(AluOp::Mov, Width::W64, 4, Src::Imm(4)));
        let code = run_for(prog, 4, &[3]);
        assert!(
            code.iter().any(|s| s.starts_with("if w3 == w4")),
            "{code:?}"
        );
        assert!(code.contains(&"r4 = 0x4".to_string()), "{code:?}");
        // The op itself is still a constant: no ctx read is left.
        assert!(!code.iter().any(|s| s.contains("r1 + 0x0")), "{code:?}");
    }

    #[test]
    fn a_stack_slot_whose_address_escapes_keeps_its_store() {
        let prog = vec![
            op_read(),
            Insn::Store {
                size: Size::W,
                dst: Reg::R10,
                off: -4,
                src: Src::Reg(Reg::R2),
            },
            alu(AluOp::Mov, Width::W64, 2, Src::Reg(Reg::R10)),
            alu(AluOp::Add, Width::W64, 2, Src::Imm(-4)),
            Insn::Call(Call::Helper(99)),
            alu(AluOp::Mov, Width::W64, 0, Src::Imm(1)),
            Insn::EXIT,
        ];
        let code = run_for(prog, 4, &[]);
        assert_eq!(code[0], "w2 = 0x4", "{code:?}");
        assert!(
            code.iter()
                .any(|s| s.starts_with("*(u32 *)(r10 - 0x4) = r2")),
            "{code:?}"
        );
    }
}
