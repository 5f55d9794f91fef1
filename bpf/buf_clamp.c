// SPDX-License-Identifier: GPL-2.0
/*
 * Socket buffer and window clamps per service tier.
 *
 * Batch tiers get small send/receive buffers and a window clamp so that bulk transfers cannot
 * bloat queues that latency-sensitive tiers share; after repeated timeouts a connection's cwnd is
 * clamped further. The node agent writes the tier of each local service port to `tier_of`;
 * `tier_limits` holds the limits per tier. Unlisted ports are tier 0.
 *
 * Shapes: cases merged by arithmetic — ACTIVE and PASSIVE_ESTABLISHED (4, 5) are tested as
 * `(op & ~1) == 4`; the loss ops RTO_CB..STATE_CB (8, 9, 10) as a range check (`op - 8 < 3`,
 * clang's `r += -8; if r > 2` form).
 */
// BUILD: ref-ops 4 5 8 9 10 11
#include "common.h"

struct tier_limit {
	__s32 sndbuf; /* bytes, 0: leave */
	__s32 rcvbuf; /* bytes, 0: leave */
	__s32 window_clamp; /* bytes, 0: leave */
	__u32 cwnd_clamp; /* segments after loss, 0: leave */
	__u32 loss_events_before_clamp;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* local port, host order */
	__type(value, __u32); /* tier */
} tier_of SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct tier_limit);
} tier_limits SEC(".maps");

/* Per connection (socket cookie): its tier and loss events, to clamp cwnd after a few of them. */
struct conn_loss {
	__u32 tier;
	__u32 losses;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn_loss);
} loss_events SEC(".maps");

static __always_inline __u32 tier_for(struct bpf_sock_ops *skops)
{
	__u32 port = skops->local_port;
	__u32 *tier = bpf_map_lookup_elem(&tier_of, &port);

	return tier ? *tier : 0;
}

static __always_inline void set_int(struct bpf_sock_ops *skops, int level, int name, int v)
{
	if (v > 0)
		bpf_setsockopt(skops, level, name, &v, sizeof(v));
}

static __always_inline void clamp_buffers(struct bpf_sock_ops *skops, struct tier_limit *l)
{
	set_int(skops, SOL_SOCKET, SO_SNDBUF, l->sndbuf);
	set_int(skops, SOL_SOCKET, SO_RCVBUF, l->rcvbuf);
	set_int(skops, SOL_TCP, TCP_WINDOW_CLAMP, l->window_clamp);
}

/* RTO and retransmit callbacks count as loss evidence; a close forgets the connection. */
static __always_inline void on_loss_op(struct bpf_sock_ops *skops, __u32 op)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct conn_loss *c;
	struct tier_limit *l;

	if (op == BPF_SOCK_OPS_STATE_CB) {
		if (skops->args[1] == BPF_TCP_CLOSE)
			bpf_map_delete_elem(&loss_events, &cookie);
		return;
	}
	c = bpf_map_lookup_elem(&loss_events, &cookie);
	if (!c)
		return;
	c->losses += 1;
	l = bpf_map_lookup_elem(&tier_limits, &c->tier);
	if (l && l->cwnd_clamp && c->losses == l->loss_events_before_clamp)
		set_int(skops, SOL_TCP, TCP_BPF_SNDCWND_CLAMP, l->cwnd_clamp);
}

SEC("sockops")
int buf_clamp(struct bpf_sock_ops *skops)
{
	__u32 op = OP(skops);
	struct conn_loss c = {};
	struct tier_limit *l;
	__u64 cookie;

	if ((op & ~1) == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		/* Both ESTABLISHED ops: the buffers are final once the handshake is done. */
		c.tier = tier_for(skops);
		l = bpf_map_lookup_elem(&tier_limits, &c.tier);
		if (!l)
			return 1;
		clamp_buffers(skops, l);
		if (l->cwnd_clamp) {
			cookie = bpf_get_socket_cookie(skops);
			bpf_map_update_elem(&loss_events, &cookie, &c, BPF_ANY);
			bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_RTO_CB_FLAG |
								 BPF_SOCK_OPS_RETRANS_CB_FLAG |
								 BPF_SOCK_OPS_STATE_CB_FLAG);
		}
		return 1;
	}

	switch (op) {
	case BPF_SOCK_OPS_RTO_CB:
	case BPF_SOCK_OPS_RETRANS_CB:
	case BPF_SOCK_OPS_STATE_CB:
		on_loss_op(skops, op);
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		/* Children inherit the listener's buffer sizes until ESTABLISHED refines them. */
		c.tier = tier_for(skops);
		l = bpf_map_lookup_elem(&tier_limits, &c.tier);
		if (l)
			clamp_buffers(skops, l);
		break;
	}
	return 1;
}

FIXTURE_LICENSE("GPL");
