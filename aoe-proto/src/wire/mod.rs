//! Typed views over frame bytes, one per header. Each view checks its length
//! once in `new_checked`; its accessors then index without panicking.
//!
//! Offsets in the AoE views are relative to the start of the AoE header (the
//! byte after the EtherType), so one view serves untagged and 802.1Q frames.

mod aoe;
pub mod ata;
mod config;
mod ethernet;
pub mod mask;
pub mod reserve;

pub use aoe::{AoeHeader, Command, AOE_HEADER_LEN, AOE_VERSION, FLAG_ERROR, FLAG_RESPONSE};
pub use ata::{AtaArg, ATA_ARG_LEN};
pub use config::{ConfigArg, ConfigCommand, CONFIG_ARG_LEN};
pub use ethernet::{EthernetFrame, MacAddr, ETHERTYPE_AOE, ETHERTYPE_VLAN};
pub use mask::{MaskArg, MaskCommand, MASK_ARG_LEN, MASK_DIRECTIVE_LEN};
pub use reserve::{ReserveArg, RESERVE_ARG_LEN};

/// Offset of the ATA data in an untagged frame (14 Ethernet + 10 AoE + 12 ATA).
pub const ATA_DATA_OFFSET: usize = 36;

/// A buffer was too short for the header a view expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn put_be16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
