//! The split pass: one specialized `sockops` program per op, and a dispatcher.
//!
//! For each sock_ops program and each op with its own behaviour (per the op analysis), every
//! function the program runs is partially evaluated for that op ([`specialize`]): reads of
//! `ctx->op` become the constant, what the constant decides is folded, unreachable code and the
//! stack traffic that only carried the op go ([`dce`]). A subprogram whose specialized code differs
//! from its original is cloned for the op; identical clones and identical per-op programs are
//! shared ([`dedup`]). Load-time constants (`.rodata`, `.kconfig`, CO-RE immediates) are never
//! folded: the specializer treats them as unknown.
//!
//! The split form ([`SplitPlan`], emitted by [`crate::link`]): per-op programs start with an op
//! guard whose failure returns 1 (see `docs/SPLIT.md`); the original program becomes a dispatcher
//! with the same name and section that tail-calls through a statically initialised
//! `BPF_MAP_TYPE_PROG_ARRAY` indexed by op and falls through to the original code for every op
//! without its own program (and whenever the tail call fails). Programs that already tail-call, or
//! that the analysis cannot follow, stay as they are, with a finding.

pub mod clone;
pub mod code;
pub mod dce;
pub mod dedup;
pub mod relax;
pub mod specialize;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::Error;
use crate::analysis::Module;
use crate::analysis::facts::{Env, analyze_program};
use crate::analysis::findings::{Finding, FindingKind, Severity};
use crate::analysis::interp::{self, Event};
use crate::insn::{AluOp, Call, Insn, JmpCond, LdImm64, Reg, Size, Src, Width};
use crate::obj::{Object, ProgramType};
use crate::optable;
use code::{CInsn, FuncRef, Reloc};

/// `bpf_tail_call`.
const TAIL_CALL: i32 = 12;

/// A function the split creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFunc {
    pub name: String,
    /// The original function whose BTF prototype (and, for subprograms, linkage) it takes.
    pub source: usize,
    /// ELF section: the program's section for per-op programs, `.text` for subprograms.
    pub section: String,
    pub is_program: bool,
    pub code: Vec<CInsn>,
}

/// A statically initialised PROG_ARRAY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VTable {
    pub name: String,
    pub max_entries: u32,
    /// (slot = op, per-op program as an index into [`SplitPlan::new_funcs`]).
    pub slots: Vec<(u32, usize)>,
}

/// Everything the link step needs.
#[derive(Debug, Clone, Default)]
pub struct SplitPlan {
    pub new_funcs: Vec<NewFunc>,
    /// New bodies of original functions (the dispatchers).
    pub replaced: BTreeMap<usize, Vec<CInsn>>,
    pub vtables: Vec<VTable>,
    pub report: Report,
}

/// A kernel version an output needs, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KernelNeed {
    pub version: (u32, u32),
    pub reason: String,
}

/// The split report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub programs: Vec<ProgramReport>,
    /// The highest [`KernelNeed`] of the output, `None` if nothing beyond sock_ops itself.
    pub min_kernel: Option<String>,
    pub kernel_needs: Vec<KernelNeed>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgramReport {
    pub name: String,
    pub section: String,
    /// `split`, or `unsplit` (with `reason`), or `other` for programs of other types.
    pub status: &'static str,
    pub reason: Option<String>,
    /// Instructions of the original program and the subprograms it runs.
    pub insns_before: usize,
    /// Instructions of the dispatcher (the original with the tail call in front).
    pub dispatcher_insns: Option<usize>,
    pub vtable: Option<String>,
    pub ops: Vec<OpReport>,
    /// Ops (0..=20) without their own program: the dispatcher's fall-through runs them.
    pub default_ops: Vec<u8>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    pub op: u8,
    pub name: String,
    /// The per-op program (shared by the ops with identical code).
    pub program: String,
    /// The analysis' reachable instruction count for this op.
    pub insns_reachable: usize,
    /// Instructions of the specialized code (program and every subprogram it runs), without
    /// the guard.
    pub insns_after: usize,
    /// Instructions of the entry guard and its failure path.
    pub guard_insns: usize,
    /// Subprograms cloned for this op, and subprograms it shares with the original.
    pub cloned: Vec<String>,
    pub shared: Vec<String>,
    pub findings: Vec<Finding>,
}

/// Reads and normalizes an input: written and read back once, so that legacy `maps` sections
/// become BTF-defined maps and objects without BTF get one (the vtable needs both).
pub fn normalize(bytes: &[u8]) -> Result<Object, Error> {
    let obj = Object::parse(bytes)?;
    Object::parse(&obj.write()?)
}

fn program_len(m: &Module, entry: usize) -> usize {
    clone::call_order(m, entry)
        .iter()
        .map(|&f| m.funcs[f].insns.len())
        .sum()
}

/// The kernel that offers a kfunc to sock_ops programs: kfunc calls exist since 5.13; the sock_ops
/// timestamping kfunc came with the TSTAMP ops in 6.15.
fn kfunc_kernel(name: &str) -> (u32, u32) {
    match name {
        "bpf_sock_ops_enable_tx_tstamp" => (6, 15),
        _ => (5, 13),
    }
}

/// Instructions after jump relaxation (a far conditional jump takes two).
fn emitted_len(code: &[CInsn]) -> usize {
    relax::encode(code).map_or(code.len(), |e| e.insns.len())
}

fn finding(kind: FindingKind, severity: Severity, message: String) -> Finding {
    Finding {
        severity,
        kind,
        function: None,
        slot: None,
        source: None,
        message,
    }
}

fn mov(width: Width, dst: Reg, src: Src) -> Insn {
    Insn::Alu {
        width,
        op: AluOp::Mov,
        dst,
        src,
    }
}

/// The guard: `r2 = ctx->op; if r2 not in ops goto fail; ...; fail: r0 = 1; exit`. Returns the
/// guard prefix (targets relative to the final code: body starts at `prefix.len()`), and the
/// failure tail to append after the body.
fn guard(ops: &[u8], body_len: usize) -> (Vec<CInsn>, Vec<CInsn>) {
    let load = CInsn::new(Insn::Load {
        size: Size::W,
        dst: Reg::R2,
        src: Reg::R1,
        off: 0,
    });
    let jmp = |cond, k: u8| Insn::Jmp {
        width: Width::W32,
        cond,
        dst: Reg::R2,
        src: Src::Imm(i32::from(k)),
        off: 0,
    };
    let (lo, hi) = (ops[0], ops[ops.len() - 1]);
    let contiguous = usize::from(hi - lo) + 1 == ops.len();
    let mut pre = vec![load];
    let n_pre = if ops.len() == 1 {
        2
    } else if contiguous {
        if lo == 0 { 2 } else { 3 }
    } else {
        1 + ops.len()
    };
    let fail = n_pre + body_len;
    if ops.len() == 1 {
        pre.push(CInsn::jump(jmp(JmpCond::Ne, lo), fail));
    } else if contiguous {
        if lo != 0 {
            pre.push(CInsn::new(Insn::Alu {
                width: Width::W32,
                op: AluOp::Add,
                dst: Reg::R2,
                src: Src::Imm(-i32::from(lo)),
            }));
        }
        pre.push(CInsn::jump(jmp(JmpCond::Gt, hi - lo), fail));
    } else {
        for &k in &ops[..ops.len() - 1] {
            pre.push(CInsn::jump(jmp(JmpCond::Eq, k), n_pre));
        }
        pre.push(CInsn::jump(jmp(JmpCond::Ne, hi), fail));
    }
    debug_assert_eq!(pre.len(), n_pre);
    let tail = vec![
        CInsn::new(mov(Width::W64, Reg::R0, Src::Imm(1))),
        CInsn::new(Insn::EXIT),
    ];
    (pre, tail)
}

fn ident(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Splits every sock_ops program of `obj` (a [`normalize`]d object).
pub fn split(obj: &Object) -> Result<SplitPlan, Error> {
    let m = Module::from_object(obj)?;
    let env = Env::from_object(obj);
    let orig: Vec<Vec<CInsn>> = (0..obj.functions.len())
        .map(|f| code::from_function(obj, f))
        .collect::<Result<_, _>>()?;
    let mut plan = SplitPlan::default();
    let mut names: BTreeSet<String> = obj.symbols.iter().map(|s| s.name.clone()).collect();
    let mut unique = |base: String| {
        let mut n = base.clone();
        let mut k = 2;
        while !names.insert(n.clone()) {
            n = format!("{base}_{k}");
            k += 1;
        }
        n
    };
    let mut tables = dedup::Tables::default();
    let map_sizes = dce::map_sizes(obj);
    let mut needs: BTreeSet<KernelNeed> = BTreeSet::new();
    for p in &obj.programs {
        let fname = obj.functions[p.function].name.clone();
        let mut rep = ProgramReport {
            name: fname.clone(),
            section: p.section_name.clone(),
            status: "other",
            reason: None,
            insns_before: program_len(&m, p.function),
            dispatcher_insns: None,
            vtable: None,
            ops: Vec::new(),
            default_ops: Vec::new(),
            findings: Vec::new(),
        };
        if p.prog_type != ProgramType::SockOps {
            rep.reason = Some(format!(
                "{:?} program: carried through unchanged",
                p.prog_type
            ));
            plan.report.programs.push(rep);
            continue;
        }
        rep.status = "unsplit";
        let facts = match analyze_program(&m, p.function, &env) {
            Ok(f) => f,
            Err(e) => {
                rep.reason = Some(format!("the op analysis failed: {e}"));
                plan.report.programs.push(rep);
                continue;
            }
        };
        let it = interp::run(&m, p.function).map_err(|e| Error::Unsupported(e.to_string()))?;
        let mut op_reads: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        let mut tail_calls = Vec::new();
        let mut lost = Vec::new();
        for e in it.events.keys() {
            match e {
                Event::CtxRead { field: "op", loc } => {
                    op_reads.entry(loc.func).or_default().insert(loc.slot);
                }
                Event::TailCall { loc, .. } => tail_calls.push(*loc),
                Event::Lost { loc, kind } => lost.push((*loc, *kind)),
                _ => {}
            }
        }
        let relevant = |f: &Finding| {
            matches!(
                f.kind,
                FindingKind::OpLost
                    | FindingKind::CtxEscape
                    | FindingKind::KernCtx
                    | FindingKind::TailCall
                    | FindingKind::Malformed
            )
        };
        let mut prog_findings: BTreeSet<Finding> = facts
            .findings
            .iter()
            .filter(|f| relevant(f))
            .cloned()
            .collect();
        for o in &facts.ops {
            prog_findings.extend(o.findings.iter().filter(|f| relevant(f)).cloned());
        }
        let calls_tail = m.funcs.iter().enumerate().any(|(fi, f)| {
            clone::call_order(&m, p.function).contains(&fi)
                && f.insns
                    .iter()
                    .any(|si| si.insn == Insn::Call(Call::Helper(TAIL_CALL)))
        });
        if calls_tail || !tail_calls.is_empty() {
            rep.reason = Some(
                "the program already tail-calls: its ops continue in other programs, so it is kept unsplit"
                    .into(),
            );
            prog_findings.insert(finding(
                FindingKind::TailCall,
                Severity::Warning,
                format!("`{fname}` calls bpf_tail_call; kept unsplit"),
            ));
            rep.findings = prog_findings.into_iter().collect();
            plan.report.programs.push(rep);
            continue;
        }
        if facts.own_behaviour.is_empty() {
            rep.reason = Some("no op has its own behaviour: nothing to split".into());
            rep.findings = prog_findings.into_iter().collect();
            plan.report.programs.push(rep);
            continue;
        }
        let pin = clone::ProgramInput {
            module: &m,
            entry: p.function,
            reach: &facts.reach,
            op_reads: &op_reads,
            orig: &orig,
            map_sizes: &map_sizes,
        };
        // Per-op programs: index into new_funcs → ops.
        let mut progs: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut op_reports = Vec::new();
        for &op in &facts.own_behaviour {
            let oc = clone::specialize_program(&pin, op);
            let order = clone::call_order(&m, p.function);
            let mut map: HashMap<usize, FuncRef> = HashMap::new();
            let mut cloned = Vec::new();
            let mut shared = Vec::new();
            let mut insns_after = 0;
            for &f in order.iter().rev() {
                if f == p.function {
                    continue;
                }
                let Some(code) = oc.funcs.get(&f) else {
                    continue;
                };
                let mut code = code.clone();
                dedup::retarget(&mut code, &map);
                insns_after += emitted_len(&code);
                if code == orig[f] {
                    map.insert(f, FuncRef::Orig(f));
                    shared.push(m.funcs[f].name.clone());
                    continue;
                }
                let key = (f, code);
                let idx = match tables.clones.get(&key) {
                    Some(&i) => i,
                    None => {
                        let name = unique(format!("{}__op{op}", m.funcs[f].name));
                        plan.new_funcs.push(NewFunc {
                            name,
                            source: f,
                            section: ".text".into(),
                            is_program: false,
                            code: key.1.clone(),
                        });
                        let i = plan.new_funcs.len() - 1;
                        tables.clones.insert(key, i);
                        i
                    }
                };
                cloned.push(plan.new_funcs[idx].name.clone());
                map.insert(f, FuncRef::New(idx));
            }
            let mut main = oc.funcs.get(&p.function).cloned().unwrap_or_default();
            dedup::retarget(&mut main, &map);
            insns_after += emitted_len(&main);
            let pi = match tables.mains.get(&main) {
                Some(&i) => i,
                None => {
                    plan.new_funcs.push(NewFunc {
                        name: String::new(),
                        source: p.function,
                        section: p.section_name.clone(),
                        is_program: true,
                        code: main.clone(),
                    });
                    let i = plan.new_funcs.len() - 1;
                    tables.mains.insert(main, i);
                    progs.push((i, Vec::new()));
                    i
                }
            };
            progs
                .iter_mut()
                .find(|(i, _)| *i == pi)
                .expect("registered above")
                .1
                .push(op);
            let info = optable::op_info(op);
            let of = &facts.ops[usize::from(op)];
            op_reports.push(OpReport {
                op,
                name: info.map_or(format!("op {op}"), |i| i.name.to_string()),
                program: String::new(),
                insns_reachable: of.insns,
                insns_after,
                guard_insns: 0,
                cloned,
                shared,
                findings: of
                    .findings
                    .iter()
                    .filter(|f| relevant(f))
                    .cloned()
                    .collect(),
            });
        }
        // Name the per-op programs, add guards.
        let mut vt = VTable {
            name: unique(format!("{}_vtable", ident(&fname))),
            max_entries: u32::from(optable::OP_COUNT),
            slots: Vec::new(),
        };
        for (pi, ops) in &progs {
            let suffix: Vec<String> = ops.iter().map(|o| o.to_string()).collect();
            let name = unique(format!("{fname}_op{}", suffix.join("_")));
            let nf = &mut plan.new_funcs[*pi];
            nf.name = name.clone();
            let (mut pre, tail) = guard(ops, nf.code.len());
            let shift = pre.len();
            let mut body = std::mem::take(&mut nf.code);
            for c in &mut body {
                if let Some(t) = &mut c.target {
                    *t += shift;
                }
            }
            let body_len = emitted_len(&body);
            pre.extend(body);
            pre.extend(tail);
            // Counted after relaxation: over a long body the guard's jump needs a gotol too.
            let gl = emitted_len(&pre) - body_len;
            nf.code = pre;
            for &o in ops {
                vt.slots.push((u32::from(o), *pi));
                if let Some(r) = op_reports.iter_mut().find(|r| r.op == o) {
                    r.program = name.clone();
                    r.guard_insns = gl;
                }
            }
        }
        vt.slots.sort();
        // The dispatcher: r6 = ctx; tail call vtable[op]; r1 = r6; the original code.
        let mut disp = vec![
            CInsn::new(mov(Width::W64, Reg::R6, Src::Reg(Reg::R1))),
            CInsn::new(Insn::Load {
                size: Size::W,
                dst: Reg::R3,
                src: Reg::R1,
                off: 0,
            }),
            CInsn {
                insn: Insn::LdImm64 {
                    dst: Reg::R2,
                    value: LdImm64::Imm(0),
                },
                target: None,
                reloc: Some(Reloc::NewSymbol(vt.name.clone())),
                origin: None,
            },
            CInsn::new(Insn::Call(Call::Helper(TAIL_CALL))),
            CInsn::new(mov(Width::W64, Reg::R1, Src::Reg(Reg::R6))),
        ];
        let shift = disp.len();
        for c in &orig[p.function] {
            let mut c = c.clone();
            if let Some(t) = &mut c.target {
                *t += shift;
            }
            disp.push(c);
        }
        rep.dispatcher_insns =
            Some(disp.len() + program_len(&m, p.function) - orig[p.function].len());
        if clone::call_order(&m, p.function).len() > 1 {
            needs.insert(KernelNeed {
                version: (5, 10),
                reason: format!("dispatcher `{fname}` mixes a tail call with BPF-to-BPF calls"),
            });
        }
        plan.replaced.insert(p.function, disp);
        rep.status = "split";
        rep.vtable = Some(vt.name.clone());
        rep.default_ops = facts.shared_default.clone();
        rep.ops = op_reports;
        rep.findings = prog_findings.into_iter().collect();
        plan.vtables.push(vt);
        plan.report.programs.push(rep);
    }
    for nf in &plan.new_funcs {
        let e = relax::encode(&nf.code)
            .map_err(|e| Error::Unsupported(format!("`{}`: {e}", nf.name)))?;
        if e.uses_gotol {
            needs.insert(KernelNeed {
                version: (6, 6),
                reason: format!("`{}` needs gotol (ISA v4)", nf.name),
            });
        }
        for c in &nf.code {
            let Some(Reloc::Symbol(sym)) = &c.reloc else {
                continue;
            };
            let Some(x) = obj
                .externs
                .iter()
                .find(|x| x.symbol == *sym && x.kind == crate::obj::ExternKind::Kfunc)
            else {
                continue;
            };
            needs.insert(KernelNeed {
                version: kfunc_kernel(&x.name),
                reason: format!("`{}` calls kfunc {}", nf.name, x.name),
            });
        }
    }
    plan.report.kernel_needs = needs.into_iter().collect();
    plan.report.min_kernel = plan
        .report
        .kernel_needs
        .iter()
        .map(|n| n.version)
        .max()
        .map(|(a, b)| format!("{a}.{b}"));
    Ok(plan)
}

/// Reads `bytes`, splits every sock_ops program and emits the split form.
pub fn convert(bytes: &[u8]) -> Result<(Vec<u8>, Report), Error> {
    let obj = normalize(bytes)?;
    let plan = split(&obj)?;
    let out = crate::link::emit(&obj, &plan)?;
    Ok((out, plan.report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::opval::{eval_alu, eval_cond};

    /// Runs the guard prefix for `op`: `true` if it reaches the body.
    fn passes(pre: &[CInsn], body_len: usize, op: u8) -> bool {
        let fail = pre.len() + body_len;
        let mut r2 = 0u64;
        let mut i = 0;
        loop {
            if i == pre.len() {
                return true;
            }
            if i == fail {
                return false;
            }
            match pre[i].insn {
                Insn::Load { .. } => r2 = u64::from(op),
                Insn::Alu {
                    width,
                    op: o,
                    src: Src::Imm(k),
                    ..
                } => r2 = eval_alu(width, o, r2, k as i64 as u64),
                Insn::Jmp {
                    width,
                    cond,
                    src: Src::Imm(k),
                    ..
                } => {
                    if eval_cond(width, cond, r2, k as i64 as u64) {
                        i = pre[i].target.unwrap();
                        continue;
                    }
                }
                ref other => panic!("unexpected guard instruction {other:?}"),
            }
            i += 1;
        }
    }

    #[test]
    fn guards_accept_exactly_their_ops() {
        for ops in [
            vec![0u8],
            vec![4],
            vec![20],
            vec![0, 1, 2],
            vec![4, 5],
            vec![8, 9, 10],
            vec![3, 5, 9],
            vec![1, 2, 6],
        ] {
            let (pre, tail) = guard(&ops, 7);
            assert_eq!(tail.len(), 2);
            for op in 0..=255u8 {
                assert_eq!(
                    passes(&pre, 7, op),
                    ops.contains(&op),
                    "ops {ops:?}, op {op}"
                );
            }
            // One compare for a single op or a contiguous range.
            let compares = pre
                .iter()
                .filter(|c| matches!(c.insn, Insn::Jmp { .. }))
                .count();
            let contiguous = usize::from(ops[ops.len() - 1] - ops[0]) + 1 == ops.len();
            assert_eq!(compares, if contiguous { 1 } else { ops.len() });
        }
    }
}
