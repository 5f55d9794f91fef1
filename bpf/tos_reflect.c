// SPDX-License-Identifier: GPL-2.0
/*
 * DSCP marking and reflection.
 *
 * Each local service port may carry a DSCP class (`port_class`). Outgoing connections and
 * listeners get the class of their port; a server port may instead ask to *reflect* the client's
 * DSCP, read from the IP header of the saved SYN (TCP_SAVE_SYN is switched on for the listener).
 * The ECN bits of the current TOS/TCLASS are kept: they belong to the stack, not to the policy.
 *
 * Shapes: three ops that share one body (TCP_CONNECT_CB, ACTIVE_ESTABLISHED_CB, TCP_LISTEN_CB)
 * are selected by a mask, `(1 << op) & mask` after the bound check `op < 32`.
 */
// BUILD: variants v1
// BUILD: ref-ops 3 4 5 11
#include "common.h"

#define CLASS_REFLECT 0x1 /* server port: copy the client's DSCP */

struct port_class {
	__u8 dscp; /* 0..63 */
	__u8 flags;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* local port, host order */
	__type(value, struct port_class);
} port_class SEC(".maps");

/* DSCP reflected, per class (64 slots), for the operator to see what clients send. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} reflected SEC(".maps");

#define ENOSPC 28
#define ECN_MASK 0x3

/* TOS on v4, TCLASS on v6: same byte layout (DSCP << 2 | ECN). */
static __always_inline int tos_level(struct bpf_sock_ops *skops, int *name)
{
	if (skops->family == AF_INET6) {
		*name = IPV6_TCLASS;
		return SOL_IPV6;
	}
	*name = IP_TOS;
	return SOL_IP;
}

static __always_inline void set_dscp(struct bpf_sock_ops *skops, __u8 dscp)
{
	int name, level = tos_level(skops, &name);
	int tos = 0;

	if (bpf_getsockopt(skops, level, name, &tos, sizeof(tos)))
		tos = 0;
	tos = (tos & ECN_MASK) | (dscp << 2);
	bpf_setsockopt(skops, level, name, &tos, sizeof(tos));
}

static __always_inline void apply_port_class(struct bpf_sock_ops *skops)
{
	__u32 port = skops->local_port;
	struct port_class *pc = bpf_map_lookup_elem(&port_class, &port);
	int one = 1;

	if (!pc)
		return;
	if (pc->flags & CLASS_REFLECT) {
		/* Listener: keep SYNs so that the child can read the client's DSCP. */
		if (skops->state == BPF_TCP_LISTEN)
			bpf_setsockopt(skops, SOL_TCP, TCP_SAVE_SYN, &one, sizeof(one));
		return;
	}
	set_dscp(skops, pc->dscp);
}

static __always_inline void reflect_peer(struct bpf_sock_ops *skops)
{
	__u32 port = skops->local_port;
	struct port_class *pc = bpf_map_lookup_elem(&port_class, &port);
	__u8 ip[8] = {};
	__u32 slot;
	__u8 dscp;
	int ret;

	if (!pc)
		return;
	if (!(pc->flags & CLASS_REFLECT)) {
		set_dscp(skops, pc->dscp);
		return;
	}
	/* Only the first bytes of the IP header matter; -ENOSPC still copies them. */
	ret = bpf_getsockopt(skops, SOL_TCP, TCP_BPF_SYN_IP, ip, sizeof(ip));
	if (ret < 0 && ret != -ENOSPC)
		return;
	if ((ip[0] >> 4) == 4)
		dscp = ip[1] >> 2;
	else if ((ip[0] >> 4) == 6)
		dscp = ((ip[0] & 0xf) << 2) | (ip[1] >> 6);
	else
		return;
	set_dscp(skops, dscp);
	slot = dscp;
	__u64 *n = bpf_map_lookup_elem(&reflected, &slot);
	if (n)
		*n += 1;
}

/* The ops where a port's configured class is (re)applied. */
#define CLASS_OPS                                                                                \
	((1u << BPF_SOCK_OPS_TCP_CONNECT_CB) | (1u << BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) |       \
	 (1u << BPF_SOCK_OPS_TCP_LISTEN_CB))

SEC("sockops")
int tos_reflect(struct bpf_sock_ops *skops)
{
	__u32 op = OP(skops);

	if (!skops->is_fullsock)
		return 1;
	if (op < 32 && ((1u << op) & CLASS_OPS))
		apply_port_class(skops);
	else if (op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		reflect_peer(skops);
	return 1;
}

FIXTURE_LICENSE("GPL");
