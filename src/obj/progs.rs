//! Program types from section names, following libbpf 1.x's `SEC()` conventions.

/// A kernel program type (`enum bpf_prog_type`), as libbpf derives it from the section name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProgramType {
    SocketFilter,
    Kprobe,
    SchedCls,
    SchedAct,
    Tracepoint,
    Xdp,
    PerfEvent,
    CgroupSkb,
    CgroupSock,
    LwtIn,
    LwtOut,
    LwtXmit,
    SockOps,
    SkSkb,
    CgroupDevice,
    SkMsg,
    RawTracepoint,
    CgroupSockAddr,
    LwtSeg6Local,
    LircMode2,
    SkReuseport,
    FlowDissector,
    CgroupSysctl,
    RawTracepointWritable,
    CgroupSockopt,
    /// fentry/fexit/fmod_ret/tp_btf/iter.
    Tracing,
    StructOps,
    /// freplace.
    Ext,
    Lsm,
    SkLookup,
    Syscall,
    Netfilter,
    /// A section name libbpf does not recognise.
    Unknown(String),
}

/// How a table entry matches a section name.
#[derive(Clone, Copy)]
enum Match {
    /// The whole name.
    Exact,
    /// The name, or the name followed by `/` and anything (libbpf's `+` entries).
    Slash,
}

use Match::*;
use ProgramType::*;

// Order matters where one entry is a prefix of another: longer first.
const TABLE: &[(&str, Match, ProgramType)] = &[
    ("socket", Exact, SocketFilter),
    ("sk_reuseport/migrate", Exact, SkReuseport),
    ("sk_reuseport", Exact, SkReuseport),
    ("kprobe.multi", Slash, Kprobe),
    ("kretprobe.multi", Slash, Kprobe),
    ("kprobe.session", Slash, Kprobe),
    ("uprobe.multi.s", Slash, Kprobe),
    ("uprobe.multi", Slash, Kprobe),
    ("uretprobe.multi.s", Slash, Kprobe),
    ("uretprobe.multi", Slash, Kprobe),
    ("uprobe.session.s", Slash, Kprobe),
    ("uprobe.session", Slash, Kprobe),
    ("kprobe", Slash, Kprobe),
    ("kretprobe", Slash, Kprobe),
    ("uprobe.s", Slash, Kprobe),
    ("uprobe", Slash, Kprobe),
    ("uretprobe.s", Slash, Kprobe),
    ("uretprobe", Slash, Kprobe),
    ("ksyscall", Slash, Kprobe),
    ("kretsyscall", Slash, Kprobe),
    ("usdt", Slash, Kprobe),
    ("tc/ingress", Exact, SchedCls),
    ("tc/egress", Exact, SchedCls),
    ("tcx/ingress", Exact, SchedCls),
    ("tcx/egress", Exact, SchedCls),
    ("netkit/primary", Exact, SchedCls),
    ("netkit/peer", Exact, SchedCls),
    ("tc", Exact, SchedCls),
    ("classifier", Exact, SchedCls),
    ("action", Exact, SchedAct),
    ("tracepoint", Slash, Tracepoint),
    ("tp", Slash, Tracepoint),
    ("raw_tracepoint.w", Slash, RawTracepointWritable),
    ("raw_tp.w", Slash, RawTracepointWritable),
    ("raw_tracepoint", Slash, RawTracepoint),
    ("raw_tp", Slash, RawTracepoint),
    ("tp_btf", Slash, Tracing),
    ("fentry.s", Slash, Tracing),
    ("fmod_ret.s", Slash, Tracing),
    ("fexit.s", Slash, Tracing),
    ("fentry", Slash, Tracing),
    ("fmod_ret", Slash, Tracing),
    ("fexit", Slash, Tracing),
    ("iter.s", Slash, Tracing),
    ("iter", Slash, Tracing),
    ("freplace", Slash, Ext),
    ("lsm.s", Slash, Lsm),
    ("lsm_cgroup", Slash, Lsm),
    ("lsm", Slash, Lsm),
    ("syscall", Exact, Syscall),
    ("xdp.frags/devmap", Exact, Xdp),
    ("xdp/devmap", Exact, Xdp),
    ("xdp.frags/cpumap", Exact, Xdp),
    ("xdp/cpumap", Exact, Xdp),
    ("xdp.frags", Exact, Xdp),
    ("xdp", Exact, Xdp),
    ("perf_event", Exact, PerfEvent),
    ("lwt_in", Exact, LwtIn),
    ("lwt_out", Exact, LwtOut),
    ("lwt_xmit", Exact, LwtXmit),
    ("lwt_seg6local", Exact, LwtSeg6Local),
    // libbpf 1.x accepts only the exact name; `sockops/<name>` is the pre-1.0 spelling that legacy
    // objects still carry, and opsplit reads them (it rewrites them anyway).
    ("sockops", Slash, SockOps),
    ("sk_skb/stream_parser", Exact, SkSkb),
    ("sk_skb/stream_verdict", Exact, SkSkb),
    ("sk_skb/verdict", Exact, SkSkb),
    ("sk_skb", Exact, SkSkb),
    ("sk_msg", Exact, SkMsg),
    ("lirc_mode2", Exact, LircMode2),
    ("flow_dissector", Exact, FlowDissector),
    ("cgroup_skb/ingress", Exact, CgroupSkb),
    ("cgroup_skb/egress", Exact, CgroupSkb),
    ("cgroup/skb", Exact, CgroupSkb),
    ("cgroup/sock_create", Exact, CgroupSock),
    ("cgroup/sock_release", Exact, CgroupSock),
    ("cgroup/sock", Exact, CgroupSock),
    ("cgroup/post_bind4", Exact, CgroupSock),
    ("cgroup/post_bind6", Exact, CgroupSock),
    ("cgroup/bind4", Exact, CgroupSockAddr),
    ("cgroup/bind6", Exact, CgroupSockAddr),
    ("cgroup/connect4", Exact, CgroupSockAddr),
    ("cgroup/connect6", Exact, CgroupSockAddr),
    ("cgroup/connect_unix", Exact, CgroupSockAddr),
    ("cgroup/sendmsg4", Exact, CgroupSockAddr),
    ("cgroup/sendmsg6", Exact, CgroupSockAddr),
    ("cgroup/sendmsg_unix", Exact, CgroupSockAddr),
    ("cgroup/recvmsg4", Exact, CgroupSockAddr),
    ("cgroup/recvmsg6", Exact, CgroupSockAddr),
    ("cgroup/recvmsg_unix", Exact, CgroupSockAddr),
    ("cgroup/getpeername4", Exact, CgroupSockAddr),
    ("cgroup/getpeername6", Exact, CgroupSockAddr),
    ("cgroup/getpeername_unix", Exact, CgroupSockAddr),
    ("cgroup/getsockname4", Exact, CgroupSockAddr),
    ("cgroup/getsockname6", Exact, CgroupSockAddr),
    ("cgroup/getsockname_unix", Exact, CgroupSockAddr),
    ("cgroup/sysctl", Exact, CgroupSysctl),
    ("cgroup/getsockopt", Exact, CgroupSockopt),
    ("cgroup/setsockopt", Exact, CgroupSockopt),
    ("cgroup/dev", Exact, CgroupDevice),
    ("struct_ops.s", Slash, StructOps),
    ("struct_ops", Slash, StructOps),
    ("sk_lookup", Exact, SkLookup),
    ("netfilter", Exact, Netfilter),
];

/// The program type of a code section, as libbpf derives it from the section name; names libbpf
/// does not know give [`ProgramType::Unknown`].
pub fn program_type(section: &str) -> ProgramType {
    for (pat, m, ty) in TABLE {
        let hit = match m {
            Exact => section == *pat,
            Slash => {
                section == *pat
                    || section
                        .strip_prefix(pat)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        };
        if hit {
            return ty.clone();
        }
    }
    Unknown(section.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_names_map_like_libbpf() {
        assert_eq!(program_type("sockops"), SockOps);
        assert_eq!(program_type("sockops/legacy"), SockOps);
        assert_eq!(program_type("sk_msg"), SkMsg);
        assert_eq!(program_type("sk_skb/stream_verdict"), SkSkb);
        assert_eq!(program_type("struct_ops/cwnd"), StructOps);
        assert_eq!(program_type("struct_ops.s/x"), StructOps);
        assert_eq!(program_type("struct_ops"), StructOps);
        assert_eq!(program_type("kprobe/tcp_connect"), Kprobe);
        assert_eq!(program_type("kprobe.multi/tcp_*"), Kprobe);
        assert_eq!(program_type("tracepoint/sched/sched_switch"), Tracepoint);
        assert_eq!(program_type("tp_btf/sched_switch"), Tracing);
        assert_eq!(program_type("tc"), SchedCls);
        assert_eq!(program_type("classifier"), SchedCls);
        assert_eq!(program_type("xdp"), Xdp);
        assert_eq!(program_type("cgroup_skb/egress"), CgroupSkb);
        assert_eq!(program_type("cgroup/connect4"), CgroupSockAddr);
        assert_eq!(program_type("socket"), SocketFilter);
        assert_eq!(program_type("fexit/tcp_close"), Tracing);
        assert_eq!(program_type("iter/task"), Tracing);
        assert_eq!(program_type("lsm/file_open"), Lsm);
        assert_eq!(program_type("sk_lookup"), SkLookup);
        assert_eq!(program_type("flow_dissector"), FlowDissector);
        assert_eq!(program_type("syscall"), Syscall);
        // Prefixes without the separator are not matches: libbpf 1.x dropped sloppy matching.
        assert_eq!(program_type("kprobex"), Unknown("kprobex".into()));
        assert_eq!(program_type("xdp_foo"), Unknown("xdp_foo".into()));
        assert_eq!(program_type("sockopsfoo"), Unknown("sockopsfoo".into()));
    }
}
