//! The per-queue data path: drain a batch of RX descriptors, serve each
//! request (protocol core, then store), post all replies to TX, kick once,
//! recycle completed frames into the fill ring. Busy-polls while there is
//! work; sleeps in poll() when idle, so an idle target costs no CPU.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aoe_proto::{Action, Target};
use xsk_rs::FrameDesc;

use crate::stats::{Counters, SharedCounters};
use crate::store::MmapStore;
use crate::xsk::{Queue, RX_RING};

/// Descriptors taken from a ring per step.
const BATCH: usize = 64;
/// How long an empty ring is spun on before sleeping in poll().
const SPIN: Duration = Duration::from_micros(200);
/// The longest sleep, so that a stop request is seen promptly.
const POLL_MS: i32 = 100;

pub struct Worker {
    queue: Queue,
    target: Arc<Target>,
    stores: Arc<Vec<MmapStore>>,
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
}

impl Worker {
    pub fn new(
        mut queue: Queue,
        target: Arc<Target>,
        stores: Arc<Vec<MmapStore>>,
        stats: Arc<SharedCounters>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let free = std::mem::take(&mut queue.frames);
        let capacity = free.len();
        Self {
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
        }
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
            let n = self.receive();
            if n == 0 {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SPIN && self.in_flight_tx == 0 {
                    // Sleep until a frame arrives (poll also wakes the
                    // driver when the fill ring asks for it).
                    let _ = self.queue.rx.poll(POLL_MS);
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
        self.stats.publish(&self.counters);
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
        let target = Arc::clone(&self.target);
        let first = {
            // SAFETY: the worker holds `desc` (just taken from RX).
            unsafe {
                self.queue.frame(&mut desc, |buf, len| {
                    (target.next_addressed(&buf[..len], 0), len)
                })
            }
        };
        let Some(mut export) = first else {
            self.counters.ignored += 1;
            self.free.push(desc);
            return;
        };
        loop {
            // SAFETY: as above; read-only look at the request.
            let next = unsafe {
                self.queue.frame(&mut desc, |buf, len| {
                    (target.next_addressed(&buf[..len], export + 1), len)
                })
            };
            match next {
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
    /// the reply (or frees the frame).
    fn answer(&mut self, mut desc: FrameDesc, export: usize) {
        let target = &self.target;
        let store = &self.stores[export];
        let c = &mut self.counters;
        // SAFETY: the worker holds `desc`.
        let send = unsafe {
            self.queue.frame(&mut desc, |buf, len| {
                let action = target.handle(export, buf, len);
                let tx_len = match action {
                    Action::Drop => return (false, len),
                    Action::Reply(r) => r.finish(buf, Ok(())),
                    Action::Read(io, r) => {
                        c.reads += 1;
                        c.read_bytes += io.len() as u64;
                        let outcome = store.read(io.offset(), &mut buf[io.data.clone()]);
                        r.finish(buf, outcome)
                    }
                    Action::Write(io, r) => {
                        c.writes += 1;
                        c.write_bytes += io.len() as u64;
                        let outcome = store.write(io.offset(), &buf[io.data.clone()]);
                        r.finish(buf, outcome)
                    }
                    Action::Flush(r) => {
                        c.flushes += 1;
                        let outcome = store.flush().map_err(|e| {
                            log::error!("flush of export {export} failed: {e}");
                            aoe_proto::AtaFailure::WriteError
                        });
                        r.finish(buf, outcome)
                    }
                };
                if is_error_reply(&buf[..tx_len]) {
                    c.errors += 1;
                }
                (true, tx_len)
            })
        };
        if send {
            self.tx_batch.push(desc);
        } else {
            self.counters.ignored += 1;
            self.free.push(desc);
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

/// True if the reply carries an AoE error flag or an ATA ERR status.
fn is_error_reply(frame: &[u8]) -> bool {
    use aoe_proto::wire::{AoeHeader, AtaArg, Command, EthernetFrame};
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    let Ok(h) = AoeHeader::new_checked(&frame[eth.header_len()..]) else {
        return false;
    };
    if h.flags() & aoe_proto::wire::FLAG_ERROR != 0 {
        return true;
    }
    h.command() == Command::Ata
        && AtaArg::new_checked(h.payload()).is_ok_and(|a| a.status() & 0x01 != 0)
}
