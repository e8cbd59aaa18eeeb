//! Backing stores. Every export is a file descriptor, served through the
//! worker's io_uring, so that a failure (EIO, ENOSPC) comes back as a
//! result for that request, never as a signal:
//! - `buffered`: the page cache. Default for regular files.
//! - `direct`: O_DIRECT, straight into and out of the UMEM frame. Default
//!   for block devices.
//!
//! And every export is `durable` (the default) or `writeback`: see
//! `Durability` and docs/durability.md.
//!
//! `context.rs` is where a worker's request meets its store: one
//! `StoreContext` per worker decides the path, owns the ring and the bounce
//! buffer, holds durable writes until their group commit (`commit.rs`),
//! and maps and counts every failure.

mod aligned;
mod commit;
mod context;
mod direct;
mod ring;

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use aoe_proto::SECTOR_SIZE;

pub use context::{Op, StableBuf, Started, StoreContext};

/// How an export's data reaches its file or device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The page cache, through io_uring reads and writes.
    Buffered,
    /// O_DIRECT through io_uring, from and into the frame itself.
    Direct,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Buffered => "buffered",
            Backend::Direct => "direct",
        }
    }
}

/// What an acknowledged write promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage, with the metadata needed to read it back, before
    /// its acknowledgement leaves (group commit). The default.
    Durable,
    /// Acknowledged when the write completes: in the page cache (buffered)
    /// or the device's volatile cache (direct); lost on a power cut until
    /// written back or flushed.
    Writeback,
}

impl Durability {
    pub fn name(self) -> &'static str {
        match self {
            Durability::Durable => "durable",
            Durability::Writeback => "writeback",
        }
    }
}

/// How an export is opened.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptionsSpec {
    pub read_only: bool,
    /// `None`: by kind (block device -> direct, file -> buffered).
    pub backend: Option<Backend>,
    pub durability: Durability,
}

/// How a completed write becomes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Writeback: acknowledged as soon as it completes.
    None,
    /// Durable: an fdatasync after the write, shared by every write the
    /// worker holds for the export at the time (group commit).
    Barrier,
    /// Durable, and the write's own completion already is: O_DIRECT to a
    /// block device without a volatile write cache.
    OnCompletion,
}

/// What every backend knows of its export: how many bytes an initiator may
/// address (whole sectors), what it is, and how a write becomes durable.
#[derive(Debug, Clone, Copy)]
pub struct Extent {
    pub len: u64,
    pub kind: &'static str,
    pub durability: Durability,
    pub commit: Commit,
    /// A durable write that finds the export idle goes alone as one
    /// RWF_DSYNC write: only on block devices. On a filesystem, an O_DIRECT
    /// RWF_DSYNC write finishes its sync in a kernel worker on whichever
    /// core took the disk's interrupt, and waits a whole scheduler tick
    /// (4 ms measured) when that core is busy; a write and a barrier stay
    /// on the worker's own cores (docs/design.md).
    pub solo: bool,
}

impl Extent {
    pub fn sectors(&self) -> u64 {
        self.len / SECTOR_SIZE as u64
    }

    /// No request may touch bytes outside the export: checked here again,
    /// with checked arithmetic, below the protocol core's own check.
    pub fn contains(&self, offset: u64, len: usize) -> bool {
        offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= self.len)
    }
}

#[derive(Debug)]
pub struct Store {
    file: File,
    /// A durable `buffered` file's second descriptor, O_DIRECT, for its
    /// writes: reads stay in the page cache, while a durable write costs
    /// one device write and not a page-cache copy plus its writeback
    /// (measured in docs/design.md). `None` where the filesystem has no
    /// O_DIRECT (tmpfs).
    direct_writes: Option<File>,
    backend: Backend,
    extent: Extent,
}

impl Store {
    pub fn open(path: &Path, opts: OpenOptionsSpec) -> Result<Self> {
        let mut probe =
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let (size, kind) = size_of(&mut probe).with_context(|| format!("{}", path.display()))?;
        let len = size - size % SECTOR_SIZE as u64;
        if len == 0 {
            bail!(
                "{} is smaller than one 512-byte sector ({size} bytes)",
                path.display()
            );
        }
        let backend = opts.backend.unwrap_or(match kind {
            Kind::BlockDevice => Backend::Direct,
            Kind::File => Backend::Buffered,
        });
        let commit = match opts.durability {
            Durability::Writeback => Commit::None,
            Durability::Durable
                if backend == Backend::Direct
                    && kind == Kind::BlockDevice
                    && !has_volatile_cache(&probe) =>
            {
                Commit::OnCompletion
            }
            Durability::Durable => Commit::Barrier,
        };
        drop(probe);
        let mut open = OpenOptions::new();
        open.read(true).write(!opts.read_only);
        if backend == Backend::Direct {
            open.custom_flags(libc::O_DIRECT);
        }
        let file = open
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if backend == Backend::Direct {
            direct::check_alignment(&file).with_context(|| format!("{}", path.display()))?;
        }
        let direct_writes =
            (backend == Backend::Buffered && commit == Commit::Barrier && !opts.read_only)
                .then(|| open_direct_writes(path))
                .flatten();
        let extent = Extent {
            len,
            kind: kind.name(),
            durability: opts.durability,
            commit,
            solo: kind == Kind::BlockDevice,
        };
        Ok(Self {
            file,
            direct_writes,
            backend,
            extent,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn extent(&self) -> &Extent {
        &self.extent
    }

    pub fn sectors(&self) -> u64 {
        self.extent.sectors()
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// The descriptor for a write: the O_DIRECT one where the store has it
    /// and the data is `aligned` for it.
    pub(crate) fn write_fd(&self, aligned: bool) -> RawFd {
        match &self.direct_writes {
            Some(direct) if aligned => direct.as_raw_fd(),
            _ => self.fd(),
        }
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// e.g. "block device, direct, durable (no volatile write cache)", for
    /// the log.
    pub fn describe(&self) -> String {
        let how = match self.extent.commit {
            Commit::None => "",
            Commit::Barrier if self.direct_writes.is_some() => " (writes O_DIRECT, group commit)",
            Commit::Barrier => " (group commit)",
            Commit::OnCompletion => " (no volatile write cache: O_DIRECT completion is durable)",
        };
        format!(
            "{}, {}, {}{how}",
            self.extent.kind,
            self.backend.name(),
            self.extent.durability.name()
        )
    }

    /// Makes every completed write durable (blocking; used at shutdown).
    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_all()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    BlockDevice,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::BlockDevice => "block device",
        }
    }
}

/// Size in bytes of a regular file or a block device (a block device's
/// size is where a seek to its end lands).
fn size_of(file: &mut File) -> Result<(u64, Kind)> {
    let ft = file.metadata()?.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_block_device() {
        Kind::BlockDevice
    } else {
        bail!("not a regular file or a block device")
    };
    let size = file.seek(SeekFrom::End(0)).context("finding the size")?;
    Ok((size, kind))
}

/// The O_DIRECT write descriptor of a durable file, if its filesystem
/// takes 512-byte O_DIRECT I/O (the probe is the direct backend's).
fn open_direct_writes(path: &Path) -> Option<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()?;
    direct::check_alignment(&file).ok()?;
    Some(file)
}

/// Whether a block device may hold completed writes in a volatile cache
/// (its queue's write_cache is "write back"). When that cannot be read,
/// assume it does: a needless barrier costs time, a missing one data.
fn has_volatile_cache(device: &File) -> bool {
    let Ok(meta) = device.metadata() else {
        return true;
    };
    let rdev = meta.rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    // A partition's queue is its disk's: /sys/dev/block/M:m/../queue.
    let base = format!("/sys/dev/block/{major}:{minor}");
    ["queue/write_cache", "../queue/write_cache"]
        .iter()
        .find_map(|p| std::fs::read_to_string(format!("{base}/{p}")).ok())
        .is_none_or(|mode| mode.trim() != "write through")
}

#[cfg(test)]
mod tests;
