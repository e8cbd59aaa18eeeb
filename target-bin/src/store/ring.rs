//! One worker's io_uring for every store. Each operation carries a
//! token (the frame it reads into or writes from, and what to reply),
//! which the ring holds in a slot until the operation completes.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, RawFd};

use io_uring::{opcode, squeue, types, IoUring};
use nix::sys::eventfd::{EfdFlags, EventFd};

/// What one in-flight operation expects back.
struct Slot<T> {
    token: T,
    /// Bytes a read or write must transfer; 0 for fsync.
    len: usize,
}

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Read,
    Write,
    /// A write that completes only once it is durable (as with O_DSYNC).
    WriteDsync,
}

/// How an operation ended: `res` is the kernel's result (bytes, or -errno).
pub struct Completion<T> {
    pub token: T,
    pub res: i32,
    pub expected: usize,
}

pub struct DirectRing<T> {
    ring: IoUring,
    /// Signalled by the kernel on every completion, so an idle worker can
    /// sleep in poll() on its socket and this together.
    eventfd: EventFd,
    slots: Vec<Option<Slot<T>>>,
    free_slots: Vec<u32>,
    in_flight: usize,
}

impl<T> DirectRing<T> {
    /// A ring that can hold `capacity` operations in flight.
    pub fn new(capacity: u32) -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_cqsize(capacity * 2)
            .build(capacity)?;
        let eventfd =
            EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        ring.submitter()
            .register_eventfd(std::os::fd::AsRawFd::as_raw_fd(&eventfd))?;
        Ok(Self {
            ring,
            eventfd,
            slots: (0..capacity).map(|_| None).collect(),
            free_slots: (0..capacity).rev().collect(),
            in_flight: 0,
        })
    }

    pub fn eventfd(&self) -> BorrowedFd<'_> {
        self.eventfd.as_fd()
    }

    /// Empties the eventfd after a wake-up.
    pub fn clear_event(&self) {
        let _ = self.eventfd.read(); // EAGAIN when already empty
    }

    /// Queues a read of `len` bytes at `offset` of `fd` into `buf`, or a
    /// write from it.
    ///
    /// # Safety
    /// `buf..buf+len` must stay valid, and untouched by anyone else, until
    /// this operation's token comes back from `reap` (or the ring is
    /// dropped); `fd` must stay open as long; if `fd` is O_DIRECT, `buf`
    /// and `len` must suit it.
    pub unsafe fn transfer(
        &mut self,
        kind: Transfer,
        fd: RawFd,
        offset: u64,
        buf: *mut u8,
        len: usize,
        token: T,
    ) -> Result<(), T> {
        let (fd, n) = (types::Fd(fd), len as u32);
        let entry = match kind {
            Transfer::Read => opcode::Read::new(fd, buf, n).offset(offset).build(),
            Transfer::Write => opcode::Write::new(fd, buf, n).offset(offset).build(),
            Transfer::WriteDsync => opcode::Write::new(fd, buf, n)
                .offset(offset)
                .rw_flags(libc::RWF_DSYNC)
                .build(),
        };
        // SAFETY: the caller's promise covers the entry's buffer.
        unsafe { self.push(entry, token, len) }
    }

    /// Queues an fsync of `fd` (`data_only`: fdatasync), which must stay
    /// open until it completes.
    pub fn fsync(&mut self, fd: RawFd, data_only: bool, token: T) -> Result<(), T> {
        let mut fsync = opcode::Fsync::new(types::Fd(fd));
        if data_only {
            fsync = fsync.flags(types::FsyncFlags::DATASYNC);
        }
        let entry = fsync.build();
        // SAFETY: fsync touches no user memory.
        unsafe { self.push(entry, token, 0) }
    }

    /// # Safety
    /// Any buffer `entry` names must stay valid until its completion.
    unsafe fn push(&mut self, entry: squeue::Entry, token: T, len: usize) -> Result<(), T> {
        let Some(slot) = self.free_slots.pop() else {
            return Err(token);
        };
        let entry = entry.user_data(slot as u64);
        // SAFETY: the caller's promise; the slot keeps the token (and so
        // the buffer's owner) until completion.
        let pushed = unsafe { self.ring.submission().push(&entry) }.is_ok()
            || (self.ring.submit().is_ok()
                // SAFETY: as above.
                && unsafe { self.ring.submission().push(&entry) }.is_ok());
        if !pushed {
            self.free_slots.push(slot);
            return Err(token);
        }
        self.slots[slot as usize] = Some(Slot { token, len });
        self.in_flight += 1;
        Ok(())
    }

    /// Submits everything queued with one system call.
    pub fn submit(&mut self) -> io::Result<()> {
        if !self.ring.submission().is_empty() {
            self.ring.submit()?;
        }
        Ok(())
    }

    /// Hands every finished operation back.
    pub fn reap(&mut self, mut done: impl FnMut(Completion<T>)) -> usize {
        let mut n = 0;
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            let slot = cqe.user_data() as usize;
            let Some(Slot { token, len }) = self.slots.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            self.free_slots.push(slot as u32);
            self.in_flight -= 1;
            n += 1;
            done(Completion {
                token,
                res: cqe.result(),
                expected: len,
            });
        }
        n
    }

    /// Operations submitted or queued, not yet reaped.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Submits whatever is queued and waits for at least one completion.
    pub fn wait(&mut self) -> io::Result<()> {
        match self.ring.submit_and_wait(1) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Submits whatever is queued and waits until every operation has
    /// completed, handing each back. Re-submits on every round, so an
    /// earlier failed submit cannot leave it waiting forever.
    pub fn drain(&mut self, mut done: impl FnMut(Completion<T>)) -> io::Result<()> {
        while self.in_flight > 0 {
            self.wait()?;
            self.reap(&mut done);
        }
        Ok(())
    }
}

impl<T> Drop for DirectRing<T> {
    /// Waits for the kernel to finish with every buffer still in flight
    /// before the tokens that own them are dropped.
    fn drop(&mut self) {
        if let Err(e) = self.drain(drop) {
            log::error!(
                "io_uring: cannot wait for {} operation(s) in flight: {e}; keeping their buffers",
                self.in_flight
            );
            // The kernel may still write into those buffers: never free them.
            for slot in self.slots.drain(..) {
                std::mem::forget(slot);
            }
        }
    }
}
