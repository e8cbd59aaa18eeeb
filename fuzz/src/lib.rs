//! The fuzz input format, and the one function every input goes through.
//!
//! An input is a 3-byte prefix that sets up the run, then one frame or a
//! short sequence of frames:
//!
//! | byte | meaning |
//! |---|---|
//! | 0, bit 2 | 0: the target advertises 2 sectors per request (MTU 1500), 1: 17 (MTU 9000) |
//! | 0, bit 3 | 0: the rest is one frame; 1: the rest is a sequence of frames, each preceded by its length (2 bytes, big-endian; a length past the end takes what is left), at most [`MAX_FRAMES`] |
//! | 0, bits 0-1 and 4-7 | unused |
//! | 1-2 | response buffer length, little-endian, modulo [`MAX_BUF_LEN`] + 1 (never less than the frame: see `serve_and_check`) |
//!
//! Every input gets a fresh target (export 1.1 read-write, 1.2 read-only,
//! [`SECTORS`] sectors each), so inputs are independent; a sequence shares
//! one target, so Mac Mask List, Reserve/Release and config string changes
//! made by one frame apply to the next ones in the same input.
//!
//! Each frame is checked by [`aoe_proto::invariants::serve_and_check`] on
//! every export, which panics on the first broken property; AFL++ records
//! that as a crash.

use aoe_proto::ata::Identity;
use aoe_proto::invariants::{serve_and_check, Seen};
use aoe_proto::{ExportInfo, MacAddr, Target, TargetParams};

/// Bytes of set-up before the frame(s).
pub const PREFIX_LEN: usize = 3;
/// The largest response buffer an input can ask for (a jumbo frame).
pub const MAX_BUF_LEN: usize = 9216;
/// The most frames one sequence input serves.
pub const MAX_FRAMES: usize = 16;
/// Sectors in each export.
pub const SECTORS: u64 = 1000;
/// The target's own address.
pub const TARGET_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

/// Prefix bit 2: the target advertises 17 sectors instead of 2.
pub const FLAG_JUMBO: u8 = 0x04;
/// Prefix bit 3: the rest of the input is a sequence of frames.
pub const FLAG_SEQUENCE: u8 = 0x08;

/// One decoded fuzz input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input<'a> {
    pub max_sectors: u8,
    pub buf_len: usize,
    pub frames: Vec<&'a [u8]>,
}

impl<'a> Input<'a> {
    /// Decodes any byte string; `None` only when it is shorter than the
    /// prefix.
    pub fn decode(data: &'a [u8]) -> Option<Self> {
        let (prefix, rest) = data.split_at_checked(PREFIX_LEN)?;
        let flags = prefix[0];
        let max_sectors = if flags & FLAG_JUMBO != 0 { 17 } else { 2 };
        let buf_len = usize::from(u16::from_le_bytes([prefix[1], prefix[2]])) % (MAX_BUF_LEN + 1);
        let frames = if flags & FLAG_SEQUENCE == 0 {
            vec![rest]
        } else {
            split_sequence(rest)
        };
        Some(Self {
            max_sectors,
            buf_len,
            frames,
        })
    }
}

fn split_sequence(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    while frames.len() < MAX_FRAMES {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let (frame, tail) = tail.split_at(usize::from(u16::from_be_bytes(*len)).min(tail.len()));
        frames.push(frame);
        rest = tail;
    }
    frames
}

/// Encodes an input (the inverse of [`Input::decode`]); the corpus
/// generator uses it.
pub fn encode(jumbo: bool, buf_len: usize, frames: &[&[u8]]) -> Vec<u8> {
    assert!(buf_len <= MAX_BUF_LEN && !frames.is_empty());
    assert!(frames.len() <= MAX_FRAMES);
    let mut flags = 0;
    if jumbo {
        flags |= FLAG_JUMBO;
    }
    if frames.len() > 1 {
        flags |= FLAG_SEQUENCE;
    }
    let mut out = vec![flags];
    out.extend_from_slice(&(buf_len as u16).to_le_bytes());
    if frames.len() == 1 {
        out.extend_from_slice(frames[0]);
    } else {
        for f in frames {
            out.extend_from_slice(
                &u16::try_from(f.len())
                    .expect("frame too long")
                    .to_be_bytes(),
            );
            out.extend_from_slice(f);
        }
    }
    out
}

/// The target every input is served by: export 1.1 read-write and 1.2
/// read-only, advertising `max_sectors` per request.
pub fn target(max_sectors: u8) -> Target {
    let id = |serial: &str| Identity {
        serial: serial.into(),
        firmware: "0.1.0".into(),
        model: "aoe-xdp fuzz".into(),
        sectors: SECTORS,
    };
    Target::new(
        TargetParams {
            mac: TARGET_MAC,
            buffer_count: 64,
            firmware_version: 1,
            max_sectors,
        },
        vec![
            ExportInfo::new(1, 1, false, &id("1.1:fuzz")),
            ExportInfo::new(1, 2, true, &id("1.2:fuzz")),
        ],
    )
}

/// Runs one fuzz input; panics if any answer breaks an invariant. Returns
/// what the answers were, summed over the input's frames.
pub fn run(data: &[u8]) -> Seen {
    let mut total = Seen::default();
    let Some(input) = Input::decode(data) else {
        return total;
    };
    let target = target(input.max_sectors);
    for frame in &input.frames {
        total = total + serve_and_check(&target, frame, input.buf_len);
    }
    total
}
