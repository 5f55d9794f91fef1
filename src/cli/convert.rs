//! `opsplit convert FILE.o -o OUT.o --target split [--report FILE.json]`: the split form
//! (`docs/SPLIT.md`) and its report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::split::Report;

/// Version of the JSON report layout.
pub const SCHEMA_VERSION: u32 = 1;

/// What `convert` produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Per-op sock_ops programs behind a PROG_ARRAY dispatcher.
    Split,
}

#[derive(Debug, Clone)]
pub struct ConvertOptions {
    pub output: PathBuf,
    pub target: Target,
    pub report: Option<PathBuf>,
    /// Skip running original and output side by side in the embedded runtime.
    pub no_verify: bool,
}

/// The JSON report document.
#[derive(Debug, Clone, Serialize)]
pub struct ReportDoc {
    pub schema_version: u32,
    pub input: String,
    pub output: String,
    pub target: &'static str,
    #[serde(flatten)]
    pub report: Report,
}

/// Runs the converted object against its original in the embedded runtime on every built-in
/// scenario (`opsplit verify ORIGINAL CANDIDATE`). `Err` means the check could not run.
pub fn verify_output(
    input: &Path,
    output: &Path,
) -> Result<crate::runtime::verify::Report, String> {
    let original = super::read_object(input)?;
    let candidate = super::read_object(output)?;
    crate::runtime::verify::verify(
        &original,
        &candidate,
        &crate::runtime::verify::Source::AllBuiltin,
    )
    .map_err(|e| {
        format!(
            "runtime verification of {} could not run: {e}",
            output.display()
        )
    })
}

/// Converts one file; returns the report document.
pub fn run(input: &Path, opts: &ConvertOptions) -> Result<ReportDoc, String> {
    let bytes = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let (out, report) = match opts.target {
        Target::Split => {
            crate::split::convert(&bytes).map_err(|e| format!("{}: {e}", input.display()))?
        }
    };
    std::fs::write(&opts.output, out).map_err(|e| format!("{}: {e}", opts.output.display()))?;
    let doc = ReportDoc {
        schema_version: SCHEMA_VERSION,
        input: input.display().to_string(),
        output: opts.output.display().to_string(),
        target: "split",
        report,
    };
    if let Some(p) = &opts.report {
        let s = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(p, s + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(doc)
}

fn ops_list(v: &[u8]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter()
        .map(|o| o.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The text report.
pub fn render_text(doc: &ReportDoc) -> String {
    let mut w = String::new();
    let r = &doc.report;
    let _ = writeln!(w, "{} -> {} (target split)", doc.input, doc.output);
    let _ = writeln!(
        w,
        "minimum kernel: {}",
        r.min_kernel
            .as_deref()
            .unwrap_or("no requirement beyond the input's")
    );
    for n in &r.kernel_needs {
        let _ = writeln!(w, "  {}.{}: {}", n.version.0, n.version.1, n.reason);
    }
    for p in &r.programs {
        let _ = writeln!(
            w,
            "\nprogram {} (section {}): {}",
            p.name, p.section, p.status
        );
        if let Some(reason) = &p.reason {
            let _ = writeln!(w, "  {reason}");
        }
        if p.status == "split" {
            let _ = writeln!(
                w,
                "  dispatcher {} via {}: {} insns (original {}); default path for ops {}",
                p.name,
                p.vtable.as_deref().unwrap_or("?"),
                p.dispatcher_insns.unwrap_or(0),
                p.insns_before,
                ops_list(&p.default_ops)
            );
            let _ = writeln!(
                w,
                "  {:<36} {:<28} {:>9} {:>6} {:>6}",
                "op", "program", "reachable", "after", "guard"
            );
            for o in &p.ops {
                let _ = writeln!(
                    w,
                    "  {:<36} {:<28} {:>9} {:>6} {:>6}",
                    format!("{} {}", o.op, o.name),
                    o.program,
                    o.insns_reachable,
                    o.insns_after,
                    o.guard_insns
                );
                if !o.cloned.is_empty() {
                    let _ = writeln!(w, "      cloned: {}", o.cloned.join(", "));
                }
                if !o.shared.is_empty() {
                    let _ = writeln!(w, "      shared: {}", o.shared.join(", "));
                }
                for f in &o.findings {
                    let _ = writeln!(w, "      {f}");
                }
            }
        }
        for f in &p.findings {
            let _ = writeln!(w, "  {f}");
        }
    }
    w
}
