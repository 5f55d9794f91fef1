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
//!
//! A split-form candidate ([`dispatch_tables`]) also runs every scenario with its vtables left
//! empty, so the dispatchers' fallback (the original body) is compared for every op, not only
//! for ops without a per-op program. The original runs once per scenario for both rows.
//!
//! A difference is located on each side at the instruction that made the differing value
//! ([`Difference::original_at`]): the runtime logs each run's exit and the stores into the
//! context ([`super::SiteLog`]) and keeps the last writer of every map value byte
//! ([`super::Region::writers`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::builtin;
use super::helpers::{CallArg, Record};
use super::maps::{MapState, Storage};
use super::memory::{RegionId, RegionKind, Writer};
use super::scenario::{Event, EventResult, Runner, hex};
use super::sockops::op;
use super::{Config, Machine, Module};
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
    /// The instruction (program, function, slot, source line) on each side that made the
    /// differing value: the helper call of a call difference; the exit (the one returning 0 on
    /// a veto), the store to `reply` or the header option helper call of a result or option
    /// difference; the store to `sk_txhash`; the last write to the first differing byte of a
    /// final map entry. `None` where that side has no such instruction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_at: Option<String>,
    /// What that instruction is (`exit with r0 = 0`, `call bpf_store_hdr_opt`, a store's
    /// disassembly), or why there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_insn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_insn: Option<String>,
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
    let load = |obj: &Object, which: &str| {
        Module::sock_ops(obj, &config()).map_err(|e| format!("{which}: {e}"))
    };
    let modules = (load(original, "original")?, load(candidate, "candidate")?);
    let mut configs = vec![(String::new(), Vec::new())];
    if !tables.is_empty() {
        configs.push((String::new(), tables));
    }
    let mut reports = Vec::new();
    for (name, events) in scenarios {
        configs[0].0 = name.clone();
        if let Some(c) = configs.get_mut(1) {
            c.0 = format!("{name} (dispatcher only)");
        }
        reports.extend(verify_scenario(
            &modules.0, &modules.1, &programs, &name, &events, &configs,
        )?);
    }
    Ok(Report {
        programs,
        scenarios: reports,
    })
}

/// Loads one side; `module` is its object's [`Module::sock_ops`], built once per verification.
fn machine(module: &Module, which: &str, empty_prog_arrays: &[String]) -> Result<Machine, String> {
    let config = Config {
        empty_prog_arrays: empty_prog_arrays.iter().cloned().collect(),
        ..config()
    };
    let mut m =
        Machine::sock_ops_module(module.clone(), config).map_err(|e| format!("{which}: {e}"))?;
    m.trace_calls = true;
    m.site_log = Some(super::SiteLog::default());
    Ok(m)
}

fn config() -> Config {
    // Stack the program never wrote reads as poison, not zeros: a candidate that drops an
    // initialising store shows.
    Config {
        stack_fill: 0xa5,
        ..Config::default()
    }
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
            name,
            args,
            ret,
            inputs,
            ..
        } => {
            let mut s = format!(
                "{name}({}) = {}",
                args.iter().map(arg).collect::<Vec<_>>().join(", "),
                arg(ret)
            );
            // What the helper read through its pointers: a candidate passing other bytes
            // (an uninitialised key byte, a different option value) differs here, at the call.
            for (k, bytes) in inputs {
                s.push_str(&format!(" arg{k}=[{}]", hex(bytes)));
            }
            s
        }
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

/// One candidate configuration compared with the original, in lockstep with it.
struct Side {
    m: Machine,
    r: Runner,
    report: ScenarioReport,
    done: bool,
}

fn difference(
    row: &str,
    programs: &[String],
    event: Option<usize>,
    op: Option<u32>,
    what: &str,
    original: String,
    candidate: String,
) -> Difference {
    Difference {
        scenario: row.to_string(),
        event,
        op,
        program: programs.first().cloned(),
        what: what.to_string(),
        original,
        candidate,
        original_at: None,
        candidate_at: None,
        original_insn: None,
        candidate_insn: None,
    }
}

/// Runs the original once on `events` and each candidate configuration (row name, PROG_ARRAYs
/// left empty) beside it, so the original's work is shared by the rows.
fn verify_scenario(
    original: &Module,
    candidate: &Module,
    programs: &[String],
    name: &str,
    events: &[Event],
    configs: &[(String, Vec<String>)],
) -> Result<Vec<ScenarioReport>, String> {
    let mut ma = machine(original, "original", &[])?;
    let mut ra = Runner::new(programs.to_vec());
    let mut sides = Vec::with_capacity(configs.len());
    for (row, empty) in configs {
        sides.push(Side {
            m: machine(candidate, "candidate", empty)?,
            r: Runner::new(programs.to_vec()),
            report: ScenarioReport {
                scenario: row.clone(),
                empty_prog_arrays: empty.clone(),
                events: events.len(),
                per_op: BTreeMap::new(),
                difference: None,
            },
            done: false,
        });
    }
    for (i, e) in events.iter().enumerate() {
        if sides.iter().all(|s| s.done) {
            break;
        }
        ma.site_log = Some(super::SiteLog::default());
        let a = ra
            .event(&mut ma, i, e)
            .map_err(|e| format!("scenario {name}: original: {e}"))?;
        let oa = observed(&ma, &a);
        for s in sides.iter_mut().filter(|s| !s.done) {
            let row = s.report.scenario.as_str();
            s.m.site_log = Some(super::SiteLog::default());
            let b = match s.r.event(&mut s.m, i, e) {
                Ok(b) => b,
                Err(y) => {
                    s.report.difference = Some(difference(
                        row,
                        programs,
                        Some(i),
                        event_op(e),
                        "run",
                        "ok".into(),
                        format!("scenario {row}: candidate: {y}"),
                    ));
                    s.done = true;
                    continue;
                }
            };
            if let Some(o) = a.op {
                *s.report.per_op.entry(o).or_insert(0) += 1;
            }
            let ob = observed(&s.m, &b);
            if oa == ob {
                continue;
            }
            let (what, x, y) = first_mismatch(&oa, &ob);
            let (sa, sb) = (sites(&a), sites(&b));
            let label = if what == "event" {
                format!("call #{}", a.records.len().min(b.records.len()))
            } else {
                what.clone()
            };
            let op = a.op.or(b.op).or(event_op(e));
            let mut d = difference(row, programs, Some(i), op, &what, x, y);
            d.original_at = sa.get(&label).cloned();
            d.candidate_at = sb.get(&label).cloned();
            if d.original_at.is_some() || d.candidate_at.is_some() {
                d.original_insn = call_name(&a, &label);
                d.candidate_insn = call_name(&b, &label);
            } else if let (Some(x), Some(y)) =
                (value_site(&ma, &a, &what), value_site(&s.m, &b, &what))
            {
                (d.original_at, d.original_insn) = x;
                (d.candidate_at, d.candidate_insn) = y;
            }
            if let Some(at) = d.candidate_at.as_ref().or(d.original_at.as_ref()) {
                d.program = at
                    .split('`')
                    .nth(1)
                    .map(str::to_string)
                    .or(d.program.take());
            }
            s.report.difference = Some(d);
            s.done = true;
        }
    }
    for s in sides.iter_mut().filter(|s| !s.done) {
        s.report.difference = final_difference(&ma, &ra, &s.m, &s.r, &s.report.scenario, programs);
    }
    Ok(sides.into_iter().map(|s| s.report).collect())
}

/// The first difference in the final state: maps by name (the candidate may add its own, e.g.
/// a dispatch PROG_ARRAY), then the simulated sockets.
fn final_difference(
    ma: &Machine,
    ra: &Runner,
    mb: &Machine,
    rb: &Runner,
    row: &str,
    programs: &[String],
) -> Option<Difference> {
    let diff = |what: &str, a: String, b: String| difference(row, programs, None, None, what, a, b);
    for sa in &ma.maps {
        if sa.map_type == super::maps::map_type::PROG_ARRAY {
            continue;
        }
        let Some(bi) = mb.map_index(&sa.name) else {
            return Some(diff(
                &format!("map `{}`", sa.name),
                "exists".into(),
                "missing".into(),
            ));
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
            let (key, byte) = first_entry_difference(&ea, &eb);
            let mut d = diff(
                &format!(
                    "final contents of map `{}` (entry {}, byte {byte})",
                    sa.name,
                    hex(&key)
                ),
                show(&ea),
                show(&eb),
            );
            (d.original_at, d.original_insn) = entry_writer(ma, sa, &key, byte);
            (d.candidate_at, d.candidate_insn) = entry_writer(mb, &mb.maps[bi], &key, byte);
            return Some(d);
        }
    }
    let (sa, sb) = (ra.sock_states(), rb.sock_states());
    (sa != sb).then(|| diff("final socket state", format!("{sa:?}"), format!("{sb:?}")))
}

/// `call NAME` for the traced call labelled `label` (`call #i`) of an event.
fn call_name(r: &EventResult, label: &str) -> Option<String> {
    let i: usize = label.strip_prefix("call #")?.parse().ok()?;
    match r.records.get(i)? {
        Record::Call { name, .. } => Some(format!("call {name}")),
        _ => None,
    }
}

/// A located instruction as (`at`, `insn`) text; `note` says what it did.
fn located(m: &Machine, w: Writer, note: &str) -> (Option<String>, Option<String>) {
    let insn = m.site_insn(w).map(|i| {
        if note.is_empty() {
            i
        } else {
            format!("{i} ({note})")
        }
    });
    (m.site(w).map(|s| s.to_string()), insn)
}

/// Where one side's value of an event's `what` (a line of [`observed`]) came from: `None`
/// when `what` is not a value a single instruction decides.
fn value_site(
    m: &Machine,
    r: &EventResult,
    what: &str,
) -> Option<(Option<String>, Option<String>)> {
    use super::sockops::field;
    let log = m.site_log.as_ref()?;
    let o = r.outcome.as_ref()?;
    // The kernel vetoes when any program returns 0 (its low 32 bits).
    let veto = log
        .exits
        .iter()
        .find(|(_, r0)| *r0 as u32 == 0)
        .map(|e| e.0);
    let last_exit = || {
        log.exits.last().map_or((None, None), |&(w, r0)| {
            located(m, w, &format!("returns {r0}, no veto"))
        })
    };
    let vetoed = || {
        veto.filter(|_| o.run_result != 0)
            .map(|w| located(m, w, "returns 0: veto"))
    };
    let store_to = |at: usize| {
        let at = at as i64;
        log.ctx_stores
            .iter()
            .rev()
            .find(|(off, size, _)| *off < at + 4 && at < off + *size as i64)
            .map(|&(_, _, w)| w)
    };
    let call = |name: &str| {
        r.records.iter().rev().find_map(|rec| match rec {
            Record::Call {
                name: n,
                at: Some(at),
                ..
            } if n == name => Some((Some(at.to_string()), Some(format!("call {name}")))),
            _ => None,
        })
    };
    Some(match what {
        "result" => vetoed()
            .or_else(|| store_to(field::REPLY).map(|w| located(m, w, "store to reply")))
            .unwrap_or_else(last_exit),
        "option bytes reserved" => vetoed()
            .or_else(|| call("bpf_reserve_hdr_opt"))
            .unwrap_or_else(last_exit),
        "option bytes written" => vetoed()
            .or_else(|| call("bpf_store_hdr_opt"))
            .unwrap_or_else(last_exit),
        "sk_txhash" => store_to(field::SK_TXHASH).map_or_else(
            || (None, Some("no store to sk_txhash".to_string())),
            |w| located(m, w, "store to sk_txhash"),
        ),
        _ => return None,
    })
}

/// The first entry (in the original's order, then the candidate's extra keys) whose value
/// differs or exists on one side only, and the first differing byte of its value (0 when
/// one side has no entry).
fn first_entry_difference(a: &[(Vec<u8>, Vec<u8>)], b: &[(Vec<u8>, Vec<u8>)]) -> (Vec<u8>, usize) {
    let find = |v: &[(Vec<u8>, Vec<u8>)], k: &[u8]| {
        v.iter()
            .find(|(x, _)| x.as_slice() == k)
            .map(|(_, v)| v.clone())
    };
    for (k, va) in a {
        match find(b, k) {
            Some(vb) if &vb == va => {}
            Some(vb) => {
                let byte = va
                    .iter()
                    .zip(&vb)
                    .position(|(x, y)| x != y)
                    .unwrap_or(va.len().min(vb.len()));
                return (k.clone(), byte);
            }
            None => return (k.clone(), 0),
        }
    }
    b.iter()
        .find(|(k, _)| find(a, k).is_none())
        .map_or((Vec::new(), 0), |(k, _)| (k.clone(), 0))
}

/// The value region holding `key`'s entry, for maps whose values are program-writable memory.
fn value_region(st: &MapState, key: &[u8]) -> Option<RegionId> {
    let r = match &st.storage {
        Storage::Array { values } => {
            let i = u32::from_le_bytes(key.get(..4)?.try_into().ok()?);
            *values.get(i as usize)?
        }
        Storage::Hash { entries, .. } => entries.get(key)?.value,
        Storage::Lpm { entries } => {
            let plen = u32::from_le_bytes(key.get(..4)?.try_into().ok()?);
            *entries.get(&(plen, key[4..].to_vec()))?
        }
        Storage::SkStorage { values } => {
            *values.get(&u64::from_le_bytes(key.get(..8)?.try_into().ok()?))?
        }
        Storage::CgroupStorage { value } => *value,
        _ => return None,
    };
    (r != 0).then_some(r)
}

/// The last writer of byte `byte` of `key`'s entry in one machine's map.
fn entry_writer(
    m: &Machine,
    st: &MapState,
    key: &[u8],
    byte: usize,
) -> (Option<String>, Option<String>) {
    let entry = hex(key);
    let Some(region) = value_region(st, key).and_then(|r| m.memory.region(r)) else {
        let why = match st.storage {
            Storage::Array { .. } => format!("entry {entry} never written"),
            Storage::Hash { .. }
            | Storage::Lpm { .. }
            | Storage::SkStorage { .. }
            | Storage::CgroupStorage { .. } => format!("no entry {entry}"),
            _ => "writes to this map type are not tracked".to_string(),
        };
        return (None, Some(why));
    };
    match region.writers.get(byte).copied().unwrap_or(Writer::NONE) {
        Writer::NONE => (
            None,
            Some(format!(
                "byte {byte} of entry {entry} not written by a program (initial contents or a map event)"
            )),
        ),
        w => located(m, w, &format!("last write to byte {byte} of entry {entry}")),
    }
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
