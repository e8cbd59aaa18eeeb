//! The per-queue data path: drain a batch of RX descriptors, serve each
//! request (protocol core, then store), post all replies to TX, kick once,
//! recycle completed frames into the fill ring. Requests for direct
//! exports go to the worker's io_uring (submitted once per batch) and are
//! answered as their completions are reaped. Busy-polls while there is
//! work, I/O in flight included; sleeps in poll() on the socket and the
//! ring's eventfd when idle, so an idle target costs no CPU.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::os::fd::AsRawFd;

use aoe_proto::{Action, AtaFailure, Reply, Target};
use xsk_rs::FrameDesc;

use crate::stats::{Counters, SharedCounters};
use crate::store::{AlignedBuf, DirectRing, Store};
use crate::xsk::{Queue, FRAME_COUNT, FRAME_SIZE, RX_RING};

/// Descriptors taken from a ring per step.
const BATCH: usize = 64;
/// How long an empty ring is spun on before sleeping in poll().
const SPIN: Duration = Duration::from_micros(200);
/// The longest sleep, so that a stop request is seen promptly.
const POLL_MS: i32 = 100;

pub struct Worker {
    queue: Queue,
    target: Arc<Target>,
    stores: Arc<Vec<Store>>,
    stats: Arc<SharedCounters>,
    stop: Arc<AtomicBool>,
    counters: Counters,
    /// Frames the worker holds and does not use.
    free: Vec<FrameDesc>,
    /// Replies to post to the TX ring.
    tx_batch: Vec<FrameDesc>,
    /// Scratch for ring consumption.
    scratch: Vec<FrameDesc>,
    /// Frames posted to TX and not yet back from the completion ring.
    in_flight_tx: usize,
    /// The io_uring for direct exports (none if every export is mmap).
    ring: Option<DirectRing<(FrameDesc, Reply)>>,
    /// For direct I/O on frames whose data is not 512-byte aligned.
    bounce: AlignedBuf,
}

/// What serving one request left to do.
enum Next {
    /// The reply is complete: send it.
    Send,
    /// No reply: the frame is free again.
    Free,
    /// Hand to the io_uring, then reply when it completes.
    Submit(DirectOp, Reply),
}

/// A direct-I/O operation on the frame's data.
enum DirectOp {
    Read {
        offset: u64,
        buf: *mut u8,
        len: usize,
    },
    Write {
        offset: u64,
        buf: *const u8,
        len: usize,
    },
    Fsync,
}

impl Worker {
    pub fn new(
        mut queue: Queue,
        target: Arc<Target>,
        stores: Arc<Vec<Store>>,
        stats: Arc<SharedCounters>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<Self> {
        let free = std::mem::take(&mut queue.frames);
        let capacity = free.len();
        let ring = if stores.iter().any(|s| matches!(s, Store::Direct(_))) {
            // Every frame the worker holds can be in flight at once.
            Some(DirectRing::new(FRAME_COUNT)?)
        } else {
            None
        };
        Ok(Self {
            queue,
            target,
            stores,
            stats,
            stop,
            counters: Counters::default(),
            free,
            tx_batch: Vec::with_capacity(capacity),
            scratch: vec![FrameDesc::default(); BATCH],
            in_flight_tx: 0,
            ring,
            bounce: AlignedBuf::new(FRAME_SIZE as usize),
        })
    }

    /// Sends the unsolicited Query Config response for every export.
    pub fn announce(&mut self) {
        for i in 0..self.target.exports().len() {
            let Some(mut desc) = self.free.pop() else {
                return;
            };
            let target = &self.target;
            // SAFETY: the frame came from the free list: the worker holds it.
            let sent = unsafe {
                self.queue
                    .frame(&mut desc, |buf, _| match target.announce(i, buf) {
                        Some(len) => (true, len),
                        None => (false, 0),
                    })
            };
            if sent {
                self.tx_batch.push(desc);
            } else {
                self.free.push(desc);
            }
        }
        self.post_tx();
    }

    pub fn run(mut self) {
        self.refill();
        let mut idle_since: Option<Instant> = None;
        while !self.stop.load(Ordering::Relaxed) {
            self.reap_completions();
            self.refill();
            let received = self.receive();
            self.submit_io();
            let completed = self.reap_io();
            if received + completed == 0 {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SPIN && self.in_flight_tx == 0 {
                    self.sleep();
                    idle_since = None;
                }
                if self.in_flight_tx > 0 && self.queue.tx.needs_wakeup() {
                    let _ = self.queue.tx.wakeup();
                }
                continue;
            }
            idle_since = None;
            self.post_tx();
            self.stats.publish(&self.counters);
        }
        // Answer what storage still owes before stopping.
        while self.ring.as_ref().is_some_and(|r| r.in_flight() > 0) {
            self.reap_io();
        }
        self.post_tx();
        self.stats.publish(&self.counters);
    }

    /// Sleeps until a frame arrives or an I/O completes (poll also wakes
    /// the driver when the fill ring asks for it), at most POLL_MS.
    fn sleep(&mut self) {
        let mut fds = [
            libc::pollfd {
                fd: self.queue.rx.fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.ring.as_ref().map_or(-1, |r| r.eventfd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a live array of two pollfd; a negative fd is
        // ignored by poll().
        unsafe { libc::poll(fds.as_mut_ptr(), 2, POLL_MS) };
        if let Some(ring) = &self.ring {
            ring.clear_event();
        }
    }

    /// Submits the batch's direct I/O with one system call.
    fn submit_io(&mut self) {
        if let Some(ring) = &mut self.ring {
            if let Err(e) = ring.submit() {
                log::warn!("queue {}: io_uring submit failed: {e}", self.queue.id);
            }
        }
    }

    /// Turns finished direct I/O into replies.
    fn reap_io(&mut self) -> usize {
        let Some(ring) = &mut self.ring else {
            return 0;
        };
        let (queue, tx_batch, c) = (&self.queue, &mut self.tx_batch, &mut self.counters);
        ring.reap(|(mut desc, reply), outcome, res| {
            if outcome.is_err() {
                c.io_errors += 1;
                if c.io_errors.is_power_of_two() {
                    log::warn!(
                        "queue {}: storage I/O failed ({}), answered with an ATA error; {} so far",
                        queue.id,
                        if res < 0 {
                            std::io::Error::from_raw_os_error(-res).to_string()
                        } else {
                            format!("short transfer of {res} bytes")
                        },
                        c.io_errors
                    );
                }
            }
            c.errors += u64::from(reply.is_error() || outcome.is_err());
            // SAFETY: the frame was held in the ring's slot until now; the
            // kernel is done with it, so the worker holds it again.
            unsafe { queue.frame(&mut desc, |buf, _| ((), reply.finish(buf, outcome))) };
            tx_batch.push(desc);
        })
    }

    /// Takes sent frames back from the completion ring.
    fn reap_completions(&mut self) {
        loop {
            // SAFETY: the descriptors come back from this UMEM's completion
            // ring; from now on the worker holds those frames.
            let n = unsafe { self.queue.comp.consume(&mut self.scratch) };
            self.free.extend_from_slice(&self.scratch[..n]);
            self.in_flight_tx -= n;
            if n < BATCH {
                break;
            }
        }
    }

    /// Tops the fill ring up from the free list.
    fn refill(&mut self) {
        let room = self.queue.fill.nb_free(RX_RING) as usize;
        let n = room.min(self.free.len());
        if n == 0 {
            return;
        }
        let start = self.free.len() - n;
        // SAFETY: these frames are held by the worker and handed to the
        // kernel here; they leave the free list below. The ring takes all
        // of them or none.
        let produced = unsafe { self.queue.fill.produce(&self.free[start..]) };
        self.free.truncate(self.free.len() - produced);
    }

    /// Serves one RX batch; returns how many frames it held.
    fn receive(&mut self) -> usize {
        let mut batch = [FrameDesc::default(); BATCH];
        // SAFETY: descriptors from this UMEM's RX ring; the worker holds
        // those frames from now on.
        let n = unsafe { self.queue.rx.consume(&mut batch) };
        self.counters.rx_frames += n as u64;
        for desc in &mut batch[..n] {
            self.serve(*desc);
        }
        n
    }

    /// Routes one received frame to every export it addresses.
    fn serve(&mut self, mut desc: FrameDesc) {
        let Some(mut export) = self.next_export(&mut desc, 0) else {
            self.counters.ignored += 1;
            self.free.push(desc);
            return;
        };
        loop {
            match self.next_export(&mut desc, export + 1) {
                None => return self.answer(desc, export),
                Some(following) => {
                    // A broadcast: answer for this export from a copy, so
                    // the original stays intact for the others.
                    match self.copy_frame(&mut desc) {
                        Some(copy) => self.answer(copy, export),
                        None => self.counters.no_frame += 1,
                    }
                    export = following;
                }
            }
        }
    }

    /// The first export at index `from` or later that the request in
    /// `desc` is addressed to.
    fn next_export(&self, desc: &mut FrameDesc, from: usize) -> Option<usize> {
        // SAFETY: the worker holds `desc` (taken from RX, not yet passed
        // on); this only reads the request.
        unsafe {
            self.queue.frame(desc, |buf, len| {
                (self.target.next_addressed(&buf[..len], from), len)
            })
        }
    }

    /// A free frame holding the same bytes as `desc`.
    fn copy_frame(&mut self, desc: &mut FrameDesc) -> Option<FrameDesc> {
        let mut copy = self.free.pop()?;
        let queue = &self.queue;
        // SAFETY: both frames are held by the worker and are distinct, so
        // the two borrows of UMEM memory never overlap.
        unsafe {
            queue.frame(desc, |src, len| {
                queue.frame(&mut copy, |dst, _| {
                    dst[..len].copy_from_slice(&src[..len]);
                    ((), len)
                });
                ((), len)
            });
        }
        Some(copy)
    }

    /// Runs the protocol core and the store for one export, then queues
    /// the reply, hands it to the io_uring, or frees the frame.
    fn answer(&mut self, mut desc: FrameDesc, export: usize) {
        let target = &self.target;
        let store = &self.stores[export];
        let (c, bounce) = (&mut self.counters, &mut self.bounce);
        // SAFETY: the worker holds `desc`.
        let next = unsafe {
            self.queue.frame(&mut desc, |buf, len| {
                let action = target.handle(export, buf, len);
                match (&action, store) {
                    (Action::Read(io, _), _) => {
                        c.reads += 1;
                        c.read_bytes += io.len() as u64;
                    }
                    (Action::Write(io, _), _) => {
                        c.writes += 1;
                        c.write_bytes += io.len() as u64;
                    }
                    (Action::Flush(_), _) => c.flushes += 1,
                    _ => {}
                }
                let mut done = |r: Reply, buf: &mut [u8], outcome: Result<(), AtaFailure>| {
                    c.errors += u64::from(r.is_error() || outcome.is_err());
                    (Next::Send, r.finish(buf, outcome))
                };
                let (next, tx_len) = match (action, store) {
                    (Action::Drop, _) => (Next::Free, len),
                    (Action::Reply(r), _) => done(r, buf, Ok(())),
                    (Action::Read(io, r), Store::Mmap(m)) => {
                        let outcome = m.read(io.offset(), &mut buf[io.data.clone()]);
                        done(r, buf, outcome)
                    }
                    (Action::Write(io, r), Store::Mmap(m)) => {
                        let outcome = m.write(io.offset(), &buf[io.data.clone()]);
                        done(r, buf, outcome)
                    }
                    (Action::Flush(r), Store::Mmap(m)) => {
                        let outcome = m.flush().map_err(|_| AtaFailure::WriteError);
                        done(r, buf, outcome)
                    }
                    (Action::Read(io, r), Store::Direct(d)) => {
                        let data = &mut buf[io.data.clone()];
                        if is_aligned(data.as_ptr()) {
                            let op = DirectOp::Read {
                                offset: io.offset(),
                                buf: data.as_mut_ptr(),
                                len: data.len(),
                            };
                            (Next::Submit(op, r), len)
                        } else {
                            let outcome = d.read_bounced(io.offset(), data, bounce);
                            done(r, buf, outcome)
                        }
                    }
                    (Action::Write(io, r), Store::Direct(d)) => {
                        let data = &buf[io.data.clone()];
                        if is_aligned(data.as_ptr()) {
                            let op = DirectOp::Write {
                                offset: io.offset(),
                                buf: data.as_ptr(),
                                len: data.len(),
                            };
                            (Next::Submit(op, r), len)
                        } else {
                            let outcome = d.write_bounced(io.offset(), data, bounce);
                            done(r, buf, outcome)
                        }
                    }
                    (Action::Flush(r), Store::Direct(_)) => (Next::Submit(DirectOp::Fsync, r), len),
                };
                (next, tx_len)
            })
        };
        match next {
            Next::Send => self.tx_batch.push(desc),
            Next::Free => {
                self.counters.ignored += 1;
                self.free.push(desc);
            }
            Next::Submit(op, reply) => self.submit(desc, export, op, reply),
        }
    }

    /// Queues a direct operation; the frame stays in the ring's slot until
    /// its completion is reaped.
    fn submit(&mut self, desc: FrameDesc, export: usize, op: DirectOp, reply: Reply) {
        let (Some(ring), Store::Direct(store)) = (&mut self.ring, &self.stores[export]) else {
            unreachable!("direct operations come from direct stores, which create the ring");
        };
        let token = (desc, reply);
        // SAFETY: the buffers point into the frame `desc`, which the ring's
        // slot holds (nobody else touches it) until the completion is
        // reaped; the UMEM outlives the ring (both belong to this worker).
        // The data offset is 512-aligned (checked in `answer`) and lengths
        // are whole sectors.
        let queued = unsafe {
            match op {
                DirectOp::Read { offset, buf, len } => ring.read(store, offset, buf, len, token),
                DirectOp::Write { offset, buf, len } => ring.write(store, offset, buf, len, token),
                DirectOp::Fsync => ring.fsync(store, token),
            }
        };
        if let Err(((mut desc, reply), failure)) = queued {
            // SAFETY: the ring refused the operation: the worker holds the frame.
            unsafe {
                self.queue
                    .frame(&mut desc, |buf, _| ((), reply.finish(buf, Err(failure))))
            };
            self.tx_batch.push(desc);
        }
    }

    /// Posts every queued reply and kicks the kernel once.
    fn post_tx(&mut self) {
        if self.tx_batch.is_empty() {
            return;
        }
        // SAFETY: the worker holds these frames and hands them to the
        // kernel; they are taken back through the completion ring.
        let posted = unsafe { self.queue.tx.produce(&self.tx_batch) };
        if self.queue.tx.needs_wakeup() {
            if let Err(e) = self.queue.tx.wakeup() {
                log::warn!("queue {}: TX kick failed: {e}", self.queue.id);
            }
        }
        self.counters.tx_frames += posted as u64;
        self.in_flight_tx += posted;
        self.tx_batch.drain(..posted);
    }
}

fn is_aligned(p: *const u8) -> bool {
    (p as usize).is_multiple_of(crate::store::DIRECT_ALIGN)
}
