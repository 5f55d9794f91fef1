//! `opsplit dump`: what the object codec reads from an object, for people.

use std::fmt::Write;

use crate::insn::DisasmOptions;
use crate::obj::{MapKind, Object};
use crate::uapi::map_type_name;

#[derive(Debug, Clone, Copy, Default)]
pub struct DumpOptions {
    /// Append every function's disassembly with source lines.
    pub disasm: bool,
}

/// Renders the summary (and optionally the disassembly) of one object.
pub fn render(obj: &Object, opts: DumpOptions) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "license: {}", obj.license.as_deref().unwrap_or("(none)"));
    if let Some(v) = obj.kernel_version {
        let _ = writeln!(w, "version: {v:#x}");
    }
    let _ = writeln!(
        w,
        "btf: {}, btf.ext: {}",
        obj.btf.as_ref().map_or("none".to_string(), |b| format!(
            "{} types",
            b.types.len() - 1
        )),
        match &obj.btf_ext {
            None => "none".to_string(),
            Some(e) => format!(
                "{} func_info, {} line_info, {} core_relo",
                e.func_info.len(),
                e.line_info.len(),
                e.core_relo.len()
            ),
        }
    );
    if !obj.dropped_sections.is_empty() {
        let _ = writeln!(w, "dropped on write: {}", obj.dropped_sections.join(" "));
    }

    let _ = writeln!(w, "\nprograms:");
    for p in &obj.programs {
        let f = &obj.functions[p.function];
        let _ = writeln!(
            w,
            "  {:<24} section {:<20} type {:?}{} insns {}",
            f.name,
            p.section_name,
            p.prog_type,
            if p.is_static { " (static)" } else { "" },
            f.slot_count()
        );
    }
    let subprogs: Vec<_> = obj
        .functions
        .iter()
        .enumerate()
        .filter(|(i, _)| !obj.programs.iter().any(|p| p.function == *i))
        .collect();
    if !subprogs.is_empty() {
        let _ = writeln!(w, "\nsubprograms:");
        for (_, f) in subprogs {
            let _ = writeln!(
                w,
                "  {:<24} section {:<20} insns {}",
                f.name,
                obj.sections[f.section].name,
                f.slot_count()
            );
        }
    }

    if !obj.maps.is_empty() {
        let _ = writeln!(w, "\nmaps:");
    }
    for m in &obj.maps {
        let d = &m.def;
        let kind = match m.kind {
            MapKind::BtfDefined => "btf",
            MapKind::Legacy => "legacy",
            MapKind::GlobalData => "data",
            MapKind::Kconfig => "kconfig",
        };
        let ty = map_type_name(d.map_type)
            .map_or_else(|| format!("type#{}", d.map_type), str::to_string);
        let _ = write!(
            w,
            "  {:<24} {:<7} {:<16} key {:>4} value {:>5} max {:>7}",
            m.name,
            kind,
            ty,
            d.key_size.map_or("-".into(), |k| k.to_string()),
            d.value_size.map_or("-".into(), |v| v.to_string()),
            d.max_entries
        );
        if d.map_flags != 0 {
            let _ = write!(w, " flags {:#x}", d.map_flags);
        }
        let _ = write!(w, " pinning {:?}", d.pinning);
        if !m.values.is_empty() {
            let _ = write!(w, " values {}", m.values.len());
        }
        let _ = writeln!(w);
    }

    if !obj.externs.is_empty() {
        let _ = writeln!(w, "\nexterns:");
    }
    for e in &obj.externs {
        let _ = writeln!(
            w,
            "  {:<24} {:?}{}",
            e.name,
            e.kind,
            if e.weak { " (weak)" } else { "" }
        );
    }

    if opts.disasm {
        for (i, f) in obj.functions.iter().enumerate() {
            let _ = writeln!(
                w,
                "\nDisassembly of {} (section {}):",
                f.name, obj.sections[f.section].name
            );
            if obj.btf_ext.is_none() {
                let _ = writeln!(w, "; no line info (object has no .BTF.ext)");
            }
            w.push_str(&obj.disassemble_function(i, DisasmOptions::default()));
        }
    }
    s
}
