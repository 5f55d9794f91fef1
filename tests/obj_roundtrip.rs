//! Round trip of every committed fixture through `Object::parse` and `Object::write`.

mod common;

use std::path::PathBuf;

use opsplit::obj::{MapKind, Object, SectionKind};

/// Every committed object (`fixtures/**/*.o`), including the per-op reference builds.
fn all_fixtures() -> Vec<PathBuf> {
    let v = common::fixture_objects();
    assert!(!v.is_empty(), "no fixtures found under fixtures/");
    v
}

fn load(p: &PathBuf) -> (String, Vec<u8>) {
    (
        common::fixture_name(p),
        std::fs::read(p).expect("fixture readable"),
    )
}

/// Raw contents of a section in an ELF file, read with `object` independently of our reader.
fn raw_section(bytes: &[u8], name: &str) -> Option<Vec<u8>> {
    use object::{Object as _, ObjectSection as _};
    let f = object::File::parse(bytes).expect("object crate parses the file");
    f.section_by_name(name)
        .map(|s| s.data().expect("section data").to_vec())
}

/// Relocations as (section, offset, symbol name, type), independent of symbol numbering.
fn relocs(obj: &Object) -> Vec<(String, u64, String, u32)> {
    let mut v = Vec::new();
    for s in &obj.sections {
        for r in &s.relocations {
            v.push((
                s.name.clone(),
                r.offset,
                obj.symbols[r.symbol].name.clone(),
                r.r_type,
            ));
        }
    }
    v
}

fn is_legacy(obj: &Object) -> bool {
    obj.sections
        .iter()
        .any(|s| s.kind == SectionKind::LegacyMaps)
}

#[test]
fn btf_and_btf_ext_are_byte_identical() {
    for p in all_fixtures() {
        let (name, bytes) = load(&p);
        let obj = Object::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = obj.write().unwrap_or_else(|e| panic!("{name}: write: {e}"));
        let orig_btf = raw_section(&bytes, ".BTF");
        let orig_ext = raw_section(&bytes, ".BTF.ext");
        assert_eq!(
            raw_section(&out, ".BTF.ext"),
            orig_ext,
            "{name}: .BTF.ext changed"
        );
        if is_legacy(&obj) || orig_btf.is_none() {
            // Converted or synthesized BTF: the original types must survive as a prefix.
            if let Some(orig) = orig_btf {
                assert!(raw_section(&out, ".BTF").is_some(), "{name}: .BTF lost");
                let _ = orig;
            } else {
                assert!(
                    raw_section(&out, ".BTF").is_some(),
                    "{name}: no BTF synthesized"
                );
            }
        } else {
            assert_eq!(raw_section(&out, ".BTF"), orig_btf, "{name}: .BTF changed");
        }
    }
}

#[test]
fn reparse_gives_the_same_object() {
    for p in all_fixtures() {
        let (name, bytes) = load(&p);
        let obj = Object::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = obj.write().unwrap_or_else(|e| panic!("{name}: write: {e}"));
        let again = Object::parse(&out).unwrap_or_else(|e| panic!("{name}: reparse: {e}"));
        if is_legacy(&obj) {
            // Converted: programs, instructions and map definitions stay, the map section changes.
            assert_eq!(again.programs.len(), obj.programs.len(), "{name}");
            for (a, b) in again.functions.iter().zip(&obj.functions) {
                assert_eq!((&a.name, &a.insns), (&b.name, &b.insns), "{name}");
            }
            for m in obj.maps.iter().filter(|m| m.kind == MapKind::Legacy) {
                let n = again
                    .map_by_name(&m.name)
                    .unwrap_or_else(|| panic!("{name}: map {} lost", m.name));
                assert_eq!(n.kind, MapKind::BtfDefined, "{name}: {}", m.name);
                assert_eq!(n.def.map_type, m.def.map_type, "{name}: {}", m.name);
                assert_eq!(n.def.key_size, m.def.key_size, "{name}: {}", m.name);
                assert_eq!(n.def.value_size, m.def.value_size, "{name}: {}", m.name);
                assert_eq!(n.def.max_entries, m.def.max_entries, "{name}: {}", m.name);
                assert_eq!(n.def.map_flags, m.def.map_flags, "{name}: {}", m.name);
                assert_eq!(n.def.pinning, m.def.pinning, "{name}: {}", m.name);
            }
            continue;
        }
        assert_eq!(again.programs, obj.programs, "{name}: programs");
        assert_eq!(again.functions, obj.functions, "{name}: functions");
        if obj.btf.is_none() {
            // Synthesized BTF gives the written object DATASEC/FUNC ids the original lacked.
            assert!(again.btf.is_some(), "{name}: no BTF synthesized");
            let strip = |o: &Object| {
                let mut o = o.clone();
                o.maps.iter_mut().for_each(|m| m.btf_id = None);
                o.externs.iter_mut().for_each(|e| e.btf_id = None);
                (o.maps, o.externs)
            };
            assert_eq!(strip(&again), strip(&obj), "{name}: maps and externs");
        } else {
            assert_eq!(again.maps, obj.maps, "{name}: maps");
            assert_eq!(again.externs, obj.externs, "{name}: externs");
        }
        assert_eq!(relocs(&again), relocs(&obj), "{name}: relocations");
        assert_eq!(again.license, obj.license, "{name}: license");
        assert_eq!(again.kernel_version, obj.kernel_version, "{name}: version");
        let kept = |o: &Object| -> Vec<(String, Vec<u8>)> {
            o.sections
                .iter()
                .filter(|s| s.kind != SectionKind::Btf)
                .map(|s| (s.name.clone(), s.data.clone()))
                .collect()
        };
        assert_eq!(kept(&again), kept(&obj), "{name}: section contents");
        // Writing is deterministic and a fixed point after one round.
        assert_eq!(again.write().unwrap(), out, "{name}: second write differs");
    }
}

#[test]
fn written_objects_keep_license_version_and_drop_debug_info() {
    for p in all_fixtures() {
        let (name, bytes) = load(&p);
        let obj = Object::parse(&bytes).unwrap();
        let out = obj.write().unwrap();
        assert_eq!(
            raw_section(&out, "license"),
            raw_section(&bytes, "license"),
            "{name}: license"
        );
        assert_eq!(
            raw_section(&out, "version"),
            raw_section(&bytes, "version"),
            "{name}: version"
        );
        use object::{Object as _, ObjectSection as _};
        let f = object::File::parse(&*out).unwrap();
        for s in f.sections() {
            let n = s.name().unwrap();
            assert!(
                !n.starts_with(".debug") && n != ".llvm_addrsig" && !n.starts_with(".rel.BTF"),
                "{name}: {n} should have been dropped"
            );
        }
        if raw_section(&bytes, ".debug_info").is_some() {
            assert!(obj.dropped_sections.iter().any(|s| s == ".debug_info"));
        }
    }
}

#[test]
fn libbpf_opens_every_written_object() {
    for p in all_fixtures() {
        let (name, bytes) = load(&p);
        let out = Object::parse(&bytes).unwrap().write().unwrap();
        let mut b = libbpf_rs::ObjectBuilder::default();
        let open = b.open_memory(&out);
        assert!(
            open.is_ok(),
            "{name}: libbpf cannot open the written object: {:?}",
            open.err()
        );
    }
}

#[test]
fn kernel_loads_written_objects_with_the_original_tags() {
    if !common::kernel_test_gate("kernel_loads_written_objects_with_the_original_tags") {
        return;
    }
    for p in all_fixtures() {
        let (name, bytes) = load(&p);
        let obj = Object::parse(&bytes).unwrap();
        let out = obj.write().unwrap();
        let original = opsplit::load::load_object(&bytes, &name);
        if is_legacy(&obj) {
            // libbpf >= 1.0 cannot open the original: the converted object is the baseline.
            assert!(original.is_err(), "{name}: legacy original loaded");
            let written = opsplit::load::load_object(&out, &name)
                .unwrap_or_else(|e| panic!("{name}: converted object does not load: {e}"));
            assert!(!written.programs.is_empty(), "{name}: nothing loaded");
            continue;
        }
        let written = opsplit::load::load_object(&out, &name);
        let orig = match original {
            Ok(r) => r,
            Err(e) => {
                // Not the codec's doing (the kernel load test owns the corpus), but the written
                // object must then fail the same way rather than load something else.
                let first = |e: &opsplit::Error| e.to_string().lines().next().unwrap().to_string();
                let w = written.expect_err("written object loads but its original does not");
                assert_eq!(first(&w), first(&e), "{name}: different failure");
                eprintln!("{name}: original does not load either: {}", first(&e));
                continue;
            }
        };
        let written =
            written.unwrap_or_else(|e| panic!("{name}: written object does not load: {e}"));
        assert!(!written.programs.is_empty(), "{name}: nothing loaded");
        let tags = |r: &opsplit::load::LoadReport| -> Vec<(String, [u8; 8])> {
            let mut v: Vec<_> = r.programs.iter().map(|p| (p.name.clone(), p.tag)).collect();
            v.sort();
            v
        };
        assert_eq!(tags(&written), tags(&orig), "{name}: program tags differ");
    }
}
