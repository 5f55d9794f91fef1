//! `opsplit inspect`: what every op does in every sock_ops program of an object, which
//! `bpf_tcp_ops` member takes it, and what cannot move as is. `--json` follows
//! `docs/INSPECT_JSON.md`.

use std::fmt::Write;

use serde::Serialize;

use crate::analysis::facts::{Env, OpFacts, ProgramFacts, analyze_program};
use crate::analysis::{Finding, Module};
use crate::insn::{DisasmOptions, write_insn};
use crate::obj::{Object, ProgramType};
use crate::optable;

/// The version of the JSON document. Bump it on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Default)]
pub struct InspectOptions {
    /// Only the program with this name.
    pub program: Option<String>,
    /// Only this op (0..=255; above 20 selects the other ops).
    pub op: Option<u8>,
    /// Append each function's instructions with the ops that run them.
    pub disasm: bool,
}

/// One input file in the JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub license: Option<String>,
    /// Why the file could not be read; its programs are then missing.
    pub error: Option<String>,
}

/// One program in the JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramReport {
    pub file: String,
    pub name: String,
    pub section: String,
    #[serde(rename = "type")]
    pub ty: String,
    /// Whether the op analysis ran (sock_ops programs only).
    pub analyzed: bool,
    /// Why the analysis failed.
    pub error: Option<String>,
    pub functions: Vec<String>,
    pub own_behaviour: Vec<u8>,
    pub shared_default: Vec<u8>,
    pub findings: Vec<Finding>,
    pub ops: Vec<OpFacts>,
    /// Per function: instructions with the ops that run them (`--disasm` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disasm: Option<Vec<FunctionDisasm>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FunctionDisasm {
    pub function: String,
    pub insns: Vec<DisasmLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DisasmLine {
    pub slot: usize,
    pub text: String,
    /// Ops 0..=20 that run the instruction, plus `other` for 21..=255.
    pub ops: String,
}

/// The whole JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub files: Vec<FileReport>,
    pub programs: Vec<ProgramReport>,
}

/// Problems that make the exit code 1.
pub fn has_errors(r: &Report) -> bool {
    r.files.iter().any(|f| f.error.is_some()) || r.programs.iter().any(|p| p.error.is_some())
}

/// `SockOps` → `sock_ops`.
pub fn type_name(t: &ProgramType) -> String {
    if let ProgramType::Unknown(_) = t {
        return "unknown".into();
    }
    let d = format!("{t:?}");
    let mut s = String::new();
    for (i, c) in d.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// Inspects one parsed object.
pub fn inspect_object(path: &str, obj: &Object, opts: &InspectOptions) -> Vec<ProgramReport> {
    let module = Module::from_object(obj);
    let env = Env::from_object(obj);
    let mut out = Vec::new();
    for p in &obj.programs {
        let f = &obj.functions[p.function];
        if opts.program.as_ref().is_some_and(|n| n != &f.name) {
            continue;
        }
        let mut r = ProgramReport {
            file: path.to_string(),
            name: f.name.clone(),
            section: p.section_name.clone(),
            ty: type_name(&p.prog_type),
            analyzed: false,
            error: None,
            functions: Vec::new(),
            own_behaviour: Vec::new(),
            shared_default: Vec::new(),
            findings: Vec::new(),
            ops: Vec::new(),
            disasm: None,
        };
        if p.prog_type == ProgramType::SockOps {
            let res = module
                .as_ref()
                .map_err(|e| e.to_string())
                .and_then(|m| analyze_program(m, p.function, &env).map(|facts| (m, facts)));
            match res {
                Ok((m, facts)) => fill(&mut r, m, &env, facts, opts),
                Err(e) => r.error = Some(format!("program `{}`: {e}", f.name)),
            }
        }
        out.push(r);
    }
    out
}

fn wanted(opts: &InspectOptions, o: &OpFacts) -> bool {
    match opts.op {
        None => true,
        Some(k) if k < optable::OP_COUNT => o.op == Some(k),
        Some(_) => o.op.is_none(),
    }
}

fn fill(r: &mut ProgramReport, m: &Module, env: &Env, facts: ProgramFacts, opts: &InspectOptions) {
    r.analyzed = true;
    r.functions = facts.functions.clone();
    r.own_behaviour = facts.own_behaviour.clone();
    r.shared_default = facts.shared_default.clone();
    r.findings = facts.findings.clone();
    if opts.disasm {
        r.disasm = Some(disasm(m, env, &facts, opts));
    }
    r.ops = facts.ops.into_iter().filter(|o| wanted(opts, o)).collect();
}

/// `1 2 3 5` → `1-3,5`.
fn ranges(v: &[u8]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if j > i {
            format!("{}-{}", v[i], v[j])
        } else {
            v[i].to_string()
        });
        i = j + 1;
    }
    out.join(",")
}

fn disasm(
    m: &Module,
    env: &Env,
    facts: &ProgramFacts,
    opts: &InspectOptions,
) -> Vec<FunctionDisasm> {
    let other = crate::analysis::facts::other_ops();
    let mut out = Vec::new();
    for name in &facts.functions {
        let Some(fid) = m.funcs.iter().position(|f| &f.name == name) else {
            continue;
        };
        let f = &m.funcs[fid];
        let lines = env.lines.get(fid);
        let mut insns = Vec::new();
        let mut li = 0;
        for (i, si) in f.insns.iter().enumerate() {
            let r = facts.reach[fid][i];
            let keep = match opts.op {
                None => true,
                Some(k) if k < optable::OP_COUNT => r.contains(k),
                Some(_) => !r.inter(other).is_empty(),
            };
            let mut text = String::new();
            if let Some(lines) = lines {
                while li < lines.len() && lines[li].slot <= si.slot {
                    if lines[li].slot == si.slot && keep {
                        let _ = writeln!(text, "; {}", lines[li].text.trim());
                    }
                    li += 1;
                }
            }
            if !keep {
                continue;
            }
            let _ = write_insn(&mut text, &si.insn, DisasmOptions::default(), None);
            let mut ops: Vec<u8> = (0..optable::OP_COUNT).filter(|&o| r.contains(o)).collect();
            let mut s = ranges(&ops);
            if !r.inter(other).is_empty() {
                if !s.is_empty() {
                    s.push(',');
                }
                s.push_str("other");
            }
            if r.is_empty() {
                s = "unreachable".into();
            }
            ops.clear();
            insns.push(DisasmLine {
                slot: si.slot,
                text,
                ops: s,
            });
        }
        out.push(FunctionDisasm {
            function: name.clone(),
            insns,
        });
    }
    out
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

fn values(v: &[crate::analysis::facts::Value]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn render_op(w: &mut String, o: &OpFacts, title: &str) {
    let _ = writeln!(
        w,
        "  {title}: {} insns -> {}",
        o.insns,
        o.member.map_or_else(
            || match o.op {
                Some(0) => "never invoked".to_string(),
                Some(_) => "residual sock_ops".to_string(),
                None => "no such op".to_string(),
            },
            |m| format!("bpf_tcp_ops.{m}")
        )
    );
    let _ = writeln!(w, "      reads:   {}", list(&o.fields_read));
    let _ = writeln!(w, "      writes:  {}", list(&o.fields_written));
    let mut calls = o.helpers.clone();
    calls.extend(o.kfuncs.iter().map(|k| format!("{k} (kfunc)")));
    let _ = writeln!(w, "      calls:   {}", list(&calls));
    let _ = writeln!(
        w,
        "      reply:   {}   returns: {}",
        values(&o.reply),
        values(&o.returns)
    );
    for f in &o.findings {
        let _ = writeln!(w, "      {f}");
    }
}

/// Findings of the ops that take the default path but get a member (their code moves too), once
/// per instruction with the ops they concern: the text output does not list those ops one by one.
fn render_default_findings(w: &mut String, p: &ProgramReport, opts: &InspectOptions) {
    // Same finding (message included: it names the op's member) → the ops it concerns.
    let mut by: Vec<(&Finding, Vec<u8>)> = Vec::new();
    for o in &p.ops {
        let Some(k) = o.op else { continue };
        if !o.default_path || o.member.is_none() || opts.op == Some(k) {
            continue;
        }
        for f in &o.findings {
            match by.iter_mut().find(|(g, _)| *g == f) {
                Some((_, ops)) => ops.push(k),
                None => by.push((f, vec![k])),
            }
        }
    }
    if by.is_empty() {
        return;
    }
    by.sort_by(|a, b| a.0.cmp(b.0));
    let _ = writeln!(w, "  findings of ops on the default path:");
    for (f, ops) in &by {
        let _ = writeln!(w, "      ops {}: {f}", ranges(ops));
    }
}

/// The human-readable report.
pub fn render_text(r: &Report, opts: &InspectOptions) -> String {
    let mut w = String::new();
    for f in &r.files {
        let _ = writeln!(
            w,
            "== {} (license {})",
            f.path,
            f.license.as_deref().unwrap_or("none")
        );
        if let Some(e) = &f.error {
            let _ = writeln!(w, "  error: {e}");
            continue;
        }
        for p in r.programs.iter().filter(|p| p.file == f.path) {
            let _ = writeln!(
                w,
                "program {} (section {}, type {})",
                p.name, p.section, p.ty
            );
            if let Some(e) = &p.error {
                let _ = writeln!(w, "  error: {e}");
                continue;
            }
            if !p.analyzed {
                let _ = writeln!(w, "  not a sock_ops program: not analyzed");
                continue;
            }
            let _ = writeln!(w, "  functions: {}", p.functions.join(", "));
            let _ = writeln!(
                w,
                "  own behaviour: {}",
                if p.own_behaviour.is_empty() {
                    "none".to_string()
                } else {
                    p.own_behaviour
                        .iter()
                        .map(|&o| {
                            format!("{o} {}", optable::op_info(o).map_or("", |i| i.short_name()))
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
            let _ = writeln!(
                w,
                "  default path: ops {} and 21-255",
                if p.shared_default.is_empty() {
                    "none".to_string()
                } else {
                    ranges(&p.shared_default)
                }
            );
            for f in &p.findings {
                let _ = writeln!(w, "  {f}");
            }
            for o in &p.ops {
                let title = match o.op {
                    Some(k) if o.default_path && opts.op != Some(k) => continue,
                    Some(k) => format!("op {k} {}", o.name),
                    None => "default path (other ops)".to_string(),
                };
                render_op(&mut w, o, &title);
            }
            render_default_findings(&mut w, p, opts);
            if let Some(d) = &p.disasm {
                for fd in d {
                    let _ = writeln!(w, "  disassembly of {}:", fd.function);
                    for l in &fd.insns {
                        let mut text = l.text.lines().peekable();
                        while let Some(t) = text.next() {
                            if text.peek().is_some() {
                                let _ = writeln!(w, "         {t}");
                            } else {
                                let _ = writeln!(w, "    {:>4}: {:<44} ; ops {}", l.slot, t, l.ops);
                            }
                        }
                    }
                }
            }
        }
    }
    w
}

/// Reads and inspects files; `paths` are already expanded.
pub fn run(paths: &[std::path::PathBuf], opts: &InspectOptions) -> Report {
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        files: Vec::new(),
        programs: Vec::new(),
    };
    for p in paths {
        let path = p.display().to_string();
        match super::read_object(p) {
            Ok(obj) => {
                report.files.push(FileReport {
                    path: path.clone(),
                    license: obj.license.clone(),
                    error: None,
                });
                let progs = inspect_object(&path, &obj, opts);
                if let Some(name) = &opts.program
                    && progs.is_empty()
                {
                    report.files.last_mut().expect("just pushed").error =
                        Some(format!("{path}: no program named `{name}`"));
                }
                report.programs.extend(progs);
            }
            Err(e) => report.files.push(FileReport {
                path,
                license: None,
                error: Some(e),
            }),
        }
    }
    report
}
