//! `opsplit verify`: runs an original object and a candidate (its split form) on the same
//! scenario events and compares everything the kernel or user space could observe.
//!
//! Per event: whether the kernel would make the call (gating follows each side's own socket
//! state), the result the TCP stack takes (`tcp_call_bpf`'s value for the value ops, the veto for
//! the header option ops), the header option bytes reserved and written, `sk_txhash`, and the
//! helper and kfunc calls with their arguments and results (pointer arguments as region kind and
//! offset, map values by map name). At the end: every map's contents (by name) and the state of
//! every simulated socket. The candidate runs the programs that carry the original's program
//! names (the split form's dispatchers keep them).

use std::collections::BTreeMap;

use serde::Serialize;

use super::builtin;
use super::helpers::{CallArg, Record};
use super::memory::RegionKind;
use super::scenario::{Event, EventResult, Runner, hex};
use super::sockops::op;
use super::{Config, Machine};
use crate::obj::{Object, ProgramType};

/// The first difference found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub scenario: String,
    /// Event index (0-based line of the scenario), or `None` for the final state.
    pub event: Option<usize>,
    pub op: Option<u32>,
    pub program: Option<String>,
    /// What differs.
    pub what: String,
    pub original: String,
    pub candidate: String,
    /// The instruction (program, function, slot, source line) on each side, when the
    /// difference is in a helper call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_at: Option<String>,
}

/// Per scenario: events compared per op, and the first difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScenarioReport {
    /// The scenario's name; `NAME (dispatcher only)` for the run with the candidate's dispatch
    /// tables left empty.
    pub scenario: String,
    /// The candidate's PROG_ARRAY maps left empty on this run (see [`dispatch_tables`]); empty
    /// for the ordinary run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub empty_prog_arrays: Vec<String>,
    pub events: usize,
    /// op → hook calls compared (calls the kernel would make on the original).
    pub per_op: BTreeMap<u32, usize>,
    pub difference: Option<Difference>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub programs: Vec<String>,
    pub scenarios: Vec<ScenarioReport>,
}

impl Report {
    pub fn equal(&self) -> bool {
        self.scenarios.iter().all(|s| s.difference.is_none())
    }
}

/// Where the events come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Every built-in scenario.
    AllBuiltin,
    Builtin(String),
    /// Events read from a file, named for reports.
    Trace {
        name: String,
        events: Vec<Event>,
    },
}

/// What to run besides the ordinary comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// For a split-form candidate, run every scenario again with its dispatch tables left empty
    /// (the dispatchers alone, as the kernel runs them when the vtable is not filled) and
    /// compare that with the original too. On by default.
    pub dispatcher_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dispatcher_only: true,
        }
    }
}

/// The dispatch tables of a split-form candidate: PROG_ARRAY maps the original does not have,
/// statically initialised with programs, that the main function of a program `verify` runs
/// (one carrying an original program's name) tail-calls through (`bpf_tail_call` with the map
/// loaded by an `ld_imm64`). Empty when the candidate is not in split form. The original's own
/// PROG_ARRAYs are never listed: emptying them would change what the original means.
pub fn dispatch_tables(original: &Object, candidate: &Object, programs: &[String]) -> Vec<String> {
    use crate::insn::{Call, Insn};
    use crate::obj::RelocKind;
    const TAIL_CALL: i32 = 12;
    let mut out = Vec::new();
    for p in &candidate.programs {
        let f = &candidate.functions[p.function];
        if p.prog_type != ProgramType::SockOps || !programs.contains(&f.name) {
            continue;
        }
        let tail_calls = f
            .insns
            .iter()
            .any(|i| matches!(i.insn, Insn::Call(Call::Helper(TAIL_CALL))));
        if !tail_calls {
            continue;
        }
        for r in &f.relocations {
            let RelocKind::Map { map } = &r.kind else {
                continue;
            };
            let Some(m) = candidate.maps.iter().find(|m| &m.name == map) else {
                continue;
            };
            if m.def.map_type == super::maps::map_type::PROG_ARRAY
                && !m.values.is_empty()
                && !original.maps.iter().any(|o| &o.name == map)
                && !out.contains(map)
            {
                out.push(map.clone());
            }
        }
    }
    out
}

fn sock_ops_programs(obj: &Object) -> Vec<String> {
    obj.programs
        .iter()
        .filter(|p| p.prog_type == ProgramType::SockOps)
        .map(|p| obj.functions[p.function].name.clone())
        .collect()
}

/// Verifies `candidate` against `original` on `source`'s scenarios, with the default
/// [`Options`] (a split-form candidate is also run with its dispatch tables empty). `Err` is an
/// input problem (a load error, an unknown scenario, a program missing from the candidate).
pub fn verify(original: &Object, candidate: &Object, source: &Source) -> Result<Report, String> {
    verify_with(original, candidate, source, &Options::default())
}

/// [`verify`] with options.
pub fn verify_with(
    original: &Object,
    candidate: &Object,
    source: &Source,
    options: &Options,
) -> Result<Report, String> {
    let programs = sock_ops_programs(original);
    if programs.is_empty() {
        return Err("the original has no sock_ops program".into());
    }
    let cand_programs = sock_ops_programs(candidate);
    for p in &programs {
        if !cand_programs.contains(p) {
            return Err(format!(
                "the candidate has no sock_ops program `{p}` (it has: {})",
                cand_programs.join(", ")
            ));
        }
    }
    let scenarios: Vec<(String, Vec<Event>)> = match source {
        Source::AllBuiltin => builtin::SCENARIOS
            .iter()
            .map(|n| (n.to_string(), builtin::scenario(n).expect("built-in")))
            .collect(),
        Source::Builtin(n) => vec![(
            n.clone(),
            builtin::scenario(n).ok_or_else(|| {
                format!(
                    "no built-in scenario `{n}` (there are: {})",
                    builtin::SCENARIOS.join(", ")
                )
            })?,
        )],
        Source::Trace { name, events } => vec![(name.clone(), events.clone())],
    };
    let tables = if options.dispatcher_only {
        dispatch_tables(original, candidate, &programs)
    } else {
        Vec::new()
    };
    let mut reports = Vec::new();
    for (name, events) in scenarios {
        reports.push(verify_scenario(
            original,
            candidate,
            &programs,
            &name,
            &events,
            &[],
        )?);
        if !tables.is_empty() {
            reports.push(verify_scenario(
                original,
                candidate,
                &programs,
                &format!("{name} (dispatcher only)"),
                &events,
                &tables,
            )?);
        }
    }
    Ok(Report {
        programs,
        scenarios: reports,
    })
}

fn machine(obj: &Object, which: &str, empty_prog_arrays: &[String]) -> Result<Machine, String> {
    // Stack the program never wrote reads as poison, not zeros: a candidate that drops an
    // initialising store shows.
    let config = Config {
        stack_fill: 0xa5,
        empty_prog_arrays: empty_prog_arrays.iter().cloned().collect(),
        ..Config::default()
    };
    let mut m = Machine::sock_ops(obj, config).map_err(|e| format!("{which}: {e}"))?;
    m.trace_calls = true;
    Ok(m)
}

/// A record as both sides can compare it: map indices become map names.
fn record_text(m: &Machine, r: &Record) -> String {
    let map = |i: usize| m.maps.get(i).map_or("?", |s| s.name.as_str()).to_string();
    let arg = |a: &CallArg| match a {
        CallArg::Scalar(v) => format!("{v:#x}"),
        CallArg::Pointer { kind, offset } => match kind {
            RegionKind::MapValue { map: i } | RegionKind::MapObject { map: i } => {
                format!("&{}+{offset}", map(*i as usize))
            }
            RegionKind::RingbufRecord { map: i } => format!("&rec:{}+{offset}", map(*i as usize)),
            // Function indices differ between objects; the callback's name does not, except
            // for the split pass's per-op clones (`name__op<N>`, docs/SPLIT.md).
            RegionKind::Function { function } => format!(
                "&fn {}+{offset}",
                m.image
                    .funcs
                    .get(*function as usize)
                    .map_or("?", |f| base_name(&f.name))
            ),
            k => format!("&{k}+{offset}"),
        },
    };
    match r {
        Record::Call {
            name, args, ret, ..
        } => format!(
            "{name}({}) = {}",
            args.iter().map(arg).collect::<Vec<_>>().join(", "),
            arg(ret)
        ),
        Record::TracePrintk { text } => format!("trace_printk {text:?}"),
        Record::Ringbuf { map: i, data } => format!("ringbuf {} {}", map(*i), hex(data)),
        Record::PerfEvent { map: i, cpu, data } => {
            format!("perf {} cpu {cpu} {}", map(*i), hex(data))
        }
    }
}

/// The location of each traced call of an event, by `call #i` label.
fn sites(r: &EventResult) -> BTreeMap<String, String> {
    r.records
        .iter()
        .enumerate()
        .filter_map(|(i, rec)| match rec {
            Record::Call { at: Some(at), .. } => Some((format!("call #{i}"), at.to_string())),
            _ => None,
        })
        .collect()
}

/// What the kernel takes from one event, as text lines to compare.
fn observed(m: &Machine, r: &EventResult) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(o) = &r.outcome else {
        out.push(("call made".into(), "no (gated)".into()));
        return out;
    };
    let opn = r.op.unwrap_or(0);
    out.push(("call made".into(), "yes".into()));
    match opn {
        op::TIMEOUT_INIT | op::RWND_INIT | op::NEEDS_ECN | op::BASE_RTT => {
            out.push(("result".into(), o.tcp_call_result.to_string()));
        }
        op::HDR_OPT_LEN_CB => {
            out.push(("option bytes reserved".into(), o.hdr_reserved.to_string()))
        }
        op::WRITE_HDR_OPT_CB => out.push(("option bytes written".into(), hex(&o.hdr_written))),
        _ => {}
    }
    if opn < op::TSTAMP_SCHED_CB {
        out.push(("sk_txhash".into(), format!("{:#x}", o.sk_txhash)));
    }
    for (i, rec) in r.records.iter().enumerate() {
        out.push((format!("call #{i}"), record_text(m, rec)));
    }
    out.push(("calls".into(), r.records.len().to_string()));
    out
}

fn verify_scenario(
    original: &Object,
    candidate: &Object,
    programs: &[String],
    name: &str,
    events: &[Event],
    empty_prog_arrays: &[String],
) -> Result<ScenarioReport, String> {
    let mut ma = machine(original, "original", &[])?;
    let mut mb = machine(candidate, "candidate", empty_prog_arrays)?;
    let mut ra = Runner::new(programs.to_vec());
    let mut rb = Runner::new(programs.to_vec());
    let mut per_op = BTreeMap::new();
    let mut report = ScenarioReport {
        scenario: name.to_string(),
        empty_prog_arrays: empty_prog_arrays.to_vec(),
        events: events.len(),
        per_op: BTreeMap::new(),
        difference: None,
    };
    let diff = |event: Option<usize>, op: Option<u32>, what: &str, a: String, b: String| {
        Some(Difference {
            scenario: name.to_string(),
            event,
            op,
            program: programs.first().cloned(),
            what: what.to_string(),
            original: a,
            candidate: b,
            original_at: None,
            candidate_at: None,
        })
    };
    for (i, e) in events.iter().enumerate() {
        let a = ra
            .event(&mut ma, i, e)
            .map_err(|e| format!("scenario {name}: original: {e}"));
        let b = rb
            .event(&mut mb, i, e)
            .map_err(|e| format!("scenario {name}: candidate: {e}"));
        let (a, b) = match (a, b) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(x), Err(y)) if x.replace("original", "") == y.replace("candidate", "") => {
                return Err(x);
            }
            (Err(x), _) => return Err(x),
            (Ok(_), Err(y)) => {
                report.difference = diff(Some(i), event_op(e), "run", "ok".into(), y);
                report.per_op = per_op;
                return Ok(report);
            }
        };
        if let Some(o) = a.op {
            *per_op.entry(o).or_insert(0) += 1;
        }
        let (oa, ob) = (observed(&ma, &a), observed(&mb, &b));
        if oa != ob {
            let (what, x, y) = first_mismatch(&oa, &ob);
            let (sa, sb) = (sites(&a), sites(&b));
            let label = if what == "event" {
                format!("call #{}", a.records.len().min(b.records.len()))
            } else {
                what.clone()
            };
            report.difference = diff(Some(i), a.op.or(b.op).or(event_op(e)), &what, x, y);
            if let Some(d) = report.difference.as_mut() {
                d.original_at = sa.get(&label).cloned();
                d.candidate_at = sb.get(&label).cloned();
                if let Some(at) = d.candidate_at.as_ref().or(d.original_at.as_ref()) {
                    d.program = at
                        .split('`')
                        .nth(1)
                        .map(str::to_string)
                        .or(d.program.take());
                }
            }
            report.per_op = per_op;
            return Ok(report);
        }
    }
    report.per_op = per_op;
    // Final state: maps by name (the candidate may add its own, e.g. a dispatch PROG_ARRAY).
    for sa in &ma.maps {
        if sa.map_type == super::maps::map_type::PROG_ARRAY {
            continue;
        }
        let Some(bi) = mb.map_index(&sa.name) else {
            report.difference = diff(
                None,
                None,
                &format!("map `{}`", sa.name),
                "exists".into(),
                "missing".into(),
            );
            return Ok(report);
        };
        let ea = sa.entries(&ma.memory);
        let eb = mb.maps[bi].entries(&mb.memory);
        if ea != eb {
            let show = |v: &[(Vec<u8>, Vec<u8>)]| {
                v.iter()
                    .map(|(k, v)| format!("{}={}", hex(k), hex(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            report.difference = diff(
                None,
                None,
                &format!("final contents of map `{}`", sa.name),
                show(&ea),
                show(&eb),
            );
            return Ok(report);
        }
    }
    let (sa, sb) = (ra.sock_states(), rb.sock_states());
    if sa != sb {
        report.difference = diff(
            None,
            None,
            "final socket state",
            format!("{sa:?}"),
            format!("{sb:?}"),
        );
    }
    Ok(report)
}

fn event_op(e: &Event) -> Option<u32> {
    match e {
        Event::Call { op, .. } => Some(*op),
        Event::State { .. } => Some(op::STATE_CB),
        _ => None,
    }
}

fn first_mismatch(a: &[(String, String)], b: &[(String, String)]) -> (String, String, String) {
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) if x.0 == y.0 => return (x.0.clone(), x.1.clone(), y.1.clone()),
            (x, y) => {
                let show = |v: Option<&(String, String)>| {
                    v.map_or("nothing".to_string(), |(k, v)| format!("{k}: {v}"))
                };
                return ("event".into(), show(x), show(y));
            }
        }
    }
    ("event".into(), String::new(), String::new())
}

/// A function name without the split pass's per-op clone suffix (`__op<N>`).
fn base_name(name: &str) -> &str {
    match name.rsplit_once("__op") {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    }
}
