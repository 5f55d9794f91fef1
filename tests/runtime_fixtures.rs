//! The runtime on the compiled fixtures: a real sock_ops program that needs no sock_ops helper
//! (`ecn_base_rtt`: LPM trie, array stats with atomic adds, `.rodata` knob) run in every build
//! variant with a raw context, and every fixture either loading or refused with a load error that
//! names what the runtime does not model yet.

use std::path::Path;

use opsplit::obj::Object;
use opsplit::runtime::{Config, Machine, RegionKind};

fn fixture(name: &str) -> Object {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Object::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const NEEDS_ECN: u32 = 6;
const BASE_RTT: u32 = 7;

/// A 224-byte `struct bpf_sock_ops` with op, family and the remote address filled in.
fn ctx(op: u32, family: u32, ip4: [u8; 4], ip6: [u8; 16]) -> Vec<u8> {
    let mut c = vec![0u8; 224];
    c[0..4].copy_from_slice(&op.to_le_bytes());
    c[20..24].copy_from_slice(&family.to_le_bytes());
    c[24..28].copy_from_slice(&ip4);
    c[32..48].copy_from_slice(&ip6);
    c
}

fn mapped(ip4: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&ip4);
    a
}

#[test]
fn ecn_base_rtt_runs_with_kernel_map_semantics_in_every_variant() {
    for name in ["ecn_base_rtt.o", "ecn_base_rtt.O1.o", "ecn_base_rtt.v1.o"] {
        let obj = fixture(name);
        let mut m =
            Machine::from_object(&obj, Config::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        // User space: ::ffff:10.0.0.0/104 has base RTT 150 us and ECN on.
        let lpm = m.map_index("fabric_prefixes").unwrap();
        let mut key = 104u32.to_le_bytes().to_vec();
        key.extend_from_slice(&mapped([10, 0, 0, 0]));
        let mut value = 150u32.to_le_bytes().to_vec();
        value.extend_from_slice(&1u32.to_le_bytes());
        m.maps[lpm].update(&mut m.memory, &key, &value, 0).unwrap();

        let ctx_ptr = m.alloc(RegionKind::Ctx, vec![0; 224], true);
        let call = |m: &mut Machine, c: Vec<u8>| {
            m.memory.write_bytes(ctx_ptr, &c).unwrap();
            let ret = m
                .run("ecn_base_rtt", ctx_ptr)
                .unwrap_or_else(|f| panic!("{name}: {f}"));
            assert_eq!(ret, 1, "{name}: programs return 1");
            m.memory.load(ctx_ptr + 4, 4).unwrap() as u32
        };
        let inside = [10, 1, 2, 3];
        let outside = [11, 0, 0, 1];
        let none = [0; 16];
        assert_eq!(
            call(&mut m, ctx(NEEDS_ECN, AF_INET, inside, none)),
            1,
            "{name}"
        );
        assert_eq!(
            call(&mut m, ctx(BASE_RTT, AF_INET, inside, none)),
            150,
            "{name}"
        );
        // Outside the prefix: the .rodata default (80) and no ECN.
        assert_eq!(
            call(&mut m, ctx(BASE_RTT, AF_INET, outside, none)),
            80,
            "{name}"
        );
        assert_eq!(
            call(&mut m, ctx(NEEDS_ECN, AF_INET, outside, none)),
            0,
            "{name}"
        );
        // IPv6 peers are looked up by their own address: v4-mapped matches the v4 prefix.
        let v6 = mapped([10, 9, 9, 9]);
        assert_eq!(
            call(&mut m, ctx(BASE_RTT, AF_INET6, [0; 4], v6)),
            150,
            "{name}"
        );
        // Any other op replies -1.
        assert_eq!(
            call(&mut m, ctx(4, AF_INET, inside, none)),
            u32::MAX,
            "{name}"
        );

        let stats = m.map_index("ecn_stats").unwrap();
        let counts: Vec<u64> = m.maps[stats]
            .entries(&m.memory)
            .iter()
            .map(|(_, v)| u64::from_le_bytes(v[..8].try_into().unwrap()))
            .collect();
        // [ECN_ON, ECN_OFF, BASE_RTT_PREFIX, BASE_RTT_DEFAULT]
        assert_eq!(counts, vec![1, 1, 2, 1], "{name}");
        assert!(m.stats.total_insns > 0);
    }
}

#[test]
fn every_fixture_loads_or_names_what_is_not_modelled() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".o"))
        .collect();
    names.sort();
    assert!(names.len() > 10);
    let mut loaded = Vec::new();
    for name in &names {
        let obj = fixture(name);
        match Machine::from_object(&obj, Config::default()) {
            Ok(_) => loaded.push(name.as_str()),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("is not available in the runtime")
                        || msg.contains("does not model it"),
                    "{name}: unexpected load error: {msg}"
                );
                // The error locates the instruction.
                assert!(msg.contains("slot "), "{name}: {msg}");
            }
        }
    }
    for must in ["ecn_base_rtt.o", "ecn_base_rtt.O1.o", "ecn_base_rtt.v1.o"] {
        assert!(loaded.contains(&must), "{must} should load: {loaded:?}");
    }
}

#[test]
fn kconfig_extern_is_a_load_error_naming_it() {
    let obj = fixture("syn_rto_rwnd.o");
    let e = Machine::from_object(&obj, Config::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("CONFIG_HZ") && e.contains("syn_rto_rwnd"), "{e}");
}
