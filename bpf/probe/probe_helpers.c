// SPDX-License-Identifier: GPL-2.0
// Kernel probe for the runtime's helper models (not a fixture: built by tests/data/probe/build.sh).
//
// On every sock_ops call it makes a fixed list of helper and kfunc calls and records, per
// (op, call, family, return value), how often that return value was seen. The runtime test
// (tests/kernel_probe.rs) runs the same program in the embedded runtime on a scenario of the same
// workload and compares the sets of return values per op.
#include "../common.h"

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
extern int bpf_sock_ops_enable_tx_tstamp(struct bpf_sock_ops_kern *skops, __u64 flags) __ksym;

struct probe_key {
	__u32 op;
	__u32 call;
	__u32 family;
	__s32 ret;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct probe_key);
	__type(value, __u64);
} probe_results SEC(".maps");

static __always_inline void rec(struct bpf_sock_ops *skops, __u32 call, long ret)
{
	struct probe_key k = {
		.op = skops->op,
		.call = call,
		.family = skops->family,
		.ret = (__s32)ret,
	};
	__u64 one = 1, *v;

	v = bpf_map_lookup_elem(&probe_results, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&probe_results, &k, &one, BPF_NOEXIST);
}

SEC("sockops")
int probe_helpers(struct bpf_sock_ops *skops)
{
	struct bpf_sock_ops_kern *kctx;
	char cdg[] = "cdg", nosuch[] = "nosuchcc";
	__u8 opt[4] = { 254, 4, 0xeb, 0x9f };
	__u8 search[8] = { 254, 4, 0xeb, 0x9f };
	__u8 mss[8] = { 2, 0 };
	__u64 big = 0;
	__u8 syn[128];
	int v;

	/* Every gated op on; the bits above 0x7f come back. */
	rec(skops, 0, bpf_sock_ops_cb_flags_set(skops, 0x17f));
	v = 65536;
	rec(skops, 1, bpf_setsockopt(skops, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)));
	rec(skops, 2, bpf_getsockopt(skops, SOL_TCP, TCP_BPF_SOCK_OPS_CB_FLAGS, &v, sizeof(v)));
	v = 0x80;
	rec(skops, 3, bpf_setsockopt(skops, SOL_TCP, TCP_BPF_SOCK_OPS_CB_FLAGS, &v, sizeof(v)));
	rec(skops, 4, bpf_reserve_hdr_opt(skops, 1, 0));
	rec(skops, 5, bpf_reserve_hdr_opt(skops, 4, 0));
	rec(skops, 6, bpf_store_hdr_opt(skops, opt, sizeof(opt), 0));
	rec(skops, 7, bpf_load_hdr_opt(skops, search, sizeof(search), 0));
	rec(skops, 8, bpf_load_hdr_opt(skops, mss, sizeof(mss), BPF_LOAD_HDR_OPT_TCP_SYN));
	v = 1;
	rec(skops, 9, bpf_setsockopt(skops, SOL_SOCKET, SK_BPF_CB_FLAGS, &v, sizeof(v)));
	kctx = bpf_cast_to_kern_ctx(skops);
	rec(skops, 10, bpf_sock_ops_enable_tx_tstamp(kctx, 0));
	rec(skops, 11, bpf_setsockopt(skops, SOL_TCP, TCP_CONGESTION, cdg, sizeof(cdg)));
	rec(skops, 12, bpf_setsockopt(skops, SOL_TCP, TCP_CONGESTION, nosuch, sizeof(nosuch)));
	rec(skops, 13, bpf_getsockopt(skops, SOL_TCP, TCP_BPF_IW, &v, sizeof(v)));
	v = 0;
	rec(skops, 14, bpf_setsockopt(skops, SOL_TCP, TCP_WINDOW_CLAMP, &v, sizeof(v)));
	v = 0;
	rec(skops, 15, bpf_setsockopt(skops, SOL_IP, IP_TOS, &v, sizeof(v)));
	rec(skops, 16, bpf_getsockopt(skops, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)));
	/*
	 * Saved SYNs: the listener keeps them from the link-layer header on (2); the request sock
	 * records the SYN after RWND_INIT and the child takes it over. Lengths: TCP header with
	 * the options the client's copy of this program wrote; IP and TCP; MAC, IP and TCP.
	 */
	v = 2;
	rec(skops, 17, bpf_setsockopt(skops, SOL_TCP, TCP_SAVE_SYN, &v, sizeof(v)));
	rec(skops, 18, bpf_getsockopt(skops, SOL_TCP, TCP_BPF_SYN, syn, sizeof(syn)));
	rec(skops, 19, bpf_getsockopt(skops, SOL_TCP, TCP_BPF_SYN_IP, syn, sizeof(syn)));
	rec(skops, 20, bpf_getsockopt(skops, SOL_TCP, TCP_BPF_SYN_MAC, syn, sizeof(syn)));
	rec(skops, 21, bpf_getsockopt(skops, SOL_TCP, TCP_BPF_SYN, syn, 8));
	return 1;
}

char _license[] SEC("license") = "GPL";
