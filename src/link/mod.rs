//! Emission of the split form as a standard relocatable BPF object.
//!
//! Starting from the (normalized) input object, every code section is rebuilt from functions:
//! the original ones (a split program's body replaced by its dispatcher) and the new ones (per-op
//! programs in their program's section, cloned subprograms in `.text`). Jumps are re-encoded
//! ([`crate::split::relax`]); relocations, BTF.ext func_info, line_info and CO-RE records follow
//! their instructions; every new function gets a BTF FUNC with its full name; each vtable becomes a
//! BTF-defined `PROG_ARRAY` in `.maps` with `values` and `.rel.maps` entries, so any stock libbpf
//! fills it at load. Maps, global data and programs of other types are carried through unchanged.

use std::collections::{BTreeMap, HashMap};

use crate::Error;
use crate::btf::{
    CoreRelo, ExtSection, FuncInfo, FuncLinkage, IntEncoding, Kind, LineInfo, TypeKind, VarLinkage,
    VarSecinfo,
};
use crate::insn::{Call, Insn, LdImm64, RawInsn};
use crate::obj::{
    Binding, Object, Relocation, Section, SectionKind, Symbol, SymbolKind, SymbolPlace, Visibility,
    r_type,
};
use crate::split::code::{CInsn, FuncRef, Reloc};
use crate::split::{SplitPlan, relax};

const SHF_WRITE: u64 = 1;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;
const SHT_PROGBITS: u32 = 1;

fn werr(m: String) -> Error {
    Error::Write(m)
}

fn section_id(out: &mut Object, name: &str, kind: SectionKind, flags: u64) -> usize {
    if let Some((id, _)) = out.section_by_name(name) {
        return id;
    }
    out.sections.push(Section {
        name: name.to_string(),
        kind,
        sh_type: SHT_PROGBITS,
        flags,
        align: 8,
        entsize: 0,
        data: Vec::new(),
        size: 0,
        relocations: Vec::new(),
    });
    out.sections.len() - 1
}

/// Original BTF.ext records by (section name, slot in the section).
struct ExtIndex {
    func: HashMap<(String, u32), u32>,
    line: HashMap<(String, u32), LineInfo>,
    core: HashMap<(String, u32), Vec<CoreRelo>>,
}

fn ext_index(obj: &Object) -> Option<ExtIndex> {
    let (btf, ext) = (obj.btf.as_ref()?, obj.btf_ext.as_ref()?);
    let name = |off: u32| btf.strings.get(off).unwrap_or_default().to_string();
    let mut ix = ExtIndex {
        func: HashMap::new(),
        line: HashMap::new(),
        core: HashMap::new(),
    };
    for s in &ext.func_info.sections {
        for r in &s.records {
            ix.func
                .insert((name(s.sec_name_off), r.insn_slot()), r.type_id);
        }
    }
    for s in &ext.line_info.sections {
        for r in &s.records {
            ix.line
                .entry((name(s.sec_name_off), r.insn_slot()))
                .or_insert(*r);
        }
    }
    for s in &ext.core_relo.sections {
        for r in &s.records {
            ix.core
                .entry((name(s.sec_name_off), r.insn_slot()))
                .or_default()
                .push(*r);
        }
    }
    Some(ix)
}

/// Adds the vtable map definitions and returns their symbols by name.
fn add_vtables(
    out: &mut Object,
    plan: &SplitPlan,
    new_syms: &[usize],
) -> Result<HashMap<String, usize>, Error> {
    let mut syms = HashMap::new();
    if plan.vtables.is_empty() {
        return Ok(syms);
    }
    let maps = section_id(out, ".maps", SectionKind::Maps, SHF_ALLOC | SHF_WRITE);
    let btf = out
        .btf
        .as_mut()
        .ok_or_else(|| werr("the object has no .BTF for the vtable map".into()))?;
    let int = btf.find_or_add_int("int", 4, IntEncoding::Signed)?;
    let index = btf.array_index_type()?;
    let void_ptr = btf.find_or_add_ptr(0);
    let proto = btf.add_func_proto(int, &[("ctx", void_ptr)])?;
    let proto_ptr = btf.add_ptr(proto);
    for vt in &plan.vtables {
        let mut uint = |v: u32| {
            let a = btf.add_array(int, index, v);
            btf.add_ptr(a)
        };
        let ty = uint(crate::btf::MAP_TYPE_PROG_ARRAY);
        let max = uint(vt.max_entries);
        let ks = uint(4);
        let values = btf.add_array(proto_ptr, index, 0);
        let st = btf.add_struct(
            "",
            24,
            &[
                ("type", ty, 0),
                ("max_entries", max, 64),
                ("key_size", ks, 128),
                ("values", values, 192),
            ],
        )?;
        let var = btf.add_var(&vt.name, st, VarLinkage::Global)?;
        let sec = &mut out.sections[maps];
        let offset = sec.data.len().next_multiple_of(8) as u64;
        let slots = vt.slots.iter().map(|(s, _)| *s + 1).max().unwrap_or(0);
        let size = 24 + 8 * u64::from(slots);
        sec.data.resize((offset + size) as usize, 0);
        sec.size = sec.data.len() as u64;
        btf.add_to_datasec(
            ".maps",
            VarSecinfo {
                type_id: var,
                offset: offset as u32,
                size: size as u32,
            },
        )?;
        for &(slot, fi) in &vt.slots {
            sec.relocations.push(Relocation {
                offset: offset + 24 + 8 * u64::from(slot),
                symbol: new_syms[fi],
                r_type: r_type::R_BPF_64_ABS64,
            });
        }
        out.symbols.push(Symbol {
            name: vt.name.clone(),
            place: SymbolPlace::Section(maps),
            value: offset,
            size,
            binding: Binding::Global,
            kind: SymbolKind::Object,
            visibility: Visibility::Default,
        });
        syms.insert(vt.name.clone(), out.symbols.len() - 1);
    }
    let total = out.sections[maps].data.len() as u32;
    if let Some((ds, d)) = btf.find_datasec(".maps")
        && d.size != 0
        && let TypeKind::Datasec(d) = &mut btf.types[ds as usize].kind
    {
        d.size = total;
    }
    Ok(syms)
}

/// Emits the split form of `obj` (the object [`crate::split::split`] planned for).
pub fn emit(obj: &Object, plan: &SplitPlan) -> Result<Vec<u8>, Error> {
    let mut out = obj.clone();
    let ext = ext_index(obj);
    // Sections and symbols of the new functions.
    let mut new_syms = Vec::with_capacity(plan.new_funcs.len());
    for nf in &plan.new_funcs {
        let sec = section_id(
            &mut out,
            &nf.section,
            SectionKind::Code,
            SHF_ALLOC | SHF_EXECINSTR,
        );
        let binding = if nf.is_program {
            Binding::Global
        } else {
            obj.symbols[obj.functions[nf.source].symbol].binding
        };
        out.symbols.push(Symbol {
            name: nf.name.clone(),
            place: SymbolPlace::Section(sec),
            value: 0,
            size: 0,
            binding,
            kind: SymbolKind::Func,
            visibility: Visibility::Default,
        });
        new_syms.push(out.symbols.len() - 1);
    }
    let vt_syms = add_vtables(&mut out, plan, &new_syms)?;

    // BTF FUNCs of the new functions, from their source's FUNC.
    let mut new_func_type: Vec<Option<u32>> = vec![None; plan.new_funcs.len()];
    if let Some(btf) = out.btf.as_mut() {
        for (i, nf) in plan.new_funcs.iter().enumerate() {
            let src = &obj.functions[nf.source];
            let Some(fid) = btf.find_by_name(&src.name, Kind::Func) else {
                continue;
            };
            let TypeKind::Func { proto, linkage } = btf.types[fid as usize].kind else {
                continue;
            };
            let linkage = if nf.is_program {
                FuncLinkage::Global
            } else {
                linkage
            };
            new_func_type[i] = Some(btf.add_func(&nf.name, proto, linkage)?);
        }
    }

    // Functions per code section, in output order.
    let mut per_section: BTreeMap<usize, Vec<(FuncRef, Vec<CInsn>)>> = BTreeMap::new();
    for (fid, f) in obj.functions.iter().enumerate() {
        let code = match plan.replaced.get(&fid) {
            Some(c) => c.clone(),
            None => crate::split::code::from_function(obj, fid)?,
        };
        per_section
            .entry(f.section)
            .or_default()
            .push((FuncRef::Orig(fid), code));
    }
    for (i, nf) in plan.new_funcs.iter().enumerate() {
        let sec = out
            .section_by_name(&nf.section)
            .map(|(id, _)| id)
            .expect("created above");
        per_section
            .entry(sec)
            .or_default()
            .push((FuncRef::New(i), nf.code.clone()));
    }
    let name_of = |r: FuncRef| match r {
        FuncRef::Orig(f) => obj.functions[f].name.clone(),
        FuncRef::New(i) => plan.new_funcs[i].name.clone(),
    };
    // Layout: byte offset of every function.
    let mut encoded: BTreeMap<FuncRef, (usize, u64, relax::Encoded)> = BTreeMap::new();
    for (&sec, funcs) in &per_section {
        let mut off = 0u64;
        for (r, code) in funcs {
            let e = relax::encode(code)
                .map_err(|m| werr(format!("function `{}`: {m}", name_of(*r))))?;
            let len = (e.slots * RawInsn::SIZE) as u64;
            encoded.insert(*r, (sec, off, e));
            off += len;
        }
    }
    let text_sym = |out: &mut Object, sec: usize| -> usize {
        if let Some(i) = out
            .symbols
            .iter()
            .position(|s| s.kind == SymbolKind::Section && s.place == SymbolPlace::Section(sec))
        {
            return i;
        }
        out.symbols.push(Symbol {
            name: String::new(),
            place: SymbolPlace::Section(sec),
            value: 0,
            size: 0,
            binding: Binding::Local,
            kind: SymbolKind::Section,
            visibility: Visibility::Default,
        });
        out.symbols.len() - 1
    };
    let sym_of = |r: FuncRef| match r {
        FuncRef::Orig(f) => obj.functions[f].symbol,
        FuncRef::New(i) => new_syms[i],
    };

    let mut func_groups: BTreeMap<String, Vec<FuncInfo>> = BTreeMap::new();
    let mut line_groups: BTreeMap<String, Vec<LineInfo>> = BTreeMap::new();
    let mut core_groups: BTreeMap<String, Vec<CoreRelo>> = BTreeMap::new();
    for (&sec, funcs) in &per_section {
        let sec_name = out.sections[sec].name.clone();
        let mut data = Vec::new();
        let mut relocs = Vec::new();
        for (r, code) in funcs {
            let (_, off, e) = &encoded[r];
            let (off, mut insns) = (*off, e.insns.clone());
            let base_slot = (off / 8) as u32;
            // Relocations and immediates.
            for (i, c) in code.iter().enumerate() {
                let Some(rel) = &c.reloc else { continue };
                let at = e.index_of[i];
                let (symbol, insn) = match rel {
                    Reloc::Symbol(s) => (*s, insns[at]),
                    Reloc::NewSymbol(n) => (
                        *vt_syms
                            .get(n)
                            .ok_or_else(|| werr(format!("no symbol `{n}` for a relocation")))?,
                        insns[at],
                    ),
                    Reloc::Call(t) => (sym_of(*t), Insn::Call(Call::Local(-1))),
                    Reloc::FuncAddr(t) => {
                        let (tsec, toff, _) = encoded.get(t).ok_or_else(|| {
                            werr(format!("callback `{}` not emitted", name_of(*t)))
                        })?;
                        let s = text_sym(&mut out, *tsec);
                        let Insn::LdImm64 { dst, .. } = insns[at] else {
                            return Err(werr("function address on a non-ld_imm64".into()));
                        };
                        (
                            s,
                            Insn::LdImm64 {
                                dst,
                                value: LdImm64::Imm(*toff as i64),
                            },
                        )
                    }
                };
                insns[at] = insn;
                relocs.push(Relocation {
                    offset: off + (e.slot_of[i] * RawInsn::SIZE) as u64,
                    symbol,
                    r_type: if matches!(insn, Insn::Call(_)) {
                        r_type::R_BPF_64_32
                    } else {
                        r_type::R_BPF_64_64
                    },
                });
            }
            data.extend_from_slice(&crate::insn::encode(&insns));
            let s = &mut out.symbols[sym_of(*r)];
            s.value = off;
            s.size = (e.slots * RawInsn::SIZE) as u64;
            // BTF.ext records.
            let Some(ix) = &ext else { continue };
            let source = match r {
                FuncRef::Orig(f) => *f,
                FuncRef::New(i) => plan.new_funcs[*i].source,
            };
            let src_fn = &obj.functions[source];
            let src_sec = obj.sections[src_fn.section].name.clone();
            let type_id = match r {
                FuncRef::Orig(f) => ix
                    .func
                    .get(&(src_sec.clone(), obj.functions[*f].first_slot() as u32))
                    .copied(),
                FuncRef::New(i) => new_func_type[*i],
            };
            if let Some(type_id) = type_id {
                let mut fi = FuncInfo {
                    insn_off: 0,
                    type_id,
                };
                fi.set_insn_slot(base_slot);
                func_groups.entry(sec_name.clone()).or_default().push(fi);
            }
            let mut lines: Vec<LineInfo> = Vec::new();
            for (i, c) in code.iter().enumerate() {
                let Some((of, oslot)) = c.origin else {
                    continue;
                };
                let ofn = &obj.functions[of];
                let key = (
                    obj.sections[ofn.section].name.clone(),
                    (ofn.first_slot() + oslot) as u32,
                );
                let slot = base_slot + e.slot_of[i] as u32;
                if let Some(l) = ix.line.get(&key) {
                    let mut l = *l;
                    l.set_insn_slot(slot);
                    lines.push(l);
                }
                // A rewritten instruction (an op read that became a constant) loses its CO-RE
                // records: libbpf would refuse to patch a move.
                let same = ofn
                    .insns
                    .iter()
                    .find(|si| si.slot == oslot)
                    .is_some_and(|si| si.insn == c.insn);
                if same && let Some(cs) = ix.core.get(&key) {
                    for c in cs {
                        let mut c = *c;
                        c.set_insn_slot(slot);
                        core_groups.entry(sec_name.clone()).or_default().push(c);
                    }
                }
            }
            // The kernel wants a line record at every function start.
            if lines.first().is_none_or(|l| l.insn_slot() != base_slot) {
                let first = lines.first().copied().or_else(|| {
                    ix.line
                        .get(&(src_sec.clone(), src_fn.first_slot() as u32))
                        .copied()
                });
                if let Some(mut l) = first {
                    l.set_insn_slot(base_slot);
                    lines.insert(0, l);
                }
            }
            line_groups
                .entry(sec_name.clone())
                .or_default()
                .extend(lines);
        }
        let s = &mut out.sections[sec];
        s.size = data.len() as u64;
        s.data = data;
        s.relocations = relocs;
    }
    if ext.is_some()
        && let (Some(btf), Some(bext)) = (out.btf.as_mut(), out.btf_ext.as_mut())
    {
        fn groups<T>(
            btf: &mut crate::btf::Btf,
            g: BTreeMap<String, Vec<T>>,
        ) -> Result<Vec<ExtSection<T>>, Error> {
            let mut v = Vec::new();
            for (name, records) in g {
                let mut s = ExtSection::new(btf.add_string(&name)?);
                s.records = records;
                v.push(s);
            }
            Ok(v)
        }
        bext.func_info.sections = groups(btf, func_groups)?;
        bext.line_info.sections = groups(btf, line_groups)?;
        bext.core_relo.sections = groups(btf, core_groups)?;
        if bext.core_relo.record_size.is_none() && !bext.core_relo.sections.is_empty() {
            bext.core_relo.record_size = Some(16);
        }
    }
    if let Some(btf) = out.btf.as_mut() {
        btf.validate()?;
    }
    out.functions.clear();
    out.reanalyze()?;
    out.write()
}
