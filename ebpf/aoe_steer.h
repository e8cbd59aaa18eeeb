/* Constants shared by the XDP program and the aoe-xdp loader.
 * target-bin/build.rs turns each "#define AOE_STEER_*" into a Rust const. */
#ifndef AOE_STEER_H
#define AOE_STEER_H

/* EtherType of ATA over Ethernet. */
#define AOE_STEER_ETH_P_AOE 0x88A2
/* EtherType of an 802.1Q VLAN tag. */
#define AOE_STEER_ETH_P_8021Q 0x8100
/* Response flag in the AoE version/flags byte: responses go to the kernel. */
#define AOE_STEER_FLAG_RESPONSE 0x08
/* Entries in the XSKMAP: one per NIC queue, indexed by rx_queue_index. */
#define AOE_STEER_MAX_QUEUES 64

#endif
