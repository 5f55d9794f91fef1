//! The code form the split pass works on: instructions with jump targets as indices (not
//! offsets), relocations attached to the instruction they patch, and the original position each
//! instruction came from (line info and CO-RE records follow it).

use crate::Error;
use crate::analysis::cfg::index_of_slot;
use crate::insn::{Call, Insn};
use crate::obj::{FunctionId, Object, RelocKind, SymbolId};

/// A function of the output: an original one, or one the split pass creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FuncRef {
    Orig(FunctionId),
    /// Index into [`super::SplitPlan::new_funcs`].
    New(usize),
}

/// What an instruction's relocation refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reloc {
    /// An existing symbol; the instruction keeps its implicit addend.
    Symbol(SymbolId),
    /// A symbol the link step creates (a vtable map), by name.
    NewSymbol(String),
    /// BPF-to-BPF call.
    Call(FuncRef),
    /// `ld_imm64` of a function's address (a callback).
    FuncAddr(FuncRef),
}

/// One instruction of a function being built.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CInsn {
    /// Jump offsets in here are meaningless: `target` decides.
    pub insn: Insn,
    /// Jump target: index into the same function's instructions.
    pub target: Option<usize>,
    pub reloc: Option<Reloc>,
    /// Original function and slot, when the instruction comes from the input.
    pub origin: Option<(FunctionId, usize)>,
}

impl CInsn {
    pub fn new(insn: Insn) -> CInsn {
        CInsn {
            insn,
            target: None,
            reloc: None,
            origin: None,
        }
    }

    pub fn jump(insn: Insn, target: usize) -> CInsn {
        CInsn {
            insn,
            target: Some(target),
            reloc: None,
            origin: None,
        }
    }
}

/// The instructions of original function `fid`, unchanged.
pub fn from_function(obj: &Object, fid: FunctionId) -> Result<Vec<CInsn>, Error> {
    let f = &obj.functions[fid];
    let bad = |slot: usize, message: String| Error::Instruction {
        section: obj.sections[f.section].name.clone(),
        function: f.name.clone(),
        slot,
        message,
    };
    let mut out = Vec::with_capacity(f.insns.len());
    for si in &f.insns {
        let target =
            match si.insn.jump_target(si.slot) {
                Some(t) => Some(index_of_slot(&f.insns, t).ok_or_else(|| {
                    bad(si.slot, format!("jump to slot {t} outside the function"))
                })?),
                None => None,
            };
        let reloc = match f.relocations.iter().find(|r| r.slot == si.slot) {
            Some(r) => Some(match r.kind {
                RelocKind::Call { target } => Reloc::Call(FuncRef::Orig(target)),
                RelocKind::FuncAddr { target } => Reloc::FuncAddr(FuncRef::Orig(target)),
                _ => Reloc::Symbol(r.symbol),
            }),
            // A call inside one section without a relocation: resolve it by slot.
            None => match si.insn {
                Insn::Call(Call::Local(_)) | Insn::LdImm64 { .. } => {
                    match si.insn.subprog_target(si.slot) {
                        Some(t) => {
                            let abs = f.first_slot() as i64 + t;
                            let g = obj
                                .functions
                                .iter()
                                .position(|g| {
                                    g.section == f.section && g.first_slot() as i64 == abs
                                })
                                .ok_or_else(|| {
                                    bad(si.slot, "call target is not a function start".into())
                                })?;
                            Some(if matches!(si.insn, Insn::Call(_)) {
                                Reloc::Call(FuncRef::Orig(g))
                            } else {
                                Reloc::FuncAddr(FuncRef::Orig(g))
                            })
                        }
                        None => None,
                    }
                }
                _ => None,
            },
        };
        out.push(CInsn {
            insn: si.insn,
            target,
            reloc,
            origin: Some((fid, si.slot)),
        });
    }
    Ok(out)
}

/// Removes the instructions marked in `drop`, retargeting jumps to the first kept instruction at
/// or after their old target. Only instructions that fall through without effect may be dropped.
pub fn remove(code: &mut Vec<CInsn>, drop: &[bool]) {
    let n = code.len();
    let mut next_kept = vec![0usize; n + 1];
    let mut new_index = vec![0usize; n];
    let kept = drop.iter().filter(|d| !**d).count();
    next_kept[n] = kept;
    let mut k = kept;
    for i in (0..n).rev() {
        if !drop[i] {
            k -= 1;
            new_index[i] = k;
        }
        next_kept[i] = if drop[i] {
            next_kept[i + 1]
        } else {
            new_index[i]
        };
    }
    let old = std::mem::take(code);
    for (i, mut c) in old.into_iter().enumerate() {
        if drop[i] {
            continue;
        }
        if let Some(t) = c.target {
            c.target = Some(next_kept[t]);
        }
        code.push(c);
    }
}
