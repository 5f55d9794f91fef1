//! What the two kernel probe tests (`kernel_probe.rs`, `kernel_probe_generic.rs`) share: the
//! probes record `(op, call, family, result)` keys in a `probe_results` map; both run the probe
//! in the kernel (shared TCP workload) and in the runtime (`loopback` scenario), keep the
//! kernel's results in a recording (`op family call: values` lines), and compare.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use opsplit::runtime::scenario::Runner;
use opsplit::runtime::{Config, Machine, builtin};

use crate::kernel_harness;

/// (op, family) → call → results seen.
pub type Results = BTreeMap<(u32, u32), BTreeMap<u32, BTreeSet<i32>>>;

/// A probe object and where its kernel results are recorded.
pub struct Probe {
    /// The compiled probe.
    pub object: &'static str,
    /// The recording of the kernel's results.
    pub recorded: &'static str,
    /// The program attached in the kernel (the harness attaches the object's others after it).
    pub program: &'static str,
    /// The sock_ops programs the runtime runs, in attach order.
    pub runtime_programs: &'static [&'static str],
    /// This test file, for the recording's header.
    pub test: &'static str,
}

pub fn render(r: &Results) -> String {
    let mut s = String::new();
    for ((op, fam), calls) in r {
        for (call, vals) in calls {
            let v: Vec<String> = vals.iter().map(i32::to_string).collect();
            s.push_str(&format!("{op} {fam} {call}: {}\n", v.join(" ")));
        }
    }
    s
}

/// Reads a recording; a malformed line panics naming the file and line.
pub fn parse(path: &str, text: &str) -> Results {
    let bad = |line: usize| -> ! {
        panic!(
            "{path} line {}: expected `op family call: values`",
            line + 1
        )
    };
    let mut out = Results::new();
    for (i, l) in text.lines().enumerate() {
        if l.starts_with('#') || l.trim().is_empty() {
            continue;
        }
        let (head, vals) = l.split_once(':').unwrap_or_else(|| bad(i));
        let n: Vec<u32> = head
            .split_whitespace()
            .map(|x| x.parse().unwrap_or_else(|_| bad(i)))
            .collect();
        if n.len() != 3 {
            bad(i);
        }
        let set = out
            .entry((n[0], n[1]))
            .or_default()
            .entry(n[2])
            .or_default();
        set.extend(
            vals.split_whitespace()
                .map(|x| x.parse::<i32>().unwrap_or_else(|_| bad(i))),
        );
    }
    out
}

/// The probe's map keys: u32 words op, call, family, result.
pub fn collect(entries: impl Iterator<Item = Vec<u8>>) -> Results {
    let mut out = Results::new();
    for key in entries {
        let w = |i: usize| u32::from_le_bytes(key[4 * i..4 * i + 4].try_into().unwrap());
        out.entry((w(0), w(2)))
            .or_default()
            .entry(w(1))
            .or_default()
            .insert(w(3) as i32);
    }
    out
}

/// Compares runtime results with the kernel's on every (op, family) the kernel saw: every call
/// either side made there must have the same results. Returns the pairs compared and the
/// differences.
pub fn compare(kernel: &Results, runtime: &Results) -> (usize, Vec<String>) {
    let mut compared = 0;
    let mut diffs = Vec::new();
    for (key, k) in kernel {
        let Some(r) = runtime.get(key) else {
            diffs.push(format!(
                "op {} family {}: not reached by the scenario",
                key.0, key.1
            ));
            continue;
        };
        compared += 1;
        for call in k.keys().chain(r.keys()).collect::<BTreeSet<_>>() {
            let kv = k.get(call).cloned().unwrap_or_default();
            let rv = r.get(call).cloned().unwrap_or_default();
            if kv != rv {
                diffs.push(format!(
                    "op {} family {} call {call}: kernel {kv:?}, runtime {rv:?}",
                    key.0, key.1
                ));
            }
        }
    }
    (compared, diffs)
}

impl Probe {
    pub fn recording(&self) -> Results {
        parse(
            self.recorded,
            &std::fs::read_to_string(self.recorded).unwrap(),
        )
    }

    /// The probe on the runtime's `loopback` scenario.
    pub fn runtime_results(&self, config: Config) -> Results {
        let obj = opsplit::obj::Object::parse(&std::fs::read(self.object).unwrap()).unwrap();
        let mut m = Machine::sock_ops(&obj, config).unwrap_or_else(|e| panic!("{e}"));
        let events = builtin::scenario("loopback").unwrap();
        Runner::new(
            self.runtime_programs
                .iter()
                .map(|p| p.to_string())
                .collect(),
        )
        .run(&mut m, &events)
        .unwrap_or_else(|e| panic!("{e}"));
        let map = m.map_index("probe_results").unwrap();
        collect(m.maps[map].entries(&m.memory).into_iter().map(|(k, _)| k))
    }

    /// The probe in the kernel, on the shared workload. With `OPSPLIT_RECORD_PROBE=1` the
    /// results are written to the recording. Every (op, family) the kernel gives must match the
    /// recording (whether the lossy connection's timers fire within the run varies, so the
    /// recording holds every pair ever seen).
    pub fn kernel_results(&self) -> Results {
        let bytes = std::fs::read(self.object).unwrap();
        let side =
            kernel_harness::diff::run_side(&bytes, self.program, "probe", Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("kernel run: {e}"));
        let map = side
            .maps
            .iter()
            .find(|m| m.name == "probe_results")
            .expect("probe_results map");
        let kernel = collect(map.entries.iter().map(|e| e.key.clone()));
        if std::env::var("OPSPLIT_RECORD_PROBE").is_ok_and(|v| v == "1") {
            let head = format!(
                "# op family call: results seen ({}, Linux 6.18.44)\n",
                self.test
            );
            std::fs::write(self.recorded, format!("{head}{}", render(&kernel))).unwrap();
        }
        let recorded = self.recording();
        for (key, calls) in &kernel {
            assert_eq!(
                Some(calls),
                recorded.get(key),
                "op {} family {}: the kernel no longer gives the recorded results \
                 (OPSPLIT_RECORD_PROBE=1 rewrites them)",
                key.0,
                key.1
            );
        }
        kernel
    }
}
