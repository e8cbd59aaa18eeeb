//! ATA over Ethernet, revision 11: the wire format and a target state machine.
//!
//! This crate does no I/O, reads no clock and holds no unsafe code. The I/O
//! layer hands it a received frame in a buffer that is large enough for the
//! response; [`Target::handle`] validates the request, writes the response
//! header in place and says what storage work (if any) must happen before the
//! buffer goes back on the wire.
#![forbid(unsafe_code)]

pub mod ata;
pub mod error;
pub mod invariants;
pub mod target;
pub mod wire;

pub use error::{AoeError, AtaFailure};
pub use target::{
    Action, BlockIo, Control, Dropped, Export, ExportInfo, Reply, Route, Target, TargetParams,
};
pub use wire::MacAddr;

/// Bytes in one ATA sector.
pub const SECTOR_SIZE: usize = 512;

/// The longest config string a target stores (revision 11).
pub const MAX_CONFIG_LEN: usize = 1024;

/// Every frame sent is at least this long: veth, tap and AF_XDP do not pad,
/// and aoetools and Plan 9 drop shorter frames.
pub const MIN_FRAME_LEN: usize = 60;

/// The most sectors one ATA request can carry with this MTU (revision 11:
/// 36 bytes of headers, the rest data, capped at 255 by the one-byte field).
pub fn sectors_for_mtu(mtu: usize) -> u8 {
    (mtu.saturating_sub(wire::ATA_DATA_OFFSET) / SECTOR_SIZE).min(255) as u8
}

/// Zero-pads a frame of `len` bytes to [`MIN_FRAME_LEN`] and returns the
/// length to send. `buf` must hold at least [`MIN_FRAME_LEN`] bytes.
pub fn pad_frame(buf: &mut [u8], len: usize) -> usize {
    if len < MIN_FRAME_LEN {
        buf[len..MIN_FRAME_LEN].fill(0);
        MIN_FRAME_LEN
    } else {
        len
    }
}
