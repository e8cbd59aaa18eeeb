//! Per-queue counters: each worker publishes its own once per batch; the
//! main thread logs them as key=value lines that are easy to graph.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use aoe_proto::Action;

/// Declares the counters once: the struct, and the key each is logged as.
macro_rules! counters {
    ($($(#[$doc:meta])* $field:ident => $key:literal,)*) => {
        /// Counters one worker keeps in plain integers on its hot path.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct Counters {
            $($(#[$doc])* pub $field: u64,)*
        }

        const FIELDS: usize = [$($key),*].len();

        impl Counters {
            /// (log key, value) of every counter, in log order.
            pub fn fields(&self) -> [(&'static str, u64); FIELDS] {
                [$(($key, self.$field)),*]
            }

            fn from_values(values: [u64; FIELDS]) -> Self {
                let mut v = values.into_iter();
                Self { $($field: v.next().unwrap_or_default(),)* }
            }
        }
    };
}

counters! {
    rx_frames => "rx",
    tx_frames => "tx",
    /// Frames that were not AoE requests for us, or that had no answer.
    ignored => "ignored",
    /// Requests dropped because their source was a group (multicast or
    /// broadcast) address.
    bad_source => "bad_source",
    reads => "reads",
    writes => "writes",
    read_bytes => "read_bytes",
    write_bytes => "write_bytes",
    flushes => "flushes",
    /// Requests answered with an ATA or AoE error.
    errors => "errors",
    /// Broadcast answers skipped because no spare frame was free.
    no_frame => "no_frame",
    /// Storage reads, writes or flushes that failed (answered with ATA errors).
    io_errors => "io_errors",
    /// Group commits: durability barriers (fdatasync), each shared by the
    /// durable writes the worker held for one export.
    commits => "commits",
    /// Durable writes that found their export idle and went alone, as one
    /// RWF_DSYNC write instead of a write and a barrier.
    solo_writes => "solo_writes",
}

impl Counters {
    fn values(&self) -> [u64; FIELDS] {
        self.fields().map(|(_, v)| v)
    }

    pub fn add(self, other: Self) -> Self {
        let (a, b) = (self.values(), other.values());
        Self::from_values(std::array::from_fn(|i| a[i] + b[i]))
    }

    /// Counts the storage work the protocol core asked for.
    pub fn count(&mut self, action: &Action) {
        match action {
            Action::Read(io, _) => {
                self.reads += 1;
                self.read_bytes += io.len() as u64;
            }
            Action::Write(io, _) => {
                self.writes += 1;
                self.write_bytes += io.len() as u64;
            }
            Action::Flush(_) => self.flushes += 1,
            Action::Drop(_) | Action::Reply(_) => {}
        }
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.fields().into_iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{key}={value}")?;
        }
        Ok(())
    }
}

/// The published copy, read by the main thread.
#[derive(Debug, Default)]
pub struct SharedCounters([AtomicU64; FIELDS]);

impl SharedCounters {
    /// Single writer (the queue's worker), so plain stores suffice.
    pub fn publish(&self, c: &Counters) {
        for (slot, v) in self.0.iter().zip(c.values()) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> Counters {
        Counters::from_values(std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_log_as_key_value_pairs_and_add_up() {
        let a = Counters {
            rx_frames: 3,
            io_errors: 1,
            ..Counters::default()
        };
        let sum = a.add(a);
        assert_eq!((sum.rx_frames, sum.io_errors, sum.tx_frames), (6, 2, 0));
        assert_eq!(
            sum.to_string(),
            "rx=6 tx=0 ignored=0 bad_source=0 reads=0 writes=0 read_bytes=0 write_bytes=0 \
             flushes=0 errors=0 no_frame=0 io_errors=2 commits=0 solo_writes=0"
        );
        let shared = SharedCounters::default();
        shared.publish(&sum);
        assert_eq!(shared.snapshot(), sum);
    }
}
