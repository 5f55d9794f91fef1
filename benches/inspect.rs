//! `opsplit inspect` against `llvm-objdump-19 -d` (run with `cargo bench --bench inspect`).
//!
//! For every fixture and for generated sock_ops objects of 10k to 1M instructions shaped like
//! real ones (a binary switch tree on the spilled op, each case calling static subprograms that
//! read ctx fields, spill and fill, look up maps, compare the op they were passed and write
//! `reply`), it prints wall time and peak memory of both tools (best of several runs, measured
//! with `/usr/bin/time`) and their ratio, and per-instruction time and memory for the generated
//! objects so that linear growth is visible. `OPSPLIT_BENCH_MAX` caps the generated size.

use std::path::{Path, PathBuf};
use std::process::Command;

use object::write::{Object as ElfObject, Relocation, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind,
    SymbolScope,
};
use opsplit::insn::{AluOp, Call, Insn, JmpCond, LdImm64, Reg, Size, Src, Width, encode};

/// Wall seconds (process spawn to exit) and peak RSS (KiB, from `/usr/bin/time`) of the best of
/// `runs` runs.
fn measure(cmd: &[&str], runs: usize) -> (f64, u64) {
    let mut best = (f64::MAX, u64::MAX);
    for _ in 0..runs {
        let start = std::time::Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .args(cmd)
            .stdout(std::process::Stdio::null())
            .output()
            .expect("run /usr/bin/time");
        let secs = start.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        let kib: u64 = err
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        best = (best.0.min(secs), best.1.min(kib));
    }
    best
}

fn alu(op: AluOp, dst: Reg, src: Src) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op,
        dst,
        src,
    }
}

/// One subprogram `(ctx, op)`: `chunks` blocks of ctx reads, spills, a map lookup, a counter
/// update and an op-dependent `reply` write.
fn subprogram(chunks: usize, k: i32) -> Vec<Insn> {
    let (r0, r1, r2, r6, r7, fp) = (Reg::R0, Reg::R1, Reg::R2, Reg::R6, Reg::R7, Reg::R10);
    let mut v = vec![
        alu(AluOp::Mov, r6, Src::Reg(r1)),
        alu(AluOp::Mov, r7, Src::Reg(r2)),
    ];
    for c in 0..chunks {
        let field = [20i16, 24, 64, 68, 76, 88][c % 6];
        v.extend([
            Insn::Load {
                size: Size::W,
                dst: r1,
                src: r6,
                off: field,
            },
            Insn::Store {
                size: Size::W,
                dst: fp,
                off: -4,
                src: Src::Reg(r1),
            },
            alu(AluOp::Mov, r2, Src::Reg(fp)),
            alu(AluOp::Add, r2, Src::Imm(-4)),
            Insn::LdImm64 {
                dst: r1,
                value: LdImm64::Imm(0),
            },
            Insn::Call(Call::Helper(1)),
            Insn::Jmp {
                width: Width::W64,
                cond: JmpCond::Eq,
                dst: r0,
                src: Src::Imm(0),
                off: 3,
            },
            Insn::Load {
                size: Size::DW,
                dst: r1,
                src: r0,
                off: 0,
            },
            alu(AluOp::Add, r1, Src::Imm(1)),
            Insn::Store {
                size: Size::DW,
                dst: r0,
                off: 0,
                src: Src::Reg(r1),
            },
            Insn::Jmp {
                width: Width::W32,
                cond: JmpCond::Ne,
                dst: r7,
                src: Src::Imm((k + c as i32) % 21),
                off: 2,
            },
            Insn::Load {
                size: Size::W,
                dst: r1,
                src: fp,
                off: -4,
            },
            Insn::Store {
                size: Size::W,
                dst: r6,
                off: 4,
                src: Src::Reg(r1),
            },
        ]);
    }
    v.extend([alu(AluOp::Mov, r0, Src::Imm(1)), Insn::EXIT]);
    v
}

/// The entry: load and spill the op, dispatch with a binary tree over 0..=20, each leaf calls
/// `calls` subprograms (call slots returned for relocations).
fn entry(subs: usize, calls: usize) -> (Vec<Insn>, Vec<(usize, usize)>) {
    let (r1, r2, r6, r7, fp) = (Reg::R1, Reg::R2, Reg::R6, Reg::R7, Reg::R10);
    let mut v = vec![
        alu(AluOp::Mov, r6, Src::Reg(r1)),
        Insn::Load {
            size: Size::W,
            dst: r7,
            src: r6,
            off: 0,
        },
        Insn::Store {
            size: Size::W,
            dst: fp,
            off: -8,
            src: Src::Reg(r7),
        },
    ];
    let mut relocs = Vec::new();
    // Leaves are emitted after the tree; jumps are patched once their targets are known.
    let mut fixups: Vec<(usize, usize)> = Vec::new(); // (insn index, leaf op)
    fn tree(v: &mut Vec<Insn>, fixups: &mut Vec<(usize, usize)>, lo: usize, hi: usize) {
        if lo == hi {
            fixups.push((v.len(), lo));
            v.push(Insn::Ja { off: 0 });
            return;
        }
        let mid = (lo + hi) / 2;
        let at = v.len();
        v.push(Insn::Jmp {
            width: Width::W32,
            cond: JmpCond::Sgt,
            dst: Reg::R7,
            src: Src::Imm(mid as i32),
            off: 0,
        });
        tree(v, fixups, lo, mid);
        let right = v.len();
        if let Insn::Jmp { off, .. } = &mut v[at] {
            *off = (right - at - 1) as i16;
        }
        tree(v, fixups, mid + 1, hi);
    }
    tree(&mut v, &mut fixups, 0, 20);
    let mut leaf_start = [0; 21];
    let mut ends = Vec::new();
    for (op, start) in leaf_start.iter_mut().enumerate() {
        *start = v.len();
        for j in 0..calls {
            v.push(alu(AluOp::Mov, r1, Src::Reg(r6)));
            v.push(Insn::Load {
                size: Size::W,
                dst: r2,
                src: fp,
                off: -8,
            });
            relocs.push((v.len(), (op * calls + j) % subs));
            v.push(Insn::Call(Call::Local(-1)));
        }
        ends.push(v.len());
        v.push(Insn::Ja { off: 0 });
    }
    let exit = v.len();
    v.extend([alu(AluOp::Mov, Reg::R0, Src::Imm(1)), Insn::EXIT]);
    for (at, op) in fixups {
        v[at] = Insn::Ja {
            off: (leaf_start[op] - at - 1) as i16,
        };
    }
    for at in ends {
        v[at] = Insn::Ja {
            off: (exit - at - 1) as i16,
        };
    }
    (v, relocs)
}

/// A generated object of about `target` instructions; returns its path and instruction count.
fn generate(dir: &Path, target: usize) -> (PathBuf, usize) {
    // Subprograms of ~2500 instructions, each called from exactly one leaf of the switch tree:
    // the work per instruction is the same at every size.
    let subs = (target / 2500).max(4);
    let calls = subs.div_ceil(21);
    let chunks = (target / subs / 13).max(1);
    let mut o = ElfObject::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);
    let text = o.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
    let prog = o.add_section(Vec::new(), b"sockops".to_vec(), SectionKind::Text);
    let lic = o.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
    o.append_section_data(lic, b"GPL\0", 1);
    let mut total = 0;
    let mut sub_syms = Vec::new();
    for s in 0..subs {
        let insns = subprogram(chunks, s as i32);
        total += insns.len();
        let bytes = encode(&insns);
        let off = o.append_section_data(text, &bytes, 8);
        sub_syms.push(o.add_symbol(Symbol {
            name: format!("sub{s}").into_bytes(),
            value: off,
            size: bytes.len() as u64,
            kind: SymbolKind::Text,
            scope: SymbolScope::Compilation,
            weak: false,
            section: SymbolSection::Section(text),
            flags: SymbolFlags::None,
        }));
    }
    let (insns, relocs) = entry(subs, calls);
    total += insns.len();
    // Slots equal indices: the generator emits no ld_imm64 in the entry.
    let bytes = encode(&insns);
    let off = o.append_section_data(prog, &bytes, 8);
    o.add_symbol(Symbol {
        name: b"gen_prog".to_vec(),
        value: off,
        size: bytes.len() as u64,
        kind: SymbolKind::Text,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Section(prog),
        flags: SymbolFlags::None,
    });
    for (slot, sub) in relocs {
        o.add_relocation(
            prog,
            Relocation {
                offset: off + slot as u64 * 8,
                symbol: sub_syms[sub],
                addend: 0,
                flags: RelocationFlags::Elf {
                    r_type: object::elf::R_BPF_64_32,
                },
            },
        )
        .expect("relocation");
    }
    let path = dir.join(format!("gen_{target}.o"));
    std::fs::write(&path, o.write().expect("ELF")).expect("write generated object");
    (path, total)
}

fn main() {
    let opsplit = env!("CARGO_BIN_EXE_opsplit");
    let objdump = "llvm-objdump-19";
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(root.join("fixtures"))
        .expect("fixtures/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    fixtures.sort();
    println!(
        "{:<28} {:>8} {:>10} {:>10} {:>7} {:>9} {:>9} {:>7}",
        "object", "insns", "inspect s", "objdump s", "ratio", "insp KiB", "objd KiB", "ratio"
    );
    let row = |name: &str, insns: usize, path: &Path, runs: usize| {
        let p = path.to_str().expect("utf-8 path");
        let (ts, tm) = measure(&[opsplit, "inspect", "--json", p], runs);
        let (os, om) = measure(&[objdump, "-d", p], runs);
        println!(
            "{name:<28} {insns:>8} {ts:>10.4} {os:>10.4} {:>7.2} {tm:>9} {om:>9} {:>7.2}",
            ts / os.max(0.001),
            tm as f64 / om as f64
        );
        (ts, tm)
    };
    for f in &fixtures {
        let obj = opsplit::obj::Object::parse(&std::fs::read(f).expect("read")).expect("parse");
        let insns: usize = obj.functions.iter().map(|f| f.insns.len()).sum();
        row(&f.file_name().unwrap().to_string_lossy(), insns, f, 5);
    }
    let max: usize = std::env::var("OPSPLIT_BENCH_MAX")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("opsplit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    println!("\ngenerated objects (per-instruction cost should stay flat):");
    for target in [10_000, 30_000, 100_000, 300_000, 1_000_000] {
        if target > max {
            break;
        }
        let (path, insns) = generate(&dir, target);
        let (ts, tm) = row(&format!("generated {target}"), insns, &path, 1);
        println!(
            "{:<28} {:>8} {:>9.3} us/insn {:>9.3} KiB/insn",
            "",
            "",
            ts * 1e6 / insns as f64,
            tm as f64 / insns as f64
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
