//! Kernel probe: `bpf/probe/probe_helpers.c` makes a fixed list of helper and kfunc calls on every
//! sock_ops call of the shared TCP workload (tests/kernel_harness) and records the set of return
//! values per (op, call, family). The embedded runtime runs the same object on the built-in
//! `loopback` scenario, which models that workload's call sites, and must produce the same sets
//! for every (op, family) both saw. The probe also saves SYNs on its listeners (TCP_SAVE_SYN 2)
//! and reads them back (TCP_BPF_SYN, _IP, _MAC).

mod common;
#[path = "kernel_harness/mod.rs"]
mod kernel_harness;
mod probe_common;

use std::collections::BTreeSet;

use common::kernel_test_gate;
use kernel_harness::Session;
use opsplit::runtime::Config;
use probe_common::{Probe, Results, compare};

/// The recording holds the kernel's results on this machine (6.18.44), one `op family call:
/// values` line each; the kernel test checks the live kernel still gives exactly these, the
/// other tests check the runtime against them where no kernel is available.
const PROBE: Probe = Probe {
    object: concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/probe/probe_helpers.o"
    ),
    recorded: concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/probe/kernel_results.txt"
    ),
    program: "probe_helpers",
    runtime_programs: &["probe_helpers"],
    test: "tests/kernel_probe.rs",
};

fn runtime_results() -> Results {
    PROBE.runtime_results(Config::default())
}

#[test]
fn runtime_helpers_return_the_recorded_kernel_values_per_op() {
    let (compared, diffs) = compare(&PROBE.recording(), &runtime_results());
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // Ops 1-6, 8-17, 19, 20, both families.
    assert_eq!(compared, 36);
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

#[test]
fn runtime_helpers_return_what_the_kernel_returns_per_op() {
    if !kernel_test_gate("runtime_helpers_return_what_the_kernel_returns_per_op") {
        return;
    }
    let _s = Session::start();
    let kernel = PROBE.kernel_results();
    let (compared, diffs) = compare(&kernel, &runtime_results());
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // Ops 1-6 and 10-17, 19, 20 fire on loopback, both families.
    assert!(
        compared >= 30,
        "only {compared} (op, family) pairs compared"
    );
}
