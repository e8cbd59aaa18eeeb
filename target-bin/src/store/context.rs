//! A worker's storage context: it decides how each request reaches its
//! store, owns what that needs (the io_uring, the bounce buffer, the group
//! commit of each export), maps every failure to its ATA error in one
//! place, and counts and logs failures for every backend alike.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use aoe_proto::AtaFailure;

use super::aligned::{is_direct_aligned, AlignedBuf};
use super::commit::GroupCommit;
use super::direct;
use super::ring::{Completion, DirectRing, Transfer};
use super::{Backend, Commit, Store};

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

    fn is_write(self) -> bool {
        matches!(self, Op::Write { .. })
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
/// out of range is IDNF, a failed read UNC, a failed write, flush or group
/// commit ABRT.
pub fn ata_failure(op: Op, cause: Cause) -> AtaFailure {
    match (op, cause) {
        (_, Cause::OutOfRange) => AtaFailure::OutOfRange,
        (Op::Read { .. }, _) => AtaFailure::ReadError,
        (Op::Write { .. } | Op::Flush, _) => AtaFailure::WriteError,
    }
}

/// How `start` left a request.
pub enum Started<B, C> {
    /// Done at once (bounce, or refused): reply now.
    Done(B, C, Result<(), AtaFailure>),
    /// In the io_uring, or a durable write waiting for its group commit:
    /// `reap` hands it back.
    Pending,
}

/// What an io_uring operation is for.
enum Token<B, C> {
    /// A request's read, write or flush.
    Io {
        buf: B,
        ctx: C,
        op: Op,
        export: usize,
        commit: WriteCommit,
    },
    /// The fdatasync that commits a group of `export`'s writes.
    Barrier { export: usize },
}

/// What a write's completion means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteCommit {
    /// Not a write, or a write whose completion is all it promises.
    None,
    /// A durable write, held for its group's barrier once it completes.
    Group,
    /// A durable write that went alone, as RWF_DSYNC: its completion is
    /// durable.
    Solo,
}

/// A group-commit write held back until the batch ends, in case it is the
/// only one (then it goes solo).
struct Staged<T> {
    fd: RawFd,
    offset: u64,
    token: T,
}

/// Everything but the ring, so that completions can update it while the
/// ring hands them over.
struct Ledger<B, C> {
    queue: u32,
    /// One per export, for its durable writes.
    groups: Vec<GroupCommit<(B, C)>>,
    io_errors: u64,
    barriers: u64,
    solo_writes: u64,
}

pub struct StoreContext<B, C> {
    /// Declared first, so dropped first: its Drop waits for every
    /// operation in flight while the stores' fds are still open.
    ring: DirectRing<Token<B, C>>,
    stores: Arc<Vec<Store>>,
    bounce: AlignedBuf,
    /// One per export: its first durable write of the batch, if it found
    /// the export idle.
    staged: Vec<Option<Staged<Token<B, C>>>>,
    /// Requests the ring refused after `start` had returned `Pending` for
    /// them; `reap` answers them.
    refused: Vec<(B, C, Result<(), AtaFailure>)>,
    ledger: Ledger<B, C>,
}

impl<B: StableBuf, C> StoreContext<B, C> {
    /// `max_in_flight`: the most requests that can be outstanding (every
    /// frame the worker holds); `max_len`: the longest transfer.
    pub fn new(
        queue: u32,
        stores: Arc<Vec<Store>>,
        max_in_flight: u32,
        max_len: usize,
    ) -> io::Result<Self> {
        // Room for every request, and one barrier per export on top.
        let ring = DirectRing::new(max_in_flight + stores.len() as u32)?;
        let groups = stores.iter().map(|_| GroupCommit::default()).collect();
        let staged = stores.iter().map(|_| None).collect();
        Ok(Self {
            stores,
            ring,
            bounce: AlignedBuf::new(max_len),
            staged,
            refused: Vec::new(),
            ledger: Ledger {
                queue,
                groups,
                io_errors: 0,
                barriers: 0,
                solo_writes: 0,
            },
        })
    }

    /// Storage operations that failed so far.
    pub fn io_errors(&self) -> u64 {
        self.ledger.io_errors
    }

    /// Group commits (durability barriers) completed so far.
    pub fn barriers(&self) -> u64 {
        self.ledger.barriers
    }

    /// Whether durable writes are in flight or held: they take hundreds
    /// of microseconds, and their completion wakes the worker's poll().
    pub fn holds_durable_writes(&self) -> bool {
        self.staged.iter().any(Option::is_some)
            || !self.ledger.groups.iter().all(GroupCommit::is_idle)
    }

    /// Durable writes that went alone, as RWF_DSYNC, so far.
    pub fn solo_writes(&self) -> u64 {
        self.ledger.solo_writes
    }

    /// Signalled when an operation completes.
    pub fn eventfd(&self) -> BorrowedFd<'_> {
        self.ring.eventfd()
    }

    pub fn clear_event(&self) {
        self.ring.clear_event();
    }

    /// Starts `op` on export `export`'s store with `buf`; `ctx` comes back
    /// with the result, from here or from `reap`.
    pub fn start(&mut self, export: usize, op: Op, mut buf: B, ctx: C) -> Started<B, C> {
        let store = &self.stores[export];
        let bytes = buf.bytes();
        let aligned = is_direct_aligned(bytes);
        let fd = if op.is_write() {
            store.write_fd(aligned)
        } else {
            store.fd()
        };
        let len = bytes.len();
        let offset = match op {
            Op::Read { offset } | Op::Write { offset } => offset,
            Op::Flush => 0,
        };
        if op != Op::Flush && !store.extent().contains(offset, len) {
            return self.ledger.done(op, buf, ctx, Err(Cause::OutOfRange));
        }
        let group_commit = op.is_write() && store.extent().commit == Commit::Barrier;
        if op.is_write()
            && store.backend() == Backend::Buffered
            && store.extent().commit == Commit::None
        {
            // A writeback write to the page cache: done here, blocking. The
            // ring would hand it to a kernel worker thread (buffered writes
            // cannot complete inline there), which costs twice the CPU per
            // write (measured in docs/design.md).
            let result = store.file().write_all_at(buf.bytes(), offset);
            return self
                .ledger
                .done(op, buf, ctx, result.map_err(|e| Cause::of(&e)));
        }
        let in_ring = store.backend() == Backend::Buffered || aligned;
        if op != Op::Flush && !in_ring {
            return match self.bounce(export, op, offset, buf.bytes()) {
                Err(cause) => self.ledger.done(op, buf, ctx, Err(cause)),
                Ok(()) if group_commit => {
                    let group = &mut self.ledger.groups[export];
                    group.write_started();
                    group.write_completed((buf, ctx));
                    Started::Pending
                }
                Ok(()) => Started::Done(buf, ctx, Ok(())),
            };
        }
        let commit = if group_commit {
            WriteCommit::Group
        } else {
            WriteCommit::None
        };
        let token = Token::Io {
            buf,
            ctx,
            op,
            export,
            commit,
        };
        if op == Op::Flush {
            let queued = self.ring.fsync(fd, false, token);
            return self.queued(queued, export, commit);
        }
        let write = Staged { fd, offset, token };
        if group_commit {
            // The first durable write of an idle export waits for the end
            // of the batch; a second one sends both as a group.
            match self.staged[export].take() {
                None if store.extent().solo && self.ledger.groups[export].is_idle() => {
                    self.staged[export] = Some(write);
                    return Started::Pending;
                }
                None => {}
                Some(first) => {
                    if let Started::Done(buf, ctx, result) = self.push(first, export, commit) {
                        // Refused by the ring: answered by the next reap.
                        self.refused.push((buf, ctx, result));
                    }
                }
            }
        }
        self.push(write, export, commit)
    }

    /// Pushes a read or write into the ring.
    fn push(
        &mut self,
        mut w: Staged<Token<B, C>>,
        export: usize,
        commit: WriteCommit,
    ) -> Started<B, C> {
        let Token::Io { op, buf, .. } = &mut w.token else {
            unreachable!("a request's token")
        };
        let kind = match (op.is_write(), commit) {
            (false, _) => Transfer::Read,
            (true, WriteCommit::Solo) => Transfer::WriteDsync,
            (true, _) => Transfer::Write,
        };
        let bytes = buf.bytes();
        let (ptr, len) = (bytes.as_mut_ptr(), bytes.len());
        // SAFETY: B: StableBuf keeps `ptr..ptr+len` valid and ours while
        // the token lives, and the ring holds the token until the
        // operation completes (its Drop waits for that); the store's fd
        // lives as long as `self.stores`, which the ring (declared before
        // it, so dropped first) never outlives; an O_DIRECT descriptor only
        // ever gets an aligned buffer (`start` checks a direct store's,
        // `Store::write_fd` a durable file's).
        let queued = unsafe { self.ring.transfer(kind, w.fd, w.offset, ptr, len, w.token) };
        self.queued(queued, export, commit)
    }

    /// Books an operation the ring took, or answers one it refused.
    fn queued(
        &mut self,
        queued: Result<(), Token<B, C>>,
        export: usize,
        commit: WriteCommit,
    ) -> Started<B, C> {
        let group = &mut self.ledger.groups[export];
        match queued {
            Ok(()) => {
                match commit {
                    WriteCommit::Group => group.write_started(),
                    WriteCommit::Solo => group.solo_started(),
                    WriteCommit::None => {}
                }
                Started::Pending
            }
            // The ring is full or refused the entry: EBUSY.
            Err(Token::Io { buf, ctx, op, .. }) => {
                self.ledger
                    .done(op, buf, ctx, Err(Cause::Errno(libc::EBUSY)))
            }
            Err(Token::Barrier { .. }) => unreachable!("a request's token"),
        }
    }

    /// A direct store's read or write of unaligned data (an 802.1Q-tagged
    /// frame's), blocking, through the bounce buffer.
    fn bounce(
        &mut self,
        export: usize,
        op: Op,
        offset: u64,
        bytes: &mut [u8],
    ) -> Result<(), Cause> {
        let file = self.stores[export].file();
        let result = if op.is_write() {
            direct::write_bounced(file, offset, bytes, &mut self.bounce)
        } else {
            direct::read_bounced(file, offset, bytes, &mut self.bounce)
        };
        result.map_err(|e| Cause::of(&e))
    }

    /// Sends each export's staged write solo (it was the batch's only
    /// one), starts the barriers that groups want, then submits everything
    /// queued with one system call.
    pub fn submit(&mut self) {
        self.send_staged();
        self.commit(false);
        if let Err(e) = self.ring.submit() {
            log::warn!("queue {}: io_uring submit failed: {e}", self.ledger.queue);
        }
    }

    fn send_staged(&mut self) {
        for export in 0..self.staged.len() {
            if let Some(mut write) = self.staged[export].take() {
                let Token::Io { commit, .. } = &mut write.token else {
                    unreachable!("a request's token")
                };
                *commit = WriteCommit::Solo;
                if let Started::Done(buf, ctx, result) = self.push(write, export, WriteCommit::Solo)
                {
                    self.refused.push((buf, ctx, result));
                }
            }
        }
    }

    /// Queues a barrier for every export whose group is ready (`force`:
    /// every group that holds a write, at shutdown). A full ring leaves
    /// the group for the next round.
    fn commit(&mut self, force: bool) {
        for (export, group) in self.ledger.groups.iter_mut().enumerate() {
            if group.wants_barrier(force) {
                let fd = self.stores[export].fd();
                if self.ring.fsync(fd, true, Token::Barrier { export }).is_ok() {
                    group.barrier_started();
                }
            }
        }
    }

    /// Hands back every request whose storage work is finished, and starts
    /// the barriers that this made ready. Returns the completions seen.
    pub fn reap(&mut self, mut done: impl FnMut(B, C, Result<(), AtaFailure>)) -> usize {
        let mut n = self.refused.len();
        for (buf, ctx, result) in self.refused.drain(..) {
            done(buf, ctx, result);
        }
        let Self { ring, ledger, .. } = self;
        n += ring.reap(|c| ledger.complete(c, &mut done));
        if n > 0 {
            self.submit();
        }
        n
    }

    /// Waits for every operation and commits every held write, handing
    /// each request back (at shutdown).
    pub fn drain(&mut self, mut done: impl FnMut(B, C, Result<(), AtaFailure>)) -> usize {
        let mut n = 0;
        loop {
            self.send_staged();
            for (buf, ctx, result) in self.refused.drain(..) {
                n += 1;
                done(buf, ctx, result);
            }
            self.commit(true);
            if self.ring.in_flight() == 0 {
                debug_assert!(self.ledger.groups.iter().all(GroupCommit::is_idle));
                return n;
            }
            if let Err(e) = self.ring.wait() {
                log::error!(
                    "queue {}: waiting for storage I/O failed: {e}",
                    self.ledger.queue
                );
                return n;
            }
            let Self { ring, ledger, .. } = self;
            n += ring.reap(|c| ledger.complete(c, &mut done));
        }
    }
}

impl<B, C> Ledger<B, C> {
    fn done(&mut self, op: Op, buf: B, ctx: C, result: Result<(), Cause>) -> Started<B, C> {
        let result = result.map_err(|cause| self.failed(op.name(), ata_failure(op, cause), cause));
        Started::Done(buf, ctx, result)
    }

    /// Counts and logs a failure (at power-of-two counts, so a failing
    /// disk cannot flood the log) and returns its ATA error.
    fn failed(&mut self, what: &str, failure: AtaFailure, cause: Cause) -> AtaFailure {
        self.io_errors += 1;
        if self.io_errors.is_power_of_two() {
            log::warn!(
                "queue {}: storage I/O failed: {what} ({cause}), answered with ATA {failure:?}; {} failure(s) so far",
                self.queue,
                self.io_errors
            );
        }
        failure
    }

    /// One completion: a request's operation (answered now, or held for
    /// its group commit), or a barrier (which answers its whole group).
    fn complete(
        &mut self,
        c: Completion<Token<B, C>>,
        done: &mut impl FnMut(B, C, Result<(), AtaFailure>),
    ) {
        let result = match usize::try_from(c.res) {
            Ok(moved) if moved == c.expected => Ok(()),
            Ok(moved) => Err(Cause::Short {
                done: moved,
                wanted: c.expected,
            }),
            Err(_) => Err(Cause::Errno(-c.res)),
        };
        match c.token {
            Token::Io {
                buf,
                ctx,
                op,
                export,
                commit,
            } => {
                match (commit, result) {
                    (WriteCommit::Group, Ok(())) => {
                        return self.groups[export].write_completed((buf, ctx))
                    }
                    (WriteCommit::Group, Err(_)) => self.groups[export].write_failed(),
                    (WriteCommit::Solo, _) => {
                        self.solo_writes += 1;
                        self.groups[export].solo_done();
                    }
                    (WriteCommit::None, _) => {}
                }
                let result =
                    result.map_err(|cause| self.failed(op.name(), ata_failure(op, cause), cause));
                done(buf, ctx, result);
            }
            Token::Barrier { export } => {
                self.barriers += 1;
                let result = result.map_err(|cause| {
                    // One line for the group; each write counts as failed.
                    let failure = ata_failure(Op::Write { offset: 0 }, cause);
                    self.io_errors += self.groups[export].covered_len() as u64;
                    log::warn!(
                        "queue {}: storage I/O failed: group commit (fdatasync: {cause}), {} write(s) answered with ATA {failure:?}",
                        self.queue,
                        self.groups[export].covered_len()
                    );
                    failure
                });
                for (buf, ctx) in self.groups[export].barrier_done() {
                    done(buf, ctx, result);
                }
            }
        }
    }
}
