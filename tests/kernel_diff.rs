//! Kernel differential: every fixture runs the same TCP workload under object A in one fresh
//! cgroup and under object B in another; all maps are dumped and compared after the reviewed
//! normalisation (tests/kernel_norm/normalisation.txt).
//!
//! B is the original again in `original_vs_original_differs_only_where_normalised` (the run the
//! normalisation is derived from), opsplit's split form in `split_form_behaves_like_the_original`
//! (which proves the split on real TCP), and the v1/v4/O1 builds of the same source in
//! `every_variant_build_behaves_like_its_main_build`.
//!
//! BASE_RTT (only the `nv` congestion control calls it, not loaded here) and TSTAMP_SND_HW (no
//! hardware timestamps on loopback) cannot fire in this kernel: they are covered by the runtime
//! differential only ([`RUNTIME_ONLY_OPS`]).

mod common;
#[path = "kernel_harness/mod.rs"]
mod kernel_harness;

use std::path::PathBuf;
use std::time::Duration;

use common::{fixtures_dir, kernel_test_gate};
use kernel_harness::Session;
use kernel_harness::diff;

/// Ops this kernel cannot produce on loopback; their behaviour is compared by the runtime only.
pub const RUNTIME_ONLY_OPS: &[&str] = &["BPF_SOCK_OPS_BASE_RTT", "BPF_SOCK_OPS_TSTAMP_SND_HW_CB"];

/// Per fixture and side: the workload takes well under a second; this bounds a hung run.
const BUDGET: Duration = Duration::from_secs(10);

/// The main build of every fixture source (`fixtures/<name>.o`, not the v1/v4/O1 variants).
fn main_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "o")
                && p.file_stem()
                    .is_some_and(|s| !s.to_string_lossy().contains('.'))
        })
        .collect();
    v.sort();
    v
}

fn stem(p: &std::path::Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

/// Per fixture and program that opsplit split: the vtable's name and the ops it must hold.
type Vtables = Vec<(String, Vec<u32>)>;

/// Makes object B (and the vtables it must have filled) from the original's bytes.
type Candidate = fn(&[u8]) -> Result<(Vec<u8>, Vtables), String>;

/// The object under test against the original: opsplit's split form (issue 5), with the vtables
/// its report promises.
fn split_form(original: &[u8]) -> Result<(Vec<u8>, Vtables), String> {
    let (bytes, report) = opsplit::split::convert(original).map_err(|e| e.to_string())?;
    let vtables = report
        .programs
        .iter()
        .filter_map(|p| {
            let v = p.vtable.clone()?;
            let mut ops: Vec<u32> = p.ops.iter().map(|o| u32::from(o.op)).collect();
            ops.sort();
            Some((v, ops))
        })
        .collect();
    Ok((bytes, vtables))
}

fn loadable(path: &std::path::Path) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("fixture readable");
    opsplit::load::convert_if_legacy(&bytes)
        .expect("fixture parses")
        .into_owned()
}

/// sock_ops invocations during the workload: every attached program runs once per invocation.
fn callbacks(side: &diff::Side) -> u64 {
    side.stats.iter().map(|(_, s)| s.run_cnt).max().unwrap_or(0)
}

/// Runs the differential for every fixture with B = `candidate(original)`; returns failures.
fn differential_all(label: &str, candidate: Candidate) -> Vec<String> {
    let rules = diff::load_rules();
    let fixtures = main_fixtures();
    assert_eq!(fixtures.len(), 18, "one main build per bpf/*.c source");
    let derive = std::env::var("OPSPLIT_NORM_DERIVE").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    let mut used_rules = vec![false; rules.len()];
    for path in &fixtures {
        let name = stem(path);
        let original = loadable(path);
        let (b, vtables) = match candidate(&original) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{name}: {label}: {e}"));
                continue;
            }
        };
        let extra: Vec<String> = vtables.iter().map(|(v, _)| v.clone()).collect();
        let res = diff::differential(
            &name,
            (&original, &format!("{name}.o")),
            (&b, &format!("{name}.o")),
            &rules,
            &extra,
            BUDGET,
        );
        let (a, b, diffs) = match res {
            Ok(r) => r,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        for (i, r) in rules.iter().enumerate() {
            if r.fixture == name && a.maps.iter().any(|m| diff::map_key(&m.name) == r.map) {
                used_rules[i] = true;
            }
        }
        let (runs, runs_b) = (callbacks(&a), callbacks(&b));
        if runs == 0 {
            failures.push(format!("{name}: no callback ran during the workload"));
        }
        // Every attached program runs once per sock_ops invocation: the invocation count is an
        // event count and is compared as such.
        if runs != runs_b {
            failures.push(format!("{name}: {runs} sock_ops invocations vs {runs_b}"));
        }
        // A vtable the loader left empty would make the dispatcher fall through to the
        // original body: the comparison would then prove nothing about the per-op programs.
        for (vt, ops) in &vtables {
            let mut filled: Vec<u32> = b
                .maps
                .iter()
                .find(|m| diff::map_key(&m.name) == *vt)
                .map(|m| {
                    m.entries
                        .iter()
                        .map(|e| u32::from_le_bytes(e.key[..4].try_into().unwrap()))
                        .collect()
                })
                .unwrap_or_default();
            filled.sort();
            if filled != *ops {
                failures.push(format!(
                    "{name}: vtable {vt} holds ops {filled:?}, the split report promises {ops:?}"
                ));
            }
        }
        eprintln!(
            "{label}: {name}: {runs} / {runs_b} invocations, {:?} / {:?}, {} map(s), {} vtable(s), {} difference(s)",
            a.elapsed,
            b.elapsed,
            a.maps.len(),
            vtables.len(),
            diffs.len()
        );
        if derive {
            for d in &diffs {
                eprintln!("  DERIVE {d}");
            }
        }
        failures.extend(diffs.into_iter().map(|d| format!("{label}: {d}")));
    }
    for (r, used) in rules.iter().zip(&used_rules) {
        if !used {
            failures.push(format!(
                "stale normalisation rule (no such fixture/map): {r:?}"
            ));
        }
    }
    failures
}

/// Original vs original: the run the normalisation file is derived from (OPSPLIT_NORM_DERIVE=1
/// prints what differs). Fails if anything differs that the file does not cover.
#[test]
fn original_vs_original_differs_only_where_normalised() {
    if !kernel_test_gate("original_vs_original_differs_only_where_normalised") {
        return;
    }
    let _s = Session::start();
    let failures = differential_all("original", |o| Ok((o.to_vec(), Vec::new())));
    assert!(
        failures.is_empty(),
        "kernel differential failed:\n{}",
        failures.join("\n")
    );
}

/// The split form (opsplit convert) vs the original, on real TCP: same maps after the same
/// workload, same number of sock_ops invocations, and every vtable filled as the report says.
#[test]
fn split_form_behaves_like_the_original() {
    if !kernel_test_gate("split_form_behaves_like_the_original") {
        return;
    }
    let _s = Session::start();
    let failures = differential_all("split", split_form);
    assert!(
        failures.is_empty(),
        "kernel differential failed:\n{}",
        failures.join("\n")
    );
}

/// The same source built for another ISA or optimisation level (`<name>.v1.o`, `.v4.o`, `.O1.o`)
/// must behave exactly like the main build: a differential between two genuinely different
/// objects that exists today, and a check that the comparison does not depend on instruction
/// shapes or map name prefixes.
#[test]
fn every_variant_build_behaves_like_its_main_build() {
    if !kernel_test_gate("every_variant_build_behaves_like_its_main_build") {
        return;
    }
    let _s = Session::start();
    let rules = diff::load_rules();
    let mut variants: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "o")
                && p.file_stem()
                    .is_some_and(|s| s.to_string_lossy().contains('.'))
        })
        .collect();
    variants.sort();
    assert!(variants.len() >= 10, "variant builds present");
    let mut failures = Vec::new();
    for v in &variants {
        let vname = stem(v);
        let main = vname.split('.').next().unwrap().to_string();
        let original = loadable(&fixtures_dir().join(format!("{main}.o")));
        let variant = loadable(v);
        match diff::differential(
            &main,
            (&original, &format!("{main}.o")),
            (&variant, &format!("{vname}.o")),
            &rules,
            &[],
            BUDGET,
        ) {
            Ok((a, b, d)) => {
                let (ra, rb) = (callbacks(&a), callbacks(&b));
                eprintln!("{vname}: {ra} / {rb} callbacks, {} difference(s)", d.len());
                if ra != rb {
                    failures.push(format!("{vname}: {ra} callbacks vs {rb} for {main}.o"));
                }
                failures.extend(d.into_iter().map(|d| format!("{vname} vs {main}.o: {d}")));
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "variant differential failed:\n{}",
        failures.join("\n")
    );
}

/// The whole pipeline can fail: clang's specialization of rtt_stats.c to RTT_CB alone
/// (`fixtures/ref/rtt_stats.op12.o`, which runs RTT_CB's code for every op) must be told apart
/// from the original on the same workload.
#[test]
fn differential_detects_a_program_that_behaves_differently() {
    if !kernel_test_gate("differential_detects_a_program_that_behaves_differently") {
        return;
    }
    let _s = Session::start();
    let rules = diff::load_rules();
    let original = loadable(&fixtures_dir().join("rtt_stats.o"));
    let only_rtt = loadable(&fixtures_dir().join("ref/rtt_stats.op12.o"));
    let (_, _, d) = diff::differential(
        "rtt_stats",
        (&original, "rtt_stats.o"),
        (&only_rtt, "rtt_stats.op12.o"),
        &rules,
        &[],
        BUDGET,
    )
    .expect("both load and run");
    assert!(
        d.iter()
            .any(|d| d.contains("op_calls") || d.contains("state_hist")),
        "the per-op counters must differ: {d:?}"
    );
}

/// The workload's induced loss really makes RTO_CB and RETRANS_CB fire, in both families:
/// rto_retrans.c reports every connection that saw either when it closes (`struct loss_event`).
#[test]
fn induced_loss_fires_rto_and_retrans_in_both_families() {
    if !kernel_test_gate("induced_loss_fires_rto_and_retrans_in_both_families") {
        return;
    }
    let _s = Session::start();
    let bytes = loadable(&fixtures_dir().join("rto_retrans.o"));
    let side = diff::run_side(&bytes, "rto_retrans.o", "loss", BUDGET).expect("workload");
    let events = side
        .maps
        .iter()
        .find(|m| m.name == "events")
        .expect("events ring buffer");
    let u32_at = |v: &[u8], off: usize| u32::from_le_bytes(v[off..off + 4].try_into().unwrap());
    // struct loss_event: cookie@0 op@8 reason@12 rtos@16 retrans_segs@20 retrans_failed@24
    // daddr4@28 (0 for IPv6).
    let lossy: Vec<(u32, u32, u32)> = events
        .entries
        .iter()
        .filter(|e| u32_at(&e.value, 12) == 3)
        .map(|e| {
            (
                u32_at(&e.value, 16),
                u32_at(&e.value, 20),
                u32_at(&e.value, 28),
            )
        })
        .collect();
    for (family, v4) in [("IPv4", true), ("IPv6", false)] {
        assert!(
            lossy
                .iter()
                .any(|(rtos, retrans, d)| (*d != 0) == v4 && *rtos >= 1 && *retrans >= 1),
            "{family}: no connection closed with both an RTO and a retransmission: {lossy:?}"
        );
    }
}

/// The comparison itself, on synthetic dumps: a normalised range hides a difference, anything
/// else — a value outside the range, a different key, a missing entry — is reported; cookies
/// are compared by creation order.
#[test]
fn comparison_reports_what_normalisation_does_not_cover() {
    use opsplit::load::dump::{Entry, MapDump};
    let m = |entries: Vec<(u8, [u8; 8])>| {
        vec![MapDump {
            name: "fix.bss".into(),
            map_type: "Array".into(),
            key_size: 1,
            value_size: 8,
            entries: entries
                .into_iter()
                .map(|(k, v)| Entry {
                    key: vec![k],
                    value: v.to_vec(),
                })
                .collect(),
            note: None,
        }]
    };
    let rules =
        diff::parse_rules("fix .bss value * 4 4 mask timestamp\nfix .bss key * 0 1 rank cookie\n")
            .unwrap();
    let a = m(vec![(1, [1, 0, 0, 0, 9, 9, 9, 9])]);
    let ts = m(vec![(1, [1, 0, 0, 0, 7, 7, 7, 7])]);
    assert!(diff::compare("fix", &a, &ts, &rules).is_empty());
    assert_eq!(diff::compare("fix", &a, &ts, &[]).len(), 1);
    assert_eq!(diff::compare("other", &a, &ts, &rules).len(), 1);
    let val = m(vec![(1, [2, 0, 0, 0, 9, 9, 9, 9])]);
    assert_eq!(diff::compare("fix", &a, &val, &rules).len(), 1);
    let more = m(vec![(1, [1, 0, 0, 0, 9, 9, 9, 9]), (2, [0; 8])]);
    assert_eq!(diff::compare("fix", &a, &more, &rules).len(), 1);
    // Cookies are opaque: the same values under other cookie numbers compare equal, whatever
    // the numeric order of the cookies.
    let c1 = m(vec![(10, [1; 8]), (20, [2; 8])]);
    let c2 = m(vec![(40, [1; 8]), (30, [2; 8])]);
    assert!(diff::compare("fix", &c1, &c2, &rules).is_empty());
    // A value that changed is still reported.
    let c3 = m(vec![(40, [1; 8]), (30, [3; 8])]);
    assert_eq!(diff::compare("fix", &c1, &c3, &rules).len(), 1);
    // Keys are never masked.
    assert!(diff::parse_rules("fix m key * 0 8 mask x\n").is_err());
    // A map only B has is a difference, unless it is a PROG_ARRAY the caller names (a vtable).
    let mut with_vt = a.clone();
    with_vt.push(MapDump {
        name: "fix_vtable".into(),
        map_type: "ProgArray".into(),
        key_size: 4,
        value_size: 4,
        entries: Vec::new(),
        note: None,
    });
    assert_eq!(diff::compare("fix", &a, &with_vt, &rules).len(), 1);
    assert!(
        diff::compare_with_extra("fix", &a, &with_vt, &rules, &["fix_vtable".into()]).is_empty()
    );
    assert_eq!(
        diff::compare_with_extra("fix", &with_vt, &a, &rules, &["fix_vtable".into()]).len(),
        1,
        "only B may have the extra map"
    );
    // Without a rank rule, different keys are a difference.
    let key = m(vec![(2, [1, 0, 0, 0, 9, 9, 9, 9])]);
    assert_eq!(diff::compare("fix", &a, &key, &[]).len(), 1);
}
