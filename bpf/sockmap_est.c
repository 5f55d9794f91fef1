// SPDX-License-Identifier: GPL-2.0
/*
 * Same-host socket splicing for a sidecar proxy.
 *
 * When an application and its local proxy talk over loopback TCP, both ends are on this host.
 * Every established IPv4 connection on a port listed in `accel_ports` is inserted into a sockhash
 * keyed by its 4-tuple; the sk_msg program attached to that sockhash then hands each sendmsg
 * straight to the peer socket's ingress queue (looked up by the reversed 4-tuple), skipping the
 * TCP/IP stack. Connections whose peer is not in the map go the normal way.
 *
 * Shapes: sockhash insertion (bpf_sock_hash_update) in ACTIVE/PASSIVE_ESTABLISHED_CB; an
 * SEC("sk_msg") program in the same object using the same map; the op used as a map key (per-op
 * call counter indexed by the op).
 */
// BUILD: ref-ops 4 5
#include "common.h"

struct sock_key {
	__u32 sip4; /* network order */
	__u32 dip4; /* network order */
	__u32 sport; /* host order */
	__u32 dport; /* host order */
};

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct sock_key);
	__type(value, __u64);
} sock_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32); /* host-order port (either end) */
	__type(value, __u32);
} accel_ports SEC(".maps");

/* How often each op reached the program, to verify which callbacks are live. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 32);
	__type(key, __u32);
	__type(value, __u64);
} op_calls SEC(".maps");

struct splice_stats {
	__u64 inserted;
	__u64 insert_failed;
	__u64 redirected;
	__u64 passed;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct splice_stats);
} splice_stats SEC(".maps");

static __always_inline struct splice_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&splice_stats, &zero);
}

static __always_inline int accelerated(__u32 lport, __u32 rport)
{
	return bpf_map_lookup_elem(&accel_ports, &lport) ||
	       bpf_map_lookup_elem(&accel_ports, &rport);
}

static __always_inline void insert(struct bpf_sock_ops *skops)
{
	struct sock_key key = {};
	struct splice_stats *s;
	long err;

	if (skops->family != AF_INET)
		return;
	key.sip4 = skops->local_ip4;
	key.dip4 = skops->remote_ip4;
	key.sport = skops->local_port;
	key.dport = bpf_ntohl(skops->remote_port);
	if (!accelerated(key.sport, key.dport))
		return;
	err = bpf_sock_hash_update(skops, &sock_hash, &key, BPF_NOEXIST);
	s = stats();
	if (!s)
		return;
	if (err)
		s->insert_failed++;
	else
		s->inserted++;
}

SEC("sockops")
int sockmap_est(struct bpf_sock_ops *skops)
{
	__u32 op = OP(skops);
	__u64 *calls;

	calls = bpf_map_lookup_elem(&op_calls, &op);
	if (calls)
		__sync_fetch_and_add(calls, 1);

	switch (op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		insert(skops);
		break;
	}
	return 1;
}

SEC("sk_msg")
int sockmap_redir(struct sk_msg_md *msg)
{
	struct sock_key peer = {};
	struct splice_stats *s = stats();
	long verdict;

	if (msg->family != AF_INET)
		return SK_PASS;
	/* The peer socket's key is our 4-tuple seen from the other end. */
	peer.sip4 = msg->remote_ip4;
	peer.dip4 = msg->local_ip4;
	peer.sport = bpf_ntohl(msg->remote_port);
	peer.dport = msg->local_port;
	verdict = bpf_msg_redirect_hash(msg, &sock_hash, &peer, BPF_F_INGRESS);
	if (s) {
		if (verdict == SK_PASS)
			s->redirected++;
		else
			s->passed++;
	}
	/* Not found: let the message take the normal path instead of dropping it. */
	return SK_PASS;
}

FIXTURE_LICENSE("GPL");
