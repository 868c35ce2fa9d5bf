//! The dispatcher's memory of one leadership term: which executions wait for an attempt, which
//! attempts run where and until when, and which executors must be told to stop.
//!
//! It is rebuilt from the replicated state at the start of every term (and whenever the
//! dispatcher lost track, e.g. a lagged notification), then kept current by observing each
//! execution the state machine applied. Nothing here is authoritative: apply decides, the book
//! only says what to propose or send next. Pure data, no I/O, so it is unit-tested directly.
//!
//! Times in the book are on the leader's *book clock* ([`Clock`]): milliseconds that advance with
//! the monotonic clock and never jump. Replicated times (a retry's `not_before_ms`, an attempt's
//! `dispatched_ms`) are wall-clock stamps; they are converted when observed. So a wall clock that
//! steps forward while attempts run does not time them out early (the chaos harness' `clock`
//! nemesis found exactly that: a bumped leader timed out a `skip` run and retried it while the
//! first attempt still ran), and one that steps back does not keep them running late.

use std::collections::{BTreeSet, HashMap};

use cronraft_raft::model::{Execution, ExecutionStatus};

/// The leader's two clocks at one moment: the wall clock (what replicated stamps are in) and the
/// book clock (what the book's deadlines and backoffs are in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub wall_ms: i64,
    pub book_ms: i64,
}

impl Clock {
    /// The book time of the wall-clock stamp `wall_ms`.
    pub fn at(&self, wall_ms: i64) -> i64 {
        self.book_ms.saturating_add(wall_ms.saturating_sub(self.wall_ms))
    }
}

/// A running attempt as the dispatcher tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub attempt: u32,
    pub executor_id: u64,
    /// The instance's id: with auth on, its signing key is derived from it.
    pub instance_id: String,
    pub base_url: String,
    /// When the attempt times out (book clock, ms).
    pub deadline_ms: i64,
    /// Whether this term already sent `/execute` for it (a new term sends again: at-least-once).
    pub sent: bool,
}

/// An executor to tell to stop a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopOrder {
    pub instance_id: String,
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
    /// Items proposed in a dispatch round and not yet seen applied: the attempt number, and the
    /// clocks when the round was proposed (its wall time is the attempt's `dispatched_ms`).
    proposed: HashMap<u64, (u32, Clock)>,
    running: HashMap<u64, Running>,
    deadlines: BTreeSet<(i64, u64)>,
    /// Timeouts proposed and not yet seen applied (not proposed twice).
    timing_out: HashMap<u64, u32>,
    unsent: BTreeSet<u64>,
    stops: Vec<StopOrder>,
}

impl Book {
    /// Folds in the current state of an execution at `clock`; `timeout_ms` gives its task's
    /// timeout (asked only when a new running attempt needs a deadline: it reads the task).
    ///
    /// A new running attempt's deadline, on the book clock: for an attempt this leader proposed,
    /// its timeout counted from that proposal's clocks (a wall-clock jump in between cannot eat
    /// it); for one an earlier leader proposed, its whole timeout from now, because this leader
    /// sends it again now and cannot know whether the executor ever received it.
    pub fn observe(&mut self, e: &Execution, clock: Clock, timeout_ms: impl FnOnce() -> i64) {
        let id = e.id;
        if let Some((nb, _)) = self.pending.remove(&id) {
            self.due.remove(&(nb, id));
        }
        let proposal = self.proposed.remove(&id);
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
                        instance_id: old.instance_id,
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
            let nb = clock.at(e.not_before_ms);
            self.pending.insert(id, (nb, next));
            self.due.insert((nb, id));
        }
        if let Some(a) = current {
            if !self.running.contains_key(&id) && a.executor_id != 0 {
                let timeout = timeout_ms().max(0);
                // Proposed by this leader: measured from the proposal's own clocks, so a
                // wall-clock jump between the proposal and now cannot eat the timeout.
                // (Regression: a jump forward in those few milliseconds timed the attempt out at
                // once; its retry then ran beside it.)
                // Proposed by an earlier leader: the whole timeout from now. This leader sends
                // it again now (below), and an executor that never got it starts it now.
                // (Regression: a partition kept a deposed leader from sending an attempt; the
                // next leader re-sent it 6 s after it was stamped and, the wall clock leaving
                // nothing of 5 s, timed it out at once; its retry ran beside it.)
                let deadline_ms = match proposal {
                    Some((number, at)) if number == a.number => {
                        let left = a.dispatched_ms.saturating_add(timeout).saturating_sub(at.wall_ms);
                        at.book_ms.saturating_add(left.clamp(0, timeout))
                    }
                    _ => clock.book_ms.saturating_add(timeout),
                };
                self.deadlines.insert((deadline_ms, id));
                self.unsent.insert(id);
                let r = Running {
                    attempt: a.number,
                    executor_id: a.executor_id,
                    instance_id: a.instance_id.clone(),
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
    pub fn take_due(&mut self, now: Clock, max: usize) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(&(nb, id)) = self.due.first() else { break };
            if nb > now.book_ms {
                break;
            }
            self.due.pop_first();
            if let Some((_, next)) = self.pending.remove(&id) {
                self.proposed.insert(id, (next, now));
                out.push((id, next));
            }
        }
        out
    }

    /// A proposed item that apply did not act on (stale, or the round failed): wait again.
    pub fn unpropose(&mut self, id: u64, not_before_ms: i64) {
        if let Some((next, _)) = self.proposed.remove(&id) {
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

    /// A clock whose wall and book times agree.
    const T0: Clock = Clock { wall_ms: 1_000, book_ms: 1_000 };

    /// Clocks at book time `book_ms` (the wall time plays no part in `take_due`).
    fn book_at(book_ms: i64) -> Clock {
        Clock { wall_ms: book_ms, book_ms }
    }

    #[test]
    fn a_pending_execution_is_proposed_once_then_sent_once_then_timed_out_once() {
        let mut book = Book::default();
        // Phase 1: pending → due once; proposing it again before it is observed is impossible.
        book.observe(&exec(1, ExecutionStatus::Pending), T0, || 5_000);
        assert_eq!(book.take_due(T0, 10), vec![(1, 1)]);
        assert!(book.take_due(T0, 10).is_empty());
        // Phase 2: applied as running → sent once.
        let mut e = exec(1, ExecutionStatus::Running);
        (e.attempts, e.attempt_count) = (vec![attempt(1, ExecutionStatus::Running)], 1);
        book.observe(&e, T0, || 5_000);
        assert_eq!(book.take_unsent(10).len(), 1);
        assert!(book.take_unsent(10).is_empty());
        // Phase 3: past the deadline → one timeout proposal, not one per tick.
        assert!(book.take_expired(5_999).is_empty());
        assert_eq!(book.take_expired(6_000), vec![(1, 1)]);
        assert!(book.take_expired(7_000).is_empty());
        // Phase 4: applied as timed out → the executor is told to stop.
        e.status = ExecutionStatus::Timeout;
        e.attempts[0].status = ExecutionStatus::Timeout;
        book.observe(&e, T0, || 5_000);
        let stops = book.take_stops();
        assert_eq!((stops.len(), stops[0].reason), (1, "timeout"));
        assert_eq!((book.pending_len(), book.running_len()), (0, 0));
    }

    #[test]
    fn a_retry_waits_for_its_backoff_and_a_stop_after_replace_says_replaced() {
        let mut book = Book::default();
        let mut e = exec(2, ExecutionStatus::Pending);
        (e.not_before_ms, e.attempt_count) = (10_000, 1);
        book.observe(&e, T0, || 1_000);
        assert!(book.take_due(book_at(9_999), 10).is_empty());
        assert_eq!(book.take_due(book_at(10_000), 10), vec![(2, 2)]);
        let mut r = exec(3, ExecutionStatus::Running);
        (r.attempts, r.attempt_count) = (vec![attempt(1, ExecutionStatus::Running)], 1);
        book.observe(&r, T0, || 1_000);
        (r.status, r.reason, r.attempts[0].status) =
            (ExecutionStatus::Cancelled, Some(Reason::Replaced), ExecutionStatus::Cancelled);
        book.observe(&r, T0, || 1_000);
        assert_eq!(book.take_stops()[0].reason, "replaced");
    }

    #[test]
    fn a_wall_clock_jump_does_not_move_a_running_attempts_deadline() {
        // Regression (chaos `clock` nemesis, seed 121): deadlines were wall-clock times, so a
        // leader whose clock jumped ahead timed out a running `skip` run at once and retried it
        // while the first attempt still ran (no_overlap failed).
        let mut book = Book::default();
        let mut e = exec(4, ExecutionStatus::Running);
        (e.attempts, e.attempt_count) = (vec![attempt(1, ExecutionStatus::Running)], 1);
        // Observed (proposed by an earlier leader) at book time 50,000: the whole 5 s from there.
        book.observe(&e, Clock { wall_ms: 1_200, book_ms: 50_000 }, || 5_000);
        // The wall clock now says two minutes later; only the book clock decides.
        assert!(book.take_expired(54_999).is_empty());
        assert_eq!(book.take_expired(55_000), vec![(4, 1)]);
        // An attempt stamped by a clock far ahead of ours gets the whole timeout, not more.
        let mut f = exec(5, ExecutionStatus::Running);
        (f.attempts, f.attempt_count) = (vec![attempt(1, ExecutionStatus::Running)], 1);
        book.observe(&f, Clock { wall_ms: -120_000, book_ms: 50_000 }, || 5_000);
        assert_eq!(book.take_expired(55_000), vec![(5, 1)]);
        // A retry's backoff is converted to the book clock too.
        let mut g = exec(6, ExecutionStatus::Pending);
        (g.not_before_ms, g.attempt_count) = (3_000, 1);
        book.observe(&g, Clock { wall_ms: 1_000, book_ms: 50_000 }, || 5_000);
        assert!(book.take_due(book_at(51_999), 10).is_empty());
        assert_eq!(book.take_due(book_at(52_000), 10), vec![(6, 2)]);
    }
    #[test]
    fn a_wall_clock_jump_between_proposing_an_attempt_and_seeing_it_applied_leaves_its_timeout_whole() {
        // Regression (the `chaos_clock_smoke` test, seed 9, once in a debug build): the leader's
        // clock jumped 16.8 s ahead in the milliseconds between proposing a dispatch round and
        // seeing it applied. The attempt's deadline was what the new wall clock left of its
        // timeout, nothing: it timed out at once, its retry started a second later, and the
        // first attempt (a 1.5 s run) was still running (no_overlap failed).
        let mut book = Book::default();
        book.observe(&exec(7, ExecutionStatus::Pending), T0, || 5_000);
        // Phase 1: proposed with the clocks of this pass (its wall time stamps the attempt).
        let proposed_at = Clock { wall_ms: 1_000, book_ms: 70_000 };
        assert_eq!(book.take_due(proposed_at, 10), vec![(7, 1)]);
        // Phase 2: applied, and observed after the wall clock jumped 16.8 s ahead.
        let mut e = exec(7, ExecutionStatus::Running);
        (e.attempts, e.attempt_count) = (vec![attempt(1, ExecutionStatus::Running)], 1);
        book.observe(&e, Clock { wall_ms: 17_810, book_ms: 70_010 }, || 5_000);
        // Phase 3: the whole 5 s from the proposal, by the book clock.
        assert!(book.take_expired(74_999).is_empty(), "timed out early");
        assert_eq!(book.take_expired(75_000), vec![(7, 1)]);
    }

    #[test]
    fn an_attempt_an_earlier_leader_never_sent_gets_its_whole_timeout_from_the_resend() {
        // Regression (300 s chaos run, partition families, seed 12; no_overlap failed): a
        // partition kept the leader of term 63 from sending attempt 1 of a `skip` run. The
        // leader of term 71 rebuilt its book 6 s after the attempt was stamped, sent it, and
        // gave it what the wall clock left of its 5 s timeout: nothing. It timed the attempt out
        // at once and retried 1 s later, while the executor ran attempt 1 (1.5 s).
        let mut book = Book::default();
        let mut e = exec(8, ExecutionStatus::Running);
        (e.attempts, e.attempt_count) = (vec![attempt(1, ExecutionStatus::Running)], 1);
        // Phase 1: a new leader observes it 6 s after its stamp (dispatched_ms 1,000).
        book.observe(&e, Clock { wall_ms: 7_000, book_ms: 90_000 }, || 5_000);
        // Phase 2: it is sent again now, so the executor may start it now.
        assert_eq!(book.take_unsent(10).len(), 1);
        // Phase 3: the whole 5 s from the resend before it can time out.
        assert!(book.take_expired(94_999).is_empty(), "timed out before its timeout from the resend");
        assert_eq!(book.take_expired(95_000), vec![(8, 1)]);
    }
}
