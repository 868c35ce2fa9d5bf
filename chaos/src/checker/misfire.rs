//! The misfire checker of the `cron` workload: slots missed during faults are handled exactly as
//! the task's misfire policy says, and every slot of a task's active life ends up as exactly one
//! record (DESIGN §5: fired, `skipped` or `missed`).
//!
//! # The product's rule, and how the checker sees it
//!
//! Apply (`raft/src/state/fire.rs`, `fire_task`) classifies each slot of a fire entry with the
//! entry's `now_ms` (the leader's clock when it proposed the entry): a slot more than
//! [`MISFIRE_THRESHOLD_MS`] older than `now_ms` has *misfired* (no leader could fire it in time),
//! anything later fires normally (`trigger: schedule`). Misfired slots of one entry go through
//! the task's `misfire_policy`:
//!
//! * `fire_once` — the latest misfired slot *of that entry* runs (`trigger: catchup`); the others
//!   are recorded `missed` (reason `misfire`, trigger `schedule`);
//! * `fire_all` — every misfired slot with `now_ms − slot ≤ catchup_window_seconds` runs
//!   (`catchup`), older ones `missed`;
//! * `skip` — all `missed`.
//!
//! A backlog longer than 1,000 slots is summarized as one `missed` record with `slot_count` > 1
//! whatever the policy. Slots a pause or delete cut off before any leader fired them are one
//! `missed` record with reason `cut_off` (`raft/src/state/fire.rs`, `cut_off`), stamped by the
//! pause or delete: checked against the history's pauses and deletes, not the policy. A run that is admitted (schedule or catch-up) may still end up `skipped`
//! by the execution mode (`skip` mode, overlap): that is a record too, and not a misfire.
//!
//! The harness cannot see fire entries, but every execution record carries what the rule needs:
//! `created_at` is the entry's `now_ms` and `log_index` the entry's index, so records sharing a
//! task and a log index are one entry's slots of that task ("a gap": the run of slots a leader
//! fired late in one go). The checker therefore recomputes, record by record, exactly what apply
//! had to decide, and compares. Because that trusts the product's own timestamp, it also ties
//! `created_at` to the harness' observations (one host, one clock): an entry is never stamped
//! before its slot, nor after the recording executor received one of its executions. So a slot
//! the executor received within 5 s of its instant cannot be a catch-up or `missed`.
//!
//! # Coverage: one record per slot of the active life
//!
//! Every slot on the task's schedule after its create was acknowledged must have exactly one
//! record (a summarized record covers `slot_count` slots ending at its slot), except:
//!
//! * slots a resume skipped: resume sets the watermark to its command time, so a slot `m` with no
//!   record, whose next recorded slot is `n`, is excused by a resume (not `fail`) invoked before
//!   `n` and not acknowledged before `m` (DESIGN: no catch-up of a pause);
//! * after the task's last record: slots from when a pause or delete (not `fail`, that could have
//!   taken effect after the last record) was invoked, less [`CUTOFF_GRACE_MS`] — a slot due just
//!   before the cut-off may lose the race to it — and slots within the grace of the final reads.
//!
//! A slot with no record before the next recorded slot of a never-resumed task is impossible in
//! the product (a leader lists every slot after the replicated watermark; a later entry of the
//! same leader commits only with the earlier ones), so it is a violation. A slot with no record
//! well before the pause or delete that ended the task's life is a violation of DESIGN §5 ("every
//! slot in a task's active life ends up as exactly one record"). Until session 10 the product
//! produced one when the cut-off was applied before a new leader's first fire entry (chaos run of
//! kill and pause, seed 21); the cut-off now records such slots (reason `cut_off`).
//!
//! # What the harness cannot know
//!
//! * Whether a leader was really unable to fire: "missed" is what the product decided from its
//!   own clock, checked only against the bounds above.
//! * The comparisons between harness times and node times (create acknowledgement vs watermark,
//!   pause invoke vs cut-off, `created_at` vs delivery) assume one clock. When the history has
//!   clock-skew nemesis events (`f` containing `clock` or `skew`), their `value.skew_ms` /
//!   `value.offset_ms` widen the slack; without such a field those comparisons are skipped
//!   (counted `cross_clock_checks_skipped`). The policy rule itself compares two node-side times
//!   and needs no slack.

use std::collections::BTreeMap;

use super::cron_model::{CronHistory, CronTask, Ended, Record};
use super::{CheckResult, Verdict};

/// A slot fired more than this late is a misfire (mirrors `MISFIRE_THRESHOLD_MS` in
/// `raft/src/state/fire.rs`).
pub const MISFIRE_THRESHOLD_MS: i64 = 5_000;
/// A slot due this shortly before a pause or delete was invoked (or before the final reads)
/// may have lost the race to the cut-off (a fire is proposed a few ms after its slot).
pub const CUTOFF_GRACE_MS: i64 = 1_000;
/// Clock-reading slack between node and harness timestamps on one host.
pub const CLOCK_SLACK_MS: i64 = 50;

/// What apply must have made of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Admitted with this trigger (it may still be `skipped` by the execution mode).
    Run(&'static str),
    /// Recorded `missed`, reason `misfire`.
    Missed,
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Run(t) => write!(f, "a run with trigger {t}"),
            Expect::Missed => write!(f, "missed"),
        }
    }
}

/// The misfire checker over a cron history.
pub fn misfire(h: &CronHistory) -> CheckResult {
    let mut r = CheckResult::new("misfire");
    let Some(records) = &h.records else { return super::schedule::unknown(r, "final execution records missing") };
    if records.values().flatten().any(|x| x.created_ms.is_none() || x.status.is_empty()) {
        let why = "final records lack created_at or status (history recorded by an older harness)";
        return super::schedule::unknown(r, why);
    }
    let slack = clock_slack(h);
    if slack.is_none() {
        r.count("cross_clock_checks_skipped", 1);
    }
    let mut unknown_policy = false;
    for task in &h.tasks {
        let recs: Vec<&Record> =
            records.get(&task.id).into_iter().flatten().filter(|x| x.trigger != "manual").collect();
        r.count("records", recs.len() as u64);
        let (cut, fired): (Vec<&Record>, Vec<&Record>) =
            recs.iter().partition(|x| x.status == "missed" && x.reason.as_deref() == Some("cut_off"));
        cut_offs(h, task, &cut, slack, &mut r);
        unknown_policy |= !policy(task, &fired, &mut r);
        coverage(h, task, &recs, slack, &mut r);
    }
    if let Some(slack) = slack {
        deliveries(h, records, slack, &mut r);
    }
    if unknown_policy && r.verdict == Verdict::Pass {
        r.verdict = Verdict::Unknown;
        r.violations.push("a task has a misfire policy this checker does not know".into());
    }
    r
}

/// Slots a pause or delete cut off before any leader fired them (reason `cut_off`): each such
/// record is stamped at or after its last slot, by a pause or delete of the task that was
/// invoked before the stamp and had not failed (one clock: within the slack).
fn cut_offs(h: &CronHistory, task: &CronTask, cut: &[&Record], slack: Option<i64>, r: &mut CheckResult) {
    for rec in cut {
        r.count("cut_off_slots", rec.slot_count);
        let stamped = rec.created_ms.unwrap_or_default();
        if stamped < rec.scheduled_ms || rec.trigger != "schedule" {
            r.violation(format!(
                "task {} slot {}: a cut-off record stamped {stamped} with trigger {} (expected at or after its                  last slot, trigger schedule)",
                task.name, rec.scheduled_ms, rec.trigger
            ));
        }
        let Some(slack) = slack else { continue };
        let by_toggle = h.toggles.iter().any(|t| {
            t.task == task.name
                && t.pause
                && t.ended != Ended::Fail
                && t.invoke_wall <= stamped + slack
                && (t.ended == Ended::Info || t.done_wall + slack >= stamped)
        });
        if !by_toggle {
            r.violation(format!(
                "task {} slot {}: recorded cut off at {stamped}, but no pause or delete of the task was in flight then",
                task.name, rec.scheduled_ms
            ));
        }
    }
}

/// The slack of comparisons between harness and node clocks: [`CLOCK_SLACK_MS`] plus the largest
/// recorded skew; `None` when a clock nemesis ran whose skew the history does not say.
fn clock_slack(h: &CronHistory) -> Option<i64> {
    let mut slack = CLOCK_SLACK_MS;
    for skew in &h.clock_skews {
        slack = slack.max(CLOCK_SLACK_MS + skew.map(i64::abs)?);
    }
    Some(slack)
}

/// Checks every record against what the task's policy required; `false` if the policy is unknown.
fn policy(task: &CronTask, recs: &[&Record], r: &mut CheckResult) -> bool {
    // One fire entry's records of this task: same log index (and the same stamp).
    let mut entries: BTreeMap<(Option<u64>, i64), Vec<&Record>> = BTreeMap::new();
    for rec in recs {
        entries.entry((rec.log_index, rec.created_ms.unwrap_or_default())).or_default().push(rec);
    }
    let window_ms = (task.catchup_window_s as i64).saturating_mul(1_000);
    for ((index, now), recs) in &entries {
        let late = |x: &&&Record| x.slot_count == 1 && now - x.scheduled_ms > MISFIRE_THRESHOLD_MS;
        let latest_late = recs.iter().filter(late).map(|x| x.scheduled_ms).max();
        if latest_late.is_some() {
            r.count("entries_with_misfires", 1);
        }
        for rec in recs {
            let lateness = now - rec.scheduled_ms;
            if lateness < 0 {
                r.violation(format!(
                    "task {} slot {}: recorded by a fire entry (index {}) stamped {} ms before the slot",
                    task.name,
                    rec.scheduled_ms,
                    fmt_index(*index),
                    -lateness
                ));
            }
            let expect = if rec.slot_count > 1 {
                Expect::Missed
            } else if lateness <= MISFIRE_THRESHOLD_MS {
                Expect::Run("schedule")
            } else {
                match task.misfire_policy.as_str() {
                    "skip" => Expect::Missed,
                    "fire_once" if Some(rec.scheduled_ms) == latest_late => Expect::Run("catchup"),
                    "fire_once" => Expect::Missed,
                    "fire_all" if lateness <= window_ms => Expect::Run("catchup"),
                    "fire_all" => Expect::Missed,
                    _ => return false,
                }
            };
            let got = if rec.status == "missed" {
                if rec.reason.as_deref() != Some("misfire") || rec.trigger != "schedule" {
                    r.violation(format!(
                        "task {} slot {}: recorded missed with reason {:?} and trigger {} (expected misfire, schedule)",
                        task.name, rec.scheduled_ms, rec.reason, rec.trigger
                    ));
                }
                Expect::Missed
            } else {
                match rec.trigger.as_str() {
                    "schedule" => Expect::Run("schedule"),
                    "catchup" => Expect::Run("catchup"),
                    other => {
                        r.violation(format!(
                            "task {} slot {}: a scheduled slot with trigger {other}",
                            task.name, rec.scheduled_ms
                        ));
                        continue;
                    }
                }
            };
            match got {
                Expect::Run("schedule") => r.count("on_time", 1),
                Expect::Run(_) => r.count("catchup", 1),
                Expect::Missed => r.count("missed_slots", rec.slot_count),
            }
            if got != expect {
                let latest = latest_late.map(|s| s.to_string()).unwrap_or_else(|| "none".into());
                r.violation(format!(
                    "task {} ({}{}) slot {}: recorded {} ({}), expected {expect}: its fire entry (index {}) \
                     was stamped {lateness} ms after the slot; that entry's latest misfired slot: {latest}",
                    task.name,
                    task.misfire_policy,
                    if task.misfire_policy == "fire_all" {
                        format!(", window {} s", task.catchup_window_s)
                    } else {
                        String::new()
                    },
                    rec.scheduled_ms,
                    got,
                    rec.status,
                    fmt_index(*index),
                ));
            }
        }
    }
    true
}

fn fmt_index(i: Option<u64>) -> String {
    i.map(|i| i.to_string()).unwrap_or_else(|| "?".into())
}

/// Every slot of the task's active life has exactly one record (see the module doc).
fn coverage(h: &CronHistory, task: &CronTask, recs: &[&Record], slack: Option<i64>, r: &mut CheckResult) {
    let step = task.step_ms;
    let mut covered: BTreeMap<i64, u64> = BTreeMap::new();
    for rec in recs {
        if rec.scheduled_ms.rem_euclid(step) != 0 {
            r.violation(format!(
                "task {} record {}: slot {} is not on its schedule (every {step} ms)",
                task.name, rec.id, rec.scheduled_ms
            ));
        }
        for k in 0..rec.slot_count.min(1_000_000) as i64 {
            *covered.entry(rec.scheduled_ms - k * step).or_default() += 1;
        }
    }
    for (slot, n) in covered.iter().filter(|(_, n)| **n > 1) {
        r.violation(format!("task {} slot {slot}: {n} records", task.name));
    }
    // Without a trustworthy clock relation only the gaps between records can be judged.
    let Some(slack) = slack else {
        let first = covered.keys().next().copied();
        return gaps(h, task, &covered, first, None, RESUME_SKEW_MAX_MS, r);
    };
    let from = task.create_done_wall + slack;
    let end = h.final_read_wall.or(h.quiesce_wall).map(|w| w - CUTOFF_GRACE_MS - slack);
    let resume_slack = if h.clock_skews.is_empty() { 0 } else { slack };
    gaps(h, task, &covered, Some(from), end.map(|e| (e, slack)), resume_slack, r);
}

/// Under a clock nemesis whose offsets the history does not give: the largest skew it applies.
const RESUME_SKEW_MAX_MS: i64 = 2 * 60 * 1000 + CLOCK_SLACK_MS;

/// Judges every slot after `from` (exclusive) up to the last record, and up to `tail.0` when
/// given, that has no record.
fn gaps(
    h: &CronHistory,
    task: &CronTask,
    covered: &BTreeMap<i64, u64>,
    from: Option<i64>,
    tail: Option<(i64, i64)>,
    resume_slack: i64,
    r: &mut CheckResult,
) {
    let step = task.step_ms;
    let Some(from) = from else { return };
    let last = covered.keys().next_back().copied();
    let to = match (last, tail) {
        (Some(l), Some((t, _))) => l.max(t),
        (Some(l), None) => l,
        (None, Some((t, _))) => t,
        (None, None) => return,
    };
    let toggles: Vec<_> = h.toggles.iter().filter(|t| t.task == task.name && t.ended != Ended::Fail).collect();
    let mut m = from.div_euclid(step) * step + step;
    let mut judged = 0u64;
    while m <= to && judged < 1_000_000 {
        judged += 1;
        if covered.contains_key(&m) {
            m += step;
            continue;
        }
        let next = covered.range(m + 1..).next().map(|(k, _)| *k);
        // A resume whose command time can lie in [m, next) moved the watermark past m. Under
        // clock skew the leader stamps the resume with its own clock, up to `resume_slack` ahead
        // of the harness' (chaos run clock seed 121: a resume stamped 4 s ahead skipped the
        // slots of those 4 s, which is what a resume means).
        let resumed = toggles.iter().any(|t| {
            !t.pause
                && t.invoke_wall < next.unwrap_or(i64::MAX)
                && (t.ended == Ended::Info || t.done_wall.saturating_add(resume_slack) >= m)
        });
        if resumed {
            r.count("slots_skipped_by_resume", 1);
        } else if let Some(n) = next {
            r.violation(format!(
                "task {} slot {m}: no record, yet the later slot {n} has one and no resume falls between",
                task.name
            ));
        } else {
            // After the last record: up to the cut-off (a pause or delete that could take effect
            // after the last record), less the grace.
            let slack = tail.map(|t| t.1).unwrap_or(0);
            let cutoff = toggles
                .iter()
                // Under skew a leader clock ahead fires slots up to the skew early, so the last
                // record's slot can lie after a pause or delete that still ended the task's life
                // (chaos run clock seed 131: slots fired 50 s ahead, then the delete).
                .filter(|t| {
                    t.pause
                        && (t.ended == Ended::Info
                            || last.is_none_or(|l| t.done_wall.saturating_add(resume_slack) >= l))
                })
                .map(|t| t.invoke_wall)
                .min();
            match cutoff {
                Some(c) if m + CUTOFF_GRACE_MS + slack > c => r.count("slots_after_cutoff", 1),
                _ => r.violation(format!(
                    "task {} slot {m}: no record, though it was due {} before the task's life ended \
                     (last record: slot {}); DESIGN §5 wants a record (fired, skipped or missed)",
                    task.name,
                    match cutoff {
                        Some(c) => format!("{} ms before the pause or delete invoked at {c}", c - m),
                        None => "with no pause or delete after the last record,".into(),
                    },
                    last.map(|l| l.to_string()).unwrap_or_else(|| "none".into()),
                )),
            }
        }
        m += step;
    }
    r.count("slots_judged", judged);
}

/// Missed slots are never delivered, and no fire entry is stamped after the executor received
/// one of its executions.
fn deliveries(h: &CronHistory, records: &BTreeMap<u64, Vec<Record>>, slack: i64, r: &mut CheckResult) {
    let by_id: BTreeMap<u64, &Record> = records.values().flatten().map(|x| (x.id, x)).collect();
    for d in h.deliveries.iter().filter(|d| !d.duplicate) {
        let Some(rec) = by_id.get(&d.execution_id) else { continue };
        r.count("deliveries_checked", 1);
        if rec.status == "missed" {
            r.violation(format!(
                "execution {} (task {}, slot {}): recorded missed, yet delivered",
                rec.id, rec.task_id, rec.scheduled_ms
            ));
        }
        if let Some(created) = rec.created_ms.filter(|c| *c > d.wall_ms + slack) {
            r.violation(format!(
                "execution {} (task {}, slot {}): its fire entry is stamped {created}, {} ms after the executor \
                 received it",
                rec.id,
                rec.task_id,
                rec.scheduled_ms,
                created - d.wall_ms
            ));
        }
    }
}

#[cfg(test)]
#[path = "misfire_tests.rs"]
mod tests;
