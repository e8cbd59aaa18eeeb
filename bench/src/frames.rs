//! Initiator-side frame builders and reply parsing on top of the views in
//! `aoe_proto::wire`. Requests are always untagged.

use std::fmt::Display;

use aoe_proto::ata::{CMD_IDENTIFY, CMD_READ, CMD_READ_EXT, CMD_WRITE, CMD_WRITE_EXT};
use aoe_proto::wire::{
    ata::{AFLAG_EXTENDED, AFLAG_WRITE},
    AoeHeader, AtaArg, Command, ConfigArg, ConfigCommand, EthernetFrame, RequestHeader,
    AOE_HEADER_LEN, ARG_OFFSET, ATA_DATA_OFFSET, CONFIG_ARG_LEN, ETHERTYPE_AOE, ETH_HEADER_LEN,
    FLAG_ERROR,
};
use aoe_proto::{pad_frame, MacAddr, SECTOR_SIZE};

/// The LBA28 device register bits the initiator sets in lba3: LBA mode,
/// device 0 (0xE0 in the top nibble).
const LBA28_DEVICE_BITS: u64 = 0xE0 << 24;
const LBA28_MASK: u64 = 0x0FFF_FFFF;
const LBA48_MASK: u64 = 0xFFFF_FFFF_FFFF;

/// Writes the Ethernet and AoE headers of a request (tag 0); returns the
/// offset of the command argument.
pub fn put_headers(
    buf: &mut [u8],
    dst: MacAddr,
    src: MacAddr,
    shelf: u16,
    slot: u8,
    cmd: Command,
) -> usize {
    RequestHeader {
        dst,
        src,
        shelf,
        slot,
        command: cmd,
        tag: 0,
    }
    .write(buf)
    .expect("frame buffer too short")
}

fn aoe_header(buf: &mut [u8]) -> AoeHeader<&mut [u8]> {
    AoeHeader::new_checked(&mut buf[ETH_HEADER_LEN..]).expect("frame buffer too short")
}

fn ata_arg(buf: &mut [u8]) -> AtaArg<&mut [u8]> {
    AtaArg::new_checked(&mut buf[ARG_OFFSET..]).expect("frame buffer too short")
}

/// Sets the tag of a request whose headers are in place.
pub fn set_tag(buf: &mut [u8], tag: u32) {
    aoe_header(buf).set_tag(tag);
}

/// A Query Config "read" request to SHELF.SLOT, padded to 60 bytes; returns
/// its length.
pub fn query_config(buf: &mut [u8], src: MacAddr, shelf: u16, slot: u8, tag: u32) -> usize {
    let len = put_headers(
        buf,
        MacAddr::BROADCAST,
        src,
        shelf,
        slot,
        Command::QueryConfig,
    );
    set_tag(buf, tag);
    // A read request has the layout of an empty response: all zero but the
    // version and CCmd 0.
    ConfigArg::new_checked(&mut buf[ARG_OFFSET..])
        .expect("frame buffer too short")
        .write_response(0, 0, 0, ConfigCommand::Read, &[])
        .expect("frame buffer too short");
    pad_frame(buf, len + CONFIG_ARG_LEN)
}

fn put_ata_arg(buf: &mut [u8], aflags: u8, cmd: u8, lba_regs: u64, count: u8) {
    let mut arg = ata_arg(buf);
    arg.set_aflags(aflags);
    arg.set_feature(0);
    arg.set_sector_count(count);
    arg.set_command(cmd);
    arg.set_lba(lba_regs);
}

/// Fills the ATA argument of a READ or WRITE SECTORS (EXT with `lba48`)
/// request whose headers are in place. A write's data (`count` sectors at
/// [`ATA_DATA_OFFSET`]) is the caller's. Returns the padded frame length.
pub fn rw_request(buf: &mut [u8], write: bool, lba48: bool, lba: u64, count: u8) -> usize {
    let (cmd, regs) = match (write, lba48) {
        (false, true) => (CMD_READ_EXT, lba),
        (true, true) => (CMD_WRITE_EXT, lba),
        (false, false) => (CMD_READ, (lba & LBA28_MASK) | LBA28_DEVICE_BITS),
        (true, false) => (CMD_WRITE, (lba & LBA28_MASK) | LBA28_DEVICE_BITS),
    };
    let aflags = if lba48 { AFLAG_EXTENDED } else { 0 } | if write { AFLAG_WRITE } else { 0 };
    put_ata_arg(buf, aflags, cmd, regs, count);
    let data = if write { data_len(count) } else { 0 };
    pad_frame(buf, ATA_DATA_OFFSET + data)
}

/// Fills an IDENTIFY DEVICE request whose headers are in place; returns
/// the padded frame length.
pub fn identify_request(buf: &mut [u8]) -> usize {
    put_ata_arg(buf, 0, CMD_IDENTIFY, 0, 1);
    pad_frame(buf, ATA_DATA_OFFSET)
}

/// Bytes of sector data in a request of `count` sectors.
pub fn data_len(count: u8) -> usize {
    count as usize * SECTOR_SIZE
}

/// The LBA a reply's registers echo, with the device bits of LBA28
/// commands masked off.
pub fn echoed_lba<T: AsRef<[u8]>>(arg: &AtaArg<T>, lba48: bool) -> u64 {
    arg.lba() & if lba48 { LBA48_MASK } else { LBA28_MASK }
}

/// What a Query Config response says.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigInfo {
    pub shelf: u16,
    pub slot: u8,
    #[serde(serialize_with = "display")]
    pub mac: MacAddr,
    pub buffer_count: u16,
    pub firmware: u16,
    /// Raw sector count field (0 means 2).
    pub sector_count: u8,
    pub config_string: String,
}

impl ConfigInfo {
    /// The most sectors the target takes in one request.
    pub fn max_sectors(&self) -> u8 {
        if self.sector_count == 0 {
            2
        } else {
            self.sector_count
        }
    }
}

/// Serializes a value as its `Display` string.
pub fn display<T: Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The AoE part of a received frame if it is a response.
pub struct Reply<'a> {
    pub src: MacAddr,
    pub flags: u8,
    pub error: u8,
    pub shelf: u16,
    pub slot: u8,
    pub command: Command,
    pub tag: u32,
    /// Everything from the command argument on.
    pub arg: &'a [u8],
}

impl Reply<'_> {
    pub fn is_error(&self) -> bool {
        self.flags & FLAG_ERROR != 0
    }
}

pub fn parse_reply(frame: &[u8]) -> Option<Reply<'_>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != ETHERTYPE_AOE {
        return None;
    }
    let hl = eth.header_len();
    let aoe = AoeHeader::new_checked(&frame[hl..]).ok()?;
    if !aoe.is_response() {
        return None;
    }
    Some(Reply {
        src: eth.src(),
        flags: aoe.flags(),
        error: aoe.error(),
        shelf: aoe.shelf(),
        slot: aoe.slot(),
        command: aoe.command(),
        tag: aoe.tag(),
        arg: &frame[hl + AOE_HEADER_LEN..],
    })
}

pub fn parse_config(r: &Reply<'_>) -> Option<ConfigInfo> {
    let c = ConfigArg::new_checked(r.arg).ok()?;
    let s = c.string().unwrap_or(&[]);
    Some(ConfigInfo {
        shelf: r.shelf,
        slot: r.slot,
        mac: r.src,
        buffer_count: c.buffer_count(),
        firmware: c.firmware_version(),
        sector_count: c.sector_count(),
        config_string: String::from_utf8_lossy(s).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aoe_proto::wire::{ATA_ARG_LEN, ETHERTYPE_VLAN};
    use aoe_proto::MIN_FRAME_LEN;

    const A: MacAddr = MacAddr([1; 6]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    #[test]
    fn query_config_is_padded_and_parsable() {
        let mut buf = [0xAAu8; 128];
        let n = query_config(&mut buf, B, 7, 3, 0x8000_0001);
        assert_eq!(n, MIN_FRAME_LEN);
        let eth = EthernetFrame::new_checked(&buf[..n]).unwrap();
        assert_eq!(eth.dst(), MacAddr::BROADCAST);
        assert_eq!(eth.src(), B);
        assert_eq!(eth.ethertype(), ETHERTYPE_AOE);
        let aoe = AoeHeader::new_checked(&buf[ETH_HEADER_LEN..n]).unwrap();
        assert_eq!((aoe.version(), aoe.flags()), (1, 0));
        assert_eq!((aoe.shelf(), aoe.slot()), (7, 3));
        assert_eq!(aoe.command(), Command::QueryConfig);
        assert_eq!(aoe.tag(), 0x8000_0001);
        let c = ConfigArg::new_checked(&buf[ARG_OFFSET..n]).unwrap();
        assert_eq!((c.aoe_version(), c.command()), (1, ConfigCommand::Read));
        assert_eq!((c.buffer_count(), c.string_len()), (0, 0));
        assert!(buf[ARG_OFFSET + CONFIG_ARG_LEN..n].iter().all(|&b| b == 0));
    }

    #[test]
    fn ata_write_and_read_lengths() {
        let mut buf = vec![0u8; 2048];
        put_headers(&mut buf, A, B, 1, 1, Command::Ata);
        assert_eq!(
            rw_request(&mut buf, true, true, 0x0012_3456_789a, 2),
            ATA_DATA_OFFSET + 2 * SECTOR_SIZE
        );
        let arg = AtaArg::new_checked(&buf[ARG_OFFSET..]).unwrap();
        assert_eq!(arg.aflags(), AFLAG_EXTENDED | AFLAG_WRITE);
        assert_eq!(arg.command(), CMD_WRITE_EXT);
        assert_eq!(arg.sector_count(), 2);
        assert_eq!(arg.lba(), 0x0012_3456_789a);

        assert_eq!(rw_request(&mut buf, false, false, 5, 2), MIN_FRAME_LEN);
        let arg = AtaArg::new_checked(&buf[ARG_OFFSET..]).unwrap();
        assert_eq!(arg.aflags(), 0);
        assert_eq!(arg.command(), CMD_READ);
        // LBA28: 0xE0 in the top nibble of lba3, masked off when echoed.
        assert_eq!(arg.lba(), 0xE000_0005);
        assert_eq!(echoed_lba(&arg, false), 5);
    }

    #[test]
    fn identify_has_no_lba() {
        let mut buf = vec![0xFFu8; 128];
        put_headers(&mut buf, A, B, 1, 1, Command::Ata);
        assert_eq!(identify_request(&mut buf), MIN_FRAME_LEN);
        let arg = AtaArg::new_checked(&buf[ARG_OFFSET..]).unwrap();
        assert_eq!(
            (arg.aflags(), arg.command(), arg.sector_count()),
            (0, CMD_IDENTIFY, 1)
        );
        assert_eq!(arg.lba(), 0);
        assert!(buf[ARG_OFFSET + ATA_ARG_LEN..MIN_FRAME_LEN]
            .iter()
            .all(|&b| b == 0));
    }

    #[test]
    fn replies_untagged_and_vlan_tagged() {
        // A Query Config response, untagged and then behind an 802.1Q tag.
        let mut buf = vec![0u8; 128];
        put_headers(&mut buf, B, A, 3, 4, Command::QueryConfig);
        let mut aoe = aoe_header(&mut buf);
        aoe.set_flags(aoe_proto::wire::FLAG_RESPONSE, 0);
        aoe.set_tag(77);
        ConfigArg::new_checked(&mut buf[ARG_OFFSET..])
            .unwrap()
            .write_response(64, 0x4019, 0, ConfigCommand::Read, b"hi")
            .unwrap();
        let check = |frame: &[u8]| {
            let r = parse_reply(frame).expect("a response");
            assert_eq!((r.src, r.shelf, r.slot, r.tag), (A, 3, 4, 77));
            assert!(!r.is_error());
            let c = parse_config(&r).unwrap();
            assert_eq!(
                (c.buffer_count, c.firmware, c.max_sectors()),
                (64, 0x4019, 2)
            );
            assert_eq!(c.config_string, "hi");
            assert_eq!(
                serde_json::to_value(&c).unwrap()["mac"],
                "01:01:01:01:01:01"
            );
        };
        check(&buf);
        let mut tagged = buf[..12].to_vec();
        tagged.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        tagged.extend_from_slice(&[0, 5]);
        tagged.extend_from_slice(&buf[12..]);
        check(&tagged);
        // Requests are not replies.
        aoe_header(&mut buf).set_flags(0, 0);
        assert!(parse_reply(&buf).is_none());
    }
}
