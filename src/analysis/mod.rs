//! Op analysis: which code runs for each sock_ops op, and what it touches.
//!
//! * [`Module`] is the analysis' view of an object: functions with decoded instructions, their
//!   CFGs and what their relocated instructions refer to. Unit tests build one by hand.
//! * [`cfg`](mod@cfg) and [`callgraph`]: basic blocks per function, calls and callbacks across functions.
//! * [`opval`]: the abstract values. The op is not a pattern but a value: every scalar derived
//!   from it carries its concrete value for each of the 256 possible op bytes, and each abstract
//!   state carries the set of ops that can be on that path. A conditional jump on an op-derived
//!   value splits that set exactly, whatever arithmetic (`(op & ~1) == 4`, `(1 << op) & mask`,
//!   `op - 8 < 3`, signed compares, jmp32) produced it.
//! * [`interp`]: the abstract interpreter over CFGs, through spills, calls, callbacks.
//! * [`liveness`]: register liveness, and subprograms whose return value no caller reads.
//! * [`facts`]: per-op results (reachable instructions, ctx fields, helpers, returns) and
//!   [`findings`]: typed migration findings from the op table.

pub mod callgraph;
pub mod cfg;
pub mod facts;
pub mod findings;
pub mod interp;
pub mod liveness;
pub mod opval;

use std::collections::{BTreeMap, BTreeSet};

use crate::btf::CoreReloKind;
use crate::insn::{Insn, SlotInsn};
use crate::obj::{Binding, MapValue, Object, RelocKind, SectionKind, Visibility};

pub use facts::{OpFacts, ProgramFacts, analyze_program};
pub use findings::{Finding, FindingKind, Severity};

/// What a relocated instruction refers to, resolved to module indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// `call` of function `.0`.
    Call(usize),
    /// `ld_imm64` of the address of function `.0` (a callback).
    FuncAddr(usize),
    /// `ld_imm64` of map `.0` ([`Module::maps`]).
    Map(usize),
    /// `ld_imm64` of an address in global data. `.rodata` values are load-time constants
    /// (`const volatile`), so none of them is ever folded.
    Data { section: String },
    /// `call` of a kfunc.
    Kfunc(String),
    /// `ld_imm64` of an extern (`.kconfig` value, `.ksyms` variable, weak kfunc address).
    Extern(String),
}

/// A map, as far as the analysis cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapInfo {
    pub name: String,
    pub map_type: u32,
    /// For `PROG_ARRAY`s: statically initialised slots (index, program function name).
    pub programs: Vec<(u32, String)>,
}

/// A function of the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Func {
    pub name: String,
    pub insns: Vec<SlotInsn>,
    /// A non-static subprogram: the kernel verifies it on its own, with unknown arguments.
    pub global: bool,
    /// Relocated instructions by slot.
    pub refs: BTreeMap<usize, Ref>,
    /// Slots whose immediate libbpf patches at load time (CO-RE existence, size, enum value,
    /// type id relocations): never folded.
    pub load_time_imm: BTreeSet<usize>,
    pub cfg: cfg::Cfg,
}

/// The analysis' view of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub funcs: Vec<Func>,
    pub maps: Vec<MapInfo>,
}

impl Func {
    /// A function from instructions, for tests and generated programs.
    pub fn new(name: &str, insns: Vec<SlotInsn>) -> Result<Func, cfg::CfgError> {
        let cfg = cfg::Cfg::build(&insns)?;
        Ok(Func {
            name: name.to_string(),
            insns,
            global: false,
            refs: BTreeMap::new(),
            load_time_imm: BTreeSet::new(),
            cfg,
        })
    }
}

impl Module {
    /// The view of `obj`. Function indices equal [`Object::functions`] indices.
    pub fn from_object(obj: &Object) -> Result<Module, crate::Error> {
        let maps: Vec<MapInfo> = obj
            .maps
            .iter()
            .map(|m| MapInfo {
                name: m.name.clone(),
                map_type: m.def.map_type,
                programs: m
                    .values
                    .iter()
                    .filter_map(|v| match v {
                        MapValue::Program { index, function } => Some((*index, function.clone())),
                        MapValue::Map { .. } => None,
                    })
                    .collect(),
            })
            .collect();
        let mut funcs = Vec::with_capacity(obj.functions.len());
        for (fid, f) in obj.functions.iter().enumerate() {
            let section = &obj.sections[f.section];
            let cfg = cfg::Cfg::build(&f.insns).map_err(|e| crate::Error::Instruction {
                section: section.name.clone(),
                function: f.name.clone(),
                slot: e.slot,
                message: e.to_string(),
            })?;
            let mut refs = BTreeMap::new();
            for r in &f.relocations {
                let v = match &r.kind {
                    RelocKind::Call { target } => Ref::Call(*target),
                    RelocKind::FuncAddr { target } => Ref::FuncAddr(*target),
                    RelocKind::Map { map } => match obj.maps.iter().position(|m| &m.name == map) {
                        Some(i) => Ref::Map(i),
                        None => continue,
                    },
                    RelocKind::GlobalData { section, .. } => Ref::Data {
                        section: obj.sections[*section].name.clone(),
                    },
                    RelocKind::KfuncCall { name } => Ref::Kfunc(name.clone()),
                    RelocKind::Extern { name, .. } => Ref::Extern(name.clone()),
                };
                refs.insert(r.slot, v);
            }
            // Calls inside one section without a relocation (linked objects) resolve by slot.
            for si in &f.insns {
                if refs.contains_key(&si.slot) {
                    continue;
                }
                if let Some(t) = si.insn.subprog_target(si.slot) {
                    let abs = f.first_slot() as i64 + t;
                    let callee = obj
                        .functions
                        .iter()
                        .position(|g| g.section == f.section && g.first_slot() as i64 == abs);
                    if let Some(c) = callee {
                        let r = if matches!(si.insn, crate::insn::Insn::Call(_)) {
                            Ref::Call(c)
                        } else {
                            Ref::FuncAddr(c)
                        };
                        refs.insert(si.slot, r);
                    }
                }
            }
            let mut load_time_imm = BTreeSet::new();
            if let (Some(btf), Some(ext)) = (&obj.btf, &obj.btf_ext) {
                let first = f.first_slot();
                let end = first + f.slot_count();
                for sec in &ext.core_relo.sections {
                    if btf.strings.get(sec.sec_name_off) != Some(section.name.as_str()) {
                        continue;
                    }
                    for r in &sec.records {
                        let s = (r.insn_off / 8) as usize;
                        if s < first || s >= end {
                            continue;
                        }
                        // A field offset patched into a load or store only moves the access
                        // (the ctx layout is UAPI); anywhere else the immediate is a value
                        // known only at load time.
                        let memory_access = f
                            .insns
                            .binary_search_by_key(&(s - first), |i| i.slot)
                            .ok()
                            .is_some_and(|k| {
                                matches!(
                                    f.insns[k].insn,
                                    Insn::Load { .. }
                                        | Insn::LoadSx { .. }
                                        | Insn::Store { .. }
                                        | Insn::Atomic { .. }
                                )
                            });
                        if r.kind != CoreReloKind::FieldByteOffset || !memory_access {
                            load_time_imm.insert(s - first);
                        }
                    }
                }
            }
            let is_program = obj.programs.iter().any(|p| p.function == fid);
            // libbpf turns hidden global functions into static ones (BTF linkage), so the
            // verifier checks them with their caller's state, like static ones.
            let sym = &obj.symbols[f.symbol];
            let global = !is_program
                && section.kind == SectionKind::Code
                && sym.binding != Binding::Local
                && sym.visibility != Visibility::Hidden;
            funcs.push(Func {
                name: f.name.clone(),
                insns: f.insns.clone(),
                global,
                refs,
                load_time_imm,
                cfg,
            });
        }
        Ok(Module { funcs, maps })
    }
}
