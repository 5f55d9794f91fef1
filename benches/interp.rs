//! Interpreter throughput: instructions per second on a tight loop (ALU, a conditional branch and
//! a stack store/load per iteration, no atomics), against rbpf 0.4's interpreter running the
//! same bytes, in one run. `cargo bench --bench interp [-- ITERATIONS]`.

use std::time::{Duration, Instant};

use opsplit::insn::{AluOp, Insn, JmpCond, Reg, Size, Src, Width, encode};
use opsplit::obj::Object;
use opsplit::runtime::{Config, Machine, Module, RegionKind, assign_slots};

fn alu(op: AluOp, dst: Reg, src: Src) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op,
        dst,
        src,
    }
}

/// `r0 = 0; r1 = n; loop { r0 += r1; r0 ^= 0x5a; *(r10-8) = r0; r2 = *(r10-8); r0 += r2;
/// w3 = w0; r0 += r3; r1 -= 1; if r1 != 0 goto loop }; exit`: 9 instructions per iteration.
fn program(n: i32) -> Vec<Insn> {
    vec![
        alu(AluOp::Mov, Reg::R0, Src::Imm(0)),
        alu(AluOp::Mov, Reg::R1, Src::Imm(n)),
        alu(AluOp::Add, Reg::R0, Src::Reg(Reg::R1)),
        alu(AluOp::Xor, Reg::R0, Src::Imm(0x5a)),
        Insn::Store {
            size: Size::DW,
            dst: Reg::R10,
            off: -8,
            src: Src::Reg(Reg::R0),
        },
        Insn::Load {
            size: Size::DW,
            dst: Reg::R2,
            src: Reg::R10,
            off: -8,
        },
        alu(AluOp::Add, Reg::R0, Src::Reg(Reg::R2)),
        Insn::Alu {
            width: Width::W32,
            op: AluOp::Mov,
            dst: Reg::R3,
            src: Src::Reg(Reg::R0),
        },
        alu(AluOp::Add, Reg::R0, Src::Reg(Reg::R3)),
        alu(AluOp::Sub, Reg::R1, Src::Imm(1)),
        Insn::Jmp {
            width: Width::W64,
            cond: JmpCond::Ne,
            dst: Reg::R1,
            src: Src::Imm(0),
            off: -9,
        },
        Insn::EXIT,
    ]
}

/// Best of `reps` timings of `f`.
fn best<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut out = None;
    let mut best = Duration::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        out = Some(v);
    }
    (best, out.expect("reps > 0"))
}

fn main() {
    let n: i32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let insns = program(n);
    let executed = 2 + 9 * n as u64 + 1;

    let mut m = Machine::new(
        Module::single("loop", &insns),
        Config {
            insn_budget: u64::MAX,
            ..Config::default()
        },
    )
    .expect("loads");
    let (ours_t, ours_r0) = best(5, || m.run("loop", 0).expect("runs"));
    assert_eq!(m.stats.last_run_insns, executed, "instruction count");

    let bytes = encode(assign_slots(&insns));
    let vm = rbpf::EbpfVmNoData::new(Some(&bytes)).expect("rbpf accepts the program");
    let (rbpf_t, rbpf_r0) = best(5, || vm.execute_program().expect("rbpf runs"));
    assert_eq!(ours_r0, rbpf_r0, "both interpreters compute the same r0");

    let rate = |t: Duration| executed as f64 / t.as_secs_f64();
    let (ours, theirs) = (rate(ours_t), rate(rbpf_t));
    println!("tight loop: {executed} instructions, r0 = {ours_r0:#x}");
    println!(
        "  opsplit runtime: {:>8.1} M insns/s ({ours_t:?})",
        ours / 1e6
    );
    println!(
        "  rbpf 0.4 interp: {:>8.1} M insns/s ({rbpf_t:?})",
        theirs / 1e6
    );
    println!("  ratio opsplit/rbpf: {:.2}", ours / theirs);
    fixture();
}

/// Whole runs of a real program: `ecn_base_rtt` on its two ops, v4 peers inside and outside
/// an LPM prefix (map lookups, atomic counter updates, helper calls, ctx reads).
fn fixture() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ecn_base_rtt.o");
    let obj = Object::parse(&std::fs::read(path).expect("fixture")).expect("parses");
    let mut m = Machine::from_object(&obj, Config::default()).expect("loads");
    let lpm = m.map_index("fabric_prefixes").expect("map");
    let mut key = 104u32.to_le_bytes().to_vec();
    key.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 0]);
    m.maps[lpm]
        .update(&mut m.memory, &key, &[150, 0, 0, 0, 1, 0, 0, 0], 0)
        .expect("update");
    let ctx = m.alloc(RegionKind::Ctx, vec![0; 224], true);
    let contexts: Vec<Vec<u8>> = [
        (6u32, [10u8, 1, 2, 3]),
        (7, [10, 1, 2, 3]),
        (7, [11, 0, 0, 1]),
    ]
    .iter()
    .map(|&(op, ip)| {
        let mut c = vec![0u8; 224];
        c[0..4].copy_from_slice(&op.to_le_bytes());
        c[20..24].copy_from_slice(&2u32.to_le_bytes());
        c[24..28].copy_from_slice(&ip);
        c
    })
    .collect();
    let runs = 300_000;
    let (t, insns) = best(3, || {
        let before = m.stats.total_insns;
        for i in 0..runs {
            m.memory
                .write_bytes(ctx, &contexts[i % contexts.len()])
                .expect("ctx");
            m.run("ecn_base_rtt", ctx).expect("runs");
        }
        m.stats.total_insns - before
    });
    println!(
        "fixture ecn_base_rtt: {runs} runs, {:.1} insns/run, {:.1} M insns/s, {:.2} M runs/s",
        insns as f64 / runs as f64,
        insns as f64 / t.as_secs_f64() / 1e6,
        runs as f64 / t.as_secs_f64() / 1e6
    );
}
