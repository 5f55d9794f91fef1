//! Kernel numbers per fixture (docs/PERFORMANCE.md, "Kernel"): the kernel differential's workload
//! under each fixture's original object, with run-time statistics from a `BPF_ENABLE_STATS` fd,
//! and the verifier's `verified_insns`. Prints a table; asserts nothing about time.
//!
//! `cargo bench --bench kernel_numbers` (root; runs the workload REPEAT times per fixture and
//! reports the median). The split form's columns are filled once the split pass exists
//! (`split_form` in tests/kernel_diff.rs).

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
        "| fixture | attached progs | callbacks | avg ns/callback (original) | verified_insns original (sum / max) | split: avg ns | split: verified_insns per op (sum / max) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for path in fixtures {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).expect("fixture");
        let bytes = opsplit::load::convert_if_legacy(&bytes)
            .expect("fixture parses")
            .into_owned();
        let mut avgs = Vec::new();
        let mut callbacks = 0;
        let mut attached = 0;
        let mut verified = Vec::new();
        for _ in 0..REPEAT {
            let side = match kernel_harness::diff::run_side(
                &bytes,
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
            // Every attached program runs once per sock_ops invocation; the first one's run
            // count is the number of callbacks.
            callbacks = side.stats.first().map_or(0, |(_, s)| s.run_cnt);
            attached = side.stats.len();
            let ns: u64 = side.stats.iter().map(|(_, s)| s.run_time_ns).sum();
            if callbacks > 0 {
                avgs.push(ns as f64 / callbacks as f64);
            }
            verified = side.verified.iter().map(|(_, v)| *v).collect();
        }
        avgs.sort_by(|a, b| a.total_cmp(b));
        let median = avgs.get(avgs.len() / 2).copied();
        println!(
            "| {name} | {attached} | {callbacks} | {} | {} / {} | — | — |",
            median.map_or("-".into(), |m| format!("{m:.0}")),
            verified.iter().sum::<u32>(),
            verified.iter().max().copied().unwrap_or(0),
        );
    }
}
