//! Scenarios: the built-in ones reach every op 1..=20, round-trip through JSON Lines, and the
//! runner carries socket state across events (cb-flag gating of ops 8–15, TX-timestamp arming,
//! header option space from HDR_OPT_LEN to WRITE_HDR_OPT, inherited listener flags).

use std::collections::BTreeSet;

use opsplit::obj::Object;
use opsplit::runtime::scenario::{Event, Runner, parse_jsonl, to_jsonl};
use opsplit::runtime::{Config, Machine, builtin};

const PROBE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/probe/probe_helpers.o"
);

fn machine(path: &str) -> Machine {
    let obj = Object::parse(&std::fs::read(path).unwrap()).unwrap();
    Machine::sock_ops(&obj, Config::default()).unwrap()
}

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The probe sets every cb flag and arms TX timestamps, so every call the scenario offers fires.
#[test]
fn the_built_in_scenarios_reach_every_op() {
    let mut ops = BTreeSet::new();
    for name in builtin::SCENARIOS {
        let mut m = machine(PROBE);
        let rs = Runner::new(vec!["probe_helpers".into()])
            .run(&mut m, &builtin::scenario(name).unwrap())
            .unwrap();
        ops.extend(rs.iter().filter_map(|r| r.op));
    }
    assert_eq!(ops, (1..=20).collect::<BTreeSet<u32>>());
}

#[test]
fn scenarios_round_trip_through_json_lines() {
    for name in builtin::SCENARIOS {
        let events = builtin::scenario(name).unwrap();
        let text = to_jsonl(&events);
        assert_eq!(text.lines().count(), events.len());
        assert_eq!(parse_jsonl(&text).unwrap(), events, "{name}");
    }
    let err = parse_jsonl("# comment\n{\"kind\":\"call\",\"sock\":1,\"op\":3,\"bogus\":1}\n")
        .unwrap_err();
    assert!(err.starts_with("line 2:"), "{err}");
}

const SOCKET: &str = r#"{"kind":"socket","id":1,"family":2,"local":"10.0.0.1","local_port":4000,"remote":"10.0.0.2","remote_port":80,"state":2}"#;

/// rto_retrans sets RTO/RETRANS/STATE flags only once established: before that, RTO_CB and
/// STATE_CB are not called at all.
#[test]
fn cb_flags_set_by_a_program_gate_later_ops() {
    let mut m = machine(&fixture("rto_retrans.o"));
    let events = parse_jsonl(&format!(
        "{SOCKET}\n\
         {{\"kind\":\"call\",\"sock\":1,\"op\":8,\"args\":[1,50,0,0]}}\n\
         {{\"kind\":\"state\",\"sock\":1,\"new\":1}}\n\
         {{\"kind\":\"call\",\"sock\":1,\"op\":4}}\n\
         {{\"kind\":\"call\",\"sock\":1,\"op\":8,\"args\":[1,50,0,0]}}\n\
         {{\"kind\":\"state\",\"sock\":1,\"new\":7}}\n"
    ))
    .unwrap();
    let rs = Runner::new(vec!["rto_retrans".into()])
        .run(&mut m, &events)
        .unwrap();
    let fired: Vec<Option<u32>> = rs.iter().map(|r| r.op).collect();
    assert_eq!(fired, vec![None, None, None, Some(4), Some(8), Some(10)]);
}

/// tx_tstamp arms SK_BPF_CB_TX_TIMESTAMPING when established and enables the skb in SENDMSG;
/// SCHED fires only for the armed skb, and the program finds its entry by the skb's tskey.
#[test]
fn tx_timestamps_fire_only_for_armed_skbs() {
    let mut m = machine(&fixture("tx_tstamp.o"));
    let stamp = |op: u32, seq: u32, len: u32| {
        format!(
            "{{\"kind\":\"call\",\"sock\":1,\"op\":{op},\"skb\":{{\"len\":{len},\"seq\":{seq}}}}}"
        )
    };
    let text = [
        SOCKET.to_string(),
        stamp(20, 1000, 100), // not armed yet: no call
        "{\"kind\":\"state\",\"sock\":1,\"new\":1}".into(),
        "{\"kind\":\"call\",\"sock\":1,\"op\":4}".into(),
        stamp(20, 1000, 100),
        stamp(16, 1000, 100), // tskey 1099: armed
        stamp(16, 5000, 100), // never armed
        stamp(19, 1000, 100),
        stamp(19, 1000, 100), // ACK consumed the arming
    ]
    .join("\n");
    let rs = Runner::new(vec!["tx_tstamp".into()])
        .run(&mut m, &parse_jsonl(&text).unwrap())
        .unwrap();
    let fired: Vec<Option<u32>> = rs.iter().map(|r| r.op).collect();
    assert_eq!(
        fired,
        vec![
            None,
            None,
            None,
            Some(4),
            Some(20),
            Some(16),
            None,
            Some(19),
            None
        ]
    );
    // SCHED and ACK found the SENDMSG entry by (cookie, tskey): untracked stays 0 and the
    // entry is gone after ACK.
    let bss = m.map_index(".bss").unwrap();
    let untracked = &m.maps[bss].entries(&m.memory)[0].1;
    assert_eq!(untracked[..8], [0; 8]);
    let inflight = m.map_index("inflight").unwrap();
    assert!(m.maps[inflight].entries(&m.memory).is_empty());
}

#[test]
fn a_child_inherits_the_listener_flags_and_bad_events_are_reported() {
    let mut m = machine(PROBE);
    let text = format!(
        "{SOCKET}\n{{\"kind\":\"call\",\"sock\":1,\"op\":3}}\n\
         {{\"kind\":\"socket\",\"id\":2,\"family\":2,\"local\":\"10.0.0.1\",\"local_port\":4000,\"remote\":\"10.0.0.2\",\"remote_port\":80,\"state\":3,\"parent\":1}}\n\
         {{\"kind\":\"call\",\"sock\":2,\"op\":12,\"args\":[10,80,0,0]}}\n"
    );
    let rs = Runner::new(vec!["probe_helpers".into()])
        .run(&mut m, &parse_jsonl(&text).unwrap())
        .unwrap();
    assert_eq!(rs[3].op, Some(12), "RTT_CB on the child: flags inherited");
    let bad: Vec<Event> = parse_jsonl("{\"kind\":\"call\",\"sock\":9,\"op\":3}").unwrap();
    let e = Runner::new(vec!["probe_helpers".into()])
        .run(&mut m, &bad)
        .unwrap_err();
    assert_eq!(e.to_string(), "event 0: socket 9 is not declared");
}

/// User space fills syn_rto_rwnd's policy: TIMEOUT_INIT then replies with the policy's RTO in
/// jiffies (3000 ms at HZ 250 = 750) instead of leaving the kernel default.
#[test]
fn map_events_fill_maps_before_later_calls() {
    let mut m = machine(&fixture("syn_rto_rwnd.o"));
    let mut key = 2u32.to_le_bytes().to_vec();
    key.extend_from_slice(&[10, 0, 0, 2]);
    key.extend_from_slice(&[0; 12]);
    let value: Vec<u8> = [3000u32, 40, 1, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let text = format!(
        "{SOCKET}\n{{\"kind\":\"call\",\"sock\":1,\"op\":1}}\n\
         {{\"kind\":\"map\",\"name\":\"dst_policy\",\"key\":\"{}\",\"value\":\"{}\"}}\n\
         {{\"kind\":\"call\",\"sock\":1,\"op\":1}}\n",
        opsplit::runtime::scenario::hex(&key),
        opsplit::runtime::scenario::hex(&value)
    );
    let rs = Runner::new(vec!["syn_rto_rwnd".into()])
        .run(&mut m, &parse_jsonl(&text).unwrap())
        .unwrap();
    let reply = |i: usize| rs[i].outcome.as_ref().unwrap().tcp_call_result;
    assert_eq!(reply(1), 0);
    assert_eq!(reply(3), 750);
    let bad =
        parse_jsonl("{\"kind\":\"map\",\"name\":\"dst_policy\",\"key\":\"00\",\"value\":\"00\"}")
            .unwrap();
    let e = Runner::new(vec!["syn_rto_rwnd".into()])
        .run(&mut m, &bad)
        .unwrap_err();
    assert!(e.to_string().contains("takes 20-byte keys"), "{e}");
}

/// tos_reflect's server port reflects the client's DSCP from the saved SYN's IP header: the
/// listener switches TCP_SAVE_SYN on in TCP_LISTEN_CB, the client's program sets its TOS in
/// TCP_CONNECT_CB (before the SYN leaves), the request sock records the SYN with that TOS and
/// the child takes it over (`from`). A child made from a syncookie has no saved SYN.
#[test]
fn a_child_reads_the_saved_syn_its_listener_asked_for() {
    use opsplit::runtime::scenario::hex;
    let mut m = machine(&fixture("tos_reflect.o"));
    let port = |p: u32| hex(&p.to_le_bytes());
    let syn = "a21c1c84000003e8000000005002ffff00000000";
    let text = format!(
        "{{\"kind\":\"map\",\"name\":\"port_class\",\"key\":\"{}\",\"value\":\"00010000\"}}\n\
         {{\"kind\":\"map\",\"name\":\"port_class\",\"key\":\"{}\",\"value\":\"2e000000\"}}\n\
         {{\"kind\":\"socket\",\"id\":1,\"family\":2,\"local\":\"10.0.0.1\",\"local_port\":7300,\"remote\":\"0.0.0.0\",\"remote_port\":0,\"state\":10}}\n\
         {{\"kind\":\"call\",\"sock\":1,\"op\":11}}\n\
         {{\"kind\":\"socket\",\"id\":2,\"family\":2,\"local\":\"10.0.0.2\",\"local_port\":41500,\"remote\":\"10.0.0.1\",\"remote_port\":7300,\"state\":2}}\n\
         {{\"kind\":\"call\",\"sock\":2,\"op\":3}}\n\
         {{\"kind\":\"socket\",\"id\":3,\"family\":2,\"local\":\"10.0.0.1\",\"local_port\":7300,\"remote\":\"10.0.0.2\",\"remote_port\":41500,\"state\":12,\"request\":true,\"parent\":1,\"syn\":\"{syn}\",\"peer\":2}}\n\
         {{\"kind\":\"socket\",\"id\":4,\"family\":2,\"local\":\"10.0.0.1\",\"local_port\":7300,\"remote\":\"10.0.0.2\",\"remote_port\":41500,\"state\":3,\"parent\":1,\"from\":3}}\n\
         {{\"kind\":\"call\",\"sock\":4,\"op\":5}}\n\
         {{\"kind\":\"socket\",\"id\":5,\"family\":2,\"local\":\"10.0.0.1\",\"local_port\":7300,\"remote\":\"10.0.0.2\",\"remote_port\":41501,\"state\":3,\"parent\":1}}\n\
         {{\"kind\":\"call\",\"sock\":5,\"op\":5}}\n",
        port(7300),
        port(41500),
    );
    let mut runner = Runner::new(vec!["tos_reflect".into()]);
    runner.run(&mut m, &parse_jsonl(&text).unwrap()).unwrap();
    let socks = runner.sock_states();
    let ip_tos = |id: u32| socks[&id].1.opts.get(&(0, 1)).copied();
    assert_eq!(ip_tos(2), Some(46 << 2), "the client's class");
    // The saved SYN moved from the request sock to the child, with the client's TOS.
    assert_eq!(socks[&3].1.saved_syn, None);
    let saved = socks[&4]
        .1
        .saved_syn
        .clone()
        .expect("the child's saved SYN");
    assert!(
        saved.mac.is_empty(),
        "TCP_SAVE_SYN 1 keeps no link-layer header"
    );
    assert_eq!(saved.ip[..2], [0x45, 46 << 2]);
    assert_eq!(saved.ip[12..20], [10, 0, 0, 2, 10, 0, 0, 1]);
    assert_eq!(hex(&saved.tcp), syn);
    assert_eq!(ip_tos(4), Some(46 << 2), "reflected");
    assert_eq!(socks[&5].1.saved_syn, None);
    assert_eq!(ip_tos(5), None, "no saved SYN: nothing to reflect");
    let reflected = m.map_index("reflected").unwrap();
    let counts: Vec<(Vec<u8>, Vec<u8>)> = m.maps[reflected]
        .entries(&m.memory)
        .into_iter()
        .filter(|(_, v)| v.iter().any(|&b| b != 0))
        .collect();
    assert_eq!(
        counts,
        vec![(46u32.to_le_bytes().to_vec(), 1u64.to_le_bytes().to_vec())]
    );
}

/// hdr_opt's SYN-ACKs echo a client's hint from the SYN: from `syn_skb` on the first SYN-ACK
/// and, on the `foreign` scenario's retransmitted one (no `syn_skb`), from the request sock's
/// saved SYN; a client whose SYN has no hint gets no echo.
#[test]
fn a_retransmitted_syn_ack_reads_the_request_socks_saved_syn() {
    let mut m = machine(&fixture("hdr_opt.o"));
    let events = builtin::scenario("foreign").unwrap();
    let requests: BTreeSet<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Socket {
                id, request: true, ..
            } => Some(*id),
            _ => None,
        })
        .collect();
    let rs = Runner::new(vec!["hdr_opt".into()])
        .run(&mut m, &events)
        .unwrap();
    let synacks: Vec<(u32, Vec<u8>)> = rs
        .iter()
        .filter(|r| r.op == Some(15) && requests.contains(&r.sock))
        .map(|r| (r.sock, r.outcome.as_ref().unwrap().hdr_written.clone()))
        .collect();
    let echo = vec![254, 6, 0x53, 0x48, 0, 1, 1, 1];
    let plain = vec![254, 6, 0x53, 0x48, 0, 0, 1, 1];
    let written: Vec<&Vec<u8>> = synacks.iter().map(|(_, w)| w).collect();
    assert_eq!(written, vec![&echo, &echo, &echo, &plain], "{synacks:?}");
    assert_eq!(
        synacks[1].0, synacks[2].0,
        "the retransmit is the same request sock's"
    );
}

/// A dual-stack listener that user space set to save SYNs from the link layer on
/// (`save_syn: 2`): a v4-mapped client's SYN arrived as IPv4, so the saved headers are
/// Ethernet (IPv4 type, `lo`'s zero addresses) and a valid IPv4 header; a native IPv6 client's
/// are IPv6. The request sock has no saved SYN in RWND_INIT yet (probe call 18 says -ENOENT).
#[test]
fn saved_syns_carry_the_headers_that_were_on_the_wire() {
    let mut m = machine(PROBE);
    let syn = "c3501f90000003e8000000005002ffff00000000";
    let sock = |id: u32, remote: &str, rport: u16, extra: &str| {
        format!(
            "{{\"kind\":\"socket\",\"id\":{id},\"family\":10,\"local\":\"::ffff:127.0.0.1\",\"local_port\":8080,\"remote\":\"{remote}\",\"remote_port\":{rport},\"state\":12{extra}}}\n"
        )
    };
    let text = [
        "{\"kind\":\"socket\",\"id\":1,\"family\":10,\"local\":\"::\",\"local_port\":8080,\"remote\":\"::\",\"remote_port\":0,\"state\":10,\"save_syn\":2}\n".to_string(),
        sock(2, "::ffff:127.0.0.1", 50000, &format!(",\"request\":true,\"parent\":1,\"syn\":\"{syn}\"")),
        "{\"kind\":\"call\",\"sock\":2,\"op\":2}\n".into(),
        "{\"kind\":\"call\",\"sock\":2,\"op\":1}\n".into(),
        sock(3, "::ffff:127.0.0.1", 50000, ",\"parent\":1,\"from\":2").replace("\"state\":12", "\"state\":3"),
        sock(4, "2001:db8::9", 50001, &format!(",\"request\":true,\"parent\":1,\"syn\":\"{syn}\""))
            .replace("::ffff:127.0.0.1", "2001:db8::1"),
    ]
    .concat();
    let mut runner = Runner::new(vec!["probe_helpers".into()]);
    runner.run(&mut m, &parse_jsonl(&text).unwrap()).unwrap();
    let socks = runner.sock_states();
    let v4 = socks[&3].1.saved_syn.clone().expect("moved to the child");
    assert_eq!(v4.mac, [[0u8; 12].as_slice(), &[0x08, 0x00]].concat());
    assert_eq!(v4.ip.len(), 20);
    assert_eq!(v4.ip[0], 0x45);
    assert_eq!(
        u16::from_be_bytes([v4.ip[2], v4.ip[3]]),
        40,
        "IP + TCP, no data"
    );
    assert_eq!(v4.ip[12..20], [127, 0, 0, 1, 127, 0, 0, 1]);
    let folded = v4
        .ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    assert_eq!(
        (folded & 0xffff) + (folded >> 16),
        0xffff,
        "header checksum"
    );
    let v6 = socks[&4].1.saved_syn.clone().expect("the request sock's");
    assert_eq!(v6.mac[12..], [0x86, 0xdd]);
    assert_eq!(
        v6.mac[..12],
        [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xfe],
        "not loopback"
    );
    assert_eq!(v6.ip.len(), 40);
    assert_eq!(v6.ip[0] >> 4, 6);
    assert_eq!(
        v6.ip[8..24],
        "2001:db8::9"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
    // The probe read TCP_BPF_SYN in RWND_INIT (-ENOENT: not recorded yet) and TIMEOUT_INIT
    // (the 20-byte TCP header).
    let results = m.map_index("probe_results").unwrap();
    let call18: BTreeSet<(u32, i32)> = m.maps[results]
        .entries(&m.memory)
        .into_iter()
        .filter_map(|(k, _)| {
            let w = |i: usize| u32::from_le_bytes(k[4 * i..4 * i + 4].try_into().unwrap());
            (w(1) == 18).then(|| (w(0), w(3) as i32))
        })
        .collect();
    assert_eq!(call18, BTreeSet::from([(2, -2), (1, 20)]));
}
