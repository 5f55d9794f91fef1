//! The runtime on the compiled fixtures: real sock_ops programs that need no sock_ops helper
//! (`ecn_base_rtt`: LPM trie, array stats with atomic adds, `.rodata` knob; `syn_rto_rwnd`: hash
//! policy, per-CPU counters, kconfig) run in every build variant on contexts built by
//! `runtime::sockops`, and every fixture either loading or refused with a load error that
//! names what the runtime does not model yet.

use std::path::Path;

use opsplit::obj::Object;
use opsplit::runtime::sockops::{HookCall, SockCommon, SockExtra, Socket, TcpFields};
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

/// A hook call on a locked full socket with the given op, family and remote address.
fn ctx(op: u32, family: u32, ip4: [u8; 4], ip6: [u8; 16]) -> HookCall {
    HookCall {
        op,
        args: [0; 4],
        socket: Socket::Full {
            common: SockCommon {
                family: family as u16,
                local_ip4: [127, 0, 0, 1],
                remote_ip4: ip4,
                remote_ip6: ip6,
                local_port: 5201,
                remote_port: 40738,
                state: 1,
                ..SockCommon::default()
            },
            tcp: TcpFields::default(),
            extra: SockExtra::default(),
        },
        locked: true,
        skb: None,
    }
}

/// Runs `prog` on a fresh context for `call`: (return value, reply).
fn run_hook(m: &mut Machine, prog: &str, call: &HookCall) -> (u64, u32) {
    let c = m.sock_ops_context(call);
    let ret = m.run(prog, c.ctx).unwrap_or_else(|f| panic!("{f}"));
    let reply = m.sock_ops_reply(&c);
    m.release_sock_ops_context(c);
    (ret, reply)
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

        let call = |m: &mut Machine, c: HookCall| {
            let (ret, reply) = run_hook(m, "ecn_base_rtt", &c);
            assert_eq!(ret, 1, "{name}: programs return 1");
            reply
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

/// With the sock_ops helpers and kfuncs, every fixture (main builds, variants and per-op
/// reference builds) loads: CO-RE relocations resolve against the kernel layout and every
/// helper the fixtures call is modelled. With only the generic helpers, the ones calling
/// sock_ops helpers are refused with a load error naming the helper and the instruction.
#[test]
fn every_fixture_loads_with_the_sock_ops_helpers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut names: Vec<String> = Vec::new();
    for sub in ["", "ref"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let n = e.unwrap().file_name().into_string().unwrap();
            if n.ends_with(".o") {
                names.push(if sub.is_empty() {
                    n
                } else {
                    format!("{sub}/{n}")
                });
            }
        }
    }
    names.sort();
    assert!(names.len() > 40);
    let mut refused_generic = 0;
    for name in &names {
        let obj = fixture(name);
        Machine::sock_ops(&obj, Config::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Err(e) = Machine::from_object(&obj, Config::default()) {
            let msg = e.to_string();
            assert!(
                msg.contains("is not available in the runtime"),
                "{name}: {msg}"
            );
            assert!(msg.contains("slot "), "{name}: {msg}");
            refused_generic += 1;
        }
    }
    assert!(refused_generic > 20, "{refused_generic}");
}

/// `syn_rto_rwnd`: hash map policy lookups, a per-CPU array of hit counters, `.rodata` knobs
/// and the `CONFIG_HZ` kconfig extern, which comes from [`Config::hz`].
#[test]
fn syn_rto_rwnd_converts_with_config_hz_and_honours_rodata_knobs() {
    const TIMEOUT_INIT: u32 = 1;
    const RWND_INIT: u32 = 2;
    for (name, hz) in [
        ("syn_rto_rwnd.o", 250u64),
        ("syn_rto_rwnd.v1.o", 250),
        ("syn_rto_rwnd.v4.o", 1000),
        ("syn_rto_rwnd.O1.o", 100),
    ] {
        let obj = fixture(name);
        let config = Config {
            hz,
            ..Config::default()
        };
        let mut m = Machine::from_object(&obj, config).unwrap_or_else(|e| panic!("{name}: {e}"));
        let policy = m.map_index("dst_policy").unwrap();
        let key = |ip: [u8; 4]| {
            let mut k = AF_INET.to_le_bytes().to_vec();
            k.extend_from_slice(&ip);
            k.extend_from_slice(&[0; 12]);
            k
        };
        let value = |rto: u32, rwnd: u32, flags: u32| {
            [rto, rwnd, flags, 0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()
        };
        let (known, clamped, unknown) = ([10, 0, 0, 1], [10, 0, 0, 2], [10, 0, 0, 3]);
        m.maps[policy]
            .update(&mut m.memory, &key(known), &value(3000, 40, 1), 0)
            .unwrap();
        m.maps[policy]
            .update(&mut m.memory, &key(clamped), &value(100_000, 0, 0), 0)
            .unwrap();

        let call = |m: &mut Machine, op: u32, ip: [u8; 4]| {
            let (ret, reply) = run_hook(m, "syn_rto_rwnd", &ctx(op, AF_INET, ip, [0; 16]));
            (ret, u64::from(reply))
        };
        // ms -> jiffies rounds up: (ms * HZ + 999) / 1000.
        let jiffies = |ms: u64| (ms * hz).div_ceil(1000);
        assert_eq!(
            call(&mut m, TIMEOUT_INIT, known),
            (1, jiffies(3000)),
            "{name}"
        );
        assert_eq!(call(&mut m, RWND_INIT, known), (1, 40), "{name}");
        assert_eq!(call(&mut m, NEEDS_ECN, known), (1, 1), "{name}");
        // max_rto_ms (60000) caps the policy.
        assert_eq!(
            call(&mut m, TIMEOUT_INIT, clamped),
            (1, jiffies(60_000)),
            "{name}"
        );
        // No policy, no default: the kernel keeps its own values.
        assert_eq!(call(&mut m, TIMEOUT_INIT, unknown), (1, 0), "{name}");
        assert_eq!(call(&mut m, RWND_INIT, unknown), (0, 0), "{name}");
        assert_eq!(call(&mut m, NEEDS_ECN, unknown), (1, 0), "{name}");

        // The skeleton sets default_rto_ms in .rodata before load.
        let sym = obj
            .symbols
            .iter()
            .find(|s| s.name == "default_rto_ms")
            .unwrap();
        let rodata = m.map_index(".rodata").unwrap();
        let region = m.maps[rodata].global_region().unwrap();
        let off = sym.value as usize;
        m.memory.region_mut(region).unwrap().data[off..off + 4]
            .copy_from_slice(&2000u32.to_le_bytes());
        assert_eq!(
            call(&mut m, TIMEOUT_INIT, unknown),
            (1, jiffies(2000)),
            "{name}"
        );

        let hits = m.map_index("policy_hits").unwrap();
        let counts: Vec<u64> = m.maps[hits]
            .entries(&m.memory)
            .iter()
            .map(|(_, v)| u64::from_le_bytes(v[..8].try_into().unwrap()))
            .collect();
        // [timeout, rwnd, ecn]: known, clamped and the default each set a timeout.
        assert_eq!(counts, vec![3, 1, 1], "{name}");
    }
}

#[test]
fn a_fault_in_a_fixture_carries_its_source_line() {
    let obj = fixture("ecn_base_rtt.o");
    let mut m = Machine::from_object(&obj, Config::default()).unwrap();
    // A context cut short after `op`: the program's read of `family` is out of bounds.
    let mut short = ctx(BASE_RTT, AF_INET, [10, 0, 0, 1], [0; 16]).context_bytes(0, 0, 0);
    short.truncate(8);
    let ctx_ptr = m.alloc(RegionKind::Ctx, short, true);
    let f = m.run("ecn_base_rtt", ctx_ptr).unwrap_err();
    let line = f.line.as_ref().expect("fixtures carry BTF line info");
    assert!(line.text.contains("family"), "{f}");
    assert!(line.file.ends_with("ecn_base_rtt.c"), "{f}");
    assert!(f.to_string().contains("ecn_base_rtt.c:"), "{f}");
}
