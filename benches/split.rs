//! The split pass in numbers: per fixture and op, instructions of the original program vs the
//! split per-op program vs clang's own per-op build (`fixtures/ref/<name>.op<K>.o`), and the
//! kernel's `verified_insns` of the original program vs the per-op programs (max and sum), plus
//! the time `split::convert` takes.
//!
//! `cargo bench --bench split` (as root for the verifier columns; otherwise they print `-`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use opsplit::analysis::Module;
use opsplit::obj::Object;
use opsplit::split::clone::call_order;

/// Instructions of program `name` and every subprogram it can call.
fn program_insns(obj: &Object, name: &str) -> Option<usize> {
    let m = Module::from_object(obj).ok()?;
    let fid = obj.functions.iter().position(|f| f.name == name)?;
    Some(
        call_order(&m, fid)
            .iter()
            .map(|&f| m.funcs[f].insns.len())
            .sum(),
    )
}

fn verified(bytes: &[u8], name: &str) -> Option<BTreeMap<String, u32>> {
    let r = opsplit::load::load_object(bytes, name).ok()?;
    Some(
        r.programs
            .into_iter()
            .map(|p| (p.name, p.verified_insns))
            .collect(),
    )
}

/// libbpf reports full names; fall back to the kernel's 15-character cut.
fn lookup(v: &BTreeMap<String, u32>, name: &str) -> Option<u32> {
    v.get(name)
        .or_else(|| v.get(&name.chars().take(15).collect::<String>()))
        .copied()
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "o")
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .matches('.')
                    .count()
                    == 1
        })
        .collect();
    files.sort();
    println!(
        "{:<18} {:<22} {:>4} {:>7} {:>6} {:>6} {:>9} {:>9} {:>9} {:>8}",
        "fixture", "program", "op", "orig", "split", "clang", "vrf orig", "vrf op", "", "convert"
    );
    let (mut tot_orig, mut tot_split, mut tot_ref, mut n_ref) = (0usize, 0usize, 0usize, 0usize);
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let t = Instant::now();
        let (out, rep) = match opsplit::split::convert(&bytes) {
            Ok(x) => x,
            Err(e) => {
                println!("{stem}: {e}");
                continue;
            }
        };
        let took = t.elapsed();
        let input = Object::parse(&bytes).unwrap();
        let v_orig = verified(&bytes, &stem);
        let v_split = verified(&out, &format!("{stem}_split"));
        for pr in rep.programs.iter().filter(|p| p.status == "split") {
            let orig = program_insns(&input, &pr.name).unwrap_or(0);
            let vo = v_orig.as_ref().and_then(|v| lookup(v, &pr.name));
            let mut per_op: BTreeMap<&str, u32> = BTreeMap::new();
            for o in &pr.ops {
                let refp = dir.join("ref").join(format!("{stem}.op{}.o", o.op));
                let clang = std::fs::read(&refp)
                    .ok()
                    .and_then(|b| Object::parse(&b).ok())
                    .and_then(|r| program_insns(&r, &pr.name));
                let vs = v_split.as_ref().and_then(|v| lookup(v, &o.program));
                if let Some(v) = vs {
                    per_op.insert(&o.program, v);
                }
                tot_orig += orig;
                tot_split += o.insns_after;
                if let Some(c) = clang {
                    tot_ref += c;
                    n_ref += 1;
                }
                let s = |v: Option<usize>| v.map_or("-".to_string(), |v| v.to_string());
                println!(
                    "{:<18} {:<22} {:>4} {:>7} {:>6} {:>6} {:>9} {:>9} {:>9} {:>8}",
                    stem,
                    pr.name,
                    o.op,
                    orig,
                    o.insns_after,
                    s(clang),
                    s(vo.map(|v| v as usize)),
                    s(vs.map(|v| v as usize)),
                    "",
                    format!("{:.1}ms", took.as_secs_f64() * 1e3)
                );
            }
            if !per_op.is_empty() {
                println!(
                    "{:<18} {:<22} {:>4} verified_insns per-op programs: max {} sum {} (original {})",
                    stem,
                    pr.name,
                    "all",
                    per_op.values().max().unwrap(),
                    per_op.values().sum::<u32>(),
                    vo.map_or("-".into(), |v| v.to_string())
                );
            }
        }
    }
    println!(
        "\ntotal over (program, op) rows: original {tot_orig}, split {tot_split}; clang reference builds exist for {n_ref} rows (sum {tot_ref})"
    );
}
