//! Apply's scheduling decisions: fires, misfires, execution modes, manual triggers, and the end
//! of a run.
//!
//! Exactly-once per (task, slot) rests on one rule: a slot at or before the task's watermark is
//! ignored, and every accepted slot moves the watermark forward in the same atomic batch. A
//! retried proposal, a new leader re-deriving slots, or a leader whose clock stepped back can
//! therefore never create a second record for a slot. A fire for a task that is paused or
//! deleted at that point of the log, or that was computed from an older version of the task, is
//! refused: once a pause is acknowledged, no later fire for the task exists.

use super::executions::{
    active_ids, get_execution, ids_under, next_execution_id, put_execution, put_runtime, queue_prefix, runtime,
};
use super::get_task_ws;
use crate::command::{FireBatch, FireOutcome, MissedSpan, Rejection, TaskFire};
use crate::error::StoreError;
use crate::model::{Execution, ExecutionMode, ExecutionStatus, MisfirePolicy, Reason, Task, TaskStatus, Trigger};
use crate::txn::WriteSet;

/// A slot fired more than this late (fire time − slot) counts as a misfire and goes through the
/// task's misfire policy; a later but smaller delay (a leader failover) fires it normally.
pub const MISFIRE_THRESHOLD_MS: i64 = 5_000;
/// Most executions waiting in one `sequential` task's queue; more are recorded `skipped`
/// (reason `queue_full`).
pub const SEQUENTIAL_QUEUE_MAX: usize = 100;

/// Context of the entry being applied.
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub now_ms: i64,
    pub log_index: u64,
}

fn record(task: &Task, id: u64, at: At, scheduled_ms: i64, trigger: Trigger) -> Execution {
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

/// Applies a fire batch; with `dispatch = Some((seed, term))`, every run that may start now gets
/// its first attempt in the same entry.
pub fn apply_fire(
    ws: &mut WriteSet<'_>,
    at: At,
    batch: &FireBatch,
    dispatch: Option<(u64, u64)>,
) -> Result<FireOutcome, StoreError> {
    let mut out = FireOutcome::default();
    for fire in &batch.tasks {
        fire_task(ws, at, fire, dispatch, &mut out)?;
    }
    Ok(out)
}

fn fire_task(
    ws: &mut WriteSet<'_>,
    at: At,
    fire: &TaskFire,
    dispatch: Option<(u64, u64)>,
    out: &mut FireOutcome,
) -> Result<(), StoreError> {
    let Some(mut task) = get_task_ws(ws, fire.task_id)? else {
        out.refused_tasks += 1;
        return Ok(());
    };
    if task.status != TaskStatus::Active || task.version != fire.task_version {
        out.refused_tasks += 1;
        return Ok(());
    }
    let watermark = task.fire_watermark_ms;
    let fresh: Vec<i64> = fire.slots.iter().copied().filter(|s| *s > watermark || unsafe_ignore_watermark()).collect();
    out.duplicate_slots += (fire.slots.len() - fresh.len()) as u64;
    if let Some(span) = fire.missed_before.as_ref().and_then(|s| unfired_part(&task, s, watermark)) {
        missed_span(ws, at, &task, &span)?;
        out.missed += span.count;
        task.fire_watermark_ms = task.fire_watermark_ms.max(span.last_ms);
    }
    let late: Vec<i64> = fresh.iter().copied().filter(|s| at.now_ms - s > MISFIRE_THRESHOLD_MS).collect();
    let last_late = late.last().copied();
    for slot in fresh {
        let misfired = at.now_ms - slot > MISFIRE_THRESHOLD_MS;
        let trigger = if !misfired {
            Some(Trigger::Schedule)
        } else {
            match task.spec.misfire_policy {
                MisfirePolicy::Skip => None,
                MisfirePolicy::FireOnce => (Some(slot) == last_late).then_some(Trigger::Catchup),
                MisfirePolicy::FireAll => {
                    let window_ms = (task.spec.catchup_window_seconds as i64).saturating_mul(1000);
                    (at.now_ms - slot <= window_ms).then_some(Trigger::Catchup)
                }
            }
        };
        match trigger {
            Some(trigger) => {
                let e = admit(ws, at, &task, slot, trigger)?;
                if e.status == ExecutionStatus::Skipped {
                    out.skipped += 1;
                } else {
                    out.executions += 1;
                }
                if let Some((seed, term)) = dispatch.filter(|_| e.status == ExecutionStatus::Pending && !e.queued) {
                    super::dispatch::dispatch_one(ws, at, e, 1, seed, term)?;
                }
            }
            None => {
                let id = next_execution_id(ws)?;
                let mut e = record(&task, id, at, slot, Trigger::Schedule);
                (e.status, e.reason, e.end_ms) = (ExecutionStatus::Missed, Some(Reason::Misfire), Some(at.now_ms));
                put_execution(ws, &e, None)?;
                out.missed += 1;
            }
        }
        task.fire_watermark_ms = task.fire_watermark_ms.max(slot);
    }
    // The watermark lives in the runtime record (read after the admissions, which update it too).
    let mut rt = runtime(ws, task.id)?;
    if !unsafe_ignore_watermark() {
        rt.watermark_ms = rt.watermark_ms.max(task.fire_watermark_ms);
    }
    put_runtime(ws, task.id, &rt)
}

/// The slots of a summarized span that are after the watermark, still summarized.
///
/// Usually the whole span: the scheduler starts it after the watermark it read. But an entry
/// proposed earlier may have fired into the span by the time this one is applied (a rebuild
/// re-derives a long backlog while that entry is still in flight). Dropping the span then would
/// leave the slots between the new watermark and the span's end without a record, so they are
/// counted again from the task's schedule (the fire was made for this very version of the task;
/// at most the span's own count is walked).
fn unfired_part(task: &Task, span: &MissedSpan, watermark: i64) -> Option<MissedSpan> {
    if span.first_ms > watermark || unsafe_ignore_watermark() {
        return Some(span.clone());
    }
    if span.last_ms <= watermark {
        return None;
    }
    let schedule = crate::spec::parse_schedule(&task.spec).ok()?;
    let mut unfired = schedule.slots_ms(watermark, span.last_ms).take(span.count as usize);
    let first_ms = unfired.next()?;
    let count = 1 + unfired.count() as u64;
    Some(MissedSpan { first_ms, last_ms: span.last_ms, count })
}

/// One `missed` record standing for a long run of slots that were not listed one by one.
fn missed_span(ws: &mut WriteSet<'_>, at: At, task: &Task, span: &MissedSpan) -> Result<(), StoreError> {
    let id = next_execution_id(ws)?;
    let mut e = record(task, id, at, span.last_ms, Trigger::Schedule);
    (e.status, e.reason, e.end_ms, e.slot_count) =
        (ExecutionStatus::Missed, Some(Reason::Misfire), Some(at.now_ms), span.count.max(1));
    e.result = format!("{} slots from {} to {} (UTC ms) missed", span.count, span.first_ms, span.last_ms);
    put_execution(ws, &e, None)
}

/// Creates the execution of a slot as the task's execution mode decides.
fn admit(ws: &mut WriteSet<'_>, at: At, task: &Task, slot: i64, trigger: Trigger) -> Result<Execution, StoreError> {
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
            let waiting = ids_under(ws, &queue_prefix(task.id), SEQUENTIAL_QUEUE_MAX + 1)?;
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
    put_execution(ws, &e, None)?;
    Ok(e)
}

/// `POST /tasks/{id}/trigger`: a run now, whatever the mode; paused tasks may be triggered.
pub fn apply_trigger(
    ws: &mut WriteSet<'_>,
    at: At,
    task_id: u64,
    parameters: Option<&str>,
    requested_by: &str,
) -> Result<Result<Execution, Rejection>, StoreError> {
    let Some(task) = get_task_ws(ws, task_id)? else { return Ok(Err(Rejection::TaskNotFound { id: task_id })) };
    if task.status == TaskStatus::Deleted {
        return Ok(Err(Rejection::TaskDeleted { id: task_id }));
    }
    let id = next_execution_id(ws)?;
    let mut e = record(&task, id, at, at.now_ms, Trigger::Manual);
    e.parameters = parameters.unwrap_or_default().to_string();
    e.requested_by = requested_by.to_string();
    put_execution(ws, &e, None)?;
    Ok(Ok(e))
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
    super::dispatch::close_attempt(ws, &mut e, status, at.now_ms, "")?;
    settle(ws, &e, &old)?;
    Ok(Some(e))
}

/// Writes a changed execution and, when it just ended and held the task's turn, lets the next
/// queued execution of a `sequential` task start.
pub(super) fn settle(ws: &mut WriteSet<'_>, e: &Execution, old: &Execution) -> Result<(), StoreError> {
    put_execution(ws, e, Some(old))?;
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
    let Some(next) = ids_under(ws, &queue_prefix(task), 1)?.first().copied() else { return Ok(()) };
    let Some(old) = get_execution(ws, next)? else { return Ok(()) };
    let mut e = old.clone();
    (e.queued, e.reason) = (false, None);
    put_execution(ws, &e, Some(&old))
}

/// A task was paused or deleted: its queued executions will not run.
pub fn cancel_queued(ws: &mut WriteSet<'_>, at: At, task: u64) -> Result<(), StoreError> {
    for id in ids_under(ws, &queue_prefix(task), usize::MAX)? {
        end_run(ws, at, id, ExecutionStatus::Cancelled, Some(Reason::Paused))?;
    }
    Ok(())
}

/// UNSAFE, TEST-ONLY (`CRONRAFT_UNSAFE=ignore-watermark`): apply ignores the task's fire
/// watermark — it neither drops slots at or before it nor moves it forward on a fire. The leader
/// that proposed a slot still remembers it (the scheduler's in-memory `fired_through`), so the
/// damage shows when a scheduler rebuilds its timers from the replicated state — a new leader, a
/// failed proposal: it re-derives every slot since the task's creation, update or resume and
/// fires them again, giving a second execution for the same (task, slot). It exists only so the
/// chaos harness can prove its one-execution-per-slot checker catches that
/// (`cronraft-chaos run --unsafe ignore-watermark --nemesis kill --workload cron`).
/// Only in a build with the `unsafe-modes` feature (see [`crate::unsafe_modes`]).
fn unsafe_ignore_watermark() -> bool {
    crate::unsafe_modes::enabled("ignore-watermark")
}
