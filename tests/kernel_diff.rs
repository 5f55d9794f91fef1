//! Kernel differential: every fixture runs the same TCP workload under object A in one fresh
//! cgroup and under object B in another; all maps are dumped and compared after the reviewed
//! normalisation (tests/kernel_norm/normalisation.txt).
//!
//! Today B is the original again (the split pass does not exist yet): this is the
//! original-vs-original run that the normalisation is derived from. When the split pass lands,
//! `split_form` returns its output and the same comparison proves the split on real TCP.
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

/// The object under test against the original. The split pass (issue 5) will supply this; until
/// then it is the original itself.
fn split_form(original: &[u8]) -> Vec<u8> {
    original.to_vec()
}

/// sock_ops invocations during the workload: every attached program runs once per invocation.
fn callbacks(side: &diff::Side) -> u64 {
    side.stats.iter().map(|(_, s)| s.run_cnt).max().unwrap_or(0)
}

fn loadable(path: &std::path::Path) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("fixture readable");
    opsplit::load::convert_if_legacy(&bytes)
        .expect("fixture parses")
        .into_owned()
}

#[test]
fn every_fixture_behaves_the_same_under_both_objects() {
    if !kernel_test_gate("every_fixture_behaves_the_same_under_both_objects") {
        return;
    }
    let _s = Session::start();
    let rules = diff::load_rules();
    let fixtures = main_fixtures();
    assert_eq!(fixtures.len(), 18, "one main build per bpf/*.c source");
    let derive = std::env::var("OPSPLIT_NORM_DERIVE").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    let mut used_rules = vec![false; rules.len()];
    for path in &fixtures {
        let name = stem(path);
        let original = loadable(path);
        let candidate = split_form(&original);
        let res = diff::differential(
            &name,
            (&original, &format!("{name}.o")),
            (&candidate, &format!("{name}.o")),
            &rules,
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
        eprintln!(
            "{name}: {runs} / {runs_b} callbacks, {:?} / {:?}, {} map(s), {} difference(s)",
            a.elapsed,
            b.elapsed,
            a.maps.len(),
            diffs.len()
        );
        if derive {
            for d in &diffs {
                eprintln!("  DERIVE {d}");
            }
        }
        failures.extend(diffs);
    }
    for (r, used) in rules.iter().zip(&used_rules) {
        if !used {
            failures.push(format!(
                "stale normalisation rule (no such fixture/map): {r:?}"
            ));
        }
    }
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
    // Without a rank rule, different keys are a difference.
    let key = m(vec![(2, [1, 0, 0, 0, 9, 9, 9, 9])]);
    assert_eq!(diff::compare("fix", &a, &key, &[]).len(), 1);
}
