//! Typed views over frame bytes, one per header. Each view checks its length
//! once in `new_checked`; its accessors then index without panicking.
//!
//! Offsets in the AoE views are relative to the start of the AoE header (the
//! byte after the EtherType), so one view serves untagged and 802.1Q frames.

/// Declares a typed view over a buffer that must hold at least `$min`
/// bytes: the length is checked once, in `new_checked`, and the accessors
/// (written by hand next to each view) then index freely.
macro_rules! view {
    ($(#[$doc:meta])* $name:ident, $min:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name<T: AsRef<[u8]>> {
            buf: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            pub fn new_checked(buf: T) -> Result<Self, super::Truncated> {
                if buf.as_ref().len() < $min {
                    return Err(super::Truncated);
                }
                Ok(Self { buf })
            }
        }
    };
}

/// Declares a one-byte code with its known values and an escape for the
/// rest, convertible both ways.
macro_rules! byte_code {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $value:literal,)* } else $other:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            $other(u8),
        }

        impl From<u8> for $name {
            fn from(b: u8) -> Self {
                match b {
                    $($value => Self::$variant,)*
                    other => Self::$other(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(c: $name) -> u8 {
                match c {
                    $($name::$variant => $value,)*
                    $name::$other(b) => b,
                }
            }
        }
    };
}

mod aoe;
pub mod ata;
mod config;
mod ethernet;
mod mac;
pub mod mask;
mod request;
pub mod reserve;

pub use aoe::{AoeHeader, Command, AOE_HEADER_LEN, AOE_VERSION, FLAG_ERROR, FLAG_RESPONSE};
pub use ata::{AtaArg, ATA_ARG_LEN};
pub use config::{ConfigArg, ConfigCommand, CONFIG_ARG_LEN};
pub use ethernet::{
    EthernetFrame, ETHERTYPE_AOE, ETHERTYPE_VLAN, ETH_HEADER_LEN, ETH_TAGGED_HEADER_LEN,
    VLAN_TAG_LEN,
};
pub use mac::{BadMacAddr, MacAddr};
pub use mask::{MaskArg, MaskCommand, MASK_ARG_LEN, MASK_DIRECTIVE_LEN};
pub use request::RequestHeader;
pub use reserve::{ReserveArg, RESERVE_ARG_LEN};

// The header stack, defined once. Everything that builds, parses or sizes a
// frame (the target, the load generator, the UMEM layout) uses these.

/// Offset of the command argument in an untagged frame (14 + 10 = 24).
pub const ARG_OFFSET: usize = ETH_HEADER_LEN + AOE_HEADER_LEN;
/// Offset of the ATA data in an untagged frame (14 + 10 + 12 = 36).
pub const ATA_DATA_OFFSET: usize = ARG_OFFSET + ATA_ARG_LEN;
/// The most header bytes in front of ATA data: an 802.1Q-tagged frame
/// (18 + 10 + 12 = 40).
pub const MAX_ATA_HEADERS_LEN: usize = ETH_TAGGED_HEADER_LEN + AOE_HEADER_LEN + ATA_ARG_LEN;

/// A buffer was too short for the header a view expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn put_be16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
