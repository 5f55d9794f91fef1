// SPDX-License-Identifier: GPL-2.0
// Kernel probe for the runtime's generic helper models (not a fixture: built by
// tests/data/probe/build.sh, like probe_helpers.c).
//
// On every sock_ops call it runs a fixed list of map, socket, ring buffer, perf event, loop and
// tail-call helpers with their flag and error paths, and records per (op, call, family) the set
// of results: a return value, a NULL-ness (0/1) or a value read back. Only results that are
// deterministic on the shared workload are recorded: map keys a call creates are deleted again in
// the same call (per-CPU keys, so two CPUs never share one), and nothing depends on time or on
// addresses. tests/kernel_probe_generic.rs runs it on the kernel and in the runtime.
#include "../common.h"

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

struct probe_key {
	__u32 op;
	__u32 call;
	__u32 family;
	__s32 ret;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct probe_key);
	__type(value, __u64);
} probe_results SEC(".maps");

/* Per-call scratch (hash, LRU): one key per CPU, created and deleted within one call. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} h_work SEC(".maps");

/* Keys 0 and 1 are never deleted: full after the first call. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} h_full SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} pch_full SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} lru_work SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} lru_full SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} pcarr SEC(".maps");

struct lpm_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 2);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, __u32);
} lpm SEC(".maps");

struct stor {
	__u32 tag;
	__u32 pad;
	__u64 cookie;
};

/* Created and deleted within one call. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct stor);
} sk_scratch SEC(".maps");

/* Kept for the socket's life: absent on its first full-socket call only. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct stor);
} sk_seen SEC(".maps");

struct tuple {
	__u32 family;
	__u32 local_port;
	__u32 remote_port;
};

/* Socket cookie first seen per 4-tuple side: request sock vs the child it becomes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct tuple);
	__type(value, __u64);
} tuple_cookie SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} netns_first SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u64);
} shash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, __u64);
} shash_one SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} smap SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} rb SEC(".maps");

/* Filled for good by the run's first call: nobody consumes it. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb_tiny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[4096]);
} big SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} pe SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_STORAGE);
	__type(key, struct bpf_cgroup_storage_key);
	__type(value, __u64);
} cgs SEC(".maps");

int chain(struct bpf_sock_ops *skops);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int(struct bpf_sock_ops *));
} jt SEC(".maps") = {
	.values = {
		[1] = (void *)&chain,
	},
};

/* Tail calls made so far in this call's chain. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} chain_depth SEC(".maps");

/* Read at run time so that the verifier cannot see it is 0 (bpf_loop is then not inlined). */
__u64 opaque_zero;

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

#define NN(p) ((p) != 0)

static __noinline void probe_hash(struct bpf_sock_ops *skops)
{
	__u32 k = 100 + bpf_get_smp_processor_id(), z = 0, o = 1, t = 2;
	__u64 v = 7;

	rec(skops, 0, bpf_map_update_elem(&h_work, &k, &v, BPF_EXIST));
	rec(skops, 1, bpf_map_update_elem(&h_work, &k, &v, BPF_NOEXIST));
	rec(skops, 2, bpf_map_update_elem(&h_work, &k, &v, BPF_NOEXIST));
	rec(skops, 3, bpf_map_update_elem(&h_work, &k, &v, BPF_EXIST));
	rec(skops, 4, NN(bpf_map_lookup_elem(&h_work, &k)));
	rec(skops, 5, bpf_map_update_elem(&h_work, &k, &v, 3));
	rec(skops, 6, bpf_map_update_elem(&h_work, &k, &v, BPF_F_LOCK));
	rec(skops, 7, bpf_map_delete_elem(&h_work, &k));
	rec(skops, 8, bpf_map_delete_elem(&h_work, &k));
	rec(skops, 9, NN(bpf_map_lookup_elem(&h_work, &k)));
	rec(skops, 10, bpf_map_update_elem(&h_full, &z, &v, BPF_ANY));
	rec(skops, 11, bpf_map_update_elem(&h_full, &o, &v, BPF_ANY));
	rec(skops, 12, bpf_map_update_elem(&h_full, &t, &v, BPF_ANY));
	rec(skops, 13, bpf_map_update_elem(&h_full, &t, &v, BPF_EXIST));
	rec(skops, 14, bpf_map_update_elem(&h_full, &z, &v, BPF_NOEXIST));
	rec(skops, 15, bpf_map_delete_elem(&h_full, &t));
	rec(skops, 16, bpf_map_update_elem(&pch_full, &z, &v, BPF_ANY));
	rec(skops, 17, bpf_map_update_elem(&pch_full, &o, &v, BPF_ANY));
	rec(skops, 18, bpf_map_update_elem(&pch_full, &t, &v, BPF_ANY));
	rec(skops, 19, bpf_map_update_elem(&pch_full, &z, &v, BPF_F_LOCK));
	rec(skops, 20, bpf_map_update_elem(&pch_full, &t, &v, BPF_EXIST));
	rec(skops, 21, bpf_map_update_elem(&pch_full, &z, &v, BPF_NOEXIST));
	/* LRU: full maps evict instead of failing; which element goes is not recorded. */
	rec(skops, 22, bpf_map_update_elem(&lru_work, &k, &v, BPF_EXIST));
	rec(skops, 23, bpf_map_update_elem(&lru_work, &k, &v, BPF_NOEXIST));
	rec(skops, 24, bpf_map_update_elem(&lru_work, &k, &v, BPF_NOEXIST));
	rec(skops, 25, bpf_map_update_elem(&lru_work, &k, &v, BPF_F_LOCK));
	rec(skops, 26, bpf_map_update_elem(&lru_work, &k, &v, 3));
	rec(skops, 27, bpf_map_delete_elem(&lru_work, &k));
	rec(skops, 28, bpf_map_delete_elem(&lru_work, &k));
	for (__u32 i = 0; i < 6; i++) {
		__u32 key = 1000 + 8 * (k - 100) + i;
		rec(skops, 29, bpf_map_update_elem(&lru_full, &key, &v, BPF_ANY));
	}
}

static __noinline void probe_array(struct bpf_sock_ops *skops)
{
	__u32 z = 0, three = 3, four = 4;
	__u64 v = 9;

	rec(skops, 30, NN(bpf_map_lookup_elem(&arr, &three)));
	rec(skops, 31, NN(bpf_map_lookup_elem(&arr, &four)));
	rec(skops, 32, bpf_map_update_elem(&arr, &z, &v, BPF_ANY));
	rec(skops, 33, bpf_map_update_elem(&arr, &z, &v, BPF_NOEXIST));
	rec(skops, 34, bpf_map_update_elem(&arr, &z, &v, BPF_EXIST));
	rec(skops, 35, bpf_map_update_elem(&arr, &four, &v, BPF_ANY));
	rec(skops, 36, bpf_map_update_elem(&arr, &z, &v, 3));
	rec(skops, 37, bpf_map_update_elem(&arr, &z, &v, BPF_F_LOCK));
	rec(skops, 38, bpf_map_update_elem(&arr, &four, &v, BPF_F_LOCK));
	rec(skops, 39, bpf_map_update_elem(&arr, &z, &v, BPF_F_LOCK | BPF_NOEXIST));
	rec(skops, 40, bpf_map_delete_elem(&arr, &z));
	rec(skops, 41, NN(bpf_map_lookup_elem(&pcarr, &three)));
	rec(skops, 42, NN(bpf_map_lookup_elem(&pcarr, &four)));
	rec(skops, 43, bpf_map_update_elem(&pcarr, &z, &v, BPF_NOEXIST));
	rec(skops, 44, bpf_map_update_elem(&pcarr, &four, &v, BPF_ANY));
	rec(skops, 45, bpf_map_update_elem(&pcarr, &z, &v, BPF_F_LOCK));
	rec(skops, 46, bpf_map_delete_elem(&pcarr, &z));
	rec(skops, 47, bpf_map_update_elem(&pcarr, &z, &v, BPF_EXIST));
}

static __always_inline long lpm_value(void *p)
{
	return p ? (long)*(__u32 *)p : -1;
}

static __noinline void probe_lpm(struct bpf_sock_ops *skops)
{
	struct lpm_key host = { 32, { 10, 0, 0, 1 } }, net8 = { 8, { 10, 0, 0, 0 } };
	struct lpm_key net16 = { 16, { 10, 1, 0, 0 } }, bad = { 33, { 10, 0, 0, 1 } };
	struct lpm_key q;
	__u32 v32 = 32, v8 = 8;

	rec(skops, 50, bpf_map_update_elem(&lpm, &host, &v32, BPF_ANY));
	rec(skops, 51, bpf_map_update_elem(&lpm, &net8, &v8, BPF_ANY));
	rec(skops, 52, bpf_map_update_elem(&lpm, &net16, &v8, BPF_ANY));
	rec(skops, 53, bpf_map_update_elem(&lpm, &net16, &v8, BPF_EXIST));
	rec(skops, 54, bpf_map_update_elem(&lpm, &net8, &v8, BPF_NOEXIST));
	rec(skops, 55, bpf_map_update_elem(&lpm, &bad, &v8, BPF_ANY));
	rec(skops, 56, bpf_map_update_elem(&lpm, &net8, &v8, 3));
	q = (struct lpm_key){ 32, { 10, 0, 0, 1 } };
	rec(skops, 57, lpm_value(bpf_map_lookup_elem(&lpm, &q)));
	q = (struct lpm_key){ 32, { 10, 9, 9, 9 } };
	rec(skops, 58, lpm_value(bpf_map_lookup_elem(&lpm, &q)));
	q = (struct lpm_key){ 32, { 11, 0, 0, 1 } };
	rec(skops, 59, lpm_value(bpf_map_lookup_elem(&lpm, &q)));
	q = (struct lpm_key){ 8, { 10, 0, 0, 1 } };
	rec(skops, 60, lpm_value(bpf_map_lookup_elem(&lpm, &q)));
	q = (struct lpm_key){ 40, { 10, 0, 0, 1 } };
	rec(skops, 61, lpm_value(bpf_map_lookup_elem(&lpm, &q)));
	rec(skops, 62, bpf_map_delete_elem(&lpm, &net16));
	rec(skops, 63, bpf_map_delete_elem(&lpm, &bad));
}

static __noinline void probe_sock(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct bpf_sock_ops_kern *kctx = bpf_cast_to_kern_ctx(skops);
	struct sock *ksk;
	struct stor init = { .tag = 0x5a5a }, *st;
	struct tuple t = {
		.family = skops->family,
		.local_port = skops->local_port,
		.remote_port = skops->remote_port,
	};
	__u64 cookie = bpf_get_socket_cookie(skops), *seen;
	__u32 z = 0;
	__u64 ns, ns_init, *first;

	rec(skops, 70, cookie != 0);
	seen = bpf_map_lookup_elem(&tuple_cookie, &t);
	if (seen) {
		rec(skops, 71, *seen == cookie);
	} else {
		rec(skops, 71, 2);
		bpf_map_update_elem(&tuple_cookie, &t, &cookie, BPF_NOEXIST);
	}
	ns = bpf_get_netns_cookie(skops);
	ns_init = bpf_get_netns_cookie(0);
	rec(skops, 72, ns != 0);
	rec(skops, 73, ns_init != ns);
	first = bpf_map_lookup_elem(&netns_first, &z);
	if (first) {
		if (!*first)
			*first = ns;
		rec(skops, 74, *first == ns);
	}
	/*
	 * The kernel's view of the socket: the request sock itself on the request-sock ops,
	 * where ctx->sk is NULL. The kernel always sets it; the test keeps the check.
	 */
	ksk = kctx->sk;
	if (ksk) {
		rec(skops, 75, NN(bpf_skc_to_tcp_sock(ksk)));
		rec(skops, 76, NN(bpf_sk_storage_get(&sk_seen, ksk, 0, 0)));
	}
	rec(skops, 77, NN(sk));
	if (!sk)
		return;
	rec(skops, 78, NN(bpf_tcp_sock(sk)));
	rec(skops, 79, NN(bpf_skc_to_tcp_sock(sk)));
	rec(skops, 80, NN(bpf_sk_storage_get(&sk_scratch, sk, 0, 0)));
	rec(skops, 81, NN(bpf_sk_storage_get(&sk_scratch, sk, 0, 2)));
	st = bpf_sk_storage_get(&sk_scratch, sk, &init, BPF_SK_STORAGE_GET_F_CREATE);
	rec(skops, 82, st ? (long)st->tag : -1);
	st = bpf_sk_storage_get(&sk_scratch, sk, 0, 0);
	rec(skops, 83, st ? (long)st->tag : -1);
	st = bpf_sk_storage_get(&sk_scratch, sk, &init, BPF_SK_STORAGE_GET_F_CREATE | 2);
	rec(skops, 84, NN(st));
	rec(skops, 85, bpf_sk_storage_delete(&sk_scratch, sk));
	rec(skops, 86, bpf_sk_storage_delete(&sk_scratch, sk));
	st = bpf_sk_storage_get(&sk_scratch, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	rec(skops, 87, st ? (long)st->tag : -1);
	rec(skops, 88, bpf_sk_storage_delete(&sk_scratch, sk));
	st = bpf_sk_storage_get(&sk_seen, sk, 0, 0);
	if (st) {
		rec(skops, 89, 1);
		rec(skops, 90, st->cookie == cookie);
	} else {
		rec(skops, 89, 0);
		st = bpf_sk_storage_get(&sk_seen, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (st)
			st->cookie = cookie;
	}
}

static __noinline void probe_sockmap(struct bpf_sock_ops *skops)
{
	__u64 key = bpf_get_socket_cookie(skops), other = key + 1;
	__u32 idx = bpf_get_smp_processor_id() & 1, four = 4, one = 2 + idx;

	rec(skops, 100, bpf_sock_hash_update(skops, &shash, &key, BPF_EXIST));
	rec(skops, 101, bpf_sock_hash_update(skops, &shash, &key, BPF_NOEXIST));
	rec(skops, 102, bpf_sock_hash_update(skops, &shash, &key, BPF_NOEXIST));
	rec(skops, 103, bpf_sock_hash_update(skops, &shash, &key, BPF_EXIST));
	rec(skops, 104, bpf_sock_hash_update(skops, &shash, &key, 4));
	rec(skops, 105, bpf_map_delete_elem(&shash, &key));
	rec(skops, 106, bpf_map_delete_elem(&shash, &key));
	rec(skops, 107, bpf_sock_hash_update(skops, &shash_one, &key, BPF_ANY));
	rec(skops, 108, bpf_sock_hash_update(skops, &shash_one, &other, BPF_ANY));
	rec(skops, 109, bpf_map_delete_elem(&shash_one, &key));
	rec(skops, 110, bpf_sock_map_update(skops, &smap, &idx, BPF_ANY));
	rec(skops, 111, bpf_sock_map_update(skops, &smap, &four, BPF_ANY));
	rec(skops, 112, bpf_sock_map_update(skops, &smap, &one, BPF_EXIST));
	rec(skops, 113, bpf_sock_map_update(skops, &smap, &idx, BPF_NOEXIST));
	rec(skops, 114, bpf_sock_map_update(skops, &smap, &idx, 3));
	rec(skops, 115, bpf_map_delete_elem(&smap, &idx));
	rec(skops, 116, bpf_map_delete_elem(&smap, &idx));
	rec(skops, 117, bpf_map_delete_elem(&smap, &four));
}

static __noinline void probe_output(struct bpf_sock_ops *skops)
{
	__u8 data[16] = { 1, 2, 3 };
	__u32 z = 0;
	void *r, *b;

	rec(skops, 120, bpf_ringbuf_output(&rb, data, sizeof(data), 0));
	rec(skops, 121, bpf_ringbuf_output(&rb, data, sizeof(data), BPF_RB_NO_WAKEUP));
	rec(skops, 122, bpf_ringbuf_output(&rb, data, sizeof(data), 4));
	r = bpf_ringbuf_reserve(&rb, 16, 0);
	rec(skops, 123, NN(r));
	if (r)
		bpf_ringbuf_discard(r, 0);
	r = bpf_ringbuf_reserve(&rb, 16, 1);
	rec(skops, 124, NN(r));
	if (r)
		bpf_ringbuf_discard(r, 0);
	r = bpf_ringbuf_reserve(&rb_tiny, 4096, 0);
	rec(skops, 125, NN(r));
	if (r)
		bpf_ringbuf_discard(r, 0);
	/* Only the run's first call gets this: a discarded record's space comes back only
	 * when a consumer reads past it. */
	r = bpf_ringbuf_reserve(&rb_tiny, 4000, 0);
	rec(skops, 126, NN(r));
	if (r)
		bpf_ringbuf_discard(r, 0);
	b = bpf_map_lookup_elem(&big, &z);
	if (b)
		rec(skops, 127, bpf_ringbuf_output(&rb_tiny, b, 4096, 0));
	/* No perf event is open on any CPU: nobody reads. */
	rec(skops, 130, bpf_perf_event_output(skops, &pe, BPF_F_CURRENT_CPU, data, 8));
	rec(skops, 131, bpf_perf_event_output(skops, &pe, 3, data, 8));
	rec(skops, 132, bpf_perf_event_output(skops, &pe, 4, data, 8));
	rec(skops, 133, bpf_perf_event_output(skops, &pe, 1ULL << 32, data, 8));
}

static long count_cb(__u64 i, void *ctx)
{
	(*(__u32 *)ctx)++;
	return 0;
}

static long stop_at_2(__u64 i, void *ctx)
{
	return i == 2;
}

/* bpf_loop with all 64 bits of nr_loops in r1 (the libbpf prototype takes a __u32). */
static long (*const bpf_loop64)(__u64 nr_loops, void *callback_fn, void *callback_ctx,
				__u64 flags) = (void *)BPF_FUNC_loop;

static __noinline void probe_loop(struct bpf_sock_ops *skops)
{
	__u32 n = 0;
	__u64 zero = opaque_zero;

	rec(skops, 140, bpf_loop(5, count_cb, &n, 0));
	rec(skops, 141, n);
	rec(skops, 142, bpf_loop(5, stop_at_2, &n, 0));
	rec(skops, 143, bpf_loop(0, count_cb, &n, 0));
	rec(skops, 144, bpf_loop(5, count_cb, &n, 1));
	rec(skops, 145, bpf_loop(BPF_MAX_LOOPS + 1, stop_at_2, &n, 0));
	rec(skops, 146, bpf_loop64((1ULL << 32) + 2, count_cb, &n, 0));
	/* Not inlined (flags unknown to the verifier): the helper takes nr_loops as u32. */
	rec(skops, 147, bpf_loop64((1ULL << 32) + 2, count_cb, &n, zero));
	rec(skops, 148, bpf_loop(BPF_MAX_LOOPS, stop_at_2, &n, 0));
}

/*
 * A second attached program: the kernel refuses a program that uses cgroup storage and a
 * PROG_ARRAY the storage-less tail-call target is in (the array's owner has no storage).
 */
SEC("sockops")
int probe_cgroup_storage(struct bpf_sock_ops *skops)
{
	__u64 *a = bpf_get_local_storage(&cgs, 0), *b = bpf_get_local_storage(&cgs, 0);

	rec(skops, 150, NN(a));
	rec(skops, 151, a == b);
	return 1;
}

SEC("sockops")
int probe_generic(struct bpf_sock_ops *skops)
{
	__u32 z = 0, *depth;

	bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_ALL_CB_FLAGS);
	probe_hash(skops);
	probe_array(skops);
	probe_lpm(skops);
	probe_sock(skops);
	probe_sockmap(skops);
	probe_output(skops);
	probe_loop(skops);
	bpf_tail_call(skops, &jt, 3);
	rec(skops, 160, 1);
	bpf_tail_call(skops, &jt, 100);
	rec(skops, 161, 1);
	/* Empty slots through a run-time index (no direct jump): do the attempts count? */
	for (int i = 0; i < 3; i++)
		bpf_tail_call(skops, &jt, 2 + opaque_zero);
	rec(skops, 163, 1);
	depth = bpf_map_lookup_elem(&chain_depth, &z);
	if (depth)
		*depth = 0;
	bpf_tail_call(skops, &jt, 1);
	rec(skops, 162, -1);
	return 1;
}

/*
 * Tail-calls itself until the kernel's limit lets the call fall through: 33 tail calls, minus
 * the earlier attempts on empty slots that count.
 */
SEC("sockops")
int chain(struct bpf_sock_ops *skops)
{
	__u32 z = 0, *depth = bpf_map_lookup_elem(&chain_depth, &z);

	if (!depth)
		return 1;
	*depth += 1;
	bpf_tail_call(skops, &jt, 1);
	rec(skops, 162, *depth);
	return 1;
}

char _license[] SEC("license") = "GPL";
