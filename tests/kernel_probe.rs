//! Kernel probe: `bpf/probe/probe_helpers.c` makes a fixed list of helper and kfunc calls on every
//! sock_ops call of the shared TCP workload (tests/kernel_harness) and records the set of return
//! values per (op, call, family). The embedded runtime runs the same object on the built-in
//! `loopback` scenario, which models that workload's call sites, and must produce the same sets
//! for every (op, family) both saw. The probe also saves SYNs on its listeners (TCP_SAVE_SYN 2)
//! and reads them back (TCP_BPF_SYN, _IP, _MAC).

mod common;
#[path = "kernel_harness/mod.rs"]
mod kernel_harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::kernel_test_gate;
use kernel_harness::Session;
use opsplit::runtime::scenario::Runner;
use opsplit::runtime::{Config, Machine, builtin};

const PROBE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/probe/probe_helpers.o"
);
/// The kernel's results on this machine (6.18.44), one `op family call: values` line each; the
/// kernel test checks the live kernel still gives exactly these, the other test checks the
/// runtime against them where no kernel is available.
const RECORDED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/probe/kernel_results.txt"
);

fn render(r: &Results) -> String {
    let mut s = String::new();
    for ((op, fam), calls) in r {
        for (call, vals) in calls {
            let v: Vec<String> = vals.iter().map(i32::to_string).collect();
            s.push_str(&format!("{op} {fam} {call}: {}\n", v.join(" ")));
        }
    }
    s
}

fn parse(text: &str) -> Results {
    let mut out = Results::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (head, vals) = l.split_once(':').expect("`op family call: values`");
        let n: Vec<u32> = head
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let set = out
            .entry((n[0], n[1]))
            .or_default()
            .entry(n[2])
            .or_default();
        set.extend(vals.split_whitespace().map(|x| x.parse::<i32>().unwrap()));
    }
    out
}

/// Compares runtime results with the kernel's on every (op, family) the kernel saw.
fn compare(kernel: &Results, runtime: &Results) -> (usize, Vec<String>) {
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
        for (call, kv) in k {
            let rv = r.get(call).cloned().unwrap_or_default();
            if &rv != kv {
                diffs.push(format!(
                    "op {} family {} call {call}: kernel {kv:?}, runtime {rv:?}",
                    key.0, key.1
                ));
            }
        }
    }
    (compared, diffs)
}

#[test]
fn runtime_helpers_return_the_recorded_kernel_values_per_op() {
    let recorded = parse(&std::fs::read_to_string(RECORDED).unwrap());
    let (compared, diffs) = compare(&recorded, &runtime_results());
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // Ops 1-6, 8-17, 19, 20, both families.
    assert_eq!(compared, 36);
}

/// (op, family) → call → return values seen.
type Results = BTreeMap<(u32, u32), BTreeMap<u32, BTreeSet<i32>>>;

fn collect(entries: impl Iterator<Item = Vec<u8>>) -> Results {
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

/// The probe on the runtime's `loopback` scenario.
fn runtime_results() -> Results {
    let obj = opsplit::obj::Object::parse(&std::fs::read(PROBE).unwrap()).unwrap();
    let mut m = Machine::sock_ops(&obj, Config::default()).unwrap();
    let events = builtin::scenario("loopback").unwrap();
    Runner::new(vec!["probe_helpers".into()])
        .run(&mut m, &events)
        .unwrap_or_else(|e| panic!("{e}"));
    let map = m.map_index("probe_results").unwrap();
    collect(m.maps[map].entries(&m.memory).into_iter().map(|(k, _)| k))
}

#[test]
fn the_probe_runs_in_the_runtime_on_every_op_of_the_loopback_scenario() {
    let r = runtime_results();
    let ops: BTreeSet<u32> = r.keys().map(|(op, _)| *op).collect();
    // Everything loopback can reach: not BASE_RTT or hardware timestamps.
    let want: BTreeSet<u32> = (1..=20).filter(|o| ![7, 18].contains(o)).collect();
    assert_eq!(ops, want);
    // The same facts the kernel run showed on this machine, independent of it.
    assert_eq!(r[&(14, 2)][&4], BTreeSet::from([-22]), "reserve of 1 byte");
    assert_eq!(
        r[&(20, 2)][&10],
        BTreeSet::from([0]),
        "enable_tx_tstamp in SENDMSG"
    );
    assert_eq!(
        r[&(1, 2)][&0],
        BTreeSet::from([-22, 256]),
        "cb_flags_set on req and full"
    );
    // tcp_conn_request records the SYN after RWND_INIT and before TIMEOUT_INIT; the child
    // has it (44 bytes: 20 of the client's kernel options, 4 its program wrote); clients never.
    assert_eq!(r[&(2, 2)][&18], BTreeSet::from([-2]), "RWND_INIT: not yet");
    assert_eq!(r[&(1, 2)][&18], BTreeSet::from([-2, 44]), "TIMEOUT_INIT");
    assert_eq!(r[&(5, 2)][&20], BTreeSet::from([14 + 20 + 44]), "SYN_MAC");
    assert_eq!(r[&(5, 10)][&19], BTreeSet::from([40 + 44]), "SYN_IP");
    assert_eq!(r[&(5, 2)][&21], BTreeSet::from([-28]), "8 bytes: -ENOSPC");
}

fn kernel_results() -> Results {
    let bytes = std::fs::read(PROBE).unwrap();
    let side =
        kernel_harness::diff::run_side(&bytes, "probe_helpers", "probe", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("kernel run: {e}"));
    let map = side
        .maps
        .iter()
        .find(|m| m.name == "probe_results")
        .expect("probe_results map");
    collect(map.entries.iter().map(|e| e.key.clone()))
}

#[test]
fn runtime_helpers_return_what_the_kernel_returns_per_op() {
    if !kernel_test_gate("runtime_helpers_return_what_the_kernel_returns_per_op") {
        return;
    }
    let _s = Session::start();
    let kernel = kernel_results();
    if std::env::var("OPSPLIT_RECORD_PROBE").is_ok_and(|v| v == "1") {
        let head = "# op family call: return values seen (tests/kernel_probe.rs, Linux 6.18.44)\n";
        std::fs::write(RECORDED, format!("{head}{}", render(&kernel))).unwrap();
    }
    // Whether the lossy connection's timers fire within the run varies: the recording has
    // every (op, family) seen, and each one the kernel gives now must match it.
    let recorded = parse(&std::fs::read_to_string(RECORDED).unwrap());
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
    let (compared, diffs) = compare(&kernel, &runtime_results());
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // Ops 1-6 and 10-17, 19, 20 fire on loopback, both families.
    assert!(
        compared >= 30,
        "only {compared} (op, family) pairs compared"
    );
}
