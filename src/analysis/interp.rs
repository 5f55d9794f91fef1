//! The abstract interpreter: one pass over a program that evaluates it for all 256 op bytes at
//! once (see [`super::opval`]). It follows spills and fills through any stack slot, keeps
//! `r6`–`r9` across helper and subprogram calls (and clobbers `r1`–`r5`), descends into static
//! subprograms with their caller's stack, analyses global subprograms the way the kernel
//! verifies them (unknown scalar arguments, the ctx still the ctx), and runs `bpf_loop`-style
//! callbacks to a fixpoint. What it cannot follow it records as a [`Lost`] event, and treats as
//! unknown: every branch on an unknown value is taken both ways, so a region behind a lost op is
//! reachable for every op.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use super::cfg::index_of_slot;
use super::opval::{
    ANY_OFF, Mem, OpSet, OpVec, Val, eval_alu, eval_cond, eval_end, eval_loadsx, eval_movsx,
    eval_neg, join,
};
use super::{Module, Ref};
use crate::insn::{AluOp, AtomicOp, Call, Insn, JmpCond, LdImm64, Reg, Size, Src, Width};
use crate::optable::{self, helper};

/// Stands for "the op itself" in [`Event::Helper::pointees`].
pub const THE_OP: u64 = u64::MAX;

/// The kernel's `MAX_CALL_FRAMES`.
pub const MAX_FRAMES: usize = 8;
/// Instruction visits after which the analysis gives up (it is linear in practice; this bounds
/// pathological inputs).
pub const STEP_BUDGET: u64 = 400_000_000;

/// A stack frame: byte offset from the frame pointer → (access size, value).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Frame {
    pub slots: BTreeMap<i64, (u32, Val)>,
}

impl Frame {
    /// Forgets pointers into frames at or above `depth` (popped on return): the invariant that
    /// every stack pointer names a live frame keeps frame indexing in bounds.
    fn scrub(&mut self, depth: usize) {
        self.slots
            .retain(|_, (_, v)| !matches!(v, Val::Stack { frame, .. } if *frame as usize >= depth));
    }

    fn clobber(&mut self, at: i64, bytes: u32) {
        let end = at.saturating_add(i64::from(bytes));
        let hit: Vec<i64> = self
            .slots
            .range(at.saturating_sub(8)..end)
            .filter(|(o, (s, _))| **o + i64::from(*s) > at)
            .map(|(o, _)| *o)
            .collect();
        for o in hit {
            self.slots.remove(&o);
        }
    }

    fn join(&self, sa: OpSet, o: &Frame, sb: OpSet) -> Frame {
        let mut slots = BTreeMap::new();
        let keys: BTreeSet<i64> = self.slots.keys().chain(o.slots.keys()).copied().collect();
        for k in keys {
            let (a, b) = (self.slots.get(&k), o.slots.get(&k));
            let size = match (a, b) {
                (Some((x, _)), Some((y, _))) if x != y => continue,
                (Some((x, _)), _) | (_, Some((x, _))) => *x,
                (None, None) => continue,
            };
            let unknown = Val::Unknown;
            let va = a.map_or(&unknown, |(_, v)| v);
            let vb = b.map_or(&unknown, |(_, v)| v);
            let v = join(va, sa, vb, sb);
            if v != Val::Unknown {
                slots.insert(k, (size, v));
            }
        }
        Frame { slots }
    }
}

/// The abstract machine state on one program point.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct State {
    /// The op bytes that can be here.
    pub ops: OpSet,
    pub regs: [Val; 11],
    /// Frame 0 is the program's; the last one is the current function's.
    pub frames: Vec<Frame>,
    /// The `args[0]`/`reply` word of the ctx.
    pub reply: Val,
}

impl State {
    /// The state at program entry: `r1` = ctx, `r10` = frame pointer, every op possible.
    pub fn entry() -> State {
        let mut regs: [Val; 11] = std::array::from_fn(|_| Val::Unknown);
        regs[1] = Val::Ctx(0);
        regs[10] = Val::Stack {
            frame: 0,
            off: Some(0),
        };
        State {
            ops: OpSet::ALL,
            regs,
            frames: vec![Frame::default()],
            reply: Val::Unknown,
        }
    }

    pub fn join(&self, o: &State) -> State {
        let (sa, sb) = (self.ops, o.ops);
        State {
            ops: sa.union(sb),
            regs: std::array::from_fn(|i| join(&self.regs[i], sa, &o.regs[i], sb)),
            frames: self
                .frames
                .iter()
                .zip(&o.frames)
                .map(|(a, b)| a.join(sa, b, sb))
                .collect(),
            reply: join(&self.reply, sa, &o.reply, sb),
        }
    }

    fn reg(&self, r: Reg) -> &Val {
        &self.regs[r.index() as usize]
    }

    fn set(&mut self, r: Reg, v: Val) {
        self.regs[r.index() as usize] = v;
    }

    fn clobber_args(&mut self) {
        for r in 1..=5 {
            self.regs[r] = Val::Unknown;
        }
    }
}

/// An instruction position: function index and slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Loc {
    pub func: usize,
    pub slot: usize,
}

/// Why the analysis lost track of the op or the ctx.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Lost {
    /// The ctx pointer is stored into memory the analysis does not follow.
    CtxEscape,
    /// `bpf_cast_to_kern_ctx`: reads through the kernel ctx are not followed.
    KernCtx,
    /// A ctx access at an offset outside `struct bpf_sock_ops`.
    CtxOffset,
    /// More than `MAX_CALL_FRAMES` nested calls.
    CallDepth,
    /// A callback the kernel runs later, outside this op (timer).
    AsyncCallback,
    /// A call whose target is not a function of the object.
    UnresolvedCall,
    /// Execution runs past the last instruction of a function.
    FallOff,
    /// An op-derived value is passed to a global function, which the kernel verifies with
    /// unknown arguments: its tests of that value are not folded.
    GlobalArg,
}

/// What the interpreter observed, for the ops recorded alongside.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Event {
    CtxRead {
        field: &'static str,
        loc: Loc,
    },
    CtxWrite {
        field: &'static str,
        loc: Loc,
        value: Option<u64>,
    },
    SockRead {
        field: &'static str,
        loc: Loc,
    },
    PacketRead {
        loc: Loc,
    },
    /// A helper call with its constant arguments and, for arguments pointing into the stack,
    /// the constant stored there (the buffer of `bpf_setsockopt`, a map key; [`THE_OP`] when
    /// that is the op itself).
    Helper {
        id: i32,
        loc: Loc,
        args: [Option<u64>; 5],
        pointees: [Option<u64>; 5],
    },
    Kfunc {
        name: String,
        loc: Loc,
    },
    /// The program returns `value` (`None`: not a known constant).
    Return {
        value: Option<u64>,
    },
    Lost {
        kind: Lost,
        loc: Loc,
    },
    /// An op-derived value is stored into a value of map `map` at an offset (`None`: global
    /// data or memory of unknown origin), directly or through `bpf_map_update_elem`.
    OpStore {
        map: Option<(u32, i64)>,
        loc: Loc,
        /// The value stored for the ops recorded ([`THE_OP`] for the op itself).
        value: Option<u64>,
    },
    /// A store or atomic operation on memory that is neither the stack nor the ctx (a map
    /// value, global data, a ring buffer record).
    MemWrite {
        loc: Loc,
    },
    /// A conditional jump on a value read from a value of map `map` at offset `off`.
    MapBranch {
        map: u32,
        off: i64,
        loc: Loc,
    },
    /// `bpf_tail_call` through map `map` with index `index`.
    TailCall {
        loc: Loc,
        map: Option<u32>,
        index: Option<u64>,
    },
    /// A callback `callee` handed to helper `helper`.
    Callback {
        helper: i32,
        callee: usize,
        loc: Loc,
    },
}

enum Out {
    Next,
    Dead,
    Exit,
    Goto(usize),
    Cond {
        fall: Option<Box<State>>,
        taken: Option<Box<State>>,
        target: usize,
    },
}

/// The result of interpreting one program.
pub struct Interp<'m> {
    m: &'m Module,
    /// Per function, per instruction index: the ops for which it runs.
    pub reach: Vec<Vec<OpSet>>,
    /// Every event with the ops for which it happens.
    pub events: HashMap<Event, OpSet>,
    /// Per function, per instruction index: whether the instruction has an effect, or computes
    /// a value the abstract domain cannot follow, on some visit. Jumps, and instructions whose
    /// results are constants, op-derived values or stack/ctx pointers, have none: what they
    /// compute shows up, per op, in the events it flows into (helper arguments, ctx writes,
    /// return values). This is what tells an op's own behaviour from the dispatch that leads to
    /// it.
    pub effectful: Vec<Vec<bool>>,
    memo: HashMap<(usize, State), Option<State>>,
    prio: Vec<Option<Vec<usize>>>,
    op_identity: Rc<OpVec>,
    steps: u64,
    error: Option<String>,
    /// Set while a block is evaluated again only to learn a value: record nothing.
    quiet: bool,
}

/// Interprets the program whose entry is function `entry` of `m`.
pub fn run(m: &Module, entry: usize) -> Result<Interp<'_>, String> {
    let mut it = Interp {
        m,
        reach: m
            .funcs
            .iter()
            .map(|f| vec![OpSet::EMPTY; f.insns.len()])
            .collect(),
        events: HashMap::new(),
        effectful: m.funcs.iter().map(|f| vec![false; f.insns.len()]).collect(),
        memo: HashMap::new(),
        prio: vec![None; m.funcs.len()],
        op_identity: Rc::new(OpVec::identity()),
        steps: 0,
        error: None,
        quiet: false,
    };
    if let Some(cycle) = super::callgraph::CallGraph::build(m).find_cycle(entry) {
        let names: Vec<&str> = cycle.iter().map(|&f| m.funcs[f].name.as_str()).collect();
        return Err(format!("recursive calls: {}", names.join(" -> ")));
    }
    it.run_function(entry, State::entry());
    match it.error.take() {
        Some(e) => Err(e),
        None => Ok(it),
    }
}

fn imm(k: i32) -> Val {
    Val::Const(k as i64 as u64)
}

impl<'m> Interp<'m> {
    fn record(&mut self, e: Event, ops: OpSet) {
        if ops.is_empty() || self.quiet {
            return;
        }
        let s = self.events.entry(e).or_insert(OpSet::EMPTY);
        *s = s.union(ops);
    }

    /// Records the event `f(op)` for each op of `ops`, grouping equal events.
    fn record_each(&mut self, ops: OpSet, per_op: bool, f: impl Fn(u8) -> Event) {
        if !per_op {
            if let Some(o) = ops.iter().next() {
                self.record(f(o), ops);
            }
            return;
        }
        let mut groups: BTreeMap<Event, OpSet> = BTreeMap::new();
        for o in ops.iter() {
            groups.entry(f(o)).or_default().insert(o);
        }
        for (e, s) in groups {
            self.record(e, s);
        }
    }

    fn priorities(&mut self, fid: usize) -> &[usize] {
        if self.prio[fid].is_none() {
            let cfg = &self.m.funcs[fid].cfg;
            let mut p = vec![0; cfg.blocks.len()];
            for (i, b) in cfg.reverse_postorder().into_iter().enumerate() {
                p[b] = i;
            }
            self.prio[fid] = Some(p);
        }
        self.prio[fid].as_deref().expect("set above")
    }

    /// Interprets one invocation of `fid`; returns the join of the states at its exits, `None`
    /// if it never returns.
    fn run_function(&mut self, fid: usize, entry: State) -> Option<State> {
        let key = (fid, entry);
        if let Some(r) = self.memo.get(&key) {
            return r.clone();
        }
        let m = self.m;
        let f = &m.funcs[fid];
        let cfg = &f.cfg;
        if cfg.blocks.is_empty() {
            return None;
        }
        let prio = self.priorities(fid).to_vec();
        let mut ins: Vec<Option<State>> = vec![None; cfg.blocks.len()];
        ins[0] = Some(key.1.clone());
        let mut work = BTreeSet::from([(prio[0], 0usize)]);
        let mut exit: Option<State> = None;
        while let Some((_, b)) = work.pop_first() {
            if self.error.is_some() {
                return None;
            }
            let mut st = ins[b].clone().expect("queued blocks have a state");
            let blk = &cfg.blocks[b];
            let mut outs: Vec<(usize, State)> = Vec::new();
            let mut i = blk.start;
            loop {
                self.steps += 1;
                if self.steps > STEP_BUDGET {
                    self.error = Some(format!(
                        "analysis budget of {STEP_BUDGET} instruction visits exceeded in `{}`",
                        f.name
                    ));
                    return None;
                }
                self.reach[fid][i] = self.reach[fid][i].union(st.ops);
                match self.step(fid, i, &mut st) {
                    Out::Next if i + 1 < blk.end => {
                        i += 1;
                        continue;
                    }
                    Out::Next => {
                        if blk.end < f.insns.len() {
                            outs.push((cfg.block_of[blk.end], st));
                        } else {
                            let loc = Loc {
                                func: fid,
                                slot: f.insns[i].slot,
                            };
                            self.record(
                                Event::Lost {
                                    kind: Lost::FallOff,
                                    loc,
                                },
                                st.ops,
                            );
                        }
                    }
                    Out::Dead => {}
                    Out::Exit => {
                        // Return values are recorded on the edges into a simple exit block
                        // (before the join merges them), else here.
                        if st.frames.len() == 1 && (b == 0 || !simple_exit(f, blk)) {
                            self.record_return(&st);
                        }
                        exit = Some(match exit {
                            None => st,
                            Some(e) => e.join(&st),
                        });
                    }
                    Out::Goto(t) => outs.push((cfg.block_of[t], st)),
                    Out::Cond {
                        fall,
                        taken,
                        target,
                    } => {
                        if let Some(s) = fall {
                            match cfg.block_of.get(i + 1) {
                                Some(&nb) => outs.push((nb, *s)),
                                None => self.record(
                                    Event::Lost {
                                        kind: Lost::FallOff,
                                        loc: Loc {
                                            func: fid,
                                            slot: f.insns[i].slot,
                                        },
                                    },
                                    s.ops,
                                ),
                            }
                        }
                        if let Some(s) = taken {
                            outs.push((cfg.block_of[target], *s));
                        }
                    }
                }
                break;
            }
            for (sb, s) in outs {
                if s.frames.len() == 1 && simple_exit(f, &cfg.blocks[sb]) {
                    // Run the block on this edge's state alone, without recording anything.
                    let mut t = s.clone();
                    self.quiet = true;
                    for k in cfg.blocks[sb].start..cfg.blocks[sb].end {
                        self.transfer(fid, k, &mut t);
                    }
                    self.quiet = false;
                    self.record_return(&t);
                }
                let new = match &ins[sb] {
                    None => s,
                    Some(old) => old.join(&s),
                };
                if ins[sb].as_ref() != Some(&new) {
                    ins[sb] = Some(new);
                    work.insert((prio[sb], sb));
                }
            }
        }
        self.memo.insert(key, exit.clone());
        exit
    }

    fn record_return(&mut self, st: &State) {
        let r0 = st.regs[0].clone();
        self.record_each(st.ops, r0.is_op_derived(), |o| Event::Return {
            value: r0.at(o),
        });
    }

    fn target_index(&self, fid: usize, i: usize) -> usize {
        let f = &self.m.funcs[fid];
        let si = &f.insns[i];
        let t = si.insn.jump_target(si.slot).expect("a jump");
        index_of_slot(&f.insns, t).expect("checked when the CFG was built")
    }

    fn step(&mut self, fid: usize, i: usize, st: &mut State) -> Out {
        let insn = self.m.funcs[fid].insns[i].insn;
        let stack = |v: &Val| matches!(v, Val::Stack { .. });
        // What the instruction reads through, before it runs.
        let (through_stack, through_ctx, stored) = match insn {
            Insn::Load { src, .. } | Insn::LoadSx { src, .. } | Insn::LoadAcquire { src, .. } => {
                (stack(st.reg(src)), matches!(st.reg(src), Val::Ctx(_)), None)
            }
            Insn::Store { dst, src, .. } => (
                stack(st.reg(dst)),
                false,
                Some(match src {
                    Src::Reg(r) => st.reg(r).clone(),
                    Src::Imm(_) => Val::Const(0),
                }),
            ),
            Insn::StoreRelease { dst, src, .. } => {
                (stack(st.reg(dst)), false, Some(st.reg(src).clone()))
            }
            _ => (false, false, None),
        };
        let out = self.transfer(fid, i, st);
        let imprecise = |v: &Val| {
            matches!(
                v,
                Val::Unknown
                    | Val::MapLoad(..)
                    | Val::Mem(_)
                    | Val::Sock(_)
                    | Val::Packet
                    | Val::KernCtx
            )
        };
        let effectful = match insn {
            Insn::Ja { .. } | Insn::Gotol { .. } | Insn::Jmp { .. } | Insn::MayGoto { .. } => false,
            Insn::Alu { dst, .. }
            | Insn::Neg { dst, .. }
            | Insn::End { dst, .. }
            | Insn::MovSx { dst, .. }
            | Insn::LdImm64 { dst, .. }
            | Insn::AddrSpaceCast { dst, .. } => imprecise(st.reg(dst)),
            // ctx reads are events of their own.
            Insn::Load { .. } | Insn::LoadSx { .. } | Insn::LoadAcquire { .. } if through_ctx => {
                false
            }
            Insn::Load { dst, .. } | Insn::LoadSx { dst, .. } | Insn::LoadAcquire { dst, .. } => {
                !through_stack || imprecise(st.reg(dst))
            }
            Insn::Store { .. } | Insn::StoreRelease { .. } => {
                !through_stack || stored.as_ref().is_some_and(imprecise)
            }
            _ => true,
        };
        if effectful {
            self.effectful[fid][i] = true;
        }
        out
    }

    fn transfer(&mut self, fid: usize, i: usize, st: &mut State) -> Out {
        let m = self.m;
        let f = &m.funcs[fid];
        let si = f.insns[i];
        let loc = Loc {
            func: fid,
            slot: si.slot,
        };
        let load_time = f.load_time_imm.contains(&si.slot);
        let imm_val = |k: i32| if load_time { Val::Unknown } else { imm(k) };
        match si.insn {
            Insn::Alu {
                width,
                op,
                dst,
                src,
            } => {
                let b = match src {
                    Src::Imm(k) => imm_val(k),
                    Src::Reg(r) => st.reg(r).clone(),
                };
                let v = alu(width, op, st.reg(dst), &b);
                st.set(dst, v);
            }
            Insn::Neg { width, dst } => {
                let v = st.reg(dst).map(|a| eval_neg(width, a));
                st.set(dst, v);
            }
            Insn::End { order, bits, dst } => {
                let v = st.reg(dst).map(|a| eval_end(order, bits, a));
                st.set(dst, v);
            }
            Insn::MovSx {
                width,
                from,
                dst,
                src,
            } => {
                let v = st.reg(src).map(|a| eval_movsx(width, from, a));
                st.set(dst, v);
            }
            Insn::AddrSpaceCast { dst, .. } => st.set(dst, Val::Unknown),
            Insn::LdImm64 { dst, value } => {
                let v = match f.refs.get(&si.slot) {
                    Some(Ref::Map(mi)) => Val::Map(*mi as u32),
                    Some(Ref::Data { .. }) | Some(Ref::Extern(_)) => Val::Mem(Mem::Data),
                    Some(Ref::FuncAddr(c)) => Val::Func(*c as u32),
                    _ => match value {
                        LdImm64::Imm(k) if !load_time => Val::Const(k as u64),
                        _ => Val::Unknown,
                    },
                };
                st.set(dst, v);
            }
            Insn::Load {
                size,
                dst,
                src,
                off,
            }
            | Insn::LoadAcquire {
                size,
                dst,
                src,
                off,
            } => {
                let base = st.reg(src).clone();
                let v = self.load(st, &base, off, size, loc);
                st.set(dst, v);
            }
            Insn::LoadSx {
                size,
                dst,
                src,
                off,
            } => {
                let base = st.reg(src).clone();
                let v = self
                    .load(st, &base, off, size.size(), loc)
                    .map(|a| eval_loadsx(size, a));
                st.set(dst, v);
            }
            Insn::Store {
                size,
                dst,
                off,
                src,
            } => {
                let v = match src {
                    Src::Imm(k) => imm_val(k),
                    Src::Reg(r) => st.reg(r).clone(),
                };
                let base = st.reg(dst).clone();
                self.store(st, &base, off, size, v, loc);
            }
            Insn::StoreRelease {
                size,
                dst,
                src,
                off,
            } => {
                let v = st.reg(src).clone();
                let base = st.reg(dst).clone();
                self.store(st, &base, off, size, v, loc);
            }
            Insn::Atomic {
                width,
                op,
                dst,
                src,
                off,
            } => {
                let base = st.reg(dst).clone();
                let bytes = match width {
                    Width::W32 => 4,
                    Width::W64 => 8,
                };
                let v = st.reg(src).clone();
                match base {
                    Val::Stack {
                        frame,
                        off: Some(o),
                    } => st.frames[frame as usize].clobber(o.wrapping_add(i64::from(off)), bytes),
                    Val::Stack { frame, off: None } => st.frames[frame as usize].slots.clear(),
                    Val::Ctx(_) => {}
                    _ => self.record(Event::MemWrite { loc }, st.ops),
                }
                match base {
                    Val::Stack { .. } | Val::Ctx(_) => {}
                    _ => self.note_escape(&field_ptr(&base, i64::from(off)), &v, st.ops, loc),
                }
                if op == AtomicOp::CmpXchg {
                    st.set(Reg::R0, Val::Unknown);
                } else if op.fetches() {
                    st.set(src, Val::Unknown);
                }
            }
            Insn::LdAbs { .. } | Insn::LdInd { .. } => {
                st.set(Reg::R0, Val::Unknown);
                st.clobber_args();
            }
            Insn::Ja { .. } | Insn::Gotol { .. } => return Out::Goto(self.target_index(fid, i)),
            Insn::MayGoto { .. } => {
                return Out::Cond {
                    fall: Some(Box::new(st.clone())),
                    taken: Some(Box::new(st.clone())),
                    target: self.target_index(fid, i),
                };
            }
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                ..
            } => {
                let b = match src {
                    Src::Imm(k) => imm_val(k),
                    Src::Reg(r) => st.reg(r).clone(),
                };
                for v in [st.reg(dst), &b] {
                    if let Val::MapLoad(map, off) = *v {
                        self.record(Event::MapBranch { map, off, loc }, st.ops);
                    }
                }
                let (taken, fall) = split(st.ops, width, cond, st.reg(dst), &b);
                let with = |ops: OpSet| {
                    (!ops.is_empty()).then(|| {
                        let mut s = st.clone();
                        s.ops = ops;
                        Box::new(s)
                    })
                };
                return Out::Cond {
                    fall: with(fall),
                    taken: with(taken),
                    target: self.target_index(fid, i),
                };
            }
            Insn::Call(Call::Helper(id)) => return self.helper(id, st, loc),
            // In relocatable objects a kfunc call is `call -1` with a relocation against the
            // extern: it decodes as a local call.
            Insn::Call(Call::Local(_)) => match f.refs.get(&si.slot) {
                Some(Ref::Call(c)) => return self.call(*c, st, loc),
                Some(Ref::Kfunc(name)) => self.kfunc(name.clone(), st, loc),
                _ => {
                    self.record(
                        Event::Lost {
                            kind: Lost::UnresolvedCall,
                            loc,
                        },
                        st.ops,
                    );
                    st.set(Reg::R0, Val::Unknown);
                    st.clobber_args();
                }
            },
            Insn::Call(Call::Kfunc { btf_id, .. }) => {
                let name = match f.refs.get(&si.slot) {
                    Some(Ref::Kfunc(n)) => n.clone(),
                    _ => format!("kfunc#{btf_id}"),
                };
                self.kfunc(name, st, loc);
            }
            Insn::Exit { .. } => return Out::Exit,
        }
        Out::Next
    }

    fn kfunc(&mut self, name: String, st: &mut State, loc: Loc) {
        let r0 = if name == "bpf_cast_to_kern_ctx" {
            self.record(
                Event::Lost {
                    kind: Lost::KernCtx,
                    loc,
                },
                st.ops,
            );
            Val::KernCtx
        } else {
            Val::Unknown
        };
        // Kfuncs may write through pointer arguments: forget what they point to on the stack.
        for r in 1..=5 {
            if let Val::Stack { frame, off } = st.regs[r] {
                let fr = &mut st.frames[frame as usize];
                match off {
                    Some(o) => fr.slots.retain(|&k, _| k < o),
                    None => fr.slots.clear(),
                }
            }
        }
        self.record(Event::Kfunc { name, loc }, st.ops);
        st.set(Reg::R0, r0);
        st.clobber_args();
    }

    fn load(&mut self, st: &State, base: &Val, off: i16, size: Size, loc: Loc) -> Val {
        let off = i64::from(off);
        match *base {
            Val::Ctx(o) => {
                let a = o.wrapping_add(off);
                let Some(field) = u32::try_from(a).ok().and_then(optable::ctx_field) else {
                    self.record(
                        Event::Lost {
                            kind: Lost::CtxOffset,
                            loc,
                        },
                        st.ops,
                    );
                    return Val::Unknown;
                };
                self.record(
                    Event::CtxRead {
                        field: field.name,
                        loc,
                    },
                    st.ops,
                );
                match (a as u32, size) {
                    // The kernel loads its u8 `op` zero-extended whatever the access width.
                    (0, Size::B | Size::H | Size::W) => Val::PerOp(self.op_identity.clone()),
                    (optable::REPLY_OFF, Size::W) => st.reply.clone(),
                    (optable::SK_OFF, Size::DW) => Val::Sock(0),
                    (optable::SKB_DATA_OFF | optable::SKB_DATA_END_OFF, Size::DW) => Val::Packet,
                    _ => Val::Unknown,
                }
            }
            Val::Stack {
                frame,
                off: Some(o),
            } => match st.frames[frame as usize].slots.get(&o.wrapping_add(off)) {
                Some((s, v)) if *s >= size.bytes() => v.truncate(size.bytes()),
                _ => Val::Unknown,
            },
            Val::Sock(o) => {
                if let Some(field) = u32::try_from(o.wrapping_add(off))
                    .ok()
                    .and_then(optable::bpf_sock_field)
                {
                    self.record(Event::SockRead { field, loc }, st.ops);
                }
                Val::Unknown
            }
            Val::Packet => {
                self.record(Event::PacketRead { loc }, st.ops);
                Val::Unknown
            }
            Val::Mem(Mem::MapValue(m, o)) if m != u32::MAX => Val::MapLoad(
                m,
                if o == ANY_OFF {
                    ANY_OFF
                } else {
                    o.wrapping_add(off)
                },
            ),
            _ => Val::Unknown,
        }
    }

    fn store(&mut self, st: &mut State, base: &Val, off: i16, size: Size, v: Val, loc: Loc) {
        let off = i64::from(off);
        let bytes = size.bytes();
        match *base {
            Val::Ctx(o) => {
                let a = o.wrapping_add(off);
                let Some(fl) = u32::try_from(a).ok().and_then(optable::ctx_field) else {
                    self.record(
                        Event::Lost {
                            kind: Lost::CtxOffset,
                            loc,
                        },
                        st.ops,
                    );
                    return;
                };
                let field = if fl.off == optable::REPLY_OFF {
                    "reply"
                } else {
                    fl.name
                };
                let v = v.truncate(bytes.min(4));
                self.record_each(st.ops, v.is_op_derived(), |o| Event::CtxWrite {
                    field,
                    loc,
                    value: v.at(o),
                });
                if fl.off == optable::REPLY_OFF {
                    st.reply = v;
                }
            }
            Val::Stack {
                frame,
                off: Some(o),
            } => {
                let fr = &mut st.frames[frame as usize];
                fr.clobber(o.wrapping_add(off), bytes);
                let v = v.truncate(bytes);
                if v != Val::Unknown {
                    fr.slots.insert(o.wrapping_add(off), (bytes, v));
                }
            }
            Val::Stack { frame, off: None } => st.frames[frame as usize].slots.clear(),
            _ => {
                self.record(Event::MemWrite { loc }, st.ops);
                if matches!(base, Val::Mem(Mem::MapValue(..) | Mem::Data)) {
                    self.note_escape(&field_ptr(base, off), &v, st.ops, loc);
                } else if matches!(v, Val::Ctx(_)) {
                    self.record(
                        Event::Lost {
                            kind: Lost::CtxEscape,
                            loc,
                        },
                        st.ops,
                    );
                }
            }
        }
    }

    /// A value written into memory the analysis does not follow (`base` points there).
    fn note_escape(&mut self, base: &Val, v: &Val, ops: OpSet, loc: Loc) {
        match v {
            Val::PerOp(_) => {
                let map = match base {
                    Val::Mem(Mem::MapValue(m, o)) if *m != u32::MAX => Some((*m, *o)),
                    _ => None,
                };
                let v = v.clone();
                let the_op = is_the_op(&v, ops);
                self.record_each(ops, true, |o| Event::OpStore {
                    map,
                    loc,
                    value: if the_op { Some(THE_OP) } else { v.at(o) },
                });
            }
            Val::Ctx(_) => self.record(
                Event::Lost {
                    kind: Lost::CtxEscape,
                    loc,
                },
                ops,
            ),
            _ => {}
        }
    }

    fn helper(&mut self, id: i32, st: &mut State, loc: Loc) -> Out {
        let args: [Val; 5] = std::array::from_fn(|k| st.regs[k + 1].clone());
        let pointees: [Val; 5] = std::array::from_fn(|k| match args[k] {
            Val::Stack {
                frame,
                off: Some(o),
            } => st.frames[frame as usize]
                .slots
                .get(&o)
                .map_or(Val::Unknown, |(_, v)| v.clone()),
            _ => Val::Unknown,
        });
        let per_op = args.iter().any(Val::is_op_derived) || pointees.iter().any(Val::is_op_derived);
        let the_op: [bool; 5] = std::array::from_fn(|k| is_the_op(&pointees[k], st.ops));
        self.record_each(st.ops, per_op, |o| Event::Helper {
            id,
            loc,
            args: std::array::from_fn(|k| args[k].at(o)),
            pointees: std::array::from_fn(|k| {
                if the_op[k] {
                    Some(THE_OP)
                } else {
                    pointees[k].at(o)
                }
            }),
        });
        match id {
            helper::TAIL_CALL => {
                let map = match args[1] {
                    Val::Map(mi) => Some(mi),
                    _ => None,
                };
                let idx = args[2].clone();
                self.record_each(st.ops, idx.is_op_derived(), |o| Event::TailCall {
                    loc,
                    map,
                    index: idx.at(o),
                });
            }
            helper::MAP_UPDATE_ELEM => {
                if let Val::Stack {
                    frame,
                    off: Some(o),
                } = args[2]
                {
                    let fr = &st.frames[frame as usize];
                    let values: Vec<(i64, Val)> = fr
                        .slots
                        .range(o..o.saturating_add(64))
                        .map(|(k, (_, v))| (k - o, v.clone()))
                        .collect();
                    for (field, v) in values {
                        let base = match args[0] {
                            Val::Map(m) => Val::Mem(Mem::MapValue(m, field)),
                            _ => Val::Mem(Mem::Other),
                        };
                        self.note_escape(&base, &v, st.ops, loc);
                    }
                }
            }
            _ => {}
        }
        // A helper may write through a stack pointer it gets (getsockopt's optval, load_hdr_opt's
        // buffer, probe reads): forget what was stored there, except for helpers that only read.
        if !helper::reads_only_through_pointers(id) {
            for (k, a) in args.iter().enumerate() {
                if let Val::Stack { frame, off } = *a {
                    let fr = &mut st.frames[frame as usize];
                    let len = match args.get(k + 1) {
                        Some(Val::Const(c)) => Some(*c),
                        _ => None,
                    };
                    match (off, len) {
                        (Some(o), Some(len)) if len <= 512 => fr.clobber(o, len as u32),
                        (Some(o), _) => {
                            fr.slots.retain(|&k, _| k < o);
                        }
                        (None, _) => fr.slots.clear(),
                    }
                }
            }
        }
        // Callbacks: (helper, callback arg, callback-ctx arg, the callback's ctx parameter).
        let cb = match id {
            helper::LOOP => Some((1, Some(2), 2, true)),
            helper::FOR_EACH_MAP_ELEM => Some((1, Some(2), 4, true)),
            helper::USER_RINGBUF_DRAIN => Some((1, Some(2), 2, true)),
            helper::FIND_VMA => Some((2, Some(3), 3, false)),
            _ => None,
        };
        let mut handled = false;
        if let Some((cb_arg, ctx_arg, ctx_param, iterate)) = cb
            && let Val::Func(callee) = args[cb_arg]
        {
            let mut params: [Val; 5] = std::array::from_fn(|_| Val::Unknown);
            if let Some(c) = ctx_arg {
                params[ctx_param - 1] = args[c].clone();
            }
            self.callback(id, callee as usize, params, iterate, st, loc);
            handled = true;
        }
        if !handled {
            for a in &args {
                if let Val::Func(callee) = *a {
                    if id == helper::TIMER_SET_CALLBACK {
                        self.record(
                            Event::Lost {
                                kind: Lost::AsyncCallback,
                                loc,
                            },
                            st.ops,
                        );
                    }
                    let params = std::array::from_fn(|_| Val::Unknown);
                    self.callback(id, callee as usize, params, false, st, loc);
                }
            }
        }
        let r0 = match id {
            helper::MAP_LOOKUP_ELEM => match args[0] {
                Val::Map(mi) => Val::Mem(Mem::MapValue(mi, 0)),
                _ => Val::Mem(Mem::Other),
            },
            helper::SK_STORAGE_GET | helper::GET_LOCAL_STORAGE => Val::Mem(Mem::MapValue(
                match args[0] {
                    Val::Map(mi) => mi,
                    _ => u32::MAX,
                },
                0,
            )),
            _ => Val::Unknown,
        };
        st.set(Reg::R0, r0);
        st.clobber_args();
        Out::Next
    }

    fn callback(
        &mut self,
        helper_id: i32,
        callee: usize,
        params: [Val; 5],
        iterate: bool,
        st: &mut State,
        loc: Loc,
    ) {
        self.record(
            Event::Callback {
                helper: helper_id,
                callee,
                loc,
            },
            st.ops,
        );
        let depth = st.frames.len();
        if depth >= MAX_FRAMES {
            self.record(
                Event::Lost {
                    kind: Lost::CallDepth,
                    loc,
                },
                st.ops,
            );
            return;
        }
        let mut cur = st.clone();
        let mut converged = false;
        for _ in 0..16 {
            let mut entry = cur.clone();
            entry.regs = std::array::from_fn(|_| Val::Unknown);
            for (k, p) in params.iter().enumerate() {
                entry.regs[k + 1] = p.clone();
            }
            entry.regs[10] = Val::Stack {
                frame: depth as u16,
                off: Some(0),
            };
            entry.frames.push(Frame::default());
            let Some(mut ex) = self.run_function(callee, entry) else {
                converged = true;
                break;
            };
            ex.frames.truncate(depth);
            ex.frames.iter_mut().for_each(|f| f.scrub(depth));
            let mut after = cur.clone();
            after.frames = ex.frames;
            after.reply = ex.reply;
            let j = cur.join(&after);
            let done = !iterate || j == cur;
            cur = j;
            if done {
                converged = true;
                break;
            }
        }
        if !converged {
            for fr in &mut cur.frames {
                fr.slots.clear();
            }
        }
        st.frames = cur.frames;
        st.reply = cur.reply;
    }

    fn call(&mut self, callee: usize, st: &mut State, loc: Loc) -> Out {
        let depth = st.frames.len();
        if depth >= MAX_FRAMES {
            self.record(
                Event::Lost {
                    kind: Lost::CallDepth,
                    loc,
                },
                st.ops,
            );
            st.set(Reg::R0, Val::Unknown);
            st.clobber_args();
            return Out::Next;
        }
        let global = self.m.funcs[callee].global;
        if global && st.regs[1..=5].iter().any(Val::is_op_derived) {
            self.record(
                Event::Lost {
                    kind: Lost::GlobalArg,
                    loc,
                },
                st.ops,
            );
        }
        let mut entry = st.clone();
        entry.regs = std::array::from_fn(|r| {
            if !(1..=5).contains(&r) {
                return Val::Unknown;
            }
            let v = &st.regs[r];
            // The kernel verifies a global function once for any caller: its scalar arguments
            // are unknown. Only the ctx keeps its meaning (the ctx is the ctx).
            if global && !matches!(v, Val::Ctx(_)) {
                Val::Unknown
            } else {
                v.clone()
            }
        });
        entry.regs[10] = Val::Stack {
            frame: depth as u16,
            off: Some(0),
        };
        if global {
            entry.frames = vec![Frame::default(); depth];
        }
        entry.frames.push(Frame::default());
        let Some(mut ex) = self.run_function(callee, entry) else {
            return Out::Dead;
        };
        ex.frames.truncate(depth);
        ex.frames.iter_mut().for_each(|f| f.scrub(depth));
        st.ops = ex.ops;
        st.reply = ex.reply;
        if global {
            for r in 1..=5 {
                if let Val::Stack { frame, .. } = st.regs[r] {
                    st.frames[frame as usize].slots.clear();
                }
            }
            st.set(Reg::R0, Val::Unknown);
        } else {
            st.frames = ex.frames;
            let r0 = match ex.regs[0] {
                Val::Stack { frame, .. } if frame as usize >= depth => Val::Unknown,
                ref v => v.clone(),
            };
            st.set(Reg::R0, r0);
        }
        st.clobber_args();
        Out::Next
    }
}

/// Whether the block ends in `exit` and calls nothing: a return sequence (`w0 = w6; exit`)
/// that can be evaluated per incoming edge.
fn simple_exit(f: &super::Func, blk: &super::cfg::Block) -> bool {
    let insns = &f.insns[blk.start..blk.end];
    matches!(insns.last(), Some(si) if matches!(si.insn, Insn::Exit { .. }))
        && !insns.iter().any(|si| matches!(si.insn, Insn::Call(_)))
}

/// Whether `v` is the op itself on every op of `ops`: a per-op counter's key or a stored op
/// is the same behaviour for every op, recorded as [`THE_OP`].
fn is_the_op(v: &Val, ops: OpSet) -> bool {
    v.is_op_derived() && ops.iter().all(|o| v.at(o) == Some(u64::from(o)))
}

/// A map-value pointer moved to the field `off` bytes further.
fn field_ptr(base: &Val, off: i64) -> Val {
    match *base {
        Val::Mem(Mem::MapValue(m, o)) if o != ANY_OFF => {
            Val::Mem(Mem::MapValue(m, o.wrapping_add(off)))
        }
        ref v => v.clone(),
    }
}

fn alu(width: Width, op: AluOp, a: &Val, b: &Val) -> Val {
    if op == AluOp::Mov {
        return match width {
            Width::W64 => b.clone(),
            Width::W32 => b.map(|v| v as u32 as u64),
        };
    }
    if a.is_scalarish() && b.is_scalarish() {
        return a.zip(b, |x, y| eval_alu(width, op, x, y));
    }
    if width == Width::W32 {
        return Val::Unknown;
    }
    let (ptr, k, sub) = match (op, a.is_scalarish(), b.is_scalarish()) {
        (AluOp::Add, false, true) => (a, b, false),
        (AluOp::Add, true, false) => (b, a, false),
        (AluOp::Sub, false, true) => (a, b, true),
        _ => return Val::Unknown,
    };
    let delta = match k {
        Val::Const(c) => Some(if sub {
            (*c as i64).wrapping_neg()
        } else {
            *c as i64
        }),
        _ => None,
    };
    match (ptr, delta) {
        (Val::Ctx(o), Some(d)) => Val::Ctx(o.wrapping_add(d)),
        (Val::Sock(o), Some(d)) => Val::Sock(o.wrapping_add(d)),
        (Val::Stack { frame, off }, d) => Val::Stack {
            frame: *frame,
            off: off.zip(d).map(|(o, d)| o.wrapping_add(d)),
        },
        (Val::Mem(Mem::MapValue(m, o)), d) => Val::Mem(Mem::MapValue(
            *m,
            match d {
                Some(d) if *o != ANY_OFF => o.wrapping_add(d),
                _ => ANY_OFF,
            },
        )),
        (Val::Mem(m), _) => Val::Mem(*m),
        (Val::Packet, _) => Val::Packet,
        (Val::KernCtx, _) => Val::KernCtx,
        _ => Val::Unknown,
    }
}

/// Splits `ops` into the ops for which `a cond b` holds (the jump is taken) and those for which
/// it does not; an op for which either side is unknown goes both ways.
fn split(ops: OpSet, width: Width, cond: JmpCond, a: &Val, b: &Val) -> (OpSet, OpSet) {
    match (a, b) {
        (Val::Const(x), Val::Const(y)) => {
            if eval_cond(width, cond, *x, *y) {
                (ops, OpSet::EMPTY)
            } else {
                (OpSet::EMPTY, ops)
            }
        }
        (Val::Const(_) | Val::PerOp(_), Val::Const(_) | Val::PerOp(_)) => {
            let (mut t, mut f) = (OpSet::EMPTY, OpSet::EMPTY);
            for o in ops.iter() {
                match (a.at(o), b.at(o)) {
                    (Some(x), Some(y)) => {
                        if eval_cond(width, cond, x, y) {
                            t.insert(o)
                        } else {
                            f.insert(o)
                        }
                    }
                    _ => {
                        t.insert(o);
                        f.insert(o);
                    }
                }
            }
            (t, f)
        }
        _ => (ops, ops),
    }
}
