// SPDX-License-Identifier: GPL-2.0
// Connection tuning shipped as one object with three sock_ops programs that
// the agent attaches to different cgroups: client-side tuning and server-side
// tuning share a section (libbpf tells them apart by name), and a statistics
// program lives in its own section, as older loaders expected ("sockops/..."
// prefixes). The peer classifier and the event counter are shared subprograms.
//
// BUILD: variants v1 O1
// BUILD: ref-ops 1 2 3 5 11
#include "common.h"

enum peer_class { PEER_LOCAL, PEER_LAN, PEER_WAN, NR_CLASSES };

enum event {
	EV_SYN_RTO, EV_RWND, EV_CONNECT, EV_PASSIVE, EV_LISTEN, EV_LAN, EV_WAN, EV_OTHER_OP,
	NR_EVENTS,
};

/* Tunables the agent rewrites at run time (writable globals: .data). */
__u32 syn_rto_ms[NR_CLASSES] = { 10, 40, 1000 };
__u32 init_rwnd_segs[NR_CLASSES] = { 0, 40, 20 };

/* Fixed at load time (.rodata). */
const volatile __u32 lan_net = 0x0000000a;  /* 10.0.0.0, network order */
const volatile __u32 lan_mask = 0x000000ff; /* /8, network order */
const volatile __u32 hz = 250;               /* CONFIG_HZ of the target kernel */

/* Counters read by the agent (.bss). */
__u64 events[NR_EVENTS];
__u64 ops_seen[BPF_SOCK_OPS_TSTAMP_SENDMSG_CB + 1];

static __noinline void count_event(__u32 ev)
{
	if (ev < NR_EVENTS)
		__sync_fetch_and_add(&events[ev], 1);
}

static __noinline __u32 peer_class(struct bpf_sock_ops *skops)
{
	if (skops->family == AF_INET) {
		__u32 ip = skops->remote_ip4;

		if (ip == skops->local_ip4 || (ip & 0xff) == 127)
			return PEER_LOCAL;
		if ((ip & lan_mask) == lan_net)
			return PEER_LAN;
		return PEER_WAN;
	}
	if (skops->family == AF_INET6) {
		/* fc00::/7 unique-local counts as LAN, ::1 as local. */
		__u32 w0 = bpf_ntohl(skops->remote_ip6[0]);

		if (!w0 && !skops->remote_ip6[1] && !skops->remote_ip6[2] &&
		    skops->remote_ip6[3] == bpf_htonl(1))
			return PEER_LOCAL;
		if ((w0 & 0xfe000000) == 0xfc000000)
			return PEER_LAN;
	}
	return PEER_WAN;
}

static __noinline int reply_for(struct bpf_sock_ops *skops, __u32 cls)
{
	if (cls >= NR_CLASSES)
		return -1;
	if (OP(skops) == BPF_SOCK_OPS_TIMEOUT_INIT) {
		count_event(EV_SYN_RTO);
		return syn_rto_ms[cls] * hz / 1000;
	}
	count_event(EV_RWND);
	return init_rwnd_segs[cls];
}

SEC("sockops")
int tune_client(struct bpf_sock_ops *skops)
{
	__u32 cls = peer_class(skops);
	int rv = -1;

	switch (OP(skops)) {
	case BPF_SOCK_OPS_TIMEOUT_INIT:
	case BPF_SOCK_OPS_RWND_INIT:
		rv = reply_for(skops, cls);
		break;
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		count_event(EV_CONNECT);
		count_event(cls == PEER_WAN ? EV_WAN : EV_LAN);
		break;
	default:
		count_event(EV_OTHER_OP);
		break;
	}
	skops->reply = rv;
	return 1;
}

SEC("sockops")
int tune_server(struct bpf_sock_ops *skops)
{
	int rv = -1;
	int keepalive = 1;

	switch (OP(skops)) {
	case BPF_SOCK_OPS_TIMEOUT_INIT:
		/* SYN-ACK RTO on request sockets of our listeners. */
		rv = reply_for(skops, peer_class(skops));
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		count_event(EV_PASSIVE);
		if (peer_class(skops) == PEER_WAN)
			bpf_setsockopt(skops, SOL_SOCKET, SO_KEEPALIVE, &keepalive, sizeof(keepalive));
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		count_event(EV_LISTEN);
		break;
	default:
		count_event(EV_OTHER_OP);
		break;
	}
	skops->reply = rv;
	return 1;
}

SEC("sockops/stats")
int conn_stats(struct bpf_sock_ops *skops)
{
	__u32 op = OP(skops);

	if (op <= BPF_SOCK_OPS_TSTAMP_SENDMSG_CB)
		__sync_fetch_and_add(&ops_seen[op], 1);
	if (op == BPF_SOCK_OPS_TCP_CONNECT_CB || op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		count_event(peer_class(skops) == PEER_WAN ? EV_WAN : EV_LAN);
	return 1;
}

FIXTURE_LICENSE("GPL");
