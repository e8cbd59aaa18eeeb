//! Backing stores. A memory-mapped file or block device: reads and writes
//! are copies between the mapping and the frame; FLUSH CACHE is msync.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use aoe_proto::{AtaFailure, SECTOR_SIZE};
use memmap2::{MmapOptions, MmapRaw};

/// A shared mapping of the whole export. Workers on several queues read
/// and write it at once; the mapping is shared memory (like a device's),
/// and AoE gives no ordering between overlapping requests in flight.
#[derive(Debug)]
pub struct MmapStore {
    map: MmapRaw,
    /// Bytes the initiator may address: whole sectors only.
    len: u64,
    kind: &'static str,
}

impl MmapStore {
    pub fn open(path: &Path, read_only: bool) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let (size, kind) = size_of(&file).with_context(|| format!("{}", path.display()))?;
        let len = size - size % SECTOR_SIZE as u64;
        if len == 0 {
            bail!(
                "{} is smaller than one 512-byte sector ({size} bytes)",
                path.display()
            );
        }
        let mut opts = MmapOptions::new();
        opts.len(usize::try_from(len).context("export larger than the address space")?);
        let map = if read_only {
            opts.map_raw_read_only(&file)
        } else {
            opts.map_raw(&file)
        }
        .with_context(|| format!("cannot map {}", path.display()))?;
        Ok(Self { map, len, kind })
    }

    pub fn sectors(&self) -> u64 {
        self.len / SECTOR_SIZE as u64
    }

    /// "block device" or "file", for the log.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The mapped range for `len` bytes at `offset`, checked again here so
    /// that no request can touch memory outside the export.
    fn range(&self, offset: u64, len: usize) -> Option<*mut u8> {
        let end = offset.checked_add(len as u64)?;
        if end > self.len {
            return None;
        }
        // SAFETY: offset + len <= self.len, the mapping's length, so the
        // pointer stays inside the mapping.
        Some(unsafe { self.map.as_mut_ptr().add(offset as usize) })
    }

    pub fn read(&self, offset: u64, dst: &mut [u8]) -> Result<(), AtaFailure> {
        let src = self.range(offset, dst.len()).ok_or(AtaFailure::ReadError)?;
        // SAFETY: `src..src+len` lies inside the live mapping (checked by
        // `range`), and `dst` is a frame buffer that cannot overlap it.
        unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    pub fn write(&self, offset: u64, src: &[u8]) -> Result<(), AtaFailure> {
        let dst = self
            .range(offset, src.len())
            .ok_or(AtaFailure::WriteError)?;
        // SAFETY: as in `read`; the mapping is writable because read-only
        // exports never get here (the protocol core refuses their writes).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        Ok(())
    }

    /// Writes dirty pages back and waits (msync MS_SYNC, which for a block
    /// device also flushes the device's write cache).
    pub fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }
}

/// Size in bytes of a regular file or a block device.
fn size_of(file: &File) -> Result<(u64, &'static str)> {
    let meta = file.metadata()?;
    let ft = meta.file_type();
    if ft.is_file() {
        Ok((meta.len(), "file"))
    } else if ft.is_block_device() {
        let mut size: u64 = 0;
        // BLKGETSIZE64 = _IOR(0x12, 114, size_t)
        const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
        // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which
        // points at a live local.
        let rc = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(file),
                BLKGETSIZE64,
                &mut size,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error()).context("BLKGETSIZE64");
        }
        Ok((size, "block device"))
    } else {
        bail!("not a regular file or a block device")
    }
}
