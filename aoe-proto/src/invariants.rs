//! Properties every answer must have, whatever arrives. The random-frame
//! test and the fuzzer run every input through [`serve_and_check`], which
//! panics with a description on the first property that does not hold.

use crate::target::{Action, BlockIo, Target};
use crate::wire::{AoeHeader, EthernetFrame, FLAG_RESPONSE};
use crate::AtaFailure;

/// What [`serve_and_check`] saw, to tell whether inputs reach deep paths.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub dropped: u64,
    pub replies: u64,
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
}

/// Serves `frame` as the I/O layer would (every export it is routed to,
/// plus `extra_index` whatever the route says, in a buffer of `buf_len`
/// bytes, at least the frame's length) and checks each action:
/// - nothing panics;
/// - a reply is at least 60 bytes and never longer than the buffer, with
///   the storage work succeeding or failing;
/// - a reply is a response, to the request's sender, with the request's tag;
/// - a request from a group address is never answered;
/// - every read or write lies inside its export and inside the buffer, and
///   a write's data was received;
/// - a read-only export never yields a write.
pub fn serve_and_check(target: &Target, frame: &[u8], buf_len: usize, extra_index: usize) -> Seen {
    let mut seen = Seen::default();
    let buf_len = buf_len.max(frame.len());
    let routed: Vec<usize> = target
        .route(frame)
        .map(Iterator::collect)
        .unwrap_or_default();
    let group_source = EthernetFrame::new_checked(frame).is_ok_and(|e| e.src().is_group());
    for index in routed.iter().copied().chain([extra_index]) {
        for failed in [false, true] {
            let mut buf = vec![0xA5u8; buf_len];
            buf[..frame.len()].copy_from_slice(frame);
            let action = target.handle(index, &mut buf, frame.len());
            let reply = match action {
                Action::Drop(_) => {
                    seen.dropped += 1;
                    continue;
                }
                Action::Reply(r) => {
                    seen.replies += 1;
                    r
                }
                Action::Flush(r) => {
                    seen.flushes += 1;
                    r
                }
                Action::Read(io, r) => {
                    seen.reads += 1;
                    check_transfer(target, index, &io, buf_len);
                    r
                }
                Action::Write(io, r) => {
                    seen.writes += 1;
                    check_transfer(target, index, &io, buf_len);
                    let export = &target.exports()[index];
                    assert!(!export.info.read_only, "a write to a read-only export");
                    assert!(
                        io.data.end <= frame.len(),
                        "write data {io:?} was not received"
                    );
                    r
                }
            };
            assert!(!group_source, "a request from a group address was answered");
            let outcome = if failed {
                Err(AtaFailure::WriteError)
            } else {
                Ok(())
            };
            let len = reply.finish(&mut buf, outcome);
            assert!(
                (crate::MIN_FRAME_LEN..=buf_len).contains(&len),
                "reply of {len} bytes in a {buf_len}-byte buffer"
            );
            let (req_eth, resp_eth) = (
                EthernetFrame::new_checked(frame).expect("answered, so parsed"),
                EthernetFrame::new_checked(&buf[..len]).expect("a reply has a header"),
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
            let (req_hdr, resp_hdr) = (
                AoeHeader::new_checked(&frame[l2..]).expect("answered, so parsed"),
                AoeHeader::new_checked(&buf[l2..len]).expect("a reply has an AoE header"),
            );
            assert!(
                resp_hdr.flags() & FLAG_RESPONSE != 0,
                "a reply without the response flag"
            );
            assert_eq!(
                resp_hdr.tag(),
                req_hdr.tag(),
                "reply tag differs from the request's"
            );
            assert_eq!(
                resp_hdr.command(),
                req_hdr.command(),
                "reply to another command"
            );
        }
    }
    seen
}

fn check_transfer(target: &Target, index: usize, io: &BlockIo, buf_len: usize) {
    let export = target
        .exports()
        .get(index)
        .expect("a transfer for an export that does not exist");
    let sectors = export.info.sectors;
    assert!(
        io.lba
            .checked_add(io.sectors as u64)
            .is_some_and(|end| end <= sectors),
        "transfer {io:?} passes the end of a {sectors}-sector export"
    );
    assert!(io.sectors > 0, "an empty transfer");
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
