//! Per-op results of the interpreter, and the migration findings derived from them with the op
//! table.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::findings::{Finding, FindingKind, Severity, SourceRef};
use super::interp::{self, Event, Loc, Lost};
use super::opval::OpSet;
use super::{Module, callgraph::CallGraph};
use crate::obj::Object;
use crate::obj::disasm::FunctionLine;
use crate::optable::{self, OpInfo, ResultUse, SockKind, helper};

/// What the analysis needs besides the code: source lines and the license.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// BTF line info per function, in slot order (empty without `.BTF.ext`).
    pub lines: Vec<Vec<FunctionLine>>,
    pub license: Option<String>,
}

impl Env {
    pub fn from_object(obj: &Object) -> Env {
        Env {
            lines: (0..obj.functions.len())
                .map(|f| obj.function_lines(f))
                .collect(),
            license: obj.license.clone(),
        }
    }

    fn source(&self, loc: Loc) -> Option<SourceRef> {
        let lines = self.lines.get(loc.func)?;
        let k = lines.partition_point(|l| l.slot <= loc.slot);
        let l = lines.get(k.checked_sub(1)?)?;
        Some(SourceRef {
            file: l.file.clone(),
            line: l.line,
            text: l.text.trim().to_string(),
        })
    }
}

/// A value the program may produce: a constant or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum Value {
    Known(u64),
    Unknown(&'static str),
}

impl Value {
    fn of(v: Option<u64>) -> Value {
        v.map_or(Value::Unknown("unknown"), Value::Known)
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Known(v) if *v > 0xffff => write!(f, "{v:#x}"),
            Value::Known(v) => write!(f, "{v}"),
            Value::Unknown(s) => f.write_str(s),
        }
    }
}

/// What one op (or the "other" ops 21..=255) does in one program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpFacts {
    /// The op number; `None` for the other ops (21..=255).
    pub op: Option<u8>,
    /// `BPF_SOCK_OPS_*`, or `other` for 21..=255.
    pub name: String,
    /// The `bpf_tcp_ops` member, `None` for residual ops, VOID and the others.
    pub member: Option<&'static str>,
    /// Whether the op takes exactly the instructions of the other ops (the default path).
    pub default_path: bool,
    /// Reachable instructions (an `ld_imm64` counts once), across every function.
    pub insns: usize,
    pub fields_read: Vec<String>,
    pub fields_written: Vec<String>,
    pub helpers: Vec<String>,
    pub kfuncs: Vec<String>,
    /// Values written to `reply`.
    pub reply: Vec<Value>,
    /// The program's possible return values.
    pub returns: Vec<Value>,
    pub findings: Vec<Finding>,
}

/// The analysis of one program.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramFacts {
    pub name: String,
    /// Functions the program can run (itself first, then subprograms and callbacks).
    pub functions: Vec<String>,
    /// Ops 0..=20, then the other ops (21..=255).
    pub ops: Vec<OpFacts>,
    /// Ops (0..=20) whose instructions differ from the default path.
    pub own_behaviour: Vec<u8>,
    /// Ops (0..=20) that take the default path.
    pub shared_default: Vec<u8>,
    /// Findings about the program as a whole.
    pub findings: Vec<Finding>,
    /// Per function, per instruction index, the ops that run it.
    #[serde(skip)]
    pub reach: Vec<Vec<OpSet>>,
}

impl ProgramFacts {
    /// The instructions that run for `op`, per function: (function index, instruction indices).
    /// Ops above 20 are all the same to the kernel (never passed); ask for one of them or use
    /// [`other_ops`] with [`ProgramFacts::reachable_for`].
    pub fn reachable(&self, op: u8) -> Vec<(usize, Vec<usize>)> {
        self.reachable_for(OpSet::single(op))
    }

    /// The instructions that run for any op of `ops`, per function.
    pub fn reachable_for(&self, ops: OpSet) -> Vec<(usize, Vec<usize>)> {
        self.reach
            .iter()
            .enumerate()
            .filter_map(|(f, rs)| {
                let v: Vec<usize> = rs
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| !r.inter(ops).is_empty())
                    .map(|(i, _)| i)
                    .collect();
                (!v.is_empty()).then_some((f, v))
            })
            .collect()
    }
}

/// Ops the kernel never passes.
pub fn other_ops() -> OpSet {
    OpSet::range(optable::OP_COUNT, 255)
}

/// Runs the op analysis of the program whose entry is `entry`.
pub fn analyze_program(m: &Module, entry: usize, env: &Env) -> Result<ProgramFacts, String> {
    let it = interp::run(m, entry)?;
    let other = other_ops();

    // Which ops behave differently from the default path, in one pass over the reach sets:
    // they run other effectful instructions, or cause other events (helper arguments, return
    // values, ctx writes). Instructions that only dispatch on the op do not count: a switch
    // tree takes different compares for ops that all end up in `default:`.
    let mut differs = OpSet::EMPTY;
    let mut other_differs = OpSet::EMPTY;
    let mut note = |r: OpSet| {
        let any_other = !r.inter(other).is_empty();
        let d = if any_other { OpSet::ALL.minus(r) } else { r };
        differs = differs.union(d.minus(other));
        if any_other {
            other_differs = other_differs.union(other.minus(r));
        }
    };
    for (f, rs) in it.reach.iter().enumerate() {
        for (i, r) in rs.iter().enumerate() {
            if it.effectful[f][i] {
                note(*r);
            }
        }
    }
    for (e, s) in &it.events {
        if !matches!(e, Event::CtxRead { field: "op", .. }) {
            note(*s);
        }
    }

    let mut events: Vec<(&Event, OpSet)> = it.events.iter().map(|(e, s)| (e, *s)).collect();
    events.sort();

    let mut ops = Vec::new();
    for k in 0..=optable::OP_COUNT {
        let (set, info) = if k < optable::OP_COUNT {
            (OpSet::single(k), optable::op_info(k))
        } else {
            (other, None)
        };
        let insns = it
            .reach
            .iter()
            .flatten()
            .filter(|r| !r.inter(set).is_empty())
            .count();
        let default_path = info.is_some_and(|_| !differs.contains(k)) || info.is_none();
        ops.push(op_facts(m, env, &events, set, info, insns, default_path));
    }

    let own_behaviour: Vec<u8> = (0..optable::OP_COUNT)
        .filter(|&o| differs.contains(o))
        .collect();
    let shared_default: Vec<u8> = (0..optable::OP_COUNT)
        .filter(|&o| !differs.contains(o))
        .collect();
    let mut findings = Vec::new();
    if !is_gpl_compatible(env.license.as_deref()) {
        findings.push(Finding {
            severity: Severity::Error,
            kind: FindingKind::NonGplLicense,
            function: None,
            slot: None,
            source: None,
            message: format!(
                "license {:?} is not GPL-compatible: struct_ops programs must be",
                env.license.as_deref().unwrap_or("(none)")
            ),
        });
    }
    if !other_differs.is_empty() {
        let v: Vec<u8> = other_differs.iter().take(8).collect();
        findings.push(Finding {
            severity: Severity::Info,
            kind: FindingKind::OtherOpsDiffer,
            function: None,
            slot: None,
            source: None,
            message: format!(
                "ops above 20 do not all take the same path (e.g. {v:?}); the kernel never passes them"
            ),
        });
    }
    let functions = CallGraph::build(m)
        .reachable_from(entry)
        .into_iter()
        .filter(|&f| f != entry)
        .fold(vec![m.funcs[entry].name.clone()], |mut v, f| {
            v.push(m.funcs[f].name.clone());
            v
        });
    Ok(ProgramFacts {
        name: m.funcs[entry].name.clone(),
        functions,
        ops,
        own_behaviour,
        shared_default,
        findings,
        reach: it.reach,
    })
}

/// The licenses the kernel's `license_is_gpl_compatible` accepts.
pub fn is_gpl_compatible(l: Option<&str>) -> bool {
    matches!(
        l,
        Some(
            "GPL"
                | "GPL v2"
                | "GPL and additional rights"
                | "Dual BSD/GPL"
                | "Dual MIT/GPL"
                | "Dual MPL/GPL"
        )
    )
}

fn field_order(name: &str) -> (usize, String) {
    let pos = optable::CTX_FIELDS
        .iter()
        .position(|f| f.name == name || (name == "reply" && f.off == optable::REPLY_OFF));
    (pos.unwrap_or(usize::MAX), name.to_string())
}

fn sorted_fields(set: BTreeSet<String>) -> Vec<String> {
    let mut v: Vec<String> = set.into_iter().collect();
    v.sort_by_key(|n| field_order(n));
    v
}

fn op_facts(
    m: &Module,
    env: &Env,
    events: &[(&Event, OpSet)],
    set: OpSet,
    info: Option<&'static OpInfo>,
    insns: usize,
    default_path: bool,
) -> OpFacts {
    let mut read = BTreeSet::new();
    let mut written = BTreeSet::new();
    let mut helpers = BTreeSet::new();
    let mut kfuncs = BTreeSet::new();
    let mut reply = BTreeSet::new();
    let mut returns = BTreeSet::new();
    let mut fb = FindingBuilder {
        m,
        env,
        out: BTreeSet::new(),
        op_stores: events
            .iter()
            .filter_map(|(e, _)| match e {
                Event::OpStore { map, .. } => *map,
                _ => None,
            })
            .collect(),
        tail_calls: BTreeMap::new(),
    };
    let member = info.and_then(|i| i.member);
    for (e, s) in events {
        if s.inter(set).is_empty() {
            continue;
        }
        match e {
            Event::CtxRead { field, .. } => {
                read.insert(field.to_string());
            }
            Event::CtxWrite { field, value, .. } => {
                written.insert(field.to_string());
                if *field == "reply" {
                    reply.insert(Value::of(*value));
                }
            }
            Event::SockRead { field, .. } => {
                read.insert(format!("sk->{field}"));
            }
            Event::PacketRead { .. } => {
                read.insert("skb_data[]".to_string());
            }
            Event::Helper { id, .. } => {
                helpers.insert(
                    crate::uapi::helper_name(*id)
                        .map_or_else(|| format!("helper#{id}"), str::to_string),
                );
            }
            Event::Kfunc { name, .. } => {
                kfuncs.insert(name.clone());
            }
            Event::Return { value } => {
                returns.insert(Value::of(*value));
            }
            _ => {}
        }
        fb.event(e, info);
    }
    fb.tail_call_findings();
    if let Some(i) = info {
        // A default path that does something still moves into the member (and changes with
        // its gate and return); one that does nothing needs no member.
        let effects = !written.is_empty()
            || events.iter().any(|(e, s)| {
                !s.inter(set).is_empty()
                    && match e {
                        Event::MemWrite { .. } | Event::TailCall { .. } => true,
                        Event::Helper { id, args, .. } => !optable::helper::is_pure(*id, args),
                        Event::Kfunc { name, .. } => {
                            !matches!(name.as_str(), "bpf_cast_to_kern_ctx" | "bpf_rdonly_cast")
                        }
                        _ => false,
                    }
            });
        fb.per_op(i, default_path && !effects, &returns, &read);
    }
    OpFacts {
        op: info.map(|i| i.op),
        name: info.map_or("other".to_string(), |i| i.name.to_string()),
        member: member.map(|m| m.name),
        default_path,
        insns,
        fields_read: sorted_fields(read),
        fields_written: sorted_fields(written),
        helpers: helpers.into_iter().collect(),
        kfuncs: kfuncs.into_iter().collect(),
        reply: reply.into_iter().collect(),
        returns: returns.into_iter().collect(),
        findings: fb.out.into_iter().collect(),
    }
}

struct FindingBuilder<'a> {
    m: &'a Module,
    env: &'a Env,
    out: BTreeSet<Finding>,
    /// Map fields (map, offset) that op-dependent values are stored into, anywhere in the
    /// program.
    op_stores: BTreeSet<(u32, i64)>,
    /// Tail-call sites with the slot indices they use for the ops at hand (`None`: not known
    /// at compile time); one finding per site.
    tail_calls: BTreeMap<(Loc, Option<u32>), BTreeSet<Option<u64>>>,
}

impl FindingBuilder<'_> {
    fn tail_call_findings(&mut self) {
        for ((loc, map), indices) in std::mem::take(&mut self.tail_calls) {
            let mi = map.and_then(|i| self.m.maps.get(i as usize));
            let known: Vec<u64> = indices.iter().flatten().copied().collect();
            let target = if indices.contains(&None) {
                "a slot not known at compile time".to_string()
            } else if let [ix] = known[..] {
                match mi.and_then(|mi| mi.programs.iter().find(|(i, _)| u64::from(*i) == ix)) {
                    Some((_, p)) => format!("program `{p}` (slot {ix})"),
                    None if mi.is_some() => format!("slot {ix} (no program there at load time)"),
                    None => format!("slot {ix}"),
                }
            } else {
                let progs: Vec<String> = mi
                    .map(|mi| {
                        mi.programs
                            .iter()
                            .filter(|(i, _)| known.contains(&u64::from(*i)))
                            .map(|(i, p)| format!("`{p}` (slot {i})"))
                            .collect()
                    })
                    .unwrap_or_default();
                format!(
                    "{} slots ({}..={}), {}",
                    known.len(),
                    known[0],
                    known[known.len() - 1],
                    if progs.is_empty() {
                        "none with a program at load time".to_string()
                    } else {
                        format!("with programs {}", progs.join(", "))
                    }
                )
            };
            self.push(
                Severity::Warning,
                FindingKind::TailCall,
                Some(loc),
                format!(
                    "tail call through {} to {target}: the op continues in another program",
                    mi.map_or("a prog array".to_string(), |m| format!("`{}`", m.name))
                ),
            );
        }
    }

    fn push(&mut self, severity: Severity, kind: FindingKind, loc: Option<Loc>, message: String) {
        self.out.insert(Finding {
            severity,
            kind,
            function: loc.map(|l| self.m.funcs[l.func].name.clone()),
            slot: loc.map(|l| l.slot),
            source: loc.and_then(|l| self.env.source(l)),
            message,
        });
    }

    /// Findings from one event. Migration findings only concern ops that get a member; what
    /// stays in the residual program (or never runs) keeps working as it is.
    fn event(&mut self, e: &Event, info: Option<&'static OpInfo>) {
        use FindingKind as K;
        use Severity::*;
        match e {
            Event::Lost { kind, loc } => {
                let (sev, k, msg) = match kind {
                    Lost::CtxEscape => (
                        Warning,
                        K::CtxEscape,
                        "the ctx pointer is stored into memory the analysis does not follow",
                    ),
                    Lost::KernCtx => (
                        Warning,
                        K::KernCtx,
                        "bpf_cast_to_kern_ctx: reads through the kernel ctx (skb, syn_skb, op) are not followed",
                    ),
                    Lost::CtxOffset => (
                        Error,
                        K::Malformed,
                        "ctx access outside struct bpf_sock_ops",
                    ),
                    Lost::CallDepth => (Error, K::Malformed, "more than 8 nested call frames"),
                    Lost::AsyncCallback => (
                        Warning,
                        K::AsyncCallback,
                        "a timer callback runs later, outside any op",
                    ),
                    Lost::UnresolvedCall => (
                        Error,
                        K::Malformed,
                        "a call whose target is not a function of the object",
                    ),
                    Lost::FallOff => (
                        Error,
                        K::Malformed,
                        "execution runs past the last instruction of the function",
                    ),
                    Lost::GlobalArg => (
                        Info,
                        K::OpLost,
                        "an op-dependent value is passed to a global function: the kernel verifies it with unknown arguments, so its tests of that value run for every op that calls it",
                    ),
                };
                self.push(sev, k, Some(*loc), msg.to_string());
            }
            Event::OpStore { map, loc, .. } => self.push(
                Info,
                K::OpLost,
                Some(*loc),
                format!(
                    "an op-dependent value is stored into {}; a later read of it is unknown to the analysis",
                    map.and_then(|(m, _)| self.m.maps.get(m as usize))
                        .map_or("global data or memory it does not follow".to_string(), |m| {
                            format!("map `{}`", m.name)
                        })
                ),
            ),
            Event::MapBranch { map, off, loc }
                if self
                    .op_stores
                    .iter()
                    .any(|&(m, o)| m == *map && super::opval::may_alias(o, *off)) =>
            {
                self.push(
                Warning,
                K::OpLost,
                Some(*loc),
                format!(
                    "the op round-trips through map `{}`: this branch tests a field of it that op-dependent values are stored into; it is taken both ways for every op that reaches it",
                    self.m.maps.get(*map as usize).map_or("?", |m| m.name.as_str())
                ),
            );
            }
            Event::TailCall { loc, map, index } => {
                let e = self.tail_calls.entry((*loc, *map)).or_default();
                e.insert(*index);
            }
            Event::CtxWrite { field, loc, .. } if *field != "reply" && *field != "sk_txhash" => self
                .push(
                    Error,
                    K::Malformed,
                    Some(*loc),
                    format!(
                        "write of ctx field {field}: only reply and sk_txhash are writable (the verifier rejects it)"
                    ),
                ),
            _ => {}
        }
        let Some(info) = info else { return };
        let Some(member) = info.member else { return };
        match e {
            Event::Helper { id, loc, args, .. } => self.helper(info, member.name, *id, *loc, args),
            Event::Kfunc { name, loc } if name == "bpf_sock_ops_enable_tx_tstamp" => self.push(
                Error,
                K::HelperUnavailable,
                Some(*loc),
                format!("kfunc {name} is refused for struct_ops"),
            ),
            Event::CtxWrite { field, loc, .. } if *field == "sk_txhash" => self.push(
                Error,
                K::TxhashWrite,
                Some(*loc),
                "write of sk_txhash: bpf_tcp_ops members cannot write the socket (no btf_struct_access)".to_string(),
            ),
            Event::CtxWrite { field, loc, .. }
                if *field == "reply" && !matches!(info.result, ResultUse::Reply) =>
            {
                self.push(
                    Info,
                    K::ReplyWrite,
                    Some(*loc),
                    "reply written in an op whose bpf_tcp_ops member returns void: only later programs (reading args[0]) saw it".to_string(),
                )
            }
            Event::CtxRead { field, loc } => {
                if info.op == 8 && *field == "args[2]" {
                    self.push(
                        Error,
                        K::RtoExpired,
                        Some(*loc),
                        "RTO_CB args[2] (expired) is not passed to `rto` (a local in tcp_write_timeout)"
                            .into(),
                    );
                } else if let Some(k) = field
                    .strip_prefix("args[")
                    .and_then(|s| s[..1].parse::<usize>().ok())
                {
                    let what = if k < info.args.len() {
                        format!(
                            "{field} ({}) reaches `{}` as: {}",
                            info.args[k], member.name, member.args_from_legacy
                        )
                    } else if k == 0 {
                        format!(
                            "args[0] without kernel arguments reads the reply of earlier programs{}",
                            if matches!(info.op, 1 | 2) {
                                ": bpf_get_retval() in the member"
                            } else {
                                "; members have no equivalent"
                            }
                        )
                    } else {
                        format!("{field} is always 0 in this op")
                    };
                    self.push(Info, K::ArgFromLegacy, Some(*loc), what);
                }
                if info.sock == SockKind::MaybeRequest
                    && let Some(fl) = optable::CTX_FIELDS.iter().find(|f| f.name == *field)
                    && (fl.guard != optable::Guard::None || fl.name == "is_fullsock")
                {
                    self.push(
                        Warning,
                        K::RequestSock,
                        Some(*loc),
                        format!(
                            "{field} read in an op that also runs for request socks: legacy read {} there; the member gets the listener as sk and the request as req",
                            if fl.name == "rtt_min" {
                                "out of bounds"
                            } else {
                                "0/NULL"
                            },
                        ),
                    );
                }
            }
            Event::SockRead { field, loc } if info.sock == SockKind::MaybeRequest => self.push(
                Warning,
                K::RequestSock,
                Some(*loc),
                format!(
                    "skops->sk->{field} read in an op that also runs for request socks (skops->sk was NULL there); the member gets the listener as sk"
                ),
            ),
            Event::PacketRead { loc } => self.push(
                Warning,
                K::PacketAccess,
                Some(*loc),
                "direct skb_data read: bpf_tcp_ops members cannot access packet data directly; read the header through a helper".to_string(),
            ),
            _ => {}
        }
    }

    fn helper(&mut self, info: &OpInfo, member: &str, id: i32, loc: Loc, args: &[Option<u64>; 5]) {
        use FindingKind as K;
        use Severity::*;
        let name = crate::uapi::helper_name(id).unwrap_or("helper");
        let specific = match id {
            helper::SOCK_MAP_UPDATE | helper::SOCK_HASH_UPDATE => Some((
                Error,
                K::SockmapUpdate,
                format!("{name}: no struct_ops equivalent (needs a kfunc taking struct sock *)"),
            )),
            helper::GET_SOCKET_COOKIE => Some((
                Error,
                K::SocketCookie,
                format!("{name}(ctx): not offered to bpf_tcp_ops (the cookie is created lazily; a raw read is not equivalent)"),
            )),
            helper::GET_NETNS_COOKIE => Some((
                Warning,
                K::NetnsCookie,
                format!("{name}(ctx): not offered; read sk->__sk_common.skc_net.net->net_cookie through BTF"),
            )),
            helper::PERF_EVENT_OUTPUT => Some((
                Error,
                K::PerfOutput,
                format!("{name}: not offered to struct_ops; use a ring buffer"),
            )),
            helper::GET_LOCAL_STORAGE => Some((
                Error,
                K::CgroupLocalStorage,
                format!("{name}: cgroup storage of the attached program has no struct_ops equivalent"),
            )),
            helper::SOCK_OPS_CB_FLAGS_SET => Some((
                Warning,
                K::CbFlagsSet,
                format!(
                    "{name}: bpf_tcp_ops has no cb flags (members are presence-gated; R6/R7 use bpf_tcp_ops_set_flags){}",
                    args[1].map_or(String::new(), |f| format!("; flags {f:#x}"))
                ),
            )),
            helper::SETSOCKOPT if args[1] == Some(6) && args[2] == Some(1008) => Some((
                Warning,
                K::CbFlagsSet,
                "bpf_setsockopt(TCP_BPF_SOCK_OPS_CB_FLAGS): legacy cb flags do not gate bpf_tcp_ops members".into(),
            )),
            helper::GETSOCKOPT if args[1] == Some(6) && matches!(args[2], Some(1005..=1007)) => Some((
                Error,
                K::GetsockoptSyn,
                "bpf_getsockopt(TCP_BPF_SYN*): no bpf_tcp_ops replacement (needs the SYN)".into(),
            )),
            helper::LOAD_HDR_OPT if args[3] != Some(0) => Some((
                if args[3] == Some(1) { Error } else { Warning },
                K::LoadHdrOptSyn,
                match args[3] {
                    Some(1) => "bpf_load_hdr_opt(BPF_LOAD_HDR_OPT_TCP_SYN): bpf_tcp_ops requires flags == 0".to_string(),
                    _ => "bpf_load_hdr_opt with flags not known at compile time: bpf_tcp_ops requires flags == 0".to_string(),
                },
            )),
            _ => None,
        };
        if let Some((sev, kind, msg)) = specific {
            self.push(sev, kind, Some(loc), msg);
        }
        if let Some(rule) = optable::helper_rule(id)
            && !rule.members.is_empty()
            && !rule.members.contains(&member)
        {
            self.push(
                Error,
                K::HelperUnavailable,
                Some(loc),
                format!("{name} is not offered in `{member}` ({})", rule.note),
            );
        } else if id == helper::TCP_SOCK {
            self.push(
                Info,
                K::HelperUnavailable,
                Some(loc),
                format!("{name}: not offered; `{member}` gets a trusted struct tcp_sock *"),
            );
        }
        let _ = info;
    }

    /// Findings of the op as a whole. `idle`: the op takes a default path that does nothing
    /// (no member is needed for it).
    fn per_op(
        &mut self,
        info: &'static OpInfo,
        idle: bool,
        returns: &BTreeSet<Value>,
        _read: &BTreeSet<String>,
    ) {
        use FindingKind as K;
        use Severity::*;
        if idle {
            return;
        }
        let Some(member) = info.member else {
            if info.op != 0 {
                self.push(
                    Info,
                    K::ResidualOp,
                    None,
                    format!(
                        "{} does something but has no bpf_tcp_ops member ({}): it stays in a residual sock_ops program",
                        info.short_name(),
                        info.residual_reason.unwrap_or("no member")
                    ),
                );
            }
            return;
        };
        if info.result.veto_matters() {
            let zero = returns.contains(&Value::Known(0));
            let unknown = returns.iter().any(|v| matches!(v, Value::Unknown(_)));
            if zero || unknown {
                let (sev, how) = match info.result {
                    ResultUse::Reply | ResultUse::ReplyBool => (
                        Warning,
                        format!("lowered as `{}` returning the kernel default", member.name),
                    ),
                    _ => (
                        Error,
                        format!("`{}` returns void and cannot veto", member.name),
                    ),
                };
                self.push(
                    sev,
                    K::ReturnZeroVeto,
                    None,
                    format!(
                        "the program {} 0 in {} (veto: {}); {how}",
                        if zero { "returns" } else { "may return" },
                        info.short_name(),
                        info.result_meaning
                    ),
                );
            }
        }
        if info.cb_gated() {
            self.push(
                Warning,
                K::CbFlagGating,
                None,
                format!(
                    "{} fired only when {}; `{}` is {}",
                    info.short_name(),
                    info.gate.describe(),
                    member.name,
                    match member.gate {
                        optable::MemberGate::Presence =>
                            "called for every socket of the cgroup (no flag)".to_string(),
                        optable::MemberGate::TcpOpsFlag(f) =>
                            format!("presence-gated in R3, gated by {f} in R6/R7"),
                        optable::MemberGate::Reserved =>
                            "called when bytes were reserved (R6/R7: and BPF_TCP_OPS_FLAG_WRITE_HDR_OPT)".to_string(),
                    }
                ),
            );
        }
    }
}
