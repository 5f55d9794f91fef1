//! Typed migration findings: constructs of a legacy sock_ops program that cannot move into a
//! `struct bpf_tcp_ops` member as they are, and places where the analysis lost the op.

use serde::Serialize;

/// How much a finding blocks the migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; the lowering handles it.
    Info,
    /// Behaviour changes or needs a choice; the lowering can proceed with a documented rule.
    Warning,
    /// Cannot be expressed in the target as is.
    Error,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// `bpf_sock_map_update` / `bpf_sock_hash_update`: not offered to struct_ops.
    SockmapUpdate,
    /// `bpf_get_socket_cookie(ctx)`: not offered to `bpf_tcp_ops`.
    SocketCookie,
    /// `bpf_get_netns_cookie(ctx)`: not offered; a BTF read can replace it.
    NetnsCookie,
    /// `bpf_perf_event_output`: not offered; a ring buffer can replace it.
    PerfOutput,
    /// `bpf_get_local_storage` (cgroup storage): no struct_ops equivalent.
    CgroupLocalStorage,
    /// `bpf_sock_ops_cb_flags_set` or `bpf_setsockopt(TCP_BPF_SOCK_OPS_CB_FLAGS)`.
    CbFlagsSet,
    /// A write of `sk_txhash`: `bpf_tcp_ops` members cannot write the socket.
    TxhashWrite,
    /// A write of `reply` in an op whose member returns nothing: only later programs saw it (as
    /// `args[0]`).
    ReplyWrite,
    /// RTO_CB's `args[2]` (`expired`) is not passed to `rto`.
    RtoExpired,
    /// A path returns 0 (a veto) in an op whose result the kernel uses.
    ReturnZeroVeto,
    /// The op fired only for sockets with a legacy cb flag set; the member is gated differently.
    CbFlagGating,
    /// A read that differs on the request-sock path (listener as `sk`, legacy NULL/0 fields).
    RequestSock,
    /// `bpf_load_hdr_opt(..., BPF_LOAD_HDR_OPT_TCP_SYN)`: flags must be 0 in `bpf_tcp_ops`.
    LoadHdrOptSyn,
    /// `bpf_getsockopt(TCP_BPF_SYN*)`: no replacement.
    GetsockoptSyn,
    /// A sock_ops helper that the target member does not offer.
    HelperUnavailable,
    /// The object's license is not GPL-compatible (struct_ops requires it).
    NonGplLicense,
    /// An op with its own behaviour but no member: it stays in a residual sock_ops program.
    ResidualOp,
    /// `args[]` reach the member in another form.
    ArgFromLegacy,
    /// `bpf_tail_call`: the op's behaviour continues in another program.
    TailCall,
    /// An op-derived value goes through memory the analysis does not follow (a map, global data).
    OpLost,
    /// The ctx pointer escapes into memory the analysis does not follow.
    CtxEscape,
    /// `bpf_cast_to_kern_ctx`: kernel ctx reads are not followed.
    KernCtx,
    /// Direct `skb_data` reads: members get an skb and read headers through helpers.
    PacketAccess,
    /// A callback that runs outside the op (timer).
    AsyncCallback,
    /// Ops above 20 (which the kernel never passes) do not all take the same path.
    OtherOpsDiffer,
    /// The program is malformed for the kernel (ctx offset, call depth, unresolved call, running
    /// off the end).
    Malformed,
}

/// Where a finding's instruction comes from in the source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SourceRef {
    pub file: String,
    pub line: u32,
    pub text: String,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub kind: FindingKind,
    /// The function holding the instruction.
    pub function: Option<String>,
    /// Slot from the function start.
    pub slot: Option<usize>,
    pub source: Option<SourceRef>,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(
            f,
            "{sev}[{}]",
            serde_json::to_value(self.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        )?;
        if let (Some(func), Some(slot)) = (&self.function, self.slot) {
            write!(f, " {func}+{slot}")?;
        }
        if let Some(s) = &self.source {
            write!(f, " ({}:{})", s.file, s.line)?;
        }
        write!(f, ": {}", self.message)
    }
}
