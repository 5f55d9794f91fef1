//! Kernel numbers per fixture (docs/PERFORMANCE.md, "Kernel"): the kernel differential's workload
//! under each fixture's original object, with run-time statistics from a `BPF_ENABLE_STATS` fd,
//! and the verifier's `verified_insns`. Prints a table; asserts nothing about time.
//!
//! `cargo bench --bench kernel_numbers` (root; runs the workload REPEAT times per fixture and
//! object and reports the median). The split form is `opsplit::split::convert`'s output: its
//! time is the dispatcher's, which includes the tail-called per-op program (tail-called programs
//! keep no statistics of their own); its `verified_insns` are those of the per-op programs.

#[path = "../tests/kernel_harness/mod.rs"]
mod kernel_harness;

use std::path::PathBuf;
use std::time::Duration;

const REPEAT: usize = 3;

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("kernel_numbers: needs root (bpf, cgroups, netns); nothing measured");
        return;
    }
    let _s = kernel_harness::Session::start();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "o")
                && p.file_stem()
                    .is_some_and(|s| !s.to_string_lossy().contains('.'))
        })
        .collect();
    fixtures.sort();
    println!(
        "| fixture | attached progs | invocations | original: avg ns/invocation | original: verified_insns (sum / max) | split: avg ns/invocation (dispatcher + per-op) | split: per-op verified_insns (sum / max) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for path in fixtures {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).expect("fixture");
        let bytes = opsplit::load::convert_if_legacy(&bytes)
            .expect("fixture parses")
            .into_owned();
        let orig = measure(&name, &bytes);
        let split = opsplit::split::convert(&bytes);
        let (split_ns, split_vi) = match &split {
            Ok((out, report)) => {
                let per_op: std::collections::BTreeSet<&str> = report
                    .programs
                    .iter()
                    .flat_map(|p| p.ops.iter().map(|o| o.program.as_str()))
                    .collect();
                let m = measure(&name, out);
                let vi: Vec<u32> = m
                    .verified
                    .iter()
                    .filter(|(n, _)| per_op.contains(n.as_str()))
                    .map(|(_, v)| *v)
                    .collect();
                (
                    m.median_ns,
                    if vi.is_empty() {
                        "no per-op program".to_string()
                    } else {
                        format!(
                            "{} / {} ({} progs)",
                            vi.iter().sum::<u32>(),
                            vi.iter().max().unwrap(),
                            vi.len()
                        )
                    },
                )
            }
            Err(e) => (None, format!("split failed: {e}")),
        };
        let ov: Vec<u32> = orig.verified.iter().map(|(_, v)| *v).collect();
        println!(
            "| {name} | {} | {} | {} | {} / {} | {} | {split_vi} |",
            orig.attached,
            orig.callbacks,
            fmt_ns(orig.median_ns),
            ov.iter().sum::<u32>(),
            ov.iter().max().copied().unwrap_or(0),
            fmt_ns(split_ns),
        );
    }
}

fn fmt_ns(v: Option<f64>) -> String {
    v.map_or("-".into(), |m| format!("{m:.0}"))
}

struct Measured {
    attached: usize,
    callbacks: u64,
    median_ns: Option<f64>,
    verified: Vec<(String, u32)>,
}

/// Runs the workload REPEAT times under `bytes`; the median of the average ns per invocation.
fn measure(name: &str, bytes: &[u8]) -> Measured {
    let mut avgs = Vec::new();
    let mut m = Measured {
        attached: 0,
        callbacks: 0,
        median_ns: None,
        verified: Vec::new(),
    };
    for _ in 0..REPEAT {
        let side = match kernel_harness::diff::run_side(
            bytes,
            &format!("{name}.o"),
            "bench",
            Duration::from_secs(10),
        ) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{name}: {e}");
                break;
            }
        };
        // Every attached program runs once per sock_ops invocation.
        m.callbacks = side.stats.iter().map(|(_, s)| s.run_cnt).max().unwrap_or(0);
        m.attached = side.stats.len();
        let ns: u64 = side.stats.iter().map(|(_, s)| s.run_time_ns).sum();
        if m.callbacks > 0 {
            avgs.push(ns as f64 / m.callbacks as f64);
        }
        m.verified = side.verified;
    }
    avgs.sort_by(|a, b| a.total_cmp(b));
    m.median_ns = avgs.get(avgs.len() / 2).copied();
    m
}
