//! The built-in scenarios (docs/SCENARIOS.md): `loopback` follows the call sites of the kernel
//! test workload (tests/kernel_harness) for IPv4 and IPv6, its lossy connection included; `edges` reaches the paths loopback
//! cannot (syncookies, TCP Fast Open, TCP_REPAIR, `tcp_current_mss`, a v4-mapped peer on a
//! dual-stack listener, retransmits and RTO with `expired`, listener close, RST, hardware TX
//! timestamps, TCP-NV's BASE_RTT) and ends with a global-IPv6 connection still open, so per-connection
//! state (loss accounting, TX timestamps in flight) stays in maps for the final comparison;
//! `foreign` has peers that do not run the program, so the header options arriving are
//! hand-made and vary, with real time passing between events. Together they reach every op
//! 1..=20. Retransmit timer runs follow `tcp_retransmit_timer`: RTO_CB, then the retransmit.

use std::net::IpAddr;

use super::scenario::{Event, SkbSpec, hex};
use super::sockops::op;

/// Names of the built-in scenarios.
pub const SCENARIOS: &[&str] = &["loopback", "edges", "foreign"];

/// The events of built-in scenario `name`.
pub fn scenario(name: &str) -> Option<Vec<Event>> {
    match name {
        "loopback" => Some(loopback()),
        "edges" => Some(edges()),
        "foreign" => Some(foreign()),
        _ => None,
    }
}

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH_ACK: u8 = 0x18;
const ACK: u8 = 0x10;
const SYN_ACK: u8 = 0x12;
const FIN_ACK: u8 = 0x11;

const ESTABLISHED: u8 = 1;
const SYN_SENT: u8 = 2;
const SYN_RECV: u8 = 3;
const FIN_WAIT1: u8 = 4;
const FIN_WAIT2: u8 = 5;
const CLOSE: u8 = 7;
const CLOSE_WAIT: u8 = 8;
const LAST_ACK: u8 = 9;
const LISTEN: u8 = 10;

/// A peer's experimental option (kind 254, magic 0xeb9f), as the probe program on a sender the
/// scenario does not simulate (edges' syncookie client) would have written it. Segments from a
/// simulated socket carry what its programs wrote instead (`peer`).
const PEER_OPT: [u8; 4] = [254, 4, 0xeb, 0x9f];
const SYN_OPTS: [u8; 20] = [
    2, 4, 0xff, 0xd7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
];
const TS_OPTS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 1];

/// A TCP header with `opts` (padded to 4 bytes), as hex.
fn tcp(sport: u16, dport: u16, seq: u32, flags: u8, opts: &[&[u8]]) -> String {
    let mut o: Vec<u8> = opts.concat();
    while !o.len().is_multiple_of(4) {
        o.push(1);
    }
    let mut h = Vec::with_capacity(20 + o.len());
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&seq.to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes());
    h.push((((20 + o.len()) / 4) as u8) << 4);
    h.push(flags);
    h.extend_from_slice(&65535u16.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    h.extend_from_slice(&o);
    hex(&h)
}

fn skb(header: String, len: u32, tcp_flags: u8, seq: u32) -> Option<SkbSpec> {
    let hl = header.len() as u32 / 2;
    Some(SkbSpec {
        header,
        len: len + hl,
        tcp_flags,
        seq,
        hwtstamp: 0,
        tskey: None,
    })
}

/// An skb whose header is not built yet (HDR_OPT_LEN) or not visible (TSTAMP ops).
fn bare(len: u32, tcp_flags: u8, seq: u32) -> Option<SkbSpec> {
    Some(SkbSpec {
        header: String::new(),
        len,
        tcp_flags,
        seq,
        hwtstamp: 0,
        tskey: None,
    })
}

struct B {
    ev: Vec<Event>,
    next: u32,
}

struct Flow {
    family: u16,
    local: IpAddr,
    remote: IpAddr,
}

impl Flow {
    /// The same flow seen from the other end.
    fn reversed(&self) -> Flow {
        Flow {
            family: self.family,
            local: self.remote,
            remote: self.local,
        }
    }
}

impl B {
    fn new() -> B {
        B {
            ev: Vec::new(),
            next: 1,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn socket(
        &mut self,
        f: &Flow,
        lport: u16,
        rport: u16,
        state: u8,
        request: bool,
        parent: Option<u32>,
    ) -> u32 {
        let id = self.next;
        self.next += 1;
        self.ev.push(Event::Socket {
            id,
            family: f.family,
            local: f.local,
            local_port: lport,
            remote: f.remote,
            remote_port: rport,
            state,
            request,
            parent,
            saved_syn: None,
            syn: None,
            peer: None,
            from: None,
            save_syn: 0,
        });
        id
    }

    /// A request sock (or TCP Fast Open child, `request` false) made from SYN `syn` that
    /// `peer` sent to listener `l`.
    #[allow(clippy::too_many_arguments)]
    fn socket_from_syn(
        &mut self,
        f: &Flow,
        lport: u16,
        rport: u16,
        state: u8,
        request: bool,
        l: u32,
        syn: String,
        peer: Option<u32>,
    ) -> u32 {
        let id = self.socket(f, lport, rport, state, request, Some(l));
        if let Some(Event::Socket {
            syn: s, peer: p, ..
        }) = self.ev.last_mut()
        {
            *s = Some(syn);
            *p = peer;
        }
        id
    }

    /// The child of listener `l` that request sock `req` became.
    fn child(&mut self, f: &Flow, lport: u16, rport: u16, l: u32, req: u32) -> u32 {
        let id = self.socket(f, lport, rport, SYN_RECV, false, Some(l));
        if let Some(Event::Socket { from, .. }) = self.ev.last_mut() {
            *from = Some(req);
        }
        id
    }

    fn call(&mut self, sock: u32, o: u32, args: [u32; 4], skb: Option<SkbSpec>) {
        self.ev.push(Event::Call {
            sock,
            op: o,
            args,
            skb,
            syn: None,
            unknown_option: false,
            remaining: None,
            peer: None,
            dt_ns: 10_000,
        });
    }

    /// A call after `dt_ns` of virtual time: state that records times (loss episodes, TX
    /// timestamp stages) then differs from the previous call's.
    fn call_after(&mut self, sock: u32, o: u32, args: [u32; 4], skb: Option<SkbSpec>, dt_ns: u64) {
        self.call(sock, o, args, skb);
        if let Some(Event::Call { dt_ns: d, .. }) = self.ev.last_mut() {
            *d = dt_ns;
        }
    }

    /// A call on a segment `peer` sent: `peer`'s written options travel with it.
    fn recv(&mut self, sock: u32, o: u32, skb: Option<SkbSpec>, peer: u32) {
        self.ev.push(Event::Call {
            sock,
            op: o,
            args: [0; 4],
            skb,
            syn: None,
            unknown_option: false,
            remaining: None,
            peer: Some(peer),
            dt_ns: 10_000,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn call_syn(
        &mut self,
        sock: u32,
        o: u32,
        args: [u32; 4],
        skb: Option<SkbSpec>,
        syn: String,
        peer: Option<u32>,
    ) {
        self.ev.push(Event::Call {
            sock,
            op: o,
            args,
            skb,
            syn: Some(syn),
            unknown_option: false,
            remaining: Some(20),
            peer,
            dt_ns: 10_000,
        });
    }

    fn state(&mut self, sock: u32, new: u8) {
        self.ev.push(Event::State {
            sock,
            new,
            dt_ns: 1_000,
        });
    }

    /// HDR_OPT_LEN then WRITE_HDR_OPT for one outgoing segment.
    fn hdr(&mut self, sock: u32, header: String, payload: u32, flags: u8, seq: u32) {
        self.call(sock, op::HDR_OPT_LEN_CB, [0; 4], bare(payload, flags, seq));
        self.call(
            sock,
            op::WRITE_HDR_OPT_CB,
            [0; 4],
            skb(header, payload, flags, seq),
        );
    }

    fn rtt(&mut self, sock: u32, mrtt: u32, srtt: u32) {
        self.ev.push(Event::Tcp {
            sock,
            snd_cwnd: None,
            srtt_us: Some(srtt),
            rtt_min: Some(mrtt),
            mss_cache: None,
            bytes_acked: None,
            bytes_received: None,
            data_segs_out: None,
            total_retrans: None,
        });
        self.call(sock, op::RTT_CB, [mrtt, srtt, 0, 0], None);
    }

    fn acked(&mut self, sock: u32, bytes: u64, segs: u32) {
        self.ev.push(Event::Tcp {
            sock,
            snd_cwnd: Some(10 + segs),
            srtt_us: None,
            rtt_min: None,
            mss_cache: None,
            bytes_acked: Some(bytes),
            bytes_received: Some(bytes / 2),
            data_segs_out: Some(segs),
            total_retrans: None,
        });
    }

    /// Active open from `cport` to listener `l` on `sport`: client, request sock and child,
    /// with the §8.3 order.
    fn open(&mut self, f: &Flow, l: u32, cport: u16, sport: u16) -> (u32, u32) {
        let back = f.reversed();
        let c = self.socket(f, cport, sport, SYN_SENT, false, None);
        self.call(c, op::TCP_CONNECT_CB, [0; 4], None);
        self.call(c, op::RWND_INIT, [0; 4], None);
        self.call(c, op::TIMEOUT_INIT, [0; 4], None);
        self.call(c, op::NEEDS_ECN, [0; 4], None);
        let syn = tcp(cport, sport, 1000, SYN, &[&SYN_OPTS]);
        self.hdr(c, syn, 0, SYN, 1000);
        let synp = tcp(cport, sport, 1000, SYN, &[&SYN_OPTS]);
        let r = self.socket_from_syn(&back, sport, cport, 12, true, l, synp.clone(), Some(c));
        self.call(r, op::RWND_INIT, [0; 4], None);
        self.call(r, op::TIMEOUT_INIT, [0; 4], None);
        self.call_syn(
            r,
            op::HDR_OPT_LEN_CB,
            [0; 4],
            bare(0, SYN_ACK, 5000),
            synp.clone(),
            Some(c),
        );
        let sa = tcp(sport, cport, 5000, SYN_ACK, &[&SYN_OPTS]);
        self.call_syn(
            r,
            op::WRITE_HDR_OPT_CB,
            [0; 4],
            skb(sa, 0, SYN_ACK, 5000),
            synp,
            Some(c),
        );
        self.call(r, op::NEEDS_ECN, [0; 4], None);
        self.rtt(c, 95, 760);
        self.state(c, ESTABLISHED);
        let sap = tcp(sport, cport, 5000, SYN_ACK, &[&SYN_OPTS]);
        self.recv(c, op::ACTIVE_ESTABLISHED_CB, skb(sap, 0, SYN_ACK, 5000), r);
        self.hdr(c, tcp(cport, sport, 1001, ACK, &[&TS_OPTS]), 0, ACK, 1001);
        let s = self.child(&back, sport, cport, l, r);
        self.rtt(s, 80, 640);
        let ackp = tcp(cport, sport, 1001, ACK, &[&TS_OPTS]);
        self.recv(s, op::PASSIVE_ESTABLISHED_CB, skb(ackp, 0, ACK, 1001), c);
        self.state(s, ESTABLISHED);
        self.call(c, op::HDR_OPT_LEN_CB, [1, 0, 0, 0], None);
        (c, s)
    }

    /// One sendmsg of 1000 bytes from `a` to `b` with its timestamps and ACK.
    fn send(&mut self, a: (u32, u16), b: (u32, u16), seq: u32, n: u32) {
        let (sa, pa) = a;
        let (sb, pb) = b;
        self.call(sa, op::TSTAMP_SENDMSG_CB, [0; 4], bare(1000, ACK, seq));
        let h = tcp(pa, pb, seq, PSH_ACK, &[&TS_OPTS]);
        self.hdr(sa, h, 1000, PSH_ACK, seq);
        let key = seq + 999;
        let stamp = |len: u32| {
            Some(SkbSpec {
                header: String::new(),
                len,
                tcp_flags: 0,
                seq,
                hwtstamp: 0,
                tskey: Some(key),
            })
        };
        self.call(sa, op::TSTAMP_SCHED_CB, [0; 4], stamp(1066));
        self.call(sa, op::TSTAMP_SND_SW_CB, [0; 4], stamp(1066));
        let hp = tcp(pa, pb, seq, PSH_ACK, &[&TS_OPTS]);
        self.recv(sb, op::PARSE_HDR_OPT_CB, skb(hp, 1000, PSH_ACK, seq), sa);
        self.hdr(sb, tcp(pb, pa, 5001, ACK, &[&TS_OPTS]), 0, ACK, 5001);
        let ack = tcp(pb, pa, 5001, ACK, &[&TS_OPTS]);
        self.recv(sa, op::PARSE_HDR_OPT_CB, skb(ack, 0, ACK, 5001), sb);
        let mut acked = stamp(1000);
        if let Some(k) = acked.as_mut() {
            k.tcp_flags = PSH_ACK;
        }
        self.call(sa, op::TSTAMP_ACK_CB, [0; 4], acked);
        self.acked(sa, u64::from(n) * 1000, n);
        self.rtt(sa, 60 + n, 600 - 8 * n);
    }

    /// Orderly close, client first (§8.3 step 8).
    fn close(&mut self, c: u32, s: u32, cport: u16, sport: u16) {
        self.hdr(
            c,
            tcp(cport, sport, 3001, FIN_ACK, &[&TS_OPTS]),
            0,
            FIN_ACK,
            3001,
        );
        self.state(c, FIN_WAIT1);
        self.state(s, CLOSE_WAIT);
        self.state(c, FIN_WAIT2);
        self.state(c, CLOSE);
        self.hdr(
            s,
            tcp(sport, cport, 5001, FIN_ACK, &[&TS_OPTS]),
            0,
            FIN_ACK,
            5001,
        );
        self.state(s, LAST_ACK);
        self.state(s, CLOSE);
    }
}

fn loopback_family(b: &mut B, f: &Flow, ports: [u16; 3], cbase: u16) {
    let [sport, lossy, refused] = ports;
    let back = f.reversed();
    let l = b.socket(&back, sport, 0, LISTEN, false, None);
    b.call(l, op::TCP_LISTEN_CB, [0; 4], None);
    let (c, s) = b.open(f, l, cbase, sport);
    b.send((c, cbase), (s, sport), 1001, 1);
    b.send((c, cbase), (s, sport), 2001, 2);
    b.send((s, sport), (c, cbase), 5001, 1);
    b.close(c, s, cbase, sport);
    // Reset by the client (SO_LINGER 0): the RST is built on a closed socket.
    let (c, s) = b.open(f, l, cbase + 1, sport);
    b.state(c, CLOSE);
    b.hdr(c, tcp(cbase + 1, sport, 1001, RST, &[]), 0, RST | ACK, 1001);
    b.state(s, CLOSE);
    // Connect to a port without listener: refused by RST.
    let r = b.socket(f, cbase + 2, refused, SYN_SENT, false, None);
    b.call(r, op::TCP_CONNECT_CB, [0; 4], None);
    b.call(r, op::RWND_INIT, [0; 4], None);
    b.call(r, op::TIMEOUT_INIT, [0; 4], None);
    b.call(r, op::NEEDS_ECN, [0; 4], None);
    b.hdr(
        r,
        tcp(cbase + 2, refused, 1000, SYN, &[&SYN_OPTS]),
        0,
        SYN,
        1000,
    );
    b.state(r, CLOSE);
    b.state(l, CLOSE);
    // A listener whose inbound data is dropped twice: the tail-loss probe is a retransmit, then
    // the RTO fires and the segment is retransmitted again before it gets through.
    let ll = b.socket(&back, lossy, 0, LISTEN, false, None);
    b.call(ll, op::TCP_LISTEN_CB, [0; 4], None);
    let cp = cbase + 3;
    let (c, s) = b.open(f, ll, cp, lossy);
    b.call(c, op::TSTAMP_SENDMSG_CB, [0; 4], bare(1000, ACK, 1001));
    b.hdr(
        c,
        tcp(cp, lossy, 1001, PSH_ACK, &[&TS_OPTS]),
        1000,
        PSH_ACK,
        1001,
    );
    b.hdr(
        c,
        tcp(cp, lossy, 1001, PSH_ACK, &[&TS_OPTS]),
        1000,
        PSH_ACK,
        1001,
    );
    b.call(c, op::RETRANS_CB, [1001, 1, 0, 0], None);
    b.call(c, op::RTO_CB, [0, 50, 0, 0], None);
    b.hdr(
        c,
        tcp(cp, lossy, 1001, PSH_ACK, &[&TS_OPTS]),
        1000,
        PSH_ACK,
        1001,
    );
    b.call(c, op::RETRANS_CB, [1001, 1, 0, 0], None);
    let hp = tcp(cp, lossy, 1001, PSH_ACK, &[&TS_OPTS]);
    b.recv(s, op::PARSE_HDR_OPT_CB, skb(hp, 1000, PSH_ACK, 1001), c);
    b.hdr(s, tcp(lossy, cp, 5001, ACK, &[&TS_OPTS]), 0, ACK, 5001);
    b.close(c, s, cp, lossy);
    b.state(ll, CLOSE);
}

fn loopback() -> Vec<Event> {
    let mut b = B::new();
    let v4 = Flow {
        family: 2,
        local: "127.0.0.1".parse().expect("ip"),
        remote: "127.0.0.1".parse().expect("ip"),
    };
    let v6 = Flow {
        family: 10,
        local: "::1".parse().expect("ip"),
        remote: "::1".parse().expect("ip"),
    };
    loopback_family(&mut b, &v4, [7101, 7102, 7109], 41001);
    loopback_family(&mut b, &v6, [7201, 7202, 7209], 42001);
    b.ev
}

fn edges() -> Vec<Event> {
    let mut b = B::new();
    // A dual-stack listener and a v4-mapped peer.
    let mapped = Flow {
        family: 10,
        local: "::ffff:10.0.0.2".parse().expect("ip"),
        remote: "::ffff:10.0.0.1".parse().expect("ip"),
    };
    let back = mapped.reversed();
    let l = b.socket(&back, 8080, 0, LISTEN, false, None);
    b.call(l, op::TCP_LISTEN_CB, [0; 4], None);
    let (c, s) = b.open(&mapped, l, 50000, 8080);
    b.send((c, 50000), (s, 8080), 1001, 1);
    // Hardware TX timestamp on a second send.
    b.call(c, op::TSTAMP_SENDMSG_CB, [0; 4], bare(1000, ACK, 2001));
    b.hdr(
        c,
        tcp(50000, 8080, 2001, PSH_ACK, &[&TS_OPTS]),
        1000,
        PSH_ACK,
        2001,
    );
    let hw = Some(SkbSpec {
        header: String::new(),
        len: 1066,
        tcp_flags: 0,
        seq: 2001,
        hwtstamp: 1_700_000_000_123,
        tskey: Some(3000),
    });
    b.call(c, op::TSTAMP_SCHED_CB, [0; 4], hw.clone());
    b.call(c, op::TSTAMP_SND_HW_CB, [0; 4], hw);
    // Loss: a tail-loss probe, then retransmit timer runs. Each run calls RTO_CB
    // (tcp_write_timeout, with icsk_retransmits and icsk_rto as before the run) and then
    // retransmits (__tcp_retransmit_skb: RETRANS_CB after tcp_transmit_skb built the segment;
    // one fails with -EHOSTUNREACH, the route gone). The last run, well after the last
    // retransmit, finds the connection timed out (`expired`): no retransmit, tcp_write_err
    // closes it.
    let rtx = |b: &mut B, dt: u64, err: i32| {
        let h = tcp(50000, 8080, 2001, PSH_ACK, &[&TS_OPTS]);
        b.call_after(c, op::HDR_OPT_LEN_CB, [0; 4], bare(1000, PSH_ACK, 2001), dt);
        b.call(c, op::WRITE_HDR_OPT_CB, [0; 4], skb(h, 1000, PSH_ACK, 2001));
        b.call(c, op::RETRANS_CB, [2001, 1, err as u32, 0], None);
    };
    rtx(&mut b, 500_000, 0);
    b.call_after(c, op::RTO_CB, [0, 50, 0, 0], None, 200_000_000);
    rtx(&mut b, 10_000, -113);
    b.call_after(c, op::RTO_CB, [1, 100, 0, 0], None, 400_000_000);
    rtx(&mut b, 10_000, 0);
    b.call_after(c, op::RTO_CB, [2, 200, 1, 0], None, 800_000_000);
    // An unknown option on the fast path's slow cousin, and TCP-NV asking BASE_RTT.
    b.ev.push(Event::Call {
        sock: s,
        op: op::PARSE_HDR_OPT_CB,
        args: [0; 4],
        skb: skb(
            tcp(
                50000,
                8080,
                2001,
                ACK,
                &[&TS_OPTS, &[253, 6, 0xca, 0xfe, 1, 2]],
            ),
            0,
            ACK,
            2001,
        ),
        syn: None,
        unknown_option: true,
        remaining: None,
        peer: Some(c),
        dt_ns: 5_000,
    });
    b.call(s, op::BASE_RTT, [0; 4], None);
    // tcp_write_err closed the client; the server gets a RST later: ESTABLISHED to CLOSE.
    b.state(c, CLOSE);
    b.state(s, CLOSE);

    let v4 = Flow {
        family: 2,
        local: "10.1.0.1".parse().expect("ip"),
        remote: "10.1.0.2".parse().expect("ip"),
    };
    let back4 = v4.reversed();
    let l4 = b.socket(&back4, 443, 0, LISTEN, false, None);
    b.call(l4, op::TCP_LISTEN_CB, [0; 4], None);
    // Syncookies: no TIMEOUT_INIT for the request sock; the SYN-ACK's HDR_OPT_LEN says so.
    let synp = tcp(40000, 443, 77, SYN, &[&SYN_OPTS, &PEER_OPT]);
    let r = b.socket(&back4, 443, 40000, 12, true, Some(l4));
    b.call(r, op::RWND_INIT, [0; 4], None);
    b.call_syn(
        r,
        op::HDR_OPT_LEN_CB,
        [2, 0, 0, 0],
        bare(0, SYN_ACK, 9000),
        synp.clone(),
        None,
    );
    let sa = tcp(443, 40000, 9000, SYN_ACK, &[&SYN_OPTS]);
    b.call_syn(
        r,
        op::WRITE_HDR_OPT_CB,
        [2, 0, 0, 0],
        skb(sa, 0, SYN_ACK, 9000),
        synp.clone(),
        None,
    );
    b.call(r, op::NEEDS_ECN, [0; 4], None);
    let child = b.socket(&back4, 443, 40000, SYN_RECV, false, Some(l4));
    let ackp = tcp(40000, 443, 78, ACK, &[&TS_OPTS, &PEER_OPT]);
    b.call(
        child,
        op::PASSIVE_ESTABLISHED_CB,
        [0; 4],
        skb(ackp, 0, ACK, 78),
    );
    b.state(child, ESTABLISHED);
    // TCP Fast Open: the child exists at the SYN; PASSIVE_ESTABLISHED carries the SYN with data.
    let tsyn = tcp(
        40001,
        443,
        500,
        SYN,
        &[&SYN_OPTS, &[34, 10, 1, 2, 3, 4, 5, 6, 7, 8]],
    );
    let tfo = b.socket_from_syn(&back4, 443, 40001, SYN_RECV, false, l4, tsyn.clone(), None);
    b.call(tfo, op::TIMEOUT_INIT, [0; 4], None);
    b.call(
        tfo,
        op::PASSIVE_ESTABLISHED_CB,
        [0; 4],
        skb(tsyn.clone(), 100, SYN, 500),
    );
    let tsa = tcp(443, 40001, 9100, SYN_ACK, &[&SYN_OPTS]);
    b.call_syn(
        tfo,
        op::HDR_OPT_LEN_CB,
        [0; 4],
        bare(0, SYN_ACK, 9100),
        tsyn.clone(),
        None,
    );
    b.call_syn(
        tfo,
        op::WRITE_HDR_OPT_CB,
        [0; 4],
        skb(tsa, 0, SYN_ACK, 9100),
        tsyn,
        None,
    );
    b.state(tfo, ESTABLISHED);
    // tcp_current_mss: HDR_OPT_LEN without an skb.
    b.call(tfo, op::HDR_OPT_LEN_CB, [1, 0, 0, 0], None);
    // TCP_REPAIR: ACTIVE_ESTABLISHED without an skb.
    let rep = b.socket(&v4, 40002, 443, SYN_SENT, false, None);
    b.call(rep, op::TCP_CONNECT_CB, [0; 4], None);
    b.state(rep, ESTABLISHED);
    b.call(rep, op::ACTIVE_ESTABLISHED_CB, [0; 4], None);
    b.rtt(rep, 120, 960);
    b.state(rep, CLOSE);
    b.state(child, CLOSE);
    b.state(tfo, CLOSE);
    // Listener close.
    b.state(l4, CLOSE);
    b.state(l, CLOSE);

    // A global IPv6 path (every address word non-zero) still open when the trace ends, so what
    // the programs keep per connection is left in the maps for user space: a second send whose
    // TX timestamps stop at SND_HW (no ACK yet), and a loss episode on the server spread over
    // milliseconds, with a backoff that goes up and then down.
    let g6 = Flow {
        family: 10,
        local: "2001:db8:1:2::10".parse().expect("ip"),
        remote: "2001:db8:3:4::20".parse().expect("ip"),
    };
    let back6 = g6.reversed();
    let l6 = b.socket(&back6, 9443, 0, LISTEN, false, None);
    b.call(l6, op::TCP_LISTEN_CB, [0; 4], None);
    let (c6, s6) = b.open(&g6, l6, 51000, 9443);
    b.send((c6, 51000), (s6, 9443), 1001, 1);
    b.call(c6, op::TSTAMP_SENDMSG_CB, [0; 4], bare(1000, ACK, 2001));
    b.hdr(
        c6,
        tcp(51000, 9443, 2001, PSH_ACK, &[&TS_OPTS]),
        1000,
        PSH_ACK,
        2001,
    );
    let stamp = |hwtstamp: u64| {
        Some(SkbSpec {
            header: String::new(),
            len: 1066,
            tcp_flags: 0,
            seq: 2001,
            hwtstamp,
            tskey: Some(3000),
        })
    };
    b.call(c6, op::TSTAMP_SCHED_CB, [0; 4], stamp(0));
    b.call_after(c6, op::TSTAMP_SND_SW_CB, [0; 4], stamp(0), 500_000);
    b.call_after(
        c6,
        op::TSTAMP_SND_HW_CB,
        [0; 4],
        stamp(1_700_000_000_456),
        1_000_000,
    );
    // The server's data to the client is lost twice: two timer runs (RTO_CB, then the
    // retransmit), the second backed off; the ACK that finally comes resets the count, and a
    // later episode starts from 0 again with a two-segment retransmit.
    let rtx6 = |b: &mut B, segs: u32, dt: u64| {
        let len = 1000 * segs;
        let h = tcp(9443, 51000, 5001, PSH_ACK, &[&TS_OPTS]);
        b.call_after(s6, op::HDR_OPT_LEN_CB, [0; 4], bare(len, PSH_ACK, 5001), dt);
        b.call(s6, op::WRITE_HDR_OPT_CB, [0; 4], skb(h, len, PSH_ACK, 5001));
        b.call(s6, op::RETRANS_CB, [5001, segs, 0, 0], None);
    };
    b.hdr(
        s6,
        tcp(9443, 51000, 5001, PSH_ACK, &[&TS_OPTS]),
        1000,
        PSH_ACK,
        5001,
    );
    b.call_after(s6, op::RTO_CB, [0, 50, 0, 0], None, 200_000_000);
    rtx6(&mut b, 1, 10_000);
    b.call_after(s6, op::RTO_CB, [1, 100, 0, 0], None, 400_000_000);
    rtx6(&mut b, 1, 10_000);
    b.call_after(s6, op::RTO_CB, [0, 50, 0, 0], None, 3_000_000_000);
    rtx6(&mut b, 2, 10_000);
    b.ev
}

/// A hand-made service hint (kind 254, magic 0x5348, class, flags) behind two NOPs, as a stack
/// that does not run our programs lays it out.
fn hint(class: u8, flags: u8) -> [u8; 8] {
    [1, 1, 254, 6, 0x53, 0x48, class, flags]
}

/// Another vendor's experimental option (magic 0x4e56): same kind, not ours.
const OTHER_EXP: [u8; 4] = [254, 4, 0x4e, 0x56];

/// One data segment our socket `s` sends to a foreign host, with its TX timestamps, the foreign
/// ACK (hand-made options, no `peer`) one round trip later, and the RTT sample.
#[allow(clippy::too_many_arguments)]
fn send_foreign(
    b: &mut B,
    s: u32,
    ports: (u16, u16),
    seq: u32,
    n: u32,
    ack_opts: &[&[u8]],
    rtt_us: u32,
) {
    let (lp, rp) = ports;
    b.call(s, op::TSTAMP_SENDMSG_CB, [0; 4], bare(1000, ACK, seq));
    b.hdr(
        s,
        tcp(lp, rp, seq, PSH_ACK, &[&TS_OPTS]),
        1000,
        PSH_ACK,
        seq,
    );
    let stamp = |len: u32, flags: u8| {
        Some(SkbSpec {
            header: String::new(),
            len,
            tcp_flags: flags,
            seq,
            hwtstamp: 0,
            tskey: Some(seq + 999),
        })
    };
    b.call_after(s, op::TSTAMP_SCHED_CB, [0; 4], stamp(1066, 0), 2_000);
    b.call_after(s, op::TSTAMP_SND_SW_CB, [0; 4], stamp(1066, 0), 3_000);
    let ack = tcp(rp, lp, 7001, ACK, ack_opts);
    b.call_after(
        s,
        op::PARSE_HDR_OPT_CB,
        [0; 4],
        skb(ack, 0, ACK, 7001),
        u64::from(rtt_us) * 1000,
    );
    b.call(s, op::TSTAMP_ACK_CB, [0; 4], stamp(1000, PSH_ACK));
    b.acked(s, u64::from(n) * 1000, n);
    b.rtt(s, rtt_us, rtt_us + 2000);
}

/// A data segment from the foreign host to our socket `s` (options hand-made) and our ACK.
fn recv_foreign(b: &mut B, s: u32, ports: (u16, u16), seq: u32, opts: &[&[u8]], dt_ns: u64) {
    let (lp, rp) = ports;
    let h = tcp(rp, lp, seq, PSH_ACK, opts);
    b.call_after(
        s,
        op::PARSE_HDR_OPT_CB,
        [0; 4],
        skb(h, 1000, PSH_ACK, seq),
        dt_ns,
    );
    b.hdr(s, tcp(lp, rp, 5001, ACK, &[&TS_OPTS]), 0, ACK, 5001);
}

/// A foreign client's connection to our listener `l`: its SYN (hand-made options), the request
/// sock answering with our SYN-ACK one moment later, the child once the ACK arrives a round trip
/// after that.
fn accept_foreign(
    b: &mut B,
    f: &Flow,
    l: u32,
    ports: (u16, u16),
    syn_opts: &[&[u8]],
    rtt_us: u32,
    synack_lost: bool,
) -> u32 {
    let (lp, rp) = ports;
    let syn = tcp(rp, lp, 300, SYN, syn_opts);
    let r = b.socket_from_syn(f, lp, rp, 12, true, l, syn.clone(), None);
    b.call(r, op::RWND_INIT, [0; 4], None);
    b.call(r, op::TIMEOUT_INIT, [0; 4], None);
    b.call_syn(
        r,
        op::HDR_OPT_LEN_CB,
        [0; 4],
        bare(0, SYN_ACK, 8000),
        syn.clone(),
        None,
    );
    let sa = tcp(lp, rp, 8000, SYN_ACK, &[&SYN_OPTS]);
    b.call_syn(
        r,
        op::WRITE_HDR_OPT_CB,
        [0; 4],
        skb(sa, 0, SYN_ACK, 8000),
        syn,
        None,
    );
    b.call(r, op::NEEDS_ECN, [0; 4], None);
    if synack_lost {
        // The SYN-ACK is lost: the request sock's timer resends it a TCP_TIMEOUT_INIT later
        // (tcp_rtx_synack), without `syn_skb`: programs reach the SYN through the request
        // sock's saved SYN, if the listener kept one.
        let sa = tcp(lp, rp, 8000, SYN_ACK, &[&SYN_OPTS]);
        b.call_after(
            r,
            op::HDR_OPT_LEN_CB,
            [0; 4],
            bare(0, SYN_ACK, 8000),
            1_000_000_000,
        );
        b.call(r, op::WRITE_HDR_OPT_CB, [0; 4], skb(sa, 0, SYN_ACK, 8000));
    }
    let s = b.child(f, lp, rp, l, r);
    b.rtt(s, rtt_us, rtt_us);
    let ack = tcp(rp, lp, 301, ACK, &[&TS_OPTS]);
    b.call_after(
        s,
        op::PASSIVE_ESTABLISHED_CB,
        [0; 4],
        skb(ack, 0, ACK, 301),
        u64::from(rtt_us) * 1000,
    );
    b.state(s, ESTABLISHED);
    s
}

/// Our active open to a foreign server answering with `synack_opts` a round trip later.
fn connect_foreign(
    b: &mut B,
    f: &Flow,
    ports: (u16, u16),
    synack_opts: &[&[u8]],
    rtt_us: u32,
) -> u32 {
    let (lp, rp) = ports;
    let c = b.socket(f, lp, rp, SYN_SENT, false, None);
    b.call(c, op::TCP_CONNECT_CB, [0; 4], None);
    b.call(c, op::RWND_INIT, [0; 4], None);
    b.call(c, op::TIMEOUT_INIT, [0; 4], None);
    b.call(c, op::NEEDS_ECN, [0; 4], None);
    b.hdr(c, tcp(lp, rp, 1000, SYN, &[&SYN_OPTS]), 0, SYN, 1000);
    b.ev.push(Event::Tcp {
        sock: c,
        snd_cwnd: None,
        srtt_us: Some(rtt_us << 3),
        rtt_min: Some(rtt_us),
        mss_cache: None,
        bytes_acked: None,
        bytes_received: None,
        data_segs_out: None,
        total_retrans: None,
    });
    b.call_after(
        c,
        op::RTT_CB,
        [rtt_us, rtt_us << 3, 0, 0],
        None,
        u64::from(rtt_us) * 1000,
    );
    b.state(c, ESTABLISHED);
    let sa = tcp(rp, lp, 6000, SYN_ACK, synack_opts);
    b.call(
        c,
        op::ACTIVE_ESTABLISHED_CB,
        [0; 4],
        skb(sa, 0, SYN_ACK, 6000),
    );
    b.hdr(c, tcp(lp, rp, 1001, ACK, &[&TS_OPTS]), 0, ACK, 1001);
    c
}

/// Hosts that do not run our programs: every header option arriving is hand-made, as a foreign
/// stack (or another version of the service) sends it, and real time passes between events.
fn foreign() -> Vec<Event> {
    let mut b = B::new();
    let us = Flow {
        family: 2,
        local: "192.0.2.10".parse().expect("ip"),
        remote: "198.51.100.7".parse().expect("ip"),
    };
    let l = b.socket(&us, 8443, 0, LISTEN, false, None);
    b.call(l, op::TCP_LISTEN_CB, [0; 4], None);
    let p1 = (8443, 50100);
    // A client announcing class 3 with a flag bit our version does not set, then re-announcing
    // after a class change (class 4, no flags), next to another vendor's option.
    let s1 = accept_foreign(
        &mut b,
        &us,
        l,
        p1,
        &[&SYN_OPTS, &hint(3, 0x2)],
        21_000,
        false,
    );
    recv_foreign(&mut b, s1, p1, 301, &[&TS_OPTS], 5_000_000);
    send_foreign(&mut b, s1, p1, 8001, 1, &[&TS_OPTS], 21_000);
    recv_foreign(
        &mut b,
        s1,
        p1,
        1301,
        &[&TS_OPTS, &OTHER_EXP, &hint(4, 0)],
        40_000_000,
    );
    // A client that announces itself once, in its SYN (class 5, a flag bit our version does
    // not set), and never again; our first SYN-ACK to it is lost.
    let p3 = (8443, 50101);
    let s3 = accept_foreign(
        &mut b,
        &us,
        l,
        p3,
        &[&SYN_OPTS, &hint(5, 0x2)],
        21_000,
        true,
    );
    recv_foreign(&mut b, s3, p3, 301, &[&TS_OPTS], 3_000_000);
    // A client without the option in its SYN that announces itself later (class 7, flag 1),
    // once, from another network.
    let them = Flow {
        family: 2,
        local: us.local,
        remote: "203.0.113.44".parse().expect("ip"),
    };
    let p2 = (8443, 61000);
    let s2 = accept_foreign(
        &mut b,
        &them,
        l,
        p2,
        &[&SYN_OPTS, &OTHER_EXP],
        48_000,
        false,
    );
    recv_foreign(&mut b, s2, p2, 301, &[&TS_OPTS, &hint(7, 1)], 2_000_000);
    send_foreign(&mut b, s2, p2, 8001, 1, &[&TS_OPTS], 48_000);
    // Our server's data to s2 is lost: the tail-loss probe, then the retransmit timer; each
    // timer run calls RTO_CB (tcp_write_timeout) before it retransmits (RETRANS_CB after the
    // segment is built), with icsk_retransmits and icsk_rto as they were before the run.
    b.call(s2, op::TSTAMP_SENDMSG_CB, [0; 4], bare(1000, ACK, 9001));
    b.hdr(
        s2,
        tcp(8443, 61000, 9001, PSH_ACK, &[&TS_OPTS]),
        1000,
        PSH_ACK,
        9001,
    );
    let rtx = |b: &mut B, dt: u64| {
        let h = tcp(8443, 61000, 9001, PSH_ACK, &[&TS_OPTS]);
        b.call_after(
            s2,
            op::HDR_OPT_LEN_CB,
            [0; 4],
            bare(1000, PSH_ACK, 9001),
            dt,
        );
        b.call(
            s2,
            op::WRITE_HDR_OPT_CB,
            [0; 4],
            skb(h, 1000, PSH_ACK, 9001),
        );
        b.call(s2, op::RETRANS_CB, [9001, 1, 0, 0], None);
    };
    rtx(&mut b, 120_000_000);
    b.call_after(s2, op::RTO_CB, [0, 75, 0, 0], None, 300_000_000);
    rtx(&mut b, 10_000);
    b.call_after(s2, op::RTO_CB, [1, 150, 0, 0], None, 600_000_000);
    rtx(&mut b, 10_000);
    // The peer is gone: the next run finds the user timeout passed and gives up, with no
    // retransmit; tcp_write_err closes the socket.
    b.call_after(s2, op::RTO_CB, [2, 300, 1, 0], None, 1_200_000_000);
    b.state(s2, CLOSE);

    // Our client to a foreign server whose SYN-ACK answers our hint (echo flag, class 9) next
    // to a timestamp; later segments re-announce with class 10, then class 10 with the echo
    // flag again.
    let out = Flow {
        family: 10,
        local: "2001:db8:aa::5".parse().expect("ip"),
        remote: "2001:db8:ff::80".parse().expect("ip"),
    };
    let pc = (43210, 443);
    let c = connect_foreign(&mut b, &out, pc, &[&SYN_OPTS, &hint(9, 1)], 35_000);
    send_foreign(&mut b, c, pc, 1001, 1, &[&TS_OPTS, &hint(10, 0)], 35_000);
    recv_foreign(&mut b, c, pc, 6001, &[&TS_OPTS, &hint(10, 1)], 1_000_000);
    // A second connection to the same server, whose SYN-ACK carries no hint: an older
    // version. It stays open with an RTO episode (the first retransmit fails: no route).
    let pc2 = (43211, 443);
    let c2 = connect_foreign(&mut b, &out, pc2, &[&SYN_OPTS], 35_000);
    send_foreign(&mut b, c2, pc2, 1001, 1, &[&TS_OPTS], 36_000);
    b.hdr(
        c2,
        tcp(43211, 443, 2001, PSH_ACK, &[&TS_OPTS]),
        1000,
        PSH_ACK,
        2001,
    );
    b.call_after(c2, op::RTO_CB, [0, 75, 0, 0], None, 300_000_000);
    b.hdr(
        c2,
        tcp(43211, 443, 2001, PSH_ACK, &[&TS_OPTS]),
        1000,
        PSH_ACK,
        2001,
    );
    b.call(c2, op::RETRANS_CB, [2001, 1, (-113i32) as u32, 0], None);
    b.call_after(c2, op::RTO_CB, [1, 150, 0, 0], None, 600_000_000);
    b.hdr(
        c2,
        tcp(43211, 443, 2001, PSH_ACK, &[&TS_OPTS]),
        1000,
        PSH_ACK,
        2001,
    );
    b.call(c2, op::RETRANS_CB, [2001, 1, 0, 0], None);
    // Orderly close of the first one, the server first.
    b.state(c, CLOSE_WAIT);
    b.hdr(
        c,
        tcp(43210, 443, 2001, FIN_ACK, &[&TS_OPTS]),
        0,
        FIN_ACK,
        2001,
    );
    b.state(c, LAST_ACK);
    b.state(c, CLOSE);
    b.state(s1, CLOSE);
    b.state(s3, CLOSE);
    b.state(l, CLOSE);
    b.ev
}
