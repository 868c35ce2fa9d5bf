//! When each log index was committed, as this node saw it: the time behind the scheduler's
//! fire lag.
//!
//! The fire lag is "commit time of the fire − its slot". openraft answers a write only
//! after the leader has *applied* it, and applying a burst of tens of thousands of slots takes
//! far longer than committing it, so the answer's arrival is not the commit time. openraft 0.9
//! does tell the log store the moment the commit index moves (`save_committed`, called by
//! RaftCore before it hands the entries to the state machine); [`CommitClock`] keeps those
//! moments, so whoever waited for an entry's answer can look up when it was really committed.
//!
//! It holds monotonic instants, not wall time: it is a metric, never state, and it keeps the
//! storage crate free of wall clocks. Nothing here is persisted; after a restart it starts empty.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

/// Most commit advances remembered. Each is 24 bytes; an answer is looked up within moments of
/// its commit, so a few thousand advances cover any entry still waiting.
const ADVANCES_MAX: usize = 4_096;

/// A bounded record of (committed index, when it became committed), in commit order.
#[derive(Default)]
pub struct CommitClock {
    /// Advances, oldest first; indexes strictly increase. Locked for a push or one lookup.
    advances: Mutex<VecDeque<(u64, Instant)>>,
}

impl CommitClock {
    /// Notes that everything up to `index` is committed as of `at`. An index that does not move
    /// the commit point forward (a repeat after a restart of RaftCore) is ignored.
    pub fn record(&self, index: u64, at: Instant) {
        let mut a = self.advances.lock().unwrap_or_else(|p| p.into_inner());
        if a.back().is_some_and(|(last, _)| *last >= index) {
            return;
        }
        if a.len() == ADVANCES_MAX {
            a.pop_front();
        }
        a.push_back((index, at));
    }

    /// When `index` became committed: the first advance that reached it. `None` when it is not
    /// committed yet, or committed so long ago that its advance was forgotten. The clock starts
    /// empty with the process, so an index committed before a restart reads as committed at the
    /// first advance after it (the scheduler only asks about entries it proposed since).
    pub fn committed_at(&self, index: u64) -> Option<Instant> {
        let a = self.advances.lock().unwrap_or_else(|p| p.into_inner());
        let first_reaching = a.partition_point(|(i, _)| *i < index);
        let (_, at) = a.get(first_reaching)?;
        // The advance before it (if remembered) must be below `index`, or the moment is unknown.
        let known = first_reaching > 0 || a.len() < ADVANCES_MAX;
        known.then_some(*at)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_index_is_committed_at_the_first_advance_that_reached_it() {
        let clock = CommitClock::default();
        let t0 = Instant::now();
        let t = |ms| t0 + Duration::from_millis(ms);
        clock.record(5, t(10));
        clock.record(9, t(20));
        clock.record(9, t(30)); // a repeat does not move the moment
        clock.record(4, t(40)); // nor does an index behind the commit point
        assert_eq!(clock.committed_at(1), Some(t(10)));
        assert_eq!(clock.committed_at(5), Some(t(10)));
        assert_eq!(clock.committed_at(6), Some(t(20)));
        assert_eq!(clock.committed_at(9), Some(t(20)));
        assert_eq!(clock.committed_at(10), None, "not committed yet");
    }

    #[test]
    fn a_forgotten_advance_gives_no_moment_rather_than_a_wrong_one() {
        let clock = CommitClock::default();
        let t0 = Instant::now();
        for i in 0..(ADVANCES_MAX as u64 + 10) {
            clock.record(10 * (i + 1), t0 + Duration::from_millis(i));
        }
        // Index 5 was committed by the very first advance (10), which is gone; the oldest kept
        // advance (110) may be later than its real commit.
        assert_eq!(clock.committed_at(5), None);
        assert_eq!(clock.committed_at(105), None);
        assert_eq!(clock.committed_at(115), Some(t0 + Duration::from_millis(11)));
    }
}
