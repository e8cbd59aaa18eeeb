//! One sender thread: a window of request slots over a share of the region,
//! driven by batched sendmmsg/recvmmsg on its own packet socket.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aoe_proto::wire::{AtaArg, Command, ATA_DATA_OFFSET};
use aoe_proto::{MacAddr, SECTOR_SIZE};
use hdrhistogram::Histogram;

use crate::frames;
use crate::sock::{PacketSocket, RxBatch, TxBatch, MAX_BATCH};
use crate::verify;

/// Tag layout: bit 31 set (a userland initiator), bits 30..24 the thread
/// (the fanout program steers replies on them), 23..12 the slot, 11..0 a
/// per-slot sequence bumped on every (re)transmission.
pub const MAX_THREADS: usize = 128;
pub const MAX_DEPTH_PER_THREAD: usize = 4096;
const SEQ_MASK: u16 = 0xfff;

/// Failure messages kept per thread (all are counted).
const MAX_FAILURE_REPORTS: usize = 10;

/// How long a stopping worker waits for the requests in flight.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

fn make_tag(thread: u8, slot: usize, seq: u16) -> u32 {
    0x8000_0000
        | ((thread as u32 & 0x7f) << 24)
        | ((slot as u32 & 0xfff) << 12)
        | (seq & SEQ_MASK) as u32
}

/// (thread, slot) of one of our tags.
fn split_tag(tag: u32) -> Option<(u8, usize)> {
    (tag >> 31 == 1).then_some((((tag >> 24) & 0x7f) as u8, ((tag >> 12) & 0xfff) as usize))
}

/// Live counters the main thread prints once a second.
#[derive(Default)]
#[repr(align(128))]
pub struct Live {
    pub ops: AtomicU64,
    pub bytes: AtomicU64,
    pub retransmits: AtomicU64,
    pub errors: AtomicU64,
    pub done: AtomicBool,
}

pub struct Config {
    pub id: u8,
    pub depth: usize,
    pub src: MacAddr,
    pub dst: MacAddr,
    pub shelf: u16,
    pub slot: u8,
    pub lba48: bool,
    pub sectors: u8,
    /// First LBA of this thread's share and how many request-sized chunks
    /// it has.
    pub first_lba: u64,
    pub chunks: u64,
    pub read_pct: u8,
    pub random: bool,
    pub verify: bool,
    /// Read every chunk once, sequentially, then stop.
    pub verify_only: bool,
    /// When to stop issuing requests. Each worker checks it itself: with
    /// real-time scheduling on a shared core the main thread may never run.
    pub deadline: Option<Instant>,
    /// Zero-pad read requests to the size of their reply.
    pub pad_reads: bool,
    /// Spin on non-blocking receives instead of sleeping in recvmmsg.
    pub busy_poll: bool,
    /// Last acknowledged generation per sector of the share (verify only).
    pub expected: Vec<u64>,
    /// Newest generation that may legitimately be on disk before this run.
    pub newest_before: u64,
    /// First generation this thread stamps on writes.
    pub gen_base: u64,
    pub timeout: Duration,
    pub max_retries: u32,
    pub rx_frame_len: usize,
    pub seed: u64,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Errors {
    /// Replies with the AoE error flag.
    pub aoe: u64,
    /// ATA status with ERR set.
    pub ata: u64,
    /// Requests abandoned after --max-retries retransmissions.
    pub timeout: u64,
    /// Read replies shorter than the data asked for.
    pub short: u64,
    /// Sectors that failed --verify.
    pub verify: u64,
    /// Replies whose tag matched but whose LBA is not the request's (the
    /// reply is ignored; the request waits for the right one).
    pub mismatch: u64,
    /// sendmmsg failures (frames then count as lost and are retransmitted).
    pub send: u64,
}

impl Errors {
    /// Failed requests (send failures are retried, so they do not count).
    pub fn total(&self) -> u64 {
        self.aoe + self.ata + self.timeout + self.short + self.verify + self.mismatch
    }

    pub fn add(&mut self, o: &Errors) {
        self.aoe += o.aoe;
        self.ata += o.ata;
        self.timeout += o.timeout;
        self.short += o.short;
        self.verify += o.verify;
        self.mismatch += o.mismatch;
        self.send += o.send;
    }
}

pub struct Report {
    pub read_hist: Histogram<u64>,
    pub write_hist: Histogram<u64>,
    pub reads: u64,
    pub writes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub retransmits: u64,
    pub stale: u64,
    pub errors: Errors,
    pub sectors_verified: u64,
    pub sectors_with_expectation: u64,
    pub failures: Vec<String>,
    /// The share's last acknowledged generations, updated (verify only).
    pub expected: Vec<u64>,
    pub first_lba: u64,
    pub end: Instant,
}

#[derive(Clone, Copy)]
struct Slot {
    busy: bool,
    read: bool,
    seq: u16,
    len: u16,
    retries: u32,
    tag: u32,
    chunk: u64,
    generation: u64,
    issued: Instant,
    sent: Instant,
}

pub fn new_histogram() -> Histogram<u64> {
    // Nanoseconds, 1 ns .. 1000 s, 3 significant digits.
    Histogram::new_with_bounds(1, 1_000_000_000_000, 3).expect("valid histogram bounds")
}

struct Worker {
    cfg: Config,
    slots: Vec<Slot>,
    bufs: Vec<u8>,
    slot_len: usize,
    free: Vec<usize>,
    /// One bit per chunk with a request in flight (verify only).
    busy_chunks: Vec<u64>,
    inflight: usize,
    cursor: u64,
    seq_done: bool,
    generation: u64,
    rng: fastrand::Rng,
    r: Report,
}

impl Worker {
    fn new(mut cfg: Config) -> Self {
        let slot_len = (ATA_DATA_OFFSET + frames::data_len(cfg.sectors)).next_multiple_of(64);
        let mut bufs = vec![0xA5u8; slot_len * cfg.depth];
        for b in bufs.chunks_exact_mut(slot_len) {
            frames::put_headers(b, cfg.dst, cfg.src, cfg.shelf, cfg.slot, Command::Ata);
        }
        let busy_chunks = if cfg.verify || cfg.verify_only {
            vec![0u64; (cfg.chunks as usize).div_ceil(64)]
        } else {
            Vec::new()
        };
        let r = Report {
            read_hist: new_histogram(),
            write_hist: new_histogram(),
            reads: 0,
            writes: 0,
            bytes_read: 0,
            bytes_written: 0,
            retransmits: 0,
            stale: 0,
            errors: Errors::default(),
            sectors_verified: 0,
            sectors_with_expectation: 0,
            failures: Vec::new(),
            expected: std::mem::take(&mut cfg.expected),
            first_lba: cfg.first_lba,
            end: Instant::now(),
        };
        let mut rng = fastrand::Rng::with_seed(cfg.seed);
        // Random first sequence per slot, so consecutive runs do not reuse
        // each other's tags (the Linux initiator mixes in jiffies).
        let now = Instant::now();
        let slots = (0..cfg.depth)
            .map(|_| Slot {
                busy: false,
                read: false,
                seq: rng.u16(..=SEQ_MASK),
                len: 0,
                retries: 0,
                tag: 0,
                chunk: 0,
                generation: 0,
                issued: now,
                sent: now,
            })
            .collect();
        Self {
            slots,
            bufs,
            slot_len,
            free: (0..cfg.depth).rev().collect(),
            busy_chunks,
            inflight: 0,
            cursor: 0,
            seq_done: false,
            generation: cfg.gen_base.saturating_sub(1),
            rng,
            r,
            cfg,
        }
    }

    fn chunk_busy(&self, c: u64) -> bool {
        !self.busy_chunks.is_empty() && self.busy_chunks[(c / 64) as usize] & (1 << (c % 64)) != 0
    }

    fn set_chunk_busy(&mut self, c: u64, busy: bool) {
        if let Some(w) = self.busy_chunks.get_mut((c / 64) as usize) {
            if busy {
                *w |= 1 << (c % 64);
            } else {
                *w &= !(1 << (c % 64));
            }
        }
    }

    /// The next chunk to touch, never one with I/O in flight when verifying.
    fn pick_chunk(&mut self) -> Option<u64> {
        let n = self.cfg.chunks;
        if self.cfg.verify_only {
            if self.cursor >= n {
                self.seq_done = true;
                return None;
            }
            self.cursor += 1;
            return Some(self.cursor - 1);
        }
        if self.cfg.random {
            for _ in 0..16 {
                let c = self.rng.u64(..n);
                if !self.chunk_busy(c) {
                    return Some(c);
                }
            }
            None
        } else {
            for _ in 0..n.min(self.cfg.depth as u64 + 1) {
                let c = self.cursor;
                self.cursor = if c + 1 >= n { 0 } else { c + 1 };
                if !self.chunk_busy(c) {
                    return Some(c);
                }
            }
            None
        }
    }

    fn lba_of(&self, chunk: u64) -> u64 {
        self.cfg.first_lba + chunk * self.cfg.sectors as u64
    }

    fn slot_buf(&mut self, s: usize) -> &mut [u8] {
        &mut self.bufs[s * self.slot_len..(s + 1) * self.slot_len]
    }

    /// Keeps the first few failure messages.
    fn note_failure(&mut self, msg: impl FnOnce() -> String) {
        if self.r.failures.len() < MAX_FAILURE_REPORTS {
            self.r.failures.push(msg());
        }
    }

    /// Gives slot `s` a new tag for its next transmission.
    fn retag(&mut self, s: usize, now: Instant) {
        let slot = &mut self.slots[s];
        slot.seq = (slot.seq + 1) & SEQ_MASK;
        slot.tag = make_tag(self.cfg.id, s, slot.seq);
        slot.sent = now;
        let tag = slot.tag;
        frames::set_tag(self.slot_buf(s), tag);
    }

    /// Builds a fresh request in slot `s`; false if no chunk is free.
    fn issue(&mut self, s: usize, now: Instant) -> bool {
        let Some(chunk) = self.pick_chunk() else {
            return false;
        };
        let read = self.cfg.verify_only || self.rng.u8(..100) < self.cfg.read_pct;
        let n = self.cfg.sectors;
        let lba = self.lba_of(chunk);
        let generation = if !read && self.cfg.verify {
            self.generation += 1;
            self.generation
        } else {
            0
        };
        let (lba48, pad_reads) = (self.cfg.lba48, self.cfg.pad_reads);
        let buf = self.slot_buf(s);
        let data = ATA_DATA_OFFSET..ATA_DATA_OFFSET + frames::data_len(n);
        let mut len = frames::rw_request(buf, !read, lba48, lba, n);
        if read && pad_reads {
            buf[len..data.end].fill(0);
            len = data.end;
        }
        if generation != 0 {
            for (i, sector) in buf[data].chunks_exact_mut(SECTOR_SIZE).enumerate() {
                verify::fill_sector(sector, lba + i as u64, generation);
            }
        }
        let slot = &mut self.slots[s];
        slot.busy = true;
        slot.read = read;
        slot.len = len as u16;
        slot.retries = 0;
        slot.chunk = chunk;
        slot.generation = generation;
        slot.issued = now;
        self.retag(s, now);
        self.set_chunk_busy(chunk, true);
        self.inflight += 1;
        true
    }

    fn release(&mut self, s: usize) {
        let chunk = self.slots[s].chunk;
        self.slots[s].busy = false;
        self.set_chunk_busy(chunk, false);
        self.free.push(s);
        self.inflight -= 1;
    }

    fn rto(&self, retries: u32) -> Duration {
        (self.cfg.timeout * (1u32 << retries.min(10)))
            .min(Duration::from_secs(1).max(self.cfg.timeout))
    }

    /// Retransmits (with a new tag) or abandons timed-out requests.
    fn scan_timeouts(&mut self, now: Instant, to_send: &mut Vec<usize>) {
        for s in 0..self.slots.len() {
            let slot = self.slots[s];
            if !slot.busy || now.duration_since(slot.sent) < self.rto(slot.retries) {
                continue;
            }
            if slot.retries >= self.cfg.max_retries {
                self.r.errors.timeout += 1;
                self.release(s);
                continue;
            }
            self.slots[s].retries += 1;
            self.retag(s, now);
            self.r.retransmits += 1;
            to_send.push(s);
        }
    }

    fn complete(&mut self, frame: &[u8], now: Instant) {
        let Some(reply) = frames::parse_reply(frame) else {
            return;
        };
        if reply.command != Command::Ata
            || reply.shelf != self.cfg.shelf
            || reply.slot != self.cfg.slot
        {
            return;
        }
        let tag = reply.tag;
        let s = match split_tag(tag) {
            Some((thread, s))
                if thread == self.cfg.id
                    && self.slots.get(s).is_some_and(|x| x.busy && x.tag == tag) =>
            {
                s
            }
            _ => {
                self.r.stale += 1;
                return;
            }
        };
        let slot = self.slots[s];
        let what = if slot.read { "read" } else { "write" };
        if reply.is_error() {
            self.r.errors.aoe += 1;
            self.release(s);
            return;
        }
        let Ok(arg) = AtaArg::new_checked(reply.arg) else {
            self.r.errors.short += 1;
            self.release(s);
            return;
        };
        // Targets echo the request's registers: a reply for another LBA
        // under this tag means the target answered the wrong request.
        let lba = self.lba_of(slot.chunk);
        let echoed = frames::echoed_lba(&arg, self.cfg.lba48);
        if echoed != lba {
            self.r.errors.mismatch += 1;
            self.note_failure(|| {
                format!("reply for tag {tag:#010x} carries LBA {echoed} but the {what} was for LBA {lba}")
            });
            return;
        }
        if arg.status() & aoe_proto::error::ATA_STATUS_ERR != 0 {
            self.r.errors.ata += 1;
            let (status, err) = (arg.status(), arg.err());
            self.note_failure(|| {
                format!("ATA error on {what} at LBA {lba}: status {status:#04x} err {err:#04x}")
            });
            self.release(s);
            return;
        }
        let lat = now.saturating_duration_since(slot.issued).as_nanos() as u64;
        let n = self.cfg.sectors as usize;
        let local = (slot.chunk * n as u64) as usize;
        let bytes = frames::data_len(self.cfg.sectors);
        if slot.read {
            let Some(data) = arg.data().get(..bytes) else {
                self.r.errors.short += 1;
                self.release(s);
                return;
            };
            if self.cfg.verify || self.cfg.verify_only {
                self.check_read(data, lba, local);
            }
            self.r.reads += 1;
            self.r.bytes_read += bytes as u64;
            self.r.read_hist.saturating_record(lat.max(1));
        } else {
            if slot.generation != 0 {
                self.r.expected[local..local + n].fill(slot.generation);
            }
            self.r.writes += 1;
            self.r.bytes_written += bytes as u64;
            self.r.write_hist.saturating_record(lat.max(1));
        }
        self.release(s);
    }

    /// Checks the sectors of a read reply against the expected generations
    /// of the share starting at index `local`.
    fn check_read(&mut self, data: &[u8], lba: u64, local: usize) {
        let newest = if self.cfg.verify {
            self.generation.max(self.cfg.newest_before)
        } else {
            0
        };
        for (i, sector) in data.chunks_exact(SECTOR_SIZE).enumerate() {
            let expected = self.r.expected[local + i];
            self.r.sectors_verified += 1;
            if expected != 0 {
                self.r.sectors_with_expectation += 1;
            }
            let at = lba + i as u64;
            if let Err(m) = verify::check_sector(sector, at, expected, newest) {
                self.r.errors.verify += 1;
                self.note_failure(|| format!("verify: LBA {at}: {m}"));
            }
        }
    }

    fn publish(&self, live: &Live) {
        let r = &self.r;
        live.ops.store(r.reads + r.writes, Ordering::Relaxed);
        live.bytes
            .store(r.bytes_read + r.bytes_written, Ordering::Relaxed);
        live.retransmits.store(r.retransmits, Ordering::Relaxed);
        live.errors.store(r.errors.total(), Ordering::Relaxed);
    }

    /// Sends the requests of the slots in `to_send`, a batch at a time.
    /// Frames the kernel did not take are lost: the timeout scan resends
    /// them.
    fn send(&mut self, tx: &mut TxBatch, sock: &PacketSocket, to_send: &[usize]) {
        for batch in to_send.chunks(MAX_BATCH) {
            let frames = batch.iter().map(|&s| {
                let start = s * self.slot_len;
                &self.bufs[start..start + self.slots[s].len as usize]
            });
            match tx.send(sock, frames) {
                Ok(k) if k == batch.len() => {}
                _ => self.r.errors.send += 1,
            }
        }
    }

    fn run(mut self, sock: PacketSocket, stop: &AtomicBool, live: &Live) -> Report {
        let mut tx = TxBatch::new();
        let mut rx = RxBatch::new(self.cfg.rx_frame_len);
        let mut to_send: Vec<usize> = Vec::with_capacity(self.cfg.depth);
        let scan_every =
            (self.cfg.timeout / 4).clamp(Duration::from_micros(500), Duration::from_millis(10));
        let mut next_scan = Instant::now() + scan_every;
        let mut stop_at: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let stopping = stop.load(Ordering::Relaxed)
                || self.seq_done
                || self.cfg.deadline.is_some_and(|d| now >= d);
            if stopping {
                let t = *stop_at.get_or_insert(now);
                if self.inflight == 0 || now.duration_since(t) > DRAIN_LIMIT {
                    self.r.errors.timeout += self.inflight as u64;
                    break;
                }
            } else {
                while let Some(s) = self.free.pop() {
                    if !self.issue(s, now) {
                        self.free.push(s);
                        break;
                    }
                    to_send.push(s);
                }
            }
            if now >= next_scan {
                self.scan_timeouts(now, &mut to_send);
                next_scan = now + scan_every;
            }
            let sent_any = !to_send.is_empty();
            self.send(&mut tx, &sock, &to_send);
            to_send.clear();
            let wait = !self.cfg.busy_poll && !sent_any && self.inflight > 0;
            // No more replies are due than requests in flight (stale ones
            // wait for the next call).
            let n = match rx.recv(&sock, wait, self.inflight) {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("aoe-bench: thread {}: recvmmsg: {e}", self.cfg.id);
                    std::thread::sleep(Duration::from_millis(1));
                    0
                }
            };
            if n > 0 {
                let t = Instant::now();
                for k in 0..n {
                    self.complete(rx.frame(k), t);
                }
                self.publish(live);
            }
        }
        self.r.end = Instant::now();
        self.publish(live);
        live.done.store(true, Ordering::Release);
        self.r
    }
}

pub fn run(cfg: Config, sock: PacketSocket, stop: &AtomicBool, live: &Live) -> Report {
    Worker::new(cfg).run(sock, stop, live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_layout() {
        let t = make_tag(5, 4095, 0xabc);
        assert_eq!(t >> 31, 1);
        assert_eq!(split_tag(t), Some((5, 4095)));
        assert_eq!(t & 0xfff, 0xabc);
        // The fanout program reads byte 0 of the tag & 0x7f.
        assert_eq!(t.to_be_bytes()[0] & 0x7f, 5);
        // Tags without bit 31 are not ours.
        assert_eq!(split_tag(0x0512_3456), None);
        // The slot field holds every slot of a thread.
        assert_eq!(
            split_tag(make_tag(0, MAX_DEPTH_PER_THREAD - 1, 0)),
            Some((0, 4095))
        );
    }
}
