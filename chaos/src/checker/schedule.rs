//! The schedule checkers of the `cron` workload, over the executor's deliveries and the final
//! execution records (see [`super::cron_model`]). Each returns its own [`CheckResult`]:
//!
//! * `one_per_slot` — one execution id per (task, slot), among deliveries and among final records,
//!   and at most one successful attempt per slot.
//! * `committed_delivery` — every delivery is backed by a committed record: its execution id is
//!   in the final records with the same task and slot, the attempt's term and log index match the
//!   record's attempt, and that log index is at most the cluster's final applied index.
//! * `pause_cutoff` — no delivery for a slot after an acknowledged pause, until the next resume,
//!   or after an acknowledged delete, ever.
//! * `no_overlap` — runs of a `sequential` or `skip` task never overlap at the executor.
//! * `on_schedule` — every delivered slot is on the task's schedule.
//! * `liveness` — after the heal, every slot of the never-paused `parallel` and `sequential`
//!   tasks was delivered: from the later of heal + [`HEAL_GRACE_MS`] and the moment every node
//!   agreed on a leader again (`healthy`), to the quiesce − [`END_GRACE_MS`]. (`skip` tasks skip
//!   slots by design; the paused task may legitimately miss slots.)
//! * `misfire` — every slot of a task's active life has exactly one record, and late slots are
//!   run or recorded `missed` exactly as the task's misfire policy says ([`super::misfire`]).
//! * `embedded_agents` (`cron-embedded` only) — every node's agent ran attempts, each on its own
//!   host's address ([`super::embedded`], which also explains where that workload's deliveries
//!   and runs come from: the final records, as no recording executor saw them).
//!
//! Under the `clock` nemesis two expectations compare a node's clock with the harness' and are
//! widened by the recorded skew ([`crate::skew`]), no more: the pause cut-off starts at the latest
//! time any clock showed by the acknowledgement (a leader running ahead fired those slots early,
//! before the pause) and a resume's effect may start as early as the earliest clock at its
//! invocation; liveness starts no earlier than the latest time any clock showed by the heal (a
//! clock that ran ahead moved watermarks there). The others are clock-free and unchanged.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::cron_model::{extract, CronHistory, Ended};
use super::{CheckResult, Verdict};
use crate::history::Event;
use crate::skew::Skew;

/// Slots this soon after the heal may still be lost to recovery (misfires, elections).
pub const HEAL_GRACE_MS: i64 = 5_000;
/// Slots this close to the quiesce may not have been delivered yet.
pub const END_GRACE_MS: i64 = 2_000;
/// Clock-reading slack for the pause cut-off (the harness, nodes and executor share one clock).
pub const PAUSE_SLACK_MS: i64 = 100;
/// Under skew: how long after its invocation a resume may be stamped by the node receiving it.
pub const RESUME_STAMP_SPAN_MS: i64 = 10_000;

/// Every schedule checker over `events` (with the clock skew the history records, if any).
pub fn check(events: &[Event]) -> Vec<CheckResult> {
    let h = extract(events);
    let skew = Skew::from_history(events);
    let mut all = vec![
        one_per_slot(&h),
        committed_delivery(&h),
        pause_cutoff_skewed(&h, &skew),
        no_overlap(&h),
        on_schedule(&h),
        liveness_skewed(&h, &skew),
        super::misfire::misfire(&h),
    ];
    if h.agents.is_some() {
        all.push(super::embedded::agents(&h));
    }
    all
}

pub(super) fn unknown(mut r: CheckResult, why: &str) -> CheckResult {
    r.verdict = Verdict::Unknown;
    r.violations.push(why.to_string());
    r
}

pub fn one_per_slot(h: &CronHistory) -> CheckResult {
    let mut r = CheckResult::new("one_per_slot");
    let mut delivered: BTreeMap<(u64, i64), BTreeSet<u64>> = BTreeMap::new();
    for d in &h.deliveries {
        delivered.entry((d.task_id, d.scheduled_ms)).or_default().insert(d.execution_id);
    }
    r.count("delivered_slots", delivered.len() as u64);
    for ((task, slot), ids) in delivered.iter().filter(|(_, ids)| ids.len() > 1) {
        r.violation(format!("task {task} slot {slot}: delivered as {} executions {ids:?}", ids.len()));
    }
    let Some(records) = &h.records else { return unknown(r, "final execution records missing") };
    let mut recorded: BTreeMap<(u64, i64), BTreeSet<u64>> = BTreeMap::new();
    for rec in records.values().flatten().filter(|x| x.trigger != "manual") {
        recorded.entry((rec.task_id, rec.scheduled_ms)).or_default().insert(rec.id);
    }
    r.count("recorded_slots", recorded.len() as u64);
    for ((task, slot), ids) in recorded.iter().filter(|(_, ids)| ids.len() > 1) {
        r.violation(format!("task {task} slot {slot}: {} execution records {ids:?}", ids.len()));
    }
    super::embedded::once_per_slot(h, &mut r);
    r
}

pub fn committed_delivery(h: &CronHistory) -> CheckResult {
    let mut r = CheckResult::new("committed_delivery");
    let Some(records) = &h.records else { return unknown(r, "final execution records missing") };
    let Some(applied) = h.final_applied else { return unknown(r, "final applied index missing") };
    let by_id: BTreeMap<u64, _> = records.values().flatten().map(|x| (x.id, x)).collect();
    for d in &h.deliveries {
        r.count("deliveries", 1);
        let what =
            format!("execution {} attempt {} (task {}, slot {})", d.execution_id, d.attempt, d.task_id, d.scheduled_ms);
        let Some(rec) = by_id.get(&d.execution_id) else {
            r.violation(format!("{what}: delivered but no such execution record"));
            continue;
        };
        if rec.task_id != d.task_id || rec.scheduled_ms != d.scheduled_ms {
            r.violation(format!("{what}: the record says task {} slot {}", rec.task_id, rec.scheduled_ms));
        }
        match rec.attempts.iter().find(|a| a.0 == d.attempt) {
            Some(&(_, term, index)) if (term, index) != (d.term, d.log_index) => r.violation(format!(
                "{what}: delivered with term {} index {}, recorded term {term} index {index}",
                d.term, d.log_index
            )),
            Some(_) => {}
            None if d.attempt > rec.attempt_count => {
                r.violation(format!("{what}: the record has only {} attempts", rec.attempt_count))
            }
            None => r.count("attempts_no_longer_kept", 1),
        }
        if d.log_index > applied {
            r.violation(format!("{what}: log index {} beyond the final applied index {applied}", d.log_index));
        }
    }
    r
}

pub fn pause_cutoff(h: &CronHistory) -> CheckResult {
    pause_cutoff_skewed(h, &Skew::none())
}

pub fn pause_cutoff_skewed(h: &CronHistory, skew: &Skew) -> CheckResult {
    let mut r = CheckResult::new("pause_cutoff");
    for task in &h.tasks {
        let toggles: Vec<_> = h.toggles.iter().filter(|t| t.task == task.name).collect();
        for p in toggles.iter().filter(|t| t.pause && t.ended == Ended::Ok) {
            let ack = p.done_wall;
            // An earlier resume of unknown outcome may take effect after this pause: no cut-off.
            if toggles.iter().any(|t| !t.pause && t.ended == Ended::Info && t.invoke_wall < ack) {
                r.count("pauses_skipped_indeterminate_resume", 1);
                continue;
            }
            let until = toggles.iter().filter(|t| !t.pause && t.invoke_wall > ack).map(|t| t.invoke_wall).min();
            let until = until.map_or(i64::MAX, |u| skew.earliest(u, RESUME_STAMP_SPAN_MS));
            r.count("pauses_checked", 1);
            let cutoff = skew.latest(ack);
            if cutoff > ack {
                r.count("pauses_widened_by_skew", 1);
            }
            for d in h.deliveries.iter().filter(|d| d.task_id == task.id) {
                if d.scheduled_ms > cutoff + PAUSE_SLACK_MS && d.scheduled_ms < until {
                    r.violation(format!(
                        "task {} slot {} (execution {}) delivered after the pause acknowledged at {ack} (resume at {})",
                        task.name,
                        d.scheduled_ms,
                        d.execution_id,
                        if until == i64::MAX { "never".into() } else { until.to_string() },
                    ));
                }
            }
        }
    }
    r
}

pub fn no_overlap(h: &CronHistory) -> CheckResult {
    let mut r = CheckResult::new("no_overlap");
    for task in h.tasks.iter().filter(|t| t.mode == "sequential" || t.mode == "skip") {
        let mut runs: Vec<_> = h.runs.iter().filter(|x| x.task_id == task.id).collect();
        runs.sort_by_key(|x| x.start_ns);
        r.count("runs_checked", runs.len() as u64);
        for w in runs.windows(2) {
            let end = w[0].end_ns.unwrap_or(u64::MAX);
            if w[1].start_ns < end {
                r.violation(format!(
                    "{} task {}: execution {}/{} started {} ms before execution {}/{} ended",
                    task.mode,
                    task.name,
                    w[1].execution_id,
                    w[1].attempt,
                    (end.min(w[1].start_ns + 3_600_000_000_000) - w[1].start_ns) / 1_000_000,
                    w[0].execution_id,
                    w[0].attempt,
                ));
            }
        }
    }
    r
}

pub fn on_schedule(h: &CronHistory) -> CheckResult {
    let mut r = CheckResult::new("on_schedule");
    for d in &h.deliveries {
        let Some(task) = h.task(d.task_id) else {
            r.violation(format!("execution {}: delivered for unknown task {}", d.execution_id, d.task_id));
            continue;
        };
        r.count("deliveries", 1);
        if d.scheduled_ms.rem_euclid(task.step_ms) != 0 {
            r.violation(format!(
                "task {} execution {}: slot {} is not on its schedule (every {} ms)",
                task.name, d.execution_id, d.scheduled_ms, task.step_ms
            ));
        }
    }
    r
}

pub fn liveness(h: &CronHistory) -> CheckResult {
    liveness_skewed(h, &Skew::none())
}

pub fn liveness_skewed(h: &CronHistory, skew: &Skew) -> CheckResult {
    let mut r = CheckResult::new("liveness");
    let (Some(heal), Some(healthy), Some(end)) = (h.heal_wall, h.healthy_wall, h.quiesce_wall) else {
        return unknown(r, "heal, recovery or quiesce marker missing (did the cluster recover?)");
    };
    let from = (heal + HEAL_GRACE_MS).max(healthy).max(skew.latest(heal));
    let to = end - END_GRACE_MS;
    for task in h.tasks.iter().filter(|t| !t.pausable && (t.mode == "parallel" || t.mode == "sequential")) {
        let got: HashSet<i64> = h.deliveries.iter().filter(|d| d.task_id == task.id).map(|d| d.scheduled_ms).collect();
        let mut slot = from.div_euclid(task.step_ms) * task.step_ms + task.step_ms;
        while slot <= to {
            r.count("slots_checked", 1);
            if !got.contains(&slot) {
                r.violation(format!("task {} slot {slot}: never delivered after the heal", task.name));
            }
            slot += task.step_ms;
        }
    }
    r
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
