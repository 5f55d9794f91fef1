// SPDX-License-Identifier: GPL-2.0
// SYN RTO and initial receive window by service port, built the way many
// older deployments build BPF: without -g, so the object has no BTF at all.
// Without BTF libbpf cannot create BTF-defined (.maps) maps, so all state is
// global data (.bss/.data/.rodata), which libbpf maps without BTF.
//
// BUILD: nobtf
// BUILD: ref-ops 1 2
#include "common.h"

#define NR_PORT_RULES 4

/* Set by the loader before load (.rodata). */
const volatile __u32 hz = 250;
const volatile __u16 rule_port[NR_PORT_RULES] = { 443, 8443, 9092, 0 };

/* Rewritten by the agent at run time (.data). */
__u32 rule_rto_ms[NR_PORT_RULES] = { 50, 50, 20, 0 };
__u32 rule_rwnd_segs[NR_PORT_RULES] = { 40, 40, 128, 0 };

/* Read by the agent (.bss). */
__u64 rto_set;
__u64 rwnd_set;
__u64 no_rule;

SEC("sockops")
int nobtf_basic(struct bpf_sock_ops *skops)
{
	/* Request sockets of our listeners report the service as local_port;
	 * for client connections the service is the remote port. */
	__u32 port = skops->is_fullsock ? bpf_ntohl(skops->remote_port) : skops->local_port;
	__u32 op = OP(skops);
	int rv = -1;
	int i;

	if (op != BPF_SOCK_OPS_TIMEOUT_INIT && op != BPF_SOCK_OPS_RWND_INIT)
		goto out;

	for (i = 0; i < NR_PORT_RULES; i++) {
		if (!rule_port[i] || rule_port[i] != port)
			continue;
		if (op == BPF_SOCK_OPS_TIMEOUT_INIT) {
			rv = rule_rto_ms[i] * hz / 1000;
			__sync_fetch_and_add(&rto_set, 1);
		} else {
			rv = rule_rwnd_segs[i];
			__sync_fetch_and_add(&rwnd_set, 1);
		}
		goto out;
	}
	__sync_fetch_and_add(&no_rule, 1);
out:
	skops->reply = rv;
	return 1;
}

FIXTURE_LICENSE("GPL");
