// SPDX-License-Identifier: GPL-2.0
// An old-style sock_ops program as written for pre-1.0 loaders (iproute2,
// bcc-era libbpf): maps declared with struct bpf_map_def in SEC("maps") and a
// kernel version in SEC("version"). It clamps socket buffers and the send
// window for peers listed in a table, and counts what it did.
//
// libbpf >= 1.0 refuses SEC("maps"); this object is exempt from the kernel
// load test until opsplit's object codec converts it.
#include "common.h"

/* The legacy map definition; libbpf's headers dropped it in 1.0. */
struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct clamp_rule {
	__u32 sndbuf;
	__u32 rcvbuf;
	__u32 cwnd_clamp;
	__u32 flags;
};

#define RULE_SET_BUFS 0x1
#define RULE_CLAMP_CWND 0x2

/* Keyed by remote IPv4 address, network order. */
struct bpf_map_def SEC("maps") clamp_rules = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(struct clamp_rule),
	.max_entries = 1024,
};

enum { ST_MATCHED, ST_BUFS_SET, ST_CWND_CLAMPED, ST_ERRORS, NR_CLAMP_STATS };

struct bpf_map_def SEC("maps") clamp_stats = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = NR_CLAMP_STATS,
};

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&clamp_stats, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("sockops")
int legacy_clamp(struct bpf_sock_ops *skops)
{
	struct clamp_rule *rule;
	__u32 daddr;
	int val;

	if (skops->family != AF_INET)
		return 1;
	daddr = skops->remote_ip4;
	rule = bpf_map_lookup_elem(&clamp_rules, &daddr);
	if (!rule)
		return 1;

	switch (OP(skops)) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		stat_inc(ST_MATCHED);
		if (rule->flags & RULE_SET_BUFS) {
			val = rule->sndbuf;
			if (bpf_setsockopt(skops, SOL_SOCKET, SO_SNDBUF, &val, sizeof(val)))
				stat_inc(ST_ERRORS);
			val = rule->rcvbuf;
			if (bpf_setsockopt(skops, SOL_SOCKET, SO_RCVBUF, &val, sizeof(val)))
				stat_inc(ST_ERRORS);
			else
				stat_inc(ST_BUFS_SET);
		}
		if (rule->flags & RULE_CLAMP_CWND) {
			val = rule->cwnd_clamp;
			if (bpf_setsockopt(skops, SOL_TCP, TCP_BPF_SNDCWND_CLAMP, &val, sizeof(val)))
				stat_inc(ST_ERRORS);
			else
				stat_inc(ST_CWND_CLAMPED);
		}
		break;
	case BPF_SOCK_OPS_RWND_INIT:
		/* Match the receive buffer clamp from the first window on. */
		if (rule->flags & RULE_SET_BUFS)
			skops->reply = rule->rcvbuf / 1460;
		break;
	default:
		break;
	}
	return 1;
}

FIXTURE_LICENSE("GPL");
/* 6.18.44; the kernel has ignored it for sock_ops since it was introduced. */
__u32 _version SEC("version") = 0x06122c;
