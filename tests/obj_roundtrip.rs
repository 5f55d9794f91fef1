//! Round trip of every committed fixture through `Object::parse` and `Object::write`.

mod common;

use std::path::PathBuf;

use opsplit::obj::{
    ExternKind, MapKind, MapValue, Object, Pinning, ProgramType, RelocKind, SectionKind,
};

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

/// `tests/data/obj_features.o` (source beside it): ELF features the sock_ops corpus lacks.
fn features() -> (Vec<u8>, Object) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/obj_features.o");
    let bytes = std::fs::read(path).expect("tests/data/obj_features.o");
    let obj = Object::parse(&bytes).expect("features object parses");
    (bytes, obj)
}

fn kinds_in(obj: &Object, function: &str) -> Vec<(usize, RelocKind)> {
    obj.function_by_name(function)
        .unwrap_or_else(|| panic!("no function {function}"))
        .relocations
        .iter()
        .map(|r| (r.slot, r.kind.clone()))
        .collect()
}

fn fid(obj: &Object, name: &str) -> usize {
    obj.functions.iter().position(|f| f.name == name).unwrap()
}

#[test]
fn features_programs_and_subprograms() {
    let (_, obj) = features();
    let progs: Vec<(&str, &str, ProgramType)> = obj
        .programs
        .iter()
        .map(|p| {
            (
                obj.functions[p.function].name.as_str(),
                p.section_name.as_str(),
                p.prog_type.clone(),
            )
        })
        .collect();
    assert_eq!(
        progs,
        vec![
            ("tail1", "sockops", ProgramType::SockOps),
            ("prog_a", "sockops", ProgramType::SockOps),
            ("prog_b", "sockops", ProgramType::SockOps),
            ("tp", "tp_btf/sched_switch", ProgramType::Tracing),
            ("wake", "tp_btf/sched_wakeup", ProgramType::Tracing),
            ("dummy_test_1", "struct_ops/test_1", ProgramType::StructOps),
        ]
    );
    let text: Vec<&str> = obj
        .functions
        .iter()
        .filter(|f| obj.sections[f.section].name == ".text")
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(text, vec!["gsub", "sub", "cb"]);
    assert_eq!(obj.license.as_deref(), Some("GPL"));
    assert_eq!(obj.kernel_version, None);
}

#[test]
fn features_maps_with_values_inner_maps_and_pinning() {
    let (_, obj) = features();
    let pinned = obj.map_by_name("opsplit_objtest_pinned").unwrap();
    assert_eq!(pinned.kind, MapKind::BtfDefined);
    assert_eq!(pinned.def.map_type, 1);
    assert_eq!(pinned.def.pinning, Pinning::ByName);
    assert_eq!(pinned.def.map_flags, 1, "BPF_F_NO_PREALLOC");
    assert_eq!(
        (pinned.def.key_size, pinned.def.value_size),
        (Some(4), Some(8))
    );
    assert!(pinned.def.key_type.is_some() && pinned.def.value_type.is_some());
    let sized = obj.map_by_name("sized").unwrap();
    assert_eq!(
        (sized.def.key_size, sized.def.value_size),
        (Some(4), Some(8))
    );
    assert_eq!((sized.def.key_type, sized.def.max_entries), (None, 4));
    let jmp = obj.map_by_name("jmp").unwrap();
    assert_eq!(jmp.def.map_type, 3);
    assert_eq!(
        jmp.values,
        vec![
            MapValue::Program {
                index: 1,
                function: "tail1".into()
            },
            MapValue::Program {
                index: 3,
                function: "tail1".into()
            },
        ]
    );
    let outer = obj.map_by_name("outer").unwrap();
    assert_eq!(outer.def.map_type, 12);
    assert_eq!(outer.def.inner.as_ref().map(|i| i.map_type), Some(2));
    assert_eq!(
        outer.values,
        vec![
            MapValue::Map {
                index: 0,
                map: "inner1".into()
            },
            MapValue::Map {
                index: 1,
                map: "inner2".into()
            },
        ]
    );
    let data: Vec<&str> = obj
        .maps
        .iter()
        .filter(|m| m.kind == MapKind::GlobalData)
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(data, vec![".data", ".rodata", ".bss"]);
    assert!(obj.maps.iter().any(|m| m.kind == MapKind::Kconfig));
    let st = obj.section_by_name(".struct_ops.link").unwrap().1;
    assert_eq!(st.kind, SectionKind::StructOps);
    assert_eq!(st.relocations.len(), 1);
    assert_eq!(obj.symbols[st.relocations[0].symbol].name, "dummy_test_1");
}

#[test]
fn features_externs_by_btf_datasec() {
    let (_, obj) = features();
    let ex: Vec<(&str, ExternKind, bool, bool)> = obj
        .externs
        .iter()
        .map(|e| (e.name.as_str(), e.kind, e.weak, e.btf_id.is_some()))
        .collect();
    let want = [
        ("LINUX_KERNEL_VERSION", ExternKind::Kconfig, false, true),
        ("CONFIG_BPF_SYSCALL", ExternKind::Kconfig, true, true),
        ("bpf_task_acquire", ExternKind::Kfunc, true, true),
        ("bpf_task_release", ExternKind::Kfunc, false, true),
        ("runqueues", ExternKind::Ksym, false, true),
    ];
    for w in want {
        assert!(ex.contains(&w), "missing extern {w:?} in {ex:?}");
    }
    assert_eq!(ex.len(), want.len(), "{ex:?}");
}

#[test]
fn features_code_relocations_are_classified() {
    let (_, obj) = features();
    let a = kinds_in(&obj, "prog_a");
    let map = |m: &str| RelocKind::Map { map: m.into() };
    assert!(
        a.iter()
            .filter(|(_, k)| *k == map("opsplit_objtest_pinned"))
            .count()
            == 2
    );
    assert!(a.iter().any(|(_, k)| *k == map("jmp")));
    // `sub` is static: clang calls it through the .text section symbol plus an addend.
    assert!(a.iter().any(|(_, k)| *k
        == RelocKind::Call {
            target: fid(&obj, "sub")
        }));
    assert!(a.iter().any(|(_, k)| *k
        == RelocKind::Call {
            target: fid(&obj, "gsub")
        }));
    assert!(a.iter().any(|(_, k)| *k
        == RelocKind::Extern {
            name: "LINUX_KERNEL_VERSION".into(),
            kind: ExternKind::Kconfig
        }));
    let b = kinds_in(&obj, "prog_b");
    assert!(b.iter().any(|(_, k)| *k
        == RelocKind::FuncAddr {
            target: fid(&obj, "cb")
        }));
    let bss = obj.section_by_name(".bss").unwrap().0;
    let cb: Vec<RelocKind> = kinds_in(&obj, "cb").into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        cb,
        vec![RelocKind::GlobalData {
            section: bss,
            offset: 0
        }]
    );
    let tp = kinds_in(&obj, "tp");
    assert!(tp.iter().any(|(_, k)| *k
        == RelocKind::Extern {
            name: "bpf_task_acquire".into(),
            kind: ExternKind::Kfunc
        }));
    assert!(tp.iter().any(|(_, k)| *k
        == RelocKind::KfuncCall {
            name: "bpf_task_release".into()
        }));
    let wake = kinds_in(&obj, "wake");
    assert!(wake.iter().any(|(_, k)| *k
        == RelocKind::Extern {
            name: "runqueues".into(),
            kind: ExternKind::Ksym
        }));
    // Every relocation slot really holds the instruction the classification needs.
    for f in &obj.functions {
        for r in &f.relocations {
            let insn = f
                .insns
                .iter()
                .find(|i| i.slot == r.slot)
                .expect("slot starts an insn");
            match r.kind {
                RelocKind::Call { .. } | RelocKind::KfuncCall { .. } => {
                    assert!(
                        matches!(insn.insn, opsplit::insn::Insn::Call(_)),
                        "{}",
                        f.name
                    )
                }
                _ => assert!(
                    matches!(insn.insn, opsplit::insn::Insn::LdImm64 { .. }),
                    "{}",
                    f.name
                ),
            }
        }
    }
}

#[test]
fn features_object_round_trips() {
    let (bytes, obj) = features();
    let out = obj.write().unwrap();
    assert_eq!(raw_section(&out, ".BTF"), raw_section(&bytes, ".BTF"));
    assert_eq!(
        raw_section(&out, ".BTF.ext"),
        raw_section(&bytes, ".BTF.ext")
    );
    assert_eq!(
        raw_section(&out, ".struct_ops.link"),
        raw_section(&bytes, ".struct_ops.link")
    );
    let again = Object::parse(&out).unwrap();
    assert_eq!(again.functions, obj.functions);
    assert_eq!(again.programs, obj.programs);
    assert_eq!(again.maps, obj.maps);
    assert_eq!(again.externs, obj.externs);
    assert_eq!(relocs(&again), relocs(&obj));
    let mut b = libbpf_rs::ObjectBuilder::default();
    let open = b
        .open_memory(&out)
        .expect("libbpf opens the written features object");
    let names: Vec<String> = open
        .maps()
        .map(|m| m.name().to_string_lossy().into_owned())
        .collect();
    for m in ["jmp", "outer", "opsplit_objtest_pinned", "dummy"] {
        assert!(
            names.iter().any(|n| n == m),
            "libbpf lost map {m}: {names:?}"
        );
    }
}

#[test]
fn edited_instructions_are_written_and_resizing_is_refused() {
    use opsplit::insn::{Insn, Reg, Src, Width};
    let (_, mut obj) = features();
    let f = obj
        .functions
        .iter()
        .position(|f| f.name == "tail1")
        .unwrap();
    // tail1 is `r0 = 1; exit`: make it return 0.
    assert!(matches!(
        obj.functions[f].insns[0].insn,
        Insn::Alu {
            src: Src::Imm(1),
            ..
        }
    ));
    obj.functions[f].insns[0].insn = Insn::Alu {
        width: Width::W64,
        op: opsplit::insn::AluOp::Mov,
        dst: Reg::R0,
        src: Src::Imm(0),
    };
    let again = Object::parse(&obj.write().unwrap()).unwrap();
    assert_eq!(
        again.function_by_name("tail1").unwrap().insns,
        obj.functions[f].insns
    );
    assert_ne!(again.functions, features().1.functions);

    obj.functions[f].insns.pop();
    let e = obj.write().unwrap_err();
    assert!(
        e.to_string().contains("function `tail1` has 1 slots"),
        "{e}"
    );
}

#[test]
fn btf_id_remap_rewrites_instructions_ext_and_analysis() {
    use opsplit::btf::TypeIdMap;
    use opsplit::insn::{Call, Insn};
    let (_, mut obj) = features();
    let btf = obj.btf.as_ref().unwrap();
    let (license_ds, _) = btf.find_datasec("license").unwrap();
    let release = btf.find_func("bpf_task_release").unwrap();
    assert!(
        release < license_ds,
        "test needs a kfunc id before the moved type"
    );
    // Resolve the kfunc call the way libbpf would, so the instruction carries a BTF id.
    let tp = obj.functions.iter().position(|f| f.name == "tp").unwrap();
    let slot = obj.functions[tp]
        .relocations
        .iter()
        .find(|r| {
            r.kind
                == RelocKind::KfuncCall {
                    name: "bpf_task_release".into(),
                }
        })
        .unwrap()
        .slot;
    let i = obj.functions[tp]
        .insns
        .iter()
        .position(|x| x.slot == slot)
        .unwrap();
    obj.functions[tp].insns[i].insn = Insn::Call(Call::Kfunc {
        btf_id: release as i32,
        off: 0,
    });
    let ext_before = obj.btf_ext.clone().unwrap();
    // Move the `license` DATASEC (nothing refers to it) to id 1: every id below it shifts up.
    let map = TypeIdMap::from_vec(
        (0..btf.types.len() as u32)
            .map(|old| match old {
                0 => 0,
                o if o == license_ds => 1,
                o if o < license_ds => o + 1,
                o => o,
            })
            .collect(),
    );
    obj.apply_btf_id_map(&map).unwrap();

    let btf = obj.btf.as_ref().unwrap();
    assert_eq!(btf.find_datasec("license").map(|(id, _)| id), Some(1));
    let new_release = btf.find_func("bpf_task_release").unwrap();
    assert_eq!(new_release, release + 1);
    assert_eq!(
        obj.functions[tp].insns[i].insn,
        Insn::Call(Call::Kfunc {
            btf_id: new_release as i32,
            off: 0
        })
    );
    let ext = obj.extern_by_name("bpf_task_release").unwrap();
    assert_eq!(ext.btf_id, Some(new_release));
    let jmp = obj.map_by_name("jmp").unwrap();
    assert_eq!(
        jmp.btf_id,
        btf.map_defs()
            .unwrap()
            .iter()
            .find(|d| d.name == "jmp")
            .map(|d| d.var_id)
    );
    assert_ne!(
        obj.btf_ext.as_ref().unwrap(),
        &ext_before,
        "func_info ids moved"
    );
    // The remapped object is still consistent: it writes and reads back to the same analysis.
    let again = Object::parse(&obj.write().unwrap()).unwrap();
    assert_eq!(again.maps, obj.maps);
    assert_eq!(again.externs, obj.externs);
    assert_eq!(again.functions[tp].insns[i], obj.functions[tp].insns[i]);
}
