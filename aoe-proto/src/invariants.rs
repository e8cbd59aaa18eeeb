//! Properties every answer must have, whatever arrives. The random-frame
//! test and the fuzzer (`fuzz/`) run every input through
//! [`serve_and_check`], which panics with a description on the first
//! property that does not hold.

use crate::error::ATA_STATUS_ERR;
use crate::target::{Action, BlockIo, Target};
use crate::wire::{
    AoeHeader, AtaArg, EthernetFrame, AOE_HEADER_LEN, AOE_VERSION, ATA_ARG_LEN, ETHERTYPE_AOE,
    FLAG_ERROR, FLAG_RESPONSE,
};
use crate::{AtaFailure, MIN_FRAME_LEN};

/// What [`serve_and_check`] saw, to tell whether inputs reach deep paths.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub dropped: u64,
    pub replies: u64,
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
}

impl Seen {
    /// Every kind of action was seen at least once.
    pub fn reaches_every_action(&self) -> bool {
        self.dropped > 0
            && self.replies > 0
            && self.reads > 0
            && self.writes > 0
            && self.flushes > 0
    }
}

impl std::ops::Add for Seen {
    type Output = Seen;

    fn add(self, o: Seen) -> Seen {
        Seen {
            dropped: self.dropped + o.dropped,
            replies: self.replies + o.replies,
            reads: self.reads + o.reads,
            writes: self.writes + o.writes,
            flushes: self.flushes + o.flushes,
        }
    }
}

/// Serves `frame` on every export of `target` (and one index past the
/// end), in a buffer of `buf_len` bytes (at least the frame's length),
/// once with the storage work succeeding and once failing, and checks:
/// - nothing panics;
/// - only exports the frame is routed to answer;
/// - a reply is at least 60 bytes and never longer than the buffer;
/// - a reply goes to the request's sender, from the target's address, with
///   the request's link header (VLAN tag included), the AoE EtherType,
///   version 1, the response flag, the request's command and tag, and the
///   answering export's own shelf.slot (never a wildcard);
/// - an error code is set exactly when the error flag is, and is a known one;
/// - a request from a group address is never answered;
/// - every read or write lies inside its export and inside the buffer, its
///   data right after the ATA argument; a write's data was received; a
///   read-only export never yields a write;
/// - failed storage work is reported as an ATA error that carries no data.
///
/// Like the I/O layer, this changes the target's control state as the
/// frame asks.
pub fn serve_and_check(target: &Target, frame: &[u8], buf_len: usize) -> Seen {
    let mut seen = Seen::default();
    let buf_len = buf_len.max(frame.len());
    let routed: Vec<usize> = target
        .route(frame)
        .map(Iterator::collect)
        .unwrap_or_default();
    for index in 0..=target.exports().len() {
        for failed in [false, true] {
            let mut buf = vec![0xA5u8; buf_len];
            buf[..frame.len()].copy_from_slice(frame);
            let action = target.handle(index, &mut buf, frame.len());
            if let Action::Drop(_) = action {
                seen.dropped += 1;
                continue;
            }
            assert!(
                routed.contains(&index),
                "export {index} answered a frame routed to {routed:?}"
            );
            let l2 = EthernetFrame::new_checked(frame)
                .expect("answered, so parsed")
                .header_len();
            let data_at = l2 + AOE_HEADER_LEN + ATA_ARG_LEN;
            let (reply, storage) = match action {
                Action::Drop(_) => unreachable!("handled above"),
                Action::Reply(r) => {
                    seen.replies += 1;
                    (r, false)
                }
                Action::Flush(r) => {
                    seen.flushes += 1;
                    (r, true)
                }
                Action::Read(io, r) => {
                    seen.reads += 1;
                    check_transfer(target, index, &io, data_at, buf_len);
                    assert_eq!(
                        r.len(),
                        io.data.end,
                        "a read reply does not end with its data"
                    );
                    (r, true)
                }
                Action::Write(io, r) => {
                    seen.writes += 1;
                    check_transfer(target, index, &io, data_at, buf_len);
                    assert!(
                        !target.exports()[index].info.read_only,
                        "a write to a read-only export"
                    );
                    assert!(
                        io.data.end <= frame.len(),
                        "write data {io:?} was not received"
                    );
                    assert_eq!(r.len(), data_at, "a write reply longer than its header");
                    (r, true)
                }
            };
            let outcome = if failed {
                Err(AtaFailure::WriteError)
            } else {
                Ok(())
            };
            let len = reply.finish(&mut buf, outcome);
            assert!(
                (MIN_FRAME_LEN..=buf_len).contains(&len),
                "reply of {len} bytes in a {buf_len}-byte buffer"
            );
            check_reply(target, index, frame, &buf[..len]);
            if storage && failed {
                let arg =
                    AtaArg::new_checked(&buf[l2 + AOE_HEADER_LEN..len]).expect("an ATA reply");
                assert!(
                    arg.status() & ATA_STATUS_ERR != 0,
                    "failed storage work reported as success"
                );
                assert_eq!(
                    len,
                    data_at.max(MIN_FRAME_LEN),
                    "a failed storage reply carries data"
                );
            }
        }
    }
    seen
}

fn check_reply(target: &Target, index: usize, frame: &[u8], resp: &[u8]) {
    let req_eth = EthernetFrame::new_checked(frame).expect("answered, so parsed");
    let resp_eth = EthernetFrame::new_checked(resp).expect("a reply has a header");
    assert!(
        !req_eth.src().is_group(),
        "a request from a group address was answered"
    );
    assert_eq!(
        resp_eth.dst(),
        req_eth.src(),
        "reply not sent to the sender"
    );
    assert_eq!(
        resp_eth.src(),
        target.params().mac,
        "reply not sent from our address"
    );
    let l2 = req_eth.header_len();
    assert_eq!(resp_eth.header_len(), l2, "reply changed the link header");
    assert_eq!(resp[12..l2], frame[12..l2], "reply changed the VLAN tag");
    assert_eq!(resp_eth.ethertype(), ETHERTYPE_AOE, "reply is not AoE");
    let req = AoeHeader::new_checked(&frame[l2..]).expect("answered, so parsed");
    let hdr = AoeHeader::new_checked(&resp[l2..]).expect("a reply has an AoE header");
    assert!(
        hdr.flags() & FLAG_RESPONSE != 0,
        "a reply without the response flag"
    );
    assert_eq!(hdr.version(), AOE_VERSION, "reply version");
    assert_eq!(hdr.tag(), req.tag(), "reply tag differs from the request's");
    assert_eq!(hdr.command(), req.command(), "reply to another command");
    let export = &target.exports()[index].info;
    assert_eq!(
        (hdr.shelf(), hdr.slot()),
        (export.shelf, export.slot),
        "reply not from the answering export's address"
    );
    if hdr.flags() & FLAG_ERROR != 0 {
        assert!(
            (1..=6).contains(&hdr.error()),
            "unknown AoE error {}",
            hdr.error()
        );
    } else {
        assert_eq!(hdr.error(), 0, "an error code without the error flag");
    }
}

fn check_transfer(target: &Target, index: usize, io: &BlockIo, data_at: usize, buf_len: usize) {
    let sectors = target.exports()[index].info.sectors;
    assert!(
        io.lba
            .checked_add(io.sectors as u64)
            .is_some_and(|end| end <= sectors),
        "transfer {io:?} passes the end of a {sectors}-sector export"
    );
    assert!(io.sectors > 0, "an empty transfer");
    assert_eq!(
        io.data.start, data_at,
        "transfer data not right after the ATA argument"
    );
    assert!(
        io.data.end <= buf_len,
        "transfer {io:?} passes the buffer ({buf_len} bytes)"
    );
    assert_eq!(
        io.data.len(),
        io.len(),
        "data range and sector count disagree"
    );
}
