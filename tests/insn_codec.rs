//! The instruction codec against the kernel's opcode table, the fixtures, llvm-objdump-19 and
//! random input.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};
use opsplit::insn::*;
use proptest::prelude::*;

/// The kernel's table of opcodes (`bpf_opcode_in_insntable` in kernel/bpf/core.c: the
/// `BPF_INSN_MAP` list plus the cBPF carry-overs, `JMP|JA|X` and `JMP|JCOND`), written out
/// from its definition so the decoder is checked against the spec rather than against itself.
fn kernel_opcode_table() -> BTreeSet<u8> {
    use opsplit::insn::opcode::*;
    let mut t = BTreeSet::new();
    let binary = [
        BPF_ADD, BPF_SUB, BPF_AND, BPF_OR, BPF_LSH, BPF_RSH, BPF_XOR, BPF_MUL, BPF_MOV, BPF_ARSH,
        BPF_DIV, BPF_MOD,
    ];
    for class in [BPF_ALU, BPF_ALU64] {
        for op in binary {
            t.insert(class | op | BPF_X);
            t.insert(class | op | BPF_K);
        }
        t.insert(class | BPF_NEG);
    }
    t.insert(BPF_ALU | BPF_END | BPF_TO_BE);
    t.insert(BPF_ALU | BPF_END | BPF_TO_LE);
    t.insert(BPF_ALU64 | BPF_END | BPF_TO_LE);
    t.insert(BPF_JMP | BPF_CALL);
    t.insert(BPF_JMP | BPF_EXIT);
    let conds = [
        BPF_JEQ, BPF_JNE, BPF_JGT, BPF_JLT, BPF_JGE, BPF_JLE, BPF_JSGT, BPF_JSLT, BPF_JSGE,
        BPF_JSLE, BPF_JSET,
    ];
    for class in [BPF_JMP32, BPF_JMP] {
        for c in conds {
            t.insert(class | c | BPF_X);
            t.insert(class | c | BPF_K);
        }
    }
    t.insert(BPF_JMP | BPF_JA);
    t.insert(BPF_JMP32 | BPF_JA);
    for size in [BPF_B, BPF_H, BPF_W, BPF_DW] {
        t.insert(BPF_STX | BPF_ATOMIC | size);
        t.insert(BPF_STX | BPF_MEM | size);
        t.insert(BPF_ST | BPF_MEM | size);
        t.insert(BPF_LDX | BPF_MEM | size);
    }
    for size in [BPF_B, BPF_H, BPF_W] {
        t.insert(BPF_LDX | BPF_MEMSX | size);
        t.insert(BPF_LD | BPF_ABS | size);
        t.insert(BPF_LD | BPF_IND | size);
    }
    t.insert(BPF_LD | BPF_IMM | BPF_DW);
    t.insert(BPF_JMP | BPF_JA | BPF_X);
    t.insert(BPF_JMP | BPF_JCOND);
    t
}

fn slot(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    RawInsn {
        code,
        dst,
        src,
        off,
        imm,
    }
    .to_le_bytes()
}

const REGS: [Reg; 4] = [Reg::R0, Reg::R1, Reg::R9, Reg::R10];
const IMMS: [i32; 6] = [0, 1, -1, 0x7fff_ffff, i32::MIN, 0x1234];
const OFFS: [i16; 5] = [0, 1, -1, i16::MAX, i16::MIN];

/// Every instruction form of the ISA with representative operands, built from the typed side.
fn every_form() -> Vec<Insn> {
    let mut v = Vec::new();
    let widths = [Width::W32, Width::W64];
    let sizes = [Size::B, Size::H, Size::W, Size::DW];
    let narrow = [NarrowSize::B, NarrowSize::H, NarrowSize::W];
    let srcs: Vec<Src> = REGS
        .iter()
        .map(|r| Src::Reg(*r))
        .chain(IMMS.iter().map(|i| Src::Imm(*i)))
        .collect();
    use AluOp::*;
    for width in widths {
        for op in [
            Add, Sub, Mul, Div, SDiv, Or, And, Lsh, Rsh, Mod, SMod, Xor, Mov, Arsh,
        ] {
            for dst in REGS {
                for src in &srcs {
                    v.push(Insn::Alu {
                        width,
                        op,
                        dst,
                        src: *src,
                    });
                }
            }
        }
        for dst in REGS {
            v.push(Insn::Neg { width, dst });
            for from in narrow {
                if width == Width::W32 && from == NarrowSize::W {
                    continue;
                }
                v.push(Insn::MovSx {
                    width,
                    from,
                    dst,
                    src: Reg::R3,
                });
            }
        }
        use JmpCond::*;
        for cond in [Eq, Ne, Gt, Ge, Lt, Le, Sgt, Sge, Slt, Sle, Set] {
            for src in &srcs {
                for off in OFFS {
                    v.push(Insn::Jmp {
                        width,
                        cond,
                        dst: Reg::R4,
                        src: *src,
                        off,
                    });
                }
            }
        }
        use AtomicOp as A;
        for op in [
            A::Add,
            A::Or,
            A::And,
            A::Xor,
            A::FetchAdd,
            A::FetchOr,
            A::FetchAnd,
            A::FetchXor,
            A::Xchg,
            A::CmpXchg,
        ] {
            for off in OFFS {
                v.push(Insn::Atomic {
                    width,
                    op,
                    dst: Reg::R1,
                    src: Reg::R2,
                    off,
                });
            }
        }
    }
    for order in [ByteOrder::Le, ByteOrder::Be, ByteOrder::Swap] {
        for bits in [SwapBits::B16, SwapBits::B32, SwapBits::B64] {
            v.push(Insn::End {
                order,
                bits,
                dst: Reg::R7,
            });
        }
    }
    for (dst_as, src_as) in [(0, 1), (1, 0), (0xffff, 0x1234)] {
        v.push(Insn::AddrSpaceCast {
            dst: Reg::R1,
            src: Reg::R2,
            dst_as,
            src_as,
        });
    }
    let ld = [
        LdImm64::Imm(0),
        LdImm64::Imm(-1),
        LdImm64::Imm(i64::MIN),
        LdImm64::Imm(0x1234_5678_9abc_def0),
        LdImm64::MapFd(3),
        LdImm64::MapValue {
            fd: 3,
            off: 0xffff_fff0,
        },
        LdImm64::BtfId {
            btf_id: 77,
            btf_fd: 5,
        },
        LdImm64::Func {
            offset: -9,
            next_imm: 0,
        },
        LdImm64::Func {
            offset: 4,
            next_imm: 0x55,
        },
        LdImm64::MapIdx(2),
        LdImm64::MapIdxValue { idx: 2, off: 16 },
    ];
    for value in ld {
        v.push(Insn::LdImm64 {
            dst: Reg::R5,
            value,
        });
    }
    for size in sizes {
        for off in OFFS {
            v.push(Insn::Load {
                size,
                dst: Reg::R1,
                src: Reg::R10,
                off,
            });
            v.push(Insn::Store {
                size,
                dst: Reg::R10,
                off,
                src: Src::Reg(Reg::R3),
            });
            v.push(Insn::Store {
                size,
                dst: Reg::R10,
                off,
                src: Src::Imm(-7),
            });
            v.push(Insn::LoadAcquire {
                size,
                dst: Reg::R0,
                src: Reg::R1,
                off,
            });
            v.push(Insn::StoreRelease {
                size,
                dst: Reg::R1,
                src: Reg::R2,
                off,
            });
        }
    }
    for size in narrow {
        v.push(Insn::LoadSx {
            size,
            dst: Reg::R1,
            src: Reg::R2,
            off: -4,
        });
        for imm in IMMS {
            v.push(Insn::LdAbs { size, imm });
            v.push(Insn::LdInd {
                size,
                src: Reg::R3,
                imm,
            });
        }
    }
    for off in OFFS {
        v.push(Insn::Ja { off });
        v.push(Insn::MayGoto { off });
        v.push(Insn::Exit { off });
    }
    for off in IMMS {
        v.push(Insn::Gotol { off });
        v.push(Insn::Call(Call::Helper(off)));
        v.push(Insn::Call(Call::Local(off)));
        v.push(Insn::Call(Call::Kfunc {
            btf_id: off,
            off: 3,
        }));
    }
    v
}

#[test]
fn every_form_round_trips_and_covers_the_kernel_opcode_table() {
    let forms = every_form();
    let mut codes = BTreeSet::new();
    for insn in &forms {
        let bytes = encode([insn]);
        assert_eq!(bytes.len(), insn.slots() * 8, "{insn:?}");
        let back = decode(&bytes).unwrap_or_else(|e| panic!("{insn:?} does not decode: {e}"));
        assert_eq!(
            back,
            vec![SlotInsn {
                slot: 0,
                insn: *insn
            }]
        );
        assert_eq!(encode(&back), bytes);
        codes.insert(bytes[0]);
    }
    // Every opcode the kernel knows is produced by some form, except gotox, which is refused.
    let mut expected = kernel_opcode_table();
    expected.remove(&(opcode::BPF_JMP | opcode::BPF_JA | opcode::BPF_X));
    assert_eq!(codes, expected);

    // All of them in one section: slots advance by each instruction's length.
    let bytes = encode(&forms);
    let back = decode(&bytes).unwrap();
    assert_eq!(back.len(), forms.len());
    let mut slot = 0;
    for (b, f) in back.iter().zip(&forms) {
        assert_eq!((b.slot, &b.insn), (slot, f));
        slot += f.slots();
    }
    assert_eq!(encode(&back), bytes);
}

/// Every code byte with a spread of field values, including invalid registers and every
/// boundary the kernel checks: decoding either round-trips exactly or reports an error; it
/// never panics. Opcodes outside the kernel table never decode, and every opcode in it does
/// for some fields.
#[test]
fn every_code_byte_decodes_exactly_or_errors() {
    let regs = [0u8, 1, 10, 11, 15];
    let offs = [0i16, 1, 8, 16, 32, -1, i16::MIN];
    let imms = [
        0i32, 1, 16, 32, 64, -1, 0x40, 0x51, 0xe1, 0xf1, 0x100, 0x110, 0x10000,
    ];
    let seconds = [
        None,
        Some(slot(0, 0, 0, 0, 7)),
        Some(slot(0, 1, 0, 0, 0)),
        Some(slot(0x61, 0, 0, 0, 0)),
    ];
    let table = kernel_opcode_table();
    let mut decoded_codes = BTreeSet::new();
    for code in 0..=255u8 {
        for &dst in &regs {
            for &src in &regs {
                for &off in &offs {
                    for &imm in &imms {
                        let first = slot(code, dst, src, off, imm);
                        let nexts: &[Option<[u8; 8]>] = if code == opcode::LD_IMM64 {
                            &seconds
                        } else {
                            &seconds[..1]
                        };
                        for next in nexts {
                            let mut bytes = first.to_vec();
                            if let Some(n) = next {
                                bytes.extend_from_slice(n);
                            }
                            match decode_one(&bytes, 0) {
                                Ok(insn) => {
                                    assert!(table.contains(&code), "{code:#04x} decoded: {insn:?}");
                                    let mut out = Vec::new();
                                    insn.encode_into(&mut out);
                                    assert_eq!(out, bytes[..insn.slots() * 8], "{insn:?}");
                                    decoded_codes.insert(code);
                                }
                                Err(e) => {
                                    assert_eq!((e.slot, e.bytes), (0, first));
                                    assert!(!e.to_string().is_empty());
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let mut expected = table;
    expected.remove(&(opcode::BPF_JMP | opcode::BPF_JA | opcode::BPF_X));
    assert_eq!(decoded_codes, expected);
}

#[test]
fn errors_are_precise() {
    let err = |bytes: &[u8]| decode(bytes).unwrap_err().to_string();
    let exit = slot(0x95, 0, 0, 0, 0);
    let two = |a: [u8; 8], b: [u8; 8]| [a, b].concat();

    assert_eq!(
        err(&two(exit, slot(0xe7, 1, 0, 0, 0))),
        "instruction 1 (e7 01 00 00 00 00 00 00): unknown opcode 0xe7"
    );
    assert_eq!(
        err(&slot(0x0d, 1, 0, 0, 0)),
        "instruction 0 (0d 01 00 00 00 00 00 00): gotox (indirect jump through a jump table) \
         is not supported"
    );
    assert_eq!(
        err(&two(exit, slot(0x18, 1, 0, 0, 5))),
        "instruction 1 (18 01 00 00 05 00 00 00): ld_imm64 is missing its second half: the \
         section ends after its first slot"
    );
    assert_eq!(
        err(&two(slot(0x18, 1, 0, 0, 5), exit)),
        "instruction 0 (18 01 00 00 05 00 00 00): ld_imm64 is missing its second half: the next \
         slot (95 00 00 00 00 00 00 00) must have code, registers and off all zero"
    );
    let mut truncated = exit.to_vec();
    truncated.extend_from_slice(&[0xb7, 0x01, 0x00]);
    assert_eq!(
        err(&truncated),
        "instruction 1 (b7 01 00): the section ends with a partial slot of 3 bytes (slots are 8 \
         bytes)"
    );
    assert_eq!(
        err(&slot(0xbf, 11, 1, 0, 0)),
        "instruction 0 (bf 1b 00 00 00 00 00 00): invalid dst register r11 (only r0 to r10 exist)"
    );
    assert_eq!(
        err(&slot(0xbc, 1, 2, 32, 0)),
        "instruction 0 (bc 21 20 00 00 00 00 00): mov: off is 32, expected 0, or 8/16 for movsx"
    );
    assert_eq!(
        err(&slot(0xdb, 1, 2, 0, 0x02)),
        "instruction 0 (db 21 00 00 02 00 00 00): unknown atomic operation imm 0x2"
    );
    assert_eq!(
        err(&slot(0xd3, 1, 2, 0, 0x01)),
        "instruction 0 (d3 21 00 00 01 00 00 00): atomic read-modify-write needs a W or DW \
         operand, not B"
    );
    assert_eq!(
        err(&slot(0xd4, 1, 0, 0, 8)),
        "instruction 0 (d4 01 00 00 08 00 00 00): byte swap: imm is 8, expected 16, 32 or 64"
    );
    assert_eq!(
        err(&two(slot(0x18, 1, 1, 0, 5), slot(0, 0, 0, 0, 1))),
        "instruction 0 (18 11 00 00 05 00 00 00): ld_imm64 map fd: imm is 1, expected 0 in the \
         second slot"
    );
    assert_eq!(
        err(&two(slot(0x18, 1, 7, 0, 5), slot(0, 0, 0, 0, 0))),
        "instruction 0 (18 71 00 00 05 00 00 00): unknown ld_imm64 pseudo source 7"
    );
    assert_eq!(
        err(&slot(0x8d, 0, 1, 0, 0)),
        "instruction 0 (8d 10 00 00 00 00 00 00): unknown opcode 0x8d"
    );
    // The error carries the slot and bytes as data too.
    let e = decode(&two(exit, slot(0xff, 0, 0, 0, 0))).unwrap_err();
    assert_eq!(
        (e.slot, e.bytes[0], e.kind),
        (1, 0xff, DecodeErrorKind::UnknownOpcode(0xff))
    );
}

// ---------------------------------------------------------------------------------------------
// Objects: the fixtures and an assembled object with every form.

struct ProgSection {
    name: String,
    bytes: Vec<u8>,
    /// `(slot, name)` of the symbols defined in the section.
    symbols: Vec<(u64, String)>,
}

fn program_sections(data: &[u8]) -> Vec<ProgSection> {
    let file = object::File::parse(data).expect("fixture parses as ELF");
    let mut out = Vec::new();
    for sec in file.sections() {
        if sec.kind() != SectionKind::Text || sec.size() == 0 {
            continue;
        }
        let symbols = file
            .symbols()
            .filter(|s| s.section_index() == Some(sec.index()))
            .filter(|s| !matches!(s.kind(), SymbolKind::Section | SymbolKind::File))
            .filter_map(|s| Some((s.address() / 8, s.name().ok()?.to_string())))
            .filter(|(_, n)| !n.is_empty())
            .collect();
        out.push(ProgSection {
            name: sec.name().expect("section name").to_string(),
            bytes: sec.data().expect("section data").to_vec(),
            symbols,
        });
    }
    out
}

#[test]
fn every_fixture_program_section_round_trips() {
    let objs = common::fixture_objects();
    assert!(!objs.is_empty(), "no fixtures found under fixtures/");
    let mut total = 0usize;
    for path in &objs {
        let data = std::fs::read(path).unwrap();
        let secs = program_sections(&data);
        assert!(
            !secs.is_empty(),
            "{}: no program sections",
            common::fixture_name(path)
        );
        for sec in secs {
            let insns = decode(&sec.bytes).unwrap_or_else(|e| {
                panic!("{} section {}: {e}", common::fixture_name(path), sec.name)
            });
            assert_eq!(
                encode(&insns),
                sec.bytes,
                "{} {}",
                common::fixture_name(path),
                sec.name
            );
            total += insns.len();
        }
    }
    assert!(total > 0);
}

/// A million instructions (the fixtures' code, repeated) decode and re-encode exactly. The time
/// is printed, not asserted: `cargo test --release --test insn_codec million -- --nocapture`.
#[test]
fn a_million_instructions_round_trip() {
    let mut corpus = Vec::new();
    for path in common::fixture_objects() {
        for sec in program_sections(&std::fs::read(&path).unwrap()) {
            corpus.extend_from_slice(&sec.bytes);
        }
    }
    assert!(!corpus.is_empty());
    let mut bytes = Vec::with_capacity(8 << 20);
    while bytes.len() < 8 << 20 {
        bytes.extend_from_slice(&corpus);
    }
    let t = std::time::Instant::now();
    let insns = decode(&bytes).unwrap();
    let decoded = t.elapsed();
    let t = std::time::Instant::now();
    let back = encode(&insns);
    let encoded = t.elapsed();
    assert!(insns.len() >= 1_000_000 - 1_000_000 / 20);
    assert!(back == bytes);
    eprintln!(
        "{} instructions ({} slots): decode {decoded:?}, encode {encoded:?}",
        insns.len(),
        bytes.len() / 8
    );
}

const LLVM_OBJDUMP: &str = "llvm-objdump-19";

/// Whether the llvm-objdump comparison can run; in CI (`CI` set) its absence is a failure.
fn llvm_tool_available(tool: &str, test: &str) -> bool {
    match Command::new(tool).arg("--version").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("{test}: {tool} is required in CI (CI is set) but cannot be run");
            }
            eprintln!("SKIPPED {test}: {tool} not found");
            false
        }
    }
}

/// llvm-objdump's `-d --no-show-raw-insn` listing of `path`, in the `+alu32` syntax or not.
/// Cached: two tests read the same listings.
fn llvm_objdump_text(path: &Path, alu32: bool) -> String {
    type Cache = Mutex<HashMap<(PathBuf, bool), String>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (path.to_path_buf(), alu32);
    if let Some(t) = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .get(&key)
    {
        return t.clone();
    }
    let out = Command::new(LLVM_OBJDUMP)
        .args(["-d", "--no-show-raw-insn"])
        .args(alu32.then_some("--mattr=+alu32"))
        .arg(path)
        .output()
        .expect("run llvm-objdump");
    assert!(
        out.status.success(),
        "llvm-objdump failed on {}",
        path.display()
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 disassembly");
    CACHE
        .get()
        .unwrap()
        .lock()
        .unwrap()
        .insert(key, text.clone());
    text
}

/// `section name -> [(slot, text)]` from llvm-objdump's listing.
fn llvm_disassembly(path: &Path, alu32: bool) -> BTreeMap<String, Vec<(usize, String)>> {
    let text = llvm_objdump_text(path, alu32);
    let mut map: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("Disassembly of section ") {
            let name = name.trim_end_matches(':').to_string();
            map.entry(name.clone()).or_default();
            cur = Some(name);
        } else if let Some((addr, insn)) = line.split_once(":\t")
            && let (Some(sec), Ok(slot)) = (&cur, addr.trim().parse::<usize>())
        {
            map.get_mut(sec).unwrap().push((slot, insn.to_string()));
        }
    }
    map
}

/// Whether llvm-objdump 19 cannot print this instruction correctly in the given syntax, and
/// why. Nothing else may differ.
fn llvm19_cannot_print(insn: &Insn, alu32: bool) -> Option<&'static str> {
    match insn {
        // Newer than LLVM 19: printed as `<unknown>`.
        Insn::LoadAcquire { .. } | Insn::StoreRelease { .. } => Some("load-acquire/store-release"),
        // Without +alu32 LLVM 19 has no decoder for 32-bit atomics other than `lock +=`, and it
        // misreads a 32-bit atomic_fetch_add as that `lock +=`. These are compared against the
        // `--mattr=+alu32` run instead.
        Insn::Atomic {
            width: Width::W32,
            op,
            ..
        } if !alu32 && *op != AtomicOp::Add => Some("32-bit atomic without +alu32"),
        _ => None,
    }
}

/// Compares our disassembly of every program section of `path` with llvm-objdump's, instruction
/// by instruction, in both syntaxes. Branch-target labels come from the object's symbols through
/// `SymbolLabels`, so they are compared as they are; the only normalisation is that of
/// `llvm19_cannot_print`. Returns the number of instructions compared.
fn compare_with_llvm_objdump(path: &Path) -> usize {
    let data = std::fs::read(path).unwrap();
    let plain = llvm_disassembly(path, false);
    let alu32 = llvm_disassembly(path, true);
    let mut compared = 0;
    for sec in program_sections(&data) {
        let insns = decode(&sec.bytes).unwrap();
        let labels = SymbolLabels::new(sec.symbols.clone());
        for (use_alu32, theirs) in [(false, &plain), (true, &alu32)] {
            let theirs = theirs.get(&sec.name).unwrap_or_else(|| {
                panic!("{}: llvm-objdump shows no {}", path.display(), sec.name)
            });
            let their_slots: Vec<usize> = theirs.iter().map(|t| t.0).collect();
            let our_slots: Vec<usize> = insns.iter().map(|i| i.slot).collect();
            assert_eq!(
                our_slots,
                their_slots,
                "{} {}: instruction slots",
                path.display(),
                sec.name
            );
            let opts = DisasmOptions { alu32: use_alu32 };
            for (si, (_, their_text)) in insns.iter().zip(theirs) {
                let mut ours = String::new();
                let label = si.insn.jump_target(si.slot).and_then(|t| labels.label(t));
                write_insn(&mut ours, &si.insn, opts, label.as_deref()).unwrap();
                let expected = match llvm19_cannot_print(&si.insn, use_alu32) {
                    None => their_text.clone(),
                    Some("32-bit atomic without +alu32") => {
                        let a = &alu32[&sec.name];
                        a.iter().find(|t| t.0 == si.slot).unwrap().1.clone()
                    }
                    Some(_) => continue,
                };
                assert_eq!(
                    ours,
                    expected,
                    "{} section {} slot {} (alu32 syntax: {use_alu32})",
                    path.display(),
                    sec.name,
                    si.slot
                );
                compared += 1;
            }
        }
    }
    compared
}

#[test]
fn disassembly_matches_llvm_objdump_on_every_fixture() {
    if !llvm_tool_available(
        LLVM_OBJDUMP,
        "disassembly_matches_llvm_objdump_on_every_fixture",
    ) {
        return;
    }
    let mut compared = 0;
    for path in common::fixture_objects() {
        compared += compare_with_llvm_objdump(&path);
    }
    eprintln!("compared {compared} instructions");
    assert!(compared > 0);
}

struct SymbolsOnly(SymbolLabels);

impl Annotations for SymbolsOnly {
    fn symbols_at(&self, slot: usize) -> Vec<String> {
        self.0.at(slot as u64).map(str::to_string).collect()
    }
    fn target_label(&self, target_slot: i64) -> Option<String> {
        self.0.label(target_slot)
    }
}

/// The whole `disassemble` output (symbol headers, addresses, layout) against llvm-objdump's
/// complete `--mattr=+alu32` listing of every fixture, byte for byte. Objects with
/// load-acquire/store-release would need the per-instruction normalisation and are left to the
/// test above.
#[test]
fn full_listing_matches_llvm_objdump_on_every_fixture() {
    if !llvm_tool_available(
        LLVM_OBJDUMP,
        "full_listing_matches_llvm_objdump_on_every_fixture",
    ) {
        return;
    }
    for path in common::fixture_objects() {
        let data = std::fs::read(&path).unwrap();
        let mut ours = format!("\n{}:\tfile format elf64-bpf\n", path.display());
        let mut newer_than_llvm19 = false;
        for sec in program_sections(&data) {
            let insns = decode(&sec.bytes).unwrap();
            newer_than_llvm19 |= insns
                .iter()
                .any(|i| llvm19_cannot_print(&i.insn, true).is_some());
            ours.push_str(&format!("\nDisassembly of section {}:\n", sec.name));
            let ann = SymbolsOnly(SymbolLabels::new(sec.symbols));
            disassemble(&mut ours, &insns, &ann, DisasmOptions { alu32: true }).unwrap();
        }
        if newer_than_llvm19 {
            continue;
        }
        let theirs = llvm_objdump_text(&path, true);
        assert_eq!(ours, theirs, "{}", common::fixture_name(&path));
    }
}

/// Every instruction form LLVM 19 can assemble, in its own syntax.
const ALL_FORMS_ASM: &str = r#"
	.text
	.globl f
f:
	r1 = r2
	w1 = w2
	r1 += 5
	w1 += -5
	r1 -= r2
	w1 -= 7
	r1 *= r2
	w1 *= w2
	r1 /= r2
	w1 /= 3
	r1 s/= r2
	w1 s/= w2
	r1 s/= 3
	w1 s/= -3
	r1 %= r2
	w1 %= w2
	r1 s%= r2
	w1 s%= 7
	r1 |= r2
	w1 |= 0x7fffffff
	r1 &= r2
	w1 &= -1
	r1 <<= r2
	w1 <<= 3
	r1 >>= r2
	w1 >>= w2
	r1 s>>= r2
	w1 s>>= 31
	r1 ^= r2
	w1 ^= w2
	r1 = -r1
	w1 = -w1
	r1 = 0x7fffffff
	r1 = -2147483648
	w1 = -1
	r1 = (s8)r2
	r1 = (s16)r2
	r1 = (s32)r2
	w1 = (s8)w2
	w1 = (s16)w2
	r1 = le16 r1
	r1 = le32 r1
	r1 = le64 r1
	r1 = be16 r1
	r1 = be32 r1
	r1 = be64 r1
	r1 = bswap16 r1
	r1 = bswap32 r1
	r1 = bswap64 r1
	r1 = addr_space_cast(r2, 0, 1)
	r1 = addr_space_cast(r2, 1, 0)
	r1 = *(u8 *)(r2 + 1)
	r1 = *(u16 *)(r2 - 1)
	r1 = *(u32 *)(r2 + 0x7fff)
	r1 = *(u64 *)(r10 - 0x8000)
	r1 = *(s8 *)(r2 + 1)
	r1 = *(s16 *)(r2 + 1)
	r1 = *(s32 *)(r2 + 1)
	*(u8 *)(r1 + 2) = r3
	*(u16 *)(r1 + 2) = r3
	*(u32 *)(r1 + 2) = r3
	*(u64 *)(r1 + 2) = r3
	*(u8 *)(r1 + 2) = 7
	*(u16 *)(r1 + 2) = 7
	*(u32 *)(r1 + 2) = -7
	*(u64 *)(r10 - 8) = 7
	lock *(u32 *)(r1 + 4) += w2
	lock *(u64 *)(r1 + 4) += r2
	lock *(u32 *)(r1 + 4) |= w2
	lock *(u64 *)(r1 + 4) |= r2
	lock *(u32 *)(r1 + 4) &= w2
	lock *(u64 *)(r1 + 4) &= r2
	lock *(u32 *)(r1 + 4) ^= w2
	lock *(u64 *)(r1 + 4) ^= r2
	w2 = atomic_fetch_add((u32 *)(r1 + 4), w2)
	r2 = atomic_fetch_add((u64 *)(r1 + 4), r2)
	w2 = atomic_fetch_or((u32 *)(r1 + 4), w2)
	r2 = atomic_fetch_or((u64 *)(r1 + 4), r2)
	w2 = atomic_fetch_and((u32 *)(r1 + 4), w2)
	r2 = atomic_fetch_and((u64 *)(r1 + 4), r2)
	w2 = atomic_fetch_xor((u32 *)(r1 + 4), w2)
	r2 = atomic_fetch_xor((u64 *)(r1 + 4), r2)
	w2 = xchg32_32(r1 + 4, w2)
	r2 = xchg_64(r1 + 4, r2)
	w0 = cmpxchg32_32(r1 + 4, w0, w2)
	r0 = cmpxchg_64(r1 + 4, r0, r2)
	r0 = 1 ll
	r0 = 0x123456789abc ll
	r0 = -1 ll
	r0 = *(u8 *)skb[5]
	r0 = *(u16 *)skb[-5]
	r0 = *(u32 *)skb[5]
	r0 = *(u8 *)skb[r3]
	r0 = *(u16 *)skb[r3]
	r0 = *(u32 *)skb[r3]
L1:
	goto L1
	gotol L1
	if r1 == r2 goto L1
	if r1 != 5 goto L1
	if r1 > r2 goto L1
	if r1 >= -1 goto L1
	if r1 < r2 goto L1
	if r1 <= r2 goto L1
	if r1 s> r2 goto L1
	if r1 s>= r2 goto L1
	if r1 s< r2 goto L1
	if r1 s<= 0x7fffffff goto L1
	if r1 & r2 goto L1
	if r1 & 3 goto L1
	if w1 == w2 goto L1
	if w1 != 5 goto L1
	if w1 > w2 goto L1
	if w1 >= 5 goto L1
	if w1 < w2 goto L1
	if w1 <= 5 goto L1
	if w1 s> w2 goto L1
	if w1 s>= 5 goto L1
	if w1 s< -3 goto L1
	if w1 s<= w2 goto L1
	if w1 & 3 goto L1
	if w1 & w2 goto L2
	may_goto L2
	goto L2
	call 1
	call f
L2:
	exit
"#;

#[test]
fn disassembly_matches_llvm_objdump_on_every_assembled_form() {
    let test = "disassembly_matches_llvm_objdump_on_every_assembled_form";
    if !llvm_tool_available(LLVM_OBJDUMP, test) || !llvm_tool_available("llvm-mc-19", test) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("opsplit-insn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, obj) = (dir.join("all.s"), dir.join("all.o"));
    std::fs::write(&src, ALL_FORMS_ASM).unwrap();
    let st = Command::new("llvm-mc-19")
        .args(["-triple", "bpfel", "-mcpu=v4", "-filetype=obj", "-o"])
        .arg(&obj)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "llvm-mc-19 failed");
    let n = compare_with_llvm_objdump(&obj);
    let data = std::fs::read(&obj).unwrap();
    let insns = decode(&program_sections(&data)[0].bytes).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    // Each assembled instruction is compared in both syntaxes.
    let asm_insns = ALL_FORMS_ASM
        .lines()
        .filter(|l| l.starts_with('\t') && !l.trim_start().starts_with('.'))
        .count();
    assert_eq!(insns.len(), asm_insns);
    assert_eq!(n, 2 * insns.len());
}

// ---------------------------------------------------------------------------------------------
// Random input.

fn table_code() -> impl Strategy<Value = u8> {
    let codes: Vec<u8> = kernel_opcode_table().into_iter().collect();
    prop::sample::select(codes)
}

/// One slot: mostly kernel opcodes with small register numbers and interesting fields, so that
/// a good share decodes, and some entirely random bytes.
fn slot_strategy() -> impl Strategy<Value = [u8; 8]> {
    let field_imm = prop_oneof![
        Just(0i32),
        Just(1),
        Just(16),
        Just(32),
        Just(64),
        Just(0x100),
        Just(0x110),
        Just(0xe1),
        Just(0xf1),
        any::<i32>()
    ];
    let field_off = prop_oneof![
        Just(0i16),
        Just(1),
        Just(8),
        Just(16),
        Just(32),
        any::<i16>()
    ];
    let structured = (
        prop_oneof![table_code(), Just(0u8)],
        0u8..12,
        0u8..12,
        field_off,
        field_imm,
    )
        .prop_map(|(c, d, s, o, i)| slot(c, d, s, o, i));
    prop_oneof![4 => structured, 1 => any::<[u8; 8]>()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_and_decoded_prefixes_re_encode(
        bytes in prop::collection::vec(any::<u8>(), 0..200)
    ) {
        check_stream(&bytes);
    }

    #[test]
    fn random_slots_never_panic_and_decoded_prefixes_re_encode(
        slots in prop::collection::vec(slot_strategy(), 0..40),
        tail in 0usize..8,
    ) {
        let mut bytes: Vec<u8> = slots.concat();
        bytes.extend(std::iter::repeat_n(0x95u8, tail));
        check_stream(&bytes);
    }
}

/// Decodes a stream: whatever prefix decodes re-encodes to exactly those bytes, and the whole
/// decodes iff no error occurred, with the error at the first undecodable slot.
fn check_stream(bytes: &[u8]) {
    let mut ok = Vec::new();
    let mut err = None;
    for r in Decoder::new(bytes) {
        match r {
            Ok(i) => ok.push(i),
            Err(e) => err = Some(e),
        }
    }
    let enc = encode(&ok);
    assert_eq!(enc, bytes[..enc.len()]);
    match err {
        None => {
            assert_eq!(enc.len(), bytes.len());
            assert_eq!(decode(bytes).unwrap(), ok);
        }
        Some(e) => {
            assert_eq!(e.slot * 8, enc.len());
            assert_eq!(decode(bytes).unwrap_err(), e);
            let _ = e.to_string();
        }
    }
    for SlotInsn { slot, insn } in &ok {
        let _ = insn.to_string();
        let _ = (
            insn.regs_read(),
            insn.regs_written(),
            insn.jump_target(*slot),
            insn.ends_block(),
        );
    }
}
