//! What O_DIRECT asks beyond the ring: a start-up check of its alignment
//! rules, and the bounce path for data that is not 512-byte aligned
//! (802.1Q-tagged frames), through a blocking pread/pwrite.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use anyhow::{bail, Result};

use super::aligned::{AlignedBuf, DIRECT_ALIGN};

/// O_DIRECT alignment rules vary by filesystem and device: probe one
/// sector-sized read, so a store that needs more than 512-byte alignment
/// fails at start, with advice, rather than on every request.
pub fn check_alignment(file: &File) -> Result<()> {
    let mut probe = AlignedBuf::new(DIRECT_ALIGN);
    if let Err(e) = file.read_at(probe.as_mut_slice(), 0) {
        if e.raw_os_error() == Some(libc::EINVAL) {
            bail!("does not support 512-byte O_DIRECT I/O (use the ,buffered export option)");
        }
        bail!("O_DIRECT read failed: {e}");
    }
    Ok(())
}

/// Blocking read through the bounce buffer.
pub fn read_bounced(
    file: &File,
    offset: u64,
    dst: &mut [u8],
    bounce: &mut AlignedBuf,
) -> io::Result<()> {
    let tmp = bounce_slice(bounce, dst.len())?;
    file.read_exact_at(tmp, offset)?;
    dst.copy_from_slice(tmp);
    Ok(())
}

/// Blocking write through the bounce buffer.
pub fn write_bounced(
    file: &File,
    offset: u64,
    src: &[u8],
    bounce: &mut AlignedBuf,
) -> io::Result<()> {
    let tmp = bounce_slice(bounce, src.len())?;
    tmp.copy_from_slice(src);
    file.write_all_at(tmp, offset)
}

fn bounce_slice(bounce: &mut AlignedBuf, len: usize) -> io::Result<&mut [u8]> {
    bounce
        .as_mut_slice()
        .get_mut(..len)
        .ok_or_else(|| io::Error::other("request larger than the bounce buffer"))
}
