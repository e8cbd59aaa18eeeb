// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * The link-limit responder: an XDP program on the target's veth that answers
 * AoE requests in the driver with XDP_TX and no storage, so aoe-bench can
 * measure what the link and the kernel's veth/XDP path alone sustain.
 *
 *  - ATA WRITE SECTORS (EXT): swap MACs, set the response flag, ATA status
 *    0x40, truncate to 60 bytes (36 bytes of headers, zero padded).
 *  - ATA READ SECTORS (EXT): grow the frame with bpf_xdp_adjust_tail to
 *    36 + count * 512 bytes (the kernel zeroes the grown area) -- possible
 *    only where the driver gives the frame tailroom; on failure the request
 *    is dropped and counted (see the stats map).
 *  - IDENTIFY DEVICE: grown to 548 bytes, a minimal page with the capacity.
 *  - Query Config (read): buffer count, sector count, no config string.
 *  - Other ATA commands (FLUSH, CHECK POWER MODE, ...): status 0x40.
 * Everything else is passed to the stack.
 *
 * Set the source MAC for broadcast answers (see aoe_resp_mac) with
 *   bpftool map update name aoe_resp_mac key 0 0 0 0 value <6 MAC bytes> 0 0
 * Build-time knobs: -DSHELF=1 -DSLOT=1 -DCAPACITY=524288 (sectors)
 * -DBUFCNT=256 -DMAXSECT=17.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#ifndef SHELF
#define SHELF 1
#endif
#ifndef SLOT
#define SLOT 1
#endif
#ifndef CAPACITY
#define CAPACITY 524288ULL
#endif
#ifndef BUFCNT
#define BUFCNT 256
#endif
#ifndef MAXSECT
#define MAXSECT 17
#endif

#define MIN_FRAME 60
#define ATA_HDR 36

enum {
	ST_WRITE,
	ST_READ,
	ST_IDENTIFY,
	ST_CONFIG,
	ST_OTHER_ATA,
	ST_GROW_FAILED,
	ST_BAD,
	ST_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} aoe_resp_stats SEC(".maps");

/* The responder's own MAC (low 6 bytes, in wire order), set from user
 * space with bpftool; XDP cannot ask the device. Used as the source of
 * replies to broadcast Query Configs; zero = not set (reply from the
 * request's destination, i.e. broadcast, which initiators reject). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} aoe_resp_mac SEC(".maps");

static __always_inline void count(__u32 what)
{
	__u64 *v = bpf_map_lookup_elem(&aoe_resp_stats, &what);

	if (v)
		*v += 1;
}

static __always_inline void swap_macs(unsigned char *p)
{
	unsigned char t;

#pragma unroll
	for (int i = 0; i < 6; i++) {
		t = p[i];
		p[i] = p[6 + i];
		p[6 + i] = t;
	}
}

/* Sets the frame to exactly `want` bytes; 0 on success. */
static __always_inline int resize(struct xdp_md *ctx, int want)
{
	int len = (int)(ctx->data_end - ctx->data);

	if (len == want)
		return 0;
	return bpf_xdp_adjust_tail(ctx, want - len);
}

/* Makes the reply `len` bytes long and zeroes bytes from..MIN_FRAME of it
 * (what the request carried there is not part of the reply). Returns the
 * frame, at least `need` bytes long, or NULL: drop it. */
static __always_inline unsigned char *reply_frame(struct xdp_md *ctx, int len, int need, int from)
{
	unsigned char *p, *end;

	if (resize(ctx, len)) {
		count(ST_GROW_FAILED);
		return NULL;
	}
	p = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (p + need > end)
		return NULL;
#pragma unroll
	for (int i = from; i < MIN_FRAME; i++)
		p[i] = 0;
	return p;
}

static __always_inline void put16(unsigned char *p, int off, __u16 v)
{
	p[off] = v >> 8;
	p[off + 1] = v & 0xff;
}

/* Little-endian IDENTIFY word `w` at frame offset 36 + 2w. */
#define IDW(p, w, v)                                                           \
	do {                                                                   \
		(p)[ATA_HDR + 2 * (w)] = (v) & 0xff;                           \
		(p)[ATA_HDR + 2 * (w) + 1] = ((v) >> 8) & 0xff;                \
	} while (0)

SEC("xdp")
int aoe_respond(struct xdp_md *ctx)
{
	unsigned char *p = (void *)(long)ctx->data;
	unsigned char *end = (void *)(long)ctx->data_end;
	__u16 shelf;
	__u8 slot, cmd, acmd, count_s;

	if (p + ATA_HDR > end)
		return XDP_PASS;
	if (p[12] != 0x88 || p[13] != 0xa2)
		return XDP_PASS;
	if ((p[14] >> 4) != 1 || (p[14] & 0x08))
		return XDP_PASS; /* not v1 or already a response */
	shelf = (__u16)p[16] << 8 | p[17];
	slot = p[18];
	if (!((shelf == SHELF || shelf == 0xffff) && (slot == SLOT || slot == 0xff)))
		return XDP_PASS;
	cmd = p[19];

	if (cmd == 1) { /* Query Config */
		if ((p[29] & 0x0f) != 0)
			return XDP_PASS; /* only "read" */
		p = reply_frame(ctx, MIN_FRAME, MIN_FRAME, 32);
		if (!p)
			return XDP_DROP;
		swap_macs(p);
		if (p[6] & 1) { /* the request went to a group address */
			__u32 k = 0;
			unsigned char *m = bpf_map_lookup_elem(&aoe_resp_mac, &k);

			if (m) {
#pragma unroll
				for (int i = 0; i < 6; i++)
					p[6 + i] = m[i];
			}
		}
		p[14] = 0x18;
		p[15] = 0;
		put16(p, 16, SHELF);
		p[18] = SLOT;
		put16(p, 24, BUFCNT);
		put16(p, 26, 0x0001); /* firmware */
		p[28] = MAXSECT;
		p[29] = 0x10;
		put16(p, 30, 0);
		count(ST_CONFIG);
		return XDP_TX;
	}
	if (cmd != 0 || shelf == 0xffff || slot == 0xff)
		return XDP_PASS;

	acmd = p[27];
	count_s = p[26];
	/* Header edits first: they survive a resize, and afterwards every
	 * access would need fresh bounds checks. */
	swap_macs(p);
	p[14] = 0x18;
	p[15] = 0;
	p[25] = 0;    /* ATA error register */
	p[27] = 0x40; /* DRDY */

	if (acmd == 0x30 || acmd == 0x34) {
		if (!reply_frame(ctx, MIN_FRAME, MIN_FRAME, ATA_HDR))
			return XDP_DROP;
		count(ST_WRITE);
		return XDP_TX;
	}
	if (acmd == 0x20 || acmd == 0x24) {
		if (count_s == 0 || count_s > MAXSECT) {
			p[25] = 0x04; /* ABRT */
			p[27] = 0x41;
			if (resize(ctx, MIN_FRAME))
				return XDP_DROP;
			count(ST_BAD);
			return XDP_TX;
		}
		/* The grown area is zeroed by the kernel: zero-filled sectors. */
		if (!reply_frame(ctx, ATA_HDR + (int)count_s * 512, MIN_FRAME, ATA_HDR))
			return XDP_DROP;
		count(ST_READ);
		return XDP_TX;
	}
	if (acmd == 0xec) {
		/* The kernel zeroed what was grown; zero the rest of the page. */
		p = reply_frame(ctx, ATA_HDR + 512, ATA_HDR + 512, ATA_HDR);
		if (!p)
			return XDP_DROP;
		IDW(p, 0, 0x0040);
		IDW(p, 49, 0x0200);
		IDW(p, 60, (CAPACITY > 0x0fffffff ? 0x0fffffff : CAPACITY) & 0xffff);
		IDW(p, 61, (CAPACITY > 0x0fffffff ? 0x0fffffff : CAPACITY) >> 16);
		IDW(p, 83, 0x5400); /* LBA48 + FLUSH EXT, valid */
		IDW(p, 86, 0x1400);
		IDW(p, 100, CAPACITY & 0xffff);
		IDW(p, 101, (CAPACITY >> 16) & 0xffff);
		IDW(p, 102, (CAPACITY >> 32) & 0xffff);
		IDW(p, 103, (CAPACITY >> 48) & 0xffff);
		/* model (words 27-46), byte-swapped: "XDP responder" */
		{
			const char m[] = "XDP link-limit responder                ";
#pragma unroll
			for (int i = 0; i < 40; i += 2) {
				p[ATA_HDR + 54 + i] = m[i + 1];
				p[ATA_HDR + 54 + i + 1] = m[i];
			}
		}
		count(ST_IDENTIFY);
		return XDP_TX;
	}
	/* FLUSH, CHECK POWER MODE and anything else: plain success. */
	if (resize(ctx, MIN_FRAME)) {
		count(ST_GROW_FAILED);
		return XDP_DROP;
	}
	count(ST_OTHER_ATA);
	return XDP_TX;
}

char _license[] SEC("license") = "Dual MIT/GPL";
