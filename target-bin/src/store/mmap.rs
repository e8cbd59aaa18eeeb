//! The mmap backend: a shared mapping of the whole export.

use std::fs::File;
use std::io;

use aoe_proto::{AtaFailure, SECTOR_SIZE};
use memmap2::{MmapOptions, MmapRaw};

/// Workers on several queues read and write the mapping at once; it is
/// shared memory (like a device's), and AoE gives no ordering between
/// overlapping requests in flight.
#[derive(Debug)]
pub struct MmapStore {
    map: MmapRaw,
    /// Bytes the initiator may address: whole sectors only.
    len: u64,
    kind: &'static str,
    sync: bool,
}

/// msync needs page-aligned addresses.
const PAGE: u64 = 4096;

impl MmapStore {
    pub fn new(
        file: &File,
        len: u64,
        kind: &'static str,
        read_only: bool,
        sync: bool,
    ) -> io::Result<Self> {
        let mut opts = MmapOptions::new();
        opts.len(
            usize::try_from(len)
                .map_err(|_| io::Error::other("export larger than the address space"))?,
        );
        let map = if read_only {
            opts.map_raw_read_only(file)
        } else {
            opts.map_raw(file)
        }?;
        Ok(Self {
            map,
            len,
            kind,
            sync,
        })
    }

    pub fn sectors(&self) -> u64 {
        self.len / SECTOR_SIZE as u64
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn sync(&self) -> bool {
        self.sync
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
        if self.sync {
            // Durable before acknowledged: write back the touched pages.
            let start = offset - offset % PAGE;
            let end = (offset + src.len() as u64).min(self.len);
            self.map
                .flush_range(start as usize, (end - start) as usize)
                .map_err(|_| AtaFailure::WriteError)?;
        }
        Ok(())
    }

    /// Writes dirty pages back and waits (msync MS_SYNC, which for a block
    /// device also flushes the device's write cache).
    pub fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }
}
