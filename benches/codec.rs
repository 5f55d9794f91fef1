//! Object codec throughput: `Object::parse` + `Object::write` per fixture and on a generated
//! object with 1M instructions, against `llvm-objdump-19 -d` on the same bytes, in one run.
//!
//! `cargo bench --bench codec`. Prints a table; ratios > 1 mean opsplit is faster.

#[path = "common/gen.rs"]
mod gen_obj;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use opsplit::obj::Object;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_codec(bytes: &[u8], runs: usize) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                let obj = Object::parse(bytes).expect("parses");
                let out = obj.write().expect("writes");
                std::hint::black_box(out);
                t.elapsed()
            })
            .collect(),
    )
}

fn time_objdump(path: &Path, runs: usize) -> Option<Duration> {
    let mut v = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = Command::new("llvm-objdump-19")
            .args(["-d", "--no-show-raw-insn"])
            .arg(path)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        std::hint::black_box(out.stdout.len());
        v.push(t.elapsed());
    }
    Some(median(v))
}

fn row(name: &str, path: &Path, bytes: &[u8], runs: usize) {
    let obj = Object::parse(bytes).expect("parses");
    let insns: usize = obj.functions.iter().map(|f| f.insns.len()).sum();
    let ours = time_codec(bytes, runs);
    let theirs = time_objdump(path, runs.min(10));
    let (t, r) = match theirs {
        Some(d) => (
            format!("{:>10.3}", d.as_secs_f64() * 1e3),
            format!("{:>7.1}x", d.as_secs_f64() / ours.as_secs_f64()),
        ),
        None => ("         -".into(), "      -".into()),
    };
    println!(
        "{name:<36} {:>9} {insns:>8} {:>12.3} {t} {r}",
        bytes.len(),
        ours.as_secs_f64() * 1e3
    );
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!(
        "{:<36} {:>9} {:>8} {:>12} {:>10} {:>8}",
        "object", "bytes", "insns", "parse+write", "objdump", "ratio"
    );
    println!(
        "{:<36} {:>9} {:>8} {:>12} {:>10} {:>8}",
        "", "", "", "ms", "ms", ""
    );
    let mut fixtures: Vec<_> = std::fs::read_dir(root.join("fixtures"))
        .expect("fixtures/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    fixtures.sort();
    for p in &fixtures {
        let bytes = std::fs::read(p).expect("readable");
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        row(&name, p, &bytes, 30);
    }
    for n in [10_000usize, 100_000, 1_000_000] {
        let bytes = gen_obj::sockops_object(n);
        let path = std::env::temp_dir().join(format!("opsplit-bench-gen-{n}.o"));
        std::fs::write(&path, &bytes).expect("temp file");
        row(&format!("generated {n} insns"), &path, &bytes, 5);
        std::fs::remove_file(&path).ok();
    }
}
