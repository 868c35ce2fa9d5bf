//! Slot acceptance in apply: which of a fire entry's slots become executions. The watermark,
//! the misfire policy, summarized spans of missed slots, and the slots a pause, delete or update
//! cuts off before they were fired ([`cut_off`]); what happens to an accepted slot after
//! that (the execution mode, the first attempt) is [`super::run`]'s.
//!
//! Exactly-once per (task, slot) rests on one rule: a slot at or before the task's watermark is
//! ignored, and every accepted slot moves the watermark forward in the same atomic batch. A
//! retried proposal, a new leader re-deriving slots, or a leader whose clock stepped back can
//! therefore never create a second record for a slot. A fire for a task that is paused or
//! deleted at that point of the log, or that was computed from an older version of the task, is
//! refused: once a pause is acknowledged, no later fire for the task exists.

use super::alerts::put_and_notify;
use super::executions::{next_execution_id, put_runtime, runtime};
use super::run::{self, record};
use super::{tasks, ApplyOptions, At};
use crate::command::{FireBatch, FireOutcome, MissedSpan, TaskFire};
use crate::error::StoreError;
use crate::model::{ExecutionStatus, MisfirePolicy, Reason, Task, TaskStatus, Trigger};
use crate::txn::WriteSet;

/// A slot fired more than this late (fire time − slot) counts as a misfire and goes through the
/// task's misfire policy; a later but smaller delay (a leader failover) fires it normally.
pub const MISFIRE_THRESHOLD_MS: i64 = 5_000;

/// Applies a fire batch; with `dispatch = Some((seed, term))`, every run that may start now gets
/// its first attempt in the same entry. `options` is the store's ([`ApplyOptions`]): only its
/// unsafe `ignore_watermark` matters here.
pub(super) fn apply_fire(
    ws: &mut WriteSet<'_>,
    at: At,
    batch: &FireBatch,
    dispatch: Option<(u64, u64)>,
    options: ApplyOptions,
) -> Result<FireOutcome, StoreError> {
    let mut out = FireOutcome::default();
    for fire in &batch.tasks {
        fire_task(ws, at, fire, dispatch, options.ignore_watermark, &mut out)?;
    }
    Ok(out)
}

fn fire_task(
    ws: &mut WriteSet<'_>,
    at: At,
    fire: &TaskFire,
    dispatch: Option<(u64, u64)>,
    ignore_watermark: bool,
    out: &mut FireOutcome,
) -> Result<(), StoreError> {
    let Some(mut task) = tasks::get(ws, fire.task_id)? else {
        out.refused_tasks += 1;
        return Ok(());
    };
    if task.status != TaskStatus::Active || task.version != fire.task_version {
        out.refused_tasks += 1;
        return Ok(());
    }
    let watermark = task.fire_watermark_ms;
    let fresh: Vec<i64> = fire.slots.iter().copied().filter(|s| *s > watermark || ignore_watermark).collect();
    out.duplicate_slots += (fire.slots.len() - fresh.len()) as u64;
    if let Some(span) = fire.missed_before.as_ref().and_then(|s| unfired_part(&task, s, watermark, ignore_watermark)) {
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
                let e = run::admit(ws, at, &task, slot, trigger, dispatch)?;
                if e.status == ExecutionStatus::Skipped {
                    out.skipped += 1;
                } else {
                    out.executions += 1;
                }
            }
            None => {
                let id = next_execution_id(ws)?;
                let mut e = record(&task, id, at, slot, Trigger::Schedule);
                (e.status, e.reason, e.end_ms) = (ExecutionStatus::Missed, Some(Reason::Misfire), Some(at.now_ms));
                put_and_notify(ws, &e, None)?;
                out.missed += 1;
            }
        }
        task.fire_watermark_ms = task.fire_watermark_ms.max(slot);
    }
    // The watermark lives in the runtime record (read after the admissions, which update it too).
    let mut rt = runtime(ws, task.id)?;
    if !ignore_watermark {
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
///
/// With the unsafe `ignore_watermark`, the whole span, whatever was fired.
fn unfired_part(task: &Task, span: &MissedSpan, watermark: i64, ignore_watermark: bool) -> Option<MissedSpan> {
    if span.first_ms > watermark || ignore_watermark {
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

/// At most this many slots are counted into one cut-off record: walking a schedule is done in
/// apply, so it is bounded like everything else there. Only a task whose watermark is far behind
/// the cut-off (an every-second task in a cluster that had no leader for more than a day) has
/// more; the slots after the counted ones then have no record, and the record's text says so.
pub const CUT_OFF_SLOTS_MAX: usize = 100_000;

/// Records the slots a pause, delete or update cuts off: `task` as it was before the command
/// (active, at its effective watermark); the command was applied at `at`.
///
/// A slot due before the command whose fire entry is not ahead of it in the log will never be
/// fired: the command bumps the task's version, so that fire is refused. That happens whenever
/// the cut-off wins the race to the log — by milliseconds in a healthy cluster, or by seconds
/// when a new leader's first fire entry comes after a client's write. Without a record here such
/// slots would have none, against the rule that every slot of a task's active life ends up as
/// exactly one record (DESIGN §5). They become one summarized `missed` record (reason
/// `cut_off`), ending at the last such slot, like a misfire span. Returns the slots counted.
pub(super) fn cut_off(ws: &mut WriteSet<'_>, at: At, task: &Task) -> Result<u64, StoreError> {
    if task.status != TaskStatus::Active || at.now_ms <= task.fire_watermark_ms {
        return Ok(0);
    }
    let Ok(schedule) = crate::spec::parse_schedule(&task.spec) else { return Ok(0) };
    let mut slots = schedule.slots_ms(task.fire_watermark_ms, at.now_ms).take(CUT_OFF_SLOTS_MAX);
    let Some(first_ms) = slots.next() else { return Ok(0) };
    let (count, last_ms) = slots.fold((1u64, first_ms), |(n, _), slot| (n + 1, slot));
    let id = next_execution_id(ws)?;
    let mut e = record(task, id, at, last_ms, Trigger::Schedule);
    (e.status, e.reason, e.end_ms, e.slot_count) =
        (ExecutionStatus::Missed, Some(Reason::CutOff), Some(at.now_ms), count);
    let more = if count == CUT_OFF_SLOTS_MAX as u64 { "; later slots up to the cut-off not counted" } else { "" };
    e.result = format!(
        "{count} slots from {first_ms} to {last_ms} (UTC ms) not fired before the task was paused, deleted or changed{more}"
    );
    put_and_notify(ws, &e, None)?;
    Ok(count)
}

/// One `missed` record standing for a long run of slots that were not listed one by one.
fn missed_span(ws: &mut WriteSet<'_>, at: At, task: &Task, span: &MissedSpan) -> Result<(), StoreError> {
    let id = next_execution_id(ws)?;
    let mut e = record(task, id, at, span.last_ms, Trigger::Schedule);
    (e.status, e.reason, e.end_ms, e.slot_count) =
        (ExecutionStatus::Missed, Some(Reason::Misfire), Some(at.now_ms), span.count.max(1));
    e.result = format!("{} slots from {} to {} (UTC ms) missed", span.count, span.first_ms, span.last_ms);
    put_and_notify(ws, &e, None)
}
