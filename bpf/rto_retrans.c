// SPDX-License-Identifier: GPL-2.0
/*
 * RTO and retransmission accounting per connection.
 *
 * Connections are tracked from ESTABLISHED (the program turns on RTO_CB, RETRANS_CB and STATE_CB).
 * Every timeout and retransmission is accounted in `acct`; a timeout that gives up on the socket,
 * a failing retransmission and every close with losses emit an event to the `events` ring buffer,
 * which a collector turns into per-destination loss reports.
 *
 * Shapes: shared BPF-to-BPF subprograms called from several ops (acct_get from ESTABLISHED, RTO,
 * RETRANS and STATE; account() from RTO and RETRANS); the op passed as an argument to a static
 * __noinline subprogram (account) and to a global function (emit_event), both of which test the
 * op again.
 */
// BUILD: variants O1
// BUILD: ref-ops 4 5 8 9 10
#include "common.h"

struct conn_acct {
	__u64 first_loss_ns;
	__u64 last_loss_ns;
	__u32 rtos;
	__u32 max_backoff; /* highest icsk_retransmits seen by RTO_CB */
	__u32 retrans_segs;
	__u32 retrans_failed;
	__u32 last_rto_jiffies;
	__u32 daddr4; /* 0 for v6 */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);
	__type(key, __u64); /* socket cookie */
	__type(value, struct conn_acct);
} acct SEC(".maps");

enum event_reason {
	EV_RTO_EXPIRED = 1, /* the retransmit timer gave up on the socket */
	EV_RETRANS_FAILED = 2, /* tcp_transmit_skb failed for a retransmission */
	EV_CLOSED_WITH_LOSS = 3,
};

struct loss_event {
	__u64 cookie;
	__u32 op;
	__u32 reason;
	__u32 rtos;
	__u32 retrans_segs;
	__u32 retrans_failed;
	__u32 daddr4;
	__u32 detail; /* RTO: backoff count; RETRANS: -errno; close: loss duration in ms */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Events dropped because the ring buffer was full. */
__u64 events_dropped;

/*
 * Shared by every op that needs the connection's record; `create` is only set where the
 * connection starts being tracked.
 */
static __noinline struct conn_acct *acct_get(struct bpf_sock_ops *skops, __u64 cookie, int create)
{
	struct conn_acct zero = {};
	struct conn_acct *a;

	a = bpf_map_lookup_elem(&acct, &cookie);
	if (a || !create)
		return a;
	if (skops->family == AF_INET)
		zero.daddr4 = skops->remote_ip4;
	bpf_map_update_elem(&acct, &cookie, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&acct, &cookie);
}

/*
 * Global (non-static) on purpose: the verifier checks it once, on its own, whatever the caller;
 * that keeps the verification cost of the three call sites flat. The op arrives as a plain scalar
 * and is tested again here.
 */
__noinline int emit_event(struct bpf_sock_ops *skops, __u32 op, __u32 reason, __u64 cookie,
			  struct conn_acct *a)
{
	struct loss_event *e;

	if (!skops || !a)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&events_dropped, 1);
		return 0;
	}
	e->cookie = cookie;
	e->op = op;
	e->reason = reason;
	e->rtos = a->rtos;
	e->retrans_segs = a->retrans_segs;
	e->retrans_failed = a->retrans_failed;
	e->daddr4 = a->daddr4;
	e->pad = 0;
	if (op == BPF_SOCK_OPS_RTO_CB)
		e->detail = skops->args[0];
	else if (op == BPF_SOCK_OPS_RETRANS_CB)
		e->detail = -(__s32)skops->args[2];
	else
		e->detail = (a->last_loss_ns - a->first_loss_ns) / 1000000;
	bpf_ringbuf_submit(e, 0);
	return 1;
}

/*
 * Called from RTO_CB and RETRANS_CB; decides by the op it is handed. Returns the event to report,
 * 0 for none.
 */
static __noinline __u32 account(struct bpf_sock_ops *skops, struct conn_acct *a, __u32 op)
{
	__u64 now = bpf_ktime_get_ns();

	if (!a->first_loss_ns)
		a->first_loss_ns = now;
	a->last_loss_ns = now;

	if (op == BPF_SOCK_OPS_RTO_CB) {
		/* args: icsk_retransmits, icsk_rto (jiffies), expired */
		a->rtos++;
		if (skops->args[0] > a->max_backoff)
			a->max_backoff = skops->args[0];
		a->last_rto_jiffies = skops->args[1];
		if (skops->args[2])
			return EV_RTO_EXPIRED;
	} else {
		/* args: seq, segs, err */
		a->retrans_segs += skops->args[1];
		if (skops->args[2]) {
			a->retrans_failed++;
			return EV_RETRANS_FAILED;
		}
	}
	return 0;
}

SEC("sockops")
int rto_retrans(struct bpf_sock_ops *skops)
{
	__u32 op = OP(skops);
	__u64 cookie;
	struct conn_acct *a;
	__u32 reason;

	switch (op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		cookie = bpf_get_socket_cookie(skops);
		if (acct_get(skops, cookie, 1))
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
								 BPF_SOCK_OPS_RTO_CB_FLAG |
								 BPF_SOCK_OPS_RETRANS_CB_FLAG |
								 BPF_SOCK_OPS_STATE_CB_FLAG);
		break;
	case BPF_SOCK_OPS_RTO_CB:
	case BPF_SOCK_OPS_RETRANS_CB:
		cookie = bpf_get_socket_cookie(skops);
		a = acct_get(skops, cookie, 0);
		if (!a)
			break;
		reason = account(skops, a, op);
		if (reason)
			emit_event(skops, op, reason, cookie, a);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] != BPF_TCP_CLOSE)
			break;
		cookie = bpf_get_socket_cookie(skops);
		a = acct_get(skops, cookie, 0);
		if (!a)
			break;
		if (a->rtos || a->retrans_segs)
			emit_event(skops, op, EV_CLOSED_WITH_LOSS, cookie, a);
		bpf_map_delete_elem(&acct, &cookie);
		break;
	}
	return 1;
}

FIXTURE_LICENSE("GPL");
