//! Golden-frame tests: requests as initiators send them, byte for byte, and
//! the exact responses and actions the target must produce.

use aoe_proto::ata::Identity;
use aoe_proto::wire::{AoeHeader, AtaArg, ConfigArg, EthernetFrame, RequestHeader};
use aoe_proto::{Action, AtaFailure, BlockIo, Dropped, ExportInfo, MacAddr, Target, TargetParams};

const TARGET_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const HOST_MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const OTHER_MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0xAB, 0xCD, 0xEF]);
/// 64 MiB export.
const SECTORS: u64 = 131072;
/// Room for the largest response, as in a UMEM frame.
const BUF_LEN: usize = 2048;

fn identity(sectors: u64) -> Identity {
    Identity {
        serial: "1.1:storage01".into(),
        firmware: "0.1.0".into(),
        model: "aoe-xdp".into(),
        sectors,
    }
}

fn target() -> Target {
    target_with(vec![ExportInfo::new(1, 1, false, &identity(SECTORS))])
}

fn target_with(exports: Vec<ExportInfo>) -> Target {
    Target::new(
        TargetParams {
            mac: TARGET_MAC,
            buffer_count: 64,
            firmware_version: 0x0001,
            max_sectors: 2,
        },
        exports,
    )
}

/// An untagged AoE request from HOST_MAC.
fn request(shelf: u16, slot: u8, cmd: u8, tag: u32, arg: &[u8]) -> Vec<u8> {
    request_from(HOST_MAC, shelf, slot, cmd, tag, arg)
}

fn request_from(src: MacAddr, shelf: u16, slot: u8, cmd: u8, tag: u32, arg: &[u8]) -> Vec<u8> {
    RequestHeader::broadcast(src, shelf, slot, cmd.into(), tag).frame(arg)
}

fn ata_arg(aflags: u8, cmd: u8, count: u8, lba: u64) -> Vec<u8> {
    let mut a = vec![aflags, 0, count, cmd];
    a.extend_from_slice(&lba.to_le_bytes()[..6]);
    a.extend_from_slice(&[0, 0]);
    a
}

/// The exports a frame is routed to (empty when dropped).
fn routed(t: &Target, frame: &[u8]) -> Vec<usize> {
    t.route(frame).map(|r| r.collect()).unwrap_or_default()
}

/// Runs the request through export `index` in a BUF_LEN buffer.
fn run(t: &Target, index: usize, req: &[u8]) -> (Action, Vec<u8>) {
    let mut buf = vec![0xEEu8; BUF_LEN];
    buf[..req.len()].copy_from_slice(req);
    let action = t.handle(index, &mut buf, req.len());
    (action, buf)
}

/// Runs the request, expects a plain reply, returns the transmitted bytes.
fn reply(t: &Target, req: &[u8]) -> Vec<u8> {
    let (action, mut buf) = run(t, 0, req);
    match action {
        Action::Reply(r) => {
            let error = r.is_error();
            let len = r.finish(&mut buf, Ok(()));
            buf.truncate(len);
            let ata_err = buf[19] == 0 && buf.len() > 27 && buf[27] & 0x01 != 0;
            assert_eq!(
                error,
                aoe_error(&buf).is_some() || ata_err,
                "Reply::is_error"
            );
            buf
        }
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn aoe_error(frame: &[u8]) -> Option<u8> {
    let h = AoeHeader::new_checked(&frame[14..]).unwrap();
    (h.flags() & 0x4 != 0).then(|| h.error())
}

fn ata_status(frame: &[u8]) -> (u8, u8) {
    let a = AtaArg::new_checked(&frame[24..]).unwrap();
    (a.status(), a.err())
}

fn query_config(ccmd: u8, s: &[u8]) -> Vec<u8> {
    let mut arg = vec![0, 0, 0, 0, 0, 0x10 | ccmd];
    arg.extend_from_slice(&(s.len() as u16).to_be_bytes());
    arg.extend_from_slice(s);
    request(1, 1, 1, 0x8000_0001, &arg)
}

// ---------------------------------------------------------------- discovery

/// The Linux driver's discovery frame: broadcast Query Config, tag 0,
/// argument zeroed, padded to 60 bytes.
const LINUX_DISCOVER: [u8; 60] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x88, 0xa2, 0x10, 0x00,
    0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// The exact answer: unicast to the host, from our MAC, our own shelf.slot,
/// buffer count 64, firmware 1, 2 sectors, version 1, empty string, padded.
const LINUX_DISCOVER_ANSWER: [u8; 60] = [
    0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x88, 0xa2, 0x18, 0x00,
    0x00, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x01, 0x02, 0x10, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

#[test]
fn linux_discovery_gets_exact_answer() {
    let t = target();
    assert_eq!(routed(&t, &LINUX_DISCOVER).first().copied(), Some(0));
    assert_eq!(reply(&t, &LINUX_DISCOVER), LINUX_DISCOVER_ANSWER);
}

#[test]
fn broadcast_reaches_every_export_and_each_answers_with_its_own_address() {
    let t = target_with(vec![
        ExportInfo::new(1, 1, false, &identity(SECTORS)),
        ExportInfo::new(1, 2, false, &identity(SECTORS)),
        ExportInfo::new(2, 1, false, &identity(SECTORS)),
    ]);
    assert_eq!(routed(&t, &LINUX_DISCOVER), vec![0, 1, 2]);
    for (i, (shelf, slot)) in [(1u16, 1u8), (1, 2), (2, 1)].into_iter().enumerate() {
        let (action, buf) = run(&t, i, &LINUX_DISCOVER);
        assert!(matches!(action, Action::Reply(_)));
        let h = AoeHeader::new_checked(&buf[14..]).unwrap();
        assert_eq!((h.shelf(), h.slot()), (shelf, slot));
    }
    // Shelf wildcard with a fixed slot, and an exact address.
    let req = request(0xFFFF, 2, 1, 0, &[0; 8]);
    assert_eq!(routed(&t, &req), vec![1]);
    let req = request(2, 0xFF, 1, 0, &[0; 8]);
    assert_eq!(routed(&t, &req).first().copied(), Some(2));
    let req = request(3, 1, 1, 0, &[0; 8]);
    assert_eq!(routed(&t, &req).first().copied(), None);
}

#[test]
fn responses_and_other_ethertypes_are_ignored() {
    let t = target();
    let mut resp = LINUX_DISCOVER;
    resp[14] = 0x18;
    assert_eq!(routed(&t, &resp).first().copied(), None);
    assert_eq!(run(&t, 0, &resp).0, Action::Drop(Dropped::NotForUs));
    let mut ip = LINUX_DISCOVER;
    ip[12..14].copy_from_slice(&[0x08, 0x00]);
    assert_eq!(routed(&t, &ip).first().copied(), None);
    // Too short for an AoE header.
    assert!(routed(&t, &LINUX_DISCOVER[..20]).is_empty());
    assert_eq!(
        run(&t, 0, &LINUX_DISCOVER[..20]).0,
        Action::Drop(Dropped::NotForUs)
    );
    assert_eq!(
        run(&t, 0, &LINUX_DISCOVER[..5]).0,
        Action::Drop(Dropped::NotForUs)
    );
}

#[test]
fn announcement_is_a_broadcast_config_response() {
    let t = target();
    let mut buf = [0xEEu8; 128];
    let len = t.announce(0, &mut buf).unwrap();
    assert_eq!(len, 60);
    let mut expected = LINUX_DISCOVER_ANSWER;
    expected[..6].copy_from_slice(&[0xFF; 6]);
    assert_eq!(buf[..len], expected);
}

#[test]
fn vlan_tagged_request_gets_tagged_response() {
    let t = target();
    let mut req = LINUX_DISCOVER.to_vec();
    req.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    assert_eq!(routed(&t, &req).first().copied(), Some(0));
    let resp = reply(&t, &req);
    assert_eq!(&resp[12..16], &[0x81, 0x00, 0x00, 0x05]);
    let eth = EthernetFrame::new_checked(&resp[..]).unwrap();
    assert_eq!(eth.header_len(), 18);
    assert_eq!(eth.dst(), HOST_MAC);
    let h = AoeHeader::new_checked(&resp[18..]).unwrap();
    assert!(h.is_response());
    assert_eq!((h.shelf(), h.slot()), (1, 1));
    let c = ConfigArg::new_checked(&resp[28..]).unwrap();
    assert_eq!(c.buffer_count(), 64);
    assert_eq!(c.sector_count(), 2);
}

// ---------------------------------------------------------- header errors

#[test]
fn wrong_version_is_error_5() {
    let t = target();
    let mut req = request(1, 1, 0, 7, &ata_arg(0, 0xEC, 1, 0));
    req[14] = 0x20;
    let resp = reply(&t, &req);
    assert_eq!(aoe_error(&resp), Some(5));
    assert_eq!(resp[14], 0x1C, "version 1, response and error flags");
    assert_eq!(&resp[20..24], &7u32.to_be_bytes(), "tag echoed");
    assert_eq!(resp.len(), 60);
}

#[test]
fn unknown_command_is_error_1_including_vendor_range() {
    let t = target();
    for cmd in [4u8, 0x7F, 0xF0, 0xFF] {
        let resp = reply(&t, &request(1, 1, cmd, 9, &[]));
        assert_eq!(aoe_error(&resp), Some(1), "command {cmd:#x}");
        assert_eq!(resp.len(), 60);
    }
}

#[test]
fn truncated_arguments_are_error_2() {
    let t = target();
    for (cmd, arg_len) in [(0u8, 11usize), (1, 7), (2, 3), (3, 1)] {
        let resp = reply(&t, &request(1, 1, cmd, 1, &vec![0; arg_len]));
        assert_eq!(aoe_error(&resp), Some(2), "command {cmd}");
    }
}

// --------------------------------------------------------------------- ATA

fn identify_request(trailing_junk: usize) -> Vec<u8> {
    let mut req = request(1, 1, 0, 0x8000_1234, &ata_arg(0, 0xEC, 1, 0));
    req.extend(std::iter::repeat_n(0xA5, trailing_junk));
    req
}

fn word(page: &[u8], w: usize) -> u16 {
    u16::from_le_bytes([page[2 * w], page[2 * w + 1]])
}

fn ata_str(page: &[u8], words: std::ops::Range<usize>) -> String {
    let mut s = Vec::new();
    for w in words {
        s.extend_from_slice(&word(page, w).to_be_bytes());
    }
    String::from_utf8(s).unwrap().trim_end().to_string()
}

#[test]
fn identify_reports_strings_capacity_and_feature_bits() {
    let t = target();
    let resp = reply(&t, &identify_request(0));
    assert_eq!(resp.len(), 36 + 512);
    assert_eq!(ata_status(&resp), (0x40, 0));
    assert_eq!(&resp[20..24], &0x8000_1234u32.to_be_bytes());
    let page = &resp[36..];
    assert_eq!(ata_str(page, 10..20), "1.1:storage01");
    assert_eq!(ata_str(page, 23..27), "0.1.0");
    assert_eq!(ata_str(page, 27..47), "aoe-xdp");
    assert_eq!(word(page, 49) & 0x0200, 0x0200, "LBA supported");
    assert_eq!(
        word(page, 60) as u64 | (word(page, 61) as u64) << 16,
        SECTORS
    );
    assert_eq!(word(page, 83) & 0xC000, 0x4000, "word 83 valid");
    assert_ne!(word(page, 83) & (1 << 10), 0, "LBA48");
    assert_ne!(word(page, 83) & (1 << 12), 0, "FLUSH CACHE");
    assert_ne!(word(page, 83) & (1 << 13), 0, "FLUSH CACHE EXT");
    assert_ne!(word(page, 86) & (1 << 10), 0, "LBA48 enabled");
    let lba48 = (0..4).fold(0u64, |acc, i| {
        acc | (word(page, 100 + i) as u64) << (16 * i)
    });
    assert_eq!(lba48, SECTORS);
}

#[test]
fn identify_caps_lba28_capacity_for_large_exports() {
    let big = 1u64 << 32; // 2 TiB
    let t = target_with(vec![ExportInfo::new(1, 1, false, &identity(big))]);
    let page = reply(&t, &identify_request(0))[36..].to_vec();
    assert_eq!(word(page.as_slice(), 60), 0xFFFF);
    assert_eq!(word(page.as_slice(), 61), 0x0FFF);
    let lba48 = (0..4).fold(0u64, |acc, i| {
        acc | (word(&page, 100 + i) as u64) << (16 * i)
    });
    assert_eq!(lba48, big);
}

#[test]
fn identify_with_trailing_junk_like_aoe_sancheck() {
    let t = target();
    let resp = reply(&t, &identify_request(1400));
    assert_eq!(resp.len(), 36 + 512);
    assert_eq!(ata_status(&resp), (0x40, 0));
}

#[test]
fn read_lba28_masks_the_device_nibble() {
    let t = target();
    // The Linux driver puts 0xE0 in the top nibble of lba3.
    let lba = 0xE000_0010u64;
    let (action, _) = run(&t, 0, &request(1, 1, 0, 1, &ata_arg(0, 0x20, 2, lba)));
    match action {
        Action::Read(io, r) => {
            assert_eq!(
                io,
                BlockIo {
                    lba: 0x10,
                    sectors: 2,
                    data: 36..36 + 1024
                }
            );
            assert_eq!(io.offset(), 0x10 * 512);
            assert_eq!(r.len(), 36 + 1024);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn read_ext_uses_48_bits_and_reply_keeps_the_data() {
    let big = 1u64 << 40;
    let t = target_with(vec![ExportInfo::new(1, 1, false, &identity(big))]);
    let lba = (1u64 << 36) + 5;
    let (action, mut buf) = run(&t, 0, &request(1, 1, 0, 1, &ata_arg(0x40, 0x24, 1, lba)));
    let Action::Read(io, r) = action else {
        panic!("expected a read")
    };
    assert_eq!((io.lba, io.sectors), (lba, 1));
    buf[io.data.clone()].fill(0x5A);
    let len = r.finish(&mut buf, Ok(()));
    assert_eq!(len, 36 + 512);
    assert_eq!(ata_status(&buf), (0x40, 0));
    assert!(buf[36..len].iter().all(|&b| b == 0x5A));
}

#[test]
fn write_and_write_ext_name_the_received_data() {
    let t = target();
    for (cmd, aflags) in [(0x30u8, 0x01u8), (0x34, 0x41)] {
        let mut arg = ata_arg(aflags, cmd, 2, 100);
        arg.extend((0..1024).map(|i| i as u8));
        let req = request(1, 1, 0, 1, &arg);
        let (action, mut buf) = run(&t, 0, &req);
        let Action::Write(io, r) = action else {
            panic!("expected a write")
        };
        assert_eq!((io.lba, io.sectors, io.data.clone()), (100, 2, 36..1060));
        assert_eq!(&buf[io.data.clone()], &req[36..1060], "data untouched");
        let len = r.finish(&mut buf, Ok(()));
        assert_eq!(len, 60);
        assert_eq!(ata_status(&buf), (0x40, 0));
        assert!(buf[36..60].iter().all(|&b| b == 0), "padding zeroed");
    }
}

#[test]
fn storage_failure_becomes_an_ata_error_reply() {
    let t = target();
    let (action, mut buf) = run(&t, 0, &request(1, 1, 0, 1, &ata_arg(0, 0x20, 2, 0)));
    let Action::Read(_, r) = action else { panic!() };
    let len = r.finish(&mut buf, Err(AtaFailure::ReadError));
    assert_eq!(len, 60, "no data sent after a failed read");
    assert_eq!(ata_status(&buf), (0x41, 0x40));
    assert_eq!(aoe_error(&buf), None);

    let mut arg = ata_arg(1, 0x30, 1, 0);
    arg.extend([0u8; 512]);
    let (action, mut buf) = run(&t, 0, &request(1, 1, 0, 1, &arg));
    let Action::Write(_, r) = action else {
        panic!()
    };
    r.finish(&mut buf, Err(AtaFailure::WriteError));
    assert_eq!(ata_status(&buf), (0x41, 0x04));
}

#[test]
fn address_past_the_end_is_idnf() {
    let t = target();
    for (cmd, lba, count) in [
        (0x20u8, SECTORS, 1u8),
        (0x20, SECTORS - 1, 2),
        (0x24, SECTORS - 1, 2),
        // lba + count overflows nothing but passes the end by far.
        (0x24, 0xFFFF_FFFF_FFFF, 2),
    ] {
        let resp = reply(&t, &request(1, 1, 0, 1, &ata_arg(0x40, cmd, count, lba)));
        assert_eq!(
            ata_status(&resp),
            (0x41, 0x10),
            "lba {lba:#x} count {count}"
        );
        assert_eq!(resp.len(), 60);
    }
    // The very last sector is fine.
    let (action, _) = run(
        &t,
        0,
        &request(1, 1, 0, 1, &ata_arg(0, 0x20, 1, SECTORS - 1)),
    );
    assert!(matches!(action, Action::Read(..)));
}

#[test]
fn bad_counts_and_short_writes_are_aborted() {
    let t = target();
    // Count 0 (256 in ATA) and more than the advertised maximum.
    for count in [0u8, 3, 255] {
        let resp = reply(&t, &request(1, 1, 0, 1, &ata_arg(0, 0x20, count, 0)));
        assert_eq!(ata_status(&resp), (0x41, 0x04), "count {count}");
    }
    // A write frame that carries less data than its count says.
    let mut arg = ata_arg(1, 0x30, 2, 0);
    arg.extend([0u8; 600]);
    let resp = reply(&t, &request(1, 1, 0, 1, &arg));
    assert_eq!(ata_status(&resp), (0x41, 0x04));
}

#[test]
fn read_that_does_not_fit_the_buffer_is_aborted() {
    let t = Target::new(
        TargetParams {
            mac: TARGET_MAC,
            buffer_count: 64,
            firmware_version: 1,
            max_sectors: 17,
        },
        vec![ExportInfo::new(1, 1, false, &identity(SECTORS))],
    );
    let resp = reply(&t, &request(1, 1, 0, 1, &ata_arg(0, 0x20, 17, 0)));
    assert_eq!(ata_status(&resp), (0x41, 0x04));
}

#[test]
fn write_to_read_only_export_is_an_ata_error() {
    let t = target_with(vec![ExportInfo::new(1, 1, true, &identity(SECTORS))]);
    let mut arg = ata_arg(1, 0x30, 1, 0);
    arg.extend([0u8; 512]);
    let resp = reply(&t, &request(1, 1, 0, 1, &arg));
    assert_eq!(ata_status(&resp), (0x41, 0x04));
    // Reads still work.
    let (action, _) = run(&t, 0, &request(1, 1, 0, 1, &ata_arg(0, 0x20, 1, 0)));
    assert!(matches!(action, Action::Read(..)));
}

#[test]
fn unsupported_ata_commands_are_aborted() {
    let t = target();
    // SMART (aoeping -s), SET FEATURES, READ DMA.
    for cmd in [0xB0u8, 0xEF, 0xC8] {
        let resp = reply(&t, &request(1, 1, 0, 1, &ata_arg(0, cmd, 1, 0)));
        assert_eq!(ata_status(&resp), (0x41, 0x04), "command {cmd:#x}");
        assert_eq!(aoe_error(&resp), None);
    }
}

#[test]
fn check_power_mode_says_active() {
    let t = target();
    let resp = reply(&t, &request(1, 1, 0, 1, &ata_arg(0, 0xE5, 0, 0)));
    assert_eq!(ata_status(&resp), (0x40, 0));
    assert_eq!(resp[26], 0xFF);
}

#[test]
fn flush_cache_and_flush_cache_ext_ask_for_a_flush() {
    let t = target();
    for cmd in [0xE7u8, 0xEA] {
        let (action, mut buf) = run(&t, 0, &request(1, 1, 0, 1, &ata_arg(0, cmd, 0, 0)));
        let Action::Flush(r) = action else {
            panic!("expected flush for {cmd:#x}")
        };
        assert_eq!(r.finish(&mut buf, Ok(())), 60);
        assert_eq!(ata_status(&buf), (0x40, 0));
    }
}

#[test]
fn ata_to_a_broadcast_address_is_ignored() {
    let t = target();
    for (shelf, slot) in [(0xFFFFu16, 0xFFu8), (1, 0xFF), (0xFFFF, 1)] {
        let mut arg = ata_arg(1, 0x30, 1, 0);
        arg.extend([0u8; 512]);
        let (action, _) = run(&t, 0, &request(shelf, slot, 0, 1, &arg));
        assert_eq!(
            action,
            Action::Drop(Dropped::NotForUs),
            "{shelf:#x}.{slot:#x}"
        );
        assert!(routed(&t, &request(shelf, slot, 0, 1, &arg)).is_empty());
    }
}

/// Linux retransmits a write with a new tag: the retransmit must write the
/// same sectors from the same bytes, and its reply must carry the new tag
/// (the initiator drops a reply to the old one).
#[test]
fn a_retransmitted_write_writes_the_same_sectors_and_echoes_its_own_tag() {
    let t = target();
    let mut arg = ata_arg(1, 0x30, 1, 7);
    arg.extend([9u8; 512]);
    let expected = BlockIo {
        lba: 7,
        sectors: 1,
        data: 36..548,
    };
    for tag in [0x0001_0001u32, 0x0002_0001] {
        let (action, mut buf) = run(&t, 0, &request(1, 1, 0, tag, &arg));
        let Action::Write(io, r) = action else {
            panic!("expected a write, got {action:?}");
        };
        assert_eq!(io, expected);
        assert!(buf[io.data.clone()].iter().all(|&b| b == 9));
        let len = r.finish(&mut buf, Ok(()));
        assert_eq!(len, 60);
        assert_eq!(AoeHeader::new_checked(&buf[14..]).unwrap().tag(), tag);
    }
}

/// A request from a group address (broadcast or multicast source) is
/// forged or broken: answering it would send the data to every host.
#[test]
fn a_request_from_a_group_address_is_dropped() {
    let t = target();
    for src in [
        MacAddr::BROADCAST,
        MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]),
        MacAddr([0x33, 0x33, 0, 0, 0, 1]),
    ] {
        let identify = request_from(src, 1, 1, 0, 1, &ata_arg(0, 0xEC, 1, 0));
        assert_eq!(t.route(&identify).err(), Some(Dropped::GroupSource));
        assert_eq!(run(&t, 0, &identify).0, Action::Drop(Dropped::GroupSource));
        let mut discover = LINUX_DISCOVER;
        discover[6..12].copy_from_slice(&src.0);
        assert_eq!(run(&t, 0, &discover).0, Action::Drop(Dropped::GroupSource));
    }
}

// ----------------------------------------------------------- Query Config

fn config_string(resp: &[u8]) -> Vec<u8> {
    ConfigArg::new_checked(&resp[24..])
        .unwrap()
        .string()
        .unwrap()
        .to_vec()
}

#[test]
fn config_set_read_test_and_prefix() {
    let t = target();
    let resp = reply(&t, &query_config(3, b"host=alpha"));
    assert_eq!(aoe_error(&resp), None);
    assert_eq!(resp[29], 0x13, "version 1, ccmd echoed");
    assert_eq!(config_string(&resp), b"host=alpha");
    assert_eq!(
        config_string(&reply(&t, &query_config(0, b""))),
        b"host=alpha"
    );
    // Exact test: answer on match, silence otherwise.
    assert!(matches!(
        run(&t, 0, &query_config(1, b"host=alpha")).0,
        Action::Reply(_)
    ));
    assert_eq!(
        run(&t, 0, &query_config(1, b"host=alph")).0,
        Action::Drop(Dropped::Silent)
    );
    assert_eq!(
        run(&t, 0, &query_config(1, b"host=alphabet")).0,
        Action::Drop(Dropped::Silent)
    );
    // Prefix test.
    assert!(matches!(
        run(&t, 0, &query_config(2, b"host=")).0,
        Action::Reply(_)
    ));
    assert!(matches!(
        run(&t, 0, &query_config(2, b"")).0,
        Action::Reply(_)
    ));
    assert_eq!(
        run(&t, 0, &query_config(2, b"guest")).0,
        Action::Drop(Dropped::Silent)
    );
}

#[test]
fn config_set_when_present_is_error_4_but_force_set_wins() {
    let t = target();
    reply(&t, &query_config(3, b"one"));
    // A retransmitted identical set is harmless.
    assert_eq!(aoe_error(&reply(&t, &query_config(3, b"one"))), None);
    let resp = reply(&t, &query_config(3, b"two"));
    assert_eq!(aoe_error(&resp), Some(4));
    assert_eq!(config_string(&reply(&t, &query_config(0, b""))), b"one");
    let resp = reply(&t, &query_config(4, b"two"));
    assert_eq!(config_string(&resp), b"two");
    assert_eq!(t.exports()[0].control().config(), b"two");
}

#[test]
fn config_length_is_trusted_over_frame_length_like_aoecfg() {
    let t = target();
    // aoecfg always sends 1056 bytes whatever the string.
    let mut req = query_config(3, b"abc");
    req.resize(1056, 0);
    assert_eq!(config_string(&reply(&t, &req)), b"abc");
}

#[test]
fn config_of_1024_bytes_is_accepted_and_1025_is_not() {
    let t = target();
    let long = vec![b'x'; 1024];
    let resp = reply(&t, &query_config(4, &long));
    assert_eq!(config_string(&resp), long);
    let mut req = query_config(4, &[b'y'; 1025]);
    assert_eq!(aoe_error(&reply(&t, &req)), Some(2));
    // Length field claiming more than the frame holds.
    req = query_config(4, b"abc");
    req[30..32].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(aoe_error(&reply(&t, &req)), Some(2));
    assert_eq!(t.exports()[0].control().config(), long.as_slice());
}

#[test]
fn unknown_config_subcommand_is_error_2() {
    let t = target();
    assert_eq!(aoe_error(&reply(&t, &query_config(5, b""))), Some(2));
    assert_eq!(aoe_error(&reply(&t, &query_config(15, b""))), Some(2));
}

// ---------------------------------------------------------- Mac Mask List

fn mask_request(src: MacAddr, mcmd: u8, directives: &[(u8, MacAddr)]) -> Vec<u8> {
    let mut arg = vec![0, mcmd, 0, directives.len() as u8];
    for (dcmd, mac) in directives {
        arg.extend_from_slice(&[0, *dcmd]);
        arg.extend_from_slice(&mac.0);
    }
    request_from(src, 1, 1, 2, 3, &arg)
}

fn mask_list(resp: &[u8]) -> Vec<MacAddr> {
    let n = resp[27] as usize;
    (0..n)
        .map(|i| MacAddr::from_slice(&resp[28 + 8 * i + 2..]).unwrap())
        .collect()
}

#[test]
fn mask_list_edit_read_and_enforcement() {
    let t = target();
    let resp = reply(&t, &mask_request(HOST_MAC, 0, &[]));
    assert_eq!((resp[26], resp[27]), (0, 0));
    let resp = reply(
        &t,
        &mask_request(
            HOST_MAC,
            1,
            &[(1, HOST_MAC), (0, MacAddr::default()), (1, HOST_MAC)],
        ),
    );
    assert_eq!(resp[26], 0);
    assert_eq!(mask_list(&resp), vec![HOST_MAC]);
    // A listed host is served, another is ignored altogether.
    let identify = |src| request_from(src, 1, 1, 0, 1, &ata_arg(0, 0xEC, 1, 0));
    assert!(matches!(
        run(&t, 0, &identify(HOST_MAC)).0,
        Action::Reply(_)
    ));
    assert_eq!(
        run(&t, 0, &identify(OTHER_MAC)).0,
        Action::Drop(Dropped::Masked)
    );
    // Deleting the last entry opens the export to everyone again.
    let resp = reply(&t, &mask_request(HOST_MAC, 1, &[(2, HOST_MAC)]));
    assert!(mask_list(&resp).is_empty());
    assert!(matches!(
        run(&t, 0, &identify(OTHER_MAC)).0,
        Action::Reply(_)
    ));
}

#[test]
fn mask_bad_directive_reports_its_index() {
    let t = target();
    let resp = reply(
        &t,
        &mask_request(HOST_MAC, 1, &[(1, HOST_MAC), (1, OTHER_MAC), (7, HOST_MAC)]),
    );
    assert_eq!(resp[26], 2, "MError bad DCmd");
    assert_eq!(resp[27], 2, "index of the failing directive");
    assert_eq!(aoe_error(&resp), None);
    // Directives before the failing one took effect.
    assert_eq!(t.exports()[0].control().mask(), &[HOST_MAC, OTHER_MAC]);
}

#[test]
fn mask_list_full_is_merror_3() {
    let t = target();
    let macs: Vec<(u8, MacAddr)> = (0..40u8)
        .map(|i| (1, MacAddr([2, 0, 0, 0, 0, i])))
        .collect();
    let mut all = macs.clone();
    all.insert(0, (1, HOST_MAC)); // keep ourselves allowed
    let resp = reply(&t, &mask_request(HOST_MAC, 1, &all));
    assert_eq!(resp[26], 3);
    assert_eq!(resp[27], 32);
    assert_eq!(t.exports()[0].control().mask().len(), 32);
}

#[test]
fn mask_errors_in_the_request_are_error_2() {
    let t = target();
    // Unknown MCmd.
    assert_eq!(
        aoe_error(&reply(&t, &mask_request(HOST_MAC, 9, &[]))),
        Some(2)
    );
    // Count says 3 directives, frame holds 1.
    let mut req = mask_request(HOST_MAC, 1, &[(1, HOST_MAC)]);
    req[27] = 3;
    assert_eq!(aoe_error(&reply(&t, &req)), Some(2));
    assert!(t.exports()[0].control().mask().is_empty());
}

// -------------------------------------------------------- Reserve/Release

fn reserve_request(src: MacAddr, rcmd: u8, macs: &[MacAddr]) -> Vec<u8> {
    let mut arg = vec![rcmd, macs.len() as u8];
    for m in macs {
        arg.extend_from_slice(&m.0);
    }
    request_from(src, 1, 1, 3, 4, &arg)
}

fn reserve_list(resp: &[u8]) -> Vec<MacAddr> {
    (0..resp[25] as usize)
        .map(|i| MacAddr::from_slice(&resp[26 + 6 * i..]).unwrap())
        .collect()
}

#[test]
fn reservation_locks_out_others_until_released() {
    let t = target();
    assert!(reserve_list(&reply(&t, &reserve_request(HOST_MAC, 0, &[]))).is_empty());
    let resp = reply(&t, &reserve_request(HOST_MAC, 1, &[HOST_MAC]));
    assert_eq!(reserve_list(&resp), vec![HOST_MAC]);

    let read = |src| request_from(src, 1, 1, 0, 1, &ata_arg(0, 0x20, 1, 0));
    assert!(matches!(run(&t, 0, &read(HOST_MAC)).0, Action::Read(..)));
    let (action, mut buf) = run(&t, 0, &read(OTHER_MAC));
    let Action::Reply(r) = action else { panic!() };
    r.finish(&mut buf, Ok(()));
    assert_eq!(aoe_error(&buf), Some(6));
    // Another host may not take it over with a plain set...
    let resp = reply(&t, &reserve_request(OTHER_MAC, 1, &[OTHER_MAC]));
    assert_eq!(aoe_error(&resp), Some(6));
    // ...but may read the list and query config.
    assert_eq!(
        reserve_list(&reply(&t, &reserve_request(OTHER_MAC, 0, &[]))),
        vec![HOST_MAC]
    );
    // The holder releases with an empty set.
    assert!(reserve_list(&reply(&t, &reserve_request(HOST_MAC, 1, &[]))).is_empty());
    assert!(matches!(run(&t, 0, &read(OTHER_MAC)).0, Action::Read(..)));
}

#[test]
fn force_set_takes_over_a_reservation() {
    let t = target();
    reply(&t, &reserve_request(HOST_MAC, 1, &[HOST_MAC]));
    let resp = reply(&t, &reserve_request(OTHER_MAC, 2, &[OTHER_MAC]));
    assert_eq!(reserve_list(&resp), vec![OTHER_MAC]);
    assert_eq!(t.exports()[0].control().reservation(), &[OTHER_MAC]);
}

#[test]
fn reserve_argument_errors_are_error_2() {
    let t = target();
    assert_eq!(
        aoe_error(&reply(&t, &reserve_request(HOST_MAC, 3, &[]))),
        Some(2)
    );
    let mut req = reserve_request(HOST_MAC, 1, &[HOST_MAC]);
    req[25] = 2; // claims two MACs, carries one
    assert_eq!(aoe_error(&reply(&t, &req)), Some(2));
    let many: Vec<MacAddr> = (0..33u8).map(|i| MacAddr([2, 0, 0, 0, 0, i])).collect();
    assert_eq!(
        aoe_error(&reply(&t, &reserve_request(HOST_MAC, 2, &many))),
        Some(2)
    );
    assert!(t.exports()[0].control().reservation().is_empty());
}

#[test]
fn every_reply_is_padded_to_60_bytes() {
    let t = target();
    for req in [
        LINUX_DISCOVER[..24].to_vec(),
        request(1, 1, 3, 0, &[0, 0]),
        request(1, 1, 2, 0, &[0, 0, 0, 0]),
        request(1, 1, 9, 0, &[]),
        request(1, 1, 0, 1, &ata_arg(0, 0xE5, 0, 0)),
    ] {
        let resp = reply(&t, &req);
        assert_eq!(resp.len(), 60);
    }
}

#[test]
fn sectors_for_mtu_matches_the_spec() {
    assert_eq!(aoe_proto::sectors_for_mtu(1500), 2);
    assert_eq!(aoe_proto::sectors_for_mtu(9000), 17);
    assert_eq!(aoe_proto::sectors_for_mtu(200_000), 255);
    assert_eq!(aoe_proto::sectors_for_mtu(20), 0);
}
