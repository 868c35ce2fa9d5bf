//! The leader's cron loop: fires every due slot, once, as one Raft entry per tick.
//!
//! It runs only while this node leads (the frame [`run_while_leader`] starts its term loop and
//! drops it when the term ends, and starts it again after a pause if the loop gave up while this
//! node still leads) and, each time it takes over, starts from the replicated state: it confirms leadership and waits until
//! everything committed is applied (`ensure_linearizable`), then builds its [`Timers`] from the
//! tasks. After that it follows the state through the state machine's apply notifications, so a
//! create, update, pause or delete reaches the timers right after it is applied.
//!
//! Each tick collects every due task, computes its slots since its watermark (including slots
//! that fell due while there was no leader — apply classifies late ones as misfires), and
//! proposes them as one `FireAndDispatch` entry, stamped with this leader's clock. Several entries
//! may be in flight, but the loop itself hands each one to RaftCore, so the log holds them in the
//! order they were collected (apply's watermark would drop an earlier slot that arrived after a
//! later one; see `Scheduler::enqueue`). A failed entry makes the loop rebuild its timers from
//! the replicated state, so a slot is never lost to an error, and never fired twice (apply's
//! watermark).

mod history;
mod metrics;
#[cfg(test)]
mod tests;
mod timers;
mod unsafe_early;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cronraft_raft::command::{Command, FireBatch, TaskFire};
use cronraft_raft::model::TaskStatus;
use cronraft_raft::state::StateView;
use cronraft_raft::store::{Applied, CommitClock, StateMachineStore};
use cronraft_raft::{NodeId, Raft, Response};
use tokio::sync::{broadcast, mpsc, watch, Semaphore};

pub use metrics::SchedulerMetrics;
pub use timers::Timers;

use crate::clock::{now_ms, seed};
use crate::leadership::run_while_leader;
use crate::propose::{Committed, InFlight, ProposeError, Proposer, PROPOSE_TIMEOUT};

/// Most slots in one fire entry. An entry is applied as one atomic sled batch, and sled holds a
/// process-wide write lock for a batch (every log append on the node waits for it): a fired and
/// dispatched slot writes about six keys, so 2,000 slots hold it for about 100 ms here. With
/// 20,000-slot entries a 100,000-slot burst stalled appends for seconds and heartbeats timed out.
/// A longer backlog goes out in the following entries.
const BATCH_SLOTS_MAX: usize = 2_000;
/// Fire entries in flight at once (up to 160,000 slots); slots that fall due while all are in
/// flight go into the next entry, so under load entries grow instead of multiplying fsyncs.
const INFLIGHT_MAX: usize = 80;
/// Longest sleep between ticks when nothing is due (the loop also wakes on every change).
const IDLE_TICK: Duration = Duration::from_secs(1);

/// What the scheduler needs from the node.
#[derive(Clone)]
pub struct Scheduler {
    pub node_id: NodeId,
    pub raft: Raft,
    pub sm: StateMachineStore,
    pub metrics: Arc<SchedulerMetrics>,
    /// When each log index was committed on this node (fed by the log store): fire lag is
    /// measured to the commit, which openraft's answer (sent after the apply) comes later than.
    pub commit_clock: Arc<CommitClock>,
}

/// Says on the scheduler's metrics that its term loop runs, for as long as it lives: the loop's
/// future is dropped by the frame when the term ends, so the reset is in `Drop`.
struct Running(Arc<SchedulerMetrics>);

impl Running {
    fn start(metrics: &Arc<SchedulerMetrics>) -> Running {
        metrics.running.store(1, Ordering::Relaxed);
        Running(metrics.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(0, Ordering::Relaxed);
        self.0.timers.store(0, Ordering::Relaxed);
    }
}

impl Scheduler {
    /// Runs until `stop` turns true: leads the cron loop whenever this node is the leader (the
    /// frame [`run_while_leader`] starts and drops the term loop).
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let (raft, node_id) = (self.raft.clone(), self.node_id);
        run_while_leader(raft, node_id, stop, "scheduler", |term| self.clone().lead(term)).await;
    }

    /// One leadership term of the cron loop. Returns only when it cannot go on (leadership could
    /// not be confirmed, the state machine is gone); the frame then starts it again if this
    /// node still leads.
    async fn lead(self, term: u64) {
        let _running = Running::start(&self.metrics);
        let mut events = self.sm.subscribe();
        let Some(mut timers) = self.rebuild().await else { return };
        let inflight = Arc::new(Semaphore::new(INFLIGHT_MAX));
        let (failed_tx, mut failed_rx) = mpsc::channel::<()>(INFLIGHT_MAX);
        loop {
            self.fire_due(term, &mut timers, &inflight, &failed_tx).await;
            self.metrics.timers.store(timers.len() as u64, Ordering::Relaxed);
            let wait = match timers.next_due() {
                Some(t) => Duration::from_millis((t - now_ms()).clamp(0, IDLE_TICK.as_millis() as i64) as u64),
                None => IDLE_TICK,
            };
            tokio::select! {
                event = events.recv() => match event {
                    Ok(applied) => self.follow(&mut timers, &applied),
                    Err(broadcast::error::RecvError::Lagged(_)) => match self.rebuild().await {
                        Some(t) => timers = t,
                        None => return,
                    },
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                Some(()) = failed_rx.recv() => match self.rebuild().await {
                    Some(t) => timers = t,
                    None => return,
                },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Timers from the replicated state, once everything committed is applied here.
    async fn rebuild(&self) -> Option<Timers> {
        if let Err(e) = self.raft.ensure_linearizable().await {
            tracing::warn!(error = %e, "scheduler could not confirm leadership");
            return None;
        }
        let view = self.sm.view();
        let mut timers = Timers::default();
        let mut after = 0;
        loop {
            let found = view.tasks_after(TaskStatus::Active, after, 1_000).ok()?;
            for task in &found {
                timers.upsert(task);
            }
            match found.last() {
                Some(t) if found.len() == 1_000 => after = t.id,
                _ => break,
            }
        }
        Some(timers)
    }

    /// Keeps the timers current with what was just applied.
    fn follow(&self, timers: &mut Timers, applied: &Applied) {
        let view = self.sm.view();
        for id in &applied.tasks {
            match view.task(*id) {
                Ok(Some(task)) => timers.upsert(&task),
                Ok(None) => timers.remove(*id),
                Err(e) => tracing::warn!(error = %e, task = id, "scheduler could not read a task"),
            }
        }
    }

    /// Proposes every due slot, in entries of at most [`BATCH_SLOTS_MAX`] slots.
    async fn fire_due(&self, term: u64, timers: &mut Timers, inflight: &Arc<Semaphore>, failed: &mpsc::Sender<()>) {
        let view = self.sm.view();
        loop {
            let now = now_ms();
            let started = std::time::Instant::now();
            let fires = collect(&view, timers, now);
            if fires.is_empty() {
                return;
            }
            if fires.len() >= 1_000 {
                let collect_ms = started.elapsed().as_millis() as u64;
                tracing::info!(tasks = fires.len(), collect_ms, "large fire batch collected");
            }
            let Ok(permit) = inflight.clone().acquire_owned().await else { return };
            // Handed to RaftCore here, one after the other, so the log holds the entries in the
            // order they were collected (see `enqueue`); only the wait for the commit is spawned.
            let Some(commit) = self.enqueue(term, &fires, now).await else {
                let _ = failed.try_send(());
                return;
            };
            let this = self.clone();
            let failed = failed.clone();
            tokio::spawn(async move {
                if !this.await_commit(commit, fires).await {
                    let _ = failed.try_send(());
                }
                drop(permit);
            });
        }
    }

    /// Hands one fire entry to RaftCore without waiting for its commit.
    ///
    /// Order matters. Apply drops a task's slots at or before its watermark, and the watermark
    /// only moves forward. If the entry holding a task's next slot were appended after the entry
    /// holding the slot after it, apply would drop the earlier slot as already fired, and no
    /// record would ever stand for it. (Regression: each entry used to be proposed from its own
    /// spawned task, and under load the runtime could run them in any order; the sustained
    /// benchmark found single slots without a record.) `propose_ff` (openraft's `client_write_ff`)
    /// returns once the request is on RaftCore's channel, which RaftCore reads in order, so calling it from this
    /// one loop keeps the log in collection order. `None` means RaftCore has stopped, or this
    /// node's storage is full (the term loop ends and starts again; the slots wait, accounted).
    async fn enqueue(&self, term: u64, fires: &[TaskFire], now: i64) -> Option<InFlight> {
        if unsafe_early::enabled() {
            let last_log_index = self.raft.metrics().borrow().last_log_index.unwrap_or(0);
            unsafe_early::dispatch_early(&self.sm.view(), fires, term, last_log_index);
        }
        // New runs get their first attempt in the same entry: one commit to the executor.
        let command = Command::FireAndDispatch { batch: FireBatch { tasks: fires.to_vec() }, seed: seed(), term };
        match Proposer::new(self.raft.clone(), PROPOSE_TIMEOUT).guarded(self.sm.space()).propose_ff(command, now).await
        {
            Ok(in_flight) => Some(in_flight),
            Err(e) => {
                tracing::info!(error = %e, "fire not proposed");
                None
            }
        }
    }

    /// Waits for an enqueued fire entry to commit; records fire lag. Returns whether it was
    /// committed.
    async fn await_commit(&self, commit: InFlight, fires: Vec<TaskFire>) -> bool {
        let started = commit.handed_over();
        match commit.committed().await {
            Ok(Committed { data, log_index }) => {
                let applied = now_ms();
                // The commit moment, as wall time; the answer itself only comes after the apply.
                let committed = self
                    .commit_clock
                    .committed_at(log_index)
                    .map(|at| applied - at.elapsed().as_millis() as i64)
                    .unwrap_or(applied);
                if let Response::Fired(outcome) = &data {
                    let commit_ms = started.elapsed().as_millis() as u64;
                    if fires.len() >= 1_000 {
                        tracing::info!(
                            ?outcome,
                            commit_ms,
                            apply_ms = applied - committed,
                            log_index,
                            "large fire batch committed"
                        );
                    }
                    tracing::debug!(?outcome, commit_ms, log_index, "fired");
                }
                let slots = || fires.iter().flat_map(|f| f.slots.iter());
                self.metrics.observe(slots().map(|s| (committed - s).max(0) as u64));
                self.metrics.observe_applied(slots().map(|s| (applied - s).max(0) as u64));
                let missed = if let Response::Fired(outcome) = &data { outcome.missed } else { 0 };
                self.metrics.observe_minute(committed, slots().map(|s| (committed - s).max(0) as u64), missed);
                self.metrics.batches.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e @ ProposeError::TimedOut(_)) => {
                tracing::warn!(error = %e, "fire entry not committed");
                false
            }
            Err(e) => {
                tracing::info!(error = %e, "fire not committed");
                false
            }
        }
    }
}

/// The fires of due tasks for one entry: tasks are taken one at a time until the entry holds
/// [`BATCH_SLOTS_MAX`] slots (a task lists at most `FIRE_SLOTS_PER_TASK_MAX`), so an entry stays
/// tens of KB, and its apply one short sled batch, however long the backlog. Tasks that changed
/// or vanished meanwhile are skipped: their timers are refreshed by the apply notification.
fn collect(view: &StateView, timers: &mut Timers, now: i64) -> Vec<TaskFire> {
    let mut fires = Vec::new();
    let mut slots = 0;
    while slots < BATCH_SLOTS_MAX {
        let Some(id) = timers.pop_due(now) else { break };
        match view.task(id) {
            Ok(Some(task)) => {
                if let Some(fire) = timers.fire(&task, now) {
                    slots += fire.slots.len();
                    fires.push(fire);
                }
            }
            Ok(None) => timers.remove(id),
            Err(e) => tracing::warn!(error = %e, task = id, "scheduler could not read a due task"),
        }
    }
    fires
}
