// SPDX-License-Identifier: GPL-2.0
// Per-connection state kept in socket-local storage: created when the
// connection starts, refreshed on every state change from the kernel's
// tcp_sock (read through bpf_skc_to_tcp_sock with CO-RE), exported on close.
// The flow hash is re-seeded on establishment so ECMP picks a fresh path for
// long-lived connections that went through a handshake retry.
//
// BUILD: variants v4 O1
// BUILD: ref-ops 3 4 5 10
#include "common.h"

struct conn_state {
	__u64 start_ns;
	__u64 established_ns;
	__u64 bytes_acked;
	__u32 state_changes;
	__u32 last_state;
	__u32 max_cwnd;
	__u32 min_srtt_us;
	__u32 txhash;
	__u32 passive;
};

struct conn_summary {
	__u64 cookie;
	__u64 duration_ns;
	__u64 handshake_ns;
	__u64 bytes_acked;
	__u32 max_cwnd;
	__u32 min_srtt_us;
	__u32 state_changes;
	__u32 passive;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct conn_state);
} conn_store SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} closed_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} storage_errors SEC(".maps");

enum { ERR_NO_SK, ERR_NO_STORAGE, ERR_NO_TCP_SOCK, ERR_RINGBUF_FULL };

static __always_inline void count_error(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&storage_errors, &which);

	if (n)
		*n += 1;
}

/* Refresh the cached transport numbers from the kernel's own tcp_sock. */
static __always_inline void sample_tcp(struct bpf_sock *sk, struct conn_state *st)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	__u32 cwnd, srtt;

	if (!tp) {
		count_error(ERR_NO_TCP_SOCK);
		return;
	}
	cwnd = tp->snd_cwnd;
	srtt = tp->srtt_us >> 3;
	if (cwnd > st->max_cwnd)
		st->max_cwnd = cwnd;
	if (srtt && (!st->min_srtt_us || srtt < st->min_srtt_us))
		st->min_srtt_us = srtt;
	st->bytes_acked = tp->bytes_acked;
}

SEC("sockops")
int sk_storage_state(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct conn_state *st;
	struct conn_summary *sum;
	__u32 op = OP(skops);

	if (!sk) {
		count_error(ERR_NO_SK);
		return 1;
	}

	switch (op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		st = bpf_sk_storage_get(&conn_store, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st) {
			count_error(ERR_NO_STORAGE);
			break;
		}
		st->start_ns = bpf_ktime_get_ns();
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
						 BPF_SOCK_OPS_STATE_CB_FLAG);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		st = bpf_sk_storage_get(&conn_store, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st) {
			count_error(ERR_NO_STORAGE);
			break;
		}
		st->established_ns = bpf_ktime_get_ns();
		if (!st->start_ns)
			st->start_ns = st->established_ns;
		st->passive = op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB;
		/* A new random flow label per connection spreads long-lived flows. */
		st->txhash = bpf_get_prandom_u32() | 1;
		skops->sk_txhash = st->txhash;
		sample_tcp(sk, st);
		if (st->passive)
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							 BPF_SOCK_OPS_STATE_CB_FLAG);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		st = bpf_sk_storage_get(&conn_store, sk, 0, 0);
		if (!st)
			break;
		st->state_changes++;
		st->last_state = skops->args[1];
		sample_tcp(sk, st);
		if (skops->args[1] != BPF_TCP_CLOSE)
			break;
		sum = bpf_ringbuf_reserve(&closed_conns, sizeof(*sum), 0);
		if (sum) {
			sum->cookie = bpf_get_socket_cookie(skops);
			sum->duration_ns = bpf_ktime_get_ns() - st->start_ns;
			sum->handshake_ns = st->established_ns ?
				st->established_ns - st->start_ns : 0;
			sum->bytes_acked = st->bytes_acked;
			sum->max_cwnd = st->max_cwnd;
			sum->min_srtt_us = st->min_srtt_us;
			sum->state_changes = st->state_changes;
			sum->passive = st->passive;
			bpf_ringbuf_submit(sum, 0);
		} else {
			count_error(ERR_RINGBUF_FULL);
		}
		bpf_sk_storage_delete(&conn_store, sk);
		break;
	default:
		break;
	}
	return 1;
}

FIXTURE_LICENSE("GPL");
