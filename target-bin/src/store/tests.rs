//! Store tests on real files (no root needed): every path a request can
//! take, and the failure map.

use std::fs;
use std::path::PathBuf;

use aoe_proto::AtaFailure;

use super::aligned::AlignedBuf;
use super::context::{ata_failure, Cause, Op, StableBuf, Started, StoreContext};
use std::sync::Arc;

use super::{Backend, Commit, Durability, OpenOptionsSpec, Store};

/// A test buffer: heap memory, 4096-aligned, with a window that may start
/// off alignment (as the data of an 802.1Q-tagged frame does).
struct TestBuf {
    mem: AlignedBuf,
    at: usize,
    len: usize,
}

impl TestBuf {
    fn new(at: usize, len: usize, fill: u8) -> Self {
        let mut mem = AlignedBuf::new(8192);
        mem.as_mut_slice().fill(fill);
        Self { mem, at, len }
    }
}

// SAFETY: the window lies inside a heap allocation that TestBuf owns
// alone; moving TestBuf moves the pointer, not the memory.
unsafe impl StableBuf for TestBuf {
    fn bytes(&mut self) -> &mut [u8] {
        &mut self.mem.as_mut_slice()[self.at..self.at + self.len]
    }
}

/// A file of `sectors` sectors, sector i filled with byte i, in a
/// directory on a real filesystem (the build directory: tmpfs refuses
/// O_DIRECT).
fn backing_file(name: &str, sectors: u8) -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/store-tests"
    ));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let data: Vec<u8> = (0..sectors).flat_map(|i| [i; 512]).collect();
    fs::write(&path, data).unwrap();
    path
}

fn open_with(
    path: &std::path::Path,
    backend: Backend,
    read_only: bool,
    durability: Durability,
) -> Arc<Vec<Store>> {
    let opts = OpenOptionsSpec {
        read_only,
        backend: Some(backend),
        durability,
    };
    Arc::new(vec![Store::open(path, opts).unwrap()])
}

fn open(path: &std::path::Path, backend: Backend, read_only: bool) -> Arc<Vec<Store>> {
    open_with(path, backend, read_only, Durability::Durable)
}

/// Runs one operation to its end, through the ring if it goes there.
fn run(
    ctx: &mut StoreContext<TestBuf, u32>,
    op: Op,
    buf: TestBuf,
) -> (TestBuf, Result<(), AtaFailure>) {
    match ctx.start(0, op, buf, 7) {
        Started::Done(buf, tag, result) => {
            assert_eq!(tag, 7);
            (buf, result)
        }
        Started::Pending => {
            ctx.submit();
            let mut out = None;
            while out.is_none() {
                ctx.reap(|buf, tag, result| {
                    assert_eq!(tag, 7);
                    out = Some((buf, result));
                });
            }
            out.unwrap()
        }
    }
}

fn round_trip(backend: Backend, durability: Durability, at: usize) {
    let path = backing_file(&format!("rt-{backend:?}-{durability:?}-{at}.img"), 8);
    let store = open_with(&path, backend, false, durability);
    let mut ctx = StoreContext::new(0, Arc::clone(&store), 16, 4096).unwrap();
    // Read sectors 2-3: they hold 2s and 3s.
    let (mut buf, r) = run(
        &mut ctx,
        Op::Read { offset: 1024 },
        TestBuf::new(at, 1024, 0xEE),
    );
    assert_eq!(r, Ok(()));
    assert!(buf.bytes()[..512].iter().all(|&b| b == 2));
    assert!(buf.bytes()[512..].iter().all(|&b| b == 3));
    // Write sector 5 with 0xAB, flush, and find it in the file.
    let (_, r) = run(
        &mut ctx,
        Op::Write { offset: 2560 },
        TestBuf::new(at, 512, 0xAB),
    );
    assert_eq!(r, Ok(()));
    let (_, r) = run(&mut ctx, Op::Flush, TestBuf::new(0, 0, 0));
    assert_eq!(r, Ok(()));
    let file = fs::read(&path).unwrap();
    assert!(file[2560..3072].iter().all(|&b| b == 0xAB));
    assert!(
        file[2048..2560].iter().all(|&b| b == 4),
        "the sector before is untouched"
    );
    assert!(
        file[3072..3584].iter().all(|&b| b == 6),
        "the sector after is untouched"
    );
    assert_eq!(ctx.io_errors(), 0);
    // A durable write to a file waits for a barrier (solo RWF_DSYNC writes
    // are for block devices: the integration tests cover them); writeback
    // needs neither.
    let (barriers, solo) = match durability {
        Durability::Durable => (1, 0),
        Durability::Writeback => (0, 0),
    };
    assert_eq!(
        (ctx.barriers(), ctx.solo_writes()),
        (barriers, solo),
        "{backend:?} {durability:?} at {at}: (barriers, solo writes)"
    );
}

#[test]
fn buffered_reads_writes_and_flushes() {
    round_trip(Backend::Buffered, Durability::Durable, 0);
    round_trip(Backend::Buffered, Durability::Writeback, 0);
    // The page cache takes any alignment.
    round_trip(Backend::Buffered, Durability::Durable, 4);
}

#[test]
fn direct_reads_writes_and_flushes_through_the_ring() {
    round_trip(Backend::Direct, Durability::Durable, 0);
    round_trip(Backend::Direct, Durability::Writeback, 0);
}

#[test]
fn direct_unaligned_data_goes_through_the_bounce_buffer() {
    // 4 bytes off, as behind an 802.1Q tag; a durable bounced write still
    // waits for its group commit.
    round_trip(Backend::Direct, Durability::Durable, 4);
    round_trip(Backend::Direct, Durability::Writeback, 4);
}

#[test]
fn a_file_export_commits_by_barrier_unless_writeback() {
    let path = backing_file("commit.img", 4);
    for (backend, durability, commit) in [
        (Backend::Buffered, Durability::Durable, Commit::Barrier),
        (Backend::Direct, Durability::Durable, Commit::Barrier),
        (Backend::Buffered, Durability::Writeback, Commit::None),
        (Backend::Direct, Durability::Writeback, Commit::None),
    ] {
        let store = open_with(&path, backend, false, durability);
        assert_eq!(
            store[0].extent().commit,
            commit,
            "{backend:?} {durability:?}"
        );
    }
}

#[test]
fn writes_held_together_share_one_barrier_and_reads_are_not_held() {
    let path = backing_file("group.img", 16);
    let store = open(&path, Backend::Buffered, false);
    let mut ctx = StoreContext::new(0, Arc::clone(&store), 64, 4096).unwrap();
    // Eight writes and a read in one batch, as from one RX batch.
    for i in 0..8u32 {
        let buf = TestBuf::new(0, 512, 0xC0 + i as u8);
        let offset = u64::from(i) * 512;
        assert!(matches!(
            ctx.start(0, Op::Write { offset }, buf, i),
            Started::Pending
        ));
    }
    let read = TestBuf::new(0, 512, 0);
    assert!(matches!(
        ctx.start(0, Op::Read { offset: 15 * 512 }, read, 100),
        Started::Pending
    ));
    ctx.submit();
    // Reap until all nine are answered; note which round answered each.
    let (mut round, mut write_rounds, mut read_round) = (0, Vec::new(), None);
    while write_rounds.len() + usize::from(read_round.is_some()) < 9 {
        round += 1;
        let mut tags = Vec::new();
        ctx.reap(|_, tag, result| {
            assert_eq!(result, Ok(()));
            tags.push(tag);
        });
        for tag in tags {
            if tag == 100 {
                read_round = Some(round);
            } else {
                assert_eq!(ctx.barriers(), 1, "write {tag} answered before its barrier");
                write_rounds.push(round);
            }
        }
    }
    assert_eq!(ctx.barriers(), 1, "one barrier for the group");
    assert_eq!(ctx.solo_writes(), 0, "a write with company never goes solo");
    assert!(
        write_rounds.iter().all(|&r| r == write_rounds[0]),
        "the group's answers leave together: {write_rounds:?}"
    );
    assert!(read_round.is_some());
    let file = fs::read(&path).unwrap();
    for i in 0..8 {
        assert!(file[i * 512..(i + 1) * 512]
            .iter()
            .all(|&b| b == 0xC0 + i as u8));
    }
}

#[test]
fn a_range_outside_the_export_is_idnf_and_counted_for_every_backend() {
    for backend in [Backend::Buffered, Backend::Direct] {
        let path = backing_file(&format!("range-{backend:?}.img"), 4);
        let store = open(&path, backend, false);
        let mut ctx = StoreContext::new(0, Arc::clone(&store), 16, 4096).unwrap();
        for offset in [1536, 2048, u64::MAX - 100] {
            for op in [Op::Read { offset }, Op::Write { offset }] {
                let (_, r) = run(&mut ctx, op, TestBuf::new(0, 1024, 1));
                assert_eq!(r, Err(AtaFailure::OutOfRange), "{backend:?} {op:?}");
            }
        }
        assert_eq!(ctx.io_errors(), 6, "{backend:?}");
        let file = fs::read(&path).unwrap();
        assert_eq!(file.len(), 2048, "nothing written past the end");
    }
}

#[test]
fn a_failed_write_is_an_ata_error_and_counted() {
    // A read-only descriptor: the kernel refuses the write (EBADF), as it
    // would refuse a write to a failing disk (EIO) or a full one (ENOSPC).
    let path = backing_file("ro.img", 4);
    let store = open(&path, Backend::Direct, true);
    let mut ctx = StoreContext::new(0, Arc::clone(&store), 16, 4096).unwrap();
    for at in [0, 4] {
        let (_, r) = run(&mut ctx, Op::Write { offset: 0 }, TestBuf::new(at, 512, 9));
        assert_eq!(r, Err(AtaFailure::WriteError));
    }
    assert_eq!(ctx.io_errors(), 2);
    assert!(fs::read(&path).unwrap()[..512].iter().all(|&b| b == 0));
}

#[test]
fn failures_map_to_ata_errors_in_one_place() {
    let (read, write) = (Op::Read { offset: 0 }, Op::Write { offset: 0 });
    assert_eq!(
        ata_failure(read, Cause::Errno(libc::EIO)),
        AtaFailure::ReadError
    );
    assert_eq!(
        ata_failure(
            read,
            Cause::Short {
                done: 0,
                wanted: 512
            }
        ),
        AtaFailure::ReadError
    );
    assert_eq!(
        ata_failure(write, Cause::Errno(libc::ENOSPC)),
        AtaFailure::WriteError
    );
    assert_eq!(
        ata_failure(Op::Flush, Cause::Errno(libc::EIO)),
        AtaFailure::WriteError
    );
    assert_eq!(ata_failure(read, Cause::OutOfRange), AtaFailure::OutOfRange);
    assert_eq!(
        ata_failure(write, Cause::OutOfRange),
        AtaFailure::OutOfRange
    );
}
