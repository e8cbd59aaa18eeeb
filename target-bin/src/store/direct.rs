//! The direct backend: O_DIRECT file descriptors driven by one io_uring per
//! worker. Reads land straight in the UMEM frame that will be sent; writes
//! leave straight from the frame that was received. A whole RX batch is
//! submitted with one system call and completions are reaped in batches.

use std::alloc::{self, Layout};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;

use anyhow::{bail, Result};
use aoe_proto::{AtaFailure, SECTOR_SIZE};
use io_uring::{opcode, squeue, types, IoUring};

use super::Extent;

/// O_DIRECT buffers, offsets and lengths are multiples of this.
pub const DIRECT_ALIGN: usize = SECTOR_SIZE;

#[derive(Debug)]
pub struct DirectStore {
    file: File,
    pub(super) extent: Extent,
}

impl DirectStore {
    /// `file` was opened with O_DIRECT (and O_DSYNC if `extent.sync`).
    pub fn new(file: File, extent: Extent) -> Result<Self> {
        // O_DIRECT alignment rules vary by filesystem and device: probe
        // one sector-sized read, so a store that needs more than 512-byte
        // alignment fails here, with advice, rather than on every request.
        let mut probe = AlignedBuf::new(DIRECT_ALIGN);
        if let Err(e) = file.read_at(probe.as_mut_slice(), 0) {
            if e.raw_os_error() == Some(libc::EINVAL) {
                bail!("does not support 512-byte O_DIRECT I/O (use the ,mmap export option)");
            }
            bail!("O_DIRECT read failed: {e}");
        }
        Ok(Self { file, extent })
    }

    /// Blocking read through an aligned bounce buffer, for frames whose data
    /// is not 512-byte aligned (802.1Q-tagged requests).
    pub fn read_bounced(
        &self,
        offset: u64,
        dst: &mut [u8],
        bounce: &mut AlignedBuf,
    ) -> Result<(), AtaFailure> {
        let tmp = bounce
            .as_mut_slice()
            .get_mut(..dst.len())
            .ok_or(AtaFailure::ReadError)?;
        if !self.extent.contains(offset, dst.len()) || self.file.read_exact_at(tmp, offset).is_err()
        {
            return Err(AtaFailure::ReadError);
        }
        dst.copy_from_slice(tmp);
        Ok(())
    }

    /// Blocking write through an aligned bounce buffer (see `read_bounced`).
    pub fn write_bounced(
        &self,
        offset: u64,
        src: &[u8],
        bounce: &mut AlignedBuf,
    ) -> Result<(), AtaFailure> {
        let tmp = bounce
            .as_mut_slice()
            .get_mut(..src.len())
            .ok_or(AtaFailure::WriteError)?;
        tmp.copy_from_slice(src);
        if !self.extent.contains(offset, src.len()) || self.file.write_all_at(tmp, offset).is_err()
        {
            return Err(AtaFailure::WriteError);
        }
        Ok(())
    }

    /// fsync: completed writes (and a sparse file's new blocks) durable.
    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// A heap buffer aligned for O_DIRECT, allocated once per worker.
pub struct AlignedBuf {
    ptr: *mut u8,
    layout: Layout,
}

impl AlignedBuf {
    pub fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len.max(1), 4096).expect("valid layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            alloc::handle_alloc_error(layout);
        }
        Self { ptr, layout }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live allocation of `layout.size()` bytes owned
        // by self, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { alloc::dealloc(self.ptr, self.layout) };
    }
}

// SAFETY: AlignedBuf owns its allocation exclusively, like a Box<[u8]>.
unsafe impl Send for AlignedBuf {}

/// What one in-flight operation expects back.
struct Slot<T> {
    token: T,
    /// Bytes a read or write must transfer; 0 for fsync.
    len: usize,
    failure: AtaFailure,
}

/// One worker's io_uring. `T` is the caller's token for an operation (the
/// frame and its reply), handed back with the outcome on completion.
pub struct DirectRing<T> {
    ring: IoUring,
    /// Signalled by the kernel on every completion, so an idle worker can
    /// sleep in poll() on its socket and this together.
    eventfd: OwnedFd,
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
        // SAFETY: eventfd has no memory-safety preconditions.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
        ring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        Ok(Self {
            ring,
            eventfd,
            slots: (0..capacity).map(|_| None).collect(),
            free_slots: (0..capacity).rev().collect(),
            in_flight: 0,
        })
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn eventfd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    /// Empties the eventfd after a wake-up.
    pub fn clear_event(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live local buffer.
        let _ = unsafe { libc::read(self.eventfd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
    }

    /// Queues a read of `len` bytes at `offset` into `buf`.
    ///
    /// # Safety
    /// `buf..buf+len` must stay valid, and untouched by anyone else, until
    /// this operation's completion is handed back; `len` and `buf` must be
    /// multiples of 512 / 512-aligned.
    pub unsafe fn read(
        &mut self,
        store: &DirectStore,
        offset: u64,
        buf: *mut u8,
        len: usize,
        token: T,
    ) -> Result<(), (T, AtaFailure)> {
        if !store.extent.contains(offset, len) {
            return Err((token, AtaFailure::ReadError));
        }
        let fd = types::Fd(store.file.as_raw_fd());
        let entry = opcode::Read::new(fd, buf, len as u32)
            .offset(offset)
            .build();
        self.push(entry, token, len, AtaFailure::ReadError)
    }

    /// Queues a write of `len` bytes at `offset` from `buf`.
    ///
    /// # Safety
    /// As for `read`.
    pub unsafe fn write(
        &mut self,
        store: &DirectStore,
        offset: u64,
        buf: *const u8,
        len: usize,
        token: T,
    ) -> Result<(), (T, AtaFailure)> {
        if !store.extent.contains(offset, len) {
            return Err((token, AtaFailure::WriteError));
        }
        let fd = types::Fd(store.file.as_raw_fd());
        let entry = opcode::Write::new(fd, buf, len as u32)
            .offset(offset)
            .build();
        self.push(entry, token, len, AtaFailure::WriteError)
    }

    /// Queues an fsync of the store.
    pub fn fsync(&mut self, store: &DirectStore, token: T) -> Result<(), (T, AtaFailure)> {
        let fd = types::Fd(store.file.as_raw_fd());
        let entry = opcode::Fsync::new(fd).build();
        self.push(entry, token, 0, AtaFailure::WriteError)
    }

    fn push(
        &mut self,
        entry: squeue::Entry,
        token: T,
        len: usize,
        failure: AtaFailure,
    ) -> Result<(), (T, AtaFailure)> {
        let Some(slot) = self.free_slots.pop() else {
            return Err((token, failure));
        };
        let entry = entry.user_data(slot as u64);
        // SAFETY: the entry's buffer validity is the caller's promise (see
        // `read`/`write`); the slot keeps the token until completion.
        let pushed = unsafe { self.ring.submission().push(&entry) }.is_ok()
            || (self.ring.submit().is_ok()
                // SAFETY: as above.
                && unsafe { self.ring.submission().push(&entry) }.is_ok());
        if !pushed {
            self.free_slots.push(slot);
            return Err((token, failure));
        }
        self.slots[slot as usize] = Some(Slot {
            token,
            len,
            failure,
        });
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

    /// Hands every finished operation back with its outcome; a short
    /// transfer, EIO or ENOSPC is a failure of that request only.
    pub fn reap(&mut self, mut done: impl FnMut(T, Result<(), AtaFailure>, i32)) -> usize {
        let mut n = 0;
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            let slot = cqe.user_data() as usize;
            let Some(Slot {
                token,
                len,
                failure,
            }) = self.slots.get_mut(slot).and_then(Option::take)
            else {
                continue;
            };
            self.free_slots.push(slot as u32);
            self.in_flight -= 1;
            n += 1;
            let res = cqe.result();
            let ok = res >= 0 && res as usize == len;
            done(token, if ok { Ok(()) } else { Err(failure) }, res);
        }
        n
    }
}
