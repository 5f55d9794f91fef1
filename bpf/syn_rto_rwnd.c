// SPDX-License-Identifier: GPL-2.0
/*
 * Per-destination SYN/SYN-ACK RTO, initial receive window and ECN.
 *
 * Operators fill `dst_policy` with the destinations (v4 or v6, exact address) that sit behind
 * long-haul or lossy links: they want a longer initial RTO than the 1 s default, a larger initial
 * receive window, and ECN negotiated. Everything else keeps the kernel defaults, except that the
 * fleet-wide default RTO can be set at load time through the `default_rto_ms` rodata knob.
 *
 * Shapes: switch on the op lowered as a jump chain (three sparse cases, distinct bodies); reply
 * written in three ops; returns 0 for RWND_INIT without policy (the kernel then ignores reply and
 * uses the route metric); .rodata `const volatile` knobs; a .kconfig extern (CONFIG_HZ) for the
 * ms -> jiffies conversion.
 */
// BUILD: variants v1 v4 O1
// BUILD: ref-ops 1 2 6
#include "common.h"

struct dst_key {
	__u32 family; /* AF_INET or AF_INET6 */
	__u32 addr[4]; /* network order; v4 uses addr[0] only */
};

#define POLICY_ECN 0x1 /* negotiate ECN on SYN / SYN-ACK */
#define POLICY_NO_RTO 0x2 /* leave the RTO to the kernel even with a default set */

struct dst_policy {
	__u32 syn_rto_ms; /* 0: use default_rto_ms */
	__u32 init_rwnd_segs; /* 0: kernel default (route metric) */
	__u32 flags;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct dst_key);
	__type(value, struct dst_policy);
} dst_policy SEC(".maps");

/* Hits per op, for the operator's dashboard: [0] timeout, [1] rwnd, [2] ecn. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} policy_hits SEC(".maps");

/* Load-time knobs (set through the skeleton's rodata before load). */
const volatile __u32 default_rto_ms = 0; /* 0: kernel default (1 s) */
const volatile __u32 max_rto_ms = 60000;

extern unsigned int CONFIG_HZ __kconfig;

static __always_inline struct dst_policy *policy_for(struct bpf_sock_ops *skops)
{
	struct dst_key key = {};

	key.family = skops->family;
	if (key.family == AF_INET) {
		__u32 ip4 = skops->remote_ip4;

		/* Keeps clang from sharing one ctx load between the v4 and v6 branches through a
		 * computed ctx offset, which the verifier rejects ("modified ctx ptr"). */
		barrier_var(ip4);
		key.addr[0] = ip4;
	} else if (key.family == AF_INET6) {
		key.addr[0] = skops->remote_ip6[0];
		key.addr[1] = skops->remote_ip6[1];
		key.addr[2] = skops->remote_ip6[2];
		key.addr[3] = skops->remote_ip6[3];
	} else {
		return NULL;
	}
	return bpf_map_lookup_elem(&dst_policy, &key);
}

static __always_inline void count_hit(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&policy_hits, &slot);

	if (n)
		*n += 1;
}

/* The kernel wants jiffies; round up so that a 1 ms policy never becomes 0 (= default). */
static __always_inline __u32 ms_to_jiffies(__u32 ms)
{
	return (ms * CONFIG_HZ + 999) / 1000;
}

SEC("sockops")
int syn_rto_rwnd(struct bpf_sock_ops *skops)
{
	struct dst_policy *p;
	__u32 rto_ms;

	switch (OP(skops)) {
	case BPF_SOCK_OPS_TIMEOUT_INIT:
		p = policy_for(skops);
		rto_ms = p && p->syn_rto_ms ? p->syn_rto_ms : default_rto_ms;
		if ((p && (p->flags & POLICY_NO_RTO)) || !rto_ms)
			return 1;
		if (rto_ms > max_rto_ms)
			rto_ms = max_rto_ms;
		skops->reply = ms_to_jiffies(rto_ms);
		count_hit(0);
		return 1;
	case BPF_SOCK_OPS_RWND_INIT:
		p = policy_for(skops);
		/* Returning 0 makes tcp_call_bpf() report -1: the route's initrwnd applies. */
		if (!p || !p->init_rwnd_segs)
			return 0;
		skops->reply = p->init_rwnd_segs;
		count_hit(1);
		return 1;
	case BPF_SOCK_OPS_NEEDS_ECN:
		p = policy_for(skops);
		if (!p)
			return 1;
		skops->reply = (p->flags & POLICY_ECN) ? 1 : 0;
		count_hit(2);
		return 1;
	}
	return 1;
}

FIXTURE_LICENSE("GPL");
