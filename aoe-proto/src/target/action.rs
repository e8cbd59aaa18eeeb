//! What the protocol core asks of the I/O layer.

use crate::error::AtaFailure;
use crate::wire::{AtaArg, ATA_ARG_LEN};
use crate::{pad_frame, SECTOR_SIZE};

/// Why a frame gets no answer. The I/O layer counts these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Not an AoE request for one of our exports (another EtherType, a
    /// response, another address, too short for its headers).
    NotForUs,
    /// The source address is a group (multicast or broadcast) address: no
    /// station sends from one, and an answer would go to every host.
    GroupSource,
    /// The sender is not on the export's Mac Mask List.
    Masked,
    /// A Query Config test whose string does not match: the protocol says
    /// to stay silent.
    Silent,
    /// The buffer cannot hold the response.
    NoRoom,
}

/// A block transfer the I/O layer performs before replying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockIo {
    pub lba: u64,
    pub sectors: u8,
    /// Where the sector data sits in the buffer: the source of a write, the
    /// destination of a read.
    pub data: core::ops::Range<usize>,
}

impl BlockIo {
    /// Byte offset in the export.
    pub fn offset(&self) -> u64 {
        self.lba * SECTOR_SIZE as u64
    }

    /// Byte length of the transfer.
    pub fn len(&self) -> usize {
        self.sectors as usize * SECTOR_SIZE
    }

    pub fn is_empty(&self) -> bool {
        self.sectors == 0
    }
}

/// A response whose header is in the buffer; [`Reply::finish`] completes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub(super) len: usize,
    /// Offset of the ATA argument, for ATA commands (to report an I/O error).
    pub(super) ata_arg: Option<usize>,
    /// The response already carries an AoE error or an ATA error status.
    pub(super) error: bool,
}

impl Reply {
    /// True if the response reports an error whatever the storage outcome
    /// (an AoE error, or an ATA error decided by the protocol core). With a
    /// failed outcome, [`Reply::finish`] makes any reply an error.
    pub fn is_error(&self) -> bool {
        self.error
    }

    /// Length of the response if the storage work succeeds (before padding).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records the outcome of the storage work (an ATA error on failure),
    /// pads the frame, and returns the number of bytes to transmit.
    /// For a write, call this only after the data has been stored: padding
    /// overwrites the bytes after the response header.
    pub fn finish(self, buf: &mut [u8], outcome: Result<(), AtaFailure>) -> usize {
        let mut len = self.len;
        if let (Err(failure), Some(at)) = (outcome, self.ata_arg) {
            let mut arg = AtaArg::new_checked(&mut buf[at..]).expect("checked in handle");
            let (status, err) = failure.status_err();
            arg.set_status(status);
            arg.set_err(err);
            len = at + ATA_ARG_LEN;
        }
        pad_frame(buf, len)
    }
}

/// What the I/O layer must do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send nothing; the buffer may be reused.
    Drop(Dropped),
    /// The response is complete in the buffer.
    Reply(Reply),
    /// Read the sectors into `io.data`, then reply.
    Read(BlockIo, Reply),
    /// Write the sectors from `io.data`, then reply.
    Write(BlockIo, Reply),
    /// Make every acknowledged write durable, then reply.
    Flush(Reply),
}
