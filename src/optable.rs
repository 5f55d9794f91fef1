//! The sock_ops op table: everything opsplit knows about each `BPF_SOCK_OPS_*` op on Linux 6.18 and
//! about the `struct bpf_tcp_ops` member (if any) that takes it over, as data in one place.
//!
//! Sources: `shared/spec/sockops-kernel-semantics.md` §2–§4 (legacy behaviour) and
//! `shared/spec/bpf-tcp-ops-upstream.md` §2–§4 (the target; it wins over §9 of the former).
//! `docs/ABI.md` is rendered from this table by [`render_abi_markdown`]; a test keeps the committed
//! file equal to it.

use std::fmt::Write;

/// Ops the 6.18 kernel defines: `BPF_SOCK_OPS_VOID` (0) to `BPF_SOCK_OPS_TSTAMP_SENDMSG_CB` (20).
pub const OP_COUNT: u8 = 21;

/// What the program's `sk` is when the op runs (semantics spec §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SockKind {
    /// Never invoked (VOID).
    None,
    /// A full TCP socket, locked by the caller (`is_fullsock = is_locked_tcp_sock = 1`).
    FullLocked,
    /// A full locked socket or a `request_sock` (`is_fullsock = 0`, `skops->sk` NULL, guarded
    /// tcp_sock fields 0); on the request path the listener's cgroup programs run.
    MaybeRequest,
    /// A full socket that is not locked (`is_locked_tcp_sock = 0`): tcp_sock fields read 0 and
    /// the socket helpers fail with -EOPNOTSUPP.
    FullUnlocked,
}

impl SockKind {
    pub fn describe(self) -> &'static str {
        match self {
            SockKind::None => "never invoked",
            SockKind::FullLocked => "full, locked",
            SockKind::MaybeRequest => "full+locked, or request sock",
            SockKind::FullUnlocked => "full, not locked",
        }
    }
}

/// Legacy cb flags (`BPF_SOCK_OPS_*_CB_FLAG`).
pub mod cb_flag {
    pub const RTO: u8 = 0x01;
    pub const RETRANS: u8 = 0x02;
    pub const STATE: u8 = 0x04;
    pub const RTT: u8 = 0x08;
    pub const PARSE_ALL_HDR_OPT: u8 = 0x10;
    pub const PARSE_UNKNOWN_HDR_OPT: u8 = 0x20;
    pub const WRITE_HDR_OPT: u8 = 0x40;
    pub const ALL: u8 = 0x7f;
}

/// What must hold, besides a sock_ops program being attached, for the kernel to invoke the op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Gate {
    /// Always invoked.
    Always,
    /// Never invoked.
    Never,
    /// Per-socket `bpf_sock_ops_cb_flags` bits; any of `mask`.
    CbFlag { mask: u8 },
    /// The socket uses the `nv` congestion control.
    NvCongestion,
    /// `sk_bpf_cb_flags & SK_BPF_CB_TX_TIMESTAMPING` and (except SENDMSG) `SKBTX_BPF` on the skb.
    TxTimestamping,
    /// WRITE_HDR_OPT flag and more than 0 bytes reserved by HDR_OPT_LEN.
    WriteHdrReserved,
}

impl Gate {
    pub fn describe(self) -> String {
        match self {
            Gate::Always => "none".into(),
            Gate::Never => "never invoked".into(),
            Gate::CbFlag { mask } => cb_flag_names(mask).join(" or "),
            Gate::NvCongestion => "socket uses the `nv` congestion control".into(),
            Gate::TxTimestamping => "SK_BPF_CB_TX_TIMESTAMPING (+ SKBTX_BPF on the skb)".into(),
            Gate::WriteHdrReserved => "WRITE_HDR_OPT_CB_FLAG and >0 bytes reserved".into(),
        }
    }
}

/// Names of the legacy cb flag bits in `mask`.
pub fn cb_flag_names(mask: u8) -> Vec<&'static str> {
    const NAMES: [(u8, &str); 7] = [
        (cb_flag::RTO, "RTO_CB_FLAG"),
        (cb_flag::RETRANS, "RETRANS_CB_FLAG"),
        (cb_flag::STATE, "STATE_CB_FLAG"),
        (cb_flag::RTT, "RTT_CB_FLAG"),
        (cb_flag::PARSE_ALL_HDR_OPT, "PARSE_ALL_HDR_OPT_CB_FLAG"),
        (
            cb_flag::PARSE_UNKNOWN_HDR_OPT,
            "PARSE_UNKNOWN_HDR_OPT_CB_FLAG",
        ),
        (cb_flag::WRITE_HDR_OPT, "WRITE_HDR_OPT_CB_FLAG"),
    ];
    NAMES
        .iter()
        .filter(|(b, _)| mask & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// How the kernel uses the run's result (`reply` and the 1/0 return) for a legacy op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultUse {
    /// Nothing is looked at; only side effects matter.
    Ignored,
    /// `reply` is the value; a 0 return (veto) makes the kernel use its default.
    Reply,
    /// `reply == 1` means true; a veto means false.
    ReplyBool,
    /// The reservation made with `bpf_reserve_hdr_opt`; a veto drops it.
    Reservation,
    /// The options stored with `bpf_store_hdr_opt`; a veto turns them all into NOPs.
    StoredOptions,
}

impl ResultUse {
    /// Whether a program returning 0 changes what the kernel does.
    pub fn veto_matters(self) -> bool {
        self != ResultUse::Ignored
    }
}

/// One typed argument of a `bpf_tcp_ops` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MemberArg {
    pub ty: &'static str,
    pub name: &'static str,
    pub nullable: bool,
}

const fn arg(ty: &'static str, name: &'static str) -> MemberArg {
    MemberArg {
        ty,
        name,
        nullable: false,
    }
}

const fn nullable(ty: &'static str, name: &'static str) -> MemberArg {
    MemberArg {
        ty,
        name,
        nullable: true,
    }
}

/// Member gating in the upstream struct_ops (upstream spec §3.2): R3 is the merged series, R6/R7
/// the AutoLOWAT follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberGate {
    /// Called whenever an attached instance defines the member.
    Presence,
    /// R6/R7 additionally test a `BPF_TCP_OPS_FLAG_*` bit on the socket.
    TcpOpsFlag(&'static str),
    /// Called only if some space was reserved (and, in R6/R7, `FLAG_WRITE_HDR_OPT`).
    Reserved,
}

/// The `struct bpf_tcp_ops` member that takes an op over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub name: &'static str,
    /// Index in `struct bpf_tcp_ops` (R6/R7 layout; libbpf matches members by name).
    pub index: u8,
    pub ret: &'static str,
    pub args: &'static [MemberArg],
    /// What the return value means.
    pub returns: &'static str,
    pub gate: MemberGate,
    /// How the legacy `args[]` / ctx data reach the member.
    pub args_from_legacy: &'static str,
}

impl Member {
    pub fn signature(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| {
                format!(
                    "{}{}{}",
                    a.ty,
                    if a.ty.ends_with('*') { "" } else { " " },
                    if a.nullable {
                        format!("{}__nullable", a.name)
                    } else {
                        a.name.to_string()
                    }
                )
            })
            .collect();
        format!("{} {}({})", self.ret, self.name, args.join(", "))
    }
}

/// Everything about one op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct OpInfo {
    pub op: u8,
    /// `BPF_SOCK_OPS_*`.
    pub name: &'static str,
    pub member: Option<Member>,
    pub sock: SockKind,
    pub gate: Gate,
    /// Meaning of `args[0..]` as the kernel fills them; empty when the call site passes none.
    pub args: &'static [&'static str],
    pub result: ResultUse,
    /// What `reply` (or the result) means to the kernel.
    pub result_meaning: &'static str,
    /// Whether the call site has an skb (`skb_data`, `skb_len`, `skb_tcp_flags` meaningful).
    pub skb: SkbAvail,
    /// Why an op without a member has none.
    pub residual_reason: Option<&'static str>,
}

/// Whether the call site of an op passes an skb (semantics spec §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkbAvail {
    None,
    /// The skb is there, but `skb_data..skb_data_end` is empty (header not built / TSTAMP).
    NoData,
    /// `skb_data..skb_data_end` covers the TCP header and options.
    Header,
    /// Sometimes NULL (TCP_REPAIR for ACTIVE_ESTABLISHED, `tcp_current_mss` for HDR_OPT_LEN).
    MaybeHeader,
}

impl OpInfo {
    /// The short name: `RTT_CB` for `BPF_SOCK_OPS_RTT_CB`.
    pub fn short_name(&self) -> &'static str {
        self.name.trim_start_matches("BPF_SOCK_OPS_")
    }

    /// Whether the op stays in a residual legacy sock_ops program (no member, but invoked).
    pub fn is_residual(&self) -> bool {
        self.member.is_none() && self.op != 0
    }

    /// Whether the legacy `bpf_sock_ops_cb_flags` gate decides if the op fires.
    pub fn cb_gated(&self) -> bool {
        matches!(self.gate, Gate::CbFlag { .. } | Gate::WriteHdrReserved)
    }
}

const SK: MemberArg = arg("struct sock *", "sk");
const REQ: MemberArg = nullable("struct request_sock *", "req");

/// The table, indexed by op.
pub const OPS: [OpInfo; OP_COUNT as usize] = [
    OpInfo {
        op: 0,
        name: "BPF_SOCK_OPS_VOID",
        member: None,
        sock: SockKind::None,
        gate: Gate::Never,
        args: &[],
        result: ResultUse::Ignored,
        result_meaning: "never invoked; its code path must stay behaviour-equal",
        skb: SkbAvail::None,
        residual_reason: Some("never invoked by the kernel"),
    },
    OpInfo {
        op: 1,
        name: "BPF_SOCK_OPS_TIMEOUT_INIT",
        member: Some(Member {
            name: "timeout_init",
            index: 0,
            ret: "int",
            args: &[SK, REQ],
            returns: "SYN/SYN-ACK RTO in jiffies; <=0 means the default (TCP_TIMEOUT_INIT); clamped to TCP_RTO_MAX; chained instances see the previous value through bpf_get_retval()",
            gate: MemberGate::Presence,
            args_from_legacy: "none; on the passive path sk is the listener and req the connection",
        }),
        sock: SockKind::MaybeRequest,
        gate: Gate::Always,
        args: &[],
        result: ResultUse::Reply,
        result_meaning: "reply = RTO in jiffies (HZ=250); <=0 or veto -> default",
        skb: SkbAvail::None,
        residual_reason: None,
    },
    OpInfo {
        op: 2,
        name: "BPF_SOCK_OPS_RWND_INIT",
        member: Some(Member {
            name: "rwnd_init",
            index: 1,
            ret: "int",
            args: &[SK, REQ],
            returns: "initial receive window in segments; <0 becomes 0, 0 means the route default",
            gate: MemberGate::Presence,
            args_from_legacy: "none; on the passive path sk is the listener and req the connection",
        }),
        sock: SockKind::MaybeRequest,
        gate: Gate::Always,
        args: &[],
        result: ResultUse::Reply,
        result_meaning: "reply = initial rcv window in segments; 0 or veto -> route default",
        skb: SkbAvail::None,
        residual_reason: None,
    },
    OpInfo {
        op: 3,
        name: "BPF_SOCK_OPS_TCP_CONNECT_CB",
        member: Some(Member {
            name: "connect",
            index: 8,
            ret: "void",
            args: &[SK],
            returns: "-",
            gate: MemberGate::Presence,
            args_from_legacy: "none",
        }),
        sock: SockKind::FullLocked,
        gate: Gate::Always,
        args: &[],
        result: ResultUse::Ignored,
        result_meaning: "ignored",
        skb: SkbAvail::None,
        residual_reason: None,
    },
    OpInfo {
        op: 4,
        name: "BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB",
        member: Some(Member {
            name: "active_established",
            index: 2,
            ret: "void",
            args: &[SK, nullable("struct sk_buff *", "skb")],
            returns: "-",
            gate: MemberGate::Presence,
            args_from_legacy: "skb = the SYN-ACK (NULL under TCP_REPAIR); skb_data reads go through helpers",
        }),
        sock: SockKind::FullLocked,
        gate: Gate::Always,
        args: &[],
        result: ResultUse::Ignored,
        result_meaning: "ignored",
        skb: SkbAvail::MaybeHeader,
        residual_reason: None,
    },
    OpInfo {
        op: 5,
        name: "BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB",
        member: Some(Member {
            name: "passive_established",
            index: 3,
            ret: "void",
            args: &[SK, arg("struct sk_buff *", "skb")],
            returns: "-",
            gate: MemberGate::Presence,
            args_from_legacy: "skb = the final ACK (the SYN with TFO)",
        }),
        sock: SockKind::FullLocked,
        gate: Gate::Always,
        args: &[],
        result: ResultUse::Ignored,
        result_meaning: "ignored",
        skb: SkbAvail::Header,
        residual_reason: None,
    },
    OpInfo {
        op: 6,
        name: "BPF_SOCK_OPS_NEEDS_ECN",
        member: None,
        sock: SockKind::MaybeRequest,
        gate: Gate::Always,
        args: &[],
        result: ResultUse::ReplyBool,
        result_meaning: "ECN wanted iff reply == 1; veto -> no ECN",
        skb: SkbAvail::None,
        residual_reason: Some("a congestion-control question; tcp_congestion_ops expresses it"),
    },
    OpInfo {
        op: 7,
        name: "BPF_SOCK_OPS_BASE_RTT",
        member: None,
        sock: SockKind::FullLocked,
        gate: Gate::NvCongestion,
        args: &[],
        result: ResultUse::Reply,
        result_meaning: "reply > 0 -> base RTT in us for TCP-NV",
        skb: SkbAvail::None,
        residual_reason: Some("used only by TCP-NV"),
    },
    OpInfo {
        op: 8,
        name: "BPF_SOCK_OPS_RTO_CB",
        member: Some(Member {
            name: "rto",
            index: 4,
            ret: "void",
            args: &[SK],
            returns: "-",
            gate: MemberGate::Presence,
            args_from_legacy: "args[0] = icsk_retransmits, args[1] = icsk_rto read through BTF; args[2] (expired) is not available",
        }),
        sock: SockKind::FullLocked,
        gate: Gate::CbFlag { mask: cb_flag::RTO },
        args: &["icsk_retransmits", "icsk_rto (jiffies)", "expired (0/1)"],
        result: ResultUse::Ignored,
        result_meaning: "ignored",
        skb: SkbAvail::None,
        residual_reason: None,
    },
    OpInfo {
        op: 9,
        name: "BPF_SOCK_OPS_RETRANS_CB",
        member: Some(Member {
            name: "retrans",
            index: 7,
            ret: "void",
            args: &[SK, arg("struct sk_buff *", "skb"), arg("int", "err")],
            returns: "-",
            gate: MemberGate::Presence,
            args_from_legacy: "args[0] = TCP_SKB_CB(skb)->seq, args[1] = tcp_skb_pcount(skb), args[2] = err",
        }),
        sock: SockKind::FullLocked,
        gate: Gate::CbFlag {
            mask: cb_flag::RETRANS,
        },
        args: &["seq", "segs", "err (negative errno as u32)"],
        result: ResultUse::Ignored,
        result_meaning: "ignored",
        skb: SkbAvail::None,
        residual_reason: None,
    },
    OpInfo {
        op: 10,
        name: "BPF_SOCK_OPS_STATE_CB",
        member: Some(Member {
            name: "set_state",
            index: 6,
            ret: "void",
            args: &[SK, arg("int", "state")],
            returns: "-",
            gate: MemberGate::Presence,
            args_from_legacy: "args[0] (old state) = sk->sk_state, args[1] (new state) = state",
        }),
        sock: SockKind::FullLocked,
        gate: Gate::CbFlag {
            mask: cb_flag::STATE,
        },
        args: &["old state", "new state"],
        result: ResultUse::Ignored,
        result_meaning: "ignored",
        skb: SkbAvail::None,
        residual_reason: None,
    },
    OpInfo {
        op: 11,
        name: "BPF_SOCK_OPS_TCP_LISTEN_CB",
        member: Some(Member {
            name: "listen",
            index: 9,
            ret: "void",
            args: &[SK],
            returns: "-",
            gate: MemberGate::Presence,
            args_from_legacy: "none",
        }),
        sock: SockKind::FullLocked,
        gate: Gate::Always,
        args: &[],
        result: ResultUse::Ignored,
        result_meaning: "ignored",
        skb: SkbAvail::None,
        residual_reason: None,
    },
    OpInfo {
        op: 12,
        name: "BPF_SOCK_OPS_RTT_CB",
        member: Some(Member {
            name: "rtt",
            index: 5,
            ret: "void",
            args: &[SK, arg("long", "mrtt"), arg("u32", "srtt")],
            returns: "-",
            gate: MemberGate::TcpOpsFlag("BPF_TCP_OPS_FLAG_RTT"),
            args_from_legacy: "args[0] = (u32)mrtt, args[1] = srtt",
        }),
        sock: SockKind::FullLocked,
        gate: Gate::CbFlag { mask: cb_flag::RTT },
        args: &["mrtt_us", "srtt_us << 3 (new value)"],
        result: ResultUse::Ignored,
        result_meaning: "ignored",
        skb: SkbAvail::None,
        residual_reason: None,
    },
    OpInfo {
        op: 13,
        name: "BPF_SOCK_OPS_PARSE_HDR_OPT_CB",
        member: Some(Member {
            name: "parse_hdr",
            index: 10,
            ret: "void",
            args: &[SK, arg("struct sk_buff *", "skb")],
            returns: "-",
            gate: MemberGate::TcpOpsFlag(
                "BPF_TCP_OPS_FLAG_PARSE_HDR_OPT_ALL / _UNKNOWN (+ unknown option seen)",
            ),
            args_from_legacy: "skb = the received segment",
        }),
        sock: SockKind::FullLocked,
        gate: Gate::CbFlag {
            mask: cb_flag::PARSE_ALL_HDR_OPT | cb_flag::PARSE_UNKNOWN_HDR_OPT,
        },
        args: &[],
        result: ResultUse::Ignored,
        result_meaning: "ignored",
        skb: SkbAvail::Header,
        residual_reason: None,
    },
    OpInfo {
        op: 14,
        name: "BPF_SOCK_OPS_HDR_OPT_LEN_CB",
        member: Some(Member {
            name: "hdr_opt_len",
            index: 11,
            ret: "void",
            args: &[
                SK,
                nullable("struct sk_buff *", "skb"),
                REQ,
                nullable("struct sk_buff *", "syn_skb"),
                arg("enum tcp_synack_type", "synack_type"),
                arg("unsigned int *", "remaining"),
            ],
            returns: "- (space is reserved with bpf_reserve_hdr_opt(ctx, len, 0))",
            gate: MemberGate::TcpOpsFlag(
                "BPF_TCP_OPS_FLAG_WRITE_HDR_OPT (tested on the listener for SYN-ACKs)",
            ),
            args_from_legacy: "args[0] = 1 (CURRENT_MSS) when skb == NULL, 2 (SYNACK_COOKIE) when synack_type == TCP_SYNACK_COOKIE, else 0",
        }),
        sock: SockKind::MaybeRequest,
        gate: Gate::CbFlag {
            mask: cb_flag::WRITE_HDR_OPT,
        },
        args: &["write flags: 0, CURRENT_MSS = 1, SYNACK_COOKIE = 2"],
        result: ResultUse::Reservation,
        result_meaning: "bytes reserved with bpf_reserve_hdr_opt; veto drops the reservation",
        skb: SkbAvail::NoData,
        residual_reason: None,
    },
    OpInfo {
        op: 15,
        name: "BPF_SOCK_OPS_WRITE_HDR_OPT_CB",
        member: Some(Member {
            name: "write_hdr_opt",
            index: 12,
            ret: "void",
            args: &[
                SK,
                arg("struct sk_buff *", "skb"),
                REQ,
                nullable("struct sk_buff *", "syn_skb"),
                arg("enum tcp_synack_type", "synack_type"),
                arg("u32", "opt_off"),
            ],
            returns: "- (options are stored with bpf_store_hdr_opt(ctx, buf, len, 0))",
            gate: MemberGate::Reserved,
            args_from_legacy: "args[0] = 2 (SYNACK_COOKIE) when synack_type == TCP_SYNACK_COOKIE, else 0",
        }),
        sock: SockKind::MaybeRequest,
        gate: Gate::WriteHdrReserved,
        args: &["write flags: 0, SYNACK_COOKIE = 2"],
        result: ResultUse::StoredOptions,
        result_meaning: "options stored with bpf_store_hdr_opt; veto turns every reserved byte into NOP",
        skb: SkbAvail::Header,
        residual_reason: None,
    },
    tstamp(
        16,
        "BPF_SOCK_OPS_TSTAMP_SCHED_CB",
        "the skb entered the qdisc layer",
    ),
    tstamp(
        17,
        "BPF_SOCK_OPS_TSTAMP_SND_SW_CB",
        "software transmit timestamp",
    ),
    tstamp(
        18,
        "BPF_SOCK_OPS_TSTAMP_SND_HW_CB",
        "hardware transmit timestamp (skb_hwtstamp)",
    ),
    tstamp(19, "BPF_SOCK_OPS_TSTAMP_ACK_CB", "the skb was acknowledged"),
    tstamp(
        20,
        "BPF_SOCK_OPS_TSTAMP_SENDMSG_CB",
        "end of sendmsg; bpf_sock_ops_enable_tx_tstamp arms the skb",
    ),
];

const fn tstamp(op: u8, name: &'static str, meaning: &'static str) -> OpInfo {
    OpInfo {
        op,
        name,
        member: None,
        sock: SockKind::FullUnlocked,
        gate: Gate::TxTimestamping,
        args: &[],
        result: ResultUse::Ignored,
        result_meaning: meaning,
        skb: SkbAvail::NoData,
        residual_reason: Some("no TX-timestamping member in any revision (upstream spec §6)"),
    }
}

/// The op's entry, `None` for 21..=255 (no such op: the "other" path).
pub fn op_info(op: u8) -> Option<&'static OpInfo> {
    OPS.get(op as usize)
}

/// Parses an op as given on the command line: a number, `BPF_SOCK_OPS_RTT_CB`, `RTT_CB`, the
/// member name `rtt` (case-insensitive), or `other` (the ops above 20, as 21).
pub fn parse_op(s: &str) -> Option<u8> {
    if let Ok(n) = s.parse::<u8>() {
        return Some(n);
    }
    if s.eq_ignore_ascii_case("other") {
        return Some(OP_COUNT);
    }
    let up = s.to_ascii_uppercase();
    OPS.iter()
        .find(|o| {
            o.name == up
                || o.short_name() == up
                || o.member.is_some_and(|m| m.name.eq_ignore_ascii_case(s))
        })
        .map(|o| o.op)
}

/// How a ctx field behaves when read in some op (semantics spec §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    /// Always read.
    None,
    /// Read only if `is_locked_tcp_sock`, else 0.
    Locked,
    /// Read only if `is_fullsock`, else NULL.
    Full,
    /// Unguarded tcp_sock read (`rtt_min`): out of bounds on request socks.
    Unguarded,
}

/// One `struct bpf_sock_ops` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CtxField {
    pub off: u32,
    pub size: u32,
    pub name: &'static str,
    pub writable: bool,
    pub guard: Guard,
}

const fn f(off: u32, size: u32, name: &'static str, guard: Guard) -> CtxField {
    CtxField {
        off,
        size,
        name,
        writable: false,
        guard,
    }
}

const fn w(off: u32, size: u32, name: &'static str, guard: Guard) -> CtxField {
    CtxField {
        off,
        size,
        name,
        writable: true,
        guard,
    }
}

use Guard::{Full as F, Locked as L, None as N};

/// `struct bpf_sock_ops` (224 bytes). `args[0]` and `reply` are one word: its name is `reply`
/// when written and `args[0]` when read, and a read after a write sees the written value.
pub const CTX_FIELDS: &[CtxField] = &[
    f(0, 4, "op", N),
    w(4, 4, "args[0]", N),
    f(8, 4, "args[1]", N),
    f(12, 4, "args[2]", N),
    f(16, 4, "args[3]", N),
    f(20, 4, "family", N),
    f(24, 4, "remote_ip4", N),
    f(28, 4, "local_ip4", N),
    f(32, 4, "remote_ip6[0]", N),
    f(36, 4, "remote_ip6[1]", N),
    f(40, 4, "remote_ip6[2]", N),
    f(44, 4, "remote_ip6[3]", N),
    f(48, 4, "local_ip6[0]", N),
    f(52, 4, "local_ip6[1]", N),
    f(56, 4, "local_ip6[2]", N),
    f(60, 4, "local_ip6[3]", N),
    f(64, 4, "remote_port", N),
    f(68, 4, "local_port", N),
    f(72, 4, "is_fullsock", N),
    f(76, 4, "snd_cwnd", L),
    f(80, 4, "srtt_us", L),
    f(84, 4, "bpf_sock_ops_cb_flags", L),
    f(88, 4, "state", N),
    f(92, 4, "rtt_min", Guard::Unguarded),
    f(96, 4, "snd_ssthresh", L),
    f(100, 4, "rcv_nxt", L),
    f(104, 4, "snd_nxt", L),
    f(108, 4, "snd_una", L),
    f(112, 4, "mss_cache", L),
    f(116, 4, "ecn_flags", L),
    f(120, 4, "rate_delivered", L),
    f(124, 4, "rate_interval_us", L),
    f(128, 4, "packets_out", L),
    f(132, 4, "retrans_out", L),
    f(136, 4, "total_retrans", L),
    f(140, 4, "segs_in", L),
    f(144, 4, "data_segs_in", L),
    f(148, 4, "segs_out", L),
    f(152, 4, "data_segs_out", L),
    f(156, 4, "lost_out", L),
    f(160, 4, "sacked_out", L),
    w(164, 4, "sk_txhash", L),
    f(168, 8, "bytes_received", L),
    f(176, 8, "bytes_acked", L),
    f(184, 8, "sk", F),
    f(192, 8, "skb_data", N),
    f(200, 8, "skb_data_end", N),
    f(208, 4, "skb_len", N),
    f(212, 4, "skb_tcp_flags", N),
    f(216, 8, "skb_hwtstamp", N),
];

/// The offset of `reply` / `args[0]`.
pub const REPLY_OFF: u32 = 4;
/// The offset of `sk_txhash`.
pub const TXHASH_OFF: u32 = 164;
/// The offset of `sk`.
pub const SK_OFF: u32 = 184;
/// The offsets of `skb_data` and `skb_data_end`.
pub const SKB_DATA_OFF: u32 = 192;
pub const SKB_DATA_END_OFF: u32 = 200;

/// The ctx field covering byte `off`.
pub fn ctx_field(off: u32) -> Option<&'static CtxField> {
    CTX_FIELDS
        .iter()
        .find(|fl| off >= fl.off && off < fl.off + fl.size)
}

/// `struct bpf_sock` fields (what `skops->sk` points to).
pub const BPF_SOCK_FIELDS: &[(u32, u32, &str)] = &[
    (0, 4, "bound_dev_if"),
    (4, 4, "family"),
    (8, 4, "type"),
    (12, 4, "protocol"),
    (16, 4, "mark"),
    (20, 4, "priority"),
    (24, 4, "src_ip4"),
    (28, 16, "src_ip6"),
    (44, 4, "src_port"),
    (48, 4, "dst_port"),
    (52, 4, "dst_ip4"),
    (56, 16, "dst_ip6"),
    (72, 4, "state"),
    (76, 4, "rx_queue_mapping"),
];

/// The `bpf_sock` field covering byte `off`.
pub fn bpf_sock_field(off: u32) -> Option<&'static str> {
    BPF_SOCK_FIELDS
        .iter()
        .find(|(o, s, _)| off >= *o && off < o + s)
        .map(|(_, _, n)| *n)
}

/// What a field reads in an op (for ABI.md and the request-sock findings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldValue {
    Valid,
    /// 0 / NULL on the request-sock path.
    ZeroOnRequest,
    /// Always 0 (the lock guard in TSTAMP ops, no skb, no args).
    Zero,
    /// Garbage: an out-of-bounds read on request socks (`rtt_min`).
    OutOfBoundsOnRequest,
}

/// What field `fl` reads in op `info`.
pub fn field_value(info: &OpInfo, fl: &CtxField) -> FieldValue {
    let req = info.sock == SockKind::MaybeRequest;
    match fl.guard {
        Guard::Locked if info.sock == SockKind::FullUnlocked => return FieldValue::Zero,
        Guard::Locked | Guard::Full if req => return FieldValue::ZeroOnRequest,
        Guard::Unguarded if req => return FieldValue::OutOfBoundsOnRequest,
        _ => {}
    }
    if let Some(i) = fl.name.strip_prefix("args[") {
        let i: usize = i[..1].parse().unwrap_or(9);
        // args[0] carries the previous program's reply in every op, so it is never known 0.
        if i > 0 && i >= info.args.len() {
            return FieldValue::Zero;
        }
    }
    let skb_field = matches!(fl.off, 192..=223);
    if skb_field && info.skb == SkbAvail::None {
        return FieldValue::Zero;
    }
    if fl.name == "skb_hwtstamp" && info.op != 18 {
        return FieldValue::Zero;
    }
    FieldValue::Valid
}

/// Where a sock_ops-specific helper works at run time (semantics spec §4.1) and what replaces it
/// in `bpf_tcp_ops` (upstream spec §4.1).
#[derive(Debug, Clone, Copy)]
pub struct HelperRule {
    pub id: i32,
    pub name: &'static str,
    /// Ops in which the helper does its job (elsewhere it returns an error or NULL).
    pub works_in: fn(u8) -> bool,
    /// Members of `bpf_tcp_ops` where the same helper is offered; empty = none.
    pub members: &'static [&'static str],
    pub note: &'static str,
}

/// Helper ids used by the analysis.
pub mod helper {
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    pub const MAP_UPDATE_ELEM: i32 = 2;
    pub const TAIL_CALL: i32 = 12;
    pub const PERF_EVENT_OUTPUT: i32 = 25;
    pub const GET_SOCKET_COOKIE: i32 = 46;
    pub const SETSOCKOPT: i32 = 49;
    pub const SOCK_MAP_UPDATE: i32 = 53;
    pub const GETSOCKOPT: i32 = 57;
    pub const SOCK_OPS_CB_FLAGS_SET: i32 = 59;
    pub const SOCK_HASH_UPDATE: i32 = 70;
    pub const GET_LOCAL_STORAGE: i32 = 81;
    pub const TCP_SOCK: i32 = 96;
    pub const SK_STORAGE_GET: i32 = 107;
    pub const SK_STORAGE_DELETE: i32 = 108;
    pub const GET_NETNS_COOKIE: i32 = 122;
    pub const LOAD_HDR_OPT: i32 = 142;
    pub const STORE_HDR_OPT: i32 = 143;
    pub const RESERVE_HDR_OPT: i32 = 144;
    pub const FOR_EACH_MAP_ELEM: i32 = 164;
    pub const TIMER_SET_CALLBACK: i32 = 170;
    pub const FIND_VMA: i32 = 180;
    pub const LOOP: i32 = 181;
    pub const USER_RINGBUF_DRAIN: i32 = 209;

    /// Helpers without side effects a program could observe later (lookups, clocks, random
    /// numbers, reads of the socket or the packet): a default path that only calls these does
    /// nothing. `bpf_sk_storage_get` counts only without `BPF_SK_STORAGE_GET_F_CREATE`.
    pub fn is_pure(id: i32, args: &[Option<u64>; 5]) -> bool {
        match id {
            SK_STORAGE_GET => args[3] == Some(0),
            _ => matches!(
                id,
                MAP_LOOKUP_ELEM
                    | 5 // ktime_get_ns
                    | 7 // get_prandom_u32
                    | 8 // get_smp_processor_id
                    | 14 // get_current_pid_tgid
                    | 15 // get_current_uid_gid
                    | 16 // get_current_comm
                    | 35 // get_current_task
                    | GET_SOCKET_COOKIE
                    | GETSOCKOPT
                    | TCP_SOCK
                    | GET_NETNS_COOKIE
                    | LOAD_HDR_OPT
                    | 125 // ktime_get_boot_ns
                    | 160 // ktime_get_coarse_ns
                    | 208 // ktime_get_tai_ns
            ),
        }
    }

    /// Helpers whose pointer arguments are only read (keys, values, option buffers to set,
    /// records to output): the stack they point to keeps its contents across the call.
    /// What a helper does with the memory a pointer argument points to, from the `argN_type`
    /// of its kernel prototype (`bpf_func_proto`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Access {
        /// `ARG_PTR_TO_MEM | MEM_RDONLY`, map keys and values: the verifier requires the bytes
        /// initialised and the helper only reads them.
        Read,
        /// `ARG_PTR_TO_UNINIT_MEM`: the helper fills the bytes (on failure too, zeroing them)
        /// and never reads them.
        Write,
        /// `ARG_PTR_TO_MEM | MEM_WRITE`: read (so initialised) and possibly written.
        ReadWrite,
    }

    /// How many bytes a pointer argument covers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Extent {
        /// The value of argument `n` (`ARG_CONST_SIZE[_OR_ZERO]`, known at verification).
        SizeArg(u8),
        /// The key size of the map in argument `n`.
        MapKey(u8),
        /// The value size of the map in argument `n`.
        MapValue(u8),
    }

    /// A pointer-to-memory argument of a helper.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct MemArg {
        /// Argument register, 1 to 5.
        pub arg: u8,
        pub access: Access,
        pub extent: Extent,
    }

    const fn mem(arg: u8, access: Access, extent: Extent) -> MemArg {
        MemArg {
            arg,
            access,
            extent,
        }
    }

    use Access::*;
    use Extent::*;

    /// The pointer-to-memory arguments of the helpers sock_ops programs call, by helper id.
    /// A helper listed with no arguments takes no pointer to program memory. Callback contexts
    /// (`bpf_loop`, `bpf_for_each_map_elem`) are not here: the callback may do anything with
    /// them. Checked against `net/core/filter.c`, `kernel/bpf/helpers.c` and
    /// `kernel/bpf/ringbuf.c` of 6.18.
    pub const MEMORY_ARGS: &[(i32, &[MemArg])] = &[
        (MAP_LOOKUP_ELEM, &[mem(2, Read, MapKey(1))]),
        (
            MAP_UPDATE_ELEM,
            &[mem(2, Read, MapKey(1)), mem(3, Read, MapValue(1))],
        ),
        (3, &[mem(2, Read, MapKey(1))]),    // map_delete_elem
        (5, &[]),                           // ktime_get_ns
        (6, &[mem(1, Read, SizeArg(2))]),   // trace_printk
        (7, &[]),                           // get_prandom_u32
        (8, &[]),                           // get_smp_processor_id
        (16, &[mem(1, Write, SizeArg(2))]), // get_current_comm
        (PERF_EVENT_OUTPUT, &[mem(4, Read, SizeArg(5))]),
        (GET_SOCKET_COOKIE, &[]),
        (SETSOCKOPT, &[mem(4, Read, SizeArg(5))]),
        (SOCK_MAP_UPDATE, &[mem(3, Read, MapKey(2))]),
        (GETSOCKOPT, &[mem(4, Write, SizeArg(5))]),
        (SOCK_OPS_CB_FLAGS_SET, &[]),
        (SOCK_HASH_UPDATE, &[mem(3, Read, MapKey(2))]),
        (87, &[mem(2, Read, MapValue(1))]),  // map_push_elem
        (88, &[mem(2, Write, MapValue(1))]), // map_pop_elem
        (89, &[mem(2, Write, MapValue(1))]), // map_peek_elem
        (TCP_SOCK, &[]),
        (SK_STORAGE_GET, &[mem(3, Read, MapValue(1))]),
        (SK_STORAGE_DELETE, &[]),
        (112, &[mem(1, Write, SizeArg(2))]), // probe_read_user
        (113, &[mem(1, Write, SizeArg(2))]), // probe_read_kernel
        (GET_NETNS_COOKIE, &[]),
        (125, &[]),                         // ktime_get_boot_ns
        (130, &[mem(2, Read, SizeArg(3))]), // ringbuf_output
        (131, &[]),                         // ringbuf_reserve
        (132, &[]),                         // ringbuf_submit
        (133, &[]),                         // ringbuf_discard
        (LOAD_HDR_OPT, &[mem(2, ReadWrite, SizeArg(3))]),
        (STORE_HDR_OPT, &[mem(2, Read, SizeArg(3))]),
        (RESERVE_HDR_OPT, &[]),
        (160, &[]), // ktime_get_coarse_ns
        (208, &[]), // ktime_get_tai_ns
    ];

    /// The pointer-to-memory arguments of helper `id`; `None` for a helper not in
    /// [`MEMORY_ARGS`], whose use of pointers is unknown.
    pub fn memory_args(id: i32) -> Option<&'static [MemArg]> {
        MEMORY_ARGS.iter().find(|(h, _)| *h == id).map(|(_, a)| *a)
    }

    pub fn reads_only_through_pointers(id: i32) -> bool {
        memory_args(id).is_some_and(|a| a.iter().all(|m| m.access == Access::Read))
    }
}

/// Members whose `sk` is an owned, locked full socket: the R6/R7 `bpf_{get,set}sockopt`
/// allow-list (upstream spec §4.1).
pub const SOCKOPT_MEMBERS: &[&str] = &[
    "active_established",
    "passive_established",
    "rto",
    "rtt",
    "set_state",
    "retrans",
    "connect",
    "listen",
    "parse_hdr",
];

/// The sock_ops-specific helpers.
pub const HELPER_RULES: &[HelperRule] = &[
    HelperRule {
        id: helper::SETSOCKOPT,
        name: "bpf_setsockopt",
        works_in: |op| op <= 15,
        members: SOCKOPT_MEMBERS,
        note: "op <= 15 and a full socket (-EINVAL on request socks, -EOPNOTSUPP in TSTAMP ops); bpf_tcp_ops passes sk instead of ctx",
    },
    HelperRule {
        id: helper::GETSOCKOPT,
        name: "bpf_getsockopt",
        works_in: |op| op <= 15,
        members: SOCKOPT_MEMBERS,
        note: "as bpf_setsockopt; TCP_BPF_SYN/_IP/_MAC have no bpf_tcp_ops equivalent",
    },
    HelperRule {
        id: helper::SOCK_OPS_CB_FLAGS_SET,
        name: "bpf_sock_ops_cb_flags_set",
        works_in: |op| op <= 15,
        members: &[],
        note: "bpf_tcp_ops has no cb flags: members are presence-gated; R6/R7 use bpf_tcp_ops_set_flags for rtt/parse_hdr/hdr ops",
    },
    HelperRule {
        id: helper::SOCK_MAP_UPDATE,
        name: "bpf_sock_map_update",
        works_in: |op| matches!(op, 4 | 5 | 11),
        members: &[],
        note: "only ACTIVE/PASSIVE_ESTABLISHED and LISTEN; not offered to struct_ops",
    },
    HelperRule {
        id: helper::SOCK_HASH_UPDATE,
        name: "bpf_sock_hash_update",
        works_in: |op| matches!(op, 4 | 5 | 11),
        members: &[],
        note: "only ACTIVE/PASSIVE_ESTABLISHED and LISTEN; not offered to struct_ops",
    },
    HelperRule {
        id: helper::GET_SOCKET_COOKIE,
        name: "bpf_get_socket_cookie",
        works_in: |op| (1..=20).contains(&op),
        members: &[],
        note: "every op; not offered to struct_ops (the cookie is created lazily)",
    },
    HelperRule {
        id: helper::GET_NETNS_COOKIE,
        name: "bpf_get_netns_cookie",
        works_in: |op| (1..=20).contains(&op),
        members: &[],
        note: "every op; not offered to struct_ops",
    },
    HelperRule {
        id: helper::PERF_EVENT_OUTPUT,
        name: "bpf_perf_event_output",
        works_in: |op| (1..=20).contains(&op),
        members: &[],
        note: "gpl_only; not offered to struct_ops (use a ring buffer)",
    },
    HelperRule {
        id: helper::LOAD_HDR_OPT,
        name: "bpf_load_hdr_opt",
        works_in: |op| matches!(op, 4 | 5 | 13 | 15),
        members: &["parse_hdr", "write_hdr_opt"],
        note: "needs an skb with a header (op != HDR_OPT_LEN); with BPF_LOAD_HDR_OPT_TCP_SYN also in ops <= 15 with a SYN; bpf_tcp_ops requires flags == 0",
    },
    HelperRule {
        id: helper::STORE_HDR_OPT,
        name: "bpf_store_hdr_opt",
        works_in: |op| op == 15,
        members: &["write_hdr_opt"],
        note: "WRITE_HDR_OPT_CB only, else -EPERM",
    },
    HelperRule {
        id: helper::RESERVE_HDR_OPT,
        name: "bpf_reserve_hdr_opt",
        works_in: |op| op == 14,
        members: &["hdr_opt_len"],
        note: "HDR_OPT_LEN_CB only, else -EPERM",
    },
    HelperRule {
        id: helper::TCP_SOCK,
        name: "bpf_tcp_sock",
        works_in: |op| (1..=20).contains(&op),
        members: &[],
        note: "NULL for request socks; struct_ops members get a trusted tcp_sock instead",
    },
    HelperRule {
        id: helper::SK_STORAGE_GET,
        name: "bpf_sk_storage_get",
        works_in: |op| (1..=20).contains(&op),
        members: &[
            "timeout_init",
            "rwnd_init",
            "active_established",
            "passive_established",
            "rto",
            "rtt",
            "set_state",
            "retrans",
            "connect",
            "listen",
            "parse_hdr",
            "hdr_opt_len",
            "write_hdr_opt",
        ],
        note: "NULL for request socks (skops->sk is NULL there)",
    },
    HelperRule {
        id: helper::GET_LOCAL_STORAGE,
        name: "bpf_get_local_storage",
        works_in: |op| (1..=20).contains(&op),
        members: &[],
        note: "cgroup storage of the attached program: no struct_ops equivalent",
    },
];

/// The rule of a sock_ops-specific helper.
pub fn helper_rule(id: i32) -> Option<&'static HelperRule> {
    HELPER_RULES.iter().find(|r| r.id == id)
}

/// Which sock_ops-specific helpers (and the TX-timestamp kfunc) do their job in `op`.
pub fn helpers_valid_in(op: u8) -> Vec<&'static str> {
    let mut v: Vec<&str> = HELPER_RULES
        .iter()
        .filter(|r| (r.works_in)(op))
        .map(|r| r.name)
        .collect();
    if op == 20 {
        v.push("bpf_sock_ops_enable_tx_tstamp (kfunc)");
    }
    v
}

/// `docs/ABI.md`, rendered from the table.
pub fn render_abi_markdown() -> String {
    let mut s = String::new();
    let o = &mut s;
    let _ = writeln!(
        o,
        "# sock_ops ops and their `struct bpf_tcp_ops` members\n\n\
         <!-- Generated from src/optable.rs by tests/analysis_abi.rs; do not edit. \
         Regenerate with `OPSPLIT_BLESS=1 cargo test --test analysis_abi`. -->\n\n\
         Legacy behaviour is Linux 6.18 (`shared/spec/sockops-kernel-semantics.md`); the target is the\n\
         upstream `struct bpf_tcp_ops` (`shared/spec/bpf-tcp-ops-upstream.md`, R6/R7 layout). Ops without a\n\
         member stay in a residual legacy sock_ops program.\n"
    );
    let _ = writeln!(o, "## Summary\n");
    let _ = writeln!(
        o,
        "| # | Op | Member | Socket | Legacy gate | Result used | args[] |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    for i in &OPS {
        let _ = writeln!(
            o,
            "| {} | `{}` | {} | {} | {} | {} | {} |",
            i.op,
            i.short_name(),
            match i.member {
                Some(m) => format!("`{}`", m.name),
                None if i.op == 0 => "— (never invoked)".to_string(),
                None => "— (residual)".to_string(),
            },
            i.sock.describe(),
            i.gate.describe(),
            match i.result {
                ResultUse::Ignored => "no",
                ResultUse::Reply => "reply",
                ResultUse::ReplyBool => "reply == 1",
                ResultUse::Reservation => "reservation",
                ResultUse::StoredOptions => "stored options",
            },
            if i.args.is_empty() {
                "–".to_string()
            } else {
                i.args
                    .iter()
                    .enumerate()
                    .map(|(k, a)| format!("[{k}] {a}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        );
    }
    let _ = writeln!(o, "\n## Per op\n");
    for i in &OPS {
        let _ = writeln!(o, "### {} `{}`\n", i.op, i.name);
        match i.member {
            Some(m) => {
                let _ = writeln!(o, "- Member #{}: `{}`", m.index, m.signature());
                let _ = writeln!(o, "- Member returns: {}", m.returns);
                let _ = writeln!(
                    o,
                    "- Member gate: {}",
                    match m.gate {
                        MemberGate::Presence => "presence (no flag)".to_string(),
                        MemberGate::TcpOpsFlag(fl) => format!("R3: presence; R6/R7: {fl}"),
                        MemberGate::Reserved =>
                            "bytes reserved (R6/R7: and BPF_TCP_OPS_FLAG_WRITE_HDR_OPT)".to_string(),
                    }
                );
                let _ = writeln!(o, "- Legacy data: {}", m.args_from_legacy);
            }
            None => {
                let _ = writeln!(
                    o,
                    "- No member: {}",
                    i.residual_reason.unwrap_or("no member")
                );
            }
        }
        let _ = writeln!(o, "- Socket: {}", i.sock.describe());
        let _ = writeln!(o, "- Legacy gate: {}", i.gate.describe());
        let _ = writeln!(o, "- Legacy result: {}", i.result_meaning);
        let valid = helpers_valid_in(i.op);
        let _ = writeln!(
            o,
            "- sock_ops-specific helpers that work: {}",
            if valid.is_empty() {
                "none".to_string()
            } else {
                valid.join(", ")
            }
        );
        let mut by: Vec<(FieldValue, Vec<&str>)> = Vec::new();
        for fl in CTX_FIELDS {
            let v = field_value(i, fl);
            if v == FieldValue::Valid {
                continue;
            }
            match by.iter_mut().find(|(k, _)| *k == v) {
                Some((_, names)) => names.push(fl.name),
                None => by.push((v, vec![fl.name])),
            }
        }
        for (v, names) in by {
            let what = match v {
                FieldValue::Valid => unreachable!("skipped above"),
                FieldValue::ZeroOnRequest => "0/NULL on the request-sock path",
                FieldValue::Zero => "always 0",
                FieldValue::OutOfBoundsOnRequest => "out-of-bounds read on request socks",
            };
            let _ = writeln!(o, "- Fields {what}: {}", names.join(", "));
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "## ctx fields (`struct bpf_sock_ops`)\n");
    let _ = writeln!(o, "| Off | Size | Field | Write | Guard |");
    let _ = writeln!(o, "|---|---|---|---|---|");
    for fl in CTX_FIELDS {
        let _ = writeln!(
            o,
            "| {} | {} | `{}` | {} | {} |",
            fl.off,
            fl.size,
            if fl.off == REPLY_OFF {
                "args[0]` / `reply"
            } else {
                fl.name
            },
            if fl.writable { "yes" } else { "" },
            match fl.guard {
                Guard::None => "–",
                Guard::Locked => "L (0 unless locked full sock)",
                Guard::Full => "F (NULL unless full sock)",
                Guard::Unguarded => "none (out of bounds on request socks)",
            }
        );
    }
    let _ = writeln!(o, "\n## sock_ops-specific helpers\n");
    let _ = writeln!(
        o,
        "| id | Helper | Works in ops | bpf_tcp_ops members | Note |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    for r in HELPER_RULES {
        let ops: Vec<String> = (0..OP_COUNT)
            .filter(|&op| (r.works_in)(op))
            .map(|op| op.to_string())
            .collect();
        let _ = writeln!(
            o,
            "| {} | `{}` | {} | {} | {} |",
            r.id,
            r.name,
            compress_ranges(&ops),
            if r.members.is_empty() {
                "none".to_string()
            } else {
                r.members.join(", ")
            },
            r.note
        );
    }
    s
}

/// `1, 2, 3, 5` → `1–3, 5`.
fn compress_ranges(v: &[String]) -> String {
    let nums: Vec<u32> = v.iter().filter_map(|s| s.parse().ok()).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < nums.len() {
        let mut j = i;
        while j + 1 < nums.len() && nums[j + 1] == nums[j] + 1 {
            j += 1;
        }
        out.push(if j > i + 1 {
            format!("{}–{}", nums[i], nums[j])
        } else if j == i + 1 {
            format!("{}, {}", nums[i], nums[j])
        } else {
            nums[i].to_string()
        });
        i = j + 1;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_op_and_members_are_unique() {
        for (i, o) in OPS.iter().enumerate() {
            assert_eq!(o.op as usize, i);
            assert!(o.name.starts_with("BPF_SOCK_OPS_"));
        }
        let mut idx: Vec<u8> = OPS
            .iter()
            .filter_map(|o| o.member.map(|m| m.index))
            .collect();
        idx.sort();
        assert_eq!(idx, (0..13).collect::<Vec<_>>());
        let residual: Vec<u8> = OPS
            .iter()
            .filter(|o| o.is_residual())
            .map(|o| o.op)
            .collect();
        assert_eq!(residual, [6, 7, 16, 17, 18, 19, 20]);
    }

    #[test]
    fn parse_op_forms() {
        assert_eq!(parse_op("12"), Some(12));
        assert_eq!(parse_op("BPF_SOCK_OPS_RTT_CB"), Some(12));
        assert_eq!(parse_op("rtt_cb"), Some(12));
        assert_eq!(parse_op("set_state"), Some(10));
        assert_eq!(parse_op("other"), Some(21));
        assert_eq!(parse_op("nope"), None);
    }

    #[test]
    fn ctx_fields_cover_the_layout() {
        let mut end = 0;
        for fl in CTX_FIELDS {
            assert_eq!(fl.off, end, "gap before {}", fl.name);
            end = fl.off + fl.size;
        }
        assert_eq!(end, 224);
        assert_eq!(ctx_field(166).unwrap().name, "sk_txhash");
        let writable: Vec<u32> = CTX_FIELDS
            .iter()
            .filter(|f| f.writable)
            .map(|f| f.off)
            .collect();
        assert_eq!(writable, [REPLY_OFF, TXHASH_OFF]);
    }

    #[test]
    fn field_values_follow_the_guards() {
        let cwnd = ctx_field(76).unwrap();
        assert_eq!(field_value(&OPS[1], cwnd), FieldValue::ZeroOnRequest);
        assert_eq!(field_value(&OPS[16], cwnd), FieldValue::Zero);
        assert_eq!(field_value(&OPS[3], cwnd), FieldValue::Valid);
        let args2 = ctx_field(12).unwrap();
        assert_eq!(field_value(&OPS[8], args2), FieldValue::Valid);
        assert_eq!(field_value(&OPS[10], args2), FieldValue::Zero);
        assert_eq!(
            field_value(&OPS[2], ctx_field(92).unwrap()),
            FieldValue::OutOfBoundsOnRequest
        );
    }

    #[test]
    fn helper_validity() {
        assert!(helpers_valid_in(4).contains(&"bpf_sock_hash_update"));
        assert!(!helpers_valid_in(3).contains(&"bpf_sock_hash_update"));
        assert!(helpers_valid_in(14).contains(&"bpf_reserve_hdr_opt"));
        assert!(!helpers_valid_in(16).contains(&"bpf_setsockopt"));
        assert!(
            helpers_valid_in(20)
                .iter()
                .any(|h| h.contains("enable_tx_tstamp"))
        );
    }
}
