//! Apply's side of dispatch: attempts, reports, retries, timeouts and stops.
//!
//! An execution is `pending` until a dispatch round gives it an attempt on a chosen instance
//! (`running`); it ends with the executor's report, a timeout, a stop, or — when the attempt
//! fails and retries remain — goes back to `pending` with a backoff (`not_before_ms`). A
//! dispatch that cannot reach its instance ejects the instance and fails over at once without
//! spending a retry; [`ATTEMPTS_MAX`] bounds how often that can happen. Every item names the
//! attempt it is about, so a retried round, a late report or a report from a previous attempt
//! is refused instead of applied twice.

use super::balance;
use super::executions::get_execution;
use super::fire::settle;
use super::registry::{self, add_load, candidates, get_executor, put_executor};
use super::{get_task_ws, At};
use crate::command::{AttemptEnd, AttemptEndKind, AttemptReport, DispatchBatch, Rejection, Response};
use crate::error::StoreError;
use crate::model::{Attempt, Execution, ExecutionStatus, Reason, ATTEMPTS_KEPT};
use crate::txn::WriteSet;

/// First retry waits this long; each further retry doubles it, up to [`RETRY_BACKOFF_MS_MAX`].
pub const RETRY_BACKOFF_MS_BASE: i64 = 1_000;
pub const RETRY_BACKOFF_MS_MAX: i64 = 5 * 60 * 1_000;
/// Most attempts of one execution (failovers included); then it fails for good.
pub const ATTEMPTS_MAX: u32 = 64;
/// Most bytes of logs and result kept per execution (the tail of the logs).
pub const REPORT_BYTES_MAX: usize = 64 * 1024;

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
        a.error = truncate_tail(error, 1024);
    }
    if a.executor_id != 0 {
        add_load(ws, a.executor_id, -1)?;
    }
    Ok(())
}

/// A failed attempt: back to `pending` after a backoff while retries remain, else `final_status`.
fn fail_or_retry(
    ws: &WriteSet<'_>,
    at: At,
    e: &mut Execution,
    final_status: ExecutionStatus,
    reason: Reason,
) -> Result<(), StoreError> {
    let max_retry = get_task_ws(ws, e.task_id)?.map(|t| t.spec.max_retry).unwrap_or(0);
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

fn push_attempt(e: &mut Execution, attempt: Attempt) {
    e.attempt_count = attempt.number;
    e.attempts.push(attempt);
    if e.attempts.len() > ATTEMPTS_KEPT {
        e.attempts.remove(0);
    }
}

/// One dispatch round.
pub(super) fn apply_dispatch(ws: &mut WriteSet<'_>, at: At, batch: &DispatchBatch) -> Result<Response, StoreError> {
    let mut out = Vec::with_capacity(batch.items.len());
    for item in &batch.items {
        let Some(old) = get_execution(ws, item.execution_id)? else { continue };
        if let Some(e) = dispatch_one(ws, at, old, item.attempt, batch.seed, batch.term)? {
            out.push(e);
        }
    }
    Ok(Response::Dispatched(out))
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
    let task = get_task_ws(ws, old.task_id)?;
    let Some(task) = task.filter(|t| registry::dispatchable(t.status)) else {
        return super::fire::end_run(ws, at, old.id, ExecutionStatus::Cancelled, Some(Reason::TaskDeleted));
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
            fail_or_retry(ws, at, &mut e, ExecutionStatus::Failed, Reason::NoHealthyExecutor)?;
        }
    }
    settle(ws, &e, &old)?;
    Ok(Some(e))
}

/// Finds the active execution a report or stop is about, or the rejection to answer with.
fn active_execution(ws: &WriteSet<'_>, id: u64) -> Result<Result<Execution, Rejection>, StoreError> {
    Ok(match get_execution(ws, id)? {
        None => Err(Rejection::ExecutionNotFound { id }),
        Some(e) if !e.status.is_active() => {
            Err(Rejection::ExecutionFinished { id, status: e.status.as_str().to_string() })
        }
        Some(e) => Ok(e),
    })
}

/// An executor's callback.
pub(super) fn apply_report(ws: &mut WriteSet<'_>, at: At, r: &AttemptReport) -> Result<Response, StoreError> {
    let old = match active_execution(ws, r.execution_id)? {
        Ok(e) => e,
        Err(rejection) => return Ok(Response::Rejected(rejection)),
    };
    let current = old.current_attempt().filter(|a| a.status == ExecutionStatus::Running);
    let Some(current) = current.filter(|a| a.number == r.attempt) else {
        let current = old.current_attempt().map(|a| a.number).unwrap_or(0);
        return Ok(Response::Rejected(Rejection::StaleAttempt { id: old.id, attempt: r.attempt, current }));
    };
    if current.callback_token != r.callback_token {
        return Ok(Response::Rejected(Rejection::BadCallbackToken { id: old.id }));
    }
    let mut e = old.clone();
    if let Some(logs) = &r.logs {
        e.logs = truncate_tail(logs, REPORT_BYTES_MAX);
    }
    if let Some(result) = &r.result {
        e.result = truncate_tail(result, REPORT_BYTES_MAX);
    }
    if let Some(start) = r.start_ms {
        e.start_ms = Some(e.start_ms.map_or(start, |s| s.min(start)));
    }
    let start = e.start_ms.unwrap_or(at.now_ms);
    let end_ms = r.end_ms.unwrap_or(at.now_ms).clamp(start, at.now_ms.max(start));
    match r.status {
        ExecutionStatus::Running => {}
        ExecutionStatus::Success | ExecutionStatus::Cancelled => {
            close_attempt(ws, &mut e, r.status, end_ms, "")?;
            (e.status, e.end_ms) = (r.status, Some(end_ms));
            if r.status == ExecutionStatus::Success {
                e.reason = None;
            }
        }
        ExecutionStatus::Failed | ExecutionStatus::Timeout => {
            close_attempt(ws, &mut e, r.status, end_ms, "the executor reported the run failed")?;
            let reason = if r.status == ExecutionStatus::Timeout { Reason::TimedOut } else { Reason::ExecutorFailed };
            fail_or_retry(ws, at, &mut e, r.status, reason)?;
            if !e.status.is_active() {
                e.end_ms = Some(end_ms);
            }
        }
        other => {
            return Ok(Response::Rejected(Rejection::BadReportStatus { status: other.as_str().to_string() }));
        }
    }
    settle(ws, &e, &old)?;
    Ok(Response::Execution(e))
}

/// Failures the leader saw: unreachable or refusing instances, timeouts.
pub(super) fn apply_end_attempts(ws: &mut WriteSet<'_>, at: At, ends: &[AttemptEnd]) -> Result<Response, StoreError> {
    let mut changed = 0;
    for end in ends {
        let Ok(old) = active_execution(ws, end.execution_id)? else { continue };
        let Some(current) =
            old.current_attempt().filter(|a| a.number == end.attempt && a.status == ExecutionStatus::Running)
        else {
            continue;
        };
        let executor_id = current.executor_id;
        let mut e = old.clone();
        match end.kind {
            AttemptEndKind::Unreachable => {
                close_attempt(ws, &mut e, ExecutionStatus::Failed, at.now_ms, &end.error)?;
                eject(ws, at, executor_id)?;
                if e.attempt_count < ATTEMPTS_MAX {
                    (e.status, e.not_before_ms) = (ExecutionStatus::Pending, at.now_ms);
                } else {
                    (e.status, e.end_ms, e.reason) =
                        (ExecutionStatus::Failed, Some(at.now_ms), Some(Reason::ExecutorRefused));
                }
            }
            AttemptEndKind::Refused => {
                close_attempt(ws, &mut e, ExecutionStatus::Failed, at.now_ms, &end.error)?;
                fail_or_retry(ws, at, &mut e, ExecutionStatus::Failed, Reason::ExecutorRefused)?;
            }
            AttemptEndKind::Timeout => {
                close_attempt(ws, &mut e, ExecutionStatus::Timeout, at.now_ms, &end.error)?;
                fail_or_retry(ws, at, &mut e, ExecutionStatus::Timeout, Reason::TimedOut)?;
            }
        }
        settle(ws, &e, &old)?;
        changed += 1;
    }
    Ok(Response::Count(changed))
}

/// A dispatch could not connect: the instance is unhealthy from now on (the health checker
/// brings it back after its successes), instead of receiving work until checks notice.
fn eject(ws: &mut WriteSet<'_>, at: At, executor_id: u64) -> Result<(), StoreError> {
    if let Some(mut x) = get_executor(ws, executor_id)? {
        if x.is_healthy {
            (x.is_healthy, x.health_check_failures, x.last_health_check_ms) = (false, 1, Some(at.now_ms));
            put_executor(ws, &x)?;
        }
    }
    Ok(())
}

/// `POST /executions/{id}/stop`.
pub(super) fn apply_stop(ws: &mut WriteSet<'_>, at: At, id: u64, requested_by: &str) -> Result<Response, StoreError> {
    let old = match active_execution(ws, id)? {
        Ok(e) => e,
        Err(rejection) => return Ok(Response::Rejected(rejection)),
    };
    let mut e = old.clone();
    close_attempt(ws, &mut e, ExecutionStatus::Cancelled, at.now_ms, "stopped")?;
    (e.status, e.reason, e.end_ms, e.queued) =
        (ExecutionStatus::Cancelled, Some(Reason::Stopped), Some(at.now_ms), false);
    if !requested_by.is_empty() && e.requested_by.is_empty() {
        e.requested_by = requested_by.to_string();
    }
    settle(ws, &e, &old)?;
    Ok(Response::Execution(e))
}

/// The last `max` bytes of `s`, cut at a character boundary.
pub fn truncate_tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}
