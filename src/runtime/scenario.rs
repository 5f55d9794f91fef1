//! Scenarios: deterministic sequences of sock_ops hook calls (docs/SCENARIOS.md).
//!
//! A scenario is a list of [`Event`]s, written as JSON Lines (one event per line): sockets are
//! declared, then hook calls and state changes refer to them. [`Runner`] plays the events on a
//! [`Machine`] the way the kernel would reach the programs: per-socket state (cb flags, socket
//! options, TX-timestamp arming, the header option space reserved for the next segment) is
//! carried across events, the cb flags gate ops 8–15, `SK_BPF_CB_TX_TIMESTAMPING` and the skb's
//! arming gate ops 16–20, and WRITE_HDR_OPT only runs when HDR_OPT_LEN reserved space.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::helpers::Record;
use super::sockhelpers::sockopt::{IP_TOS, IPV6_TCLASS, SOL_IP, SOL_IPV6, SOL_TCP, TCP_SAVE_SYN};
use super::sockhelpers::{HookState, SockState, Syn};
use super::sockops::{HookCall, HookOutcome, Skb, SockCommon, SockExtra, Socket, TcpFields, op};
use super::{Fault, Machine};

/// One line of a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// Declares socket `id`. A request sock (`request`) or a passively created child names its
    /// listener as `parent`: a request sock's calls are gated by the listener's flags, a child
    /// inherits the listener's flags and options.
    Socket {
        id: u32,
        /// 2 (AF_INET) or 10 (AF_INET6).
        family: u16,
        local: IpAddr,
        local_port: u16,
        remote: IpAddr,
        remote_port: u16,
        /// TCP state (`BPF_TCP_*`).
        state: u8,
        #[serde(default)]
        request: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<u32>,
        /// The SYN the socket saved, hex TCP header with options, whatever the listener's
        /// `TCP_SAVE_SYN` (a socket whose SYN the trace does not say).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        saved_syn: Option<String>,
        /// The SYN this socket was created from (a request sock, or a TCP Fast Open child made
        /// at the SYN), hex TCP header with options. Kept as the saved SYN when the listener
        /// has `TCP_SAVE_SYN` (after RWND_INIT, as `tcp_conn_request` records it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        syn: Option<String>,
        /// The socket that sent `syn`: the options its programs wrote in its last
        /// WRITE_HDR_OPT (the SYN's) are appended, and its IP_TOS / IPV6_TCLASS is the SYN's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<u32>,
        /// The request sock this child was created from: the child takes its saved SYN
        /// (`tcp_move_syn`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<u32>,
        /// `TCP_SAVE_SYN` set from user space before `listen()` (0, 1 or 2).
        #[serde(default, skip_serializing_if = "is_zero_u8")]
        save_syn: u8,
    },
    /// One hook call. The runner decides whether the kernel would make it (gating).
    Call {
        sock: u32,
        op: u32,
        #[serde(default)]
        args: [u32; 4],
        #[serde(default, skip_serializing_if = "Option::is_none")]
        skb: Option<SkbSpec>,
        /// `syn_skb` (SYN-ACK header option ops): hex TCP header with options.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        syn: Option<String>,
        /// PARSE_HDR_OPT: the segment carries an option the stack does not know.
        #[serde(default, skip_serializing_if = "is_false")]
        unknown_option: bool,
        /// HDR_OPT_LEN: free option space (default 40).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remaining: Option<u32>,
        /// The socket that sent the segment in `skb` (or `syn`): the options its programs wrote
        /// in its last WRITE_HDR_OPT are appended to the header, so header options travel
        /// between the two ends as on a real connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<u32>,
        /// Virtual time advance before the call, ns.
        #[serde(default, skip_serializing_if = "is_zero")]
        dt_ns: u64,
    },
    /// `tcp_set_state`: STATE_CB (if flagged) with the old and new state, then the change.
    State {
        sock: u32,
        new: u8,
        #[serde(default, skip_serializing_if = "is_zero")]
        dt_ns: u64,
    },
    /// User space updates a map (`bpf_map_update_elem` from the agent): key and value in hex.
    Map {
        name: String,
        key: String,
        value: String,
    },
    /// New values of the socket's `tcp_sock` counters as the stack moved them.
    Tcp {
        sock: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snd_cwnd: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        srtt_us: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rtt_min: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mss_cache: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes_acked: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes_received: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data_segs_out: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total_retrans: Option<u32>,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u8(v: &u8) -> bool {
    *v == 0
}

/// The packet of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkbSpec {
    /// The bytes programs may read directly: a TCP header with options (hex), or "" for the
    /// empty window of HDR_OPT_LEN and the TSTAMP ops.
    #[serde(default)]
    pub header: String,
    #[serde(default)]
    pub len: u32,
    #[serde(default)]
    pub tcp_flags: u8,
    /// `TCP_SKB_CB(skb)->seq`: names the skb for TX timestamps.
    #[serde(default)]
    pub seq: u32,
    #[serde(default)]
    pub hwtstamp: u64,
    /// TSTAMP SCHED/SND/ACK: the `tskey` of the skb (`seq + len - 1` of the skb armed in
    /// SENDMSG); defaults to `seq + len - 1` of this skb.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tskey: Option<u32>,
}

/// Parses hex bytes ("" is empty).
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits in `{s}`"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| format!("bad hex `{s}`")))
        .collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reads a scenario in JSON Lines (blank lines and lines starting with `#` are skipped).
pub fn parse_jsonl(text: &str) -> Result<Vec<Event>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

pub fn to_jsonl(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| serde_json::to_string(e).expect("events serialize") + "\n")
        .collect()
}

/// A simulated socket between events.
#[derive(Debug, Clone)]
struct SimSock {
    common: SockCommon,
    request: bool,
    parent: Option<u32>,
    sock: SockState,
    tcp: TcpFields,
    /// Option bytes HDR_OPT_LEN reserved for the segment being built.
    reserved: u32,
    /// `tskey`s of skbs armed for TX timestamps.
    armed: BTreeSet<u32>,
    /// The option bytes the programs stored in the last WRITE_HDR_OPT (trailing NOPs dropped).
    sent_options: Vec<u8>,
}

/// Appends `opts` to the options of TCP header `h` (NOP-padded to 4 bytes, at most 40 option
/// bytes), fixing the data offset.
fn with_options(mut h: Vec<u8>, opts: &[u8]) -> Vec<u8> {
    if h.len() < 20 || opts.is_empty() {
        return h;
    }
    let mut o = opts.to_vec();
    while !o.len().is_multiple_of(4) {
        o.push(1);
    }
    if h.len() + o.len() > 60 {
        return h;
    }
    h.extend_from_slice(&o);
    h[12] = ((h.len() / 4) as u8) << 4 | (h[12] & 0x0f);
    h
}

/// The IPv4 address of a v4-mapped IPv6 address.
fn mapped_v4(a: &[u8; 16]) -> Option<[u8; 4]> {
    (a[..10] == [0; 10] && a[10..12] == [0xff, 0xff]).then(|| [a[12], a[13], a[14], a[15]])
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The headers of a SYN socket `c` received: `tcp` behind the IP header its sender's addresses
/// give (IPv4 for an IPv4 or v4-mapped peer) with the sender's TOS / traffic class, behind a
/// link-layer header (`mac`: all-zero addresses on loopback, as `lo` has them). The IP
/// identification and flow label are virtual (from the ports); the SYN carries no data.
fn received_syn(c: &SockCommon, tcp: Vec<u8>, peer: Option<&SockState>, mac: bool) -> Syn {
    let v4 = match c.family {
        2 => Some((c.remote_ip4, c.local_ip4)),
        _ => mapped_v4(&c.remote_ip6).zip(mapped_v4(&c.local_ip6)),
    };
    let opt = if v4.is_some() {
        (SOL_IP, IP_TOS)
    } else {
        (SOL_IPV6, IPV6_TCLASS)
    };
    let tos = peer.and_then(|p| p.opts.get(&opt)).map_or(0, |&v| v as u8);
    let ports = u32::from(c.remote_port) << 16 | u32::from(c.local_port);
    let loopback = match v4 {
        Some((src, _)) => src[0] == 127,
        None => c.remote_ip6 == std::net::Ipv6Addr::LOCALHOST.octets(),
    };
    let ttl = if loopback { 64 } else { 57 };
    let ip = match v4 {
        Some((src, dst)) => {
            let mut h = vec![0x45, tos];
            h.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
            h.extend_from_slice(&((ports.wrapping_mul(0x9e37_79b1) >> 16) as u16).to_be_bytes());
            h.extend_from_slice(&[0x40, 0, ttl, 6, 0, 0]);
            h.extend_from_slice(&src);
            h.extend_from_slice(&dst);
            let sum = ip_checksum(&h);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            h
        }
        None => {
            let flow = ports.wrapping_mul(0x9e37_79b1) >> 12;
            let word = 6 << 28 | u32::from(tos) << 20 | flow;
            let mut h = word.to_be_bytes().to_vec();
            h.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            h.extend_from_slice(&[6, ttl]);
            h.extend_from_slice(&c.remote_ip6);
            h.extend_from_slice(&c.local_ip6);
            h
        }
    };
    let mac = if mac {
        let (dst, src) = if loopback {
            ([0; 6], [0; 6])
        } else {
            ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0xfe])
        };
        let ethertype: u16 = if v4.is_some() { 0x0800 } else { 0x86dd };
        [&dst[..], &src, &ethertype.to_be_bytes()].concat()
    } else {
        Vec::new()
    };
    Syn { mac, ip, tcp }
}

/// What one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventResult {
    /// Index of the event in the scenario.
    pub index: usize,
    pub sock: u32,
    /// The op run, if the event is a call the kernel makes.
    pub op: Option<u32>,
    pub outcome: Option<HookOutcome>,
    /// What the programs emitted (helper calls with their arguments when tracing).
    pub records: Vec<Record>,
}

/// Plays events on a machine.
pub struct Runner {
    socks: BTreeMap<u32, SimSock>,
    /// The programs of the cgroup, in run order.
    pub programs: Vec<String>,
}

/// Why a scenario stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScenarioError {
    /// The event itself is wrong (unknown socket, bad hex).
    Event { index: usize, message: String },
    /// A program faulted.
    Fault { index: usize, fault: Box<Fault> },
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScenarioError::Event { index, message } => write!(f, "event {index}: {message}"),
            ScenarioError::Fault { index, fault } => write!(f, "event {index}: {fault}"),
        }
    }
}

fn addr(ip: IpAddr) -> ([u8; 4], [u8; 16]) {
    match ip {
        IpAddr::V4(a) => (a.octets(), [0; 16]),
        IpAddr::V6(a) => ([0; 4], a.octets()),
    }
}

/// The cookie of scenario socket `id` (virtual and deterministic).
pub fn cookie_of(id: u32) -> u64 {
    0x1000 + u64::from(id)
}

impl Runner {
    pub fn new(programs: Vec<String>) -> Runner {
        Runner {
            socks: BTreeMap::new(),
            programs,
        }
    }

    /// Every socket's state now: (TCP state, options and flags, armed TX timestamp keys).
    pub fn sock_states(&self) -> BTreeMap<u32, (u8, SockState, Vec<u32>)> {
        self.socks
            .iter()
            .map(|(id, s)| {
                (
                    *id,
                    (
                        s.common.state,
                        s.sock.clone(),
                        s.armed.iter().copied().collect(),
                    ),
                )
            })
            .collect()
    }

    /// Plays every event; stops at the first error.
    pub fn run(
        &mut self,
        m: &mut Machine,
        events: &[Event],
    ) -> Result<Vec<EventResult>, ScenarioError> {
        events
            .iter()
            .enumerate()
            .map(|(i, e)| self.event(m, i, e))
            .collect()
    }

    fn sock(&self, index: usize, id: u32) -> Result<&SimSock, ScenarioError> {
        self.socks.get(&id).ok_or(ScenarioError::Event {
            index,
            message: format!("socket {id} is not declared"),
        })
    }

    /// Plays one event.
    pub fn event(
        &mut self,
        m: &mut Machine,
        index: usize,
        e: &Event,
    ) -> Result<EventResult, ScenarioError> {
        let bad = |message: String| ScenarioError::Event { index, message };
        let mut result = EventResult {
            index,
            sock: 0,
            op: None,
            outcome: None,
            records: Vec::new(),
        };
        match e {
            Event::Socket {
                id,
                family,
                local,
                local_port,
                remote,
                remote_port,
                state,
                request,
                parent,
                saved_syn,
                syn,
                peer,
                from,
                save_syn,
            } => {
                let (l4, l6) = addr(*local);
                let (r4, r6) = addr(*remote);
                let common = SockCommon {
                    family: *family,
                    local_ip4: l4,
                    remote_ip4: r4,
                    local_ip6: l6,
                    remote_ip6: r6,
                    local_port: *local_port,
                    remote_port: *remote_port,
                    state: *state,
                };
                let inherited = match parent {
                    Some(p) => Some(self.sock(index, *p)?.sock.clone()),
                    None => None,
                };
                let mut sock = match (&inherited, request) {
                    (Some(s), false) => s.clone(),
                    _ => SockState::default(),
                };
                // inet_csk_clone_lock: a child keeps its request sock's cookie.
                sock.cookie = match from {
                    Some(r) => self.sock(index, *r)?.sock.cookie,
                    None => cookie_of(*id),
                };
                sock.family = *family;
                if *save_syn > 2 {
                    return Err(bad(format!(
                        "save_syn {save_syn}: TCP_SAVE_SYN is 0, 1 or 2"
                    )));
                }
                if *save_syn != 0 {
                    sock.opts
                        .insert((SOL_TCP, TCP_SAVE_SYN), (*save_syn).into());
                }
                // tcp_reqsk_record_syn: what the listener's TCP_SAVE_SYN says when the SYN
                // arrives.
                let save_mode = inherited
                    .as_ref()
                    .and_then(|l| l.opts.get(&(SOL_TCP, TCP_SAVE_SYN)).copied())
                    .unwrap_or(0);
                let sender = match peer {
                    Some(p) => Some(self.sock(index, *p)?),
                    None => None,
                };
                sock.saved_syn = match (saved_syn, syn, from) {
                    (Some(h), _, _) => {
                        Some(received_syn(&common, unhex(h).map_err(bad)?, None, false))
                    }
                    (None, Some(h), None) if parent.is_some() && save_mode > 0 => {
                        let sent = sender.map(|p| p.sent_options.clone()).unwrap_or_default();
                        let tcp = with_options(unhex(h).map_err(bad)?, &sent);
                        Some(received_syn(
                            &common,
                            tcp,
                            sender.map(|p| &p.sock),
                            save_mode == 2,
                        ))
                    }
                    (None, None, Some(r)) => {
                        let req = self.sock(index, *r)?;
                        if !req.request {
                            return Err(bad(format!("socket {r} (`from`) is not a request sock")));
                        }
                        // tcp_move_syn: the request sock gives its saved SYN to the child.
                        let moved = req.sock.saved_syn.clone();
                        if let Some(q) = self.socks.get_mut(r) {
                            q.sock.saved_syn = None;
                        }
                        moved
                    }
                    (None, Some(_), Some(_)) => {
                        return Err(bad(
                            "`syn` and `from` both say where the SYN came from".into()
                        ));
                    }
                    _ => None,
                };
                let mut tcp = TcpFields {
                    snd_cwnd: sock.snd_cwnd,
                    ..TcpFields::default()
                };
                tcp.counters[4] = 1448;
                result.sock = *id;
                self.socks.insert(
                    *id,
                    SimSock {
                        common,
                        request: *request,
                        parent: *parent,
                        sock,
                        tcp,
                        reserved: 0,
                        armed: BTreeSet::new(),
                        sent_options: Vec::new(),
                    },
                );
            }
            Event::Map { name, key, value } => {
                let i = m
                    .map_index(name)
                    .ok_or_else(|| bad(format!("no map named `{name}`")))?;
                let (k, v) = (unhex(key).map_err(bad)?, unhex(value).map_err(bad)?);
                let st = &m.maps[i];
                if k.len() != st.key_size as usize || v.len() != st.value_size as usize {
                    return Err(bad(format!(
                        "map `{name}` takes {}-byte keys and {}-byte values",
                        st.key_size, st.value_size
                    )));
                }
                m.maps[i]
                    .update(&mut m.memory, &k, &v, 0)
                    .map_err(|e| bad(format!("map `{name}`: {e:?}")))?;
            }
            Event::Tcp {
                sock,
                snd_cwnd,
                srtt_us,
                rtt_min,
                mss_cache,
                bytes_acked,
                bytes_received,
                data_segs_out,
                total_retrans,
            } => {
                self.sock(index, *sock)?;
                let s = self.socks.get_mut(sock).expect("checked");
                result.sock = *sock;
                if let Some(v) = snd_cwnd {
                    s.sock.snd_cwnd = *v;
                }
                let t = &mut s.tcp;
                if let Some(v) = srtt_us {
                    t.srtt_us = *v;
                }
                if let Some(v) = rtt_min {
                    t.rtt_min = *v;
                }
                if let Some(v) = mss_cache {
                    t.counters[4] = *v;
                }
                if let Some(v) = bytes_acked {
                    t.bytes_acked = *v;
                }
                if let Some(v) = bytes_received {
                    t.bytes_received = *v;
                }
                if let Some(v) = data_segs_out {
                    t.counters[14] = *v;
                    s.sock.data_segs_out = *v;
                }
                if let Some(v) = total_retrans {
                    t.counters[10] = *v;
                }
            }
            Event::State { sock, new, dt_ns } => {
                let old = self.sock(index, *sock)?.common.state;
                result.sock = *sock;
                let call = Event::Call {
                    sock: *sock,
                    op: op::STATE_CB,
                    args: [old.into(), (*new).into(), 0, 0],
                    skb: None,
                    syn: None,
                    unknown_option: false,
                    remaining: None,
                    peer: None,
                    dt_ns: *dt_ns,
                };
                result = self.event(m, index, &call)?;
                if let Some(s) = self.socks.get_mut(sock) {
                    s.common.state = *new;
                }
            }
            Event::Call {
                sock,
                op: o,
                args,
                skb,
                syn,
                unknown_option,
                remaining,
                peer,
                dt_ns,
            } => {
                m.now_ns = m.now_ns.wrapping_add(*dt_ns);
                result.sock = *sock;
                let s = self.sock(index, *sock)?.clone();
                // A request sock is gated by its listener's flags.
                let gate_flags = match (s.request, s.parent) {
                    (true, Some(p)) => self.sock(index, p)?.sock.cb_flags,
                    _ => s.sock.cb_flags,
                };
                let skb_seq = skb.as_ref().map_or(0, |k| k.seq);
                let skb_len = skb.as_ref().map_or(0, |k| k.len);
                let tskey = skb
                    .as_ref()
                    .and_then(|k| k.tskey)
                    .unwrap_or_else(|| skb_seq.wrapping_add(skb_len).wrapping_sub(1));
                let fires = match *o {
                    op::RTO_CB => gate_flags & 0x01 != 0,
                    op::RETRANS_CB => gate_flags & 0x02 != 0,
                    op::STATE_CB => gate_flags & 0x04 != 0,
                    op::RTT_CB => gate_flags & 0x08 != 0,
                    op::PARSE_HDR_OPT_CB => {
                        gate_flags & 0x10 != 0 || (gate_flags & 0x20 != 0 && *unknown_option)
                    }
                    op::HDR_OPT_LEN_CB => gate_flags & 0x40 != 0,
                    op::WRITE_HDR_OPT_CB => gate_flags & 0x40 != 0 && s.reserved > 0,
                    op::TSTAMP_SENDMSG_CB => s.sock.sk_bpf_cb_flags & 1 != 0,
                    op::TSTAMP_SCHED_CB
                    | op::TSTAMP_SND_SW_CB
                    | op::TSTAMP_SND_HW_CB
                    | op::TSTAMP_ACK_CB => s.armed.contains(&tskey),
                    0 | 21.. => return Err(bad(format!("op {o} is never called"))),
                    _ => true,
                };
                // A segment being built (not tcp_current_mss's sizing, which has no skb)
                // carries only the options the programs write into it, if any.
                if *o == op::HDR_OPT_LEN_CB
                    && skb.is_some()
                    && let Some(sm) = self.socks.get_mut(sock)
                {
                    sm.sent_options.clear();
                }
                if !fires {
                    return Ok(result);
                }
                let sender = match peer {
                    Some(p) => Some(self.sock(index, *p)?),
                    None => None,
                };
                let sent = sender.map(|p| p.sent_options.clone()).unwrap_or_default();
                // The skb of the header option ops is outgoing; only `syn` came from the peer.
                let outgoing = matches!(*o, op::HDR_OPT_LEN_CB | op::WRITE_HDR_OPT_CB);
                let window = match skb {
                    Some(k) if outgoing => Some(unhex(&k.header).map_err(bad)?),
                    Some(k) => Some(with_options(unhex(&k.header).map_err(bad)?, &sent)),
                    None => None,
                };
                let added = match (skb, &window) {
                    (Some(k), Some(w)) => (w.len() - k.header.len() / 2) as u32,
                    _ => 0,
                };
                let call = HookCall {
                    op: *o,
                    args: *args,
                    socket: if s.request {
                        Socket::Request {
                            common: s.common.clone(),
                        }
                    } else {
                        let mut tcp = s.tcp.clone();
                        tcp.snd_cwnd = s.sock.snd_cwnd;
                        tcp.cb_flags = s.sock.cb_flags;
                        Socket::Full {
                            common: s.common.clone(),
                            tcp,
                            extra: SockExtra {
                                sk_type: 1,
                                protocol: 6,
                                rx_queue_mapping: -1,
                                ..SockExtra::default()
                            },
                        }
                    },
                    locked: *o < op::TSTAMP_SCHED_CB,
                    skb: match (skb, &window) {
                        (Some(k), Some(w)) => Some(Skb {
                            window: w.clone(),
                            len: k.len + added,
                            tcp_flags: k.tcp_flags,
                            hwtstamp: k.hwtstamp,
                        }),
                        _ => None,
                    },
                };
                let mut state = HookState::for_call(&call);
                state.sock = s.sock.clone();
                state.syn = syn
                    .as_deref()
                    .map(unhex)
                    .transpose()
                    .map_err(bad)?
                    .map(|h| {
                        received_syn(
                            &s.common,
                            with_options(h, &sent),
                            sender.map(|p| &p.sock),
                            true,
                        )
                    });
                // tcp_conn_request runs RWND_INIT (tcp_openreq_init_rwin) before it records
                // the SYN.
                if s.request && *o == op::RWND_INIT {
                    state.sock.saved_syn = None;
                }
                state.skb_seq = skb_seq;
                state.skb_len = skb_len;
                state.remaining_opt_len = match *o {
                    op::WRITE_HDR_OPT_CB => s.reserved,
                    _ => remaining.unwrap_or(40),
                };
                if (op::TSTAMP_SCHED_CB..=op::TSTAMP_ACK_CB).contains(o) {
                    state.tskey = tskey;
                    state.tx_armed = true;
                }
                let programs: Vec<&str> = self.programs.iter().map(String::as_str).collect();
                let first_record = m.records.len();
                let (outcome, state) =
                    m.run_hook_with(&programs, &call, state)
                        .map_err(|f| ScenarioError::Fault {
                            index,
                            fault: Box::new(f),
                        })?;
                result.records = m.records.split_off(first_record);
                let sm = self.socks.get_mut(sock).expect("checked");
                if !sm.request {
                    sm.sock = state.sock.clone();
                    if call.is_locked() {
                        sm.tcp.sk_txhash = outcome.sk_txhash;
                    }
                }
                match *o {
                    op::HDR_OPT_LEN_CB => sm.reserved = outcome.hdr_reserved,
                    op::WRITE_HDR_OPT_CB => {
                        sm.reserved = 0;
                        let mut o = outcome.hdr_written.clone();
                        while o.last() == Some(&1) {
                            o.pop();
                        }
                        sm.sent_options = o;
                    }
                    op::TSTAMP_SENDMSG_CB if state.tx_armed => {
                        sm.armed.insert(state.tskey);
                    }
                    op::TSTAMP_ACK_CB => {
                        sm.armed.remove(&tskey);
                    }
                    _ => {}
                }
                result.op = Some(*o);
                result.outcome = Some(outcome);
            }
        }
        Ok(result)
    }
}
