//! ATA semantics: the IDENTIFY DEVICE page and the decoding of read/write
//! requests into checked block ranges.

use crate::error::AtaFailure;

pub const CMD_READ: u8 = 0x20;
pub const CMD_READ_EXT: u8 = 0x24;
pub const CMD_WRITE: u8 = 0x30;
pub const CMD_WRITE_EXT: u8 = 0x34;
pub const CMD_CHECK_POWER_MODE: u8 = 0xE5;
pub const CMD_FLUSH_CACHE: u8 = 0xE7;
pub const CMD_FLUSH_CACHE_EXT: u8 = 0xEA;
pub const CMD_IDENTIFY: u8 = 0xEC;

/// CHECK POWER MODE's sector count for "active or idle".
pub const POWER_MODE_ACTIVE: u8 = 0xFF;

/// Largest capacity LBA28 can address.
const LBA28_MAX: u64 = 0x0FFF_FFFF;
const LBA28_MASK: u64 = 0x0FFF_FFFF;
const LBA48_MASK: u64 = 0xFFFF_FFFF_FFFF;

/// What IDENTIFY DEVICE reports about an export.
#[derive(Debug, Clone)]
pub struct Identity {
    pub serial: String,
    pub firmware: String,
    pub model: String,
    pub sectors: u64,
}

/// Bytes in the IDENTIFY DEVICE page.
pub const IDENTIFY_PAGE_LEN: usize = 512;

/// Word positions in the IDENTIFY DEVICE page (ATA/ATAPI-8), shared by the
/// builder and the parser.
mod word {
    use core::ops::Range;
    pub const SERIAL: Range<usize> = 10..20;
    pub const FIRMWARE: Range<usize> = 23..27;
    pub const MODEL: Range<usize> = 27..47;
    /// Words 60-61: LBA28 capacity.
    pub const LBA28_CAPACITY: usize = 60;
    /// Command sets supported (83) and enabled (86): bit 10 is LBA48.
    pub const SUPPORTED_83: usize = 83;
    pub const ENABLED_86: usize = 86;
    /// Words 100-103: LBA48 capacity.
    pub const LBA48_CAPACITY: Range<usize> = 100..104;
    pub const LBA48_BIT: u16 = 0x0400;
}

/// Builds the 512-byte IDENTIFY DEVICE page (ATA/ATAPI-8 word layout;
/// words are little-endian, strings are byte-swapped within each word).
pub fn identify_page(id: &Identity) -> [u8; IDENTIFY_PAGE_LEN] {
    let mut w = [0u16; IDENTIFY_PAGE_LEN / 2];
    w[0] = 0x0040; // fixed device, not removable
                   // Legacy CHS geometry for old initiators; capacity comes from LBA words.
    let chs = id.sectors.min(16383 * 16 * 63);
    w[1] = (chs / (16 * 63)).max(1) as u16;
    w[3] = 16;
    w[6] = 63;
    ata_string(&mut w[word::SERIAL], &id.serial);
    ata_string(&mut w[word::FIRMWARE], &id.firmware);
    ata_string(&mut w[word::MODEL], &id.model);
    w[47] = 0x8000 | 1; // READ/WRITE MULTIPLE: one sector per block
    w[49] = 0x0200; // LBA supported
    w[50] = 0x4000;
    w[53] = 0x0006; // words 64-70 and 88 valid
    w[54] = w[1];
    w[55] = 16;
    w[56] = 63;
    let chs_sectors = (w[1] as u32) * 16 * 63;
    w[57] = chs_sectors as u16;
    w[58] = (chs_sectors >> 16) as u16;
    let lba28 = id.sectors.min(LBA28_MAX) as u32;
    w[word::LBA28_CAPACITY] = lba28 as u16;
    w[word::LBA28_CAPACITY + 1] = (lba28 >> 16) as u16;
    w[80] = 0x00F0; // ATA-4 to ATA-7
                    // Command sets supported (82-84) and enabled (85-87): bit 10 LBA48,
                    // bit 12 FLUSH CACHE, bit 13 FLUSH CACHE EXT; word 83/84/87 bit 14 is
                    // the "valid" marker.
    w[word::SUPPORTED_83] = 0x4000 | 0x2000 | 0x1000 | word::LBA48_BIT;
    w[84] = 0x4000;
    w[word::ENABLED_86] = 0x2000 | 0x1000 | word::LBA48_BIT;
    w[87] = 0x4000;
    for (i, v) in w[word::LBA48_CAPACITY].iter_mut().enumerate() {
        *v = (id.sectors >> (16 * i)) as u16;
    }
    w[106] = 0x4000; // one 512-byte logical sector per physical sector
    let mut page = [0u8; IDENTIFY_PAGE_LEN];
    for (bytes, v) in page.chunks_exact_mut(2).zip(w) {
        bytes.copy_from_slice(&v.to_le_bytes());
    }
    page
}

/// Space-padded ATA string, two characters per word, first one high.
fn ata_string(words: &mut [u16], s: &str) {
    let mut bytes = s.bytes().filter(|b| b.is_ascii_graphic() || *b == b' ');
    for w in words {
        let hi = bytes.next().unwrap_or(b' ');
        let lo = bytes.next().unwrap_or(b' ');
        *w = u16::from_be_bytes([hi, lo]);
    }
}

/// What an initiator learns from an IDENTIFY DEVICE page, read as the
/// Linux driver reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identified {
    pub serial: String,
    pub firmware: String,
    pub model: String,
    /// The LBA48 capacity if word 83 or 86 says LBA48, else the LBA28 one.
    pub sectors: u64,
    pub lba48: bool,
}

/// Parses an IDENTIFY DEVICE page; `None` if `page` is shorter than 512.
pub fn parse_identify(page: &[u8]) -> Option<Identified> {
    let page = page.get(..IDENTIFY_PAGE_LEN)?;
    let w = |i: usize| u16::from_le_bytes([page[2 * i], page[2 * i + 1]]);
    let lba48 = (w(word::SUPPORTED_83) | w(word::ENABLED_86)) & word::LBA48_BIT != 0;
    let sectors = if lba48 {
        word::LBA48_CAPACITY
            .rev()
            .fold(0u64, |acc, i| (acc << 16) | w(i) as u64)
    } else {
        (w(word::LBA28_CAPACITY) as u64) | (w(word::LBA28_CAPACITY + 1) as u64) << 16
    };
    let string = |words: core::ops::Range<usize>| {
        let bytes: Vec<u8> = words.flat_map(|i| w(i).to_be_bytes()).collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    };
    Some(Identified {
        serial: string(word::SERIAL),
        firmware: string(word::FIRMWARE),
        model: string(word::MODEL),
        sectors,
        lba48,
    })
}

/// Reads and writes, the commands that move sector data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Read,
    Write,
}

/// A data command decoded from the wire and checked against the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub transfer: Transfer,
    pub lba: u64,
    pub sectors: u8,
}

/// Decodes READ/WRITE SECTORS (EXT): LBA28 commands use 28 bits, EXT
/// commands 48. Checks the count against the per-request limit and the
/// range against the export's size with checked arithmetic.
pub fn decode_transfer(
    command: u8,
    raw_lba: u64,
    sectors: u8,
    max_sectors: u8,
    export_sectors: u64,
) -> Option<Result<Range, AtaFailure>> {
    let (transfer, lba) = match command {
        CMD_READ => (Transfer::Read, raw_lba & LBA28_MASK),
        CMD_READ_EXT => (Transfer::Read, raw_lba & LBA48_MASK),
        CMD_WRITE => (Transfer::Write, raw_lba & LBA28_MASK),
        CMD_WRITE_EXT => (Transfer::Write, raw_lba & LBA48_MASK),
        _ => return None,
    };
    // Count 0 means 256 (or 65536) sectors in ATA: more than any frame holds.
    if sectors == 0 || sectors > max_sectors {
        return Some(Err(AtaFailure::Aborted));
    }
    match lba.checked_add(sectors as u64) {
        Some(end) if end <= export_sectors => Some(Ok(Range {
            transfer,
            lba,
            sectors,
        })),
        _ => Some(Err(AtaFailure::OutOfRange)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_page_parses_back() {
        let id = Identity {
            serial: "1.1:storage01".into(),
            firmware: "0.1.0".into(),
            model: "aoe-xdp".into(),
            sectors: 0x1_2345_6789,
        };
        let got = parse_identify(&identify_page(&id)).unwrap();
        assert_eq!(
            got,
            Identified {
                serial: id.serial,
                firmware: id.firmware,
                model: id.model,
                sectors: id.sectors,
                lba48: true,
            }
        );
        assert!(parse_identify(&[0; 511]).is_none());
    }

    #[test]
    fn an_lba28_page_reports_words_60_61() {
        let mut page = [0u8; IDENTIFY_PAGE_LEN];
        page[120..124].copy_from_slice(&[0x00, 0x10, 0x02, 0x00]); // 0x0002_1000
        let got = parse_identify(&page).unwrap();
        assert_eq!((got.lba48, got.sectors), (false, 0x0002_1000));
    }
}
