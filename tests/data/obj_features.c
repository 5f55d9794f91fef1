// SPDX-License-Identifier: GPL-2.0
// Object-codec test input: ELF features the sock_ops fixture corpus does not use (map-in-map,
// PROG_ARRAY and pinning in .maps, weak/kconfig/ksym externs, kfunc calls, bpf_loop callback,
// several programs per section, struct_ops with .struct_ops.link).
// Built by tests/data/build_obj_features.sh; the debug sections are stripped to keep it small.
#include "../../bpf/vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 128);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} opsplit_objtest_pinned SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(key_size, 4);
	__uint(value_size, 8);
	__uint(max_entries, 4);
} sized SEC(".maps");

int tail0(struct bpf_sock_ops *s);
SEC("sockops") int tail1(struct bpf_sock_ops *s) { return 1; }

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int (void *));
} jmp SEC(".maps") = {
	.values = { [1] = (void *)&tail1, [3] = (void *)&tail1 },
};

struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); } inner1 SEC(".maps"), inner2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = { .values = { &inner1, &inner2 } };

int gcount = 3;
__u64 zeroed;
const volatile __u32 cfg = 7;
extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig __weak;
extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym __weak;
extern void bpf_task_release(struct task_struct *p) __ksym;
static __noinline int sub(int x) { return x * gcount + cfg; }
__noinline int gsub(int x) { return x + 1; }

static long cb(__u32 idx, void *ctx) { zeroed += idx; return 0; }

SEC("sockops") int prog_a(struct bpf_sock_ops *s)
{
	__u32 k = s->op; __u64 one = 1, *v;
	v = bpf_map_lookup_elem(&opsplit_objtest_pinned, &k);
	if (v) __sync_fetch_and_add(v, 1); else bpf_map_update_elem(&opsplit_objtest_pinned, &k, &one, 0);
	bpf_tail_call(s, &jmp, 1);
	return (sub(k) + gsub(LINUX_KERNEL_VERSION) + CONFIG_BPF_SYSCALL) & 1;
}

SEC("sockops") int prog_b(struct bpf_sock_ops *s)
{
	bpf_loop(4, cb, 0, 0);
	return (sub(s->op) + (int)zeroed) & 1;
}

SEC("tp_btf/sched_switch") int BPF_PROG(tp, bool preempt, struct task_struct *prev)
{
	struct task_struct *t;
	int pid = BPF_CORE_READ(prev, pid);
	if (bpf_task_acquire) {
		t = bpf_task_acquire(prev);
		if (t) bpf_task_release(t);
	}
	gcount += pid & 1;
	return 0;
}

extern const struct rq runqueues __ksym;

SEC("tp_btf/sched_wakeup") int BPF_PROG(wake, struct task_struct *p)
{
	struct rq *rq = bpf_this_cpu_ptr(&runqueues);
	return rq->cpu & 1;
}

SEC("struct_ops/test_1") int BPF_PROG(dummy_test_1, struct bpf_dummy_ops_state *state)
{
	return 0;
}

SEC(".struct_ops.link") struct bpf_dummy_ops dummy = {
	.test_1 = (void *)dummy_test_1,
};

char LICENSE[] SEC("license") = "GPL";
