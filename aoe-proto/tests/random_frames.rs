//! Random and mutated frames through the state machine, with every answer
//! checked by `aoe_proto::invariants` (the same checks the fuzzer makes).
//! Covers untagged and 802.1Q-tagged frames, group source addresses, and
//! response buffers from a few bytes up.

use aoe_proto::ata::Identity;
use aoe_proto::invariants::{serve_and_check, Seen};
use aoe_proto::wire::{ETHERTYPE_AOE, ETHERTYPE_VLAN};
use aoe_proto::{ExportInfo, MacAddr, Target, TargetParams};

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
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
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
fn random_frame(rng: &mut fastrand::Rng) -> Vec<u8> {
    let len = rng.usize(..1600);
    let mut f: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
    // Usually a unicast source; sometimes a group address.
    if f.len() >= 12 && rng.u8(..8) != 0 {
        f[6] &= 0xFE;
    }
    let tagged = rng.u8(..4) == 0;
    let l2 = if tagged { 18 } else { 14 };
    if f.len() >= l2 && rng.u8(..4) != 0 {
        if tagged {
            f[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        }
        f[l2 - 2..l2].copy_from_slice(&ETHERTYPE_AOE.to_be_bytes());
        if f.len() >= l2 + 10 {
            if rng.u8(..8) != 0 {
                f[l2] = 0x10;
            }
            f[l2 + 2..l2 + 4].copy_from_slice(&[0, 1]);
            f[l2 + 4] = [1, 2, 0xFF][rng.usize(..3)];
            f[l2 + 5] = [0, 1, 2, 3, f[l2 + 5]][rng.usize(..5)];
        }
        let a = l2 + 10; // the ATA argument
        if f.len() >= a + 4 && f[l2 + 5] == 0 && rng.bool() {
            f[a + 3] = [0x20, 0x24, 0x30, 0x34, 0xEC, 0xE5, 0xE7, 0xEA][rng.usize(..8)];
            f[a + 2] = rng.u8(..4);
            if f.len() >= a + 10 {
                let lba = rng.u64(..SECTORS + 4).to_le_bytes();
                f[a + 4..a + 10].copy_from_slice(&lba[..6]);
            }
        }
    }
    f
}

#[test]
fn random_frames_never_break_the_target() {
    let t = target();
    let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15);
    let mut seen = Seen::default();
    let mut tagged_answers = 0;
    for _ in 0..200_000 {
        let req = random_frame(&mut rng);
        // Buffers from far too short for any reply up to a jumbo frame.
        let buf_len = match rng.u8(..8) {
            0 => rng.usize(..64),
            _ => req.len() + rng.usize(..1200),
        };
        let s = serve_and_check(&t, &req, buf_len);
        if req.len() > 13 && req[12..14] == ETHERTYPE_VLAN.to_be_bytes() && s.replies > 0 {
            tagged_answers += 1;
        }
        seen = seen + s;
    }
    // The generator must reach every kind of action, tagged frames included.
    assert!(seen.reaches_every_action(), "{seen:?}");
    assert!(tagged_answers > 0, "no 802.1Q frame was answered");
}
