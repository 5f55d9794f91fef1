//! The legacy sock_ops context as a hook call presents it: `struct bpf_sock_ops` (224 bytes) built
//! from plain data with the kernel's per-field guards (spec §3.2), the `struct bpf_sock` that
//! `ctx->sk` points to, and the packet window.
//!
//! The values a guarded field reads depend only on the call (is the socket full, is it locked), so
//! they are computed once per call into the context bytes: a field the kernel reads as 0 for this
//! call *is* 0 in the bytes. The verifier's field access rules (exact load sizes, writes only to
//! `reply` and `sk_txhash`) are [`context_rule`], applied to every access while the context is
//! live, together with the kernel dropping an `sk_txhash` write on an unlocked socket.

use super::Machine;
use super::memory::{Access, RegionId, RegionKind, pointer, split_pointer};
pub use super::sockhelpers::{HookState, SockState};

/// `BPF_SOCK_OPS_*` op values (6.18).
pub mod op {
    pub const VOID: u32 = 0;
    pub const TIMEOUT_INIT: u32 = 1;
    pub const RWND_INIT: u32 = 2;
    pub const TCP_CONNECT_CB: u32 = 3;
    pub const ACTIVE_ESTABLISHED_CB: u32 = 4;
    pub const PASSIVE_ESTABLISHED_CB: u32 = 5;
    pub const NEEDS_ECN: u32 = 6;
    pub const BASE_RTT: u32 = 7;
    pub const RTO_CB: u32 = 8;
    pub const RETRANS_CB: u32 = 9;
    pub const STATE_CB: u32 = 10;
    pub const TCP_LISTEN_CB: u32 = 11;
    pub const RTT_CB: u32 = 12;
    pub const PARSE_HDR_OPT_CB: u32 = 13;
    pub const HDR_OPT_LEN_CB: u32 = 14;
    pub const WRITE_HDR_OPT_CB: u32 = 15;
    pub const TSTAMP_SCHED_CB: u32 = 16;
    pub const TSTAMP_SND_SW_CB: u32 = 17;
    pub const TSTAMP_SND_HW_CB: u32 = 18;
    pub const TSTAMP_ACK_CB: u32 = 19;
    pub const TSTAMP_SENDMSG_CB: u32 = 20;
}

/// Size of `struct bpf_sock_ops`.
pub const CTX_SIZE: usize = 224;
/// Size of `struct bpf_sock`.
pub const BPF_SOCK_SIZE: usize = 80;
/// `TCP_NEW_SYN_RECV`: the state a request socket reports.
pub const TCP_NEW_SYN_RECV: u8 = 12;

/// Offsets of `struct bpf_sock_ops` fields.
pub mod field {
    pub const OP: usize = 0;
    pub const REPLY: usize = 4;
    pub const ARGS: usize = 4;
    pub const FAMILY: usize = 20;
    pub const REMOTE_IP4: usize = 24;
    pub const LOCAL_IP4: usize = 28;
    pub const REMOTE_IP6: usize = 32;
    pub const LOCAL_IP6: usize = 48;
    pub const REMOTE_PORT: usize = 64;
    pub const LOCAL_PORT: usize = 68;
    pub const IS_FULLSOCK: usize = 72;
    pub const SND_CWND: usize = 76;
    pub const SRTT_US: usize = 80;
    pub const CB_FLAGS: usize = 84;
    pub const STATE: usize = 88;
    pub const RTT_MIN: usize = 92;
    pub const SND_SSTHRESH: usize = 96;
    pub const SK_TXHASH: usize = 164;
    pub const BYTES_RECEIVED: usize = 168;
    pub const BYTES_ACKED: usize = 176;
    pub const SK: usize = 184;
    pub const SKB_DATA: usize = 192;
    pub const SKB_DATA_END: usize = 200;
    pub const SKB_LEN: usize = 208;
    pub const SKB_TCP_FLAGS: usize = 212;
    pub const SKB_HWTSTAMP: usize = 216;
}

/// What `sock_common` holds for both full and request sockets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SockCommon {
    pub family: u16,
    /// Addresses as bytes in network order.
    pub local_ip4: [u8; 4],
    pub remote_ip4: [u8; 4],
    pub local_ip6: [u8; 16],
    pub remote_ip6: [u8; 16],
    /// Ports in host order.
    pub local_port: u16,
    pub remote_port: u16,
    pub state: u8,
}

/// The `tcp_sock` fields sock_ops exposes, in host order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcpFields {
    pub snd_cwnd: u32,
    /// Smoothed RTT in µs << 3, as the kernel keeps it.
    pub srtt_us: u32,
    pub cb_flags: u8,
    pub rtt_min: u32,
    /// `snd_ssthresh` through `sacked_out`, in `struct bpf_sock_ops` order (offsets 96..=160):
    /// snd_ssthresh, rcv_nxt, snd_nxt, snd_una, mss_cache, ecn_flags, rate_delivered,
    /// rate_interval_us, packets_out, retrans_out, total_retrans, segs_in, data_segs_in,
    /// segs_out, data_segs_out, lost_out, sacked_out.
    pub counters: [u32; 17],
    pub sk_txhash: u32,
    pub bytes_received: u64,
    pub bytes_acked: u64,
}

/// `struct sock` fields that only `struct bpf_sock` shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SockExtra {
    pub bound_dev_if: u32,
    pub sk_type: u32,
    pub protocol: u32,
    pub mark: u32,
    pub priority: u32,
    pub rx_queue_mapping: i32,
}

/// The socket a hook runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Socket {
    Full {
        common: SockCommon,
        tcp: TcpFields,
        extra: SockExtra,
    },
    /// A request socket (SYN-ACK side ops): `ctx->sk` is NULL, state is `TCP_NEW_SYN_RECV`.
    Request { common: SockCommon },
}

impl Socket {
    pub fn common(&self) -> &SockCommon {
        match self {
            Socket::Full { common, .. } | Socket::Request { common } => common,
        }
    }
}

/// The packet of a call site that has one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Skb {
    /// `[skb_data, skb_data_end)`: the bytes programs may read directly (often empty).
    pub window: Vec<u8>,
    pub len: u32,
    pub tcp_flags: u8,
    pub hwtstamp: u64,
}

/// One call of the sock_ops programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCall {
    pub op: u32,
    /// `args[0..4]`; `args[0]` is also `reply`.
    pub args: [u32; 4],
    pub socket: Socket,
    /// `is_locked_tcp_sock`: the caller holds the socket lock (every full-socket op except the
    /// TX timestamp ops). Ignored for request sockets.
    pub locked: bool,
    pub skb: Option<Skb>,
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

impl HookCall {
    pub fn is_fullsock(&self) -> bool {
        matches!(self.socket, Socket::Full { .. })
    }

    /// `is_locked_tcp_sock`.
    pub fn is_locked(&self) -> bool {
        self.is_fullsock() && self.locked
    }

    /// The 224 context bytes, given where `ctx->sk` and the packet window live (0 for none).
    pub fn context_bytes(&self, sk: u64, skb_data: u64, skb_data_end: u64) -> Vec<u8> {
        let mut b = vec![0u8; CTX_SIZE];
        let c = self.socket.common();
        put32(&mut b, field::OP, self.op);
        for (i, a) in self.args.iter().enumerate() {
            put32(&mut b, field::ARGS + 4 * i, *a);
        }
        put32(&mut b, field::FAMILY, c.family.into());
        b[field::REMOTE_IP4..field::REMOTE_IP4 + 4].copy_from_slice(&c.remote_ip4);
        b[field::LOCAL_IP4..field::LOCAL_IP4 + 4].copy_from_slice(&c.local_ip4);
        b[field::REMOTE_IP6..field::REMOTE_IP6 + 16].copy_from_slice(&c.remote_ip6);
        b[field::LOCAL_IP6..field::LOCAL_IP6 + 16].copy_from_slice(&c.local_ip6);
        // skc_dport is big-endian; the kernel loads it as a u16 and shifts it left by 16 on
        // little-endian machines, so bpf_ntohl(remote_port) is the port.
        put32(
            &mut b,
            field::REMOTE_PORT,
            u32::from(u16::from_le_bytes(c.remote_port.to_be_bytes())) << 16,
        );
        put32(&mut b, field::LOCAL_PORT, c.local_port.into());
        put32(&mut b, field::IS_FULLSOCK, self.is_fullsock().into());
        match &self.socket {
            Socket::Full { tcp, .. } => {
                put32(&mut b, field::STATE, c.state.into());
                // rtt_min has no guard: it is read whenever the socket is a tcp_sock.
                put32(&mut b, field::RTT_MIN, tcp.rtt_min);
                if self.is_locked() {
                    put32(&mut b, field::SND_CWND, tcp.snd_cwnd);
                    put32(&mut b, field::SRTT_US, tcp.srtt_us);
                    put32(&mut b, field::CB_FLAGS, tcp.cb_flags.into());
                    for (i, v) in tcp.counters.iter().enumerate() {
                        put32(&mut b, field::SND_SSTHRESH + 4 * i, *v);
                    }
                    put32(&mut b, field::SK_TXHASH, tcp.sk_txhash);
                    put64(&mut b, field::BYTES_RECEIVED, tcp.bytes_received);
                    put64(&mut b, field::BYTES_ACKED, tcp.bytes_acked);
                }
                put64(&mut b, field::SK, sk);
            }
            Socket::Request { .. } => {
                // The kernel's rtt_min read on a request sock is an out-of-bounds slab read
                // (spec §3.3); 0 stands for "undefined" here.
                put32(&mut b, field::STATE, TCP_NEW_SYN_RECV.into());
            }
        }
        if let Some(skb) = &self.skb {
            put64(&mut b, field::SKB_DATA, skb_data);
            put64(&mut b, field::SKB_DATA_END, skb_data_end);
            put32(&mut b, field::SKB_LEN, skb.len);
            put32(&mut b, field::SKB_TCP_FLAGS, skb.tcp_flags.into());
            put64(&mut b, field::SKB_HWTSTAMP, skb.hwtstamp);
        }
        b
    }

    /// The 80 bytes of `struct bpf_sock` for a full socket.
    pub fn bpf_sock_bytes(&self) -> Option<Vec<u8>> {
        let Socket::Full {
            common: c, extra, ..
        } = &self.socket
        else {
            return None;
        };
        let mut b = vec![0u8; BPF_SOCK_SIZE];
        put32(&mut b, 0, extra.bound_dev_if);
        put32(&mut b, 4, c.family.into());
        put32(&mut b, 8, extra.sk_type);
        put32(&mut b, 12, extra.protocol);
        put32(&mut b, 16, extra.mark);
        put32(&mut b, 20, extra.priority);
        b[24..28].copy_from_slice(&c.local_ip4);
        b[28..44].copy_from_slice(&c.local_ip6);
        put32(&mut b, 44, c.local_port.into());
        // dst_port: __be16 followed by a zero hole.
        b[48..50].copy_from_slice(&c.remote_port.to_be_bytes());
        b[52..56].copy_from_slice(&c.remote_ip4);
        b[56..72].copy_from_slice(&c.remote_ip6);
        put32(&mut b, 72, c.state.into());
        put32(&mut b, 76, extra.rx_queue_mapping as u32);
        Some(b)
    }
}

/// Bit of the rule tag: the socket is locked (`sk_txhash` writes land).
const TAG_LOCKED: u64 = 1;

/// The verifier's `struct bpf_sock_ops` access rules (spec §3.1), and the run-time drop of an
/// `sk_txhash` write on an unlocked socket.
pub fn context_rule(off: u32, size: u32, write: bool, tag: u64) -> Access {
    let off = off as usize;
    if off >= CTX_SIZE || !off.is_multiple_of(size as usize) {
        return Access::Deny("invalid bpf_context access");
    }
    if write {
        return match (off, size) {
            (field::REPLY, 4) => Access::Allow,
            (field::SK_TXHASH, 4) if tag & TAG_LOCKED != 0 => Access::Allow,
            (field::SK_TXHASH, 4) => Access::Skip,
            (field::REPLY | field::SK_TXHASH, _) => Access::Deny("only 4-byte writes"),
            _ => Access::Deny("only reply and sk_txhash are writable"),
        };
    }
    match off {
        field::BYTES_RECEIVED..field::SKB_LEN | field::SKB_HWTSTAMP.. => {
            if size == 8 {
                Access::Allow
            } else {
                Access::Deny("8-byte field read with another size")
            }
        }
        // skb_tcp_flags is the one field that allows narrow loads.
        field::SKB_TCP_FLAGS..field::SKB_HWTSTAMP => Access::Allow,
        _ if size == 4 => Access::Allow,
        _ => Access::Deny("4-byte field read with another size"),
    }
}

/// A context in a machine's memory, with the regions it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockOpsCtx {
    /// The `r1` value.
    pub ctx: u64,
    regions: Vec<RegionId>,
}

impl Machine {
    /// Allocates the context of `call`: the context itself, the `bpf_sock` behind `ctx->sk` and
    /// the packet window, each a region of its own (read-only except the context).
    pub fn sock_ops_context(&mut self, call: &HookCall) -> SockOpsCtx {
        let mut regions = Vec::new();
        let sk = match call.bpf_sock_bytes() {
            Some(bytes) => {
                let r = self.memory.alloc(
                    RegionKind::Kernel {
                        what: "struct bpf_sock",
                    },
                    bytes,
                    false,
                );
                regions.push(r);
                pointer(r, 0)
            }
            None => 0,
        };
        let (data, data_end) = match &call.skb {
            Some(skb) => {
                let len = skb.window.len() as u32;
                let r = self
                    .memory
                    .alloc(RegionKind::Packet, skb.window.clone(), false);
                regions.push(r);
                (pointer(r, 0), pointer(r, len))
            }
            None => (0, 0),
        };
        let r = self.memory.alloc(
            RegionKind::Ctx,
            call.context_bytes(sk, data, data_end),
            true,
        );
        regions.push(r);
        let tag = if call.is_locked() { TAG_LOCKED } else { 0 };
        self.run.ctx_rule = Some((r, context_rule, tag));
        SockOpsCtx {
            ctx: pointer(r, 0),
            regions,
        }
    }

    /// `reply` (`args[0]`) after the programs ran.
    pub fn sock_ops_reply(&self, ctx: &SockOpsCtx) -> u32 {
        self.ctx_u32(ctx, field::REPLY)
    }

    /// `sk_txhash` after the programs ran (what a write left there).
    pub fn sock_ops_txhash(&self, ctx: &SockOpsCtx) -> u32 {
        self.ctx_u32(ctx, field::SK_TXHASH)
    }

    fn ctx_u32(&self, ctx: &SockOpsCtx, off: usize) -> u32 {
        let (id, _) = split_pointer(ctx.ctx);
        self.memory
            .region(id)
            .and_then(|r| r.data.get(off..off + 4))
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Frees the context's regions.
    pub fn release_sock_ops_context(&mut self, ctx: SockOpsCtx) {
        if let Some((r, ..)) = self.run.ctx_rule
            && ctx.regions.contains(&r)
        {
            self.run.ctx_rule = None;
        }
        for r in ctx.regions {
            self.memory.release(r);
        }
    }
}

/// What one hook call produced, as the kernel uses it (spec §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOutcome {
    /// Each program's return value, in run order.
    pub returns: Vec<u64>,
    /// `reply` after the last program (`args[0]` if no program wrote it).
    pub reply: u32,
    /// `sk_txhash` after the last program.
    pub sk_txhash: u32,
    /// `__cgroup_bpf_run_filter_sock_ops`: 0, or -EPERM (-1) if any program returned 0.
    pub run_result: i32,
    /// What `tcp_call_bpf` gives the TCP stack: `reply` if the run result is 0, else -1.
    pub tcp_call_result: i32,
    /// HDR_OPT_LEN: option bytes the stack reserves (rounded up to 4; 0 after a veto).
    pub hdr_reserved: u32,
    /// WRITE_HDR_OPT: the reserved option bytes as sent (stored options, NOP-filled; all NOP
    /// after a veto).
    pub hdr_written: Vec<u8>,
}

impl Machine {
    /// Runs `programs` in order on one shared context for `call`, as the kernel runs a cgroup's
    /// effective array: every program runs whatever the others returned, and each sees the
    /// `reply` (= `args[0]`) and `sk_txhash` the previous one left. The socket is a fresh
    /// simulated one; [`Machine::run_hook_with`] threads socket state through calls.
    pub fn run_hook(
        &mut self,
        programs: &[&str],
        call: &HookCall,
    ) -> Result<HookOutcome, super::Fault> {
        let state = HookState::for_call(call);
        self.run_hook_with(programs, call, state).map(|(o, _)| o)
    }

    /// Same with the kernel-side state of the call (the socket's options and flags, the SYN,
    /// the option space); returns it as the programs' helpers left it.
    pub fn run_hook_with(
        &mut self,
        programs: &[&str],
        call: &HookCall,
        state: HookState,
    ) -> Result<(HookOutcome, HookState), super::Fault> {
        let ctx = self.sock_ops_context(call);
        self.hook = Some(state);
        self.hook_call = Some(call.clone());
        let mut returns = Vec::with_capacity(programs.len());
        let mut fault = None;
        for p in programs {
            match self.run(p, ctx.ctx) {
                Ok(r) => returns.push(r),
                Err(f) => {
                    fault = Some(f);
                    break;
                }
            }
        }
        let reply = self.sock_ops_reply(&ctx);
        let sk_txhash = self.sock_ops_txhash(&ctx);
        self.release_sock_ops_context(ctx);
        self.hook_call = None;
        let mut state = self.hook.take().unwrap_or_default();
        for r in std::mem::take(&mut state.objects) {
            self.memory.release(r);
        }
        if let Some(f) = fault {
            return Err(f);
        }
        // The verifier limits returns to 0 and 1; only 0 vetoes.
        let run_result = if returns.iter().any(|&r| r as u32 == 0) {
            -1
        } else {
            0
        };
        let (mut hdr_reserved, mut hdr_written) = (0, Vec::new());
        if call.op == op::HDR_OPT_LEN_CB && run_result == 0 {
            hdr_reserved = state.reserved.div_ceil(4) * 4;
        }
        if call.op == op::WRITE_HDR_OPT_CB {
            let total = state.written.len() as u32 + state.remaining_opt_len;
            hdr_written = if run_result == 0 {
                state.written.clone()
            } else {
                Vec::new()
            };
            hdr_written.resize(total as usize, 1);
        }
        Ok((
            HookOutcome {
                returns,
                reply,
                sk_txhash,
                run_result,
                tcp_call_result: if run_result == 0 { reply as i32 } else { -1 },
                hdr_reserved,
                hdr_written,
            },
            state,
        ))
    }
}

impl HookState {
    /// The kernel-side state of `call` on a fresh simulated socket.
    pub fn for_call(call: &HookCall) -> HookState {
        let mut sock = SockState {
            family: call.socket.common().family,
            ..SockState::default()
        };
        if let Socket::Full { tcp, .. } = &call.socket {
            sock.cb_flags = tcp.cb_flags;
        }
        HookState {
            op: call.op,
            full: call.is_fullsock(),
            locked: call.is_locked(),
            state: call.socket.common().state,
            sock,
            header: call.skb.as_ref().map(|s| s.window.clone()),
            skb_len: call.skb.as_ref().map_or(0, |s| s.len),
            remaining_opt_len: 40,
            netns_cookie: 1,
            ..HookState::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common() -> SockCommon {
        SockCommon {
            family: 2,
            local_ip4: [127, 0, 0, 1],
            remote_ip4: [127, 0, 0, 2],
            local_port: 8080,
            remote_port: 40738,
            state: 1,
            ..SockCommon::default()
        }
    }

    fn full(op: u32, locked: bool) -> HookCall {
        let mut tcp = TcpFields {
            snd_cwnd: 10,
            srtt_us: 800,
            cb_flags: 0x0c,
            rtt_min: 90,
            sk_txhash: 0xabcd,
            bytes_received: 1 << 40,
            bytes_acked: 7,
            ..TcpFields::default()
        };
        tcp.counters[0] = 0x7fff_ffff;
        tcp.counters[16] = 3;
        HookCall {
            op,
            args: [1, 2, 3, 4],
            socket: Socket::Full {
                common: common(),
                tcp,
                extra: SockExtra::default(),
            },
            locked,
            skb: None,
        }
    }

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    #[test]
    fn ports_addresses_and_args() {
        let b = full(op::RTT_CB, true).context_bytes(0x1234, 0, 0);
        assert_eq!(b.len(), CTX_SIZE);
        assert_eq!(u32_at(&b, field::OP), op::RTT_CB);
        assert_eq!(u32_at(&b, 8), 2, "args[1]");
        // The spec's measured example: port 40738 reads raw 0x229f0000.
        assert_eq!(u32_at(&b, field::REMOTE_PORT), 0x229f_0000);
        assert_eq!(u32::from_be(u32_at(&b, field::REMOTE_PORT)), 40738);
        assert_eq!(u32_at(&b, field::LOCAL_PORT), 8080);
        assert_eq!(b[field::REMOTE_IP4..field::REMOTE_IP4 + 4], [127, 0, 0, 2]);
        assert_eq!(u32_at(&b, field::IS_FULLSOCK), 1);
        assert_eq!(u32_at(&b, field::SND_CWND), 10);
        assert_eq!(u32_at(&b, field::SND_SSTHRESH), 0x7fff_ffff);
        assert_eq!(u32_at(&b, 160), 3, "sacked_out");
        assert_eq!(u32_at(&b, field::SK_TXHASH), 0xabcd);
        assert_eq!(b[field::BYTES_RECEIVED + 5], 1);
        assert_eq!(b[field::SK..field::SK + 8], 0x1234u64.to_le_bytes());
    }

    #[test]
    fn unlocked_sockets_read_zero_in_locked_fields_but_not_rtt_min() {
        let b = full(op::TSTAMP_SENDMSG_CB, false).context_bytes(0x1234, 0, 0);
        assert_eq!(u32_at(&b, field::SND_CWND), 0);
        assert_eq!(u32_at(&b, field::CB_FLAGS), 0);
        assert_eq!(u32_at(&b, field::SK_TXHASH), 0);
        assert_eq!(u32_at(&b, field::RTT_MIN), 90, "rtt_min has no guard");
        assert_eq!(u32_at(&b, field::IS_FULLSOCK), 1);
        assert_eq!(b[field::SK..field::SK + 8], 0x1234u64.to_le_bytes());
    }

    #[test]
    fn request_sockets_have_no_sk_and_report_new_syn_recv() {
        let call = HookCall {
            op: op::TIMEOUT_INIT,
            args: [0; 4],
            socket: Socket::Request { common: common() },
            locked: true,
            skb: None,
        };
        assert!(!call.is_locked());
        let b = call.context_bytes(0x1234, 0, 0);
        assert_eq!(u32_at(&b, field::IS_FULLSOCK), 0);
        assert_eq!(u32_at(&b, field::STATE), 12);
        assert_eq!(b[field::SK..field::SK + 8], [0; 8], "ctx->sk is NULL");
        assert_eq!(
            u32_at(&b, field::FAMILY),
            2,
            "sock_common fields still read"
        );
        assert!(call.bpf_sock_bytes().is_none());
    }

    #[test]
    fn machine_context_points_at_bpf_sock_and_packet() {
        use crate::insn::Insn;
        use crate::runtime::{Config, Module};
        let mut m = Machine::new(Module::single("p", &[Insn::EXIT]), Config::default()).unwrap();
        let mut call = full(op::PARSE_HDR_OPT_CB, true);
        call.skb = Some(Skb {
            window: vec![0x1f, 0x90, 0x9f, 0x22],
            len: 40,
            tcp_flags: 0x10,
            hwtstamp: 0,
        });
        let c = m.sock_ops_context(&call);
        let load = |m: &Machine, a: u64, n: u64| m.memory.load(a, n);
        let sk = load(&m, c.ctx + field::SK as u64, 8).unwrap();
        assert_eq!(load(&m, sk + 44, 4).unwrap(), 8080, "bpf_sock.src_port");
        assert_eq!(
            load(&m, sk + 48, 2).unwrap(),
            u64::from(40738u16.swap_bytes())
        );
        let data = load(&m, c.ctx + field::SKB_DATA as u64, 8).unwrap();
        let end = load(&m, c.ctx + field::SKB_DATA_END as u64, 8).unwrap();
        assert_eq!(end - data, 4);
        assert_eq!(load(&m, data + 2, 1).unwrap(), 0x9f);
        assert!(load(&m, end, 1).is_err(), "reads stop at skb_data_end");
        assert!(m.memory.store(data, 1, 0).is_err(), "packets are read-only");
        assert_eq!(
            load(&m, c.ctx + field::SKB_TCP_FLAGS as u64, 1).unwrap(),
            0x10
        );
        m.memory.store(c.ctx + field::REPLY as u64, 4, 77).unwrap();
        assert_eq!(m.sock_ops_reply(&c), 77);
        assert_eq!(m.sock_ops_txhash(&c), 0xabcd);
        let before = m.memory.region_count();
        m.release_sock_ops_context(c);
        let again = m.sock_ops_context(&call);
        assert_eq!(
            m.memory.region_count(),
            before,
            "released regions are reused"
        );
        m.release_sock_ops_context(again);
    }

    #[test]
    fn programs_share_reply_and_any_zero_return_vetoes() {
        use crate::insn::{AluOp, Insn, Reg, Size, Src, Width};
        use crate::runtime::{Config, Module, ModuleFunction, ModuleProgram, assign_slots};
        let alu = |op, dst, src| Insn::Alu {
            width: Width::W64,
            op,
            dst,
            src,
        };
        // a: reply = 0x66; return 1.   b: reply = args[0] + 1; return r.
        let a = vec![
            Insn::Store {
                size: Size::W,
                dst: Reg::R1,
                off: 4,
                src: Src::Imm(0x66),
            },
            alu(AluOp::Mov, Reg::R0, Src::Imm(1)),
            Insn::EXIT,
        ];
        let b = |ret: i32| {
            vec![
                Insn::Load {
                    size: Size::W,
                    dst: Reg::R2,
                    src: Reg::R1,
                    off: 4,
                },
                alu(AluOp::Add, Reg::R2, Src::Imm(1)),
                Insn::Store {
                    size: Size::W,
                    dst: Reg::R1,
                    off: 4,
                    src: Src::Reg(Reg::R2),
                },
                alu(AluOp::Mov, Reg::R0, Src::Imm(ret)),
                Insn::EXIT,
            ]
        };
        let f = |name: &str, insns: Vec<Insn>| ModuleFunction {
            name: name.into(),
            section: "sockops".into(),
            insns: assign_slots(&insns),
            relocations: Vec::new(),
            lines: Vec::new(),
        };
        let module = Module {
            functions: vec![f("a", a), f("b1", b(1)), f("b0", b(0))],
            maps: Vec::new(),
            programs: ["a", "b1", "b0"]
                .iter()
                .enumerate()
                .map(|(function, n)| ModuleProgram {
                    name: n.to_string(),
                    function,
                })
                .collect(),
        };
        let mut m = Machine::new(module, Config::default()).unwrap();
        let mut call = full(op::TIMEOUT_INIT, true);
        call.args = [0; 4];
        let o = m.run_hook(&["a", "b1"], &call).unwrap();
        assert_eq!((o.reply, o.run_result, o.tcp_call_result), (0x67, 0, 0x67));
        let o = m.run_hook(&["a", "b0", "b1"], &call).unwrap();
        assert_eq!(o.returns, vec![1, 0, 1], "every program runs");
        assert_eq!((o.reply, o.run_result, o.tcp_call_result), (0x68, -1, -1));
        // No program: the kernel returns reply, which is args[0].
        call.args[0] = 9;
        let o = m.run_hook(&[], &call).unwrap();
        assert_eq!((o.reply, o.tcp_call_result), (9, 9));
        assert_eq!(o.sk_txhash, 0xabcd);
    }

    /// Runs `insns` on a context for `call`: r0 or the fault.
    fn on_context(
        call: &HookCall,
        insns: &[crate::insn::Insn],
    ) -> Result<u64, super::super::Fault> {
        use crate::runtime::{Config, Module};
        let mut m = Machine::new(Module::single("p", insns), Config::default()).unwrap();
        let c = m.sock_ops_context(call);
        let r = m.run("p", c.ctx);
        m.release_sock_ops_context(c);
        r
    }

    #[test]
    fn verifier_context_rules_apply_at_run_time() {
        use crate::insn::{AtomicOp, Insn, Reg, Size, Src, Width};
        use crate::runtime::FaultKind;
        let ld = |size, off| Insn::Load {
            size,
            dst: Reg::R0,
            src: Reg::R1,
            off,
        };
        let st = |size, off| Insn::Store {
            size,
            dst: Reg::R1,
            off,
            src: Src::Imm(0x77),
        };
        let mut call = full(op::PARSE_HDR_OPT_CB, true);
        call.skb = Some(Skb {
            window: vec![0; 4],
            len: 40,
            tcp_flags: 0x12,
            hwtstamp: 0,
        });
        let reason = |r: Result<u64, crate::runtime::Fault>| match r {
            Err(f) => match f.kind {
                FaultKind::Context { reason, .. } => (f.slot, reason),
                k => panic!("{k}"),
            },
            Ok(v) => panic!("ran to {v}"),
        };
        // Narrow loads only of skb_tcp_flags.
        assert_eq!(
            reason(on_context(&call, &[ld(Size::B, 0), Insn::EXIT])),
            (0, "4-byte field read with another size")
        );
        assert_eq!(
            on_context(&call, &[ld(Size::H, 212), Insn::EXIT]).unwrap(),
            0x12
        );
        assert_eq!(
            on_context(&call, &[ld(Size::B, 212), Insn::EXIT]).unwrap(),
            0x12
        );
        // 8-byte fields are read whole.
        assert_eq!(
            reason(on_context(&call, &[ld(Size::W, 172), Insn::EXIT])),
            (0, "8-byte field read with another size")
        );
        assert_eq!(
            on_context(&call, &[ld(Size::DW, 176), Insn::EXIT]).unwrap(),
            7
        );
        // Writes: reply and sk_txhash only, 4 bytes.
        assert_eq!(
            reason(on_context(&call, &[st(Size::W, 8), Insn::EXIT])),
            (0, "only reply and sk_txhash are writable")
        );
        assert_eq!(
            reason(on_context(&call, &[st(Size::H, 4), Insn::EXIT])),
            (0, "only 4-byte writes")
        );
        let atomic = Insn::Atomic {
            width: Width::W32,
            op: AtomicOp::Add,
            dst: Reg::R1,
            src: Reg::R0,
            off: 4,
        };
        assert_eq!(
            reason(on_context(&call, &[atomic, Insn::EXIT])),
            (0, "atomic operations on the context")
        );
        // sk_txhash: written on a locked socket, silently dropped (and read as 0) otherwise.
        let txhash = [st(Size::W, 164), ld(Size::W, 164), Insn::EXIT];
        assert_eq!(on_context(&call, &txhash).unwrap(), 0x77);
        let unlocked = full(op::TSTAMP_ACK_CB, false);
        assert_eq!(on_context(&unlocked, &txhash).unwrap(), 0);
    }
}
