//! One AF_XDP socket and its UMEM per NIC queue (xsk-rs), behind a safe
//! interface. All ring and UMEM unsafe code of the target is here.
//!
//! Frame ownership. Every UMEM frame is, at any moment, in exactly one of:
//! - the queue's free list;
//! - the fill ring, then the RX ring: the kernel's, until [`Queue::recv`]
//!   hands it out;
//! - a [`Frame`] token (or a [`LentFrame`] that wraps one), held by the
//!   worker or by a storage operation in flight;
//! - the TX ring, then the completion ring: the kernel's, until
//!   [`Queue::reclaim`] puts it back on the free list.
//!
//! A `Frame` is neither `Copy` nor `Clone`, and only this module makes one,
//! so two tokens never name the same frame: holding the token is the right
//! to touch the frame's bytes. Tokens move by value: `recv` and `alloc`
//! create them, `send` and `release` consume them. A request that spans
//! several descriptors (jumbo frames with XDP_USE_SG) holds several tokens.

use std::io;
use std::num::NonZeroU32;
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

use crate::store::StableBuf;

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
/// The most bytes of packet one frame holds.
pub const FRAME_CAPACITY: usize = FRAME_SIZE as usize - PACKET_OFFSET;
/// Descriptors moved per ring operation.
const BATCH: usize = 64;

/// How a socket was bound: zero-copy where the driver offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMode {
    ZeroCopy,
    Copy,
}

/// The right to one UMEM frame (see the module notes).
#[must_use = "a frame must be sent or released, or it is lost to the queue"]
#[derive(Debug)]
pub struct Frame {
    desc: FrameDesc,
    /// The queue (UMEM) the frame belongs to: a token is only ever used
    /// with its own queue, which `Queue::buf` checks.
    owner: u32,
}

impl Frame {
    /// Bytes of packet in the frame.
    pub fn len(&self) -> usize {
        self.desc.lengths().data()
    }
}

/// The bytes of a held frame: all of its room (for the reply), and the
/// packet length, which is what gets sent.
pub struct FrameBuf<'a> {
    data: xsk_rs::umem::frame::DataMut<'a>,
    len: usize,
}

impl FrameBuf<'_> {
    /// The whole data area of the frame; the packet is its first `len()`.
    pub fn bytes(&mut self) -> &mut [u8] {
        let mut cursor = self.data.cursor();
        let room = cursor.buf_len();
        cursor.set_pos(room);
        self.data.contents_mut()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Sets the packet length (what `send` transmits).
    pub fn set_len(&mut self, len: usize) {
        self.len = len;
    }
}

impl Drop for FrameBuf<'_> {
    fn drop(&mut self) {
        // The descriptor carries the packet length to the TX ring.
        self.data.cursor().set_pos(self.len);
    }
}

/// A frame lent to storage I/O with the byte range the I/O uses. It keeps
/// the UMEM mapped for as long as it lives, so an operation in flight can
/// never outlive the memory it reads into or writes from, whatever order
/// things are dropped in.
pub struct LentFrame {
    frame: Frame,
    umem: Arc<Umem>,
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `ptr..ptr+len` lies inside the frame that `frame` names, in the
// UMEM mapping that `umem` keeps alive; the token is unique (see the
// module notes), so no one else reads or writes those bytes while this
// value lives, and moving the value does not move them.
unsafe impl StableBuf for LentFrame {
    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: as above; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

// SAFETY: a LentFrame owns its bytes exclusively (see StableBuf above);
// moving it to another thread moves that ownership, like a Box<[u8]>.
unsafe impl Send for LentFrame {}

/// Gives every queue of the process its own token owner id.
static NEXT_OWNER: AtomicU32 = AtomicU32::new(0);

pub struct Queue {
    id: u32,
    owner: u32,
    mode: CopyMode,
    // The UMEM is declared last so that the rings drop before it.
    fill: FillQueue,
    comp: CompQueue,
    tx: TxQueue,
    rx: RxQueue,
    /// Frames the queue holds and nobody uses.
    free: Vec<FrameDesc>,
    /// Frames posted to TX and not yet back from the completion ring.
    in_flight_tx: usize,
    scratch: [FrameDesc; BATCH],
    umem: Arc<Umem>,
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
            let busy = last.as_ref().and_then(crate::os_error) == Some(libc::EBUSY);
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
            owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
            mode,
            fill,
            comp,
            tx,
            rx,
            free: frames,
            in_flight_tx: 0,
            scratch: [FrameDesc::default(); BATCH],
            umem: Arc::new(umem),
        })
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn mode(&self) -> CopyMode {
        self.mode
    }

    /// Frames posted to TX that the kernel has not handed back yet.
    pub fn in_flight_tx(&self) -> usize {
        self.in_flight_tx
    }

    /// Takes up to `max` received frames off the RX ring.
    pub fn recv(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        let max = max.min(BATCH);
        // SAFETY: the RX ring hands back frames of this UMEM that the
        // kernel has finished writing; from here on the tokens own them.
        let n = unsafe { self.rx.consume(&mut self.scratch[..max]) };
        let owner = self.owner;
        out.extend(self.scratch[..n].iter().map(|&desc| Frame { desc, owner }));
        n
    }

    /// Posts `frames` to the TX ring (all of them: the ring holds every
    /// frame of the UMEM) and kicks the kernel if it asks for it; returns
    /// how many were posted.
    pub fn send(&mut self, frames: &mut Vec<Frame>) -> usize {
        if frames.is_empty() {
            return 0;
        }
        let mut posted = 0;
        for chunk in frames.chunks(BATCH) {
            for (slot, frame) in self.scratch.iter_mut().zip(chunk) {
                assert_eq!(frame.owner, self.owner, "a frame of another queue");
                *slot = frame.desc;
            }
            // SAFETY: the tokens own these frames; the kernel owns them
            // from now until the completion ring returns them, and the
            // tokens are consumed below.
            posted += unsafe { self.tx.produce(&self.scratch[..chunk.len()]) };
            if posted < chunk.len() {
                break;
            }
        }
        // Tokens of frames the ring took are gone; the rest stay queued.
        frames.drain(..posted);
        self.in_flight_tx += posted;
        if let Err(e) = self.kick() {
            log::warn!("queue {}: TX kick failed: {e}", self.id);
        }
        posted
    }

    /// Wakes the kernel's TX processing if it asked (need_wakeup).
    pub fn kick(&self) -> io::Result<()> {
        if self.in_flight_tx > 0 && self.tx.needs_wakeup() {
            self.tx.wakeup()?;
        }
        Ok(())
    }

    /// Takes sent frames back from the completion ring.
    pub fn reclaim(&mut self) -> usize {
        let mut total = 0;
        loop {
            // SAFETY: the completion ring returns frames of this UMEM that
            // the kernel has finished sending; they go to the free list.
            let n = unsafe { self.comp.consume(&mut self.scratch) };
            self.free.extend_from_slice(&self.scratch[..n]);
            total += n;
            if n < BATCH {
                break;
            }
        }
        self.in_flight_tx -= total;
        total
    }

    /// Tops the fill ring up from the free list.
    pub fn refill(&mut self) {
        let room = self.fill.nb_free(RX_RING) as usize;
        let n = room.min(self.free.len());
        if n == 0 {
            return;
        }
        let start = self.free.len() - n;
        // SAFETY: these frames are on the free list (no token names them);
        // the kernel owns the ones the ring takes, and they leave the list.
        let produced = unsafe { self.fill.produce(&self.free[start..]) };
        self.free.truncate(self.free.len() - produced);
    }

    /// A free frame, if any.
    pub fn alloc(&mut self) -> Option<Frame> {
        let owner = self.owner;
        self.free.pop().map(|desc| Frame { desc, owner })
    }

    /// Gives a frame back to the free list.
    pub fn release(&mut self, frame: Frame) {
        assert_eq!(frame.owner, self.owner, "a frame of another queue");
        self.free.push(frame.desc);
    }

    /// The bytes of a held frame.
    pub fn buf<'a>(&'a self, frame: &'a mut Frame) -> FrameBuf<'a> {
        assert_eq!(frame.owner, self.owner, "a frame of another queue");
        let len = frame.len();
        // SAFETY: `frame` is a token of this queue's UMEM (only this module
        // makes tokens, and the owner check above holds), so the kernel
        // does not touch the frame, and `&mut Frame` makes this the only view.
        let data = unsafe { self.umem.data_mut(&mut frame.desc) };
        FrameBuf { data, len }
    }

    /// Copies the packet in `src` into `dst` (for a broadcast that
    /// several exports answer, each from its own frame).
    pub fn copy(&self, src: &mut Frame, dst: &mut Frame) {
        let mut from = self.buf(src);
        let mut to = self.buf(dst);
        let len = from.len();
        to.bytes()[..len].copy_from_slice(&from.bytes()[..len]);
        to.set_len(len);
    }

    /// Lends `range` of a held frame's bytes to storage I/O.
    pub fn lend(&self, mut frame: Frame, range: Range<usize>) -> LentFrame {
        let ptr = {
            let mut buf = self.buf(&mut frame);
            let bytes = &mut buf.bytes()[range.clone()];
            NonNull::new(bytes.as_mut_ptr()).expect("a slice pointer is not null")
        };
        LentFrame {
            frame,
            umem: Arc::clone(&self.umem),
            ptr,
            len: range.len(),
        }
    }

    /// Takes a frame back from storage I/O.
    pub fn unlend(&self, lent: LentFrame) -> Frame {
        debug_assert!(
            Arc::ptr_eq(&lent.umem, &self.umem),
            "a frame of another queue"
        );
        lent.frame
    }

    /// The socket, for poll() and for the XSKMAP.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the descriptor belongs to the RX ring's socket, which
        // lives as long as `self`, and the borrow cannot outlive `self`.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.rx.fd().as_raw_fd()) }
    }
}

impl AsRawFd for Queue {
    fn as_raw_fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }
}
