// SPDX-License-Identifier: GPL-2.0
/*
 * RTT and TCP state statistics for the fleet's latency dashboards.
 *
 * Once a connection is established the program asks for RTT_CB and STATE_CB. Each RTT sample goes
 * into a log2 histogram (per CPU) and into a linear 50 µs histogram per plane (v4/v6 x
 * active/passive) that the exporter reads directly from .bss; the signed deviation of the sample
 * from the new srtt is accumulated per connection, corrected by a configured bias, and its rounded
 * mean is kept for the connection. Each state change counts into a per-state histogram with the
 * time spent in the old state. Every `decay_every` closes the linear histograms decay by 1/8, so
 * they describe recent traffic.
 *
 * Shapes: .bss counters and arrays, .data initialised knobs, an ARRAY map histogram per state, a
 * bounded loop (log2 bucketing), the op stored to the stack because its address is passed to a
 * helper (per-op call counter) and reloaded after the call, cb flags set with
 * bpf_sock_ops_cb_flags_set in the ESTABLISHED ops. At -mcpu=v4: signed narrow loads (the s16
 * bias), movsx (s32 deviation widened), sdiv/smod (rounded signed mean), bswap (peer port) and
 * gotol: the decay loop is fully unrolled there (~41k instructions), so the jump over it needs the
 * 32-bit offset. Older ISAs keep it a loop because they cannot encode such a jump.
 */
// BUILD: variants v1 v4
// BUILD: ref-ops 4 5 10 12
#include "common.h"

#define LIN_BUCKETS 2048
#define PLANES 4

/* .data: tunables the exporter may rewrite at run time. */
__u32 lin_bucket_us = 50;
__u32 decay_every = 1024;

/* .bss: counters and the linear histograms. */
__u64 rtt_samples;
__u64 closes;
__u64 decays;
__u64 rtt_lin[PLANES][LIN_BUCKETS];

struct rtt_cfg {
	__s16 mrtt_bias_us; /* added to every deviation: compensates a known NIC delay */
	__u16 min_samples; /* samples before a mean is published */
	__u32 granularity_us; /* the mean is published in multiples of this, 0: exact */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rtt_cfg);
} rtt_cfg SEC(".maps");

struct conn_rtt {
	__u64 state_since_ns;
	__s64 dev_sum_us;
	__s64 mean_dev_us;
	__u32 samples;
	__u16 peer_port;
	__u8 plane;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie */
	__type(value, struct conn_rtt);
} conns SEC(".maps");

struct state_slot {
	__u64 entered;
	__u64 time_in_prev_ns; /* time spent in the state that was left to enter this one */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BPF_TCP_MAX_STATES);
	__type(key, __u32);
	__type(value, struct state_slot);
} state_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 32);
	__type(key, __u32);
	__type(value, __u64);
} rtt_log2 SEC(".maps");

/* Calls per op, to check which callbacks the flags really enabled. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 32);
	__type(key, __u32);
	__type(value, __u64);
} op_calls SEC(".maps");

static __always_inline __u32 log2_bucket(__u32 v)
{
	__u32 b = 0;

	/* Kept a loop on purpose: the verifier bounds it by the i < 31 test. */
#pragma clang loop unroll(disable)
	for (int i = 0; i < 31; i++) {
		if (v <= 1)
			break;
		v >>= 1;
		b++;
	}
	return b;
}

static __always_inline void decay_plane(__u64 *h)
{
	/* Only -mcpu=v4 can encode the jump over the fully unrolled body (gotol). */
#if __BPF_CPU_VERSION__ >= 4
#pragma clang loop unroll(full)
#else
#pragma clang loop unroll(disable)
#endif
	for (int i = 0; i < LIN_BUCKETS; i++)
		h[i] -= h[i] >> 3;
}

/* Signed division exists from -mcpu=v4 on (sdiv/smod); before, clang refuses it and the sign is
 * handled around an unsigned division, as programs for older kernels do. Truncates toward zero
 * either way. */
static __always_inline __s64 sdiv64(__s64 a, __u32 b)
{
#if __BPF_CPU_VERSION__ >= 4
	return a / (__s64)b;
#else
	return a < 0 ? -(__s64)((__u64)-a / b) : (__s64)((__u64)a / b);
#endif
}

static __always_inline __s64 smod64(__s64 a, __u32 b)
{
#if __BPF_CPU_VERSION__ >= 4
	return a % (__s64)b;
#else
	return a < 0 ? -(__s64)((__u64)-a % b) : (__s64)((__u64)a % b);
#endif
}

static __always_inline void on_rtt(struct bpf_sock_ops *skops, struct conn_rtt *c)
{
	__u32 mrtt_us = skops->args[0];
	__u32 srtt_us = skops->args[1] >> 3; /* the new srtt; the ctx field is still the old one */
	__u32 zero = 0, b;
	__u64 bucket;
	struct rtt_cfg *cfg = bpf_map_lookup_elem(&rtt_cfg, &zero);
	__s32 dev = (__s32)(mrtt_us - srtt_us);
	__u64 *n;
	__s64 q, r;

	rtt_samples++;
	b = log2_bucket(mrtt_us);
	n = bpf_map_lookup_elem(&rtt_log2, &b);
	if (n)
		*n += 1;

	/* The clamp must bound the whole 64-bit register for the verifier; left alone, clang narrows
	 * the division and the compare to 32 bits. */
	bucket = mrtt_us;
	barrier_var(bucket);
	bucket /= lin_bucket_us;
	if (bucket >= LIN_BUCKETS)
		bucket = LIN_BUCKETS - 1;
	if (c->plane < PLANES)
		__sync_fetch_and_add(&rtt_lin[c->plane][bucket], 1);

	if (cfg)
		dev += cfg->mrtt_bias_us;
	c->dev_sum_us += dev;
	c->samples++;
	if (cfg && c->samples >= cfg->min_samples) {
		/* Rounded signed mean: q + sign(r) when |2r| >= n. */
		q = sdiv64(c->dev_sum_us, c->samples);
		r = smod64(c->dev_sum_us, c->samples);
		if (2 * r >= (__s64)c->samples)
			q++;
		else if (-2 * r >= (__s64)c->samples)
			q--;
		/* Published in multiples of the granularity, toward zero, to keep dashboards calm. */
		if (cfg->granularity_us)
			q -= smod64(q, cfg->granularity_us);
		c->mean_dev_us = q;
	}
}

static __always_inline void on_state(struct bpf_sock_ops *skops, struct conn_rtt *c, __u64 cookie)
{
	__u32 new_state = skops->args[1];
	__u64 now = bpf_ktime_get_ns();
	struct state_slot *s = bpf_map_lookup_elem(&state_hist, &new_state);

	if (s) {
		__sync_fetch_and_add(&s->entered, 1);
		__sync_fetch_and_add(&s->time_in_prev_ns, now - c->state_since_ns);
	}
	c->state_since_ns = now;
	if (new_state != BPF_TCP_CLOSE)
		return;
	bpf_map_delete_elem(&conns, &cookie);
	if (++closes % decay_every == 0) {
		decays++;
		decay_plane(rtt_lin[0]);
		decay_plane(rtt_lin[1]);
		decay_plane(rtt_lin[2]);
		decay_plane(rtt_lin[3]);
	}
}

static __always_inline void on_established(struct bpf_sock_ops *skops, __u32 op, __u64 cookie)
{
	struct conn_rtt c = {};

	c.state_since_ns = bpf_ktime_get_ns();
	c.peer_port = bpf_ntohl(skops->remote_port);
	c.plane = (skops->family == AF_INET6) * 2 + (op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB);
	bpf_map_update_elem(&conns, &cookie, &c, BPF_ANY);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_RTT_CB_FLAG |
						 BPF_SOCK_OPS_STATE_CB_FLAG);
}

SEC("sockops")
int rtt_stats(struct bpf_sock_ops *skops)
{
	__u32 op = OP(skops);
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct conn_rtt *c;
	__u64 *calls;

	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB || op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
		on_established(skops, op, cookie);
	} else if (op == BPF_SOCK_OPS_RTT_CB || op == BPF_SOCK_OPS_STATE_CB) {
		c = bpf_map_lookup_elem(&conns, &cookie);
		if (!c)
			return 1;
		if (op == BPF_SOCK_OPS_RTT_CB)
			on_rtt(skops, c);
		else
			on_state(skops, c, cookie);
	}

	/* &op escapes into the helper, so op lives in a stack slot and is read back below. */
	calls = bpf_map_lookup_elem(&op_calls, &op);
	if (calls)
		*calls += 1;
	if (op == BPF_SOCK_OPS_STATE_CB && skops->args[1] == BPF_TCP_CLOSE && calls)
		*calls += 0x100000000ULL; /* closes are also counted in the high half */
	return 1;
}

FIXTURE_LICENSE("GPL");
