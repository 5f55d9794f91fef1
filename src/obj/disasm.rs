//! Disassembly of an object's functions with what the object knows about them: source lines from
//! BTF line info, symbol headers, branch labels and relocations.
//!
//! The instruction syntax itself is [`crate::insn::disasm`]'s; this module only supplies the
//! annotations, so that `insn` stays free of ELF and BTF.

use std::collections::BTreeMap;

use crate::insn::{Annotations, DisasmOptions, SourceLine, SymbolLabels, disassemble};

use super::{FunctionId, Object, RelocKind};

/// A BTF line info record of one function, resolved to strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionLine {
    /// Slot from the function start.
    pub slot: usize,
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub text: String,
}

impl Object {
    /// Source lines of a function from `.BTF.ext` line info, in slot order. Empty when the object
    /// has no BTF line info ("no line info" is not an error: objects built without `-g`).
    pub fn function_lines(&self, func: FunctionId) -> Vec<FunctionLine> {
        let (Some(btf), Some(ext)) = (&self.btf, &self.btf_ext) else {
            return Vec::new();
        };
        let f = &self.functions[func];
        let sec_name = &self.sections[f.section].name;
        let first = f.first_slot() as u32;
        let end = first + f.slot_count() as u32;
        let mut out = Vec::new();
        for sec in &ext.line_info.sections {
            if btf.strings.get(sec.sec_name_off) != Some(sec_name.as_str()) {
                continue;
            }
            for li in &sec.records {
                let slot = li.insn_slot();
                if slot < first || slot >= end {
                    continue;
                }
                let s = |off| {
                    btf.strings
                        .get_lossy(off)
                        .map(|c| c.into_owned())
                        .unwrap_or_default()
                };
                out.push(FunctionLine {
                    slot: (slot - first) as usize,
                    file: s(li.file_name_off),
                    line: li.line,
                    col: li.col,
                    text: s(li.line_off),
                });
            }
        }
        out.sort_by_key(|l| l.slot);
        out
    }

    /// The function's disassembly in llvm-objdump's syntax, with `; source` lines where BTF line
    /// info exists, `<label>`s on jumps and relocation lines naming what each relocated
    /// instruction refers to (map, global data, callee, kfunc, extern).
    pub fn disassemble_function(&self, func: FunctionId, opts: DisasmOptions) -> String {
        let f = &self.functions[func];
        let lines: BTreeMap<usize, FunctionLine> = self
            .function_lines(func)
            .into_iter()
            .map(|l| (l.slot, l))
            .collect();
        let mut relocs: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for r in &f.relocations {
            relocs
                .entry(r.slot)
                .or_default()
                .push(self.describe_reloc(&r.kind));
        }
        let ann = FunctionAnnotations {
            name: &f.name,
            lines,
            relocs,
            labels: SymbolLabels::new(vec![(0, f.name.clone())]),
        };
        let mut out = String::new();
        disassemble(&mut out, &f.insns, &ann, opts).expect("writing to a String cannot fail");
        out
    }

    fn describe_reloc(&self, kind: &RelocKind) -> String {
        match kind {
            RelocKind::Map { map } => format!("map {map}"),
            RelocKind::GlobalData { section, offset } => {
                format!("{}+{offset:#x}", self.sections[*section].name)
            }
            RelocKind::Call { target } => format!("call {}", self.functions[*target].name),
            RelocKind::FuncAddr { target } => format!("func {}", self.functions[*target].name),
            RelocKind::KfuncCall { name } => format!("kfunc {name}"),
            RelocKind::Extern { name, kind } => format!("extern {name} ({kind:?})"),
        }
    }
}

struct FunctionAnnotations<'a> {
    name: &'a str,
    lines: BTreeMap<usize, FunctionLine>,
    relocs: BTreeMap<usize, Vec<String>>,
    labels: SymbolLabels,
}

impl Annotations for FunctionAnnotations<'_> {
    fn line_at(&self, slot: usize) -> Option<SourceLine<'_>> {
        self.lines.get(&slot).map(|l| SourceLine {
            file: &l.file,
            line: l.line,
            col: l.col,
            text: &l.text,
        })
    }

    fn symbols_at(&self, slot: usize) -> Vec<String> {
        if slot == 0 {
            vec![self.name.to_string()]
        } else {
            Vec::new()
        }
    }

    fn target_label(&self, target_slot: i64) -> Option<String> {
        self.labels.label(target_slot)
    }

    fn relocs_at(&self, slot: usize) -> Vec<String> {
        self.relocs.get(&slot).cloned().unwrap_or_default()
    }
}
