//! Backing stores. Two backends serve an export:
//! - `mmap`: a shared memory map; reads and writes are copies between the
//!   map and the frame, FLUSH is msync. Default for regular files.
//! - `direct`: O_DIRECT I/O through the worker's io_uring, straight into and
//!   out of the UMEM frame; FLUSH is fsync. Default for block devices.
//!
//! `context.rs` is where a worker's request meets its store: one
//! `StoreContext` per worker decides the path, owns the ring and the bounce
//! buffer, and maps and counts every failure.

mod aligned;
mod context;
mod direct;
mod mmap;
mod ring;

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use aoe_proto::SECTOR_SIZE;

pub use context::{Op, StableBuf, Started, StoreContext};
pub use direct::DirectStore;
pub use mmap::MmapStore;

/// Which backend serves an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Mmap,
    Direct,
}

/// How an export is opened.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptionsSpec {
    pub read_only: bool,
    /// `None`: by kind (block device -> direct, file -> mmap).
    pub backend: Option<Backend>,
    /// Every write durable before it is acknowledged (O_DSYNC / msync).
    pub sync: bool,
}

/// What every backend knows of its export: how many bytes an initiator may
/// address (whole sectors), what it is, and whether writes are synchronous.
#[derive(Debug, Clone, Copy)]
pub struct Extent {
    pub len: u64,
    pub kind: &'static str,
    pub sync: bool,
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
pub enum Store {
    Mmap(MmapStore),
    Direct(DirectStore),
}

impl Store {
    pub fn open(path: &Path, opts: OpenOptionsSpec) -> Result<Self> {
        let mut probe =
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let (size, kind) = size_of(&mut probe).with_context(|| format!("{}", path.display()))?;
        drop(probe);
        let len = size - size % SECTOR_SIZE as u64;
        if len == 0 {
            bail!(
                "{} is smaller than one 512-byte sector ({size} bytes)",
                path.display()
            );
        }
        let backend = opts.backend.unwrap_or(match kind {
            Kind::BlockDevice => Backend::Direct,
            Kind::File => Backend::Mmap,
        });
        let mut open = OpenOptions::new();
        open.read(true).write(!opts.read_only);
        if backend == Backend::Direct {
            open.custom_flags(libc::O_DIRECT | if opts.sync { libc::O_DSYNC } else { 0 });
        }
        let file = open
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let extent = Extent {
            len,
            kind: kind.name(),
            sync: opts.sync,
        };
        Ok(match backend {
            Backend::Mmap => Store::Mmap(
                MmapStore::new(&file, extent, opts.read_only)
                    .with_context(|| format!("cannot map {}", path.display()))?,
            ),
            Backend::Direct => Store::Direct(
                DirectStore::new(file, extent).with_context(|| format!("{}", path.display()))?,
            ),
        })
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Mmap(_) => Backend::Mmap,
            Store::Direct(_) => Backend::Direct,
        }
    }

    pub fn extent(&self) -> &Extent {
        match self {
            Store::Mmap(s) => &s.extent,
            Store::Direct(s) => &s.extent,
        }
    }

    pub fn sectors(&self) -> u64 {
        self.extent().sectors()
    }

    /// e.g. "block device, direct" or "file, mmap, sync", for the log.
    pub fn describe(&self) -> String {
        let backend = match self {
            Store::Mmap(_) => "mmap",
            Store::Direct(_) => "direct",
        };
        let Extent { kind, sync, .. } = *self.extent();
        format!("{kind}, {backend}{}", if sync { ", sync" } else { "" })
    }

    /// Makes every completed write durable (blocking; used at shutdown).
    pub fn flush(&self) -> io::Result<()> {
        match self {
            Store::Mmap(s) => s.flush(),
            Store::Direct(s) => s.flush(),
        }
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

#[cfg(test)]
mod tests;
