//! The per-queue data path: take a batch of received frames, serve each
//! request (protocol core, then the storage context), post all replies to
//! TX and kick once, recycle sent frames into the fill ring. Requests that
//! go through the io_uring are answered as their completions are reaped.
//! Busy-polls while there is work, I/O in flight included; sleeps in
//! poll() on the socket and the ring's eventfd when idle, so an idle
//! target costs no CPU.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aoe_proto::{Action, AtaFailure, Dropped, Reply, Target};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::stats::{Counters, SharedCounters};
use crate::store::{Op, Started, Store, StoreContext};
use crate::xsk::{Frame, LentFrame, Queue, FRAME_CAPACITY, FRAME_COUNT};

/// Frames taken from the RX ring per step.
const BATCH: usize = 64;
/// How long an empty ring is spun on before sleeping in poll().
const SPIN: Duration = Duration::from_micros(200);
/// The same while durable writes are in flight: they take hundreds of
/// microseconds, and their completion wakes the poll() anyway.
const SPIN_STORAGE: Duration = Duration::from_micros(30);
/// The longest sleep, so that a stop request is seen promptly.
const POLL_MS: u16 = 100;

pub struct Worker {
    /// Declared before the queue, so it is dropped first: its ring waits
    /// for storage I/O in flight before the frames it holds go away (each
    /// lent frame also keeps the UMEM mapped on its own).
    storage: StoreContext<LentFrame, Reply>,
    queue: Queue,
    target: Arc<Target>,
    stats: Arc<SharedCounters>,
    stop: Arc<AtomicBool>,
    counters: Counters,
    /// Frames taken from RX, not yet served.
    rx_batch: Vec<Frame>,
    /// Replies to post to the TX ring.
    tx_batch: Vec<Frame>,
}

impl Worker {
    pub fn new(
        queue: Queue,
        target: Arc<Target>,
        stores: Arc<Vec<Store>>,
        stats: Arc<SharedCounters>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<Self> {
        // Every frame the worker holds can be in storage at once.
        let storage =
            StoreContext::new(queue.id(), Arc::clone(&stores), FRAME_COUNT, FRAME_CAPACITY)?;
        Ok(Self {
            storage,
            queue,
            target,
            stats,
            stop,
            counters: Counters::default(),
            rx_batch: Vec::with_capacity(BATCH),
            tx_batch: Vec::with_capacity(FRAME_COUNT as usize),
        })
    }

    /// Sends the unsolicited Query Config response for every export.
    pub fn announce(&mut self) {
        for i in 0..self.target.exports().len() {
            let Some(mut frame) = self.queue.alloc() else {
                return;
            };
            let mut buf = self.queue.buf(&mut frame);
            let written = self.target.announce(i, buf.bytes());
            if let Some(len) = written {
                buf.set_len(len);
            }
            drop(buf);
            match written {
                Some(_) => self.tx_batch.push(frame),
                None => self.queue.release(frame),
            }
        }
        self.post_tx();
    }

    pub fn run(mut self) {
        // One reference for the whole run: routing borrows the target
        // while the worker changes its own state.
        let target = Arc::clone(&self.target);
        self.queue.refill();
        let mut idle_since: Option<Instant> = None;
        while !self.stop.load(Ordering::Relaxed) {
            self.queue.reclaim();
            self.queue.refill();
            let received = self.receive(&target);
            self.storage.submit();
            let completed = self.reap_storage(false);
            if received + completed == 0 {
                let since = *idle_since.get_or_insert_with(Instant::now);
                let spin = if self.storage.holds_durable_writes() {
                    SPIN_STORAGE
                } else {
                    SPIN
                };
                if since.elapsed() >= spin && self.queue.in_flight_tx() == 0 {
                    self.sleep();
                    idle_since = None;
                }
                if let Err(e) = self.queue.kick() {
                    log::warn!("queue {}: TX kick failed: {e}", self.queue.id());
                }
                continue;
            }
            idle_since = None;
            self.post_tx();
            self.publish();
        }
        // Answer what storage still owes before stopping.
        self.reap_storage(true);
        self.post_tx();
        self.publish();
    }

    fn publish(&mut self) {
        self.counters.io_errors = self.storage.io_errors();
        self.counters.commits = self.storage.barriers();
        self.counters.solo_writes = self.storage.solo_writes();
        self.stats.publish(&self.counters);
    }

    /// Sleeps until a frame arrives or an I/O completes (poll also wakes
    /// the driver when the fill ring asks for it), at most POLL_MS.
    fn sleep(&mut self) {
        let socket = PollFd::new(self.queue.fd(), PollFlags::POLLIN);
        let timeout = PollTimeout::from(POLL_MS);
        let ring = PollFd::new(self.storage.eventfd(), PollFlags::POLLIN);
        let _ = poll(&mut [socket, ring], timeout);
        self.storage.clear_event();
    }

    /// Serves one RX batch; returns how many frames it held.
    fn receive(&mut self, target: &Target) -> usize {
        let mut batch = std::mem::take(&mut self.rx_batch);
        let n = self.queue.recv(&mut batch, BATCH);
        self.counters.rx_frames += n as u64;
        for frame in batch.drain(..) {
            self.serve(target, frame);
        }
        self.rx_batch = batch;
        n
    }

    /// Answers one received frame for every export it addresses: the last
    /// from the frame itself, the others (a broadcast) from copies.
    fn serve(&mut self, target: &Target, mut frame: Frame) {
        let route = {
            let mut buf = self.queue.buf(&mut frame);
            let len = buf.len();
            target.route(&buf.bytes()[..len])
        };
        let mut route = match route {
            Ok(route) => route,
            Err(why) => return self.drop_frame(frame, why),
        };
        let Some(mut export) = route.next() else {
            return self.drop_frame(frame, Dropped::NotForUs);
        };
        loop {
            let Some(following) = route.next() else {
                return self.answer(target, frame, export);
            };
            match self.queue.alloc() {
                Some(mut copy) => {
                    self.queue.copy(&mut frame, &mut copy);
                    self.answer(target, copy, export);
                }
                None => self.counters.no_frame += 1,
            }
            export = following;
        }
    }

    fn drop_frame(&mut self, frame: Frame, why: Dropped) {
        match why {
            Dropped::GroupSource => self.counters.bad_source += 1,
            _ => self.counters.ignored += 1,
        }
        self.queue.release(frame);
    }

    /// Runs the protocol core for one export, then hands the storage work
    /// to the storage context, or replies, or drops.
    fn answer(&mut self, target: &Target, mut frame: Frame, export: usize) {
        let action = {
            let mut buf = self.queue.buf(&mut frame);
            let len = buf.len();
            target.handle(export, buf.bytes(), len)
        };
        self.counters.count(&action);
        let (op, data, reply) = match action {
            Action::Drop(why) => return self.drop_frame(frame, why),
            Action::Reply(reply) => return self.finish(frame, reply, Ok(())),
            Action::Read(io, reply) => (
                Op::Read {
                    offset: io.offset(),
                },
                io.data,
                reply,
            ),
            Action::Write(io, reply) => (
                Op::Write {
                    offset: io.offset(),
                },
                io.data,
                reply,
            ),
            Action::Flush(reply) => (Op::Flush, 0..0, reply),
        };
        let lent = self.queue.lend(frame, data);
        match self.storage.start(export, op, lent, reply) {
            Started::Pending => {}
            Started::Done(lent, reply, result) => {
                let frame = self.queue.unlend(lent);
                self.finish(frame, reply, result);
            }
        }
    }

    fn finish(&mut self, frame: Frame, reply: Reply, result: Result<(), AtaFailure>) {
        finish(
            &self.queue,
            &mut self.counters,
            &mut self.tx_batch,
            frame,
            reply,
            result,
        );
    }

    /// Turns finished storage I/O into replies; with `drain`, waits for
    /// all of it (at shutdown).
    fn reap_storage(&mut self, drain: bool) -> usize {
        let Self {
            storage,
            queue,
            counters,
            tx_batch,
            ..
        } = self;
        let done = |lent, reply, result| {
            finish(queue, counters, tx_batch, queue.unlend(lent), reply, result)
        };
        if drain {
            storage.drain(done)
        } else {
            storage.reap(done)
        }
    }

    /// Posts every queued reply and kicks the kernel once.
    fn post_tx(&mut self) {
        let posted = self.queue.send(&mut self.tx_batch);
        self.counters.tx_frames += posted as u64;
    }
}

/// Completes a reply with the storage result and queues it for TX.
fn finish(
    queue: &Queue,
    counters: &mut Counters,
    tx_batch: &mut Vec<Frame>,
    mut frame: Frame,
    reply: Reply,
    result: Result<(), AtaFailure>,
) {
    counters.errors += u64::from(reply.is_error() || result.is_err());
    let mut buf = queue.buf(&mut frame);
    let len = reply.finish(buf.bytes(), result);
    buf.set_len(len);
    drop(buf);
    tx_batch.push(frame);
}
