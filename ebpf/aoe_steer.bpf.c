// SPDX-License-Identifier: (MIT OR Apache-2.0)
/* Steers AoE requests into the AF_XDP socket of the queue they arrived on;
 * passes every other frame (and AoE responses) to the kernel untouched. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "aoe_steer.h"

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, AOE_STEER_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} aoe_xsks SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

SEC("xdp")
int aoe_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 *aoe;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	proto = eth->h_proto;
	aoe = (__u8 *)(eth + 1);
	if (proto == bpf_htons(AOE_STEER_ETH_P_8021Q)) {
		struct vlan_hdr *vh = (struct vlan_hdr *)(eth + 1);

		if ((void *)(vh + 1) > data_end)
			return XDP_PASS;
		proto = vh->encapsulated_proto;
		aoe = (__u8 *)(vh + 1);
	}
	if (proto != bpf_htons(AOE_STEER_ETH_P_AOE))
		return XDP_PASS;
	/* The version/flags byte: an initiator on this host gets its responses. */
	if ((void *)(aoe + 1) > data_end || (*aoe & AOE_STEER_FLAG_RESPONSE))
		return XDP_PASS;
	/* No socket on this queue: let the kernel have it rather than drop. */
	return bpf_redirect_map(&aoe_xsks, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual MIT/GPL";
