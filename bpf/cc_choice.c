// SPDX-License-Identifier: GPL-2.0
/*
 * Congestion-control choice by setsockopt(TCP_CONGESTION).
 *
 * Two operating modes, picked at run time from the `cc_settings` array map so that an operator can
 * flip a whole host without reloading:
 *  - MODE_GLOBAL: every connection uses settings->cc (e.g. "bbr"), chosen as early as possible
 *    (TCP_CONNECT_CB for clients, the listener for servers), ECN as configured, and a fixed base
 *    RTT for TCP-NV.
 *  - MODE_PER_PORT: the `port_cc` map picks the algorithm per service port once the connection
 *    is established, plus per-port ECN; anything unlisted keeps the system default.
 * Every choice the kernel refuses (module not loaded, "cdg", …) is counted per op.
 *
 * Shapes: two `switch (op)` dispatch trees, selected by a value loaded from a map; each switch has
 * sparse, distinct cases and is lowered as a binary search tree (ordered compares on the op).
 */
// BUILD: ref-ops 3 4 5 6 7 11 12
#include "common.h"

enum cc_mode {
	MODE_OFF = 0,
	MODE_GLOBAL = 1,
	MODE_PER_PORT = 2,
};

struct cc_settings {
	__u32 mode; /* enum cc_mode */
	__u32 ecn; /* MODE_GLOBAL: negotiate ECN */
	__u32 base_rtt_us; /* MODE_GLOBAL: reply to BASE_RTT (TCP-NV), 0: none */
	__u32 pad;
	char cc[TCP_CA_NAME_MAX]; /* MODE_GLOBAL */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cc_settings);
} cc_settings SEC(".maps");

struct port_choice {
	char cc[TCP_CA_NAME_MAX];
	__u32 ecn;
	__u32 flags;
};

#define PORT_CC_CLIENT_TOO 0x1 /* also apply when the port is the peer's (outbound) */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32); /* host-order port */
	__type(value, struct port_choice);
} port_cc SEC(".maps");

/* Refused setsockopt calls, by op. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} cc_refused SEC(".maps");

/* Newest srtt seen on a per-port connection, exported for the capacity dashboards. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} port_srtt SEC(".maps");

static __always_inline void refused(__u32 op)
{
	__u64 *n = bpf_map_lookup_elem(&cc_refused, &op);

	if (n)
		*n += 1;
}

/* The kernel copies at most TCP_CA_NAME_MAX - 1 bytes and terminates the name itself, so the map
 * value is passed as is. */
static __always_inline int set_cc(struct bpf_sock_ops *skops, char *name)
{
	return bpf_setsockopt(skops, SOL_TCP, TCP_CONGESTION, name, TCP_CA_NAME_MAX);
}

static __always_inline struct port_choice *choice_for(__u32 port)
{
	return bpf_map_lookup_elem(&port_cc, &port);
}

static __always_inline int global_mode(struct bpf_sock_ops *skops, struct cc_settings *set,
				       __u32 op)
{
	switch (op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		/* Before the SYN: the algorithm is in place for the whole connection. */
		if (set_cc(skops, set->cc))
			refused(op);
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		/* Children clone the listener, algorithm included. */
		if (set_cc(skops, set->cc))
			refused(op);
		break;
	case BPF_SOCK_OPS_NEEDS_ECN:
		skops->reply = set->ecn ? 1 : 0;
		break;
	case BPF_SOCK_OPS_BASE_RTT:
		if (!set->base_rtt_us)
			return 0;
		skops->reply = set->base_rtt_us;
		break;
	case BPF_SOCK_OPS_RTT_CB:
		/* A srtt far above the configured base means the path changed: re-learn it. */
		if (set->base_rtt_us && (skops->srtt_us >> 3) > 4 * set->base_rtt_us)
			set->base_rtt_us = skops->srtt_us >> 3;
		break;
	}
	return 1;
}

static __always_inline int per_port_mode(struct bpf_sock_ops *skops, __u32 op)
{
	struct port_choice *c;
	__u32 port, srtt;

	switch (op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		port = bpf_ntohl(skops->remote_port);
		c = choice_for(port);
		if (c && (c->flags & PORT_CC_CLIENT_TOO) && set_cc(skops, c->cc))
			refused(op);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		c = choice_for(skops->local_port);
		if (c && set_cc(skops, c->cc))
			refused(op);
		/* RTT samples feed port_srtt for servers only. */
		if (c)
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							     BPF_SOCK_OPS_RTT_CB_FLAG);
		break;
	case BPF_SOCK_OPS_NEEDS_ECN:
		/* On a SYN-ACK the socket is a request sock: local_port still reads. */
		c = choice_for(skops->local_port);
		if (!c)
			c = choice_for(bpf_ntohl(skops->remote_port));
		skops->reply = c && c->ecn;
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		c = choice_for(skops->local_port);
		if (c && set_cc(skops, c->cc))
			refused(op);
		break;
	case BPF_SOCK_OPS_RTT_CB:
		port = skops->local_port;
		srtt = skops->args[1] >> 3; /* the new srtt; the ctx field is still the old one */
		bpf_map_update_elem(&port_srtt, &port, &srtt, BPF_ANY);
		break;
	}
	return 1;
}

SEC("sockops")
int cc_choice(struct bpf_sock_ops *skops)
{
	__u32 zero = 0;
	struct cc_settings *set = bpf_map_lookup_elem(&cc_settings, &zero);

	if (!set)
		return 1;
	if (set->mode == MODE_GLOBAL)
		return global_mode(skops, set, OP(skops));
	if (set->mode == MODE_PER_PORT)
		return per_port_mode(skops, OP(skops));
	return 1;
}

FIXTURE_LICENSE("GPL");
