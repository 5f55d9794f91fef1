//! Control-flow graphs of single functions: basic blocks over instruction indices.
//!
//! Jump targets are slots; blocks hold indices into the function's instruction list so that the
//! two-slot `ld_imm64` never needs special casing downstream.

use std::collections::BTreeSet;

use crate::insn::SlotInsn;

/// A basic block: instructions `start..end` (indices into the function's instructions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub start: usize,
    pub end: usize,
    /// Successor blocks: for a conditional jump, the fall-through block first, then the target.
    pub succs: Vec<usize>,
}

/// The CFG of one function. Block 0 is the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cfg {
    pub blocks: Vec<Block>,
    /// Block of each instruction index.
    pub block_of: Vec<usize>,
}

/// A jump that leaves the function or lands inside an `ld_imm64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfgError {
    /// Instruction index of the jump.
    pub index: usize,
    pub slot: usize,
    pub target_slot: i64,
}

impl std::fmt::Display for CfgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "jump at slot {} to slot {}, which is not an instruction of the function",
            self.slot, self.target_slot
        )
    }
}

/// Maps a slot to the index of the instruction starting there.
pub fn index_of_slot(insns: &[SlotInsn], slot: i64) -> Option<usize> {
    let slot = usize::try_from(slot).ok()?;
    insns.binary_search_by_key(&slot, |i| i.slot).ok()
}

impl Cfg {
    /// Builds the CFG. Falling off the end of the function is not an edge (the kernel rejects it).
    pub fn build(insns: &[SlotInsn]) -> Result<Cfg, CfgError> {
        let n = insns.len();
        let mut leaders = BTreeSet::new();
        if n > 0 {
            leaders.insert(0);
        }
        let target_index = |i: usize| -> Result<Option<usize>, CfgError> {
            let si = &insns[i];
            match si.insn.jump_target(si.slot) {
                None => Ok(None),
                Some(t) => index_of_slot(insns, t).map(Some).ok_or(CfgError {
                    index: i,
                    slot: si.slot,
                    target_slot: t,
                }),
            }
        };
        for (i, si) in insns.iter().enumerate() {
            if let Some(t) = target_index(i)? {
                leaders.insert(t);
            }
            if si.insn.ends_block() && i + 1 < n {
                leaders.insert(i + 1);
            }
        }
        let starts: Vec<usize> = leaders.into_iter().collect();
        let mut block_of = vec![0; n];
        let mut blocks = Vec::with_capacity(starts.len());
        for (b, &s) in starts.iter().enumerate() {
            let e = starts.get(b + 1).copied().unwrap_or(n);
            block_of[s..e].fill(b);
            blocks.push(Block {
                start: s,
                end: e,
                succs: Vec::new(),
            });
        }
        for blk in &mut blocks {
            let last = blk.end - 1;
            let insn = &insns[last].insn;
            let mut succs = Vec::new();
            if insn.falls_through() && last + 1 < n {
                succs.push(block_of[last + 1]);
            }
            if let Some(t) = target_index(last)? {
                let tb = block_of[t];
                if !succs.contains(&tb) {
                    succs.push(tb);
                }
            }
            blk.succs = succs;
        }
        Ok(Cfg { blocks, block_of })
    }

    /// Blocks in reverse postorder from the entry (unreachable blocks last, in index order).
    pub fn reverse_postorder(&self) -> Vec<usize> {
        let n = self.blocks.len();
        let mut seen = vec![false; n];
        let mut post = Vec::with_capacity(n);
        if n == 0 {
            return post;
        }
        // Iterative DFS: (block, next successor to visit).
        let mut stack = vec![(0usize, 0usize)];
        seen[0] = true;
        while let Some((b, k)) = stack.pop() {
            if let Some(&s) = self.blocks[b].succs.get(k) {
                stack.push((b, k + 1));
                if !seen[s] {
                    seen[s] = true;
                    stack.push((s, 0));
                }
            } else {
                post.push(b);
            }
        }
        post.reverse();
        post.extend((0..n).filter(|&b| !seen[b]));
        post
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{AluOp, Insn, JmpCond, Reg, Src, Width};

    fn at(insns: Vec<Insn>) -> Vec<SlotInsn> {
        let mut slot = 0;
        insns
            .into_iter()
            .map(|insn| {
                let s = SlotInsn { slot, insn };
                slot += insn.slots();
                s
            })
            .collect()
    }

    #[test]
    fn diamond() {
        let mov = |v| Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst: Reg::R0,
            src: Src::Imm(v),
        };
        let insns = at(vec![
            Insn::Jmp {
                width: Width::W64,
                cond: JmpCond::Eq,
                dst: Reg::R1,
                src: Src::Imm(0),
                off: 2,
            },
            mov(1),
            Insn::Ja { off: 1 },
            mov(2),
            Insn::EXIT,
        ]);
        let cfg = Cfg::build(&insns).unwrap();
        assert_eq!(cfg.blocks.len(), 4);
        assert_eq!(cfg.blocks[0].succs, [1, 2]);
        assert_eq!(cfg.blocks[1].succs, [3]);
        assert_eq!(cfg.blocks[2].succs, [3]);
        assert!(cfg.blocks[3].succs.is_empty());
        assert_eq!(cfg.reverse_postorder()[0], 0);
        assert_eq!(*cfg.reverse_postorder().last().unwrap(), 3);
    }

    #[test]
    fn jump_out_of_function_is_an_error() {
        let insns = at(vec![Insn::Ja { off: 5 }, Insn::EXIT]);
        assert_eq!(Cfg::build(&insns).unwrap_err().target_slot, 6);
    }
}
