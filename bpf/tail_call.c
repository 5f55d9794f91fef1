// SPDX-License-Identifier: GPL-2.0
// A sock_ops dispatcher in the style of multi-team deployments: the attached
// program tail-calls into one program per op through a PROG_ARRAY, so each
// team can replace its handler without reattaching. The jump table is filled
// by libbpf at load time from the static initialiser below. ACTIVE_ESTABLISHED
// is handled inline; ops without a handler fall through to a miss counter.
//
// BUILD: variants v4
// BUILD: ref-ops 1 2 3 4 10
#include "common.h"

int handle_timeout_init(struct bpf_sock_ops *skops);
int handle_rwnd_init(struct bpf_sock_ops *skops);
int handle_connect(struct bpf_sock_ops *skops);
int handle_state(struct bpf_sock_ops *skops);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, BPF_SOCK_OPS_TSTAMP_SENDMSG_CB + 1);
	__type(key, __u32);
	__array(values, int(struct bpf_sock_ops *));
} op_handlers SEC(".maps") = {
	.values = {
		[BPF_SOCK_OPS_TIMEOUT_INIT] = (void *)&handle_timeout_init,
		[BPF_SOCK_OPS_RWND_INIT] = (void *)&handle_rwnd_init,
		[BPF_SOCK_OPS_TCP_CONNECT_CB] = (void *)&handle_connect,
		[BPF_SOCK_OPS_STATE_CB] = (void *)&handle_state,
	},
};

/* Per-listening/remote port SYN RTO in milliseconds. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} port_rto_ms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BPF_TCP_MAX_STATES);
	__type(key, __u32);
	__type(value, __u64);
} state_entries SEC(".maps");

const volatile __u32 hz = 250;
const volatile __u32 init_rwnd_segs = 64;
const volatile __u32 notsent_lowat = 128 * 1024;

__u64 dispatch_misses;
__u64 inline_established;

SEC("sockops")
int dispatch(struct bpf_sock_ops *skops)
{
	__u32 op = OP(skops);
	int lowat = notsent_lowat;

	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		__sync_fetch_and_add(&inline_established, 1);
		bpf_setsockopt(skops, SOL_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
		return 1;
	}
	bpf_tail_call(skops, &op_handlers, op);
	/* No handler installed for this op (or the slot was emptied). */
	__sync_fetch_and_add(&dispatch_misses, 1);
	return 1;
}

SEC("sockops")
int handle_timeout_init(struct bpf_sock_ops *skops)
{
	__u32 port = skops->is_fullsock ? bpf_ntohl(skops->remote_port) : skops->local_port;
	__u32 *ms = bpf_map_lookup_elem(&port_rto_ms, &port);

	skops->reply = ms ? *ms * hz / 1000 : -1;
	return 1;
}

SEC("sockops")
int handle_rwnd_init(struct bpf_sock_ops *skops)
{
	skops->reply = init_rwnd_segs;
	return 1;
}

SEC("sockops")
int handle_connect(struct bpf_sock_ops *skops)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	return 1;
}

SEC("sockops")
int handle_state(struct bpf_sock_ops *skops)
{
	__u32 new_state = skops->args[1];
	__u64 *n = bpf_map_lookup_elem(&state_entries, &new_state);

	if (n)
		__sync_fetch_and_add(n, 1);
	return 1;
}

FIXTURE_LICENSE("GPL");
