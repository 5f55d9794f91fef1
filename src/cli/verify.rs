//! `opsplit verify ORIGINAL.o CANDIDATE.o [--scenario NAME|--trace FILE] [--json]`: runs both
//! objects in the embedded runtime on the same scenario events and reports per op the events
//! compared and the first difference (docs/SCENARIOS.md, docs/RUNTIME.md).

use std::path::Path;

use super::{Exit, read_object};
use crate::runtime::scenario::parse_jsonl;
use crate::runtime::verify::{Report, Source, verify};

/// Where the events come from, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    pub scenario: Option<String>,
    pub trace: Option<std::path::PathBuf>,
    pub json: bool,
}

/// Runs the command; the text (or JSON) goes to `out`, and the exit code follows the CLI table:
/// 0 equal, 1 input problem, 3 a difference.
pub fn run(
    original: &Path,
    candidate: &Path,
    opts: &VerifyOptions,
    out: &mut dyn std::io::Write,
) -> Result<Exit, String> {
    let a = read_object(original)?;
    let b = read_object(candidate)?;
    let source = match (&opts.scenario, &opts.trace) {
        (Some(_), Some(_)) => return Err("--scenario and --trace exclude each other".into()),
        (Some(n), None) => Source::Builtin(n.clone()),
        (None, Some(p)) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let events = parse_jsonl(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            Source::Trace {
                name: p.display().to_string(),
                events,
            }
        }
        (None, None) => Source::AllBuiltin,
    };
    let report = verify(&a, &b, &source)?;
    let text = if opts.json {
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n"
    } else {
        render_text(&report)
    };
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(if report.equal() {
        Exit::Ok
    } else {
        Exit::Differs
    })
}

pub fn render_text(r: &Report) -> String {
    let mut s = format!("programs: {}\n", r.programs.join(", "));
    for sc in &r.scenarios {
        let total: usize = sc.per_op.values().sum();
        s.push_str(&format!(
            "scenario {}: {} events, {} hook calls compared\n",
            sc.scenario, sc.events, total
        ));
        if !sc.empty_prog_arrays.is_empty() {
            s.push_str(&format!(
                "  the candidate's dispatchers alone: {} left empty\n",
                sc.empty_prog_arrays.join(", ")
            ));
        }
        for (op, n) in &sc.per_op {
            let name = crate::optable::op_info(*op as u8).map_or("?", |i| i.short_name());
            s.push_str(&format!("  op {op:>2} {name:<24} {n} calls\n"));
        }
        match &sc.difference {
            None => s.push_str("  equal\n"),
            Some(d) => {
                let at = match (d.event, d.op) {
                    (Some(e), Some(o)) => format!("event {e} (op {o})"),
                    (Some(e), None) => format!("event {e}"),
                    _ => "final state".to_string(),
                };
                s.push_str(&format!(
                    "  DIFFERS at {at}, program {}: {}\n    original:  {}\n    candidate: {}\n",
                    d.program.as_deref().unwrap_or("?"),
                    d.what,
                    d.original,
                    d.candidate
                ));
                for (side, at, insn) in [
                    ("original at: ", &d.original_at, &d.original_insn),
                    ("candidate at:", &d.candidate_at, &d.candidate_insn),
                ] {
                    let line = match (at, insn) {
                        (Some(at), Some(insn)) => format!("{at}: {insn}"),
                        (Some(x), None) | (None, Some(x)) => x.clone(),
                        (None, None) => continue,
                    };
                    s.push_str(&format!("    {side} {line}\n"));
                }
            }
        }
    }
    s
}
