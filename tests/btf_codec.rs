//! The BTF / BTF.ext codec against every committed fixture, the running kernel's vmlinux BTF,
//! bpftool and libbpf as oracles, and malformed input.

mod common;

use object::{Object, ObjectSection};
use opsplit::btf::{
    Btf, BtfError, BtfExt, BtfType, CoreRelo, CoreReloKind, ExtSection, FuncInfo, FuncLinkage,
    IntEncoding, Kind, LineInfo, MapValuesKind, Section, SynthVar, TypeIdMap, TypeKind, VarLinkage,
    VarSecinfo,
};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Every committed fixture object, recursively (`fixtures/**/*.o`).
fn all_fixtures() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("readable fixture dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "o") {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(&common::fixtures_dir(), &mut v);
    v.sort();
    assert!(
        !v.is_empty(),
        "no fixtures under {:?}",
        common::fixtures_dir()
    );
    v
}

/// The raw bytes of section `name` of an ELF object, if present.
fn section(path: &Path, name: &str) -> Option<Vec<u8>> {
    let data = std::fs::read(path).expect("fixture readable");
    let file = object::File::parse(&*data).expect("fixture is ELF");
    let sec = file.section_by_name(name)?;
    Some(sec.data().expect("section data").to_vec())
}

/// (path, .BTF, .BTF.ext) of every fixture that has BTF.
fn fixtures_with_btf() -> Vec<(PathBuf, Vec<u8>, Option<Vec<u8>>)> {
    all_fixtures()
        .into_iter()
        .filter_map(|p| {
            let btf = section(&p, ".BTF")?;
            let ext = section(&p, ".BTF.ext");
            Some((p, btf, ext))
        })
        .collect()
}

fn fixture(name: &str) -> PathBuf {
    common::fixtures_dir().join(name)
}

#[test]
fn every_fixture_btf_round_trips_byte_exact() {
    let fx = fixtures_with_btf();
    assert!(
        fx.len() >= 10,
        "expected many fixtures with BTF, got {}",
        fx.len()
    );
    for (p, bytes, _) in &fx {
        let btf = Btf::parse(bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(btf.types.len() > 1, "{}: no types", p.display());
        assert_eq!(
            btf.to_bytes(),
            *bytes,
            "{}: .BTF not byte-identical",
            p.display()
        );
        btf.validate().unwrap();
    }
}

#[test]
fn every_fixture_btf_ext_round_trips_byte_exact_and_checks() {
    let mut n = 0;
    for (p, bytes, ext) in fixtures_with_btf() {
        let Some(ext_bytes) = ext else { continue };
        n += 1;
        let btf = Btf::parse(&bytes).unwrap();
        let ext = BtfExt::parse(&ext_bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(
            ext.to_bytes(),
            ext_bytes,
            "{}: .BTF.ext not byte-identical",
            p.display()
        );
        ext.check(&btf)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(!ext.func_info.is_empty(), "{}: no func_info", p.display());
        assert!(!ext.line_info.is_empty(), "{}: no line_info", p.display());
        // Every func_info section name is an ELF section of the object, and every record points
        // inside it.
        let data = std::fs::read(&p).unwrap();
        let file = object::File::parse(&*data).unwrap();
        for g in &ext.func_info.sections {
            let name = btf.str_at(g.sec_name_off).unwrap();
            let sec = file
                .section_by_name(name)
                .unwrap_or_else(|| panic!("{}: func_info for missing section {name}", p.display()));
            for r in &g.records {
                assert!(u64::from(r.insn_off) < sec.size(), "{}: {r:?}", p.display());
                assert_eq!(u64::from(r.insn_slot()) * 8, u64::from(r.insn_off));
            }
        }
    }
    assert!(n >= 10, "expected many fixtures with .BTF.ext, got {n}");
}

#[test]
fn fixtures_without_debug_info_have_no_btf() {
    let p = fixture("nobtf_basic.o");
    assert!(section(&p, ".BTF").is_none());
    assert!(section(&p, ".BTF.ext").is_none());
}

#[test]
fn co_re_records_are_decoded() {
    // Fixtures include bpf_core_read.h; at least one uses CO-RE. Each record's access string is a
    // colon-separated index list and its type exists.
    let mut seen = 0;
    for (p, bytes, ext) in fixtures_with_btf() {
        let Some(ext) = ext else { continue };
        let btf = Btf::parse(&bytes).unwrap();
        let ext = BtfExt::parse(&ext).unwrap();
        for g in &ext.core_relo.sections {
            for r in &g.records {
                seen += 1;
                let acc = btf.str_at(r.access_str_off).unwrap();
                assert!(
                    !acc.is_empty() && acc.split(':').all(|x| x.parse::<u32>().is_ok()),
                    "{}: access string {acc:?}",
                    p.display()
                );
                assert!(!matches!(r.kind, CoreReloKind::Unknown(_)), "{r:?}");
                assert!((r.type_id as usize) < btf.types.len());
            }
        }
    }
    assert!(seen > 0, "no fixture has CO-RE relocations");
}

#[test]
fn line_info_names_the_source_files() {
    let p = fixture("tcp_iw.o");
    let btf = Btf::parse(&section(&p, ".BTF").unwrap()).unwrap();
    let ext = BtfExt::parse(&section(&p, ".BTF.ext").unwrap()).unwrap();
    let files: std::collections::BTreeSet<String> = ext
        .line_info
        .sections
        .iter()
        .flat_map(|g| g.records.iter())
        .map(|r| btf.strings.get_lossy(r.file_name_off).unwrap().into_owned())
        .collect();
    assert!(files.iter().any(|f| f.ends_with("tcp_iw.c")), "{files:?}");
    let src = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("bpf/tcp_iw.c"))
        .unwrap();
    let lines: Vec<&str> = src.lines().collect();
    for r in ext.line_info.sections.iter().flat_map(|g| g.records.iter()) {
        let file = btf.strings.get_lossy(r.file_name_off).unwrap();
        if !file.ends_with("tcp_iw.c") || r.line == 0 {
            continue;
        }
        // The line text stored in BTF is the source line (clang strips leading blanks).
        let text = btf.strings.get_lossy(r.line_off).unwrap();
        assert_eq!(
            lines[r.line as usize - 1].trim(),
            text.trim(),
            "line {} col {}",
            r.line,
            r.col
        );
    }
}

#[test]
fn vmlinux_btf_round_trips_byte_exact() {
    let path = Path::new("/sys/kernel/btf/vmlinux");
    if !path.exists() {
        eprintln!("SKIPPED: {} not present", path.display());
        return;
    }
    let bytes = std::fs::read(path).unwrap();
    let t0 = Instant::now();
    let btf = Btf::parse(&bytes).unwrap();
    let t1 = Instant::now();
    let out = btf.to_bytes();
    let t2 = Instant::now();
    assert_eq!(out.len(), bytes.len());
    assert!(out == bytes, "vmlinux BTF not byte-identical");
    eprintln!(
        "vmlinux BTF: {} bytes, {} types: parse {:?}, serialize {:?}",
        bytes.len(),
        btf.types.len(),
        t1 - t0,
        t2 - t1
    );
    // A real kernel has every classic kind; spot-check lookups on well-known types.
    let sk = btf.find_by_name("bpf_sock_ops", Kind::Struct).unwrap();
    let (_, c) = btf.composite(sk).unwrap();
    assert_eq!(btf.resolve_size(sk).unwrap(), c.size);
    let (idx, op) = btf.member_by_name(sk, "op").unwrap().unwrap();
    assert_eq!((idx, op.bit_offset), (0, 0));
    let u32_id = btf.skip_mods_and_typedefs(op.type_id).unwrap();
    assert!(matches!(&btf.types[u32_id as usize].kind, TypeKind::Int(i) if i.size == 4));
    // `__u32 remote_ip6[4]`: an ARRAY of a typedef, 16 bytes, 128 bits after local_ip4.
    let (_, ip6) = btf.member_by_name(sk, "remote_ip6").unwrap().unwrap();
    assert_eq!(btf.resolve_size(ip6.type_id).unwrap(), 16);
    let (_, lip4) = btf.member_by_name(sk, "local_ip4").unwrap().unwrap();
    assert_eq!(ip6.bit_offset, lip4.bit_offset + 32);
    let kinds: std::collections::BTreeSet<Kind> = btf.types.iter().map(|t| t.kind.kind()).collect();
    for k in [
        Kind::Int,
        Kind::Ptr,
        Kind::Array,
        Kind::Struct,
        Kind::Union,
        Kind::Enum,
        Kind::Enum64,
        Kind::Fwd,
        Kind::Typedef,
        Kind::Volatile,
        Kind::Const,
        Kind::Func,
        Kind::FuncProto,
        Kind::Var,
        Kind::Datasec,
    ] {
        assert!(kinds.contains(&k), "vmlinux has no {k}");
    }
}

/// `bpftool btf dump file <path> format raw`, or `None` if bpftool is not installed.
fn bpftool_raw(path: &Path) -> Option<String> {
    let out = std::process::Command::new("bpftool")
        .args(["btf", "dump", "file"])
        .arg(path)
        .args(["format", "raw"])
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "bpftool failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("bpftool prints UTF-8"))
}

#[test]
fn raw_dump_matches_bpftool_on_every_fixture() {
    let mut compared = 0;
    for (p, bytes, _) in fixtures_with_btf() {
        let Some(expected) = bpftool_raw(&p) else {
            eprintln!("SKIPPED: bpftool not installed");
            return;
        };
        let ours = Btf::parse(&bytes).unwrap().dump_raw();
        if ours != expected {
            let first = ours
                .lines()
                .zip(expected.lines())
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("ours:    {a}\nbpftool: {b}"))
                .unwrap_or_else(|| "(length differs)".into());
            panic!("{}: raw dump differs from bpftool:\n{first}", p.display());
        }
        compared += 1;
    }
    assert!(compared >= 10);
}

#[test]
fn raw_dump_matches_bpftool_on_vmlinux() {
    let path = Path::new("/sys/kernel/btf/vmlinux");
    if !path.exists() {
        eprintln!("SKIPPED: {} not present", path.display());
        return;
    }
    let Some(expected) = bpftool_raw(path) else {
        eprintln!("SKIPPED: bpftool not installed");
        return;
    };
    let ours = Btf::parse(&std::fs::read(path).unwrap())
        .unwrap()
        .dump_raw();
    let diffs: Vec<String> = ours
        .lines()
        .zip(expected.lines())
        .filter(|(a, b)| a != b)
        .take(5)
        .map(|(a, b)| format!("ours:    {a}\nbpftool: {b}"))
        .collect();
    assert!(diffs.is_empty(), "raw dump differs:\n{}", diffs.join("\n"));
    assert_eq!(ours.lines().count(), expected.lines().count());
}
