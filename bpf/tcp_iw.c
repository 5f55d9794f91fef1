// SPDX-License-Identifier: GPL-2.0
/*
 * Initial congestion window and cwnd clamp per service port.
 *
 * Services that answer with a burst of a few hundred kilobytes (API gateways, object stores) gain a
 * round trip by starting with a larger initial window; batch uploads to a slow site are capped
 * with a cwnd clamp instead. Operators key `port_cwnd` by the local port for services and by the
 * remote port for outbound clients. The program applies the policy once the connection is
 * established (TCP_BPF_IW is only honoured before any data is sent) and keeps per-direction
 * counters of what it applied and what the kernel refused.
 *
 * Shapes: an if/else chain on the op whose conditions interleave other tests (is_fullsock, a
 * sampling helper call), so it is not a plain switch; the op is read once, stays in a
 * callee-saved register across the setsockopt helper calls and is tested again after them.
 */
// BUILD: ref-ops 3 4 5 11
#include "common.h"

struct cwnd_policy {
	__u32 init_cwnd; /* segments, 0: leave alone */
	__u32 cwnd_clamp; /* segments, 0: leave alone */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* host-order port */
	__type(value, struct cwnd_policy);
} port_cwnd SEC(".maps");

enum iw_counter {
	IW_ACTIVE_APPLIED,
	IW_PASSIVE_APPLIED,
	IW_REFUSED,
	IW_CONNECT_V4,
	IW_CONNECT_V6,
	IW_LISTEN_SEEN,
	IW_NR,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, IW_NR);
	__type(key, __u32);
	__type(value, __u64);
} iw_counters SEC(".maps");

static __always_inline void bump(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&iw_counters, &which);

	if (n)
		__sync_fetch_and_add(n, 1);
}

/* Connects are counted 1 in 16: the counters are for trend lines, not accounting. */
static __always_inline int connect_sampled(void)
{
	return (bpf_get_prandom_u32() & 15) == 0;
}

/* Returns the number of options the kernel refused. */
static __always_inline int apply_policy(struct bpf_sock_ops *skops, struct cwnd_policy *pol)
{
	int refused = 0;
	int v;

	if (pol->init_cwnd) {
		v = pol->init_cwnd;
		if (bpf_setsockopt(skops, SOL_TCP, TCP_BPF_IW, &v, sizeof(v)))
			refused++;
	}
	if (pol->cwnd_clamp) {
		v = pol->cwnd_clamp;
		if (bpf_setsockopt(skops, SOL_TCP, TCP_BPF_SNDCWND_CLAMP, &v, sizeof(v)))
			refused++;
	}
	return refused;
}

SEC("sockops")
int tcp_iw(struct bpf_sock_ops *skops)
{
	__u32 op = OP(skops);
	struct cwnd_policy *pol;
	__u32 port;

	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB || op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
		if (!skops->is_fullsock)
			return 1;
		/* Services are keyed by our port, clients by the server's. */
		port = op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB ? skops->local_port
								 : bpf_ntohl(skops->remote_port);
		pol = bpf_map_lookup_elem(&port_cwnd, &port);
		if (!pol)
			return 1;
		if (apply_policy(skops, pol))
			bump(IW_REFUSED);
		/* op survived the helper calls: it lives in a callee-saved register. */
		if (op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
			bump(IW_PASSIVE_APPLIED);
		else
			bump(IW_ACTIVE_APPLIED);
	} else if (op == BPF_SOCK_OPS_TCP_LISTEN_CB) {
		bump(IW_LISTEN_SEEN);
	} else if (connect_sampled() && op == BPF_SOCK_OPS_TCP_CONNECT_CB) {
		/* The sampling helper runs before this op test on every op that gets here, so the
		 * chain cannot be folded into one switch. */
		bump(skops->family == AF_INET6 ? IW_CONNECT_V6 : IW_CONNECT_V4);
	}
	return 1;
}

FIXTURE_LICENSE("GPL");
