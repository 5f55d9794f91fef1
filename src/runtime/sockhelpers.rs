//! The sock_ops helpers and kfuncs (semantics spec §4), with the kernel's per-op availability
//! and errors, on a simulated socket ([`SockState`]) that outlives one hook call.
//!
//! While [`Machine::run_hook`] runs a cgroup's programs, [`Machine::hook`] holds the call's
//! kernel-side state ([`HookState`]: op, full/locked, the socket's state, the SYN, the header
//! option space); helpers read and change it, and the caller gets the socket state back
//! afterwards. A helper the kernel does not offer to sock_ops is not in [`sock_ops_table`], so a
//! program calling it fails to load, as in the kernel.

use std::collections::BTreeMap;

use super::helpers::{HelperError, HelperFn, HelperTable, helper_id, map_arg};
use super::kernel::layout;
use super::maps::Storage;
use super::memory::{RegionKind, pointer, split_pointer};
use super::sockops::op;
use super::{FaultKind, Machine};

const EPERM: i64 = 1;
const ENOENT: i64 = 2;
const E2BIG: i64 = 7;
const EFAULT: i64 = 14;
const EEXIST: i64 = 17;
const EINVAL: i64 = 22;
const ENOSPC: i64 = 28;
const ENOMSG: i64 = 42;
const EOPNOTSUPP: i64 = 95;
/// The kernel-internal `ENOTSUPP` (524), which `bpf_setsockopt` returns for `cdg`.
const ENOTSUPP: i64 = 524;

fn neg(e: i64) -> u64 {
    (-e) as u64
}

/// Socket option levels and names (UAPI).
pub mod sockopt {
    pub const SOL_SOCKET: i32 = 1;
    pub const SOL_IP: i32 = 0;
    pub const SOL_TCP: i32 = 6;
    pub const SOL_IPV6: i32 = 41;

    pub const SO_REUSEADDR: i32 = 2;
    pub const SO_SNDBUF: i32 = 7;
    pub const SO_RCVBUF: i32 = 8;
    pub const SO_KEEPALIVE: i32 = 9;
    pub const SO_PRIORITY: i32 = 12;
    pub const SO_REUSEPORT: i32 = 15;
    pub const SO_RCVLOWAT: i32 = 18;
    pub const SO_BINDTODEVICE: i32 = 25;
    pub const SO_MARK: i32 = 36;
    pub const SO_MAX_PACING_RATE: i32 = 47;
    pub const SO_BINDTOIFINDEX: i32 = 62;
    pub const SO_TXREHASH: i32 = 74;
    pub const SK_BPF_CB_FLAGS: i32 = 1009;

    pub const IP_TOS: i32 = 1;
    pub const IPV6_TCLASS: i32 = 67;
    pub const IPV6_AUTOFLOWLABEL: i32 = 70;

    pub const TCP_NODELAY: i32 = 1;
    pub const TCP_MAXSEG: i32 = 2;
    pub const TCP_KEEPIDLE: i32 = 4;
    pub const TCP_KEEPINTVL: i32 = 5;
    pub const TCP_KEEPCNT: i32 = 6;
    pub const TCP_SYNCNT: i32 = 7;
    pub const TCP_WINDOW_CLAMP: i32 = 10;
    pub const TCP_CONGESTION: i32 = 13;
    pub const TCP_THIN_LINEAR_TIMEOUTS: i32 = 16;
    pub const TCP_USER_TIMEOUT: i32 = 18;
    pub const TCP_NOTSENT_LOWAT: i32 = 25;
    pub const TCP_SAVE_SYN: i32 = 27;
    pub const TCP_SAVED_SYN: i32 = 28;
    pub const TCP_RTO_MAX_MS: i32 = 44;
    pub const TCP_BPF_IW: i32 = 1001;
    pub const TCP_BPF_SNDCWND_CLAMP: i32 = 1002;
    pub const TCP_BPF_DELACK_MAX: i32 = 1003;
    pub const TCP_BPF_RTO_MIN: i32 = 1004;
    pub const TCP_BPF_SYN: i32 = 1005;
    pub const TCP_BPF_SYN_IP: i32 = 1006;
    pub const TCP_BPF_SYN_MAC: i32 = 1007;
    pub const TCP_BPF_SOCK_OPS_CB_FLAGS: i32 = 1008;
}
use sockopt::*;

/// `sysctl net.core.wmem_max` / `rmem_max` on the target (4 MiB here).
pub const WMEM_MAX: i32 = 4_194_304;
pub const RMEM_MAX: i32 = 4_194_304;
/// `TCP_SKB_MIN_TRUESIZE`: 2048 + `SKB_DATA_ALIGN(sizeof(struct sk_buff))`.
const TCP_SKB_MIN_TRUESIZE: i32 = 2048 + 256;
const SOCK_MIN_SNDBUF: i32 = 2 * TCP_SKB_MIN_TRUESIZE;
const SOCK_MIN_RCVBUF: i32 = TCP_SKB_MIN_TRUESIZE;
/// Congestion controls built in or loaded on the target (`tcp_available_congestion_control`).
pub const AVAILABLE_CC: &[&str] = &["reno", "bbr", "cubic"];

/// The simulated socket: everything helpers change that later calls can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockState {
    /// The socket cookie (virtual, given by the scenario).
    pub cookie: u64,
    pub family: u16,
    /// `tcp_sock.bpf_sock_ops_cb_flags`.
    pub cb_flags: u8,
    /// `sk->sk_bpf_cb_flags` (`SK_BPF_CB_TX_TIMESTAMPING`).
    pub sk_bpf_cb_flags: u8,
    pub congestion: String,
    pub sndbuf: i32,
    pub rcvbuf: i32,
    pub window_clamp: i32,
    pub snd_cwnd: u32,
    pub snd_cwnd_clamp: u32,
    pub snd_ssthresh: u32,
    /// Data segments sent (`TCP_BPF_IW` only works before any).
    pub data_segs_out: u32,
    /// `icsk_rto_min` and `icsk_delack_max` in µs.
    pub rto_min_us: i32,
    pub delack_max_us: i32,
    /// Other int options by (level, name), as last set.
    pub opts: BTreeMap<(i32, i32), i32>,
    /// The saved SYN (`struct saved_syn`: `req->saved_syn` on a request sock, moved to the
    /// child's `tcp_sk->saved_syn` by `tcp_move_syn`), kept when the listener had
    /// `TCP_SAVE_SYN` set.
    pub saved_syn: Option<Syn>,
}

/// A received SYN's headers as the kernel keeps them (`syn_skb`, or `struct saved_syn`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Syn {
    /// The link-layer header; empty when not kept (`TCP_SAVE_SYN` 1 saves from the network
    /// header on).
    pub mac: Vec<u8>,
    /// The IPv4 or IPv6 header.
    pub ip: Vec<u8>,
    /// The TCP header with its options.
    pub tcp: Vec<u8>,
}

impl Default for SockState {
    fn default() -> Self {
        SockState {
            cookie: 0,
            family: 2,
            cb_flags: 0,
            sk_bpf_cb_flags: 0,
            congestion: "bbr".into(),
            sndbuf: 16384,
            rcvbuf: 131072,
            window_clamp: 65535,
            snd_cwnd: 10,
            snd_cwnd_clamp: u32::MAX >> 1,
            snd_ssthresh: 0x7fff_ffff,
            data_segs_out: 0,
            rto_min_us: 200_000,
            delack_max_us: 200_000,
            opts: BTreeMap::new(),
            saved_syn: None,
        }
    }
}

/// Kernel-side state of the hook call being run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HookState {
    pub op: u32,
    /// `sk_fullsock(sk)`.
    pub full: bool,
    /// `is_locked_tcp_sock`.
    pub locked: bool,
    /// `sk_state` of the socket.
    pub state: u8,
    /// The full socket (or, for a request sock, the request sock's own cookie and family).
    pub sock: SockState,
    /// `syn_skb` (SYN-ACK header option ops).
    pub syn: Option<Syn>,
    /// The current skb's TCP header with options, when the call has an skb.
    pub header: Option<Vec<u8>>,
    /// The skb's sequence number and length (`TCP_SKB_CB(skb)->seq`, `skb->len`).
    pub skb_seq: u32,
    pub skb_len: u32,
    /// `tskey` in the skb's shared info (set when the skb was armed for TX timestamps).
    pub tskey: u32,
    /// `bpf_sock_ops_enable_tx_tstamp` armed the skb.
    pub tx_armed: bool,
    /// `remaining_opt_len`.
    pub remaining_opt_len: u32,
    /// Option bytes reserved in HDR_OPT_LEN (sum of successful reservations).
    pub reserved: u32,
    /// Options stored by WRITE_HDR_OPT, in order.
    pub written: Vec<u8>,
    pub netns_cookie: u64,
    /// Lazily created simulated objects: `bpf_sock_ops_kern`, `tcp_sock`, `bpf_tcp_sock`.
    pub objects: Vec<super::RegionId>,
    pub(crate) kctx: u64,
    pub(crate) tcp_sock: u64,
    pub(crate) bpf_tcp_sock: u64,
}

/// The helpers and kfuncs the kernel offers to sock_ops, as far as the runtime models them.
pub fn sock_ops_table() -> HelperTable {
    let mut t = HelperTable::generic();
    let entries: [(&str, u8, HelperFn); 14] = [
        ("bpf_setsockopt", 5, setsockopt),
        ("bpf_getsockopt", 5, getsockopt),
        ("bpf_sock_ops_cb_flags_set", 2, cb_flags_set),
        ("bpf_get_socket_cookie", 1, get_socket_cookie),
        ("bpf_get_netns_cookie", 1, get_netns_cookie),
        ("bpf_sk_storage_get", 4, sk_storage_get),
        ("bpf_sk_storage_delete", 2, sk_storage_delete),
        ("bpf_sock_map_update", 4, sock_map_update),
        ("bpf_sock_hash_update", 4, sock_map_update),
        ("bpf_reserve_hdr_opt", 3, reserve_hdr_opt),
        ("bpf_store_hdr_opt", 4, store_hdr_opt),
        ("bpf_load_hdr_opt", 4, load_hdr_opt),
        ("bpf_tcp_sock", 1, tcp_sock),
        ("bpf_get_local_storage", 2, get_local_storage),
    ];
    for (name, args, f) in entries {
        let id = helper_id(name).expect("helper names come from the UAPI table");
        t.insert_helper(id, name, args, f);
    }
    t.insert_helper(
        helper_id("bpf_skc_to_tcp_sock").expect("uapi"),
        "bpf_skc_to_tcp_sock",
        1,
        skc_to_tcp_sock,
    );
    t.insert_kfunc("bpf_cast_to_kern_ctx", 1, cast_to_kern_ctx);
    t.insert_kfunc("bpf_rdonly_cast", 2, rdonly_cast);
    t.insert_kfunc("bpf_sock_ops_enable_tx_tstamp", 2, enable_tx_tstamp);
    t
}

fn fault(name: &str, message: impl Into<String>) -> HelperError {
    HelperError::Fault(FaultKind::Helper {
        name: name.to_string(),
        message: message.into(),
    })
}

fn hook<'a>(m: &'a mut Machine, name: &str) -> Result<&'a mut HookState, HelperError> {
    m.hook
        .as_mut()
        .ok_or_else(|| fault(name, "called outside a sock_ops hook call"))
}

/// `is_locked_tcp_sock_ops`: only ops up to WRITE_HDR_OPT_CB may use the socket helpers.
fn sock_helper_op(op: u32) -> bool {
    op <= op::WRITE_HDR_OPT_CB
}

fn setsockopt(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_setsockopt";
    let (level, name, len) = (a[1] as i32, a[2] as i32, a[4]);
    let optval = m.memory.read_bytes(a[3], len)?.to_vec();
    let h = hook(m, NAME)?;
    if !sock_helper_op(h.op) {
        return Ok(neg(EOPNOTSUPP));
    }
    if !h.full {
        return Ok(neg(EINVAL));
    }
    Ok(match set_option(h, level, name, &optval) {
        Ok(()) => 0,
        Err(e) => neg(e),
    })
}

fn int_of(v: &[u8]) -> Result<i32, i64> {
    match v {
        [a, b, c, d] => Ok(i32::from_le_bytes([*a, *b, *c, *d])),
        _ => Err(EINVAL),
    }
}

/// `__bpf_setsockopt` on a full socket: the allowed options of spec §4.3.
fn set_option(h: &mut HookState, level: i32, name: i32, v: &[u8]) -> Result<(), i64> {
    let state = h.state;
    let s = &mut h.sock;
    match level {
        SOL_SOCKET => {
            if name == SO_BINDTODEVICE {
                return Ok(());
            }
            let val = int_of(v)?;
            match name {
                SK_BPF_CB_FLAGS => {
                    if val & !1 != 0 {
                        return Err(EINVAL);
                    }
                    s.sk_bpf_cb_flags = val as u8;
                }
                SO_SNDBUF => s.sndbuf = (val.clamp(0, WMEM_MAX) * 2).max(SOCK_MIN_SNDBUF),
                SO_RCVBUF => s.rcvbuf = (val.clamp(0, RMEM_MAX) * 2).max(SOCK_MIN_RCVBUF),
                SO_REUSEADDR | SO_KEEPALIVE | SO_PRIORITY | SO_REUSEPORT | SO_RCVLOWAT
                | SO_MARK | SO_MAX_PACING_RATE | SO_BINDTOIFINDEX | SO_TXREHASH => {
                    s.opts.insert((level, name), val);
                }
                _ => return Err(EINVAL),
            }
        }
        SOL_IP => {
            if s.family != 2 {
                return Err(EINVAL);
            }
            let val = int_of(v)?;
            match name {
                // __ip_sock_set_tos: on a stream socket the ECN bits stay the stack's.
                IP_TOS => {
                    let ecn = s.opts.get(&(level, name)).copied().unwrap_or(0) & 3;
                    s.opts.insert((level, name), val & 0xfc | ecn);
                }
                _ => return Err(EINVAL),
            }
        }
        SOL_IPV6 => {
            if s.family != 10 {
                return Err(EINVAL);
            }
            let val = int_of(v)?;
            match name {
                IPV6_TCLASS => {
                    if !(-1..=0xff).contains(&val) {
                        return Err(EINVAL);
                    }
                    // do_ipv6_setsockopt: -1 is the default 0; ECN bits stay the stack's.
                    let ecn = s.opts.get(&(level, name)).copied().unwrap_or(0) & 3;
                    s.opts.insert((level, name), val.max(0) & 0xfc | ecn);
                }
                IPV6_AUTOFLOWLABEL => {
                    s.opts.insert((level, name), val);
                }
                _ => return Err(EINVAL),
            }
        }
        SOL_TCP => {
            if name == TCP_CONGESTION {
                let n = v.iter().position(|&c| c == 0).unwrap_or(v.len());
                let cc = String::from_utf8_lossy(&v[..n]).into_owned();
                if cc == "cdg" {
                    return Err(ENOTSUPP);
                }
                if !AVAILABLE_CC.contains(&cc.as_str()) {
                    return Err(ENOENT);
                }
                s.congestion = cc;
                return Ok(());
            }
            let val = int_of(v)?;
            match name {
                TCP_BPF_SOCK_OPS_CB_FLAGS => {
                    if val & !0x7f != 0 {
                        return Err(EINVAL);
                    }
                    s.cb_flags = val as u8;
                }
                TCP_BPF_IW => {
                    if val <= 0 || s.data_segs_out > 0 {
                        return Err(EINVAL);
                    }
                    s.snd_cwnd = val as u32;
                }
                TCP_BPF_SNDCWND_CLAMP => {
                    if val <= 0 {
                        return Err(EINVAL);
                    }
                    s.snd_cwnd_clamp = val as u32;
                    s.snd_ssthresh = val as u32;
                }
                TCP_BPF_DELACK_MAX | TCP_BPF_RTO_MIN => {
                    // usecs_to_jiffies at HZ=250, checked against [TCP_TIMEOUT_MIN, 200 ms].
                    let j = (i64::from(val).max(0) as u64 * 250).div_ceil(1_000_000);
                    if !(2..=50).contains(&j) {
                        return Err(EINVAL);
                    }
                    if name == TCP_BPF_RTO_MIN {
                        s.rto_min_us = val;
                    } else {
                        s.delack_max_us = val;
                    }
                }
                TCP_WINDOW_CLAMP => {
                    // 0 (no clamp) only on a closed socket: a reset sent by close() runs the
                    // header option ops in TCP_CLOSE.
                    if val == 0 && state != 7 {
                        return Err(EINVAL);
                    }
                    s.window_clamp = val.max(SOCK_MIN_RCVBUF / 2);
                }
                TCP_SAVED_SYN | TCP_BPF_SYN | TCP_BPF_SYN_IP | TCP_BPF_SYN_MAC => {
                    return Err(EINVAL);
                }
                // do_tcp_setsockopt: 0 off, 1 from the network header, 2 from the link layer.
                TCP_SAVE_SYN if !(0..=2).contains(&val) => return Err(EINVAL),
                TCP_NODELAY
                | TCP_MAXSEG
                | TCP_KEEPIDLE
                | TCP_KEEPINTVL
                | TCP_KEEPCNT
                | TCP_SYNCNT
                | TCP_THIN_LINEAR_TIMEOUTS
                | TCP_USER_TIMEOUT
                | TCP_NOTSENT_LOWAT
                | TCP_SAVE_SYN
                | TCP_RTO_MAX_MS => {
                    s.opts.insert((level, name), val);
                }
                _ => return Err(EINVAL),
            }
        }
        _ => return Err(EINVAL),
    }
    Ok(())
}

/// `__bpf_getsockopt` on a full socket: the value bytes, or an errno.
fn get_option(h: &HookState, level: i32, name: i32, len: usize) -> Result<Vec<u8>, i64> {
    let s = &h.sock;
    let int = |v: i32| -> Result<Vec<u8>, i64> {
        if len != 4 {
            return Err(EINVAL);
        }
        Ok(v.to_le_bytes().to_vec())
    };
    match level {
        SOL_SOCKET => match name {
            SK_BPF_CB_FLAGS => int(s.sk_bpf_cb_flags.into()),
            SO_SNDBUF => int(s.sndbuf),
            SO_RCVBUF => int(s.rcvbuf),
            SO_REUSEADDR | SO_KEEPALIVE | SO_PRIORITY | SO_REUSEPORT | SO_RCVLOWAT | SO_MARK
            | SO_MAX_PACING_RATE | SO_BINDTOIFINDEX | SO_TXREHASH => {
                int(s.opts.get(&(level, name)).copied().unwrap_or(match name {
                    SO_RCVLOWAT => 1,
                    SO_MAX_PACING_RATE => -1,
                    _ => 0,
                }))
            }
            _ => Err(EINVAL),
        },
        SOL_IP if s.family == 2 => match name {
            IP_TOS => int(s.opts.get(&(level, name)).copied().unwrap_or(0)),
            _ => Err(EINVAL),
        },
        SOL_IPV6 if s.family == 10 => match name {
            IPV6_TCLASS | IPV6_AUTOFLOWLABEL => {
                int(s.opts.get(&(level, name)).copied().unwrap_or(0))
            }
            _ => Err(EINVAL),
        },
        SOL_TCP => match name {
            TCP_CONGESTION => {
                let mut b = s.congestion.as_bytes().to_vec();
                b.resize(len.min(16), 0);
                b.resize(len, 0);
                Ok(b)
            }
            TCP_BPF_SOCK_OPS_CB_FLAGS => int(s.cb_flags.into()),
            TCP_BPF_RTO_MIN => int(s.rto_min_us),
            TCP_BPF_DELACK_MAX => int(s.delack_max_us),
            TCP_WINDOW_CLAMP => int(s.window_clamp),
            TCP_NODELAY
            | TCP_MAXSEG
            | TCP_KEEPIDLE
            | TCP_KEEPINTVL
            | TCP_KEEPCNT
            | TCP_SYNCNT
            | TCP_THIN_LINEAR_TIMEOUTS
            | TCP_USER_TIMEOUT
            | TCP_NOTSENT_LOWAT
            | TCP_SAVE_SYN
            | TCP_RTO_MAX_MS => int(s.opts.get(&(level, name)).copied().unwrap_or(0)),
            _ => Err(EINVAL),
        },
        _ => Err(EINVAL),
    }
}

/// `bpf_sock_ops_get_syn` (net/core/filter.c): the SYN's headers from `syn_skb` when the call
/// has one, else the saved SYN (the request sock's on a SYN-ACK retransmit, the socket's
/// otherwise): the TCP header (`TCP_BPF_SYN`), IP and TCP (`TCP_BPF_SYN_IP`), or link layer,
/// IP and TCP (`TCP_BPF_SYN_MAC`, -ENOENT when the listener saved without it). -ENOENT without
/// a SYN.
fn get_syn(h: &HookState, name: i32) -> Result<Vec<u8>, i64> {
    let syn = h.syn.as_ref().or(h.sock.saved_syn.as_ref()).ok_or(ENOENT)?;
    Ok(match name {
        TCP_BPF_SYN => syn.tcp.clone(),
        TCP_BPF_SYN_IP => [&syn.ip[..], &syn.tcp].concat(),
        _ if syn.mac.is_empty() => return Err(ENOENT),
        _ => [&syn.mac[..], &syn.ip, &syn.tcp].concat(),
    })
}

fn getsockopt(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_getsockopt";
    let (level, name, len) = (a[1] as i32, a[2] as i32, a[4] as usize);
    // The buffer must be writable whatever happens: the helper always fills it.
    m.memory.write_bytes(a[3], &vec![0; len])?;
    let h = hook(m, NAME)?;
    if !sock_helper_op(h.op) {
        return Ok(neg(EOPNOTSUPP));
    }
    if level == SOL_TCP && (TCP_BPF_SYN..=TCP_BPF_SYN_MAC).contains(&name) {
        let r = get_syn(h, name);
        return Ok(match r {
            Ok(syn) => {
                let n = syn.len().min(len);
                m.memory.write_bytes(a[3], &syn[..n])?;
                if syn.len() > len {
                    neg(ENOSPC)
                } else {
                    syn.len() as u64
                }
            }
            Err(e) => neg(e),
        });
    }
    if !h.full {
        return Ok(neg(EINVAL));
    }
    match get_option(h, level, name, len) {
        Ok(v) => {
            m.memory.write_bytes(a[3], &v[..len.min(v.len())])?;
            Ok(0)
        }
        Err(e) => Ok(neg(e)),
    }
}

fn cb_flags_set(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    let h = hook(m, "bpf_sock_ops_cb_flags_set")?;
    let argval = a[1] as i32;
    if !sock_helper_op(h.op) {
        return Ok(neg(EOPNOTSUPP));
    }
    if !h.full {
        return Ok(neg(EINVAL));
    }
    h.sock.cb_flags = (argval & 0x7f) as u8;
    Ok((argval & !0x7f) as i64 as u64)
}

fn get_socket_cookie(m: &mut Machine, _: [u64; 5]) -> Result<u64, HelperError> {
    Ok(hook(m, "bpf_get_socket_cookie")?.sock.cookie)
}

/// The cookie of `init_net`, which `bpf_get_netns_cookie(NULL)` returns: scenarios run in
/// a namespace of their own, as the kernel tests do.
pub const INIT_NET_COOKIE: u64 = 0x7fff_0001;

fn get_netns_cookie(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    let h = hook(m, "bpf_get_netns_cookie")?;
    Ok(if a[0] == 0 {
        INIT_NET_COOKIE
    } else {
        h.netns_cookie
    })
}

/// The simulated socket a `struct bpf_sock *`/`tcp_sock *` argument stands for: the hook's
/// socket when it is a full one (only that socket's objects exist during a call).
fn sock_arg(m: &Machine, name: &str, p: u64) -> Result<Option<u64>, HelperError> {
    match m.memory.kind_of(p) {
        Some(RegionKind::Kernel { .. }) => {}
        _ => return Err(fault(name, format!("{p:#x} is not a socket pointer"))),
    }
    Ok(m.hook.as_ref().filter(|h| h.full).map(|h| h.sock.cookie))
}

fn sk_storage_get(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_sk_storage_get";
    const F_CREATE: u64 = 1;
    let map = map_arg(m, NAME, a[0])?;
    let Some(sock) = sock_arg(m, NAME, a[1])? else {
        return Ok(0);
    };
    let vsize = m.maps[map].value_size as usize;
    let init = if a[2] != 0 {
        Some(m.memory.read_bytes(a[2], vsize as u64)?.to_vec())
    } else {
        None
    };
    if a[3] & !F_CREATE != 0 {
        return Ok(0);
    }
    let Storage::SkStorage { values } = &m.maps[map].storage else {
        return Err(fault(
            NAME,
            format!("map `{}` is not SK_STORAGE", m.maps[map].name),
        ));
    };
    if let Some(&r) = values.get(&sock) {
        return Ok(pointer(r, 0));
    }
    if a[3] & F_CREATE == 0 {
        return Ok(0);
    }
    let r = m.memory.alloc(
        RegionKind::MapValue { map: map as u32 },
        init.unwrap_or_else(|| vec![0; vsize]),
        true,
    );
    if let Storage::SkStorage { values } = &mut m.maps[map].storage {
        values.insert(sock, r);
    }
    Ok(pointer(r, 0))
}

fn sk_storage_delete(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_sk_storage_delete";
    let map = map_arg(m, NAME, a[0])?;
    let Some(sock) = sock_arg(m, NAME, a[1])? else {
        return Ok(neg(EINVAL));
    };
    let Storage::SkStorage { values } = &mut m.maps[map].storage else {
        return Err(fault(
            NAME,
            format!("map `{}` is not SK_STORAGE", m.maps[map].name),
        ));
    };
    match values.remove(&sock) {
        Some(r) => {
            m.memory.release(r);
            Ok(0)
        }
        None => Ok(neg(ENOENT)),
    }
}

/// `bpf_sock_map_update` / `bpf_sock_hash_update(ctx, map, key, flags)`.
fn sock_map_update(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_sock_map_update";
    let map = map_arg(m, NAME, a[1])?;
    let h = hook(m, NAME)?;
    let ok_op = matches!(
        h.op,
        op::ACTIVE_ESTABLISHED_CB | op::PASSIVE_ESTABLISHED_CB | op::TCP_LISTEN_CB
    );
    let (full, sock) = (h.full, h.sock.cookie);
    let st = &m.maps[map];
    let key = m.memory.read_bytes(a[2], st.key_size.into())?.to_vec();
    if !(full && ok_op) {
        return Ok(neg(EOPNOTSUPP));
    }
    let flags = a[3];
    if flags > 2 {
        return Ok(neg(EINVAL));
    }
    let is_array = st.map_type == super::maps::map_type::SOCKMAP;
    let max = st.max_entries;
    let Storage::Sock { entries, inserts } = &mut m.maps[map].storage else {
        return Err(fault(NAME, "map is not a SOCKMAP or SOCKHASH"));
    };
    if is_array && key.len() >= 4 {
        let idx = u32::from_le_bytes([key[0], key[1], key[2], key[3]]);
        if idx >= max {
            return Ok(neg(E2BIG));
        }
    }
    let exists = entries.contains_key(&key);
    if flags == 1 && exists {
        return Ok(neg(EEXIST));
    }
    if flags == 2 && !exists {
        return Ok(neg(ENOENT));
    }
    if !is_array && !exists && entries.len() as u32 >= max {
        return Ok(neg(E2BIG));
    }
    entries.insert(key.clone(), sock);
    inserts.push((key, sock));
    Ok(0)
}

fn reserve_hdr_opt(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    let h = hook(m, "bpf_reserve_hdr_opt")?;
    let (len, flags) = (a[1] as u32, a[2]);
    if h.op != op::HDR_OPT_LEN_CB {
        return Ok(neg(EPERM));
    }
    if flags != 0 || len < 2 {
        return Ok(neg(EINVAL));
    }
    if len > h.remaining_opt_len {
        return Ok(neg(ENOSPC));
    }
    h.remaining_opt_len -= len;
    h.reserved += len;
    Ok(0)
}

/// `bpf_search_tcp_opt`: the offset of the option, or an errno; `eol` when an EOL ended it.
fn search_opt(opts: &[u8], kind: u8, magic: &[u8], eol: &mut bool) -> Result<usize, i64> {
    *eol = false;
    let mut i = 0;
    while i < opts.len() {
        let k = opts[i];
        if k == 0 {
            *eol = true;
            return Err(ENOMSG);
        }
        if k == 1 {
            i += 1;
            continue;
        }
        let left = opts.len() - i;
        if left < 2 || left < usize::from(opts[i + 1]) || opts[i + 1] < 2 {
            return Err(EFAULT);
        }
        let klen = usize::from(opts[i + 1]);
        if k == kind {
            if magic.is_empty() {
                return Ok(i);
            }
            if magic.len() > klen - 2 {
                return Err(ENOMSG);
            }
            if opts[i + 2..i + 2 + magic.len()] == *magic {
                return Ok(i);
            }
        }
        i += klen;
    }
    Err(ENOMSG)
}

/// The options part (after the 20-byte fixed header) of a TCP header.
fn options_of(header: &[u8]) -> &[u8] {
    header.get(20..).unwrap_or(&[])
}

fn store_hdr_opt(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_store_hdr_opt";
    let len = a[2] as u32;
    let from = m.memory.read_bytes(a[1], len.into())?.to_vec();
    let h = hook(m, NAME)?;
    if h.op != op::WRITE_HDR_OPT_CB {
        return Ok(neg(EPERM));
    }
    if len < 2 || a[3] != 0 {
        return Ok(neg(EINVAL));
    }
    let (kind, klen) = (from[0], u32::from(from[1]));
    if klen > len || kind == 1 || kind == 0 {
        return Ok(neg(EINVAL));
    }
    if klen > h.remaining_opt_len {
        return Ok(neg(ENOSPC));
    }
    let mut magic: &[u8] = &[];
    if kind == 254 || kind == 253 {
        if klen < 4 {
            return Ok(neg(EINVAL));
        }
        magic = &from[2..4];
    }
    let mut opts = h.header.as_deref().map(options_of).unwrap_or(&[]).to_vec();
    opts.extend_from_slice(&h.written);
    let mut eol = false;
    match search_opt(&opts, kind, magic, &mut eol) {
        Ok(_) => return Ok(neg(EEXIST)),
        Err(ENOMSG) => {}
        Err(e) => return Ok(neg(e)),
    }
    if eol {
        return Ok(neg(ENOSPC));
    }
    h.written.extend_from_slice(&from[..klen as usize]);
    h.remaining_opt_len -= klen;
    grow_packet_window(m, &from[..klen as usize]);
    Ok(0)
}

/// `bpf_sock_ops_store_hdr_opt` copies the option to `skb_data_end` and moves `skb_data_end`
/// past it (net/core/filter.c), so direct packet reads after a store, by this program or the
/// next one of the cgroup (they share the context), see the stored options. The window of the
/// call's context grows by the option.
fn grow_packet_window(m: &mut Machine, bytes: &[u8]) {
    use super::sockops::field::SKB_DATA_END;
    let Some((ctx, ..)) = m.run.ctx_rule else {
        return;
    };
    let Some(end) = m
        .memory
        .region(ctx)
        .and_then(|c| c.data.get(SKB_DATA_END..SKB_DATA_END + 8))
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .filter(|&e| e != 0)
    else {
        return;
    };
    let (packet, at) = split_pointer(end);
    let Some(p) = m.memory.region_mut(packet) else {
        return;
    };
    if p.kind != RegionKind::Packet || usize::try_from(at).ok() != Some(p.data.len()) {
        return;
    }
    p.data.extend_from_slice(bytes);
    let new_end = end.wrapping_add(bytes.len() as u64);
    if let Some(c) = m.memory.region_mut(ctx) {
        c.data[SKB_DATA_END..SKB_DATA_END + 8].copy_from_slice(&new_end.to_le_bytes());
    }
}

fn load_hdr_opt(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_load_hdr_opt";
    const LOAD_SYN: u64 = 1;
    let len = a[2] as u32;
    let search = m.memory.read_bytes(a[1], len.into())?.to_vec();
    let h = hook(m, NAME)?;
    if !sock_helper_op(h.op) {
        return Ok(neg(EOPNOTSUPP));
    }
    if len < 2 || a[3] & !LOAD_SYN != 0 {
        return Ok(neg(EINVAL));
    }
    let (kind, slen) = (search[0], search[1]);
    if u32::from(slen) > len || kind == 1 || kind == 0 {
        return Ok(neg(EINVAL));
    }
    let magic: Vec<u8> = if kind == 254 || kind == 253 {
        if slen != 4 && slen != 6 {
            return Ok(neg(EINVAL));
        }
        search[2..usize::from(slen)].to_vec()
    } else {
        if slen != 0 {
            return Ok(neg(EINVAL));
        }
        Vec::new()
    };
    let opts: Vec<u8> = if a[3] & LOAD_SYN != 0 {
        match get_syn(h, TCP_BPF_SYN) {
            Ok(tcp) => options_of(&tcp).to_vec(),
            Err(e) => return Ok(neg(e)),
        }
    } else {
        match (&h.header, h.op) {
            (None, _) | (_, op::HDR_OPT_LEN_CB) => return Ok(neg(EPERM)),
            (Some(hdr), _) => {
                let mut o = options_of(hdr).to_vec();
                o.extend_from_slice(&h.written);
                o
            }
        }
    };
    let mut eol = false;
    let at = match search_opt(&opts, kind, &magic, &mut eol) {
        Ok(at) => at,
        Err(e) => return Ok(neg(e)),
    };
    let klen = usize::from(opts[at + 1]);
    let n = klen.min(len as usize);
    let bytes = opts[at..at + n].to_vec();
    m.memory.write_bytes(a[1], &bytes)?;
    Ok(if klen > len as usize {
        neg(ENOSPC)
    } else {
        klen as u64
    })
}

/// Creates (once per call) a read-only simulated object and returns a pointer to it.
fn object(m: &mut Machine, what: &'static str, bytes: Vec<u8>) -> u64 {
    let r = m.memory.alloc(RegionKind::Kernel { what }, bytes, false);
    if let Some(h) = m.hook.as_mut() {
        h.objects.push(r);
    }
    pointer(r, 0)
}

/// The `tcp_sock` fields a call's context shows, for the simulated `tcp_sock`.
fn tcp_fields(m: &Machine) -> Option<super::sockops::TcpFields> {
    m.hook_call.as_ref().and_then(|c| match &c.socket {
        super::sockops::Socket::Full { tcp, .. } => Some(tcp.clone()),
        super::sockops::Socket::Request { .. } => None,
    })
}

fn skc_to_tcp_sock(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    if a[0] == 0 || sock_arg(m, "bpf_skc_to_tcp_sock", a[0])?.is_none() {
        return Ok(0);
    }
    if let Some(p) = m.hook.as_ref().map(|h| h.tcp_sock).filter(|&p| p != 0) {
        return Ok(p);
    }
    let Some(t) = tcp_fields(m) else {
        return Ok(0);
    };
    let l = layout();
    let mut b = l.object("tcp_sock");
    let s = "tcp_sock";
    let cb = m.hook.as_ref().map_or(t.cb_flags, |h| h.sock.cb_flags);
    for (f, v) in [
        ("snd_cwnd", u64::from(t.snd_cwnd)),
        ("srtt_us", t.srtt_us.into()),
        ("snd_ssthresh", t.counters[0].into()),
        ("rcv_nxt", t.counters[1].into()),
        ("snd_nxt", t.counters[2].into()),
        ("snd_una", t.counters[3].into()),
        ("mss_cache", t.counters[4].into()),
        ("packets_out", t.counters[8].into()),
        ("retrans_out", t.counters[9].into()),
        ("total_retrans", t.counters[10].into()),
        ("segs_in", t.counters[11].into()),
        ("segs_out", t.counters[13].into()),
        ("bytes_received", t.bytes_received),
        ("bytes_acked", t.bytes_acked),
        ("bpf_sock_ops_cb_flags", cb.into()),
    ] {
        l.put(&mut b, s, f, v);
    }
    let p = object(m, "struct tcp_sock", b);
    if let Some(h) = m.hook.as_mut() {
        h.tcp_sock = p;
    }
    Ok(p)
}

/// `bpf_tcp_sock(sk)`: the UAPI `struct bpf_tcp_sock` view (112 bytes) of a full socket.
fn tcp_sock(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    if sock_arg(m, "bpf_tcp_sock", a[0])?.is_none() {
        return Ok(0);
    }
    if let Some(p) = m.hook.as_ref().map(|h| h.bpf_tcp_sock).filter(|&p| p != 0) {
        return Ok(p);
    }
    let Some(t) = tcp_fields(m) else {
        return Ok(0);
    };
    let mut b = vec![0u8; 112];
    let words = [
        t.snd_cwnd,
        t.srtt_us,
        t.rtt_min,
        t.counters[0],
        t.counters[1],
        t.counters[2],
        t.counters[3],
        t.counters[4],
        t.counters[5],
        t.counters[6],
        t.counters[7],
        t.counters[8],
        t.counters[9],
        t.counters[10],
        t.counters[11],
        t.counters[12],
        t.counters[13],
        t.counters[14],
        t.counters[15],
        t.counters[16],
    ];
    for (i, w) in words.iter().enumerate() {
        b[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    b[80..88].copy_from_slice(&t.bytes_received.to_le_bytes());
    b[88..96].copy_from_slice(&t.bytes_acked.to_le_bytes());
    let p = object(m, "struct bpf_tcp_sock", b);
    if let Some(h) = m.hook.as_mut() {
        h.bpf_tcp_sock = p;
    }
    Ok(p)
}

fn get_local_storage(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_get_local_storage";
    let map = map_arg(m, NAME, a[0])?;
    match &m.maps[map].storage {
        Storage::CgroupStorage { value } => Ok(pointer(*value, 0)),
        _ => Err(fault(
            NAME,
            format!("map `{}` is not cgroup storage", m.maps[map].name),
        )),
    }
}

/// `bpf_cast_to_kern_ctx(ctx)`: the simulated `struct bpf_sock_ops_kern` of the call, with its
/// `skb` (and the skb's shared info, where `tskey` lives) when the call has one.
fn cast_to_kern_ctx(m: &mut Machine, _: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_cast_to_kern_ctx";
    let h = hook(m, NAME)?.clone();
    if h.kctx != 0 {
        return Ok(h.kctx);
    }
    let l = layout();
    let skb = if h.header.is_some() || h.skb_len != 0 || h.op >= op::TSTAMP_SCHED_CB {
        // head buffer: the TCP header at `data`, the shared info at `end`.
        let end: u32 = 256;
        let mut head = vec![0u8; end as usize + l.size("skb_shared_info") as usize];
        if let Some(hdr) = &h.header {
            let n = hdr.len().min(end as usize);
            head[..n].copy_from_slice(&hdr[..n]);
        }
        let mut shinfo = l.object("skb_shared_info");
        l.put(&mut shinfo, "skb_shared_info", "tskey", h.tskey.into());
        l.put(
            &mut shinfo,
            "skb_shared_info",
            "tx_flags",
            if h.tx_armed { 1 << 6 } else { 0 },
        );
        head[end as usize..].copy_from_slice(&shinfo);
        let head_ptr = object(m, "sk_buff head", head);
        let mut sb = l.object("sk_buff");
        l.put(&mut sb, "sk_buff", "len", h.skb_len.into());
        l.put(&mut sb, "sk_buff", "end", end.into());
        l.put(&mut sb, "sk_buff", "head", head_ptr);
        l.put(&mut sb, "sk_buff", "data", head_ptr);
        object(m, "struct sk_buff", sb)
    } else {
        0
    };
    // The socket itself (a request sock on the request-sock ops, where ctx->sk is NULL): a
    // handle for the helpers taking a socket; its fields are not modelled.
    let sk = object(m, "struct sock", Vec::new());
    let mut k = l.object("bpf_sock_ops_kern");
    let s = "bpf_sock_ops_kern";
    l.put(&mut k, s, "sk", sk);
    l.put(&mut k, s, "skb", skb);
    l.put(&mut k, s, "op", h.op.into());
    l.put(&mut k, s, "is_fullsock", h.full.into());
    l.put(&mut k, s, "is_locked_tcp_sock", h.locked.into());
    l.put(&mut k, s, "remaining_opt_len", h.remaining_opt_len.into());
    if let Some(call) = &m.hook_call {
        for (i, v) in call.args.iter().enumerate() {
            let at = l.field(s, "args");
            let o = at.offset as usize + 4 * i;
            k[o..o + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
    let p = object(m, "struct bpf_sock_ops_kern", k);
    if let Some(h) = m.hook.as_mut() {
        h.kctx = p;
    }
    Ok(p)
}

/// `bpf_rdonly_cast(obj, btf_id)`: the same address, now read-only typed memory.
fn rdonly_cast(_: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    Ok(a[0])
}

fn enable_tx_tstamp(m: &mut Machine, a: [u64; 5]) -> Result<u64, HelperError> {
    const NAME: &str = "bpf_sock_ops_enable_tx_tstamp";
    let (id, _) = split_pointer(a[0]);
    let h = hook(m, NAME)?;
    if h.kctx == 0 || split_pointer(h.kctx).0 != id {
        return Err(fault(NAME, "argument is not bpf_cast_to_kern_ctx(ctx)"));
    }
    if h.op != op::TSTAMP_SENDMSG_CB {
        return Ok(neg(EOPNOTSUPP));
    }
    if a[1] != 0 {
        return Ok(neg(EINVAL));
    }
    h.tx_armed = true;
    h.tskey = h.skb_seq.wrapping_add(h.skb_len).wrapping_sub(1);
    // The shared info the program may read next.
    let tskey = h.tskey;
    let kctx = h.kctx;
    let l = layout();
    let skb = m
        .memory
        .load(
            kctx + u64::from(l.field("bpf_sock_ops_kern", "skb").offset),
            8,
        )
        .unwrap_or(0);
    if skb != 0 {
        let head = m
            .memory
            .load(skb + u64::from(l.field("sk_buff", "head").offset), 8)
            .unwrap_or(0);
        let at = head + 256 + u64::from(l.field("skb_shared_info", "tskey").offset);
        let (rid, off) = split_pointer(at);
        if let Some(r) = m.memory.region_mut(rid) {
            let o = off as usize;
            if let Some(d) = r.data.get_mut(o..o + 4) {
                d.copy_from_slice(&tskey.to_le_bytes());
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::Insn;
    use crate::runtime::{Config, Module};

    fn machine(op: u32, full: bool) -> Machine {
        let module = Module::single(
            "p",
            &[
                Insn::Alu {
                    width: crate::insn::Width::W64,
                    op: crate::insn::AluOp::Mov,
                    dst: crate::insn::Reg::R0,
                    src: Src::Imm(1),
                },
                Insn::EXIT,
            ],
        );
        let mut m = Machine::new(module, Config::default()).unwrap();
        m.hook = Some(HookState {
            op,
            full,
            locked: full && op <= 15,
            remaining_opt_len: 40,
            ..HookState::default()
        });
        m
    }

    fn buf(m: &mut Machine, bytes: &[u8]) -> u64 {
        m.alloc(RegionKind::Stack { frame: 0 }, bytes.to_vec(), true)
    }

    fn errno(v: u64) -> i64 {
        v as i64
    }

    use crate::insn::Src;

    #[test]
    fn setsockopt_availability_per_op_and_socket() {
        for (op, full, want) in [
            (op::ACTIVE_ESTABLISHED_CB, true, 0),
            (op::TIMEOUT_INIT, false, -EINVAL),
            (op::TSTAMP_SENDMSG_CB, true, -EOPNOTSUPP),
            (op::TSTAMP_ACK_CB, true, -EOPNOTSUPP),
        ] {
            let mut m = machine(op, full);
            let v = buf(&mut m, &1i32.to_le_bytes());
            let r = setsockopt(&mut m, [0, SOL_SOCKET as u64, SO_SNDBUF as u64, v, 4]).unwrap();
            assert_eq!(errno(r), want, "op {op}");
        }
    }

    #[test]
    fn sockopt_values_round_trip_with_kernel_rules() {
        let mut m = machine(op::TCP_CONNECT_CB, true);
        let v = buf(&mut m, &100_000i32.to_le_bytes());
        setsockopt(&mut m, [0, SOL_SOCKET as u64, SO_SNDBUF as u64, v, 4]).unwrap();
        let out = buf(&mut m, &[0xaa; 4]);
        assert_eq!(
            getsockopt(&mut m, [0, SOL_SOCKET as u64, SO_SNDBUF as u64, out, 4]).unwrap(),
            0
        );
        // The kernel doubles the request for bookkeeping overhead.
        assert_eq!(m.memory.load(out, 4).unwrap(), 200_000);
        // Unknown cb flag bits through setsockopt are refused; the helper masks them instead.
        let bad = buf(&mut m, &0x80i32.to_le_bytes());
        let r = setsockopt(
            &mut m,
            [0, SOL_TCP as u64, TCP_BPF_SOCK_OPS_CB_FLAGS as u64, bad, 4],
        );
        assert_eq!(errno(r.unwrap()), -EINVAL);
        assert_eq!(cb_flags_set(&mut m, [0, 0xff, 0, 0, 0]).unwrap(), 0x80);
        assert_eq!(m.hook.as_ref().unwrap().sock.cb_flags, 0x7f);
        // Congestion control: known, unknown, refused.
        for (name, want) in [
            (&b"cubic\0"[..], 0),
            (b"nv\0", -ENOENT),
            (b"cdg\0", -ENOTSUPP),
        ] {
            let p = buf(&mut m, name);
            let r = setsockopt(
                &mut m,
                [
                    0,
                    SOL_TCP as u64,
                    TCP_CONGESTION as u64,
                    p,
                    name.len() as u64,
                ],
            );
            assert_eq!(errno(r.unwrap()), want);
        }
        assert_eq!(m.hook.as_ref().unwrap().sock.congestion, "cubic");
        // IP_TOS on an IPv4 socket; IPV6_TCLASS refused there.
        let tos = buf(&mut m, &0x10i32.to_le_bytes());
        assert_eq!(
            setsockopt(&mut m, [0, SOL_IP as u64, IP_TOS as u64, tos, 4]).unwrap(),
            0
        );
        let r = setsockopt(&mut m, [0, SOL_IPV6 as u64, IPV6_TCLASS as u64, tos, 4]).unwrap();
        assert_eq!(errno(r), -EINVAL);
        // The ECN bits of a TCP socket's TOS are not the program's to set.
        let ect = buf(&mut m, &0xbbi32.to_le_bytes());
        setsockopt(&mut m, [0, SOL_IP as u64, IP_TOS as u64, ect, 4]).unwrap();
        let out = buf(&mut m, &[0; 4]);
        getsockopt(&mut m, [0, SOL_IP as u64, IP_TOS as u64, out, 4]).unwrap();
        assert_eq!(m.memory.load(out, 4).unwrap(), 0xb8);
        // A wrong optlen is -EINVAL; the getsockopt buffer is zeroed on error.
        let out = buf(&mut m, &[0xaa; 8]);
        let r = getsockopt(&mut m, [0, SOL_SOCKET as u64, SO_SNDBUF as u64, out, 8]).unwrap();
        assert_eq!(errno(r), -EINVAL);
        assert_eq!(m.memory.load(out, 8).unwrap(), 0);
    }

    fn syn_of(mac: usize, ip: usize, tcp: usize) -> Syn {
        Syn {
            mac: vec![0xee; mac],
            ip: vec![0x45; ip],
            tcp: (0..tcp as u8).collect(),
        }
    }

    /// `bpf_sock_ops_get_syn`: syn_skb first, then the saved SYN; each option name copies from
    /// its own header on; TCP_BPF_SYN_MAC needs the link-layer header saved.
    #[test]
    fn getsockopt_syn_ip_and_mac_headers_from_syn_skb_or_the_saved_syn() {
        let get = |m: &mut Machine, name: i32, len: u64| {
            let out = buf(m, &vec![0xaa; len as usize]);
            let r = getsockopt(m, [0, SOL_TCP as u64, name as u64, out, len]).unwrap();
            (errno(r), m.memory.read_bytes(out, len).unwrap().to_vec())
        };
        // A child whose listener saved with TCP_SAVE_SYN 1: no link-layer header.
        let mut m = machine(op::PASSIVE_ESTABLISHED_CB, true);
        m.hook.as_mut().unwrap().sock.saved_syn = Some(syn_of(0, 20, 44));
        assert_eq!(get(&mut m, TCP_BPF_SYN, 64).0, 44);
        let (r, bytes) = get(&mut m, TCP_BPF_SYN_IP, 80);
        assert_eq!(r, 64);
        assert_eq!(&bytes[..20], &[0x45; 20]);
        assert_eq!(bytes[20..64], (0..44).collect::<Vec<u8>>()[..]);
        assert_eq!(&bytes[64..], &[0; 16], "the rest is zeroed");
        assert_eq!(get(&mut m, TCP_BPF_SYN_MAC, 128).0, -ENOENT);
        // Too short: -ENOSPC with the first bytes copied.
        let (r, bytes) = get(&mut m, TCP_BPF_SYN_IP, 8);
        assert_eq!((r, bytes), (-ENOSPC, vec![0x45; 8]));
        // Saved with TCP_SAVE_SYN 2, IPv6.
        m.hook.as_mut().unwrap().sock.saved_syn = Some(syn_of(14, 40, 40));
        let (r, bytes) = get(&mut m, TCP_BPF_SYN_MAC, 128);
        assert_eq!(r, 94);
        assert_eq!(&bytes[..14], &[0xee; 14]);
        // syn_skb wins over the saved SYN and always has its link-layer header.
        m.hook.as_mut().unwrap().syn = Some(syn_of(14, 20, 32));
        assert_eq!(get(&mut m, TCP_BPF_SYN, 64).0, 32);
        assert_eq!(get(&mut m, TCP_BPF_SYN_MAC, 128).0, 66);
        // Not in the TX timestamp ops, SYN or not.
        let mut t = machine(op::TSTAMP_SENDMSG_CB, true);
        t.hook.as_mut().unwrap().sock.saved_syn = Some(syn_of(0, 20, 44));
        assert_eq!(get(&mut t, TCP_BPF_SYN, 64).0, -EOPNOTSUPP);
        // TCP_SAVE_SYN takes 0, 1 or 2.
        let mut l = machine(op::TCP_LISTEN_CB, true);
        for (v, want) in [(2, 0), (3, -EINVAL), (-1, -EINVAL)] {
            let p = buf(&mut l, &i32::to_le_bytes(v));
            let r = setsockopt(&mut l, [0, SOL_TCP as u64, TCP_SAVE_SYN as u64, p, 4]).unwrap();
            assert_eq!(errno(r), want, "TCP_SAVE_SYN {v}");
        }
    }

    #[test]
    fn getsockopt_syn_from_syn_skb_even_on_a_request_sock() {
        let mut m = machine(op::HDR_OPT_LEN_CB, false);
        let syn: Vec<u8> = (0..24).collect();
        m.hook.as_mut().unwrap().syn = Some(Syn {
            mac: vec![0; 14],
            ip: vec![0x45; 20],
            tcp: syn.clone(),
        });
        let out = buf(&mut m, &[0; 32]);
        let r = getsockopt(&mut m, [0, SOL_TCP as u64, TCP_BPF_SYN as u64, out, 32]).unwrap();
        assert_eq!(r, 24);
        assert_eq!(m.memory.read_bytes(out, 24).unwrap(), &syn[..]);
        let short = buf(&mut m, &[0; 8]);
        let r = getsockopt(&mut m, [0, SOL_TCP as u64, TCP_BPF_SYN as u64, short, 8]).unwrap();
        assert_eq!(errno(r), -ENOSPC);
        // Without a SYN: -ENOENT.
        let mut m = machine(op::ACTIVE_ESTABLISHED_CB, true);
        let out = buf(&mut m, &[0; 32]);
        let r = getsockopt(&mut m, [0, SOL_TCP as u64, TCP_BPF_SYN as u64, out, 32]).unwrap();
        assert_eq!(errno(r), -ENOENT);
    }

    #[test]
    fn header_option_helpers_follow_the_kernel_checks() {
        let mut m = machine(op::HDR_OPT_LEN_CB, true);
        assert_eq!(
            errno(reserve_hdr_opt(&mut m, [0, 1, 0, 0, 0]).unwrap()),
            -EINVAL
        );
        assert_eq!(reserve_hdr_opt(&mut m, [0, 36, 0, 0, 0]).unwrap(), 0);
        assert_eq!(
            errno(reserve_hdr_opt(&mut m, [0, 8, 0, 0, 0]).unwrap()),
            -ENOSPC
        );
        assert_eq!(reserve_hdr_opt(&mut m, [0, 3, 0, 0, 0]).unwrap(), 0);
        assert_eq!(m.hook.as_ref().unwrap().reserved, 39);
        // Not the op: -EPERM.
        let mut w = machine(op::PARSE_HDR_OPT_CB, true);
        assert_eq!(
            errno(reserve_hdr_opt(&mut w, [0, 4, 0, 0, 0]).unwrap()),
            -EPERM
        );

        let mut m = machine(op::WRITE_HDR_OPT_CB, true);
        let mut hdr = vec![0u8; 20];
        hdr.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        let h = m.hook.as_mut().unwrap();
        h.header = Some(hdr);
        h.remaining_opt_len = 12;
        let opt = buf(&mut m, &[254, 6, 0xeb, 0x9f, 7, 7]);
        assert_eq!(store_hdr_opt(&mut m, [0, opt, 6, 0, 0]).unwrap(), 0);
        // Same kind and magic again: -EEXIST; timestamps (kind 8) already present: -EEXIST.
        assert_eq!(
            errno(store_hdr_opt(&mut m, [0, opt, 6, 0, 0]).unwrap()),
            -EEXIST
        );
        let ts = buf(&mut m, &[8, 2]);
        assert_eq!(
            errno(store_hdr_opt(&mut m, [0, ts, 2, 0, 0]).unwrap()),
            -EEXIST
        );
        let nop = buf(&mut m, &[1, 2]);
        assert_eq!(
            errno(store_hdr_opt(&mut m, [0, nop, 2, 0, 0]).unwrap()),
            -EINVAL
        );
        assert_eq!(
            m.hook.as_ref().unwrap().written,
            vec![254, 6, 0xeb, 0x9f, 7, 7]
        );
        // What was stored can be loaded back in the same op.
        let search = buf(&mut m, &[254, 4, 0xeb, 0x9f, 0, 0, 0, 0]);
        assert_eq!(load_hdr_opt(&mut m, [0, search, 8, 0, 0]).unwrap(), 6);
        assert_eq!(
            m.memory.read_bytes(search, 6).unwrap(),
            &[254, 6, 0xeb, 0x9f, 7, 7]
        );
        let missing = buf(&mut m, &[30, 0, 0, 0]);
        assert_eq!(
            errno(load_hdr_opt(&mut m, [0, missing, 4, 0, 0]).unwrap()),
            -ENOMSG
        );
        // TSTAMP ops: -EOPNOTSUPP; HDR_OPT_LEN without the SYN flag: -EPERM.
        let mut t = machine(op::TSTAMP_ACK_CB, true);
        let s = buf(&mut t, &[30, 0]);
        assert_eq!(
            errno(load_hdr_opt(&mut t, [0, s, 2, 0, 0]).unwrap()),
            -EOPNOTSUPP
        );
        let mut l = machine(op::HDR_OPT_LEN_CB, true);
        l.hook.as_mut().unwrap().header = Some(vec![0; 20]);
        let s = buf(&mut l, &[30, 0]);
        assert_eq!(
            errno(load_hdr_opt(&mut l, [0, s, 2, 0, 0]).unwrap()),
            -EPERM
        );
    }

    /// A stored option lands at `skb_data_end`, which moves past it: direct reads see it.
    #[test]
    fn store_hdr_opt_moves_skb_data_end_past_the_option() {
        use crate::runtime::sockops::{HookCall, Skb, SockCommon, Socket, TcpFields, field};
        let mut m = machine(op::WRITE_HDR_OPT_CB, true);
        let mut hdr = vec![0u8; 20];
        hdr.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        let call = HookCall {
            op: op::WRITE_HDR_OPT_CB,
            args: [0; 4],
            socket: Socket::Full {
                common: SockCommon {
                    family: 2,
                    state: 1,
                    ..SockCommon::default()
                },
                tcp: TcpFields::default(),
                extra: Default::default(),
            },
            locked: true,
            skb: Some(Skb {
                window: hdr.clone(),
                len: 32,
                tcp_flags: 0x18,
                hwtstamp: 0,
            }),
        };
        let c = m.sock_ops_context(&call);
        let h = m.hook.as_mut().unwrap();
        h.header = Some(hdr);
        h.remaining_opt_len = 8;
        let at = |m: &Machine, f: usize| m.memory.load(c.ctx + f as u64, 8).unwrap();
        let (data, end) = (at(&m, field::SKB_DATA), at(&m, field::SKB_DATA_END));
        assert_eq!(end - data, 32);
        let opt = buf(&mut m, &[254, 6, 0xeb, 0x9f, 7, 8]);
        assert_eq!(store_hdr_opt(&mut m, [c.ctx, opt, 6, 0, 0]).unwrap(), 0);
        let end = at(&m, field::SKB_DATA_END);
        assert_eq!(end - data, 38);
        assert_eq!(
            m.memory.read_bytes(data + 32, 6).unwrap(),
            &[254, 6, 0xeb, 0x9f, 7, 8]
        );
        assert!(
            m.memory.load(end, 1).is_err(),
            "still nothing past skb_data_end"
        );
        // A refused store (-ENOSPC: 2 bytes left) moves nothing.
        let big = buf(&mut m, &[30, 4, 0, 0]);
        assert_eq!(
            errno(store_hdr_opt(&mut m, [c.ctx, big, 4, 0, 0]).unwrap()),
            -ENOSPC
        );
        assert_eq!(at(&m, field::SKB_DATA_END), end);
        m.release_sock_ops_context(c);
    }

    #[test]
    fn the_table_offers_sock_ops_helpers_and_refuses_others() {
        assert!(
            sock_ops_table()
                .helper(helper_id("bpf_sock_hash_update").unwrap())
                .is_some()
        );
        assert!(
            sock_ops_table()
                .helper(helper_id("bpf_skb_pull_data").unwrap())
                .is_none()
        );
        assert!(
            sock_ops_table()
                .kfunc("bpf_sock_ops_enable_tx_tstamp")
                .is_some()
        );
    }

    /// The ops where the helpers do their job agree with the op table (`optable::HELPER_RULES`)
    /// the analysis uses: an error outside them, success inside (on a full socket).
    #[test]
    fn per_op_availability_matches_the_op_table() {
        use crate::optable::{HELPER_RULES, helper as h};
        for rule in HELPER_RULES {
            for o in 1..=20u8 {
                let mut m = machine(o.into(), true);
                let r = match rule.id {
                    h::SETSOCKOPT => {
                        let v = buf(&mut m, &1i32.to_le_bytes());
                        setsockopt(&mut m, [0, SOL_SOCKET as u64, SO_KEEPALIVE as u64, v, 4])
                    }
                    h::GETSOCKOPT => {
                        let v = buf(&mut m, &[0; 4]);
                        getsockopt(&mut m, [0, SOL_SOCKET as u64, SO_KEEPALIVE as u64, v, 4])
                    }
                    h::SOCK_OPS_CB_FLAGS_SET => cb_flags_set(&mut m, [0, 1, 0, 0, 0]),
                    h::RESERVE_HDR_OPT => reserve_hdr_opt(&mut m, [0, 4, 0, 0, 0]),
                    h::STORE_HDR_OPT => {
                        m.hook.as_mut().unwrap().header = Some(vec![0; 20]);
                        let v = buf(&mut m, &[30, 2]);
                        store_hdr_opt(&mut m, [0, v, 2, 0, 0])
                    }
                    h::SOCK_MAP_UPDATE | h::SOCK_HASH_UPDATE => continue,
                    h::GET_SOCKET_COOKIE => {
                        m.hook.as_mut().unwrap().sock.cookie = 7;
                        get_socket_cookie(&mut m, [0; 5])
                    }
                    _ => continue,
                }
                .unwrap();
                let ok = (r as i64) >= 0 && r < 4096 || r == 7;
                assert_eq!(
                    ok,
                    (rule.works_in)(o),
                    "{} in op {o}: {}",
                    rule.name,
                    r as i64
                );
            }
        }
    }

    /// A machine with an sk_storage map (0), a sockhash (1), a sockmap of 4 slots (2) and a
    /// cgroup storage (3).
    fn with_maps(op: u32, full: bool) -> Machine {
        use crate::runtime::maps::map_type as t;
        use crate::runtime::{MapInit, ModuleMap};
        let mut module = Module::single("p", &[Insn::EXIT]);
        for (name, map_type, key_size, max) in [
            ("st", t::SK_STORAGE, 4, 0),
            ("sh", t::SOCKHASH, 4, 2),
            ("sm", t::SOCKMAP, 4, 4),
            ("cg", t::CGROUP_STORAGE, 16, 0),
        ] {
            module.maps.push(ModuleMap {
                name: name.into(),
                map_type,
                key_size,
                value_size: 8,
                max_entries: max,
                map_flags: 0,
                read_only: false,
                init: MapInit::Empty,
            });
        }
        let mut m = Machine::new(module, Config::default()).unwrap();
        m.hook = Some(HookState {
            op,
            full,
            locked: full,
            sock: SockState {
                cookie: 0x1001,
                ..SockState::default()
            },
            ..HookState::default()
        });
        m
    }

    fn map_ptr(m: &Machine, i: usize) -> u64 {
        pointer(m.maps[i].object, 0)
    }

    #[test]
    fn sk_storage_is_per_socket_and_absent_for_request_socks() {
        let mut m = with_maps(op::ACTIVE_ESTABLISHED_CB, true);
        let sk = m.alloc(
            RegionKind::Kernel {
                what: "struct bpf_sock",
            },
            vec![0; 80],
            false,
        );
        let st = map_ptr(&m, 0);
        assert_eq!(
            sk_storage_get(&mut m, [st, sk, 0, 0, 0]).unwrap(),
            0,
            "no create"
        );
        let init = buf(&mut m, &7u64.to_le_bytes());
        let v = sk_storage_get(&mut m, [st, sk, init, 1, 0]).unwrap();
        assert_eq!(m.memory.load(v, 8).unwrap(), 7);
        assert_eq!(
            sk_storage_get(&mut m, [st, sk, 0, 0, 0]).unwrap(),
            v,
            "same socket"
        );
        assert_eq!(
            sk_storage_get(&mut m, [st, sk, 0, 2, 0]).unwrap(),
            0,
            "bad flags"
        );
        // Another socket has its own storage.
        m.hook.as_mut().unwrap().sock.cookie = 0x1002;
        assert_eq!(sk_storage_get(&mut m, [st, sk, 0, 0, 0]).unwrap(), 0);
        assert_eq!(
            errno(sk_storage_delete(&mut m, [st, sk, 0, 0, 0]).unwrap()),
            -ENOENT
        );
        m.hook.as_mut().unwrap().sock.cookie = 0x1001;
        assert_eq!(sk_storage_delete(&mut m, [st, sk, 0, 0, 0]).unwrap(), 0);
        // A request sock: NULL.
        m.hook.as_mut().unwrap().full = false;
        assert_eq!(sk_storage_get(&mut m, [st, sk, 0, 1, 0]).unwrap(), 0);
    }

    #[test]
    fn sock_map_updates_only_in_established_and_listen_ops_and_are_recorded() {
        for (o, want) in [
            (op::ACTIVE_ESTABLISHED_CB, 0),
            (op::TCP_LISTEN_CB, 0),
            (op::STATE_CB, -EOPNOTSUPP),
            (op::TSTAMP_ACK_CB, -EOPNOTSUPP),
        ] {
            let mut m = with_maps(o, true);
            let key = buf(&mut m, &1u32.to_le_bytes());
            let sh = map_ptr(&m, 1);
            assert_eq!(
                errno(sock_map_update(&mut m, [0, sh, key, 0, 0]).unwrap()),
                want
            );
        }
        let mut m = with_maps(op::PASSIVE_ESTABLISHED_CB, true);
        let (sh, sm) = (map_ptr(&m, 1), map_ptr(&m, 2));
        let k1 = buf(&mut m, &1u32.to_le_bytes());
        let k9 = buf(&mut m, &9u32.to_le_bytes());
        assert_eq!(
            errno(sock_map_update(&mut m, [0, sm, k9, 0, 0]).unwrap()),
            -E2BIG
        );
        assert_eq!(sock_map_update(&mut m, [0, sh, k1, 1, 0]).unwrap(), 0);
        assert_eq!(
            errno(sock_map_update(&mut m, [0, sh, k1, 1, 0]).unwrap()),
            -EEXIST
        );
        assert_eq!(
            errno(sock_map_update(&mut m, [0, sh, k9, 2, 0]).unwrap()),
            -ENOENT
        );
        assert_eq!(
            errno(sock_map_update(&mut m, [0, sh, k1, 3, 0]).unwrap()),
            -EINVAL
        );
        let Storage::Sock { inserts, .. } = &m.maps[1].storage else {
            panic!("sockhash storage")
        };
        assert_eq!(inserts, &vec![(1u32.to_le_bytes().to_vec(), 0x1001)]);
        // A request sock cannot be inserted.
        m.hook.as_mut().unwrap().full = false;
        assert_eq!(
            errno(sock_map_update(&mut m, [0, sh, k9, 0, 0]).unwrap()),
            -EOPNOTSUPP
        );
    }

    #[test]
    fn local_storage_is_the_cgroup_storage_value() {
        let mut m = with_maps(op::TCP_CONNECT_CB, true);
        let cg = map_ptr(&m, 3);
        let v = get_local_storage(&mut m, [cg, 0, 0, 0, 0]).unwrap();
        assert_eq!(m.memory.kind_of(v), Some(RegionKind::MapValue { map: 3 }));
        assert_eq!(get_local_storage(&mut m, [cg, 0, 0, 0, 0]).unwrap(), v);
        let st = map_ptr(&m, 0);
        assert!(get_local_storage(&mut m, [st, 0, 0, 0, 0]).is_err());
    }
}
