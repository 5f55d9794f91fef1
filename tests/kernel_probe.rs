//! Kernel probe: `bpf/probe/probe_helpers.c` makes a fixed list of helper and kfunc calls on every
//! sock_ops call of the shared TCP workload (tests/kernel_harness) and records the set of return
//! values per (op, call, family). The embedded runtime runs the same object on the built-in
//! `loopback` scenario, which models that workload's call sites, and must produce the same sets
//! for every (op, family) both saw.

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
    // Everything loopback can reach: not BASE_RTT, RTO, RETRANS or hardware timestamps.
    let want: BTreeSet<u32> = (1..=20).filter(|o| ![7, 8, 9, 18].contains(o)).collect();
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
    let runtime = runtime_results();
    let mut compared = 0;
    let mut diffs = Vec::new();
    for (key, k) in &kernel {
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
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // Ops 1-6 and 10-17, 19, 20 fire on loopback, both families.
    assert!(
        compared >= 30,
        "only {compared} (op, family) pairs compared"
    );
}
