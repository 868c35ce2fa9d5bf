//! The dispatch commands in apply: `Dispatch` rounds, executors' `Report`s, the leader's
//! `EndAttempts` (unreachable, refusing, timed out) and `StopExecution`.
//!
//! Each handler finds the execution its command is about and checks that the command is about
//! the current attempt (its number, its callback token), so a retried round, a late report or a
//! report from a previous attempt is refused instead of applied twice; then it hands the record
//! to [`super::run`], which owns the execution's life (attempts, retries, settling, the queue).
//! An execution is `pending` until a dispatch round gives it an attempt on a chosen instance
//! (`running`); it ends with the executor's report, a timeout, a stop, or — when the attempt
//! fails and retries remain — goes back to `pending` with a backoff (`not_before_ms`). A
//! dispatch that cannot reach its instance ejects the instance and fails over at once without
//! spending a retry; [`ATTEMPTS_MAX`] bounds how often that can happen.

use super::executions::{get_execution, truncate_tail, REPORT_BYTES_MAX};
use super::outcomes::{record_dispatch_failure, DispatchFailure};
use super::registry::{get_executor, put_executor};
use super::run::{close_attempt, dispatch_one, fail_or_retry, settle, ATTEMPTS_MAX};
use super::At;
use crate::command::{AttemptEnd, AttemptEndKind, AttemptReport, DispatchBatch, Rejection, Response};
use crate::error::StoreError;
use crate::model::{Execution, ExecutionStatus, Reason};
use crate::txn::WriteSet;

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
                record_dispatch_failure(ws, e.task_id, DispatchFailure::Unreachable)?;
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
                record_dispatch_failure(ws, e.task_id, DispatchFailure::Refused)?;
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
            super::alerts::on_health(ws, at.now_ms, &x, false, "a dispatch could not connect")?;
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
