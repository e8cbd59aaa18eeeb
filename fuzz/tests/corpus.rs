//! The seed corpus without AFL++: the committed files are what the
//! generator writes, they decode as intended, pass every check, and between
//! them reach every kind of action.

#[path = "../src/seeds.rs"]
mod seeds;

use aoe_proto_fuzz::{encode, run, Input, FLAG_SEQUENCE, MAX_BUF_LEN};
use seeds::seeds;
use std::path::Path;

#[test]
fn committed_corpus_matches_the_generator() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let seeds = seeds();
    for (name, bytes) in &seeds {
        let on_disk = std::fs::read(dir.join(name)).unwrap_or_default();
        assert!(
            &on_disk == bytes,
            "corpus/{name} is stale: run `cargo run --bin make_corpus` in fuzz/"
        );
    }
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(files, seeds.len(), "corpus/ holds files that are not seeds");
}

#[test]
fn seeds_pass_and_reach_every_action() {
    let mut total = aoe_proto::invariants::Seen::default();
    let mut sequences = 0;
    for (_, bytes) in seeds() {
        let input = Input::decode(&bytes).expect("a seed has its prefix");
        sequences += usize::from(input.frames.len() > 1);
        total = total + run(&bytes);
    }
    assert!(sequences >= 3);
    assert!(total.reaches_every_action(), "{total:?}");
}

#[test]
fn decode_inverts_encode_and_takes_any_bytes() {
    let a: &[u8] = &[1, 2, 3];
    let b: &[u8] = &[];
    let c: &[u8] = &[9; 70];
    for frames in [vec![a], vec![a, b, c]] {
        for (jumbo, buf) in [(false, 0), (true, 1514), (false, MAX_BUF_LEN)] {
            let bytes = encode(jumbo, buf, &frames);
            let input = Input::decode(&bytes).unwrap();
            assert_eq!(input.max_sectors, if jumbo { 17 } else { 2 });
            assert_eq!(input.buf_len, buf);
            assert_eq!(input.frames, frames);
        }
    }
    assert_eq!(Input::decode(&[0, 0]), None);
    // A length past the end takes the rest; at most 16 frames.
    let input = Input::decode(&[FLAG_SEQUENCE, 0, 0, 0, 9, 1, 2]).unwrap();
    assert_eq!(input.frames, vec![&[1u8, 2][..]]);
    let input = Input::decode(&[FLAG_SEQUENCE | 3, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(input.frames.len(), 3);
    assert_eq!(input.buf_len, 65535 % (MAX_BUF_LEN + 1));
    let many = vec![0u8; 3 + 2 * 40];
    let mut many = many;
    many[0] = FLAG_SEQUENCE;
    assert_eq!(Input::decode(&many).unwrap().frames.len(), 16);
}
