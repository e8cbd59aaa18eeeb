//! The mmap backend: a shared mapping of the whole export.

use std::fs::File;
use std::io;

use memmap2::{MmapOptions, MmapRaw};

use super::Extent;

/// Workers on several queues read and write the mapping at once; it is
/// shared memory (like a device's), and AoE gives no ordering between
/// overlapping requests in flight.
#[derive(Debug)]
pub struct MmapStore {
    map: MmapRaw,
    pub(super) extent: Extent,
}

impl MmapStore {
    pub fn new(file: &File, extent: Extent, read_only: bool) -> io::Result<Self> {
        let len = usize::try_from(extent.len)
            .map_err(|_| io::Error::other("export larger than the address space"))?;
        let mut opts = MmapOptions::new();
        opts.len(len);
        let map = if read_only {
            opts.map_raw_read_only(file)
        } else {
            opts.map_raw(file)
        }?;
        Ok(Self { map, extent })
    }

    /// The mapped range for `len` bytes at `offset`; the caller has checked
    /// it against the extent (`Extent::contains`).
    fn at(&self, offset: u64, len: usize) -> *mut u8 {
        assert!(self.extent.contains(offset, len), "checked by the caller");
        // SAFETY: offset + len <= extent.len, the mapping's length, so the
        // pointer stays inside the mapping.
        unsafe { self.map.as_mut_ptr().add(offset as usize) }
    }

    pub fn read(&self, offset: u64, dst: &mut [u8]) {
        let src = self.at(offset, dst.len());
        // SAFETY: `src..src+len` lies inside the live mapping (checked by
        // `at`), and `dst` is a frame buffer that cannot overlap it.
        unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
    }

    /// Copies into the mapping; with `sync`, writes the touched pages back
    /// before returning.
    pub fn write(&self, offset: u64, src: &[u8]) -> io::Result<()> {
        let dst = self.at(offset, src.len());
        // SAFETY: as in `read`; the mapping is writable because read-only
        // exports never get here (the protocol core refuses their writes).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        if self.extent.sync {
            // flush_range rounds out to page boundaries itself.
            self.map.flush_range(offset as usize, src.len())?;
        }
        Ok(())
    }

    /// Writes dirty pages back and waits (msync MS_SYNC, which for a block
    /// device also flushes the device's write cache).
    pub fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }
}
