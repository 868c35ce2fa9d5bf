//! The `/metrics` families read from this node's replicated state at scrape time: the cluster's
//! outcome counters per executor group (kept by apply, `cronraft_raft::state::GroupOutcomes`),
//! tasks by status, executors by health and status, queued `sequential` runs, and per-task
//! series for the tasks an operator chose ([`TaskSeries`]).
//!
//! Every family is bounded whatever the cluster holds: groups are at most 64 plus `other` (the
//! bound is apply's), statuses, triggers and reasons are fixed sets, and per-task series exist
//! only for at most [`TASK_SERIES_MAX`] tasks. Every node shows the same counter values at the
//! same applied index, since they are the replicated state's; so are the notification outbox's
//! depth and drops. This node's own storage room and the cluster's record count against its cap
//! are here too, as gauges read at scrape time.

use std::fmt;

use cronraft_raft::error::StoreError;
use cronraft_raft::model::{ExecutionStatus, ExecutorStatus, TaskStatus};
use cronraft_raft::state::DispatchFailure;
use cronraft_raft::state::{GroupOutcomes, StateView, RUN_STATUSES};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::{family, gauge};
use crate::context::Ctx;

/// Most tasks with series of their own, listed and top-N together.
pub const TASK_SERIES_MAX: usize = 50;

/// Which tasks get series of their own (`[metrics]` in the node's configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskSeries {
    /// Tasks by name, in this order; unknown or deleted names are left out.
    pub names: Vec<String>,
    /// Also the tasks with the most failed or timed-out records kept, up to this many.
    pub top_failures: usize,
}

/// Label values of `cronraft_runs_total`'s `trigger`, in the order of `state::TRIGGERS`.
const TRIGGER_LABELS: [&str; 4] = ["schedule", "manual", "catchup", "retry"];
/// Label values of the slots' `reason`, in the orders of `state::MISSED_REASONS` and
/// `state::SKIPPED_REASONS`.
const MISSED_LABELS: [&str; 2] = ["misfire", "cut_off"];
const SKIPPED_LABELS: [&str; 2] = ["overlap", "queue_full"];

/// Reads the state for one scrape.
pub struct StateCollector {
    ctx: Ctx,
}

impl StateCollector {
    pub fn new(ctx: Ctx) -> Self {
        StateCollector { ctx }
    }
}

impl fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateCollector")
    }
}

/// A read of the state failed: the scrape goes on without the family, and says why in the log.
fn unreadable(what: &str, e: StoreError) -> fmt::Result {
    tracing::warn!(error = %e, "metrics: could not read {what}");
    Ok(())
}

impl Collector for StateCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let view = self.ctx.sm.view();
        match view.outcome_totals() {
            Ok(totals) => encode_outcomes(&mut e, &totals)?,
            Err(err) => unreadable("the outcome counters", err)?,
        }
        encode_tasks(&mut e, &view)?;
        encode_executors(&mut e, &view)?;
        match view.queued_runs() {
            Ok(n) => gauge(&mut e, "cronraft_queued_runs", "Runs waiting in a sequential task's queue.", n as i64)?,
            Err(err) => unreadable("the queues", err)?,
        }
        match view.execution_records() {
            Ok(n) => {
                gauge(&mut e, "cronraft_execution_records", "Execution records kept, in the whole cluster.", n as i64)?
            }
            Err(err) => unreadable("the execution counts", err)?,
        }
        let cap = self.ctx.records_max as i64;
        gauge(
            &mut e,
            "cronraft_execution_records_max",
            "The cluster-wide cap on execution records (retention.records_max).",
            cap,
        )?;
        encode_storage(&mut e, &self.ctx.sm.space())?;
        // The replicated outbox (the same on every node that applied as far): notifications not
        // yet delivered, and those dropped because it was full.
        match view.outbox_stats() {
            Ok(o) => {
                let help = "Notifications waiting for delivery (replicated outbox).";
                gauge(&mut e, "cronraft_notification_outbox_depth", help, o.depth as i64)?;
                let help = "Notifications dropped because the outbox was full.";
                super::counter(&mut e, "cronraft_notification_dropped", help, o.dropped)?;
            }
            Err(err) => unreadable("the notification outbox", err)?,
        }
        encode_task_series(&mut e, &view, &self.ctx.task_series)
    }
}

/// This node's storage room (`crate::storage_guard` in the node measures it).
fn encode_storage(e: &mut DescriptorEncoder<'_>, space: &cronraft_raft::store::Space) -> fmt::Result {
    let full = i64::from(space.is_full());
    gauge(e, "cronraft_storage_full", "1 while this node refuses writes for want of storage ([storage]).", full)?;
    let free = space.free_bytes() as i64;
    gauge(e, "cronraft_storage_free_bytes", "Free bytes on the filesystem of this node's data directory.", free)?;
    gauge(e, "cronraft_storage_data_bytes", "Bytes in this node's data directory.", space.data_bytes() as i64)?;
    let times = space.times_full();
    super::counter(e, "cronraft_storage_full_events", "Times this node's storage became full since it started.", times)
}

fn encode_outcomes(e: &mut DescriptorEncoder<'_>, totals: &[(String, GroupOutcomes)]) -> fmt::Result {
    let runs = totals.iter().flat_map(|(g, o)| {
        RUN_STATUSES.iter().enumerate().flat_map(move |(s, status)| {
            // `retry` is a trigger no run has today: its series shows only once it counts.
            let triggers = TRIGGER_LABELS.iter().enumerate().filter(move |(t, _)| *t < 3 || o.runs[s][*t] > 0);
            triggers.map(move |(t, trigger)| {
                let labels = [("status", status.as_str()), ("trigger", trigger), ("group", g.as_str())];
                (labels, ConstCounter::new(o.runs[s][t]))
            })
        })
    });
    let help = "Runs that reached a final status, by status, trigger and executor group.";
    family(e, "cronraft_runs", help, MetricType::Counter, runs)?;
    let by_reason = |labels: &'static [&'static str; 2], pick: fn(&GroupOutcomes) -> [u64; 2]| {
        totals.iter().flat_map(move |(g, o)| {
            labels
                .iter()
                .zip(pick(o))
                .map(move |(r, n)| ([("reason", *r), ("group", g.as_str())], ConstCounter::new(n)))
        })
    };
    let help = "Slots recorded missed, by reason and executor group.";
    family(e, "cronraft_slots_missed", help, MetricType::Counter, by_reason(&MISSED_LABELS, |o| o.missed))?;
    let help = "Slots recorded skipped by the execution mode, by reason and executor group.";
    family(e, "cronraft_slots_skipped", help, MetricType::Counter, by_reason(&SKIPPED_LABELS, |o| o.skipped))?;
    let retries = totals.iter().map(|(g, o)| ([("group", g.as_str())], ConstCounter::new(o.retries)));
    let help = "Failed attempts sent back to pending for a retry, by executor group.";
    family(e, "cronraft_retries", help, MetricType::Counter, retries)?;
    let failures = totals.iter().flat_map(|(g, o)| {
        DispatchFailure::ALL
            .iter()
            .zip(o.dispatch_failures)
            .map(move |(why, n)| ([("reason", why.as_str()), ("group", g.as_str())], ConstCounter::new(n)))
    });
    let help = "Attempts that could not be handed to an executor, by reason and executor group.";
    family(e, "cronraft_dispatch_failures", help, MetricType::Counter, failures)
}

fn encode_tasks(e: &mut DescriptorEncoder<'_>, view: &StateView) -> fmt::Result {
    let mut samples = Vec::new();
    for status in [TaskStatus::Active, TaskStatus::Paused, TaskStatus::Deleted] {
        match view.count(status) {
            Ok(n) => samples.push(([("status", status.as_str())], ConstGauge::new(n as i64))),
            Err(err) => return unreadable("the task counts", err),
        }
    }
    family(e, "cronraft_tasks", "Tasks by status.", MetricType::Gauge, samples)
}

fn encode_executors(e: &mut DescriptorEncoder<'_>, view: &StateView) -> fmt::Result {
    let executors = match view.all_executors() {
        Ok(x) => x,
        Err(err) => return unreadable("the executors", err),
    };
    let statuses = [ExecutorStatus::Online, ExecutorStatus::Offline, ExecutorStatus::Maintenance];
    let mut samples = Vec::with_capacity(6);
    for (health, healthy) in [("healthy", true), ("unhealthy", false)] {
        for status in statuses {
            let n = executors.iter().filter(|x| x.is_healthy == healthy && x.status == status).count();
            samples.push(([("health", health), ("status", status.as_str())], ConstGauge::new(n as i64)));
        }
    }
    let help = "Registered executor instances by health (the leader's checks) and operator status.";
    family(e, "cronraft_executors", help, MetricType::Gauge, samples)
}

/// The tasks with series of their own: the listed names first, then the top by failures; at
/// most [`TASK_SERIES_MAX`], each once.
fn chosen_tasks(view: &StateView, chosen: &TaskSeries) -> Result<Vec<(u64, String)>, StoreError> {
    let mut out: Vec<(u64, String)> = Vec::new();
    for name in &chosen.names {
        if let Some(t) = view.task_by_name(name)? {
            if out.len() < TASK_SERIES_MAX && !out.iter().any(|(id, _)| *id == t.id) {
                out.push((t.id, t.spec.name));
            }
        }
    }
    for (id, _) in view.tasks_by_failures(chosen.top_failures.min(TASK_SERIES_MAX))? {
        if out.len() == TASK_SERIES_MAX {
            break;
        }
        if !out.iter().any(|(t, _)| *t == id) {
            if let Some(t) = view.task(id)? {
                out.push((id, t.spec.name));
            }
        }
    }
    Ok(out)
}

fn encode_task_series(e: &mut DescriptorEncoder<'_>, view: &StateView, chosen: &TaskSeries) -> fmt::Result {
    if chosen.names.is_empty() && chosen.top_failures == 0 {
        return Ok(());
    }
    let mut rows = Vec::new();
    let tasks = chosen_tasks(view, chosen);
    for (id, name) in tasks.unwrap_or_else(|err| {
        let _ = unreadable("the chosen tasks", err);
        Vec::new()
    }) {
        match view.runtime(id) {
            Ok(r) => rows.push((name, r)),
            Err(err) => return unreadable("a task's runtime record", err),
        }
    }
    let executions = rows.iter().flat_map(|(name, r)| {
        ExecutionStatus::ALL.iter().map(move |s| {
            let n = r.counts[s.code() as usize - 1] as i64;
            ([("task", name.as_str()), ("status", s.as_str())], ConstGauge::new(n))
        })
    });
    let help = "A chosen task's execution records kept, by status (retention removes old ones).";
    family(e, "cronraft_task_executions", help, MetricType::Gauge, executions)?;
    let failed = rows.iter().map(|(name, r)| {
        let bad = r.last_final.is_some_and(|l| matches!(l.status, ExecutionStatus::Failed | ExecutionStatus::Timeout));
        ([("task", name.as_str())], ConstGauge::new(i64::from(bad)))
    });
    let help = "1 if a chosen task's latest run that ended failed or timed out.";
    family(e, "cronraft_task_last_run_failed", help, MetricType::Gauge, failed)?;
    let active = rows.iter().map(|(name, r)| ([("task", name.as_str())], ConstGauge::new(i64::from(r.active))));
    family(e, "cronraft_task_active_runs", "A chosen task's runs pending or running.", MetricType::Gauge, active)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cronraft_raft::state::{MISSED_REASONS, SKIPPED_REASONS, TRIGGERS};

    /// The label values are the API's own names of the triggers and reasons.
    #[test]
    fn labels_are_the_api_names() {
        let json = |v: serde_json::Value| v.as_str().unwrap().to_string();
        for (t, label) in TRIGGERS.iter().zip(TRIGGER_LABELS) {
            assert_eq!(json(serde_json::to_value(t).unwrap()), label);
        }
        for (r, label) in MISSED_REASONS.iter().zip(MISSED_LABELS).chain(SKIPPED_REASONS.iter().zip(SKIPPED_LABELS)) {
            assert_eq!(json(serde_json::to_value(r).unwrap()), label);
        }
    }
}
