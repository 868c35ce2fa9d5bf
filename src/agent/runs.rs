//! The agent's table of runs: which attempts it has accepted, which are running, and their stop
//! signals.
//!
//! Dispatch is at-least-once, so the same `(execution_id, attempt)` may arrive twice (a retried
//! request whose first answer was lost). The table remembers the last [`SEEN_MAX`] accepted pairs
//! (FIFO eviction) and answers a repeat as a duplicate instead of running it again. A pair turned
//! away at capacity is not remembered, so the node may send it again later.
//!
//! Everything sits behind one `std::sync::Mutex`: each operation is a few map updates with no
//! `.await` inside, far shorter than an HTTP request.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::run::{Stop, StopSignal};

/// How many accepted `(execution_id, attempt)` pairs are remembered for deduplication.
pub const SEEN_MAX: usize = 10_000;

/// An attempt: `(execution_id, attempt)`.
pub type RunKey = (u64, u32);

/// What [`Runs::admit`] decided.
#[derive(Debug)]
pub enum Admission {
    /// Run it; the receiver is its stop signal.
    Start(StopSignal),
    /// Already accepted (running or done): do not run again.
    Duplicate,
    /// `capacity` runs are going; try later or elsewhere.
    AtCapacity(u32),
    /// The agent is shutting down.
    Closed,
}

#[derive(Debug, Default)]
struct Table {
    /// Accepted pairs, for deduplication; `order` is the same set, oldest first, for eviction.
    seen: HashSet<RunKey>,
    order: VecDeque<RunKey>,
    /// Runs in progress and the sending side of their stop signal.
    running: HashMap<RunKey, watch::Sender<Option<Stop>>>,
    /// Set by [`Runs::stop_all`]: nothing new is admitted.
    closed: bool,
}

/// The run table; shared by the server and the run tasks.
#[derive(Debug)]
pub struct Runs {
    table: Mutex<Table>,
    /// Most concurrent runs; 0 = unlimited.
    capacity: u32,
    /// Woken whenever the table becomes empty (for shutdown).
    idle: Notify,
}

impl Runs {
    pub fn new(capacity: u32) -> Self {
        Runs { table: Mutex::new(Table::default()), capacity, idle: Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides whether `key` may start, and records it as running if so.
    pub fn admit(&self, key: RunKey) -> Admission {
        let mut t = self.lock();
        if t.seen.contains(&key) || t.running.contains_key(&key) {
            return Admission::Duplicate;
        }
        if t.closed {
            return Admission::Closed;
        }
        if self.capacity > 0 && t.running.len() >= self.capacity as usize {
            return Admission::AtCapacity(self.capacity);
        }
        if t.order.len() >= SEEN_MAX {
            if let Some(old) = t.order.pop_front() {
                t.seen.remove(&old);
            }
        }
        t.seen.insert(key);
        t.order.push_back(key);
        let (tx, rx) = watch::channel(None);
        t.running.insert(key, tx);
        Admission::Start(rx)
    }

    /// Signals the running attempts of `execution_id` (`attempt` 0: all of them) to stop. `true`
    /// if any was running.
    pub fn stop(&self, execution_id: u64, attempt: u32, reason: &str) -> bool {
        let t = self.lock();
        let mut any = false;
        for (_, tx) in t.running.iter().filter(|((e, a), _)| *e == execution_id && (attempt == 0 || *a == attempt)) {
            signal(tx, Stop::Request(reason.to_string()));
            any = true;
        }
        any
    }

    /// Removes a finished run.
    pub fn finish(&self, key: RunKey) {
        let mut t = self.lock();
        t.running.remove(&key);
        if t.running.is_empty() {
            self.idle.notify_waiters();
        }
    }

    pub fn running(&self) -> usize {
        self.lock().running.len()
    }

    /// Refuses new runs and tells every running one to stop.
    pub fn stop_all(&self) {
        let mut t = self.lock();
        t.closed = true;
        for tx in t.running.values() {
            signal(tx, Stop::Shutdown);
        }
    }

    /// Waits until no run is left, at most `limit`; `true` if none is.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.running() == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

/// Sets a run's stop signal unless it is already set: the first cause wins, so a run being
/// cancelled on request still reports `cancelled` if the agent shuts down meanwhile.
fn signal(tx: &watch::Sender<Option<Stop>>, stop: Stop) {
    tx.send_if_modified(|s| {
        let unset = s.is_none();
        if unset {
            *s = Some(stop);
        }
        unset
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_admitted_once_even_after_it_finished() {
        let runs = Runs::new(0);
        assert!(matches!(runs.admit((1, 1)), Admission::Start(_)));
        assert!(matches!(runs.admit((1, 1)), Admission::Duplicate));
        runs.finish((1, 1));
        assert!(matches!(runs.admit((1, 1)), Admission::Duplicate));
        assert!(matches!(runs.admit((1, 2)), Admission::Start(_)), "a new attempt is a new run");
    }

    #[test]
    fn the_dedupe_table_forgets_the_oldest_pairs() {
        let runs = Runs::new(0);
        for id in 0..(SEEN_MAX as u64 + 5) {
            assert!(matches!(runs.admit((id, 1)), Admission::Start(_)));
            runs.finish((id, 1));
        }
        assert!(matches!(runs.admit((SEEN_MAX as u64 + 4, 1)), Admission::Duplicate));
        assert!(matches!(runs.admit((0, 1)), Admission::Start(_)), "evicted, so admitted again");
        assert!(runs.lock().seen.len() <= SEEN_MAX);
    }

    #[test]
    fn capacity_turns_runs_away_without_remembering_them() {
        let runs = Runs::new(1);
        assert!(matches!(runs.admit((1, 1)), Admission::Start(_)));
        assert!(matches!(runs.admit((2, 1)), Admission::AtCapacity(1)));
        runs.finish((1, 1));
        assert!(matches!(runs.admit((2, 1)), Admission::Start(_)));
    }

    #[test]
    fn stop_reaches_the_matching_attempts_and_keeps_the_first_reason() {
        let runs = Runs::new(0);
        let Admission::Start(a1) = runs.admit((7, 1)) else { panic!() };
        let Admission::Start(a2) = runs.admit((7, 2)) else { panic!() };
        assert!(runs.stop(7, 2, "stopped"));
        assert_eq!((a1.borrow().clone(), a2.borrow().clone()), (None, Some(Stop::Request("stopped".into()))));
        assert!(runs.stop(7, 0, "timeout"));
        assert_eq!(*a1.borrow(), Some(Stop::Request("timeout".into())));
        assert_eq!(*a2.borrow(), Some(Stop::Request("stopped".into())));
        assert!(!runs.stop(8, 0, ""));
        runs.stop_all();
        assert!(matches!(runs.admit((9, 1)), Admission::Closed));
    }
}
