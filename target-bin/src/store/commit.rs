//! Group commit: the durable writes a worker holds for one export share
//! one durability barrier (an fdatasync through the ring). A completed
//! write waits here until a barrier that started after it completes; then
//! its acknowledgement leaves, together with the others of its group.
//!
//! One barrier per export is in flight at a time: writes that complete
//! meanwhile form the next group, so under load a barrier covers every
//! write of the window before it. A group starts when no write of its
//! export is still in flight (the rest of the batch would only wait for
//! the next barrier), or when it is big or old enough that waiting longer
//! would cost more latency than it saves.
//!
//! On a block device, a write that finds its export idle, and no other
//! write of it in the same batch, goes out alone as one RWF_DSYNC write
//! ("solo"): one durable write instead of a write and then a barrier
//! (measured in docs/design.md, which also says why files do not).

use std::time::{Duration, Instant};

/// A group this big starts its barrier even while writes are in flight.
const MAX_GROUP: usize = 256;
/// A group this old starts its barrier even while writes are in flight.
const MAX_WAIT: Duration = Duration::from_micros(500);

/// One export's writes on one worker, from submission to acknowledgement.
pub struct GroupCommit<W> {
    /// Writes submitted and not yet completed.
    in_flight: usize,
    /// Solo (RWF_DSYNC) writes submitted and not yet completed.
    solo_in_flight: usize,
    /// Completed writes that no barrier covers yet.
    waiting: Vec<W>,
    waiting_since: Option<Instant>,
    /// The writes the barrier in flight covers.
    covered: Vec<W>,
    barrier_in_flight: bool,
}

impl<W> Default for GroupCommit<W> {
    fn default() -> Self {
        Self {
            in_flight: 0,
            solo_in_flight: 0,
            waiting: Vec::with_capacity(64),
            waiting_since: None,
            covered: Vec::with_capacity(64),
            barrier_in_flight: false,
        }
    }
}

impl<W> GroupCommit<W> {
    pub fn write_started(&mut self) {
        self.in_flight += 1;
    }

    /// A write completed without error: it waits for a barrier.
    pub fn write_completed(&mut self, write: W) {
        self.in_flight -= 1;
        self.waiting_since.get_or_insert_with(Instant::now);
        self.waiting.push(write);
    }

    /// A write failed: it is answered at once, with its error.
    pub fn write_failed(&mut self) {
        self.in_flight -= 1;
    }

    pub fn solo_started(&mut self) {
        self.solo_in_flight += 1;
    }

    /// A solo write completed (durable, or failed): answered at once.
    pub fn solo_done(&mut self) {
        self.solo_in_flight -= 1;
    }

    /// Whether a barrier should start now (`force`: at shutdown, whatever
    /// is still in flight).
    pub fn wants_barrier(&self, force: bool) -> bool {
        if self.barrier_in_flight || self.waiting.is_empty() {
            return false;
        }
        force
            || self.in_flight == 0
            || self.waiting.len() >= MAX_GROUP
            || self
                .waiting_since
                .is_some_and(|since| since.elapsed() >= MAX_WAIT)
    }

    /// The barrier for every waiting write was submitted.
    pub fn barrier_started(&mut self) {
        debug_assert!(!self.barrier_in_flight && self.covered.is_empty());
        std::mem::swap(&mut self.waiting, &mut self.covered);
        self.waiting_since = None;
        self.barrier_in_flight = true;
    }

    /// The barrier completed: the writes it covered, to be answered.
    pub fn barrier_done(&mut self) -> std::vec::Drain<'_, W> {
        self.barrier_in_flight = false;
        self.covered.drain(..)
    }

    /// How many writes the barrier in flight covers.
    pub fn covered_len(&self) -> usize {
        self.covered.len()
    }

    /// Nothing held: no write in flight or waiting, no barrier.
    pub fn is_idle(&self) -> bool {
        self.in_flight == 0
            && self.solo_in_flight == 0
            && self.waiting.is_empty()
            && !self.barrier_in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_waits_for_its_writes_in_flight_then_shares_one_barrier() {
        let mut g = GroupCommit::default();
        for _ in 0..3 {
            g.write_started();
        }
        g.write_completed(1);
        g.write_completed(2);
        assert!(!g.wants_barrier(false), "a write of the group is in flight");
        assert!(g.wants_barrier(true), "shutdown does not wait");
        g.write_completed(3);
        assert!(g.wants_barrier(false));
        g.barrier_started();
        assert!(!g.wants_barrier(false));
        // A write that completes during the barrier is not covered by it.
        g.write_started();
        g.write_completed(4);
        assert!(!g.wants_barrier(false), "one barrier at a time");
        assert_eq!(g.barrier_done().collect::<Vec<_>>(), [1, 2, 3]);
        assert!(g.wants_barrier(false));
        g.barrier_started();
        assert_eq!(g.barrier_done().collect::<Vec<_>>(), [4]);
        assert!(g.is_idle());
    }

    #[test]
    fn failed_writes_leave_the_group_and_old_groups_do_not_wait() {
        let mut g = GroupCommit::default();
        g.write_started();
        g.write_started();
        g.write_failed();
        assert!(!g.wants_barrier(false), "nothing completed to cover");
        g.write_completed(7);
        assert!(g.wants_barrier(false));
        g.barrier_started();
        g.barrier_done().for_each(drop);
        g.write_started();
        g.write_started();
        g.write_completed(8);
        std::thread::sleep(MAX_WAIT);
        assert!(g.wants_barrier(false), "waited long enough");
    }
}
