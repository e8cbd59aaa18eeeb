//! One AF_XDP socket and its UMEM per NIC queue (xsk-rs).
//!
//! Frame ownership: every UMEM frame is at any moment in exactly one of
//! these places: the fill ring (kernel may receive into it), the RX ring
//! (received, not yet taken), the worker (being served, or idle in its
//! free list), the TX ring (queued for sending), or the completion ring
//! (sent, not yet taken back). Only frames the worker holds may be
//! touched; that is the contract behind `Queue::frame`.

use std::io;
use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

/// Bytes per UMEM frame: one page.
pub const FRAME_SIZE: u32 = 4096;
/// Frames the kernel may receive into at once (the fill and RX rings).
pub const RX_RING: u32 = 2048;
/// TX and completion rings hold every frame, so producing never fails.
pub const TX_RING: u32 = 4096;
/// Frames per queue: the fill ring's share plus as many spare.
pub const FRAME_COUNT: u32 = 4096;
/// The kernel's headroom in front of every received packet.
const XDP_PACKET_HEADROOM: u32 = 256;
/// Our own headroom, chosen so that a packet starts 36 bytes before a
/// 512-byte boundary: the sector data of an untagged AoE frame (at offset
/// 36) is then aligned for O_DIRECT, and goes to and from storage with no
/// copy. (256 + 220 + 36 = 512.)
const FRAME_HEADROOM: u32 = 220;
/// Offset of the packet in a UMEM frame.
pub const PACKET_OFFSET: usize = (XDP_PACKET_HEADROOM + FRAME_HEADROOM) as usize;
const _: () = assert!((PACKET_OFFSET + aoe_proto::wire::ATA_DATA_OFFSET).is_multiple_of(512));

/// How a socket was bound: zero-copy where the driver offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMode {
    ZeroCopy,
    Copy,
}

pub struct Queue {
    pub id: u32,
    pub umem: Umem,
    pub fill: FillQueue,
    pub comp: CompQueue,
    pub tx: TxQueue,
    pub rx: RxQueue,
    pub frames: Vec<FrameDesc>,
    pub mode: CopyMode,
}

impl Queue {
    /// Binds queue `id` of `iface`: zero-copy first, then copy mode.
    /// Re-binding right after another process released the queue can fail
    /// with EBUSY for a moment, so that is retried briefly.
    pub fn bind(iface: &str, id: u32) -> Result<Self> {
        let mut last = None;
        for attempt in 0..20 {
            for mode in [CopyMode::ZeroCopy, CopyMode::Copy] {
                match Self::try_bind(iface, id, mode) {
                    Ok(q) => return Ok(q),
                    Err(e) => last = Some(e),
                }
            }
            let busy = last.as_ref().and_then(os_error) == Some(libc::EBUSY);
            if !busy || attempt == 19 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last.expect("tried at least once"))
            .with_context(|| format!("cannot bind an AF_XDP socket to {iface} queue {id}"))
    }

    fn try_bind(iface: &str, id: u32, mode: CopyMode) -> Result<Self> {
        let umem_config = UmemConfig::builder()
            .frame_size(FrameSize::new(FRAME_SIZE)?)
            .fill_queue_size(QueueSize::new(RX_RING)?)
            .comp_queue_size(QueueSize::new(TX_RING)?)
            .frame_headroom(FRAME_HEADROOM)
            .build()?;
        let count = NonZeroU32::new(FRAME_COUNT).expect("non-zero");
        let (umem, frames) = Umem::new(umem_config, count, false)?;
        let bind = match mode {
            CopyMode::ZeroCopy => BindFlags::XDP_ZEROCOPY,
            CopyMode::Copy => BindFlags::XDP_COPY,
        } | BindFlags::XDP_USE_NEED_WAKEUP;
        let config = SocketConfig::builder()
            .rx_queue_size(QueueSize::new(RX_RING)?)
            .tx_queue_size(QueueSize::new(TX_RING)?)
            // Our own XDP program steers; libxdp must not load its own.
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(bind)
            .build();
        let name = Interface::new(std::ffi::CString::new(iface)?);
        // SAFETY: the UMEM is new and not shared with any other socket, so
        // the shared-UMEM double-free hazard does not apply (and libxdp's
        // program load is inhibited anyway).
        let (tx, rx, rings) = unsafe { xsk_rs::Socket::new(config, &umem, &name, id) }?;
        let (fill, comp) = rings.ok_or_else(|| anyhow!("UMEM rings already taken"))?;
        Ok(Self {
            id,
            umem,
            fill,
            comp,
            tx,
            rx,
            frames,
            mode,
        })
    }

    /// The whole data area of a frame the worker holds, with the current
    /// packet length; `f` returns the new packet length.
    ///
    /// # Safety
    /// `desc` must be a frame of this queue's UMEM that the worker holds
    /// (not in the fill, RX, TX or completion ring).
    pub unsafe fn frame<R>(
        &self,
        desc: &mut FrameDesc,
        f: impl FnOnce(&mut [u8], usize) -> (R, usize),
    ) -> R {
        // SAFETY: the caller guarantees the frame belongs to this UMEM and
        // is not visible to the kernel, so no one else accesses it.
        let mut data = unsafe { self.umem.data_mut(desc) };
        let len = data.contents().len();
        let mut cursor = data.cursor();
        let capacity = cursor.buf_len();
        cursor.set_pos(capacity);
        let (r, new_len) = f(data.contents_mut(), len);
        data.cursor().set_pos(new_len);
        r
    }
}

impl std::os::fd::AsRawFd for Queue {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.rx.fd().as_raw_fd()
    }
}

/// The errno under an error chain, if any.
fn os_error(e: &anyhow::Error) -> Option<i32> {
    e.chain().find_map(|c| {
        c.downcast_ref::<io::Error>()
            .and_then(|io| io.raw_os_error())
    })
}
