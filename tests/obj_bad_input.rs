//! Bad input gets a clear error naming the problem, never a panic.
//!
//! Mutated inputs are built here from a committed fixture, at offsets found by parsing it with
//! the `object` crate (not with the reader under test), so they follow fixture rebuilds.

mod common;

use object::{Object as _, ObjectSection as _};
use opsplit::Error;
use opsplit::obj::Object;
use proptest::prelude::*;

/// A sock_ops fixture with relocations, `ld_imm64`, `.BTF` and `.BTF.ext`.
fn fixture() -> Vec<u8> {
    std::fs::read(common::fixtures_dir().join("tcp_iw.o")).expect("fixtures/tcp_iw.o")
}

fn parse_err(bytes: &[u8]) -> Error {
    match Object::parse(bytes) {
        Ok(_) => panic!("malformed input was accepted"),
        Err(e) => e,
    }
}

fn section_range(bytes: &[u8], name: &str) -> (usize, usize) {
    let f = object::File::parse(bytes).unwrap();
    let s = f
        .section_by_name(name)
        .unwrap_or_else(|| panic!("fixture has {name}"));
    let (off, len) = s.file_range().expect("section has file data");
    (off as usize, len as usize)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// File offset of the section header of section `name`.
fn section_header(bytes: &[u8], name: &str) -> usize {
    let f = object::File::parse(bytes).unwrap();
    let index = f.section_by_name(name).unwrap().index().0;
    let shoff = u64_at(bytes, 0x28) as usize;
    let shentsize = u16_at(bytes, 0x3a) as usize;
    shoff + index * shentsize
}

fn assert_msg(e: &Error, parts: &[&str]) {
    let s = e.to_string();
    for p in parts {
        assert!(s.contains(p), "error {s:?} does not mention {p:?}");
    }
}

#[test]
fn empty_file() {
    let e = parse_err(&[]);
    assert!(matches!(e, Error::NotElf(_)), "{e:?}");
    assert_msg(&e, &["not an ELF file", "empty"]);
}

#[test]
fn not_elf() {
    let e = parse_err(b"#!/bin/sh\necho this is not an object\n");
    assert!(matches!(e, Error::NotElf(_)), "{e:?}");
    assert_msg(&e, &["no ELF magic"]);
    let e = parse_err(&fixture()[..40]);
    assert_msg(&e, &["truncated ELF header"]);
}

#[test]
fn another_machine() {
    let mut b = fixture();
    b[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    let e = parse_err(&b);
    assert!(
        matches!(e, Error::WrongMachine { machine: 62, .. }),
        "{e:?}"
    );
    assert_msg(&e, &["x86-64", "EM_BPF"]);
}

#[test]
fn big_endian_bpf_is_unsupported_not_malformed() {
    let b =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bpfeb.o"))
            .unwrap();
    assert_eq!(b[5], 2, "tests/data/bpfeb.o is big-endian");
    let e = parse_err(&b);
    assert!(matches!(e, Error::Unsupported(_)), "{e:?}");
    assert_eq!(e.to_string(), "unsupported: big-endian BPF object");
}

#[test]
fn truncated_section() {
    let mut b = fixture();
    let h = section_header(&b, "sockops");
    let len = b.len() as u64;
    b[h + 32..h + 40].copy_from_slice(&len.to_le_bytes()); // sh_size: far past the end
    let e = parse_err(&b);
    assert!(matches!(e, Error::Elf { .. }), "{e:?}");
    assert_msg(&e, &["`sockops`", "past the end of the file"]);
}

#[test]
fn relocation_out_of_range() {
    let mut b = fixture();
    let (rel, _) = section_range(&b, ".relsockops");
    let (_, code_len) = section_range(&b, "sockops");
    b[rel..rel + 8].copy_from_slice(&(code_len as u64).to_le_bytes()); // r_offset
    let e = parse_err(&b);
    assert!(matches!(e, Error::Relocation { index: 0, .. }), "{e:?}");
    assert_msg(&e, &["`sockops`", "past the end of the section"]);
}

#[test]
fn relocation_against_missing_symbol() {
    let mut b = fixture();
    let (rel, _) = section_range(&b, ".relsockops");
    let info = u64_at(&b, rel + 8);
    let patched = (9999u64 << 32) | (info & 0xffff_ffff);
    b[rel + 8..rel + 16].copy_from_slice(&patched.to_le_bytes());
    let e = parse_err(&b);
    assert!(matches!(e, Error::Relocation { .. }), "{e:?}");
    assert_msg(&e, &["symbol #9999", "symbol table has"]);
}

#[test]
fn relocation_on_the_wrong_instruction() {
    let mut b = fixture();
    let (rel, _) = section_range(&b, ".relsockops");
    let (code, _) = section_range(&b, "sockops");
    // Point the first relocation (an ld_imm64 map reference) at the program's first slot.
    let first = u64_at(&b, rel) as usize;
    assert_eq!(b[code + first], 0x18, "first relocation is on an ld_imm64");
    b[rel..rel + 8].copy_from_slice(&0u64.to_le_bytes());
    assert_ne!(b[code], 0x18);
    let e = parse_err(&b);
    assert_msg(&e, &["R_BPF_64_64", "expected ld_imm64"]);
}

#[test]
fn string_table_without_terminator() {
    let mut b = fixture();
    let (off, len) = section_range(&b, ".strtab");
    b[off + len - 1] = b'x';
    let e = parse_err(&b);
    assert!(matches!(e, Error::Elf { .. }), "{e:?}");
    assert_msg(&e, &["not NUL-terminated"]);
}

#[test]
fn unknown_opcode() {
    let mut b = fixture();
    let (code, _) = section_range(&b, "sockops");
    b[code] = 0xf7; // ALU64 with operation 0xf0: no such operation
    let e = parse_err(&b);
    assert!(
        matches!(&e, Error::Instruction { slot: 0, function, section, .. }
            if function == "tcp_iw" && section == "sockops"),
        "{e:?}"
    );
    assert_msg(&e, &["unknown opcode 0xf7"]);
}

#[test]
fn ld_imm64_missing_its_second_half() {
    let mut b = fixture();
    let (rel, _) = section_range(&b, ".relsockops");
    let (code, _) = section_range(&b, "sockops");
    let at = code + u64_at(&b, rel) as usize;
    assert_eq!(b[at], 0x18);
    b[at + 8] = 0x07; // the second slot now looks like an ALU64 instruction
    let e = parse_err(&b);
    assert!(matches!(e, Error::Instruction { .. }), "{e:?}");
    assert_msg(&e, &["ld_imm64 is missing its second half", "tcp_iw"]);
}

#[test]
fn btf_with_bad_offsets() {
    let mut b = fixture();
    let (btf, len) = section_range(&b, ".BTF");
    // btf_header.str_off (at +16) past the end of the section.
    b[btf + 16..btf + 20].copy_from_slice(&(len as u32 * 2).to_le_bytes());
    let e = parse_err(&b);
    assert_msg(&e, &[".BTF"]);
}

/// Byte offset (inside `.BTF`) of the first type record whose kind refers to another type
/// through its `type` field, walking records by the kernel's layout rules.
fn first_referring_type(btf: &[u8]) -> usize {
    let hdr_len = u32_at(btf, 4) as usize;
    let type_off = u32_at(btf, 8) as usize;
    let type_len = u32_at(btf, 12) as usize;
    let mut at = hdr_len + type_off;
    while at < hdr_len + type_off + type_len {
        let info = u32_at(btf, at + 4);
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        // PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, VAR, TYPE_TAG refer through `type`.
        if matches!(kind, 2 | 8 | 9 | 10 | 11 | 12 | 14 | 18) {
            return at;
        }
        at += 12
            + match kind {
                1 => 4,               // INT
                3 => 12,              // ARRAY
                4 | 5 => 12 * vlen,   // STRUCT, UNION
                6 | 13 => 8 * vlen,   // ENUM, FUNC_PROTO
                15 | 19 => 12 * vlen, // DATASEC, ENUM64
                17 => 4,              // DECL_TAG
                _ => 0,               // FWD, FLOAT
            };
    }
    panic!("no referring type in .BTF");
}

#[test]
fn btf_with_bad_type_ids() {
    let mut b = fixture();
    let (btf, len) = section_range(&b, ".BTF");
    let t = first_referring_type(&b[btf..btf + len]);
    b[btf + t + 8..btf + t + 12].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    let e = parse_err(&b);
    assert_msg(&e, &[".BTF", "16777215"]);
}

#[test]
fn btf_ext_with_bad_func_info_type() {
    let mut b = fixture();
    let (ext, _) = section_range(&b, ".BTF.ext");
    let hdr_len = u32_at(&b, ext + 4) as usize;
    let func_info_off = u32_at(&b, ext + 8) as usize;
    // func_info: rec_size (u32), then sec_name_off, num_info, then {insn_off, type_id} records.
    let first_type = ext + hdr_len + func_info_off + 4 + 8 + 4;
    b[first_type..first_type + 4].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    let e = parse_err(&b);
    assert_msg(&e, &[".BTF.ext"]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Random byte changes and truncations of a fixture: the reader (and the writer, for what it
    /// accepts) may refuse, but never panic.
    #[test]
    fn mutated_fixture_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut b = fixture();
        for (i, v) in edits {
            let at = i.index(b.len());
            b[at] = v;
        }
        if let Some(c) = cut {
            let n = c.index(b.len());
            b.truncate(n);
        }
        if let Ok(obj) = Object::parse(&b) {
            let _ = obj.write();
        }
    }
}
