//! The dispatcher's memory of one leadership term: which executions wait for an attempt, which
//! attempts run where and until when, and which executors must be told to stop.
//!
//! It is rebuilt from the replicated state at the start of every term (and whenever the
//! dispatcher lost track, e.g. a lagged notification), then kept current by observing each
//! execution the state machine applied. Nothing here is authoritative: apply decides, the book
//! only says what to propose or send next. Pure data, no I/O, so it is unit-tested directly.

use std::collections::{BTreeSet, HashMap};

use cronraft_raft::model::{Execution, ExecutionStatus};

/// A running attempt as the dispatcher tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub attempt: u32,
    pub executor_id: u64,
    pub base_url: String,
    /// When the attempt times out (leader clock, ms).
    pub deadline_ms: i64,
    /// Whether this term already sent `/execute` for it (a new term sends again: at-least-once).
    pub sent: bool,
}

/// An executor to tell to stop a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopOrder {
    pub base_url: String,
    pub execution_id: u64,
    pub attempt: u32,
    pub reason: &'static str,
}

#[derive(Debug, Default)]
pub struct Book {
    /// Pending executions by (not before, id): the next attempt's number is in `next_attempt`.
    due: BTreeSet<(i64, u64)>,
    pending: HashMap<u64, (i64, u32)>,
    /// Items proposed in a dispatch round and not yet seen applied.
    proposed: HashMap<u64, u32>,
    running: HashMap<u64, Running>,
    deadlines: BTreeSet<(i64, u64)>,
    /// Timeouts proposed and not yet seen applied (not proposed twice).
    timing_out: HashMap<u64, u32>,
    unsent: BTreeSet<u64>,
    stops: Vec<StopOrder>,
}

impl Book {
    /// Folds in the current state of an execution; `timeout_ms` gives its task's timeout (asked
    /// only when a new running attempt needs a deadline: it reads the task).
    pub fn observe(&mut self, e: &Execution, timeout_ms: impl FnOnce() -> i64) {
        let id = e.id;
        if let Some((nb, _)) = self.pending.remove(&id) {
            self.due.remove(&(nb, id));
        }
        self.proposed.remove(&id);
        let waiting = e.status == ExecutionStatus::Pending && !e.queued;
        let current = e.current_attempt().filter(|_| e.status == ExecutionStatus::Running);
        if let Some(old) = self.running.get(&id).cloned() {
            if current.map(|a| a.number) != Some(old.attempt) {
                self.forget_running(id, &old);
                let ended = e.attempts.iter().find(|a| a.number == old.attempt).map(|a| a.status);
                let reason = match ended {
                    Some(ExecutionStatus::Cancelled) => {
                        Some(if e.reason == Some(cronraft_raft::model::Reason::Replaced) {
                            "replaced"
                        } else {
                            "stopped"
                        })
                    }
                    Some(ExecutionStatus::Timeout) => Some("timeout"),
                    _ => None,
                };
                if let Some(reason) = reason {
                    self.stops.push(StopOrder {
                        base_url: old.base_url,
                        execution_id: id,
                        attempt: old.attempt,
                        reason,
                    });
                }
            }
        }
        if waiting {
            let next = e.attempt_count + 1;
            self.pending.insert(id, (e.not_before_ms, next));
            self.due.insert((e.not_before_ms, id));
        }
        if let Some(a) = current {
            if !self.running.contains_key(&id) && a.executor_id != 0 {
                let deadline_ms = a.dispatched_ms.saturating_add(timeout_ms());
                self.deadlines.insert((deadline_ms, id));
                self.unsent.insert(id);
                let r = Running {
                    attempt: a.number,
                    executor_id: a.executor_id,
                    base_url: a.base_url.clone(),
                    deadline_ms,
                    sent: false,
                };
                self.running.insert(id, r);
            }
        }
    }

    fn forget_running(&mut self, id: u64, old: &Running) {
        self.running.remove(&id);
        self.deadlines.remove(&(old.deadline_ms, id));
        self.unsent.remove(&id);
        self.timing_out.remove(&id);
    }

    /// Pending executions whose backoff has passed, as (id, next attempt), at most `max`; they
    /// count as proposed until observed again.
    pub fn take_due(&mut self, now_ms: i64, max: usize) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(&(nb, id)) = self.due.first() else { break };
            if nb > now_ms {
                break;
            }
            self.due.pop_first();
            if let Some((_, next)) = self.pending.remove(&id) {
                self.proposed.insert(id, next);
                out.push((id, next));
            }
        }
        out
    }

    /// A proposed item that apply did not act on (stale, or the round failed): wait again.
    pub fn unpropose(&mut self, id: u64, not_before_ms: i64) {
        if let Some(next) = self.proposed.remove(&id) {
            self.pending.insert(id, (not_before_ms, next));
            self.due.insert((not_before_ms, id));
        }
    }

    /// Running attempts this term has not sent yet, at most `max`; marked sent.
    pub fn take_unsent(&mut self, max: usize) -> Vec<(u64, Running)> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(id) = self.unsent.pop_first() else { break };
            if let Some(r) = self.running.get_mut(&id) {
                r.sent = true;
                out.push((id, r.clone()));
            }
        }
        out
    }

    /// An attempt whose send could not start (no capacity this round): send it later.
    pub fn unsend(&mut self, id: u64) {
        if let Some(r) = self.running.get_mut(&id) {
            r.sent = false;
            self.unsent.insert(id);
        }
    }

    /// Running attempts past their deadline that were not yet proposed as timed out.
    pub fn take_expired(&mut self, now_ms: i64) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        for &(deadline, id) in self.deadlines.iter() {
            if deadline > now_ms {
                break;
            }
            if let Some(r) = self.running.get(&id) {
                if self.timing_out.insert(id, r.attempt).is_none() {
                    out.push((id, r.attempt));
                }
            }
        }
        out
    }

    /// A timeout proposal failed: propose it again next round.
    pub fn untime(&mut self, id: u64) {
        self.timing_out.remove(&id);
    }

    pub fn take_stops(&mut self) -> Vec<StopOrder> {
        std::mem::take(&mut self.stops)
    }

    /// When the loop should next wake for a backoff or a deadline.
    pub fn next_wake_ms(&self) -> Option<i64> {
        let due = self.due.first().map(|(t, _)| *t);
        let deadline = self.deadlines.iter().find(|(_, id)| !self.timing_out.contains_key(id)).map(|(t, _)| *t);
        match (due, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len() + self.proposed.len()
    }

    pub fn running_len(&self) -> usize {
        self.running.len()
    }

    pub fn has_unsent(&self) -> bool {
        !self.unsent.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cronraft_raft::model::{Attempt, Reason, Trigger};

    fn exec(id: u64, status: ExecutionStatus) -> Execution {
        Execution {
            id,
            task_id: 1,
            scheduled_ms: 0,
            created_ms: 0,
            start_ms: None,
            end_ms: None,
            status,
            trigger: Trigger::Schedule,
            reason: None,
            queued: false,
            parameters: String::new(),
            requested_by: String::new(),
            result: String::new(),
            logs: String::new(),
            retry_count: 0,
            log_index: 1,
            slot_count: 1,
            attempts: Vec::new(),
            attempt_count: 0,
            not_before_ms: 0,
        }
    }

    fn attempt(number: u32, status: ExecutionStatus) -> Attempt {
        Attempt {
            number,
            executor_id: 7,
            instance_id: "a".into(),
            base_url: "http://x".into(),
            dispatched_ms: 1_000,
            end_ms: None,
            status,
            term: 1,
            log_index: 2,
            callback_token: "t".into(),
            error: String::new(),
        }
    }

    #[test]
    fn a_pending_execution_is_proposed_once_then_sent_once_then_timed_out_once() {
        let mut book = Book::default();
        // Phase 1: pending → due once; proposing it again before it is observed is impossible.
        book.observe(&exec(1, ExecutionStatus::Pending), || 5_000);
        assert_eq!(book.take_due(0, 10), vec![(1, 1)]);
        assert!(book.take_due(0, 10).is_empty());
        // Phase 2: applied as running → sent once.
        let mut e = exec(1, ExecutionStatus::Running);
        (e.attempts, e.attempt_count) = (vec![attempt(1, ExecutionStatus::Running)], 1);
        book.observe(&e, || 5_000);
        assert_eq!(book.take_unsent(10).len(), 1);
        assert!(book.take_unsent(10).is_empty());
        // Phase 3: past the deadline → one timeout proposal, not one per tick.
        assert!(book.take_expired(5_999).is_empty());
        assert_eq!(book.take_expired(6_000), vec![(1, 1)]);
        assert!(book.take_expired(7_000).is_empty());
        // Phase 4: applied as timed out → the executor is told to stop.
        e.status = ExecutionStatus::Timeout;
        e.attempts[0].status = ExecutionStatus::Timeout;
        book.observe(&e, || 5_000);
        let stops = book.take_stops();
        assert_eq!((stops.len(), stops[0].reason), (1, "timeout"));
        assert_eq!((book.pending_len(), book.running_len()), (0, 0));
    }

    #[test]
    fn a_retry_waits_for_its_backoff_and_a_stop_after_replace_says_replaced() {
        let mut book = Book::default();
        let mut e = exec(2, ExecutionStatus::Pending);
        (e.not_before_ms, e.attempt_count) = (10_000, 1);
        book.observe(&e, || 1_000);
        assert!(book.take_due(9_999, 10).is_empty());
        assert_eq!(book.take_due(10_000, 10), vec![(2, 2)]);
        let mut r = exec(3, ExecutionStatus::Running);
        (r.attempts, r.attempt_count) = (vec![attempt(1, ExecutionStatus::Running)], 1);
        book.observe(&r, || 1_000);
        (r.status, r.reason, r.attempts[0].status) =
            (ExecutionStatus::Cancelled, Some(Reason::Replaced), ExecutionStatus::Cancelled);
        book.observe(&r, || 1_000);
        assert_eq!(book.take_stops()[0].reason, "replaced");
    }
}
