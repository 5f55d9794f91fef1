//! Kernel probe for the generic helpers: `bpf/probe/probe_generic.c` calls map helpers on every
//! map type the fixtures use (with their flag and error paths), sk_storage, `bpf_tcp_sock` /
//! `bpf_skc_to_tcp_sock`, sockmap/sockhash updates, socket and netns cookies, ring buffer and
//! perf event output, cgroup local storage, `bpf_loop` and tail calls, on every sock_ops call of
//! the shared TCP workload (tests/kernel_harness), and records the set of results per
//! (op, call, family). The embedded runtime runs the same object on the built-in `loopback`
//! scenario and must produce the same sets for every (op, family) both saw, except for the
//! reviewed differences in [`KNOWN`], each of which must still show.
//!
//! `OPSPLIT_RECORD_PROBE=1` rewrites the recording (tests/data/probe/generic_results.txt) from
//! the live kernel.

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
    "/tests/data/probe/generic_probe.o"
);
const RECORDED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/probe/generic_results.txt"
);
const PROGRAM: &str = "probe_generic";
/// Attached after [`PROGRAM`] (cgroup storage cannot share a program with its tail calls).
const STORAGE_PROGRAM: &str = "probe_cgroup_storage";

/// Calls where the runtime is known to differ from the kernel, with why. The comparison skips
/// them, and each must still differ somewhere (a fixed model drops out of this list).
const KNOWN: &[(u32, &str)] = &[];

/// (op, family) → call → results seen.
type Results = BTreeMap<(u32, u32), BTreeMap<u32, BTreeSet<i32>>>;

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

fn bad(line: usize) -> ! {
    panic!(
        "{RECORDED} line {}: expected `op family call: values`",
        line + 1
    )
}

fn parse(text: &str) -> Results {
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

/// What a comparison found: (op, family) pairs compared, differences outside [`KNOWN`], and
/// the known calls that did differ.
struct Comparison {
    compared: usize,
    diffs: Vec<String>,
    known_seen: BTreeSet<u32>,
}

/// Compares runtime results with the kernel's on every (op, family) the kernel saw.
fn compare(kernel: &Results, runtime: &Results) -> Comparison {
    let known: BTreeSet<u32> = KNOWN.iter().map(|(c, _)| *c).collect();
    let mut c = Comparison {
        compared: 0,
        diffs: Vec::new(),
        known_seen: BTreeSet::new(),
    };
    for (key, k) in kernel {
        let Some(r) = runtime.get(key) else {
            c.diffs.push(format!(
                "op {} family {}: not reached by the scenario",
                key.0, key.1
            ));
            continue;
        };
        c.compared += 1;
        for call in k.keys().chain(r.keys()).collect::<BTreeSet<_>>() {
            let kv = k.get(call).cloned().unwrap_or_default();
            let rv = r.get(call).cloned().unwrap_or_default();
            if kv == rv {
                continue;
            }
            if known.contains(call) {
                c.known_seen.insert(*call);
            } else {
                c.diffs.push(format!(
                    "op {} family {} call {call}: kernel {kv:?}, runtime {rv:?}",
                    key.0, key.1
                ));
            }
        }
    }
    c
}

/// Every reviewed difference must still be one, else it goes from [`KNOWN`].
fn check(c: &Comparison) {
    assert!(c.diffs.is_empty(), "{}", c.diffs.join("\n"));
    let stale: Vec<String> = KNOWN
        .iter()
        .filter(|(call, _)| !c.known_seen.contains(call))
        .map(|(call, why)| format!("call {call} ({why})"))
        .collect();
    assert!(
        stale.is_empty(),
        "known differences that no longer differ (remove them from KNOWN): {}",
        stale.join(", ")
    );
}

/// The probe on the runtime's `loopback` scenario.
fn runtime_results() -> Results {
    let obj = opsplit::obj::Object::parse(&std::fs::read(PROBE).unwrap()).unwrap();
    // The kernel run has no perf reader: nobody opened a perf event for the probe's array.
    let config = Config {
        perf_readers: false,
        ..Config::default()
    };
    let mut m = Machine::sock_ops(&obj, config).unwrap_or_else(|e| panic!("{e}"));
    let events = builtin::scenario("loopback").unwrap();
    Runner::new(vec![PROGRAM.into(), STORAGE_PROGRAM.into()])
        .run(&mut m, &events)
        .unwrap_or_else(|e| panic!("{e}"));
    let map = m.map_index("probe_results").unwrap();
    collect(m.maps[map].entries(&m.memory).into_iter().map(|(k, _)| k))
}

fn kernel_results() -> Results {
    let bytes = std::fs::read(PROBE).unwrap();
    let side = kernel_harness::diff::run_side(&bytes, PROGRAM, "probe", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("kernel run: {e}"));
    let map = side
        .maps
        .iter()
        .find(|m| m.name == "probe_results")
        .expect("probe_results map");
    collect(map.entries.iter().map(|e| e.key.clone()))
}

#[test]
fn runtime_generic_helpers_return_the_recorded_kernel_values_per_op() {
    let recorded = parse(&std::fs::read_to_string(RECORDED).unwrap());
    let c = compare(&recorded, &runtime_results());
    check(&c);
    // Ops 1-6 and 8-14 of both families are in the recording (the probe reserves no option
    // space and arms no TX timestamps, so WRITE_HDR_OPT and the TSTAMP ops do not fire).
    assert_eq!(c.compared, 26);
}

#[test]
fn runtime_generic_helpers_return_what_the_kernel_returns_per_op() {
    if !kernel_test_gate("runtime_generic_helpers_return_what_the_kernel_returns_per_op") {
        return;
    }
    let _s = Session::start();
    let kernel = kernel_results();
    if std::env::var("OPSPLIT_RECORD_PROBE").is_ok_and(|v| v == "1") {
        let head =
            "# op family call: results seen (tests/kernel_probe_generic.rs, Linux 6.18.44)\n";
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
    let c = compare(&kernel, &runtime_results());
    check(&c);
    // RTO_CB and RETRANS_CB fire only if the lossy connection's timers do within the run.
    assert!(c.compared >= 22, "only {} (op, family) pairs", c.compared);
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
