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

// ---------------------------------------------------------------------------------------------
// BTF-defined maps, with libbpf (opening the object, no kernel needed) as the oracle.

#[test]
fn map_defs_agree_with_libbpf_on_every_fixture() {
    let mut compared = 0;
    for (p, bytes, _) in fixtures_with_btf() {
        let btf = Btf::parse(&bytes).unwrap();
        let defs = btf
            .map_defs()
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let Ok(open) = libbpf_rs::ObjectBuilder::default().open_file(&p) else {
            // libbpf >= 1.0 refuses legacy SEC("maps"); such objects have no .maps DATASEC.
            assert!(
                defs.is_empty(),
                "{}: libbpf refused an object with .maps",
                p.display()
            );
            continue;
        };
        for d in &defs {
            let m = open
                .maps()
                .find(|m| m.name().to_str() == Some(d.name.as_str()))
                .unwrap_or_else(|| panic!("{}: libbpf has no map {}", p.display(), d.name));
            let what = format!("{} map {}", p.display(), d.name);
            assert_eq!(d.map_type, Some(u32::from(m.map_type())), "{what}");
            assert_eq!(d.key_size.unwrap_or(0), m.key_size(), "{what}");
            assert_eq!(d.value_size.unwrap_or(0), m.value_size(), "{what}");
            // libbpf rounds ringbuf sizes up; no fixture uses a ringbuf with an odd size.
            assert_eq!(d.max_entries.unwrap_or(0), m.max_entries(), "{what}");
            assert_eq!(d.map_flags.unwrap_or(0), m.map_flags(), "{what}");
            assert!(d.unknown_fields.is_empty(), "{what}");
            compared += 1;
        }
    }
    assert!(compared >= 20, "only {compared} maps compared");
}

#[test]
fn prog_array_values_are_found() {
    let p = fixture("tail_call.o");
    let btf = Btf::parse(&section(&p, ".BTF").unwrap()).unwrap();
    let defs = btf.map_defs().unwrap();
    let pa = defs.iter().find(|d| d.name == "op_handlers").unwrap();
    assert_eq!(pa.map_type, Some(opsplit::btf::MAP_TYPE_PROG_ARRAY));
    assert_eq!(pa.value_size, Some(4));
    let v = pa.values.as_ref().unwrap();
    let MapValuesKind::ProgArray { proto } = v.kind else {
        panic!("{v:?}")
    };
    // `int(struct bpf_sock_ops *)`
    let TypeKind::FuncProto(fp) = &btf.types[proto as usize].kind else {
        panic!()
    };
    assert_eq!(fp.params.len(), 1);
    assert_eq!(btf.resolve_size(fp.ret).unwrap(), 4);
    // `values` is the last member: after type, max_entries and key (8 bytes each).
    assert_eq!(v.member_offset, 24);
    assert!(
        matches!(btf.types[v.array_type_id as usize].kind, TypeKind::Array(a) if a.nelems == 0)
    );
    // clang leaves DATASEC offsets 0 (libbpf fixes them up from the ELF symbols), so the def's
    // offset is what the file says, not the symbol's address.
    let (_, ds) = btf.find_datasec(".maps").unwrap();
    let si = ds.vars.iter().find(|v| v.type_id == pa.var_id).unwrap();
    assert_eq!((pa.offset, pa.size), (si.offset, si.size));
}

#[test]
fn lookups_agree_with_clang_output_on_every_fixture() {
    for (p, bytes, ext) in fixtures_with_btf() {
        let btf = Btf::parse(&bytes).unwrap();
        let what = p.display();
        // clang sizes every DATASEC entry by its variable's type, except that a map with
        // `values` initialisers is larger than its struct (the flexible array gets storage).
        for (id, t) in btf.types.iter().enumerate() {
            if let TypeKind::Datasec(_) = t.kind {
                let maps = btf.name_of(id as u32) == Some(".maps");
                for v in btf.datasec_vars(id as u32).unwrap() {
                    if v.var.is_none() {
                        continue;
                    }
                    let size = btf.resolve_size(v.type_id).unwrap();
                    if maps {
                        assert!(size <= v.secinfo.size, "{what}: {}", v.name);
                    } else {
                        assert_eq!(size, v.secinfo.size, "{what}: {}", v.name);
                    }
                }
            }
        }
        // Every func_info FUNC has a FUNC_PROTO; FUNCs have no size.
        if let Some(ext) = ext {
            let ext = BtfExt::parse(&ext).unwrap();
            for r in ext.func_info.sections.iter().flat_map(|g| &g.records) {
                let (_, proto) = btf.func_proto(r.type_id).unwrap();
                assert!(proto.params.len() <= 5, "{what}");
                let e = btf.resolve_size(r.type_id).unwrap_err().to_string();
                assert!(e.contains("has no size"), "{e}");
            }
        }
        // sockops programs take `struct bpf_sock_ops *`: the proto's first param skips to it.
        if let Some(sk) = btf.find_by_name("bpf_sock_ops", Kind::Struct) {
            let (_, op) = btf.member_by_name(sk, "op").unwrap().unwrap();
            assert_eq!(btf.resolve_size(op.type_id).unwrap(), 4, "{what}");
            assert_eq!(btf.member_by_name(sk, "no_such_member").unwrap(), None);
        }
    }
}

#[test]
fn cyclic_and_unsized_types_are_errors_not_hangs() {
    let mut btf = Btf::new();
    let a = btf.add_string("a").unwrap();
    // typedef a -> const -> typedef a (id 1 -> 2 -> 1)
    btf.add_type(BtfType {
        name_off: a,
        kind: TypeKind::Typedef { type_id: 2 },
    });
    btf.add_type(BtfType {
        name_off: 0,
        kind: TypeKind::Const { type_id: 1 },
    });
    btf.validate().unwrap();
    let btf = Btf::parse(&btf.to_bytes()).unwrap();
    assert_eq!(
        btf.skip_mods_and_typedefs(1).unwrap_err().to_string(),
        "BTF type [1]: modifier/typedef chain is cyclic"
    );
    assert_eq!(
        btf.resolve_size(2).unwrap_err().to_string(),
        "BTF type [2]: type chain deeper than 32 links (or cyclic)"
    );
    assert_eq!(btf.skip_mods(2).unwrap(), 1, "stops at the typedef");
    assert_eq!(
        btf.get(9).unwrap_err().to_string(),
        "BTF type [9]: no such type (the last type id is 2)"
    );
    assert_eq!(
        btf.resolve_size(0).unwrap_err().to_string(),
        "BTF type [0]: has no size: reaches [0] UNKNOWN"
    );
    assert!(btf.func_proto(1).is_err());
    assert!(btf.datasec_vars(1).is_err());
}

/// A map-in-map definition built with the codec's own API (no fixture has one):
/// `struct { __uint(type, ARRAY_OF_MAPS); __uint(max_entries, 4); __type(key, int);
///  __array(values, struct inner); } outer SEC(".maps");`
#[test]
fn map_in_map_inner_definition_is_parsed() {
    let mut btf = Btf::new();
    let inner_def = opsplit::btf::BtfMapDef {
        map_type: Some(2), // ARRAY
        max_entries: Some(7),
        key_size: Some(4),
        value_size: Some(16),
        ..Default::default()
    };
    let inner = btf.add_map_def_struct(&inner_def).unwrap();
    let int = btf.find_or_add_int("int", 4, IntEncoding::Signed).unwrap();
    let idx = btf.array_index_type().unwrap();
    let uint = |btf: &mut Btf, n| {
        let a = btf.add_array(int, idx, n);
        btf.add_ptr(a)
    };
    let t = uint(&mut btf, opsplit::btf::MAP_TYPE_ARRAY_OF_MAPS);
    let me = uint(&mut btf, 4);
    let key = btf.add_ptr(int);
    let inner_ptr = btf.add_ptr(inner);
    let values = btf.add_array(inner_ptr, idx, 0);
    let outer = btf
        .add_struct(
            "",
            32,
            &[
                ("type", t, 0),
                ("max_entries", me, 64),
                ("key", key, 128),
                ("values", values, 192),
            ],
        )
        .unwrap();
    let var = btf.add_var("outer", outer, VarLinkage::Global).unwrap();
    btf.add_to_datasec(
        ".maps",
        VarSecinfo {
            type_id: var,
            offset: 0,
            size: 32,
        },
    )
    .unwrap();
    btf.validate().unwrap();
    let btf = Btf::parse(&btf.to_bytes()).unwrap();
    let defs = btf.map_defs().unwrap();
    assert_eq!(defs.len(), 1);
    let d = &defs[0];
    assert_eq!(d.name, "outer");
    assert_eq!(d.var_id, var);
    assert_eq!(
        (d.max_entries, d.key_size, d.value_size),
        (Some(4), Some(4), Some(4))
    );
    let v = d.values.as_ref().unwrap();
    assert_eq!(v.member_offset, 24);
    let inner = v.kind.inner().unwrap();
    assert_eq!(inner.name, "outer.inner");
    assert_eq!(
        (
            inner.map_type,
            inner.max_entries,
            inner.key_size,
            inner.value_size
        ),
        (Some(2), Some(7), Some(4), Some(16))
    );
}

#[test]
fn map_def_struct_encoding_round_trips_through_the_parser() {
    let mut btf = Btf::new();
    let u64t = btf
        .add_int("unsigned long long", 8, IntEncoding::None)
        .unwrap();
    let def = opsplit::btf::BtfMapDef {
        map_type: Some(1),
        max_entries: Some(1024),
        map_flags: Some(1),
        numa_node: Some(0),
        key_size: Some(4),
        value_size: Some(8),
        value_type_id: Some(u64t),
        map_extra: Some(5),
        pinning: Some(1),
        ..Default::default()
    };
    let s = btf.add_map_def_struct(&def).unwrap();
    let var = btf.add_var("m", s, VarLinkage::Global).unwrap();
    let size = btf.resolve_size(s).unwrap();
    btf.add_to_datasec(
        ".maps",
        VarSecinfo {
            type_id: var,
            offset: 0,
            size,
        },
    )
    .unwrap();
    let got = &btf.map_defs().unwrap()[0];
    assert_eq!(got.map_type, def.map_type);
    assert_eq!(got.max_entries, def.max_entries);
    assert_eq!(got.map_flags, def.map_flags);
    assert_eq!(got.numa_node, def.numa_node);
    assert_eq!(got.key_size, def.key_size);
    assert_eq!(got.value_size, def.value_size);
    assert_eq!(got.value_type_id, Some(u64t));
    assert_eq!(got.key_type_id, None);
    assert_eq!(got.map_extra, def.map_extra);
    assert_eq!(got.pinning, def.pinning);
    assert_eq!((got.offset, got.size), (0, size));
}

#[test]
fn bad_map_definitions_are_named_errors() {
    // No type.
    let mut btf = Btf::new();
    let s = btf
        .add_map_def_struct(&opsplit::btf::BtfMapDef {
            max_entries: Some(1),
            ..Default::default()
        })
        .unwrap();
    let var = btf.add_var("nomap", s, VarLinkage::Global).unwrap();
    btf.add_to_datasec(
        ".maps",
        VarSecinfo {
            type_id: var,
            offset: 0,
            size: 8,
        },
    )
    .unwrap();
    let e = btf.map_defs().unwrap_err();
    assert_eq!(e.to_string(), "BTF map 'nomap': map type isn't specified");

    // Pinning value 2, and a static map.
    for (linkage, pin, want) in [
        (
            VarLinkage::Global,
            2,
            "BTF map 'm': invalid pinning value 2",
        ),
        (
            VarLinkage::Static,
            1,
            "BTF map 'm': unsupported map linkage static (must be global)",
        ),
    ] {
        let mut btf = Btf::new();
        let s = btf
            .add_map_def_struct(&opsplit::btf::BtfMapDef {
                map_type: Some(1),
                pinning: Some(pin),
                ..Default::default()
            })
            .unwrap();
        let var = btf.add_var("m", s, linkage).unwrap();
        btf.add_to_datasec(
            ".maps",
            VarSecinfo {
                type_id: var,
                offset: 0,
                size: 16,
            },
        )
        .unwrap();
        assert_eq!(btf.map_defs().unwrap_err().to_string(), want);
    }

    // `__uint` member that is not a PTR to ARRAY.
    let mut btf = Btf::new();
    let int = btf.add_int("int", 4, IntEncoding::Signed).unwrap();
    let s = btf.add_struct("", 4, &[("type", int, 0)]).unwrap();
    let var = btf.add_var("m", s, VarLinkage::Global).unwrap();
    btf.add_to_datasec(
        ".maps",
        VarSecinfo {
            type_id: var,
            offset: 0,
            size: 4,
        },
    )
    .unwrap();
    assert_eq!(
        btf.map_defs().unwrap_err().to_string(),
        "BTF map 'm': attr 'type': expected PTR, got INT"
    );
}

// ---------------------------------------------------------------------------------------------
// Every kind, built with the API, checked against bpftool, libbpf and the kernel.

/// A BTF with every kind and flag variant the kernel accepts, built with the codec's API.
fn all_kinds_btf() -> Btf {
    use opsplit::btf::*;
    let mut b = Btf::new();
    let int = b.add_int("int", 4, IntEncoding::Signed).unwrap(); // 1
    let pint = b.add_ptr(int); // 2
    let idx = b
        .add_int("__ARRAY_SIZE_TYPE__", 4, IntEncoding::None)
        .unwrap(); // 3
    b.add_array(int, idx, 3); // 4
    let name = |b: &mut Btf, s: &str| b.add_string(s).unwrap();
    let (a, bb, c) = (name(&mut b, "a"), name(&mut b, "b"), name(&mut b, "c"));
    let s_name = name(&mut b, "s");
    let s = b.add_type(BtfType {
        name_off: s_name,
        kind: TypeKind::Struct(Composite {
            size: 8,
            bitfield_encoding: true,
            members: vec![
                Member {
                    name_off: a,
                    type_id: int,
                    bit_offset: 0,
                    bitfield_size: 3,
                },
                Member {
                    name_off: bb,
                    type_id: int,
                    bit_offset: 3,
                    bitfield_size: 5,
                },
                Member {
                    name_off: c,
                    type_id: int,
                    bit_offset: 32,
                    bitfield_size: 0,
                },
            ],
        }),
    }); // 5
    let u_name = name(&mut b, "u");
    b.add_type(BtfType {
        name_off: u_name,
        kind: TypeKind::Union(Composite {
            size: 8,
            bitfield_encoding: false,
            members: vec![
                Member {
                    name_off: a,
                    type_id: int,
                    bit_offset: 0,
                    bitfield_size: 0,
                },
                Member {
                    name_off: bb,
                    type_id: pint,
                    bit_offset: 0,
                    bitfield_size: 0,
                },
            ],
        }),
    }); // 6
    let e_name = name(&mut b, "e");
    let (va, vb) = (name(&mut b, "A"), name(&mut b, "B"));
    b.add_type(BtfType {
        name_off: e_name,
        kind: TypeKind::Enum(Enum {
            size: 4,
            signed: true,
            values: vec![
                EnumValue {
                    name_off: va,
                    val: (-1i32) as u32,
                },
                EnumValue {
                    name_off: vb,
                    val: 2,
                },
            ],
        }),
    }); // 7
    let e64 = name(&mut b, "e64");
    let vc = name(&mut b, "C");
    b.add_type(BtfType {
        name_off: e64,
        kind: TypeKind::Enum64(Enum64 {
            size: 8,
            signed: false,
            values: vec![Enum64Value {
                name_off: vc,
                val: 1 << 32,
            }],
        }),
    }); // 8
    let e64s = name(&mut b, "e64s");
    let vd = name(&mut b, "D");
    b.add_type(BtfType {
        name_off: e64s,
        kind: TypeKind::Enum64(Enum64 {
            size: 8,
            signed: true,
            values: vec![Enum64Value {
                name_off: vd,
                val: (-5i64) as u64,
            }],
        }),
    }); // 9
    let fwd = name(&mut b, "fwdu");
    b.add_type(BtfType {
        name_off: fwd,
        kind: TypeKind::Fwd { union: true },
    }); // 10
    let td = name(&mut b, "myint");
    b.add_type(BtfType {
        name_off: td,
        kind: TypeKind::Typedef { type_id: int },
    }); // 11
    let vol = b.add_type(BtfType {
        name_off: 0,
        kind: TypeKind::Volatile { type_id: int },
    }); // 12
    b.add_type(BtfType {
        name_off: 0,
        kind: TypeKind::Const { type_id: vol },
    }); // 13
    b.add_type(BtfType {
        name_off: 0,
        kind: TypeKind::Restrict { type_id: pint },
    }); // 14
    let proto = b.add_func_proto(int, &[("x", int), ("p", pint)]).unwrap(); // 15
    let f = b.add_func("f", proto, FuncLinkage::Global).unwrap(); // 16
    let gv = b.add_var("gv", int, VarLinkage::Global).unwrap(); // 17
    b.add_datasec(
        ".data",
        4,
        vec![VarSecinfo {
            type_id: gv,
            offset: 0,
            size: 4,
        }],
    )
    .unwrap(); // 18
    let fl = name(&mut b, "float");
    b.add_type(BtfType {
        name_off: fl,
        kind: TypeKind::Float { size: 4 },
    }); // 19
    let tag = name(&mut b, "tag");
    b.add_type(BtfType {
        name_off: tag,
        kind: TypeKind::DeclTag(DeclTag {
            type_id: gv,
            component_idx: -1,
            attr: false,
        }),
    }); // 20
    b.add_type(BtfType {
        name_off: tag,
        kind: TypeKind::DeclTag(DeclTag {
            type_id: s,
            component_idx: 1,
            attr: false,
        }),
    }); // 21
    b.add_type(BtfType {
        name_off: tag,
        kind: TypeKind::DeclTag(DeclTag {
            type_id: f,
            component_idx: 0,
            attr: false,
        }),
    }); // 22
    let user = name(&mut b, "user");
    let tt = b.add_type(BtfType {
        name_off: user,
        kind: TypeKind::TypeTag {
            type_id: int,
            attr: false,
        },
    }); // 23
    b.add_ptr(tt); // 24
    b.validate().unwrap();
    b
}

/// Raw BTF accepted by libbpf's own parser and sanity checks (`btf__new`).
fn libbpf_accepts(bytes: &[u8]) -> Result<(), i32> {
    use libbpf_rs::libbpf_sys;
    // SAFETY: btf__new copies `bytes`; the result is freed below.
    unsafe {
        let b = libbpf_sys::btf__new(bytes.as_ptr().cast(), bytes.len() as u32);
        if b.is_null() || (b as isize) < 0 && (b as isize) > -4096 {
            return Err(-std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        libbpf_sys::btf__free(b);
    }
    Ok(())
}

/// Loads raw BTF into the kernel and frees it again.
fn kernel_accepts(bytes: &[u8]) -> Result<(), String> {
    use libbpf_rs::libbpf_sys;
    // SAFETY: btf__new copies `bytes`; btf__free closes the kernel fd, releasing the object.
    unsafe {
        let b = libbpf_sys::btf__new(bytes.as_ptr().cast(), bytes.len() as u32);
        if b.is_null() {
            return Err("libbpf refused it".into());
        }
        let err = libbpf_sys::btf__load_into_kernel(b);
        libbpf_sys::btf__free(b);
        if err != 0 {
            return Err(format!("BTF_LOAD failed: {err}"));
        }
    }
    Ok(())
}

#[test]
fn all_kinds_round_trip_and_match_bpftool() {
    let btf = all_kinds_btf();
    let bytes = btf.to_bytes();
    let back = Btf::parse(&bytes).unwrap();
    assert_eq!(back.types, btf.types);
    assert_eq!(back.strings, btf.strings);
    assert_eq!(back.to_bytes(), bytes);
    // The built BTF's header still says "empty" until refreshed; the bytes never depend on it.
    let mut refreshed = btf.clone();
    refreshed.refresh_header();
    assert_eq!(refreshed, back);
    let kinds: std::collections::BTreeSet<Kind> =
        back.types.iter().skip(1).map(|t| t.kind.kind()).collect();
    assert_eq!(kinds.len(), 19, "every kind but void: {kinds:?}");
    libbpf_accepts(&bytes).expect("libbpf btf__new accepts the all-kinds BTF");

    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("all_kinds.btf");
    std::fs::write(&path, &bytes).unwrap();
    match bpftool_raw(&path) {
        Some(expected) => assert_eq!(back.dump_raw(), expected),
        None => eprintln!("SKIPPED bpftool comparison: bpftool not installed"),
    }
    // A few lines spelled out, so the format itself is pinned even without bpftool.
    let dump = back.dump_raw();
    for line in [
        "[1] INT 'int' size=4 bits_offset=0 nr_bits=32 encoding=SIGNED",
        "[5] STRUCT 's' size=8 vlen=3\n\t'a' type_id=1 bits_offset=0 bitfield_size=3\n\t'b' type_id=1 bits_offset=3 bitfield_size=5\n\t'c' type_id=1 bits_offset=32\n",
        "[7] ENUM 'e' encoding=SIGNED size=4 vlen=2\n\t'A' val=-1\n\t'B' val=2\n",
        "[9] ENUM64 'e64s' encoding=SIGNED size=8 vlen=1\n\t'D' val=-5LL\n",
        "[10] FWD 'fwdu' fwd_kind=union",
        "[17] VAR 'gv' type_id=1, linkage=global",
        "[18] DATASEC '.data' size=4 vlen=1\n\ttype_id=17 offset=0 size=4 (VAR 'gv')\n",
        "[21] DECL_TAG 'tag' type_id=5 component_idx=1",
    ] {
        assert!(dump.contains(line), "missing {line:?} in\n{dump}");
    }
}

#[test]
fn all_kinds_btf_loads_into_the_kernel() {
    if !common::kernel_test_gate("all_kinds_btf_loads_into_the_kernel") {
        return;
    }
    kernel_accepts(&all_kinds_btf().to_bytes()).unwrap();
}

#[test]
fn tag_attribute_flags_round_trip() {
    // Kind flag on DECL_TAG/TYPE_TAG (6.14+ "attribute" tags) must survive.
    let mut btf = all_kinds_btf();
    for t in &mut btf.types {
        match &mut t.kind {
            TypeKind::DeclTag(d) => d.attr = true,
            TypeKind::TypeTag { attr, .. } => *attr = true,
            _ => {}
        }
    }
    btf.refresh_header();
    assert_eq!(Btf::parse(&btf.to_bytes()).unwrap(), btf);
}

// ---------------------------------------------------------------------------------------------
// Malformed input: a precise error, never a panic.

/// `.BTF` bytes from raw type words and string bytes, laid out as clang does.
fn raw_btf(types: &[u32], strs: &[u8]) -> Vec<u8> {
    let tl = (types.len() * 4) as u32;
    let mut v = vec![0x9f, 0xeb, 1, 0];
    for w in [24, 0, tl, tl, strs.len() as u32] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    for w in types {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v.extend_from_slice(strs);
    v
}

fn set_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

const INT_KIND: u32 = 1 << 24;
/// `[1] INT 'int' size=4 bits_offset=0 nr_bits=32 encoding=SIGNED`
const INT_WORDS: [u32; 4] = [1, INT_KIND, 4, 0x0100_0020];
const STRS: &[u8] = b"\0int\0";

fn btf_err(bytes: &[u8]) -> String {
    Btf::parse(bytes).expect_err("must be rejected").to_string()
}

#[test]
fn the_minimal_raw_btf_parses() {
    let btf = Btf::parse(&raw_btf(&INT_WORDS, STRS)).unwrap();
    assert_eq!(btf.name_of(1), Some("int"));
    assert_eq!(
        btf.dump_raw(),
        "[1] INT 'int' size=4 bits_offset=0 nr_bits=32 encoding=SIGNED\n"
    );
}

#[test]
fn header_errors() {
    assert_eq!(
        btf_err(&[]),
        ".BTF: truncated header at byte 0: needs 24 bytes, only 0 present"
    );
    assert_eq!(
        btf_err(&raw_btf(&INT_WORDS, STRS)[..20]),
        ".BTF: truncated header at byte 0: needs 24 bytes, only 20 present"
    );
    let mut b = raw_btf(&INT_WORDS, STRS);
    b[0] = 0x12;
    assert_eq!(
        btf_err(&b),
        ".BTF at byte 0: bad magic 0xeb12 (expected 0xeb9f)"
    );
    let mut b = raw_btf(&INT_WORDS, STRS);
    b[0..2].copy_from_slice(&[0xeb, 0x9f]);
    let e = Btf::parse(&b).unwrap_err();
    assert!(
        matches!(
            e,
            BtfError::Unsupported {
                section: Section::Btf,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), ".BTF: unsupported: big-endian BTF");
    // Through the crate error: unsupported, not malformed.
    assert_eq!(
        opsplit::Error::from(e).to_string(),
        "unsupported: .BTF: big-endian BTF"
    );
    let mut b = raw_btf(&INT_WORDS, STRS);
    b[2] = 2;
    assert_eq!(
        btf_err(&b),
        ".BTF: unsupported: BTF version 2 (only version 1 exists)"
    );
    let mut b = raw_btf(&INT_WORDS, STRS);
    set_u32(&mut b, 4, 16);
    assert_eq!(
        btf_err(&b),
        ".BTF at byte 4: header length 16 is shorter than the 24-byte BTF header"
    );
    let mut b = raw_btf(&INT_WORDS, STRS);
    set_u32(&mut b, 4, 1000);
    assert_eq!(
        btf_err(&b),
        ".BTF: truncated header at byte 0: needs 1000 bytes, only 45 present"
    );
}

#[test]
fn longer_header_keeps_its_extra_bytes() {
    let mut b = raw_btf(&INT_WORDS, STRS);
    set_u32(&mut b, 4, 32);
    b.splice(24..24, [0u8; 8]);
    let btf = Btf::parse(&b).unwrap();
    assert_eq!(btf.header.hdr_len, 32);
    assert_eq!(btf.header.extra, vec![0; 8]);
    assert_eq!(btf.to_bytes(), b);
}

#[test]
fn strings_first_layout_round_trips() {
    let mut b = raw_btf(&INT_WORDS, STRS);
    let types = b[24..40].to_vec();
    b.truncate(24);
    b.extend_from_slice(STRS);
    b.extend_from_slice(&types);
    // Types right after the 5-byte string table: type_off 5 breaks the 4-byte alignment rule.
    set_u32(&mut b, 8, STRS.len() as u32);
    set_u32(&mut b, 16, 0);
    assert_eq!(
        btf_err(&b),
        ".BTF at byte 8: type section offset 5 is not 4-byte aligned"
    );
    let strs = b"\0int\0\0\0\0"; // padded to 8 bytes
    let mut b = b[..24].to_vec();
    b.extend_from_slice(strs);
    b.extend_from_slice(&types);
    set_u32(&mut b, 8, 8);
    set_u32(&mut b, 20, 8);
    let btf = Btf::parse(&b).unwrap();
    assert_eq!(btf.name_of(1), Some("int"));
    assert_eq!(btf.to_bytes(), b);
}

#[test]
fn layout_errors() {
    let good = raw_btf(&INT_WORDS, STRS);
    let mut b = good.clone();
    set_u32(&mut b, 12, 100); // type_len
    assert_eq!(
        btf_err(&b),
        ".BTF at byte 8: type section (offset 0, length 100) ends at 100, past the 21 bytes after the header"
    );
    let mut b = good.clone();
    set_u32(&mut b, 16, 12); // str_off inside the types
    set_u32(&mut b, 20, 5);
    assert_eq!(
        btf_err(&b),
        ".BTF at byte 16: string section at offset 12 overlaps the type section ending at 16"
    );
    let mut b = good.clone();
    b.extend_from_slice(b"junk");
    assert_eq!(
        btf_err(&b),
        ".BTF: unsupported: 4 bytes of unknown data after the string section (at byte 45)"
    );
    let mut b = good.clone();
    set_u32(&mut b, 20, 4); // str_len one short: last string loses its NUL, 1 byte left over
    assert_eq!(
        btf_err(&b),
        ".BTF: unsupported: 1 bytes of unknown data after the string section (at byte 44)"
    );
}

#[test]
fn string_table_errors() {
    assert_eq!(
        btf_err(&raw_btf(&INT_WORDS, b"\0int")),
        ".BTF at byte 43: string table is not NUL-terminated"
    );
    assert_eq!(
        btf_err(&raw_btf(&INT_WORDS, b"xint\0")),
        ".BTF at byte 40: string table does not start with NUL (first byte 0x78); offset 0 must be the empty string"
    );
    assert_eq!(
        btf_err(&raw_btf(&[], b"")),
        ".BTF at byte 24: string table is empty (it must hold at least the empty string)"
    );
    let mut w = INT_WORDS;
    w[0] = 5; // name offset == str_len
    assert_eq!(
        btf_err(&raw_btf(&w, STRS)),
        ".BTF type [1] INT at byte 24: name offset 5 is past the end of the 5-byte string table"
    );
}

#[test]
fn type_record_errors() {
    // Unknown kind.
    let w = [1, 25 << 24, 4];
    assert_eq!(
        btf_err(&raw_btf(&w, STRS)),
        ".BTF type [1] kind 25 at byte 24: unknown kind 25 (info 0x19000000)"
    );
    // Kind 0 is only the implicit void.
    assert_eq!(
        btf_err(&raw_btf(&[0, 0, 0], STRS)),
        ".BTF type [1] UNKNOWN at byte 24: unknown kind 0 (info 0x00000000)"
    );
    // A STRUCT claiming 3 members with room for 1.
    let w = [1, (4 << 24) | 3, 4, 0, 0, 0];
    assert_eq!(
        btf_err(&raw_btf(&w, STRS)),
        ".BTF type [1] STRUCT at byte 24: vlen 3 needs 36 bytes after the 12-byte header, only 12 remain in the type section"
    );
    // A reference past the table.
    let w = [0, 2 << 24, 7];
    assert_eq!(
        btf_err(&raw_btf(&w, STRS)),
        ".BTF type [1] PTR at byte 24: references type id 7, but the last type id is 1"
    );
    // The second type's member type is past the table; the offset names the second record.
    let mut w = INT_WORDS.to_vec();
    w.extend([0, (4 << 24) | 1, 4, 1, 9, 0]);
    assert_eq!(
        btf_err(&raw_btf(&w, STRS)),
        ".BTF type [2] STRUCT at byte 40: references type id 9, but the last type id is 2"
    );
    // Member name past the strings.
    let mut w = INT_WORDS.to_vec();
    w.extend([0, (4 << 24) | 1, 4, 99, 1, 0]);
    assert_eq!(
        btf_err(&raw_btf(&w, STRS)),
        ".BTF type [2] STRUCT at byte 40: member/param/enumerator name offset 99 is past the end of the 5-byte string table"
    );
    // Kind flag on an INT; vlen on a PTR; bad FUNC linkage; bad VAR linkage; bad INT encoding.
    let mut w = INT_WORDS;
    w[1] |= 1 << 31;
    assert_eq!(
        btf_err(&raw_btf(&w, STRS)),
        ".BTF type [1] INT at byte 24: kind flag must be clear for this kind"
    );
    assert_eq!(
        btf_err(&raw_btf(&[0, (2 << 24) | 1, 0], STRS)),
        ".BTF type [1] PTR at byte 24: vlen must be 0, is 1"
    );
    let mut w = INT_WORDS.to_vec();
    w.extend([0, (13 << 24), 1, 1, (12 << 24) | 3, 2]);
    assert_eq!(
        btf_err(&raw_btf(&w, STRS)),
        ".BTF type [3] FUNC at byte 52: invalid FUNC linkage 3"
    );
    let mut w = INT_WORDS.to_vec();
    w.extend([1, 14 << 24, 1, 7]);
    assert_eq!(
        btf_err(&raw_btf(&w, STRS)),
        ".BTF type [2] VAR at byte 40: invalid VAR linkage 7"
    );
    let mut w = INT_WORDS;
    w[3] = 0x0300_0020;
    assert_eq!(
        btf_err(&raw_btf(&w, STRS)),
        ".BTF type [1] INT at byte 24: invalid INT encoding 0x3"
    );
    // A record cut short.
    let mut b = raw_btf(&INT_WORDS, STRS);
    set_u32(&mut b, 12, 8);
    set_u32(&mut b, 16, 8);
    b.drain(32..40);
    assert_eq!(
        btf_err(&b),
        ".BTF: truncated type record at byte 24: needs 12 bytes, only 8 present"
    );
}

/// `.BTF.ext` from sub-section bytes (func, line, core), clang's layout, 32-byte header.
fn raw_ext(func: &[u8], line: &[u8], core: &[u8]) -> Vec<u8> {
    let mut v = vec![0x9f, 0xeb, 1, 0];
    let (f, l, c) = (func.len() as u32, line.len() as u32, core.len() as u32);
    for w in [32, 0, f, f, l, f + l, c] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v.extend_from_slice(func);
    v.extend_from_slice(line);
    v.extend_from_slice(core);
    v
}

fn words(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn btf_ext_records_and_errors() {
    // func_info: record size 8, section "int"(1) with one record at byte 16 → type 1.
    let func = words(&[8, 1, 1, 16, 1]);
    let line = words(&[16, 1, 1, 16, 1, 0, (7 << 10) | 3]);
    let core = words(&[16, 1, 1, 8, 1, 0, 0]);
    let b = raw_ext(&func, &line, &core);
    let ext = BtfExt::parse(&b).unwrap();
    assert_eq!(ext.to_bytes(), b);
    assert_eq!(
        ext.func_info.sections[0].records,
        vec![FuncInfo {
            insn_off: 16,
            type_id: 1
        }]
    );
    assert_eq!(ext.func_info.sections[0].records[0].insn_slot(), 2);
    let li = ext.line_info.sections[0].records[0];
    assert_eq!((li.insn_off, li.line, li.col), (16, 7, 3));
    assert_eq!(
        ext.core_relo.sections[0].records[0],
        CoreRelo {
            insn_off: 8,
            type_id: 1,
            access_str_off: 0,
            kind: CoreReloKind::FieldByteOffset
        }
    );

    let ext_err = |b: &[u8]| BtfExt::parse(b).expect_err("rejected").to_string();
    assert_eq!(
        ext_err(&b[..10]),
        ".BTF.ext: truncated header at byte 0: needs 24 bytes, only 10 present"
    );
    // Record size below the minimum.
    assert_eq!(
        ext_err(&raw_ext(&words(&[4, 1, 0]), &line, &[])),
        ".BTF.ext at byte 32: func_info record size 4 is invalid (at least 8 and a multiple of 4)"
    );
    // num_info larger than the data.
    assert_eq!(
        ext_err(&raw_ext(&words(&[8, 1, 1000, 16, 1]), &line, &[])),
        ".BTF.ext: truncated func_info at byte 44: needs 8000 bytes, only 8 present"
    );
    // Overlapping sub-sections.
    let mut bad = b.clone();
    set_u32(&mut bad, 16, 4); // line_info_off inside func_info
    assert_eq!(
        ext_err(&bad),
        ".BTF.ext at byte 16: line_info section at offset 4 overlaps the func_info section ending at 20"
    );
    let mut be = b.clone();
    be[0..2].copy_from_slice(&[0xeb, 0x9f]);
    assert_eq!(ext_err(&be), ".BTF.ext: unsupported: big-endian BTF");

    // References into .BTF.
    let btf = Btf::parse(&raw_btf(&INT_WORDS, STRS)).unwrap();
    assert_eq!(
        ext.check(&btf).unwrap_err().to_string(),
        ".BTF.ext: func_info in 'int' at insn_off 16: type [1] is INT, not FUNC"
    );
    let mut e2 = ext.clone();
    e2.func_info.sections.clear();
    e2.line_info.sections[0].records[0].insn_off = 12;
    assert_eq!(
        e2.check(&btf).unwrap_err().to_string(),
        ".BTF.ext: line_info record insn_off 12 is not a multiple of 8 (a whole instruction)"
    );
    let mut e3 = ext.clone();
    e3.func_info.sections.clear();
    e3.core_relo.sections[0].sec_name_off = 77;
    assert_eq!(
        e3.check(&btf).unwrap_err().to_string(),
        ".BTF.ext: core_relo section name offset 77 is past the end of the .BTF string table"
    );
}

#[test]
fn btf_ext_keeps_larger_records_and_short_headers() {
    // A func_info record size of 12: the extra 4 bytes of each record are kept.
    let func = words(&[12, 1, 2, 0, 1, 0xaaaa, 8, 1, 0xbbbb]);
    let line = words(&[16]);
    let b = raw_ext(&func, &line, &[]);
    let ext = BtfExt::parse(&b).unwrap();
    assert_eq!(ext.func_info.record_size, Some(12));
    assert_eq!(ext.func_info.sections[0].records.len(), 2);
    assert_eq!(
        ext.func_info.sections[0].record_extra,
        words(&[0xaaaa, 0xbbbb])
    );
    assert_eq!(ext.core_relo.record_size, None);
    assert_eq!(ext.to_bytes(), b);
    // A 24-byte header (no core_relo fields).
    let mut short = vec![0x9f, 0xeb, 1, 0];
    for w in [24u32, 0, 12, 12, 4] {
        short.extend_from_slice(&w.to_le_bytes());
    }
    short.extend_from_slice(&words(&[8, 1, 0, 16]));
    let ext = BtfExt::parse(&short).unwrap();
    assert_eq!(ext.header.hdr_len, 24);
    assert_eq!(ext.to_bytes(), short);
}

// ---------------------------------------------------------------------------------------------
// Edits: append-only additions and the id remap.

#[test]
fn add_string_dedups_and_appends() {
    let p = fixture("tcp_iw.o");
    let mut btf = Btf::parse(&section(&p, ".BTF").unwrap()).unwrap();
    let before = btf.strings.as_bytes().to_vec();
    // An existing name is reused, not appended.
    let int_off = btf.types[btf.find_by_name("int", Kind::Int).unwrap() as usize].name_off;
    assert_eq!(btf.add_string("int").unwrap(), int_off);
    assert_eq!(btf.add_string("").unwrap(), 0);
    assert_eq!(btf.strings.as_bytes(), &before[..]);
    // A new one goes at the end and is found again.
    let off = btf.add_string("opsplit_new").unwrap();
    assert_eq!(off as usize, before.len());
    assert_eq!(btf.add_string("opsplit_new").unwrap(), off);
    assert_eq!(btf.str_at(off), Some("opsplit_new"));
    assert!(btf.add_string("a\0b").is_err());
    // Existing bytes are untouched (append-only).
    assert_eq!(&btf.strings.as_bytes()[..before.len()], &before[..]);
}

#[test]
fn appended_types_keep_existing_ids_and_bytes() {
    for (p, bytes, _) in fixtures_with_btf().into_iter().take(5) {
        let mut btf = Btf::parse(&bytes).unwrap();
        let n = btf.types.len() as u32;
        let f = btf
            .add_program_func("opsplit_op4", FuncLinkage::Global)
            .unwrap();
        assert!(f >= n);
        btf.validate().unwrap();
        let out = btf.to_bytes();
        let back = Btf::parse(&out).unwrap();
        assert_eq!(
            &back.types[..n as usize],
            &Btf::parse(&bytes).unwrap().types[..],
            "{}",
            p.display()
        );
        let (_, proto) = back.func_proto(f).unwrap();
        assert_eq!(proto.params.len(), 1);
        assert_eq!(back.name_of(f), Some("opsplit_op4"));
        // Reused `int` and `void *` if the object had them: only FUNC_PROTO and FUNC were added.
        if btf.types[..n as usize]
            .iter()
            .any(|t| matches!(t.kind, TypeKind::Ptr { type_id: 0 }))
        {
            assert_eq!(back.types.len() as u32, n + 2, "{}", p.display());
        }
        libbpf_accepts(&out).unwrap();
    }
}

/// A permutation of 1..n that is far from the identity (reverse order).
fn reverse_map(n: usize) -> TypeIdMap {
    TypeIdMap::from_vec(
        (0..n as u32)
            .map(|i| if i == 0 { 0 } else { n as u32 - i })
            .collect(),
    )
}

#[test]
fn remap_rewrites_every_reference_on_every_fixture() {
    for (p, bytes, ext) in fixtures_with_btf() {
        let orig = Btf::parse(&bytes).unwrap();
        let n = orig.types.len();
        let map = reverse_map(n);
        let mut btf = orig.clone();
        btf.apply_id_map(&map).unwrap();
        btf.validate().unwrap();
        // Every type moved, and each of its references points at the moved target.
        for old in 1..n {
            let new = map.get(old as u32).unwrap() as usize;
            let (o, t) = (&orig.types[old], &btf.types[new]);
            assert_eq!(o.name_off, t.name_off);
            assert_eq!(o.kind.kind(), t.kind.kind());
            let want: Vec<u32> = o.kind.refs().iter().map(|&r| map.get(r).unwrap()).collect();
            assert_eq!(t.kind.refs(), want, "{} type {old}", p.display());
        }
        // The remapped BTF is valid for libbpf, and its map definitions are the same maps.
        libbpf_accepts(&btf.to_bytes()).unwrap();
        let (a, b) = (orig.map_defs().unwrap(), btf.map_defs().unwrap());
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (&x.name, x.map_type, x.key_size, x.value_size),
                (&y.name, y.map_type, y.key_size, y.value_size)
            );
            assert_eq!(x.key_type_id.map(|i| map.get(i).unwrap()), y.key_type_id);
        }
        // .BTF.ext: func_info and CO-RE ids follow.
        if let Some(ext) = ext {
            let e0 = BtfExt::parse(&ext).unwrap();
            let mut e1 = e0.clone();
            e1.apply_id_map(&map).unwrap();
            e1.check(&btf).unwrap();
            for (g0, g1) in e0.func_info.sections.iter().zip(&e1.func_info.sections) {
                for (r0, r1) in g0.records.iter().zip(&g1.records) {
                    assert_eq!(map.get(r0.type_id), Some(r1.type_id));
                    assert_eq!(orig.name_of(r0.type_id), btf.name_of(r1.type_id));
                }
            }
            for (g0, g1) in e0.core_relo.sections.iter().zip(&e1.core_relo.sections) {
                for (r0, r1) in g0.records.iter().zip(&g1.records) {
                    assert_eq!(map.get(r0.type_id), Some(r1.type_id));
                }
            }
            // Mapping back restores the original bytes exactly.
            let mut inverse = vec![0; n];
            for old in 0..n {
                inverse[map.get(old as u32).unwrap() as usize] = old as u32;
            }
            let inverse = TypeIdMap::from_vec(inverse);
            let mut back = btf.clone();
            back.apply_id_map(&inverse).unwrap();
            assert_eq!(back.to_bytes(), bytes, "{}", p.display());
            e1.apply_id_map(&inverse).unwrap();
            assert_eq!(e1.to_bytes(), ext, "{}", p.display());
        }
    }
}

#[test]
fn remap_can_drop_unreferenced_types_and_refuses_bad_maps() {
    let p = fixture("tcp_iw.o");
    let orig = Btf::parse(&section(&p, ".BTF").unwrap()).unwrap();
    let n = orig.types.len();
    // Drop everything nobody refers to except FUNCs, VARs and DATASECs (roots).
    let mut referenced = vec![false; n];
    for t in &orig.types {
        t.kind.for_each_ref(|r| referenced[r as usize] = true);
    }
    let is_root = |id: u32| {
        matches!(
            orig.types[id as usize].kind.kind(),
            Kind::Func | Kind::Var | Kind::Datasec | Kind::DeclTag
        )
    };
    let map = TypeIdMap::compacting(n, |id| referenced[id as usize] || is_root(id));
    let dropped = map
        .as_slice()
        .iter()
        .filter(|&&x| x == TypeIdMap::DROPPED)
        .count();
    let mut btf = orig.clone();
    btf.apply_id_map(&map).unwrap();
    assert_eq!(btf.types.len(), n - dropped);
    btf.validate().unwrap();

    // Dropping a referenced type is refused, leaving the BTF unchanged.
    let int = orig.find_by_name("int", Kind::Int).unwrap();
    let map = TypeIdMap::compacting(n, |id| id != int);
    let mut btf = orig.clone();
    let e = btf.apply_id_map(&map).unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("type id {int} is referenced but was dropped")),
        "{e}"
    );
    assert_eq!(btf, orig);
    // Collisions, holes, void moved, wrong length.
    let mut v: Vec<u32> = (0..n as u32).collect();
    v[2] = 1;
    assert_eq!(
        orig.clone()
            .apply_id_map(&TypeIdMap::from_vec(v))
            .unwrap_err()
            .to_string(),
        "BTF id remap: two types map to id 1"
    );
    let mut v: Vec<u32> = (0..n as u32).collect();
    v[1] = n as u32 + 5;
    assert!(orig.clone().apply_id_map(&TypeIdMap::from_vec(v)).is_err());
    let mut v: Vec<u32> = (0..n as u32).collect();
    v.swap(0, 1);
    assert_eq!(
        orig.clone()
            .apply_id_map(&TypeIdMap::from_vec(v))
            .unwrap_err()
            .to_string(),
        "BTF id remap: void (id 0) must map to 0"
    );
    assert!(
        orig.clone()
            .apply_id_map(&TypeIdMap::identity(n - 1))
            .is_err()
    );
    // The map's own lookups name the problem for the object layer's instruction rewrites.
    assert_eq!(
        TypeIdMap::identity(3).map_id(9).unwrap_err().to_string(),
        "BTF id remap: type id 9 is outside the map (which covers ids 0..3)"
    );
}

#[test]
fn remap_closure_rewrites_references_in_place() {
    let mut btf = all_kinds_btf();
    let before = btf.clone();
    // Shift every non-void reference by 100: nothing moves, every reference changes.
    btf.remap(|id| if id == 0 { 0 } else { id + 100 });
    for (a, b) in before.types.iter().zip(&btf.types) {
        let want: Vec<u32> = a
            .kind
            .refs()
            .iter()
            .map(|&r| if r == 0 { 0 } else { r + 100 })
            .collect();
        assert_eq!(b.kind.refs(), want);
    }
    assert!(btf.validate().is_err(), "references now dangle");
    // DATASEC entries, DECL_TAG targets and FUNC_PROTO params were all reached.
    assert!(
        btf.types
            .iter()
            .any(|t| matches!(&t.kind, TypeKind::Datasec(d) if d.vars[0].type_id == 117))
    );
    assert!(
        btf.types
            .iter()
            .any(|t| matches!(&t.kind, TypeKind::DeclTag(d) if d.type_id == 105))
    );
    assert!(
        btf.types
            .iter()
            .any(|t| matches!(&t.kind, TypeKind::FuncProto(p) if p.params[1].type_id == 102))
    );
}

#[test]
fn synthesized_btf_for_an_object_without_btf() {
    // What the object layer does for fixtures/nobtf_basic.o: FUNCs for its programs and a
    // DATASEC per global data section.
    let mut btf = Btf::new();
    let f1 = btf.add_program_func("prog_a", FuncLinkage::Global).unwrap();
    let f2 = btf.add_program_func("prog_b", FuncLinkage::Static).unwrap();
    let ds = btf
        .add_data_section(
            ".data",
            16,
            &[
                SynthVar {
                    name: "b".into(),
                    offset: 8,
                    size: 8,
                    linkage: VarLinkage::Global,
                },
                SynthVar {
                    name: "a".into(),
                    offset: 0,
                    size: 4,
                    linkage: VarLinkage::Static,
                },
            ],
        )
        .unwrap();
    btf.validate().unwrap();
    let bytes = btf.to_bytes();
    let back = Btf::parse(&bytes).unwrap();
    // int and void * are shared by both programs.
    assert_eq!(back.find_all_by_name("int").len(), 1);
    assert_eq!(
        back.func_proto(f1).unwrap().1.ret,
        back.func_proto(f2).unwrap().1.ret
    );
    let vars = back.datasec_vars(ds).unwrap();
    assert_eq!(
        vars.iter().map(|v| v.name).collect::<Vec<_>>(),
        ["a", "b"],
        "sorted by offset"
    );
    assert_eq!(back.resolve_size(vars[1].type_id).unwrap(), 8);
    assert_eq!(back.resolve_size(ds).unwrap(), 16);
    libbpf_accepts(&bytes).unwrap();
    // func_info for the two programs.
    let mut ext = BtfExt::new();
    let sec = back.strings.find("int").unwrap(); // any valid name offset for the test
    ext.func_info.sections.push(ExtSection {
        sec_name_off: sec,
        records: vec![
            FuncInfo {
                insn_off: 0,
                type_id: f1,
            },
            FuncInfo {
                insn_off: 64,
                type_id: f2,
            },
        ],
        record_extra: vec![],
    });
    ext.line_info.sections.push(ExtSection {
        sec_name_off: sec,
        records: vec![LineInfo {
            insn_off: 0,
            file_name_off: sec,
            line_off: 0,
            line: 1,
            col: 2,
        }],
        record_extra: vec![],
    });
    ext.check(&back).unwrap();
    let eb = ext.to_bytes();
    assert_eq!(BtfExt::parse(&eb).unwrap().to_bytes(), eb);
    assert_eq!(BtfExt::parse(&eb).unwrap().func_info, ext.func_info);
    if common::kernel_test_gate("synthesized_btf_for_an_object_without_btf") {
        kernel_accepts(&bytes).unwrap();
    }
}

#[test]
fn added_types_are_checked_by_validate() {
    let mut btf = Btf::new();
    btf.add_type(BtfType {
        name_off: 0,
        kind: TypeKind::Ptr { type_id: 5 },
    });
    assert_eq!(
        btf.validate().unwrap_err().to_string(),
        ".BTF type [1] PTR at byte 0: references type id 5, but the last type id is 1"
    );
    let mut btf = Btf::new();
    btf.add_type(BtfType {
        name_off: 0,
        kind: TypeKind::Void,
    });
    assert!(btf.validate().is_err());
}

// ---------------------------------------------------------------------------------------------
// Robustness: random and mutated input never panics; whatever is accepted re-serializes exactly.

/// A fixture's `.BTF` and, if present, `.BTF.ext` bytes.
type BtfSections = (Vec<u8>, Option<Vec<u8>>);

/// Up to 12 fixtures' sections, read once.
fn fixture_btf_corpus() -> &'static [BtfSections] {
    static CORPUS: std::sync::OnceLock<Vec<BtfSections>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(|| {
        fixtures_with_btf()
            .into_iter()
            .map(|(_, b, e)| (b, e))
            .take(12)
            .collect()
    })
}

/// 512 cases per property unless `PROPTEST_CASES` asks for a longer run.
fn proptest_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: proptest_cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(b) = Btf::parse(&data) {
            prop_assert_eq!(b.to_bytes(), data.clone());
            let _ = b.map_defs();
            let _ = b.dump_raw();
        }
        if let Ok(e) = BtfExt::parse(&data) {
            prop_assert_eq!(e.to_bytes(), data);
        }
    }

    #[test]
    fn random_bytes_behind_a_valid_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..400),
        split in 0usize..400,
    ) {
        // Header valid, types random, strings random: exercises the type decoder, not just magic.
        let split = split.min(body.len()) & !3;
        let mut data = vec![0x9f, 0xeb, 1, 0];
        for w in [24u32, 0, split as u32, split as u32, (body.len() - split) as u32] {
            data.extend_from_slice(&w.to_le_bytes());
        }
        data.extend_from_slice(&body);
        if let Ok(b) = Btf::parse(&data) {
            prop_assert_eq!(b.to_bytes(), data);
            for id in 0..b.types.len() as u32 {
                let _ = b.resolve_size(id);
                let _ = b.skip_mods_and_typedefs(id);
            }
            let _ = b.map_defs();
        }
    }

    #[test]
    fn mutated_fixture_btf_never_panics(
        which in 0usize..12,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let corpus = fixture_btf_corpus();
        let (btf_bytes, ext_bytes) = &corpus[which % corpus.len()];
        for (orig, is_ext) in [(btf_bytes, false), (ext_bytes.as_ref().unwrap_or(btf_bytes), true)] {
            let mut data = orig.clone();
            for (i, v) in &flips {
                let i = i.index(data.len());
                data[i] = *v;
            }
            if let Some(c) = &cut {
                data.truncate(c.index(data.len() + 1));
            }
            if is_ext {
                if let Ok(e) = BtfExt::parse(&data) {
                    prop_assert_eq!(e.to_bytes(), data.clone());
                    if let Ok(b) = Btf::parse(btf_bytes) {
                        let _ = e.check(&b);
                        let _ = e.clone().apply_id_map(&TypeIdMap::identity(b.types.len()));
                    }
                }
            } else if let Ok(b) = Btf::parse(&data) {
                prop_assert_eq!(b.to_bytes(), data.clone());
                let _ = b.map_defs();
                let _ = b.dump_raw();
                for id in 0..b.types.len() as u32 {
                    let _ = b.resolve_size(id);
                }
                let mut r = b.clone();
                prop_assert!(r.apply_id_map(&reverse_map(b.types.len())).is_ok());
            }
        }
    }
}
