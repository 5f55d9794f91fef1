// SPDX-License-Identifier: GPL-2.0
// Per-port callback policy: the operator lists up to MAX_POLICIES port rules,
// each asking for some sock_ops callbacks (RTT, retransmit, state). Active
// connections get the flags with bpf_sock_ops_cb_flags_set, passive ones
// through bpf_setsockopt(TCP_BPF_SOCK_OPS_CB_FLAGS) -- the two halves of this
// program were written by different teams. RTT sampling is dropped again once
// the connection is known to be fast.
//
// BUILD: variants v4 O1
// BUILD: ref-ops 3 5 9 10 12
#include "common.h"

#define MAX_POLICIES 8

struct port_policy {
	__u32 port;        /* host order; 0 ends the table */
	__u32 cb_flags;    /* BPF_SOCK_OPS_*_CB_FLAG wanted */
	__u32 slow_srtt_us; /* keep RTT callbacks only above this smoothed RTT */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_POLICIES);
	__type(key, __u32);
	__type(value, struct port_policy);
} policies SEC(".maps");

struct cb_stats {
	__u64 active_set;
	__u64 passive_set;
	__u64 set_failed;
	__u64 rtt_dropped;
	__u64 rtt_samples;
	__u64 retrans;
	__u64 state_changes;
	__u64 rules_scanned;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cb_stats);
} stats SEC(".maps");

/* What the bpf_loop callback sees: the context itself rides along. */
struct match_ctx {
	struct bpf_sock_ops *skops;
	__u32 flags;
	__u32 matched;
	__u32 scanned;
};

static long match_policy(__u32 i, void *data)
{
	struct match_ctx *m = data;
	struct bpf_sock_ops *skops = m->skops;
	struct port_policy *p;
	__u32 rport, lport;

	p = bpf_map_lookup_elem(&policies, &i);
	m->scanned++;
	if (!p || !p->port)
		return 1;
	rport = bpf_ntohl(skops->remote_port);
	lport = skops->local_port;
	if (p->port != rport && p->port != lport)
		return 0;
	/* On RTT samples only rules still asking for RTT on a slow path count. */
	if (OP(skops) == BPF_SOCK_OPS_RTT_CB &&
	    (skops->srtt_us >> 3) < p->slow_srtt_us)
		return 0;
	m->flags |= p->cb_flags;
	m->matched++;
	return 0;
}

SEC("sockops")
int cb_flags_both(struct bpf_sock_ops *skops)
{
	struct match_ctx m = { .skops = skops };
	struct cb_stats *s;
	__u32 zero = 0;
	int flags;

	s = bpf_map_lookup_elem(&stats, &zero);
	if (!s)
		return 1;

	switch (OP(skops)) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		bpf_loop(MAX_POLICIES, match_policy, &m, 0);
		s->rules_scanned += m.scanned;
		if (!m.matched)
			break;
		if (bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | m.flags))
			s->set_failed++;
		else
			s->active_set++;
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		bpf_loop(MAX_POLICIES, match_policy, &m, 0);
		s->rules_scanned += m.scanned;
		if (!m.matched)
			break;
		flags = skops->bpf_sock_ops_cb_flags | m.flags;
		if (bpf_setsockopt(skops, SOL_TCP, TCP_BPF_SOCK_OPS_CB_FLAGS, &flags, sizeof(flags)))
			s->set_failed++;
		else
			s->passive_set++;
		break;
	case BPF_SOCK_OPS_RTT_CB:
		s->rtt_samples++;
		bpf_loop(MAX_POLICIES, match_policy, &m, 0);
		s->rules_scanned += m.scanned;
		if (m.flags & BPF_SOCK_OPS_RTT_CB_FLAG)
			break;
		flags = skops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_RTT_CB_FLAG;
		if (bpf_setsockopt(skops, SOL_TCP, TCP_BPF_SOCK_OPS_CB_FLAGS, &flags, sizeof(flags)))
			s->set_failed++;
		else
			s->rtt_dropped++;
		break;
	case BPF_SOCK_OPS_RETRANS_CB:
		s->retrans++;
		break;
	case BPF_SOCK_OPS_STATE_CB:
		s->state_changes++;
		break;
	default:
		break;
	}
	return 1;
}

FIXTURE_LICENSE("GPL");
