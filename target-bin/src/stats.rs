//! Per-queue counters: each worker publishes its own once per batch; the
//! main thread logs them as key=value lines that are easy to graph.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters one worker keeps in plain integers on its hot path.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Frames that were not AoE requests for us, or that had no answer.
    pub ignored: u64,
    /// Requests dropped because their source was a group (multicast or
    /// broadcast) address.
    pub bad_source: u64,
    pub reads: u64,
    pub writes: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub flushes: u64,
    /// Requests answered with an ATA or AoE error.
    pub errors: u64,
    /// Broadcast answers skipped because no spare frame was free.
    pub no_frame: u64,
    /// Storage reads, writes or flushes that failed (answered with ATA errors).
    pub io_errors: u64,
}

const FIELDS: usize = 12;

impl Counters {
    fn to_array(self) -> [u64; FIELDS] {
        [
            self.rx_frames,
            self.tx_frames,
            self.ignored,
            self.bad_source,
            self.reads,
            self.writes,
            self.read_bytes,
            self.write_bytes,
            self.flushes,
            self.errors,
            self.no_frame,
            self.io_errors,
        ]
    }

    fn from_array(a: [u64; FIELDS]) -> Self {
        Self {
            rx_frames: a[0],
            tx_frames: a[1],
            ignored: a[2],
            bad_source: a[3],
            reads: a[4],
            writes: a[5],
            read_bytes: a[6],
            write_bytes: a[7],
            flushes: a[8],
            errors: a[9],
            no_frame: a[10],
            io_errors: a[11],
        }
    }

    pub fn add(self, other: Self) -> Self {
        let (a, b) = (self.to_array(), other.to_array());
        Self::from_array(std::array::from_fn(|i| a[i] + b[i]))
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rx={} tx={} ignored={} bad_source={} reads={} writes={} read_bytes={} write_bytes={} flushes={} errors={} no_frame={} io_errors={}",
            self.rx_frames,
            self.tx_frames,
            self.ignored,
            self.bad_source,
            self.reads,
            self.writes,
            self.read_bytes,
            self.write_bytes,
            self.flushes,
            self.errors,
            self.no_frame,
            self.io_errors
        )
    }
}

/// The published copy, read by the main thread.
#[derive(Debug, Default)]
pub struct SharedCounters([AtomicU64; FIELDS]);

impl SharedCounters {
    /// Single writer (the queue's worker), so plain stores suffice.
    pub fn publish(&self, c: &Counters) {
        for (slot, v) in self.0.iter().zip(c.to_array()) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> Counters {
        Counters::from_array(std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }
}
