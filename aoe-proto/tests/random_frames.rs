//! Random and mutated frames through the state machine: it must never
//! panic, every reply must fit the buffer and be padded, and no storage
//! action may pass the end of the export or fall outside the buffer.

use aoe_proto::ata::Identity;
use aoe_proto::{Action, ExportInfo, Target, TargetParams};

/// xorshift64*: deterministic, no dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SECTORS: u64 = 1000;

fn target() -> Target {
    let id = |sectors| Identity {
        serial: "s".into(),
        firmware: "f".into(),
        model: "m".into(),
        sectors,
    };
    Target::new(
        TargetParams {
            mac: [2, 0, 0, 0, 0, 1],
            buffer_count: 16,
            firmware_version: 1,
            max_sectors: 2,
        },
        vec![
            ExportInfo::new(1, 1, false, &id(SECTORS)),
            ExportInfo::new(1, 2, true, &id(SECTORS)),
        ],
    )
}

/// A frame that is AoE-shaped often enough to reach deep paths.
fn random_frame(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(1600) as usize;
    let mut f: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    if f.len() >= 14 && rng.below(4) != 0 {
        f[12..14].copy_from_slice(&[0x88, 0xA2]);
        if f.len() >= 24 {
            f[14] = if rng.below(8) == 0 { f[14] } else { 0x10 };
            f[16..18].copy_from_slice(&[0, 1]);
            f[18] = [1, 2, 0xFF][rng.below(3) as usize];
            f[19] = [0, 1, 2, 3, f[19]][rng.below(5) as usize];
        }
        if f.len() >= 28 && f[19] == 0 && rng.below(2) == 0 {
            f[27] = [0x20, 0x24, 0x30, 0x34, 0xEC, 0xE5, 0xE7, 0xEA][rng.below(8) as usize];
            f[26] = rng.below(4) as u8;
            if f.len() >= 34 {
                let lba = rng.below(SECTORS + 4).to_le_bytes();
                f[28..34].copy_from_slice(&lba[..6]);
            }
        }
    }
    f
}

#[test]
fn random_frames_never_break_the_target() {
    let t = target();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut actions = [0usize; 5];
    for _ in 0..200_000 {
        let req = random_frame(&mut rng);
        let buf_len = req.len().max(64) + rng.below(1200) as usize;
        let mut buf = vec![0u8; buf_len];
        buf[..req.len()].copy_from_slice(&req);
        let mut export = t.next_addressed(&req, 0);
        if export.is_none() {
            export = Some(rng.below(3) as usize); // even unaddressed ones
        }
        let action = t.handle(export.unwrap(), &mut buf, req.len());
        let (slot, reply) = match action {
            Action::Drop => {
                actions[0] += 1;
                continue;
            }
            Action::Reply(r) => (1, r),
            Action::Read(io, r) | Action::Write(io, r) => {
                assert!(io.lba + io.sectors as u64 <= SECTORS);
                assert!(io.data.end <= buf.len());
                assert_eq!(io.data.len(), io.len());
                (2, r)
            }
            Action::Flush(r) => (3, r),
        };
        actions[slot] += 1;
        let len = reply.finish(&mut buf, Ok(()));
        assert!((60..=buf.len()).contains(&len));
        assert_eq!(buf[14] & 0x08, 0x08, "a reply is a response");
    }
    // The generator must reach every kind of action.
    assert!(actions.iter().take(4).all(|&n| n > 0), "{actions:?}");
}
