//! Kernel probe for the generic helpers: `bpf/probe/probe_generic.c` calls map helpers on every
//! map type the fixtures use (with their flag and error paths), sk_storage, `bpf_tcp_sock` /
//! `bpf_skc_to_tcp_sock`, sockmap/sockhash updates, socket and netns cookies, ring buffer and
//! perf event output, cgroup local storage, `bpf_loop` and tail calls, on every sock_ops call of
//! the shared TCP workload (tests/kernel_harness), and records the set of results per
//! (op, call, family). The embedded runtime runs the same object on the built-in `loopback`
//! scenario and must produce the same sets for every (op, family) both saw.
//!
//! `OPSPLIT_RECORD_PROBE=1` rewrites the recording (tests/data/probe/generic_results.txt) from
//! the live kernel.

mod common;
#[path = "kernel_harness/mod.rs"]
mod kernel_harness;
mod probe_common;

use std::collections::BTreeSet;

use common::kernel_test_gate;
use kernel_harness::Session;
use opsplit::runtime::Config;
use probe_common::{Probe, Results, compare};

/// `probe_cgroup_storage` is attached after `probe_generic` (cgroup storage cannot share a
/// program with its tail calls).
const PROBE: Probe = Probe {
    object: concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/probe/generic_probe.o"
    ),
    recorded: concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/probe/generic_results.txt"
    ),
    program: "probe_generic",
    runtime_programs: &["probe_generic", "probe_cgroup_storage"],
    test: "tests/kernel_probe_generic.rs",
};

fn runtime_results() -> Results {
    // The kernel run has no perf reader: nobody opened a perf event for the probe's array.
    PROBE.runtime_results(Config {
        perf_readers: false,
        ..Config::default()
    })
}

#[test]
fn runtime_generic_helpers_return_the_recorded_kernel_values_per_op() {
    let (compared, diffs) = compare(&PROBE.recording(), &runtime_results());
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // Ops 1-6 and 8-14 of both families are in the recording (the probe reserves no option
    // space and arms no TX timestamps, so WRITE_HDR_OPT and the TSTAMP ops do not fire).
    assert_eq!(compared, 26);
}

#[test]
fn runtime_generic_helpers_return_what_the_kernel_returns_per_op() {
    if !kernel_test_gate("runtime_generic_helpers_return_what_the_kernel_returns_per_op") {
        return;
    }
    let _s = Session::start();
    let kernel = PROBE.kernel_results();
    let (compared, diffs) = compare(&kernel, &runtime_results());
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // RTO_CB and RETRANS_CB fire only if the lossy connection's timers do within the run.
    assert!(compared >= 22, "only {compared} (op, family) pairs");
}

/// A few of the recorded kernel rules, spelled out (independent of the recording file).
#[test]
fn the_runtime_follows_the_kernel_rules_the_probe_found() {
    let r = runtime_results();
    let at = |op: u32, fam: u32, call: u32| r[&(op, fam)][&call].clone();
    let set = |v: &[i32]| v.iter().copied().collect::<BTreeSet<i32>>();
    // Arrays check the index and BPF_NOEXIST before refusing BPF_F_LOCK.
    assert_eq!(at(3, 2, 38), set(&[-7]), "array, index 4, BPF_F_LOCK");
    assert_eq!(at(3, 2, 39), set(&[-17]), "array, BPF_NOEXIST | BPF_F_LOCK");
    // Programs may delete from sockmaps (-EINVAL when empty) and sockhashes (-ENOENT).
    assert_eq!(at(4, 2, 115), set(&[0]));
    assert_eq!(at(4, 2, 116), set(&[-22]));
    assert_eq!(at(4, 2, 106), set(&[-2]));
    // Sock map updates only in the ESTABLISHED and LISTEN ops.
    assert_eq!(at(3, 2, 110), set(&[-95]), "TCP_CONNECT_CB");
    assert_eq!(at(11, 10, 110), set(&[0]), "TCP_LISTEN_CB");
    // An LPM key longer than the trie's prefixes matches nothing.
    assert_eq!(at(3, 2, 61), set(&[-1]));
    // Tail calls to empty slots do not count: the chain makes all 33.
    assert_eq!(at(3, 2, 162), set(&[33]));
    // The child keeps its request sock's cookie; the request sock's ops see NULL ctx->sk.
    assert_eq!(
        at(5, 2, 71),
        set(&[1]),
        "PASSIVE_ESTABLISHED: cookie of the request"
    );
    assert_eq!(
        at(1, 2, 77),
        set(&[0, 1]),
        "TIMEOUT_INIT: request and client"
    );
    assert_eq!(
        at(1, 2, 75),
        set(&[0, 1]),
        "skc_to_tcp_sock of the kernel ctx's sk"
    );
    // bpf_get_netns_cookie(NULL) is init_net's, not the socket's namespace.
    assert_eq!(at(3, 2, 73), set(&[1]));
}
