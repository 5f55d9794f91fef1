/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by every fixture in bpf/. Fixtures include only this header (plus, if they need them,
 * <bpf/bpf_tracing.h> from libbpf-dev) so that the whole corpus is built against one committed
 * vmlinux.h taken from a 6.18 kernel: Debian's UAPI headers are 6.1 and lack the TSTAMP ops and
 * SK_BPF_CB_FLAGS.
 */
#ifndef OPSPLIT_FIXTURE_COMMON_H
#define OPSPLIT_FIXTURE_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

/*
 * Every fixture reads the op only through OP(). A per-op reference build (`// BUILD: ref-ops K`,
 * compiled with -DOPSPLIT_ONLY_OP=K) then turns the op into a compile-time constant, so the
 * reference object is clang's own specialization of the very same source: the yardstick for the
 * split pass. The ctx is still evaluated so that side effects and "unused" warnings do not differ.
 */
#ifdef OPSPLIT_ONLY_OP
#define OP(skops) ((void)(skops), (__u32)(OPSPLIT_ONLY_OP))
#else
#define OP(skops) ((skops)->op)
#endif

#define FIXTURE_LICENSE(s) char _license[] SEC("license") = s

/*
 * Socket-level constants. vmlinux.h carries types and enums only, no #defines, so the UAPI macros
 * programs pass to bpf_setsockopt/bpf_getsockopt are spelled out here (values from the 6.18 UAPI
 * headers, asm-generic for SOL_SOCKET/SO_*).
 *
 * The BPF-only option names (TCP_BPF_IW = 1001, TCP_BPF_SNDCWND_CLAMP = 1002, TCP_BPF_DELACK_MAX,
 * TCP_BPF_RTO_MIN, TCP_BPF_SYN*, TCP_BPF_SOCK_OPS_CB_FLAGS = 1008, SK_BPF_CB_FLAGS = 1009) and the
 * BPF_SOCK_OPS_* / BPF_TCP_* / BPF_WRITE_HDR_* / BPF_LOAD_HDR_OPT_* values are enumerators in
 * vmlinux.h, so they are not redefined; the asserts below pin the values fixtures rely on.
 */
#define AF_INET 2
#define AF_INET6 10

#define SOL_IP 0
#define SOL_SOCKET 1
#define SOL_TCP 6
#define SOL_IPV6 41

#define SO_REUSEADDR 2
#define SO_KEEPALIVE 9
#define SO_SNDBUF 7
#define SO_RCVBUF 8
#define SO_PRIORITY 12
#define SO_REUSEPORT 15
#define SO_RCVLOWAT 18
#define SO_MARK 36
#define SO_MAX_PACING_RATE 47
#define SO_BINDTOIFINDEX 62
#define SO_TXREHASH 74

#define TCP_NODELAY 1
#define TCP_MAXSEG 2
#define TCP_KEEPIDLE 4
#define TCP_KEEPINTVL 5
#define TCP_KEEPCNT 6
#define TCP_SYNCNT 7
#define TCP_WINDOW_CLAMP 10
#define TCP_CONGESTION 13
#define TCP_THIN_LINEAR_TIMEOUTS 16
#define TCP_USER_TIMEOUT 18
#define TCP_NOTSENT_LOWAT 25
#define TCP_SAVE_SYN 27
#define TCP_SAVED_SYN 28
#define TCP_RTO_MAX_MS 44

#define IP_TOS 1
#define IPV6_TCLASS 67
#define IPV6_AUTOFLOWLABEL 70

#define TCP_CA_NAME_MAX 16

/* TCP option kinds (RFC 793, RFC 6994 for the shared experimental kind). */
#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MSS 2
#define TCPOPT_WINDOW 3
#define TCPOPT_SACK_PERM 4
#define TCPOPT_TIMESTAMP 8
#define TCPOPT_EXP 254

_Static_assert(TCP_BPF_IW == 1001, "vmlinux.h TCP_BPF_IW");
_Static_assert(TCP_BPF_SNDCWND_CLAMP == 1002, "vmlinux.h TCP_BPF_SNDCWND_CLAMP");
_Static_assert(TCP_BPF_SOCK_OPS_CB_FLAGS == 1008, "vmlinux.h TCP_BPF_SOCK_OPS_CB_FLAGS");
_Static_assert(SK_BPF_CB_FLAGS == 1009, "vmlinux.h SK_BPF_CB_FLAGS");
_Static_assert(BPF_SOCK_OPS_TSTAMP_SENDMSG_CB == 20, "vmlinux.h is older than 6.15");
_Static_assert(sizeof(struct bpf_sock_ops) == 224, "struct bpf_sock_ops layout");

#endif /* OPSPLIT_FIXTURE_COMMON_H */
