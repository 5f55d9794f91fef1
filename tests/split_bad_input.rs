//! Bad input: `split::convert` answers with an object or an error, never a panic.

mod common;

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut outcomes = [0usize; 2];
    for name in [
        "tcp_iw.o",
        "rto_retrans.o",
        "cb_flags_both.o",
        "nobtf_basic.o",
        "tail_call.o",
    ] {
        let orig = std::fs::read(common::fixtures_dir().join(name)).unwrap();
        for case in 0..150 {
            let mut b = orig.clone();
            // Mutate instruction bytes mostly: code sections sit after the ELF header.
            for _ in 0..1 + rng.next() % 3 {
                let at = (rng.next() as usize) % b.len();
                b[at] = rng.next() as u8;
            }
            let r = std::panic::catch_unwind(|| opsplit::split::convert(&b));
            match r {
                Ok(Ok((out, _))) => {
                    outcomes[0] += 1;
                    opsplit::obj::Object::parse(&out).unwrap_or_else(|e| {
                        panic!(
                            "{name} case {case}: accepted, but the output does not read back: {e}"
                        )
                    });
                }
                Ok(Err(_)) => outcomes[1] += 1,
                Err(_) => panic!("{name} case {case}: convert panicked"),
            }
        }
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

#[test]
fn not_an_object_is_an_error() {
    assert!(opsplit::split::convert(b"").is_err());
    assert!(opsplit::split::convert(b"\x7fELF but not really").is_err());
}
