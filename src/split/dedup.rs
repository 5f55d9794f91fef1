//! Sharing: a specialized subprogram identical to its original stays shared; identical clones
//! of different ops become one clone; identical per-op programs become one program.

use std::collections::HashMap;

use super::code::{CInsn, FuncRef, Reloc};

/// Content-addressed tables of the functions created so far.
#[derive(Default)]
pub struct Tables {
    /// (original function, code) → index of the clone.
    pub clones: HashMap<(usize, Vec<CInsn>), usize>,
    /// code → index of the per-op program.
    pub mains: HashMap<Vec<CInsn>, usize>,
}

/// Points calls and callback references of `code` at the functions chosen for this op.
pub fn retarget(code: &mut [CInsn], map: &HashMap<usize, FuncRef>) {
    for c in code {
        let r = match &mut c.reloc {
            Some(Reloc::Call(r)) | Some(Reloc::FuncAddr(r)) => r,
            _ => continue,
        };
        if let FuncRef::Orig(f) = *r
            && let Some(to) = map.get(&f)
        {
            *r = *to;
        }
    }
}
