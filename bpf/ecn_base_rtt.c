// SPDX-License-Identifier: GPL-2.0
// Datacenter ECN and TCP-NV tuning: connections to prefixes listed by the
// operator negotiate ECN (DCTCP-style fabrics), and TCP-NV gets the fabric's
// base RTT instead of learning it from the first samples.
//
// BUILD: variants v1 O1
// BUILD: ref-ops 6 7
#include "common.h"

struct prefix_key {
	__u32 prefixlen;
	__u32 addr[4]; /* IPv4 is stored as ::ffff:a.b.c.d */
};

struct prefix_policy {
	__u32 base_rtt_us; /* 0: use the global default */
	__u32 ecn;         /* 1: negotiate ECN */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct prefix_key);
	__type(value, struct prefix_policy);
} fabric_prefixes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} ecn_stats SEC(".maps");

enum { STAT_ECN_ON, STAT_ECN_OFF, STAT_BASE_RTT_PREFIX, STAT_BASE_RTT_DEFAULT };

/* Fabric-wide base RTT, set by the loader before attach. */
const volatile __u32 default_base_rtt_us = 80;

static __always_inline void bump(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&ecn_stats, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline struct prefix_policy *lookup_peer(struct bpf_sock_ops *skops)
{
	struct prefix_key key = { .prefixlen = 128 };

	if (skops->family == AF_INET6) {
		key.addr[0] = skops->remote_ip6[0];
		key.addr[1] = skops->remote_ip6[1];
		key.addr[2] = skops->remote_ip6[2];
		key.addr[3] = skops->remote_ip6[3];
	} else if (skops->family == AF_INET) {
		key.addr[2] = bpf_htonl(0x0000ffff);
		__u32 ip4 = skops->remote_ip4;

		/* Keeps clang from merging this load with the IPv6 one into a
		 * variable-offset ctx load, which the verifier refuses. */
		barrier_var(ip4);
		key.addr[3] = ip4;
	} else {
		return NULL;
	}
	return bpf_map_lookup_elem(&fabric_prefixes, &key);
}

SEC("sockops")
int ecn_base_rtt(struct bpf_sock_ops *skops)
{
	struct prefix_policy *pol;
	int rv = -1;

	switch (OP(skops)) {
	case BPF_SOCK_OPS_NEEDS_ECN:
		pol = lookup_peer(skops);
		if (pol && pol->ecn) {
			rv = 1;
			bump(STAT_ECN_ON);
		} else {
			rv = 0;
			bump(STAT_ECN_OFF);
		}
		break;
	case BPF_SOCK_OPS_BASE_RTT:
		pol = lookup_peer(skops);
		if (pol && pol->base_rtt_us) {
			rv = pol->base_rtt_us;
			bump(STAT_BASE_RTT_PREFIX);
		} else {
			rv = default_base_rtt_us;
			bump(STAT_BASE_RTT_DEFAULT);
		}
		break;
	default:
		break;
	}
	skops->reply = rv;
	return 1;
}

FIXTURE_LICENSE("GPL");
