//! The kernel differential: run the workload under object A in one fresh cgroup and namespace and
//! under object B in another, dump every map of each, and compare them after normalisation.
//!
//! Normalisation (tests/kernel_norm/normalisation.txt) may only touch byte ranges that differ
//! between two runs of the same original object: measurements in values are masked, socket
//! cookies (in keys or values) are renamed by creation order ([`Mode::Rank`]). The number of
//! entries/records is never normalised, and keys are never masked.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::time::Duration;

use opsplit::load::Loaded;
use opsplit::load::dump::{Entry, MapDump, dump_maps};
use opsplit::load::kernel::{self, RunStats};

use super::{Cgroup, Netns};

/// Which part of an entry a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

/// What a rule does to its byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Zeroed: a measurement (time, RTT, random sample) that differs between any two runs.
    Mask,
    /// Replaced by its rank among the distinct values of all `rank` ranges of the map in the same
    /// dump: socket cookies, which differ between runs but are handed out in socket creation
    /// order, which the lock-step workload fixes. A renaming, not a masking: which entries
    /// exist, how many, and which entry belongs to which socket are still compared.
    Rank,
}

/// One normalisation rule: bytes `[offset, offset+size)` of the key or value of the entries of
/// `map` in `fixture` (only the entry with key `key` when given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub fixture: String,
    pub map: String,
    pub part: Part,
    pub key: Option<Vec<u8>>,
    pub offset: usize,
    pub size: usize,
    pub mode: Mode,
    pub reason: String,
}

pub const NORMALISATION_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/kernel_norm/normalisation.txt"
);

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Parses the reviewed normalisation file (format in its header).
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, String> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let at = |m: &str| format!("normalisation line {}: {m}", i + 1);
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() < 8 {
            return Err(at(
                "expected FIXTURE MAP PART KEY OFFSET SIZE MODE REASON...",
            ));
        }
        let part = match w[2] {
            "key" => Part::Key,
            "value" => Part::Value,
            p => return Err(at(&format!("part `{p}` is not key|value"))),
        };
        let key = match w[3] {
            "*" => None,
            k => Some(unhex(k).ok_or_else(|| at(&format!("bad key hex `{k}`")))?),
        };
        let num = |s: &str| {
            s.parse::<usize>()
                .map_err(|_| at(&format!("bad number `{s}`")))
        };
        let mode = match w[6] {
            "mask" => Mode::Mask,
            "rank" => Mode::Rank,
            m => return Err(at(&format!("mode `{m}` is not mask|rank"))),
        };
        if part == Part::Key && mode == Mode::Mask {
            return Err(at(
                "keys are never masked (only cookies in them may be ranked)",
            ));
        }
        out.push(Rule {
            fixture: w[0].to_string(),
            map: w[1].to_string(),
            part,
            key,
            offset: num(w[4])?,
            size: num(w[5])?,
            mode,
            reason: w[7..].join(" "),
        });
    }
    Ok(out)
}

pub fn load_rules() -> Vec<Rule> {
    let text = std::fs::read_to_string(NORMALISATION_FILE).expect("normalisation file");
    parse_rules(&text).unwrap_or_else(|e| panic!("{NORMALISATION_FILE}: {e}"))
}

/// What one side produced.
#[derive(Debug)]
pub struct Side {
    pub maps: Vec<MapDump>,
    /// Per attached program: run-time statistics over the workload.
    pub stats: Vec<(String, RunStats)>,
    /// Per loaded program: verified_insns.
    pub verified: Vec<(String, u32)>,
    pub elapsed: Duration,
}

/// Loads `bytes`, attaches its sock_ops programs to a fresh cgroup, runs the workload in a fresh
/// namespace, dumps every map. Everything is released before returning.
pub fn run_side(bytes: &[u8], name: &str, tag: &str, budget: Duration) -> Result<Side, String> {
    let cg = Cgroup::new(tag);
    let ns = Netns::new(tag);
    let loaded = Loaded::load(bytes, name).map_err(|e| e.to_string())?;
    let stats_fd = kernel::enable_run_time_stats().map_err(|e| format!("enable stats: {e}"))?;
    let links = loaded
        .attach_links(cg.fd().as_fd())
        .map_err(|e| e.to_string())?;
    let before: Vec<RunStats> = links
        .iter()
        .map(|(n, _)| RunStats::of(loaded.program(n).expect("program").as_fd()).unwrap_or_default())
        .collect();
    let elapsed = super::workload::run(&cg, &ns, budget)?;
    // Connections close asynchronously after the child exits (last ACKs, FIN_WAIT timers on
    // loopback are immediate); give the stack a moment before reading the maps.
    std::thread::sleep(Duration::from_millis(100));
    let stats = links
        .iter()
        .zip(&before)
        .map(|((n, _), b)| {
            let now = RunStats::of(loaded.program(n).expect("program").as_fd()).unwrap_or_default();
            (n.clone(), now.since(*b))
        })
        .collect();
    drop(links);
    drop(stats_fd);
    let maps = dump_maps(&loaded.object).map_err(|e| e.to_string())?;
    Ok(Side {
        maps,
        stats,
        verified: loaded
            .report
            .programs
            .iter()
            .map(|p| (p.name.clone(), p.verified_insns))
            .collect(),
        elapsed,
    })
}

/// libbpf prefixes global data maps with the object name (`rtt_sta.bss`); two objects with
/// different file names must still compare, so the prefix is dropped.
pub fn map_key(name: &str) -> String {
    match name.find('.') {
        Some(i) => name[i..].to_string(),
        None => name.to_string(),
    }
}

fn field(b: &[u8], off: usize, size: usize) -> Option<&[u8]> {
    b.get(off..off + size)
}

fn apply(e: &Entry, r: &Rule) -> bool {
    r.key.as_ref().is_none_or(|k| *k == e.key)
}

/// `e` with every masked range and every rank range zeroed.
fn blank(e: &Entry, rules: &[&Rule]) -> Entry {
    let mut n = e.clone();
    for r in rules.iter().filter(|r| apply(e, r)) {
        let b = if r.part == Part::Key {
            &mut n.key
        } else {
            &mut n.value
        };
        if let Some(f) = b.get_mut(r.offset..r.offset + r.size) {
            f.fill(0);
        }
    }
    n
}

/// Applies the rules of one map to one side's dump: the entries as they are compared.
///
/// Socket cookies come from per-CPU batches, so their numeric order is not creation order. A
/// cookie is therefore renamed by first appearance: entries are put in a canonical order (ring
/// buffer records keep theirs — their key is the sequence number; map entries are ordered by
/// their blanked key and value), and the n-th distinct cookie met becomes n. Which entries share
/// a socket is preserved; the numbers the kernel handed out are not.
pub fn normalise(entries: &[Entry], rules: &[&Rule]) -> Vec<Entry> {
    let mut order: Vec<(Entry, &Entry)> = entries.iter().map(|e| (blank(e, rules), e)).collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    let mut ids: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for (mut n, orig) in order {
        for r in rules
            .iter()
            .filter(|r| r.mode == Mode::Rank && apply(orig, r))
        {
            let (src, dst) = if r.part == Part::Key {
                (&orig.key, &mut n.key)
            } else {
                (&orig.value, &mut n.value)
            };
            let (Some(cookie), Some(slot)) = (
                field(src, r.offset, r.size),
                dst.get_mut(r.offset..r.offset + r.size),
            ) else {
                continue;
            };
            let next = ids.len() as u64;
            let id = *ids.entry(cookie.to_vec()).or_insert(next);
            let mut v = id.to_le_bytes().to_vec();
            v.resize(r.size, 0);
            slot.copy_from_slice(&v);
        }
        out.push(n);
    }
    out
}

/// Differences between two dumps of the same fixture, after normalisation; empty if equal.
pub fn compare(fixture: &str, a: &[MapDump], b: &[MapDump], rules: &[Rule]) -> Vec<String> {
    compare_with_extra(fixture, a, b, rules, &[])
}

/// [`compare`], allowing B to have the maps named in `b_extra` in addition (the split form's
/// vtables: PROG_ARRAYs that hold no state; the caller checks their contents itself).
pub fn compare_with_extra(
    fixture: &str,
    a: &[MapDump],
    b: &[MapDump],
    rules: &[Rule],
    b_extra: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    let index = |d: &[MapDump]| -> BTreeMap<String, MapDump> {
        d.iter().map(|m| (map_key(&m.name), m.clone())).collect()
    };
    let (ia, ib) = (index(a), index(b));
    for name in ia
        .keys()
        .chain(ib.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (Some(ma), Some(mb)) = (ia.get(name), ib.get(name)) else {
            let extra = ib.get(name).is_some_and(|m| m.map_type == "ProgArray")
                && !ia.contains_key(name)
                && b_extra.contains(name);
            if !extra {
                out.push(format!("{fixture}/{name}: map present on one side only"));
            }
            continue;
        };
        let rules: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.fixture == fixture && r.map == *name)
            .collect();
        if ma.entries.len() != mb.entries.len() {
            out.push(format!(
                "{fixture}/{name}: {} entries vs {}",
                ma.entries.len(),
                mb.entries.len()
            ));
            continue;
        }
        let (na, nb) = (
            normalise(&ma.entries, &rules),
            normalise(&mb.entries, &rules),
        );
        for (ea, eb) in na.iter().zip(&nb) {
            if ea.key != eb.key {
                out.push(format!(
                    "{fixture}/{name}: key {} vs {}",
                    hex(&ea.key),
                    hex(&eb.key)
                ));
                break;
            }
            if ea.value != eb.value {
                let words = differing_words(&ea.value, &eb.value);
                let show = |v: &[u8]| {
                    words
                        .iter()
                        .take(6)
                        .map(|(o, n)| hex(v.get(*o..(o + n).min(v.len())).unwrap_or(&[])))
                        .collect::<Vec<_>>()
                        .join(",")
                };
                out.push(format!(
                    "{fixture}/{name}: key {}: value differs at (offset, size) {:?}: {} vs {}",
                    hex(&ea.key),
                    &words[..words.len().min(6)],
                    show(&ea.value),
                    show(&eb.value)
                ));
            }
        }
    }
    out
}

/// The 4-byte-aligned words where two values differ, as `offset+size` ranges: the raw material
/// of normalisation rules.
pub fn differing_words(a: &[u8], b: &[u8]) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    for off in (0..a.len().max(b.len())).step_by(4) {
        let wa = a.get(off..(off + 4).min(a.len()));
        let wb = b.get(off..(off + 4).min(b.len()));
        if wa != wb {
            v.push((off, 4));
        }
    }
    v
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The whole differential for one fixture: A and B each in their own cgroup and namespace.
pub fn differential(
    fixture: &str,
    a: (&[u8], &str),
    b: (&[u8], &str),
    rules: &[Rule],
    b_extra: &[String],
    budget: Duration,
) -> Result<(Side, Side, Vec<String>), String> {
    let sa = run_side(a.0, a.1, "a", budget).map_err(|e| format!("{fixture} side A: {e}"))?;
    let sb = run_side(b.0, b.1, "b", budget).map_err(|e| format!("{fixture} side B: {e}"))?;
    let d = compare_with_extra(fixture, &sa.maps, &sb.maps, rules, b_extra);
    Ok((sa, sb, d))
}
