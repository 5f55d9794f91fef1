//! A minimal ELF view of a BPF object for tests: function symbols with their instruction slots,
//! the relocation (if any) at each slot, and BPF-to-BPF call targets.
//!
//! It reads the file with the `object` crate directly, not through `opsplit::obj`, so that tests
//! asserting facts about the fixtures have an oracle independent of the library under test.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionIndex, SymbolKind};
use opsplit::insn::{RawInsn, raw_slots};

/// What a relocation at an instruction slot points at.
#[derive(Debug, Clone)]
pub struct RelocTarget {
    /// Symbol name; for a section symbol, the section's name.
    pub symbol: String,
    /// Section holding the symbol, `None` for an undefined (extern) symbol.
    pub section: Option<String>,
    pub section_index: Option<usize>,
    /// Symbol value in bytes within its section (0 for section symbols).
    pub value: u64,
    pub is_section_symbol: bool,
}

impl RelocTarget {
    pub fn is_undefined(&self) -> bool {
        self.section.is_none()
    }
}

/// One function symbol (program or subprogram).
#[derive(Debug, Clone)]
pub struct Func {
    pub name: String,
    pub section: String,
    pub section_index: usize,
    /// Global binding: programs, and global (non-static) subprograms in `.text`.
    pub global: bool,
    /// First slot of the function within its section.
    pub start: usize,
    pub insns: Vec<RawInsn>,
    /// Relocations by slot index *within the function*.
    pub relocs: BTreeMap<usize, RelocTarget>,
}

impl Func {
    /// A program entry point: a global function outside `.text` (libbpf's rule).
    pub fn is_program(&self) -> bool {
        self.global && self.section != ".text"
    }
}

#[derive(Debug)]
pub struct ObjFile {
    pub path: String,
    pub funcs: Vec<Func>,
}

pub const BPF_PSEUDO_CALL: u8 = 1;

impl ObjFile {
    /// Reads an object; any malformation is a test failure naming the file.
    pub fn open(path: &Path) -> ObjFile {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{shown}: cannot read: {e}"));
        let file = object::File::parse(&*bytes).unwrap_or_else(|e| panic!("{shown}: not ELF: {e}"));

        let mut funcs = Vec::new();
        for sym in file.symbols() {
            if sym.kind() != SymbolKind::Text || sym.size() == 0 {
                continue;
            }
            let Some(sec_idx) = sym.section_index() else {
                continue;
            };
            let sec = file
                .section_by_index(sec_idx)
                .unwrap_or_else(|e| panic!("{shown}: symbol section: {e}"));
            let sec_name = sec.name().unwrap_or("?").to_string();
            let data = sec
                .data()
                .unwrap_or_else(|e| panic!("{shown}: {sec_name}: {e}"));
            let (lo, hi) = (
                sym.address() as usize,
                (sym.address() + sym.size()) as usize,
            );
            assert!(
                hi <= data.len() && lo % 8 == 0,
                "{shown}: function {} [{lo}, {hi}) outside {sec_name}",
                sym.name().unwrap_or("?")
            );
            let insns = raw_slots(&data[lo..hi])
                .unwrap_or_else(|n| panic!("{shown}: {sec_name}: {n} bytes is not whole slots"));

            let mut relocs = BTreeMap::new();
            for (off, rel) in sec.relocations() {
                let off = off as usize;
                if off < lo || off >= hi {
                    continue;
                }
                let target = match rel.target() {
                    RelocationTarget::Symbol(si) => {
                        let s = file
                            .symbol_by_index(si)
                            .unwrap_or_else(|e| panic!("{shown}: relocation symbol: {e}"));
                        let sidx = s.section_index();
                        let section = sidx.map(|i| section_name(&file, i));
                        let is_section_symbol = s.kind() == SymbolKind::Section;
                        let symbol = if is_section_symbol {
                            section.clone().unwrap_or_default()
                        } else {
                            s.name().unwrap_or("?").to_string()
                        };
                        RelocTarget {
                            symbol,
                            section,
                            section_index: sidx.map(|i| i.0),
                            value: s.address(),
                            is_section_symbol,
                        }
                    }
                    RelocationTarget::Section(i) => RelocTarget {
                        symbol: section_name(&file, i),
                        section: Some(section_name(&file, i)),
                        section_index: Some(i.0),
                        value: 0,
                        is_section_symbol: true,
                    },
                    _ => continue,
                };
                relocs.insert((off - lo) / 8, target);
            }

            funcs.push(Func {
                name: sym.name().unwrap_or("?").to_string(),
                section: sec_name,
                section_index: sec_idx.0,
                global: sym.is_global(),
                start: lo / 8,
                insns,
                relocs,
            });
        }
        funcs.sort_by_key(|f| (f.section_index, f.start));
        ObjFile { path: shown, funcs }
    }

    pub fn func(&self, name: &str) -> Option<&Func> {
        self.funcs.iter().find(|f| f.name == name)
    }

    pub fn programs(&self) -> impl Iterator<Item = &Func> {
        self.funcs.iter().filter(|f| f.is_program())
    }

    /// The function a BPF-to-BPF call at `slot` of `f` lands in, if that slot is such a call.
    ///
    /// Without a relocation the call is section-relative: target = slot + imm + 1. With one (calls
    /// into another section, or to a global function), libbpf's rule applies: target = symbol
    /// value / 8 + imm + 1 in the symbol's section.
    pub fn call_target(&self, f: &Func, slot: usize) -> Option<&Func> {
        let insn = f.insns.get(slot)?;
        if insn.code != 0x85 || insn.src != BPF_PSEUDO_CALL {
            return None;
        }
        let (sec, target) = match f.relocs.get(&slot) {
            Some(r) => (r.section_index?, (r.value / 8) as i64 + insn.imm as i64 + 1),
            None => (
                f.section_index,
                (f.start + slot) as i64 + insn.imm as i64 + 1,
            ),
        };
        self.funcs
            .iter()
            .find(|g| g.section_index == sec && g.start as i64 == target)
    }
}

fn section_name(file: &object::File<'_>, i: SectionIndex) -> String {
    file.section_by_index(i)
        .ok()
        .and_then(|s| s.name().ok().map(str::to_string))
        .unwrap_or_else(|| format!("#{}", i.0))
}
