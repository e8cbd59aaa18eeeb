//! Initiator-side frame builders and reply parsing on top of the views in
//! `aoe_proto::wire`.

use aoe_proto::wire::{
    ata::{AFLAG_EXTENDED, AFLAG_WRITE},
    AoeHeader, AtaArg, Command, ConfigArg, EthernetFrame, MacAddr, ATA_DATA_OFFSET, CONFIG_ARG_LEN,
    FLAG_ERROR,
};
use aoe_proto::{pad_frame, MIN_FRAME_LEN};

/// Ethernet header length (untagged; we only send untagged frames).
pub const ETH_LEN: usize = 14;
/// Start of the command argument in an untagged frame.
pub const ARG_OFF: usize = 24;
pub const BROADCAST: MacAddr = [0xff; 6];

/// Writes the Ethernet and AoE headers of a request; returns the length so
/// far (24).
pub fn put_headers(
    buf: &mut [u8],
    dst: &MacAddr,
    src: &MacAddr,
    shelf: u16,
    slot: u8,
    cmd: Command,
) -> usize {
    let mut eth = EthernetFrame::new_checked(&mut buf[..]).expect("frame buffer too short");
    eth.set_dst(dst);
    eth.set_src(src);
    eth.set_ethertype_aoe();
    let mut aoe = AoeHeader::new_checked(&mut buf[ETH_LEN..]).expect("frame buffer too short");
    aoe.set_flags(0, 0);
    aoe.set_address(shelf, slot);
    aoe.set_command(cmd);
    aoe.set_tag(0);
    ARG_OFF
}

pub fn set_tag(buf: &mut [u8], tag: u32) {
    buf[20..24].copy_from_slice(&tag.to_be_bytes());
}

/// A Query Config "read" request, padded to 60 bytes; returns its length.
pub fn query_config(buf: &mut [u8], src: &MacAddr, shelf: u16, slot: u8, tag: u32) -> usize {
    let len = put_headers(buf, &BROADCAST, src, shelf, slot, Command::QueryConfig);
    set_tag(buf, tag);
    buf[ARG_OFF..ARG_OFF + CONFIG_ARG_LEN].fill(0);
    // version 1, CCmd 0 (read) in byte 5 of the argument
    buf[ARG_OFF + 5] = 0x10;
    pad_frame(buf, len + CONFIG_ARG_LEN)
}

/// Fills the ATA argument of a request whose headers are already in
/// place. `data_len` bytes of data are expected to follow (writes).
/// Returns the padded frame length.
pub fn ata_request(
    buf: &mut [u8],
    cmd: u8,
    write: bool,
    lba48: bool,
    lba: u64,
    count: u8,
) -> usize {
    let mut arg = AtaArg::new_checked(&mut buf[ARG_OFF..]).expect("frame buffer too short");
    let mut aflags = 0;
    if lba48 {
        aflags |= AFLAG_EXTENDED;
    }
    if write {
        aflags |= AFLAG_WRITE;
    }
    arg.set_aflags(aflags);
    arg.set_feature(0);
    arg.set_sector_count(count);
    arg.set_command(cmd);
    arg.set_lba(lba);
    if !lba48 {
        // LBA28: the initiator puts 0xE0 (LBA mode, device 0) in lba3's top
        // nibble.
        buf[ARG_OFF + 7] = (buf[ARG_OFF + 7] & 0x0f) | 0xe0;
    }
    let len = if write {
        ATA_DATA_OFFSET + count as usize * 512
    } else {
        ATA_DATA_OFFSET
    };
    pad_frame(buf, len).max(MIN_FRAME_LEN)
}

/// What a Query Config response says.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigInfo {
    pub shelf: u16,
    pub slot: u8,
    #[serde(serialize_with = "ser_mac")]
    pub mac: MacAddr,
    pub buffer_count: u16,
    pub firmware: u16,
    /// Raw sector count field (0 means 2).
    pub sector_count: u8,
    pub config_string: String,
}

pub fn ser_mac<S: serde::Serializer>(m: &MacAddr, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&fmt_mac(m))
}

pub fn fmt_mac(m: &MacAddr) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// The AoE part of a received frame if it is a response (untagged only).
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
    if eth.ethertype() != aoe_proto::wire::ETHERTYPE_AOE {
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
        arg: &frame[hl + aoe_proto::wire::AOE_HEADER_LEN..],
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

/// Capacity and addressing mode from an IDENTIFY DEVICE page.
#[derive(Debug, Clone, Copy)]
pub struct IdentifyInfo {
    pub sectors: u64,
    pub lba48: bool,
}

pub fn parse_identify(page: &[u8]) -> Option<IdentifyInfo> {
    if page.len() < 512 {
        return None;
    }
    let w = |i: usize| u16::from_le_bytes([page[2 * i], page[2 * i + 1]]) as u64;
    let lba48 = (w(83) & 0x0400 != 0) || (w(86) & 0x0400 != 0);
    let sectors = if lba48 {
        w(100) | (w(101) << 16) | (w(102) << 32) | (w(103) << 48)
    } else {
        w(60) | (w(61) << 16)
    };
    Some(IdentifyInfo { sectors, lba48 })
}

/// Model string (words 27-46) of an IDENTIFY page, for display.
pub fn identify_model(page: &[u8]) -> String {
    let mut s = Vec::new();
    for i in 27..47 {
        s.push(page[2 * i + 1]);
        s.push(page[2 * i]);
    }
    String::from_utf8_lossy(&s).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_config_is_padded_and_parsable() {
        let mut buf = [0xAAu8; 128];
        let n = query_config(&mut buf, &[2, 0, 0, 0, 0, 1], 7, 3, 0x8000_0001);
        assert_eq!(n, 60);
        assert_eq!(&buf[..6], &BROADCAST);
        assert_eq!(&buf[12..14], &[0x88, 0xa2]);
        assert_eq!(buf[14], 0x10);
        assert_eq!(&buf[16..18], &[0, 7]);
        assert_eq!(buf[18], 3);
        assert_eq!(buf[19], 1);
        assert!(buf[32..60].iter().all(|&b| b == 0));
    }

    #[test]
    fn ata_write_and_read_lengths() {
        let mut buf = vec![0u8; 2048];
        put_headers(&mut buf, &[1; 6], &[2; 6], 1, 1, Command::Ata);
        assert_eq!(
            ata_request(&mut buf, 0x34, true, true, 0x0012_3456_789a, 2),
            36 + 1024
        );
        assert_eq!(buf[24], 0x41);
        assert_eq!(&buf[28..34], &[0x9a, 0x78, 0x56, 0x34, 0x12, 0]);
        assert_eq!(ata_request(&mut buf, 0x20, false, false, 5, 2), 60);
        assert_eq!(buf[24], 0);
        assert_eq!(buf[31], 0xe0);
    }

    #[test]
    fn identify_capacity() {
        let id = aoe_proto::ata::Identity {
            serial: "s".into(),
            firmware: "f".into(),
            model: "Test Model".into(),
            sectors: 0x1_2345_6789,
        };
        let page = aoe_proto::ata::identify_page(&id);
        let i = parse_identify(&page).unwrap();
        assert!(i.lba48);
        assert_eq!(i.sectors, 0x1_2345_6789);
        assert_eq!(identify_model(&page), "Test Model");
    }
}
