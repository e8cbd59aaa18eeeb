//! A worker's storage context: it decides how each request reaches its
//! store, owns what that needs (the io_uring, the bounce buffer), maps
//! every failure to its ATA error in one place, and counts and logs
//! failures for every backend alike.

use std::io;
use std::os::fd::BorrowedFd;

use aoe_proto::AtaFailure;

use super::aligned::{is_direct_aligned, AlignedBuf};
use super::ring::{Completion, DirectRing};
use super::{Backend, Store};

/// Memory that a storage operation reads into or writes from.
///
/// # Safety
/// Implementors promise that the slice `bytes` returns stays valid, at the
/// same address, and is read or written by no one else for as long as the
/// value lives, even when the value is moved: the io_uring keeps only the
/// value, not a borrow, while the kernel uses the memory.
pub unsafe trait StableBuf {
    fn bytes(&mut self) -> &mut [u8];
}

/// What a request asks of its store. Reads and writes cover all of the
/// buffer's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read { offset: u64 },
    Write { offset: u64 },
    Flush,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Read { .. } => "read",
            Op::Write { .. } => "write",
            Op::Flush => "flush",
        }
    }
}

/// Why a storage operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The system call failed with this errno (EIO, ENOSPC, ...).
    Errno(i32),
    /// It moved fewer bytes than asked.
    Short { done: usize, wanted: usize },
    /// A blocking read or write met the end of the file before moving all
    /// its bytes (how std reports a short pread/pwrite).
    EndOfFile,
    /// The range passes the end of the export (the protocol core checks
    /// this first; this is the second line of defence).
    OutOfRange,
}

impl Cause {
    fn of(e: &io::Error) -> Self {
        match e.raw_os_error() {
            Some(errno) => Cause::Errno(errno),
            None if matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::WriteZero
            ) =>
            {
                Cause::EndOfFile
            }
            None => Cause::Errno(libc::EIO),
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Cause::Errno(errno) => write!(f, "{}", io::Error::from_raw_os_error(errno)),
            Cause::Short { done, wanted } => write!(f, "short transfer ({done} of {wanted} bytes)"),
            Cause::EndOfFile => write!(f, "end of file before the whole transfer"),
            Cause::OutOfRange => write!(f, "range outside the export"),
        }
    }
}

/// The one map from a storage failure to what the initiator is told:
/// out of range is IDNF, a failed read UNC, a failed write or flush ABRT.
pub fn ata_failure(op: Op, cause: Cause) -> AtaFailure {
    match (op, cause) {
        (_, Cause::OutOfRange) => AtaFailure::OutOfRange,
        (Op::Read { .. }, _) => AtaFailure::ReadError,
        (Op::Write { .. } | Op::Flush, _) => AtaFailure::WriteError,
    }
}

/// How `start` left a request.
pub enum Started<B, C> {
    /// Done at once (mmap, bounce, or refused): reply now.
    Done(B, C, Result<(), AtaFailure>),
    /// In the io_uring: `reap` hands it back.
    Pending,
}

/// An operation in the ring: its buffer, the caller's context, the op.
type InFlight<B, C> = (B, C, Op);

pub struct StoreContext<B, C> {
    queue: u32,
    /// Only when some export is direct.
    ring: Option<DirectRing<InFlight<B, C>>>,
    bounce: AlignedBuf,
    io_errors: u64,
}

impl<B: StableBuf, C> StoreContext<B, C> {
    /// `max_in_flight`: the most operations that can be outstanding (every
    /// frame the worker holds); `max_len`: the longest transfer.
    pub fn new(
        queue: u32,
        stores: &[Store],
        max_in_flight: u32,
        max_len: usize,
    ) -> io::Result<Self> {
        let ring = if stores.iter().any(|s| s.backend() == Backend::Direct) {
            Some(DirectRing::new(max_in_flight)?)
        } else {
            None
        };
        Ok(Self {
            queue,
            ring,
            bounce: AlignedBuf::new(max_len),
            io_errors: 0,
        })
    }

    /// Storage operations that failed so far.
    pub fn io_errors(&self) -> u64 {
        self.io_errors
    }

    /// Signalled when an operation completes (none without a ring).
    pub fn eventfd(&self) -> Option<BorrowedFd<'_>> {
        self.ring.as_ref().map(DirectRing::eventfd)
    }

    pub fn clear_event(&self) {
        if let Some(ring) = &self.ring {
            ring.clear_event();
        }
    }

    /// Starts `op` on `store` with `buf`; `ctx` comes back with the result.
    pub fn start(&mut self, store: &Store, op: Op, mut buf: B, ctx: C) -> Started<B, C> {
        let result = match (op, store) {
            (Op::Read { offset } | Op::Write { offset }, _)
                if !store.extent().contains(offset, buf.bytes().len()) =>
            {
                Err(Cause::OutOfRange)
            }
            (Op::Read { offset }, Store::Mmap(m)) => {
                m.read(offset, buf.bytes());
                Ok(())
            }
            (Op::Write { offset }, Store::Mmap(m)) => {
                m.write(offset, buf.bytes()).map_err(|e| Cause::of(&e))
            }
            (Op::Flush, Store::Mmap(m)) => m.flush().map_err(|e| Cause::of(&e)),
            (_, Store::Direct(d)) => {
                let bytes = buf.bytes();
                let (fd, ptr, len) = (d.fd(), bytes.as_mut_ptr(), bytes.len());
                let ring = self.ring.as_mut().expect("a direct store creates the ring");
                let queued = match op {
                    Op::Read { offset } | Op::Write { offset } if is_direct_aligned(bytes) => {
                        let write = matches!(op, Op::Write { .. });
                        // SAFETY: B: StableBuf keeps `ptr..ptr+len` valid and
                        // ours while the token lives, and the ring holds the
                        // token until the operation completes (its Drop waits
                        // for that); the store's fd lives as long as the
                        // worker's stores, which outlive its context; the
                        // buffer is aligned (checked above).
                        unsafe { ring.transfer(write, fd, offset, ptr, len, (buf, ctx, op)) }
                    }
                    Op::Flush => ring.fsync(fd, (buf, ctx, op)),
                    Op::Read { offset } => {
                        let r = d.read_bounced(offset, bytes, &mut self.bounce);
                        return self.done(op, buf, ctx, r.map_err(|e| Cause::of(&e)));
                    }
                    Op::Write { offset } => {
                        let r = d.write_bounced(offset, bytes, &mut self.bounce);
                        return self.done(op, buf, ctx, r.map_err(|e| Cause::of(&e)));
                    }
                };
                return match queued {
                    Ok(()) => Started::Pending,
                    // The ring is full or refused the entry: EBUSY.
                    Err((buf, ctx, op)) => self.done(op, buf, ctx, Err(Cause::Errno(libc::EBUSY))),
                };
            }
        };
        self.done(op, buf, ctx, result)
    }

    fn done(&mut self, op: Op, buf: B, ctx: C, result: Result<(), Cause>) -> Started<B, C> {
        let result = result.map_err(|cause| self.failed(op, cause));
        Started::Done(buf, ctx, result)
    }

    /// Counts and logs a failure (at power-of-two counts, so a failing
    /// disk cannot flood the log) and maps it to its ATA error.
    fn failed(&mut self, op: Op, cause: Cause) -> AtaFailure {
        self.io_errors += 1;
        let failure = ata_failure(op, cause);
        if self.io_errors.is_power_of_two() {
            log::warn!(
                "queue {}: storage I/O failed: {} ({cause}), answered with ATA {failure:?}; {} failure(s) so far",
                self.queue,
                op.name(),
                self.io_errors
            );
        }
        failure
    }

    /// Submits the batch's ring operations with one system call.
    pub fn submit(&mut self) {
        if let Some(ring) = &mut self.ring {
            if let Err(e) = ring.submit() {
                log::warn!("queue {}: io_uring submit failed: {e}", self.queue);
            }
        }
    }

    /// Hands back every finished ring operation with its result.
    pub fn reap(&mut self, mut done: impl FnMut(B, C, Result<(), AtaFailure>)) -> usize {
        let Some(mut ring) = self.ring.take() else {
            return 0;
        };
        let n = ring.reap(|c| {
            let (buf, ctx, result) = self.complete(c);
            done(buf, ctx, result)
        });
        self.ring = Some(ring);
        n
    }

    /// Waits for every ring operation, handing each back (at shutdown).
    pub fn drain(&mut self, mut done: impl FnMut(B, C, Result<(), AtaFailure>)) -> usize {
        let Some(mut ring) = self.ring.take() else {
            return 0;
        };
        let mut n = 0;
        if let Err(e) = ring.drain(|c| {
            n += 1;
            let (buf, ctx, result) = self.complete(c);
            done(buf, ctx, result)
        }) {
            log::error!("queue {}: waiting for storage I/O failed: {e}", self.queue);
        }
        self.ring = Some(ring);
        n
    }

    fn complete(&mut self, c: Completion<InFlight<B, C>>) -> (B, C, Result<(), AtaFailure>) {
        let (buf, ctx, op) = c.token;
        let result = match usize::try_from(c.res) {
            Ok(done) if done == c.expected => Ok(()),
            Ok(done) => Err(self.failed(
                op,
                Cause::Short {
                    done,
                    wanted: c.expected,
                },
            )),
            Err(_) => Err(self.failed(op, Cause::Errno(-c.res))),
        };
        (buf, ctx, result)
    }
}
