//! The seed corpus: the request frames of `aoe-proto/tests/golden.rs` (what
//! the Linux driver, aoetools, iPXE and aoe-sancheck send), re-addressed to
//! the fuzz target's exports, plus short sequences that change the control
//! state and then use it. `make_corpus` writes them to `fuzz/corpus/`.
//!
//! Not part of the library, so that the fuzz target's coverage map holds
//! only code an input can reach: `make_corpus` and `tests/corpus.rs`
//! include this file as a module.

use aoe_proto::wire::RequestHeader;
use aoe_proto::MacAddr;
use aoe_proto_fuzz::{encode, MAX_BUF_LEN, SECTORS};

const HOST_MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const OTHER_MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0xAB, 0xCD, 0xEF]);
/// A standard frame's buffer (MTU 1500 plus the Ethernet header).
const BUF: usize = 1514;
/// A jumbo frame's buffer (MTU 9000 plus an 802.1Q-tagged header).
const JUMBO_BUF: usize = 9018;
/// A Linux tag: bit 31 clear, a counter in bits 30-16, jiffies below.
const TAG: u32 = 0x0003_4A2B;

fn request_from(src: MacAddr, shelf: u16, slot: u8, cmd: u8, tag: u32, arg: &[u8]) -> Vec<u8> {
    RequestHeader::broadcast(src, shelf, slot, cmd.into(), tag).frame(arg)
}

fn request(slot: u8, cmd: u8, arg: &[u8]) -> Vec<u8> {
    request_from(HOST_MAC, 1, slot, cmd, TAG, arg)
}

fn ata_arg(aflags: u8, cmd: u8, count: u8, lba: u64) -> Vec<u8> {
    let mut a = vec![aflags, 0, count, cmd];
    a.extend_from_slice(&lba.to_le_bytes()[..6]);
    a.extend_from_slice(&[0, 0]);
    a
}

fn ata(slot: u8, aflags: u8, cmd: u8, count: u8, lba: u64) -> Vec<u8> {
    request(slot, 0, &ata_arg(aflags, cmd, count, lba))
}

fn ata_from(src: MacAddr, aflags: u8, cmd: u8, count: u8, lba: u64) -> Vec<u8> {
    request_from(src, 1, 1, 0, TAG, &ata_arg(aflags, cmd, count, lba))
}

/// A write request with `count` sectors of patterned data.
fn write(slot: u8, aflags: u8, cmd: u8, count: u8, lba: u64) -> Vec<u8> {
    let mut f = ata(slot, aflags, cmd, count, lba);
    f.extend((0..usize::from(count) * 512).map(|i| (i % 251) as u8));
    f
}

fn query_config(slot: u8, ccmd: u8, s: &[u8]) -> Vec<u8> {
    let mut arg = vec![0, 0, 0, 0, 0, 0x10 | ccmd];
    arg.extend_from_slice(&(s.len() as u16).to_be_bytes());
    arg.extend_from_slice(s);
    request(slot, 1, &arg)
}

fn mask(src: MacAddr, mcmd: u8, directives: &[(u8, MacAddr)]) -> Vec<u8> {
    let mut arg = vec![0, mcmd, 0, directives.len() as u8];
    for (dcmd, mac) in directives {
        arg.extend_from_slice(&[0, *dcmd]);
        arg.extend_from_slice(&mac.0);
    }
    request_from(src, 1, 1, 2, TAG, &arg)
}

fn reserve(src: MacAddr, rcmd: u8, macs: &[MacAddr]) -> Vec<u8> {
    let mut arg = vec![rcmd, macs.len() as u8];
    for mac in macs {
        arg.extend_from_slice(&mac.0);
    }
    request_from(src, 1, 1, 3, TAG, &arg)
}

fn pad60(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

/// The Linux driver's discovery frame: broadcast Query Config, tag 0,
/// argument zeroed, padded to 60 bytes.
fn linux_discover() -> Vec<u8> {
    pad60(request_from(HOST_MAC, 0xFFFF, 0xFF, 1, 0, &[0; 8]))
}

fn vlan(mut f: Vec<u8>) -> Vec<u8> {
    f.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    f
}

/// Every seed as (file name, input bytes), in a fixed order.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let one = |name: &str, jumbo: bool, buf: usize, f: Vec<u8>| {
        (name.to_string(), encode(jumbo, buf, &[&f]))
    };
    let seq = |name: &str, buf: usize, fs: Vec<Vec<u8>>| {
        let refs: Vec<&[u8]> = fs.iter().map(Vec::as_slice).collect();
        (name.to_string(), encode(false, buf, &refs))
    };
    let k = |n: usize| vec![b'k'; n];
    let mut group_src = HOST_MAC;
    group_src.0[0] |= 1;
    let mut response = linux_discover();
    response[14] = 0x18;
    let mut ipv4 = linux_discover();
    ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
    let mut wrong_version = ata(1, 0, 0xEC, 1, 0);
    wrong_version[14] = 0x20;
    let mut aoecfg = query_config(1, 3, b"abc");
    aoecfg.resize(1056, 0);
    let mut reserve_short = reserve(HOST_MAC, 1, &[HOST_MAC]);
    reserve_short[25] = 2; // claims two MACs, carries one
    let mut sancheck = ata(1, 0, 0xEC, 1, 0);
    sancheck.extend(std::iter::repeat_n(0xA5, 1400));
    let full_mask: Vec<(u8, MacAddr)> = (0..=40u8)
        .map(|i| (1, MacAddr([0x52, 0x54, 0, 0, 1, i])))
        .collect();

    vec![
        // Discovery and addressing.
        one("discover-linux", false, BUF, linux_discover()),
        one("discover-vlan", false, BUF, vlan(linux_discover())),
        one(
            "discover-slot-wildcard",
            false,
            BUF,
            pad60(request_from(HOST_MAC, 1, 0xFF, 1, TAG, &[0; 8])),
        ),
        one("response-ignored", false, BUF, response),
        one("ipv4-ignored", false, BUF, ipv4),
        one(
            "group-source",
            false,
            BUF,
            ata_from(group_src, 0, 0xEC, 1, 0),
        ),
        one(
            "ata-broadcast",
            false,
            BUF,
            request_from(HOST_MAC, 0xFFFF, 0xFF, 0, TAG, &ata_arg(0, 0x20, 1, 0)),
        ),
        one(
            "truncated-header",
            false,
            0,
            linux_discover()[..20].to_vec(),
        ),
        one("tiny-buffer", false, 0, ata(1, 0, 0xE5, 0, 0)),
        // ATA.
        one("identify", false, BUF, ata(1, 0, 0xEC, 1, 0)),
        one("identify-ro", false, BUF, ata(2, 0, 0xEC, 1, 0)),
        one("identify-vlan", false, BUF, vlan(ata(1, 0, 0xEC, 1, 0))),
        one("identify-sancheck-junk", false, BUF, sancheck),
        one("identify-short-buffer", false, 100, ata(1, 0, 0xEC, 1, 0)),
        one(
            "read-lba28",
            false,
            BUF,
            ata(1, 0, 0x20, 2, 0xE000_0000 | 10),
        ),
        one(
            "read-ext-last",
            false,
            BUF,
            ata(2, 0x40, 0x24, 1, SECTORS - 1),
        ),
        one(
            "read-past-end",
            false,
            BUF,
            ata(1, 0x40, 0x24, 2, SECTORS - 1),
        ),
        one("read-jumbo", true, JUMBO_BUF, ata(1, 0x40, 0x24, 17, 0)),
        one("read-too-big", false, BUF, ata(1, 0, 0x20, 17, 0)),
        one("write-lba28", false, BUF, write(1, 0x01, 0x30, 2, 0)),
        one("write-ext", false, BUF, write(1, 0x41, 0x34, 1, 500)),
        one("write-async", false, BUF, write(1, 0x43, 0x34, 1, 7)),
        one(
            "write-jumbo",
            true,
            MAX_BUF_LEN,
            write(1, 0x41, 0x34, 17, 100),
        ),
        one("write-read-only", false, BUF, write(2, 0x41, 0x34, 1, 0)),
        one("write-short-data", false, BUF, ata(1, 0x41, 0x34, 2, 0)),
        one("check-power-mode", false, BUF, ata(1, 0, 0xE5, 0, 0)),
        one("flush-cache", false, BUF, ata(1, 0, 0xE7, 0, 0)),
        one("flush-cache-ext", false, BUF, ata(2, 0, 0xEA, 0, 0)),
        one("smart-unsupported", false, BUF, ata(1, 0, 0xB0, 1, 0)),
        one("ata-truncated-arg", false, BUF, request(1, 0, &[0, 0, 1])),
        one("wrong-version", false, BUF, wrong_version),
        one("unknown-command", false, BUF, request(1, 9, &[])),
        one("vendor-command", false, BUF, request(1, 0xF0, &[1, 2, 3])),
        // Query Config.
        one("config-read", false, BUF, query_config(1, 0, b"")),
        one("config-test", false, BUF, query_config(1, 1, b"abc")),
        one("config-prefix", false, BUF, query_config(1, 2, b"")),
        one("config-set", false, BUF, query_config(1, 3, b"abc")),
        one(
            "config-force-set-1024",
            false,
            BUF,
            query_config(1, 4, &k(1024)),
        ),
        one("config-aoecfg-1056", false, BUF, aoecfg),
        one("config-bad-ccmd", false, BUF, query_config(1, 5, b"")),
        // Mac Mask List.
        one("mask-read", false, BUF, mask(HOST_MAC, 0, &[])),
        one(
            "mask-edit",
            false,
            BUF,
            mask(
                HOST_MAC,
                1,
                &[(1, HOST_MAC), (1, OTHER_MAC), (2, OTHER_MAC)],
            ),
        ),
        one(
            "mask-bad-dcmd",
            false,
            BUF,
            mask(HOST_MAC, 1, &[(1, HOST_MAC), (7, OTHER_MAC)]),
        ),
        one("mask-full", false, BUF, mask(HOST_MAC, 1, &full_mask)),
        // Reserve/Release.
        one("reserve-read", false, BUF, reserve(HOST_MAC, 0, &[])),
        one("reserve-set", false, BUF, reserve(HOST_MAC, 1, &[HOST_MAC])),
        one(
            "reserve-force",
            false,
            BUF,
            reserve(OTHER_MAC, 2, &[OTHER_MAC]),
        ),
        one("reserve-short", false, BUF, reserve_short),
        // Sequences: change the control state, then use it.
        seq(
            "seq-config-set-then-test",
            BUF,
            vec![
                query_config(1, 3, b"host=a"),
                query_config(1, 1, b"host=a"),
                query_config(1, 2, b"host"),
                query_config(1, 1, b"other"),
                query_config(1, 3, b"again"),
            ],
        ),
        seq(
            "seq-config-long-then-small-buffer",
            200,
            vec![
                query_config(1, 4, &k(1024)),
                pad60(request_from(HOST_MAC, 0xFFFF, 0xFF, 1, 0, &[0; 8])),
            ],
        ),
        seq(
            "seq-mask-then-ata",
            BUF,
            vec![
                mask(HOST_MAC, 1, &[(1, OTHER_MAC)]),
                ata_from(HOST_MAC, 0, 0xEC, 1, 0),
                ata_from(OTHER_MAC, 0, 0x20, 1, 0),
                linux_discover(),
                mask(OTHER_MAC, 1, &[(2, OTHER_MAC)]),
                ata_from(HOST_MAC, 0, 0x20, 1, 0),
            ],
        ),
        seq(
            "seq-reserve-then-ata",
            BUF,
            vec![
                reserve(HOST_MAC, 1, &[HOST_MAC]),
                ata_from(OTHER_MAC, 0x41, 0x34, 0, 0),
                reserve(OTHER_MAC, 1, &[OTHER_MAC]),
                ata_from(HOST_MAC, 0, 0x20, 1, 0),
                reserve(HOST_MAC, 1, &[]),
                ata_from(OTHER_MAC, 0, 0x20, 1, 0),
            ],
        ),
        seq(
            "seq-reserve-force-then-write",
            BUF,
            vec![
                reserve(OTHER_MAC, 2, &[OTHER_MAC, HOST_MAC]),
                write(1, 0x41, 0x34, 1, 3),
                reserve(HOST_MAC, 0, &[]),
            ],
        ),
    ]
}
