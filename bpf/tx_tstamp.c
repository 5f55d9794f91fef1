// SPDX-License-Identifier: GPL-2.0
// Transmit-path latency profiler built on BPF TX timestamping (6.15+):
// every sendmsg on an armed socket is tagged, and the time it spends until the
// qdisc (SCHED), the driver (SND_SW), the NIC (SND_HW) and the peer's ACK is
// accumulated per stage.
//
// BUILD: variants v4
// BUILD: ref-ops 4 5 16 17 18 19 20
#include "common.h"

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
extern int bpf_sock_ops_enable_tx_tstamp(struct bpf_sock_ops_kern *skops, __u64 flags) __ksym;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

struct tstamp_key {
	__u64 cookie;
	__u32 tskey;
	__u32 pad;
};

struct tstamp_val {
	__u64 sendmsg_ns;
	__u64 last_ns;
	__u32 stages_seen;
	__u32 len;
};

struct stage_stat {
	__u64 count;
	__u64 total_ns;
	__u64 max_ns;
	__u64 from_prev_ns; /* time since the previous stage of the same skb */
};

enum stage { STAGE_SCHED, STAGE_SND_SW, STAGE_SND_HW, STAGE_ACK, NR_STAGES };

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tstamp_key);
	__type(value, struct tstamp_val);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NR_STAGES);
	__type(key, __u32);
	__type(value, struct stage_stat);
} stage_latency SEC(".maps");

/* Only sockets whose peer port matches are profiled; 0 profiles everything. */
const volatile __u16 profiled_port = 0;

__u64 untracked_events = 0;

/* tskey lives in the skb's shared info, which the SCHED/SND clones share
 * with the skb tagged in SENDMSG. */
static __always_inline __u32 skb_tskey(struct bpf_sock_ops *skops)
{
	struct bpf_sock_ops_kern *kctx = bpf_cast_to_kern_ctx(skops);
	struct sk_buff *skb = kctx->skb;
	struct skb_shared_info *shinfo;

	if (!skb)
		return 0;
	shinfo = bpf_rdonly_cast(skb->head + skb->end,
				 bpf_core_type_id_kernel(struct skb_shared_info));
	return shinfo->tskey;
}

static __always_inline void account(struct bpf_sock_ops *skops, enum stage stage)
{
	struct tstamp_key key = {};
	struct tstamp_val *val;
	struct stage_stat *st;
	__u32 idx = stage;
	__u64 now, delta;

	key.cookie = bpf_get_socket_cookie(skops);
	key.tskey = skb_tskey(skops);
	val = bpf_map_lookup_elem(&inflight, &key);
	if (!val) {
		__sync_fetch_and_add(&untracked_events, 1);
		return;
	}
	now = bpf_ktime_get_ns();
	delta = now - val->sendmsg_ns;
	st = bpf_map_lookup_elem(&stage_latency, &idx);
	if (st) {
		st->count++;
		st->total_ns += delta;
		if (delta > st->max_ns)
			st->max_ns = delta;
		st->from_prev_ns += now - val->last_ns;
	}
	val->last_ns = now;
	val->stages_seen |= 1 << stage;
	if (stage == STAGE_ACK)
		bpf_map_delete_elem(&inflight, &key);
}

SEC("sockops")
int tx_tstamp(struct bpf_sock_ops *skops)
{
	struct bpf_sock_ops_kern *kctx;
	struct tstamp_key key = {};
	struct tstamp_val val = {};
	int flags = SK_BPF_CB_TX_TIMESTAMPING;

	switch (OP(skops)) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		if (profiled_port && bpf_ntohl(skops->remote_port) != profiled_port)
			break;
		bpf_setsockopt(skops, SOL_SOCKET, SK_BPF_CB_FLAGS, &flags, sizeof(flags));
		break;
	case BPF_SOCK_OPS_TSTAMP_SENDMSG_CB:
		kctx = bpf_cast_to_kern_ctx(skops);
		if (bpf_sock_ops_enable_tx_tstamp(kctx, 0))
			break;
		key.cookie = bpf_get_socket_cookie(skops);
		key.tskey = skb_tskey(skops);
		val.sendmsg_ns = bpf_ktime_get_ns();
		val.last_ns = val.sendmsg_ns;
		val.len = skops->skb_len;
		bpf_map_update_elem(&inflight, &key, &val, BPF_ANY);
		break;
	case BPF_SOCK_OPS_TSTAMP_SCHED_CB:
		account(skops, STAGE_SCHED);
		break;
	case BPF_SOCK_OPS_TSTAMP_SND_SW_CB:
		account(skops, STAGE_SND_SW);
		break;
	case BPF_SOCK_OPS_TSTAMP_SND_HW_CB:
		account(skops, STAGE_SND_HW);
		break;
	case BPF_SOCK_OPS_TSTAMP_ACK_CB:
		account(skops, STAGE_ACK);
		break;
	default:
		break;
	}
	return 1;
}

FIXTURE_LICENSE("GPL");
