//! One execution's life in apply, from admission to its end: admit (the execution mode), dispatch
//! (an attempt on an instance), attempt close, retry with backoff, settle (write the record and
//! its indexes), and the `sequential` queue.
//!
//! ```text
//!  admit ─┬─► skipped (the mode refused the slot)
//!         ├─► queued ──── its turn (settle of the run before it) ───┐
//!         └─► pending ◄─────────────────────────────────────────────┤◄── retry after a backoff,
//!               │ dispatch_one: an attempt on an instance           │    failover at once
//!               ▼                                                   │
//!             running ── report / attempt end / stop ──► close_attempt
//!                                                                   │ success, or no retry left
//!                                                                   ▼
//!                                        final ── settle ──► start the next queued run
//! ```
//!
//! [`super::fire`] and manual triggers ([`trigger`]) admit runs; [`super::dispatch`]'s command
//! handlers find the execution a command is about, check it, and hand it here. Nothing here
//! calls back into either: the lifecycle is one module, used by the ones above it. Every attempt
//! is numbered and carries a callback token, so a retried round, a late report or a report from
//! a previous attempt is refused by the handlers instead of applied twice. A dispatch that
//! cannot reach its instance fails over without spending a retry; [`ATTEMPTS_MAX`] bounds how
//! often that can happen.

use super::alerts::put_and_notify;
use super::executions::{active_ids, get_execution, ids_under, next_execution_id, runtime};
use super::keys;
use super::outcomes::{self, DispatchFailure};
use super::registry::{self, add_load, candidates};
use super::{balance, tasks, At};
use crate::command::Rejection;
use crate::error::StoreError;
use crate::model::ATTEMPTS_KEPT;
use crate::model::{Attempt, Execution, ExecutionMode, ExecutionStatus, Reason, Task, TaskStatus, Trigger};
use crate::txn::WriteSet;

/// Most executions waiting in one `sequential` task's queue; more are recorded `skipped`
/// (reason `queue_full`).
pub const SEQUENTIAL_QUEUE_MAX: usize = 100;
/// First retry waits this long; each further retry doubles it, up to [`RETRY_BACKOFF_MS_MAX`].
pub const RETRY_BACKOFF_MS_BASE: i64 = 1_000;
pub const RETRY_BACKOFF_MS_MAX: i64 = 5 * 60 * 1_000;
/// Most attempts of one execution (failovers included); then it fails for good.
pub const ATTEMPTS_MAX: u32 = 64;

/// A new `pending` record of `task` for `scheduled_ms`.
pub(super) fn record(task: &Task, id: u64, at: At, scheduled_ms: i64, trigger: Trigger) -> Execution {
    Execution {
        id,
        task_id: task.id,
        scheduled_ms,
        created_ms: at.now_ms,
        start_ms: None,
        end_ms: None,
        status: ExecutionStatus::Pending,
        trigger,
        reason: None,
        queued: false,
        parameters: String::new(),
        requested_by: String::new(),
        result: String::new(),
        logs: String::new(),
        retry_count: 0,
        log_index: at.log_index,
        slot_count: 1,
        attempts: Vec::new(),
        attempt_count: 0,
        not_before_ms: 0,
    }
}

/// Creates the execution of an accepted slot as the task's execution mode decides, and returns
/// it as admitted. With `dispatch = Some((seed, term))` (a `FireAndDispatch` entry), a run that
/// may start now gets its first attempt in the same entry.
pub(super) fn admit(
    ws: &mut WriteSet<'_>,
    at: At,
    task: &Task,
    slot: i64,
    trigger: Trigger,
    dispatch: Option<(u64, u64)>,
) -> Result<Execution, StoreError> {
    let id = next_execution_id(ws)?;
    let mut e = record(task, id, at, slot, trigger);
    // Only the modes that look at the active set read it (parallel tasks may have many runs).
    let any_active = |ws: &WriteSet<'_>| -> Result<bool, StoreError> { Ok(runtime(ws, task.id)?.active > 0) };
    match task.spec.execution_mode {
        ExecutionMode::Parallel => {}
        ExecutionMode::Skip if any_active(ws)? => {
            (e.status, e.reason, e.end_ms) = (ExecutionStatus::Skipped, Some(Reason::Overlap), Some(at.now_ms));
        }
        ExecutionMode::Skip => {}
        ExecutionMode::Sequential => {
            let waiting = ids_under(ws, &keys::queue_prefix(task.id), SEQUENTIAL_QUEUE_MAX + 1)?;
            if waiting.len() >= SEQUENTIAL_QUEUE_MAX {
                (e.status, e.reason, e.end_ms) = (ExecutionStatus::Skipped, Some(Reason::QueueFull), Some(at.now_ms));
            } else if !waiting.is_empty() || any_active(ws)? {
                (e.queued, e.reason) = (true, Some(Reason::Queued));
            }
        }
        ExecutionMode::Replace => {
            for other in active_ids(ws, task.id)? {
                end_run(ws, at, other, ExecutionStatus::Cancelled, Some(Reason::Replaced))?;
            }
        }
    }
    put_and_notify(ws, &e, None)?;
    if let Some((seed, term)) = dispatch.filter(|_| e.status == ExecutionStatus::Pending && !e.queued) {
        dispatch_one(ws, at, e.clone(), 1, seed, term)?;
    }
    Ok(e)
}

/// `POST /tasks/{id}/trigger`: a run now, whatever the mode; paused tasks may be triggered.
pub(super) fn trigger(
    ws: &mut WriteSet<'_>,
    at: At,
    task_id: u64,
    parameters: Option<&str>,
    requested_by: &str,
) -> Result<Result<Execution, Rejection>, StoreError> {
    let Some(task) = tasks::get(ws, task_id)? else { return Ok(Err(Rejection::TaskNotFound { id: task_id })) };
    if task.status == TaskStatus::Deleted {
        return Ok(Err(Rejection::TaskDeleted { id: task_id }));
    }
    let id = next_execution_id(ws)?;
    let mut e = record(&task, id, at, at.now_ms, Trigger::Manual);
    e.parameters = parameters.unwrap_or_default().to_string();
    e.requested_by = requested_by.to_string();
    put_and_notify(ws, &e, None)?;
    Ok(Ok(e))
}

/// The backoff before retry number `retry` (1-based).
pub fn retry_backoff_ms(retry: u32) -> i64 {
    let shift = retry.saturating_sub(1).min(20);
    RETRY_BACKOFF_MS_BASE.saturating_mul(1 << shift).min(RETRY_BACKOFF_MS_MAX)
}

fn token(seed: u64, execution: u64, attempt: u32) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_be_bytes());
    h.update(&execution.to_be_bytes());
    h.update(&attempt.to_be_bytes());
    h.finalize().to_hex()[..32].to_string()
}

/// Gives `old` its attempt number `attempt` on an instance chosen by the task's strategy, or
/// records that none could take it. Returns the changed record, or `None` when nothing was done
/// (not due, stale attempt number, every instance at capacity).
pub(super) fn dispatch_one(
    ws: &mut WriteSet<'_>,
    at: At,
    old: Execution,
    attempt_number: u32,
    seed: u64,
    term: u64,
) -> Result<Option<Execution>, StoreError> {
    let due = old.status == ExecutionStatus::Pending && !old.queued && old.not_before_ms <= at.now_ms;
    if !due || attempt_number != old.attempt_count + 1 {
        return Ok(None); // stale: already dispatched, ended, or waiting
    }
    let task = tasks::get(ws, old.task_id)?;
    let Some(task) = task.filter(|t| registry::dispatchable(t.status)) else {
        return end_run(ws, at, old.id, ExecutionStatus::Cancelled, Some(Reason::TaskDeleted));
    };
    let (found, busy) = candidates(ws, task.id, &task.spec.executor)?;
    if found.is_empty() && busy {
        return Ok(None); // every instance is at its capacity: the run waits, spending nothing
    }
    let mut e = old.clone();
    let pick_seed = balance::mix(seed ^ e.id.rotate_left(17) ^ u64::from(attempt_number));
    let chosen = balance::pick(ws, task.id, task.spec.load_balance_strategy, &found, pick_seed)?;
    let mut attempt = Attempt {
        number: attempt_number,
        executor_id: 0,
        instance_id: String::new(),
        base_url: String::new(),
        dispatched_ms: at.now_ms,
        end_ms: None,
        status: ExecutionStatus::Running,
        term,
        log_index: at.log_index,
        callback_token: token(seed, e.id, attempt_number),
        error: String::new(),
    };
    match chosen {
        Some(exec) => {
            (attempt.executor_id, attempt.instance_id, attempt.base_url) =
                (exec.id, exec.spec.instance_id.clone(), exec.spec.base_url.clone());
            add_load(ws, exec.id, 1)?;
            push_attempt(&mut e, attempt);
            (e.status, e.reason) = (ExecutionStatus::Running, None);
            e.start_ms.get_or_insert(at.now_ms);
        }
        None => {
            (attempt.status, attempt.end_ms) = (ExecutionStatus::Failed, Some(at.now_ms));
            attempt.error = format!("no online and healthy executor in group {:?}", task.spec.executor);
            push_attempt(&mut e, attempt);
            outcomes::record_dispatch_failure(ws, task.id, DispatchFailure::NoHealthyExecutor)?;
            super::alerts::on_no_executor(ws, at.now_ms, &task, e.id)?;
            fail_or_retry(ws, at, &mut e, ExecutionStatus::Failed, Reason::NoHealthyExecutor)?;
        }
    }
    settle(ws, &e, &old)?;
    Ok(Some(e))
}

fn push_attempt(e: &mut Execution, attempt: Attempt) {
    e.attempt_count = attempt.number;
    e.attempts.push(attempt);
    if e.attempts.len() > ATTEMPTS_KEPT {
        e.attempts.remove(0);
    }
}

/// Ends the current attempt if it is running, releasing its instance's load.
pub(super) fn close_attempt(
    ws: &mut WriteSet<'_>,
    e: &mut Execution,
    status: ExecutionStatus,
    now_ms: i64,
    error: &str,
) -> Result<(), StoreError> {
    let Some(a) = e.attempts.last_mut() else { return Ok(()) };
    if a.status != ExecutionStatus::Running {
        return Ok(());
    }
    (a.status, a.end_ms) = (status, Some(now_ms));
    if !error.is_empty() {
        a.error = super::executions::truncate_tail(error, 1024);
    }
    if a.executor_id != 0 {
        add_load(ws, a.executor_id, -1)?;
    }
    Ok(())
}

/// A failed attempt: back to `pending` after a backoff while retries remain, else `final_status`.
pub(super) fn fail_or_retry(
    ws: &WriteSet<'_>,
    at: At,
    e: &mut Execution,
    final_status: ExecutionStatus,
    reason: Reason,
) -> Result<(), StoreError> {
    let max_retry = tasks::get(ws, e.task_id)?.map(|t| t.spec.max_retry).unwrap_or(0);
    e.reason = Some(reason);
    if e.retry_count < max_retry && e.attempt_count < ATTEMPTS_MAX {
        e.retry_count += 1;
        e.status = ExecutionStatus::Pending;
        e.not_before_ms = at.now_ms.saturating_add(retry_backoff_ms(e.retry_count));
    } else {
        e.status = final_status;
        e.end_ms = Some(at.now_ms);
    }
    Ok(())
}

/// Ends an active run with a final status and, for a `sequential` task, lets the next queued
/// execution start. Returns the updated record, or `None` if it was not active.
pub fn end_run(
    ws: &mut WriteSet<'_>,
    at: At,
    id: u64,
    status: ExecutionStatus,
    reason: Option<Reason>,
) -> Result<Option<Execution>, StoreError> {
    let Some(old) = get_execution(ws, id)? else { return Ok(None) };
    if !old.status.is_active() {
        return Ok(None);
    }
    let mut e = old.clone();
    (e.status, e.reason, e.end_ms, e.queued) = (status, reason.or(e.reason), Some(at.now_ms), false);
    close_attempt(ws, &mut e, status, at.now_ms, "")?;
    settle(ws, &e, &old)?;
    Ok(Some(e))
}

/// Writes a changed execution and, when it just ended and held the task's turn, lets the next
/// queued execution of a `sequential` task start.
pub(super) fn settle(ws: &mut WriteSet<'_>, e: &Execution, old: &Execution) -> Result<(), StoreError> {
    put_and_notify(ws, e, Some(old))?;
    if old.status.is_active() && !e.status.is_active() && !old.queued {
        start_next_queued(ws, e.task_id)?;
    }
    Ok(())
}

/// Moves the oldest queued execution of `task` into the active set when nothing is active.
fn start_next_queued(ws: &mut WriteSet<'_>, task: u64) -> Result<(), StoreError> {
    if runtime(ws, task)?.active > 0 {
        return Ok(());
    }
    let Some(next) = ids_under(ws, &keys::queue_prefix(task), 1)?.first().copied() else { return Ok(()) };
    let Some(old) = get_execution(ws, next)? else { return Ok(()) };
    let mut e = old.clone();
    (e.queued, e.reason) = (false, None);
    put_and_notify(ws, &e, Some(&old))
}

/// A task was paused or deleted: its queued executions will not run.
pub(super) fn cancel_queued(ws: &mut WriteSet<'_>, at: At, task: u64) -> Result<(), StoreError> {
    for id in ids_under(ws, &keys::queue_prefix(task), usize::MAX)? {
        end_run(ws, at, id, ExecutionStatus::Cancelled, Some(Reason::Paused))?;
    }
    Ok(())
}
