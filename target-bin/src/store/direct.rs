//! The direct backend: an O_DIRECT file descriptor. Requests whose data is
//! 512-byte aligned go through the worker's io_uring (`ring.rs`) straight
//! into and out of the UMEM frame; the rest (802.1Q-tagged frames) through
//! a blocking pread/pwrite on an aligned bounce buffer.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;

use anyhow::{bail, Result};

use super::aligned::{AlignedBuf, DIRECT_ALIGN};
use super::Extent;

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

    pub(super) fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Blocking read through the bounce buffer.
    pub fn read_bounced(
        &self,
        offset: u64,
        dst: &mut [u8],
        bounce: &mut AlignedBuf,
    ) -> io::Result<()> {
        let tmp = bounce_slice(bounce, dst.len())?;
        self.file.read_exact_at(tmp, offset)?;
        dst.copy_from_slice(tmp);
        Ok(())
    }

    /// Blocking write through the bounce buffer.
    pub fn write_bounced(
        &self,
        offset: u64,
        src: &[u8],
        bounce: &mut AlignedBuf,
    ) -> io::Result<()> {
        let tmp = bounce_slice(bounce, src.len())?;
        tmp.copy_from_slice(src);
        self.file.write_all_at(tmp, offset)
    }

    /// fsync: completed writes (and a sparse file's new blocks) durable.
    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_all()
    }
}

fn bounce_slice(bounce: &mut AlignedBuf, len: usize) -> io::Result<&mut [u8]> {
    bounce
        .as_mut_slice()
        .get_mut(..len)
        .ok_or_else(|| io::Error::other("request larger than the bounce buffer"))
}
