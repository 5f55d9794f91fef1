// SPDX-License-Identifier: GPL-2.0
// Server-side policy keyed by listening port. When a socket starts listening
// the callbacks its service wants are armed on the listener, so every accepted
// child inherits them. SYN-ACK RTO and initial window are chosen on the request
// socket (no full socket yet: only addresses and ports can be read), with a
// shorter RTO for clients inside the operator's trusted prefix. Accepted
// connections are recorded from the bpf_sock view of the child.
//
// BUILD: variants v1
// BUILD: ref-ops 1 2 5 8 9 10 11
#include "common.h"

struct listen_policy {
	__u32 cb_flags;      /* armed on the listener, inherited by children */
	__u32 synack_rto_ms; /* 0: kernel default */
	__u32 trusted_rto_ms; /* for clients in the trusted prefix */
	__u32 rwnd_segs;     /* 0: kernel default */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, __u32); /* local port, host order */
	__type(value, struct listen_policy);
} listen_policies SEC(".maps");

struct accepted_conn {
	__u32 family;
	__u32 local_port;
	__u32 remote_port;
	__u32 remote_ip4;
	__u32 remote_ip6[4];
	__u32 mark;
	__u32 priority;
	__u32 bound_dev_if;
	__u32 state_at_accept;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie */
	__type(value, struct accepted_conn);
} accepted SEC(".maps");

struct port_counters {
	__u64 listens;
	__u64 synacks_tuned;
	__u64 accepted;
	__u64 rto_fired;
	__u64 retrans;
	__u64 closed;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, struct port_counters);
} port_stats SEC(".maps");

const volatile __u32 hz = 250;
/* Trusted client prefix (IPv4, network order) and its mask. */
const volatile __u32 trusted_net = 0x0000a8c0; /* 192.168.0.0 */
const volatile __u32 trusted_mask = 0x0000ffff; /* /16 */

static __always_inline struct port_counters *counters(__u32 port)
{
	struct port_counters zero = {}, *c;

	c = bpf_map_lookup_elem(&port_stats, &port);
	if (c)
		return c;
	bpf_map_update_elem(&port_stats, &port, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&port_stats, &port);
}

static __always_inline int trusted_client(struct bpf_sock_ops *skops)
{
	return skops->family == AF_INET && (skops->remote_ip4 & trusted_mask) == trusted_net;
}

SEC("sockops")
int listener_policy(struct bpf_sock_ops *skops)
{
	struct listen_policy *pol;
	struct port_counters *cnt;
	struct accepted_conn conn = {};
	struct bpf_sock *sk;
	__u64 cookie;
	__u32 lport = skops->local_port;
	int rv = -1;

	switch (OP(skops)) {
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		pol = bpf_map_lookup_elem(&listen_policies, &lport);
		if (!pol)
			break;
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | pol->cb_flags);
		cnt = counters(lport);
		if (cnt)
			cnt->listens++;
		break;
	case BPF_SOCK_OPS_TIMEOUT_INIT:
		/* Request socket of one of our listeners: the SYN-ACK's RTO. */
		if (skops->is_fullsock)
			break;
		pol = bpf_map_lookup_elem(&listen_policies, &lport);
		if (!pol)
			break;
		if (pol->trusted_rto_ms && trusted_client(skops))
			rv = pol->trusted_rto_ms * hz / 1000;
		else if (pol->synack_rto_ms)
			rv = pol->synack_rto_ms * hz / 1000;
		cnt = counters(lport);
		if (cnt && rv > 0)
			cnt->synacks_tuned++;
		break;
	case BPF_SOCK_OPS_RWND_INIT:
		if (skops->is_fullsock)
			break;
		pol = bpf_map_lookup_elem(&listen_policies, &lport);
		if (pol && pol->rwnd_segs)
			rv = pol->rwnd_segs;
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		sk = skops->sk;
		if (!sk)
			break;
		conn.family = sk->family;
		conn.local_port = sk->src_port;
		conn.remote_port = bpf_ntohs(sk->dst_port);
		if (conn.family == AF_INET6) {
			conn.remote_ip6[0] = sk->dst_ip6[0];
			conn.remote_ip6[1] = sk->dst_ip6[1];
			conn.remote_ip6[2] = sk->dst_ip6[2];
			conn.remote_ip6[3] = sk->dst_ip6[3];
		} else {
			__u32 ip4 = sk->dst_ip4;

			/* Keeps clang from merging this load with dst_ip6[3] into a
			 * variable-offset one: the verifier refuses arithmetic on sock. */
			barrier_var(ip4);
			conn.remote_ip4 = ip4;
		}
		conn.mark = sk->mark;
		conn.priority = sk->priority;
		conn.bound_dev_if = sk->bound_dev_if;
		conn.state_at_accept = sk->state;
		cookie = bpf_get_socket_cookie(skops);
		bpf_map_update_elem(&accepted, &cookie, &conn, BPF_ANY);
		cnt = counters(conn.local_port);
		if (cnt)
			cnt->accepted++;
		break;
	case BPF_SOCK_OPS_RTO_CB:
		cnt = counters(lport);
		if (cnt)
			cnt->rto_fired++;
		break;
	case BPF_SOCK_OPS_RETRANS_CB:
		cnt = counters(lport);
		if (cnt)
			cnt->retrans++;
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] != BPF_TCP_CLOSE)
			break;
		cookie = bpf_get_socket_cookie(skops);
		bpf_map_delete_elem(&accepted, &cookie);
		cnt = counters(lport);
		if (cnt)
			cnt->closed++;
		break;
	default:
		break;
	}
	skops->reply = rv;
	return 1;
}

FIXTURE_LICENSE("GPL");
