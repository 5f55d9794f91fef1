//! Whole-program specialization for one op: every function the program can run, in call order,
//! with call-site argument states flowing into callees and constant return values flowing back
//! (iterated until the two agree).

use std::collections::{BTreeMap, BTreeSet};

use super::code::CInsn;
use super::specialize::{self, Input, St, V};
use crate::analysis::opval::OpSet;
use crate::analysis::{Module, Ref};

/// The functions reachable from `entry` through calls and callback references, callers first.
pub fn call_order(m: &Module, entry: usize) -> Vec<usize> {
    fn dfs(m: &Module, f: usize, seen: &mut BTreeSet<usize>, post: &mut Vec<usize>) {
        if !seen.insert(f) {
            return;
        }
        for r in m.funcs[f].refs.values() {
            if let Ref::Call(g) | Ref::FuncAddr(g) = r {
                dfs(m, *g, seen, post);
            }
        }
        post.push(f);
    }
    let mut post = Vec::new();
    dfs(m, entry, &mut BTreeSet::new(), &mut post);
    post.reverse();
    post
}

/// What the op analysis contributes to one program's specialization.
pub struct ProgramInput<'a> {
    pub module: &'a Module,
    pub entry: usize,
    /// Per function, per instruction index: the ops that reach it.
    pub reach: &'a [Vec<OpSet>],
    /// Per function: slots that read `ctx->op`.
    pub op_reads: &'a BTreeMap<usize, BTreeSet<usize>>,
    /// Per function: its instructions as read.
    pub orig: &'a [Vec<CInsn>],
    pub map_sizes: &'a super::dce::MapSizes,
}

/// The specialized code of every function the program runs for one op (calls still name the
/// original functions).
pub struct OpCode {
    pub funcs: BTreeMap<usize, Vec<CInsn>>,
}

fn pass(
    p: &ProgramInput<'_>,
    op: u8,
    order: &[usize],
    summaries: &BTreeMap<usize, u64>,
) -> (BTreeMap<usize, specialize::Output>, BTreeMap<usize, u64>) {
    let empty = BTreeSet::new();
    let mut outs: BTreeMap<usize, specialize::Output> = BTreeMap::new();
    for &f in order {
        let func = &p.module.funcs[f];
        let entry = if f == p.entry {
            St::entry(&[V::Opaque, V::Unknown, V::Unknown, V::Unknown, V::Unknown])
        } else {
            let mut args: Option<[V; 5]> = None;
            let mut join = |a: [V; 5]| {
                args = Some(match args.take() {
                    None => a,
                    Some(b) => std::array::from_fn(|k| join_v(&a[k], &b[k])),
                });
            };
            for o in outs.values() {
                for c in o.calls.iter().filter(|c| c.callee == f) {
                    join(c.args.clone());
                }
                if o.callbacks.contains(&f) {
                    join(std::array::from_fn(|_| V::Opaque));
                }
            }
            let Some(mut args) = args else { continue };
            if func.global {
                // The kernel verifies global functions on their own, with unknown arguments.
                args = std::array::from_fn(|_| V::Opaque);
            }
            St::entry(&args)
        };
        let out = specialize::run(&Input {
            func,
            fid: f,
            op: Some(op),
            reach: p.reach.get(f).map(|v| v.as_slice()),
            op_reads: p.op_reads.get(&f).unwrap_or(&empty),
            entry,
            orig: &p.orig[f],
            summaries,
        });
        outs.insert(f, out);
    }
    let sums = outs
        .iter()
        .filter(|(f, o)| **f != p.entry && o.exits)
        .filter_map(|(f, o)| o.returns.map(|c| (*f, c)))
        .collect();
    (outs, sums)
}

fn join_v(a: &V, b: &V) -> V {
    match (a, b) {
        (x, y) if x == y => x.clone(),
        (V::Fp(_) | V::Unknown, _) | (_, V::Fp(_) | V::Unknown) => V::Unknown,
        _ => V::Opaque,
    }
}

/// Specializes the program for `op`, then removes dead code in every function.
pub fn specialize_program(p: &ProgramInput<'_>, op: u8) -> OpCode {
    let order = call_order(p.module, p.entry);
    let mut summaries = BTreeMap::new();
    let mut result = None;
    for _ in 0..6 {
        let (outs, sums) = pass(p, op, &order, &summaries);
        if sums == summaries {
            result = Some(outs);
            break;
        }
        summaries = sums;
    }
    // Not converged: without return summaries every pass is self-consistent.
    let outs = result.unwrap_or_else(|| pass(p, op, &order, &BTreeMap::new()).0);
    let funcs = outs
        .into_iter()
        .map(|(f, o)| {
            let mut code = o.code;
            super::dce::run(&mut code, p.map_sizes);
            (f, code)
        })
        .collect();
    OpCode { funcs }
}
