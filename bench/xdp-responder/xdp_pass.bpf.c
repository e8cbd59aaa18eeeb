// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * XDP_PASS on the initiator's veth. A veth whose peer does XDP_TX (or
 * XDP_REDIRECT) towards it needs NAPI on its own receive side: without an
 * XDP program (or GRO) there, frames transmitted by the peer's XDP program
 * are dropped. This trivial program turns that NAPI on.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual MIT/GPL";
