//! Call graph across subprograms: BPF-to-BPF calls and function addresses (callbacks handed to
//! helpers such as `bpf_loop`).

use std::collections::BTreeSet;

use super::{Module, Ref};

/// How a function refers to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKind {
    /// `call` of a subprogram.
    Call,
    /// `ld_imm64` of its address: a callback handed to a helper.
    Callback,
}

/// One reference from `caller` (at `slot`) to `callee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Edge {
    pub caller: usize,
    pub slot: usize,
    pub callee: usize,
    pub kind: EdgeKind,
}

/// Every edge of the module, by caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallGraph {
    pub edges: Vec<Vec<Edge>>,
}

impl CallGraph {
    pub fn build(m: &Module) -> CallGraph {
        let edges = m
            .funcs
            .iter()
            .enumerate()
            .map(|(caller, f)| {
                f.refs
                    .iter()
                    .filter_map(|(&slot, r)| match *r {
                        Ref::Call(callee) => Some(Edge {
                            caller,
                            slot,
                            callee,
                            kind: EdgeKind::Call,
                        }),
                        Ref::FuncAddr(callee) => Some(Edge {
                            caller,
                            slot,
                            callee,
                            kind: EdgeKind::Callback,
                        }),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        CallGraph { edges }
    }

    /// Functions reachable from `root` through calls and callbacks, `root` included, sorted.
    pub fn reachable_from(&self, root: usize) -> Vec<usize> {
        let mut seen = BTreeSet::from([root]);
        let mut todo = vec![root];
        while let Some(f) = todo.pop() {
            for e in &self.edges[f] {
                if seen.insert(e.callee) {
                    todo.push(e.callee);
                }
            }
        }
        seen.into_iter().collect()
    }

    /// A call cycle reachable from `root` (BPF forbids recursion), as a list of functions.
    pub fn find_cycle(&self, root: usize) -> Option<Vec<usize>> {
        fn dfs(
            g: &CallGraph,
            f: usize,
            path: &mut Vec<usize>,
            done: &mut BTreeSet<usize>,
        ) -> Option<Vec<usize>> {
            if let Some(p) = path.iter().position(|&x| x == f) {
                return Some(path[p..].to_vec());
            }
            if done.contains(&f) {
                return None;
            }
            path.push(f);
            for e in &g.edges[f] {
                if e.kind == EdgeKind::Call
                    && let Some(c) = dfs(g, e.callee, path, done)
                {
                    return Some(c);
                }
            }
            path.pop();
            done.insert(f);
            None
        }
        dfs(self, root, &mut Vec::new(), &mut BTreeSet::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Func;
    use crate::insn::{Call, Insn, SlotInsn};

    fn f(name: &str, calls: &[(usize, Ref)]) -> Func {
        let insns = (0..4)
            .map(|slot| SlotInsn {
                slot,
                insn: if slot < 3 {
                    Insn::Call(Call::Local(-1))
                } else {
                    Insn::EXIT
                },
            })
            .collect();
        let mut f = Func::new(name, insns).unwrap();
        for (slot, r) in calls {
            f.refs.insert(*slot, r.clone());
        }
        f
    }

    #[test]
    fn reachability_and_cycles() {
        let m = Module {
            funcs: vec![
                f("a", &[(0, Ref::Call(1)), (1, Ref::FuncAddr(2))]),
                f("b", &[]),
                f("cb", &[(0, Ref::Call(1))]),
                f("unused", &[(0, Ref::Call(3))]),
            ],
            maps: vec![],
        };
        let g = CallGraph::build(&m);
        assert_eq!(g.reachable_from(0), [0, 1, 2]);
        assert_eq!(g.edges[0][1].kind, EdgeKind::Callback);
        assert_eq!(g.find_cycle(0), None);
        assert_eq!(g.find_cycle(3), Some(vec![3]));
    }
}
