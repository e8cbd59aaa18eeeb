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

/// Builds the 512-byte IDENTIFY DEVICE page (ATA/ATAPI-8 word layout;
/// words are little-endian, strings are byte-swapped within each word).
pub fn identify_page(id: &Identity) -> [u8; 512] {
    let mut w = [0u16; 256];
    w[0] = 0x0040; // fixed device, not removable
                   // Legacy CHS geometry for old initiators; capacity comes from LBA words.
    let chs = id.sectors.min(16383 * 16 * 63);
    w[1] = (chs / (16 * 63)).max(1) as u16;
    w[3] = 16;
    w[6] = 63;
    ata_string(&mut w[10..20], &id.serial);
    ata_string(&mut w[23..27], &id.firmware);
    ata_string(&mut w[27..47], &id.model);
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
    w[60] = lba28 as u16;
    w[61] = (lba28 >> 16) as u16;
    w[80] = 0x00F0; // ATA-4 to ATA-7
                    // Command sets supported (82-84) and enabled (85-87): bit 10 LBA48,
                    // bit 12 FLUSH CACHE, bit 13 FLUSH CACHE EXT; word 83/84/87 bit 14 is
                    // the "valid" marker.
    w[83] = 0x4000 | 0x2000 | 0x1000 | 0x0400;
    w[84] = 0x4000;
    w[86] = 0x2000 | 0x1000 | 0x0400;
    w[87] = 0x4000;
    for (i, word) in w[100..104].iter_mut().enumerate() {
        *word = (id.sectors >> (16 * i)) as u16;
    }
    w[106] = 0x4000; // one 512-byte logical sector per physical sector
    let mut page = [0u8; 512];
    for (bytes, word) in page.chunks_exact_mut(2).zip(w) {
        bytes.copy_from_slice(&word.to_le_bytes());
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
