// SPDX-License-Identifier: GPL-2.0
/*
 * Service-hint TCP header option: writer and parser.
 *
 * Both ends of a connection between our hosts announce a service class in an experimental TCP
 * option (RFC 6994: kind 254, 16-bit magic) on the SYN and the SYN-ACK:
 *     kind=254 len=6 magic=0x5348 ('SH') class flags
 * The server learns the client's class from the SYN (saved through TCP_SAVE_SYN), the client
 * learns the server's from the SYN-ACK; both store it per connection for the traffic shaper.
 * Later segments carrying the option (a peer that re-announces after a class change) are parsed
 * from the packet; segments with the option are also counted by reading the TCP header directly.
 *
 * Ops: TCP_CONNECT_CB / TCP_LISTEN_CB / *_ESTABLISHED_CB set WRITE_HDR_OPT | PARSE_ALL_HDR_OPT
 * (bpf_sock_ops_cb_flags_set), HDR_OPT_LEN_CB reserves (bpf_reserve_hdr_opt), WRITE_HDR_OPT_CB
 * stores (bpf_store_hdr_opt), PARSE_HDR_OPT_CB and ACTIVE_ESTABLISHED_CB load
 * (bpf_load_hdr_opt) and read skb_data/skb_data_end directly.
 */
// BUILD: ref-ops 3 4 5 11 13 14 15
#include "common.h"

#define HINT_MAGIC 0x5348
#define HINT_LEN 6
#define TCPHDR_FIN 0x01
#define TCPHDR_SYN 0x02
#define TCPHDR_ACK 0x10

#define HINT_F_ECHO 0x1 /* set on a SYN-ACK that answers a client's hint */

struct hint_opt {
	__u8 kind;
	__u8 len;
	__be16 magic;
	__u8 class;
	__u8 flags;
} __attribute__((packed));

/* This host's class, set by the node agent. */
const volatile __u8 my_class = 0;

struct peer_hint {
	__u8 class;
	__u8 flags;
	__u8 seen_on; /* op that delivered it */
	__u8 pad;
	__u32 updates;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie */
	__type(value, struct peer_hint);
} peer_hints SEC(".maps");

/* Segments parsed, segments with the hint, malformed TCP headers. */
__u64 parsed_segs, hinted_segs, bad_headers;

static __always_inline void want_hdr_cbs(struct bpf_sock_ops *skops)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
						 BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG |
						 BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG);
}

static __always_inline void remember(struct bpf_sock_ops *skops, struct hint_opt *o, __u8 op)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct peer_hint *h = bpf_map_lookup_elem(&peer_hints, &cookie);
	struct peer_hint fresh = {};

	if (h) {
		h->class = o->class;
		h->flags = o->flags;
		h->seen_on = op;
		h->updates++;
		return;
	}
	fresh.class = o->class;
	fresh.flags = o->flags;
	fresh.seen_on = op;
	bpf_map_update_elem(&peer_hints, &cookie, &fresh, BPF_ANY);
}

/* Looks for our option in the current segment, or with BPF_LOAD_HDR_OPT_TCP_SYN in the SYN. */
static __always_inline int find_hint(struct bpf_sock_ops *skops, struct hint_opt *o, __u64 flags)
{
	int ret;

	__builtin_memset(o, 0, sizeof(*o));
	o->kind = TCPOPT_EXP;
	o->len = 4; /* search key: kind + magic */
	o->magic = bpf_htons(HINT_MAGIC);
	ret = bpf_load_hdr_opt(skops, o, sizeof(*o), flags);
	return ret == HINT_LEN ? 0 : -1;
}

static __always_inline void reserve_hint(struct bpf_sock_ops *skops)
{
	/* Only handshake segments carry the hint. */
	if (!(skops->skb_tcp_flags & TCPHDR_SYN))
		return;
	bpf_reserve_hdr_opt(skops, HINT_LEN, 0);
}

static __always_inline void write_hint(struct bpf_sock_ops *skops)
{
	struct hint_opt o = {}, peer;

	if (!(skops->skb_tcp_flags & TCPHDR_SYN))
		return;
	o.kind = TCPOPT_EXP;
	o.len = HINT_LEN;
	o.magic = bpf_htons(HINT_MAGIC);
	o.class = my_class;
	/* SYN-ACK: echo whether the client announced itself (its SYN is in syn_skb). */
	if ((skops->skb_tcp_flags & TCPHDR_ACK) && !find_hint(skops, &peer, BPF_LOAD_HDR_OPT_TCP_SYN))
		o.flags |= HINT_F_ECHO;
	bpf_store_hdr_opt(skops, &o, sizeof(o), 0);
}

/* Direct packet access: [skb_data, skb_data_end) is the TCP header with its options. */
static __always_inline int tcp_header_ok(struct bpf_sock_ops *skops)
{
	__u8 *data = skops->skb_data;
	__u8 *end = skops->skb_data_end;
	__u32 doff;

	if (data + 20 > end)
		return 0;
	doff = (data[12] >> 4) * 4;
	if (doff < 20 || data + doff > end)
		return 0;
	/* A SYN after the handshake means a confused peer: do not trust its options. */
	return !(data[13] & TCPHDR_SYN);
}

static __always_inline void parse_segment(struct bpf_sock_ops *skops)
{
	struct hint_opt o;

	__sync_fetch_and_add(&parsed_segs, 1);
	if (!tcp_header_ok(skops)) {
		__sync_fetch_and_add(&bad_headers, 1);
		return;
	}
	if (find_hint(skops, &o, 0))
		return;
	__sync_fetch_and_add(&hinted_segs, 1);
	remember(skops, &o, BPF_SOCK_OPS_PARSE_HDR_OPT_CB);
}

SEC("sockops")
int hdr_opt(struct bpf_sock_ops *skops)
{
	struct hint_opt o;
	int one = 1;

	switch (OP(skops)) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		want_hdr_cbs(skops);
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		/* The child reads the client's hint from the saved SYN once established. */
		bpf_setsockopt(skops, SOL_TCP, TCP_SAVE_SYN, &one, sizeof(one));
		want_hdr_cbs(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		/* skb is the SYN-ACK. */
		if (!find_hint(skops, &o, 0))
			remember(skops, &o, BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB);
		want_hdr_cbs(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		if (!find_hint(skops, &o, BPF_LOAD_HDR_OPT_TCP_SYN))
			remember(skops, &o, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB);
		want_hdr_cbs(skops);
		break;
	case BPF_SOCK_OPS_PARSE_HDR_OPT_CB:
		parse_segment(skops);
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		reserve_hint(skops);
		break;
	case BPF_SOCK_OPS_WRITE_HDR_OPT_CB:
		write_hint(skops);
		break;
	}
	return 1;
}

FIXTURE_LICENSE("GPL");
