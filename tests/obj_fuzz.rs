//! Mutation fuzzing of the object reader: whatever bytes arrive, `Object::parse` answers with an
//! object or an error, never a panic; and an object it accepts can be written and read back.
//!
//! Two entry points share one mutator:
//! * `mutated_fixtures_never_panic` (proptest): a short run, part of every `cargo test`.
//! * `fuzz_for_a_while` (ignored): a long run for a given time,
//!   `OPSPLIT_FUZZ_SECS=3600 cargo test --release --test obj_fuzz -- --ignored --nocapture`,
//!   which prints how many inputs it tried and how they ended, and saves any panicking input
//!   under `target/fuzz-crashes/`.

mod common;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use opsplit::obj::Object;
use proptest::prelude::*;

fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(|| {
        common::fixture_objects()
            .iter()
            .map(|p| std::fs::read(p).expect("fixture readable"))
            .collect()
    })
}

/// A small deterministic PRNG, so a long run is reproducible from its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Offsets worth hitting: ELF header fields, section header fields, and the start of every
/// section (where BTF headers, string tables and relocation records begin).
fn interesting_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut v: Vec<usize> = (0..64).collect();
    let rd64 = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    let rd16 = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    if let (Some(shoff), Some(shnum)) = (rd64(0x28), rd16(0x3c)) {
        for i in 0..shnum.min(256) {
            let sh = shoff + i * 64;
            v.extend(sh..sh + 64);
            if let Some(off) = rd64(sh + 0x18) {
                v.extend(off..off + 32);
            }
        }
    }
    v.retain(|&o| o < bytes.len());
    v
}

/// One mutation of `input`, chosen by `rng`.
fn mutate(input: &[u8], rng: &mut XorShift) -> Vec<u8> {
    let mut b = input.to_vec();
    let hot = interesting_offsets(&b);
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        if b.is_empty() {
            break;
        }
        match rng.below(7) {
            // Flip bits anywhere.
            0 => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            // Overwrite a header/section-start byte with a boundary value.
            1 | 2 => {
                if let Some(&i) = hot.get(rng.below(hot.len()))
                    && i < b.len()
                {
                    b[i] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5)];
                }
            }
            // A 32-bit boundary value at a hot offset (sizes, offsets, counts).
            3 => {
                if let Some(&i) = hot.get(rng.below(hot.len())) {
                    let v: u32 = [0, 1, 8, 0x7fff_ffff, 0xffff_fff8, u32::MAX][rng.below(6)];
                    for (k, byte) in v.to_le_bytes().iter().enumerate() {
                        if let Some(x) = b.get_mut(i + k) {
                            *x = *byte;
                        }
                    }
                }
            }
            // Truncate.
            4 => {
                let n = rng.below(b.len());
                b.truncate(n);
            }
            // Copy a chunk over another place (keeps structure-looking data around).
            5 => {
                let n = 1 + rng.below(64);
                let from = rng.below(b.len());
                let to = rng.below(b.len());
                let chunk: Vec<u8> = b[from..(from + n).min(b.len())].to_vec();
                for (k, x) in chunk.into_iter().enumerate() {
                    if let Some(y) = b.get_mut(to + k) {
                        *y = x;
                    }
                }
            }
            // Random byte anywhere.
            _ => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
        }
    }
    b
}

/// How one input ended.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum Outcome {
    Rejected,
    /// Read fine, but writing needs a conversion that is refused (with an error).
    AcceptedNotWritable,
    AcceptedAndRoundTripped,
}

/// Parses; if accepted, writes and re-parses. Any panic propagates. The writer may refuse an
/// object it cannot convert (an error, not a crash), but output it does produce must read back:
/// otherwise it is a bug, reported as a panic with the reason.
fn exercise(bytes: &[u8]) -> (Outcome, String) {
    match Object::parse(bytes) {
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.trim().is_empty(), "an error without a message");
            // Group by the message's stable prefix for the run summary.
            let key: String = msg
                .split([':', '('])
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            (Outcome::Rejected, key)
        }
        Ok(obj) => {
            let out = match obj.write() {
                Ok(out) => out,
                Err(e) => return (Outcome::AcceptedNotWritable, e.to_string()),
            };
            Object::parse(&out)
                .unwrap_or_else(|e| panic!("written object could not be read back: {e}"));
            (Outcome::AcceptedAndRoundTripped, String::new())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300),
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_fixtures_never_panic(which in any::<prop::sample::Index>(), seed in 1u64..) {
        let corpus = corpus();
        let input = &corpus[which.index(corpus.len())];
        let mut rng = XorShift(seed);
        let m = mutate(input, &mut rng);
        exercise(&m);
    }
}

#[test]
fn every_fixture_is_accepted_unmutated() {
    for (p, bytes) in common::fixture_objects().iter().zip(corpus()) {
        let (o, _) = exercise(bytes);
        assert_eq!(o, Outcome::AcceptedAndRoundTripped, "{}", p.display());
    }
}

/// Inputs the long run found (each once crashed the reader or broke the round trip), kept as
/// they were found.
#[test]
fn saved_fuzz_findings_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-regressions");
    let expected = [
        (
            "reloc-inside-instruction.o",
            "not at an instruction boundary",
        ),
        ("legacy-map-without-name.o", "has no symbol name"),
    ];
    for (file, message) in expected {
        let bytes = std::fs::read(dir.join(file)).expect("regression input");
        exercise(&bytes);
        let text = match Object::parse(&bytes) {
            Err(e) => e.to_string(),
            Ok(obj) => match obj.write() {
                Err(e) => e.to_string(),
                Ok(_) => "written".to_string(),
            },
        };
        assert!(text.contains(message), "{file}: {text}");
    }
}

#[test]
fn mutator_changes_its_input() {
    let corpus = corpus();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let changed = (0..100)
        .filter(|_| mutate(&corpus[0], &mut rng) != corpus[0])
        .count();
    assert!(
        changed > 90,
        "only {changed}/100 mutations changed the input"
    );
}

#[test]
#[ignore = "long run: set OPSPLIT_FUZZ_SECS"]
fn fuzz_for_a_while() {
    let secs: u64 = std::env::var("OPSPLIT_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("OPSPLIT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x0005_eed0_f0b5);
    let corpus = corpus();
    let mut rng = XorShift(seed);
    let start = std::time::Instant::now();
    let mut counts: BTreeMap<Outcome, u64> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut crashes = 0u64;
    let crash_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
    let prev_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut n = 0u64;
    while start.elapsed().as_secs() < secs {
        let input = &corpus[rng.below(corpus.len())];
        let m = mutate(input, &mut rng);
        n += 1;
        // An abort (e.g. a failed huge allocation) cannot be caught: keep the input in flight on
        // disk so that the run that died leaves it behind.
        std::fs::create_dir_all(&crash_dir).ok();
        std::fs::write(crash_dir.join("in-flight.o"), &m).ok();
        match catch_unwind(AssertUnwindSafe(|| exercise(&m))) {
            Ok((o, key)) => {
                *counts.entry(o).or_default() += 1;
                if o == Outcome::Rejected {
                    *errors.entry(key).or_default() += 1;
                }
            }
            Err(_) => {
                crashes += 1;
                std::fs::create_dir_all(&crash_dir).ok();
                std::fs::write(crash_dir.join(format!("crash-{n}.o")), &m).ok();
            }
        }
    }
    std::panic::set_hook(prev_hook);
    println!(
        "fuzz: {n} inputs in {:.0} s (seed {seed:#x}): {:?}, {crashes} panics",
        start.elapsed().as_secs_f64(),
        counts
    );
    for (k, v) in &errors {
        println!("  {v:>9}  {k}");
    }
    assert_eq!(
        crashes,
        0,
        "panicking inputs saved in {}",
        crash_dir.display()
    );
}
