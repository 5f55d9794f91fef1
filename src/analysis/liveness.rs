//! Register liveness per function, and which subprograms' return values nobody reads.
//!
//! Calls count as reading `r1`-`r5` and writing `r0`-`r5` ([`Insn::regs_read`]), so the
//! result is conservative for arguments and exact for `r0` after a call.

use super::callgraph::{CallGraph, EdgeKind};
use super::{Func, Module};
use crate::insn::RegSet;

/// The registers live after each instruction of `f` (by instruction index).
pub fn live_out(f: &Func) -> Vec<RegSet> {
    live_out_with(f, true)
}

/// As [`live_out`]; `exit_reads_r0` false for a function whose result nobody reads
/// ([`result_unused`]), so that only `r0`'s uses inside it keep it live.
pub fn live_out_with(f: &Func, exit_reads_r0: bool) -> Vec<RegSet> {
    let n = f.insns.len();
    let mut live_in = vec![RegSet::EMPTY; n];
    let mut out = vec![RegSet::EMPTY; n];
    let blocks = &f.cfg.blocks;
    let mut changed = true;
    while changed {
        changed = false;
        for b in blocks.iter().rev() {
            if b.start >= b.end {
                continue;
            }
            let mut live = b
                .succs
                .iter()
                .filter_map(|&s| blocks.get(s))
                .filter(|s| s.start < s.end)
                .fold(RegSet::EMPTY, |acc, s| acc | live_in[s.start]);
            for i in (b.start..b.end).rev() {
                out[i] = live;
                // Every register in `regs_written` is written on every execution, so it is
                // killed; the reads come after.
                let insn = &f.insns[i].insn;
                let kept =
                    RegSet::from_iter(live.iter().filter(|r| !insn.regs_written().contains(*r)));
                let read = match insn {
                    crate::insn::Insn::Exit { .. } if !exit_reads_r0 => RegSet::EMPTY,
                    _ => insn.regs_read(),
                };
                live = kept | read;
            }
            if live != live_in[b.start] {
                live_in[b.start] = live;
                changed = true;
            }
        }
    }
    out
}

/// Whether no caller can observe the value `callee` returns: it is not a program (`programs`
/// holds their function indices), never handed out as a callback, and `r0` is dead after every
/// call of it.
pub fn result_unused(m: &Module, cg: &CallGraph, programs: &[usize], callee: usize) -> bool {
    if programs.contains(&callee) {
        return false;
    }
    let mut called = false;
    for (caller, edges) in cg.edges.iter().enumerate() {
        let mut live = None;
        for e in edges.iter().filter(|e| e.callee == callee) {
            if e.kind == EdgeKind::Callback {
                return false;
            }
            let f = &m.funcs[caller];
            let Ok(i) = f.insns.binary_search_by_key(&e.slot, |s| s.slot) else {
                return false;
            };
            if live.get_or_insert_with(|| live_out(f))[i].contains(crate::insn::Reg::R0) {
                return false;
            }
            called = true;
        }
    }
    called
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{AluOp, Call, Insn, Reg, Src, Width};

    fn func(insns: &[Insn]) -> Func {
        Func::new("f", crate::runtime::assign_slots(insns)).unwrap()
    }

    fn mov(dst: Reg, k: i32) -> Insn {
        Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst,
            src: Src::Imm(k),
        }
    }

    #[test]
    fn r0_after_a_call_is_live_only_if_read_before_written() {
        let f = func(&[
            Insn::Call(Call::Local(3)),
            mov(Reg::R0, 1),
            Insn::EXIT,
            Insn::Call(Call::Local(0)),
            Insn::EXIT,
        ]);
        let out = live_out(&f);
        // The first call's r0 is overwritten; the second's is returned.
        assert!(!out[0].contains(Reg::R0));
        assert!(out[3].contains(Reg::R0));
        assert!(out[1].contains(Reg::R0));
    }

    #[test]
    fn without_a_reader_of_the_result_only_inner_uses_keep_r0() {
        let f = func(&[
            mov(Reg::R0, 0),
            Insn::Jmp {
                width: Width::W64,
                cond: crate::insn::JmpCond::Eq,
                dst: Reg::R1,
                src: Src::Imm(0),
                off: 2,
            },
            Insn::Call(Call::Helper(5)),
            mov(Reg::R1, 1),
            Insn::EXIT,
        ]);
        assert!(live_out(&f)[0].contains(Reg::R0));
        assert!(!live_out_with(&f, false)[0].contains(Reg::R0));
    }

    #[test]
    fn a_branch_keeps_what_either_side_reads() {
        let f = func(&[
            Insn::Call(Call::Local(4)),
            Insn::Jmp {
                width: Width::W64,
                cond: crate::insn::JmpCond::Eq,
                dst: Reg::R6,
                src: Src::Imm(0),
                off: 1,
            },
            mov(Reg::R0, 0),
            Insn::EXIT,
        ]);
        let out = live_out(&f);
        // Taken, the jump lands on `exit` with the call's r0.
        assert!(out[0].contains(Reg::R0));
        assert!(out[0].contains(Reg::R6));
    }
}
