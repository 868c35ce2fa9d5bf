//! Replicated records as the API shows them: the one place that turns a `Task`, an `Execution`
//! or an `Executor` of `cronraft_raft::model` into its JSON view ([`crate::types`]).
//!
//! Views are computed on read, never stored: `next_fire_time` comes from the answering node's
//! clock, times are RFC 3339 in UTC, and the callback token of an attempt is never shown.

use chrono::{DateTime, TimeZone, Utc};
use cronraft_raft::model::{Execution, ExecutionStatus, Executor, Task, TaskStatus};
use cronraft_raft::spec::parse_schedule;
use cronraft_raft::state::LastFinal;

use crate::auth::Caller;
use crate::types::{AttemptView, ExecutionView, ExecutorView, LastResultView, TaskView};

/// A replicated millisecond time as a UTC instant (the epoch for an out-of-range value).
pub fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The view of a task; `now_ms` is this node's clock, used only to show the next slot; `last` is
/// the task's latest final execution, from its runtime record.
pub fn task_view(task: &Task, now_ms: i64, updated_by: String, last: Option<LastFinal>) -> TaskView {
    let s = &task.spec;
    let next_fire_time = match task.status {
        TaskStatus::Active => {
            parse_schedule(s).ok().and_then(|sched| sched.next_after(at(now_ms.max(task.fire_watermark_ms))))
        }
        _ => None,
    };
    TaskView {
        id: task.id,
        name: s.name.clone(),
        description: s.description.clone(),
        cron_expression: s.cron_expression.clone(),
        timezone: s.timezone.clone(),
        parameters: serde_json::from_str(&s.parameters).unwrap_or(serde_json::Value::Null),
        execution_mode: s.execution_mode,
        load_balance_strategy: s.load_balance_strategy,
        max_retry: s.max_retry,
        timeout_seconds: s.timeout_seconds,
        executor: s.executor.clone(),
        misfire_policy: s.misfire_policy,
        catchup_window_seconds: s.catchup_window_seconds,
        dst_policy: s.dst_policy,
        status: task.status,
        version: task.version,
        next_fire_time,
        created_at: at(task.created_at_ms),
        updated_at: at(task.updated_at_ms),
        updated_by,
        last_result: last.map(|l| LastResultView {
            execution_id: l.execution_id,
            status: l.status,
            ended_at: at(l.end_ms),
        }),
    }
}

/// A task's view as `caller` may see it: secret parameter values hidden below `operate`.
pub fn task_view_for(caller: &Caller, mut view: TaskView) -> TaskView {
    if !caller.sees_secrets() {
        crate::secrets::redact(&mut view.parameters);
    }
    view
}

/// An execution's view as `caller` may see it (its parameter overrides, hidden below `operate`).
pub fn execution_view_for(caller: &Caller, e: &Execution) -> ExecutionView {
    let mut view = execution_view(e);
    if let (false, Some(p)) = (caller.sees_secrets(), view.parameters.as_mut()) {
        crate::secrets::redact(p);
    }
    view
}

/// The view of an execution.
pub fn execution_view(e: &Execution) -> ExecutionView {
    ExecutionView {
        id: e.id,
        task_id: e.task_id,
        scheduled_time: at(e.scheduled_ms),
        created_at: at(e.created_ms),
        start_time: e.start_ms.map(at),
        end_time: e.end_ms.map(at),
        status: e.status,
        trigger: e.trigger,
        reason: e.reason,
        queued: e.queued,
        parameters: (!e.parameters.is_empty()).then(|| serde_json::from_str(&e.parameters).unwrap_or_default()),
        requested_by: e.requested_by.clone(),
        result: e.result.clone(),
        logs: e.logs.clone(),
        retry_count: e.retry_count,
        log_index: e.log_index,
        slot_count: e.slot_count,
        attempts: e
            .attempts
            .iter()
            .map(|a| AttemptView {
                attempt: a.number,
                executor_id: a.executor_id,
                instance_id: a.instance_id.clone(),
                base_url: a.base_url.clone(),
                status: a.status,
                dispatched_at: at(a.dispatched_ms),
                end_time: a.end_ms.map(at),
                error: a.error.clone(),
                term: a.term,
                log_index: a.log_index,
            })
            .collect(),
        attempt_count: e.attempt_count,
        next_attempt_at: (e.status == ExecutionStatus::Pending && e.not_before_ms > 0).then(|| at(e.not_before_ms)),
    }
}

/// The view of an executor; `running_attempts` is the load apply counts for it.
pub fn executor_view(e: &Executor, running_attempts: u64) -> ExecutorView {
    let s = &e.spec;
    ExecutorView {
        id: e.id,
        name: s.name.clone(),
        instance_id: s.instance_id.clone(),
        base_url: s.base_url.clone(),
        health_check_url: s.health_check_url.clone(),
        metadata: serde_json::from_str(&s.metadata).unwrap_or_else(|_| serde_json::json!({})),
        capacity: s.capacity,
        weight: s.weight,
        status: e.status,
        status_reason: e.status_reason.clone(),
        is_healthy: e.is_healthy,
        health_check_failures: e.health_check_failures,
        last_health_check: e.last_health_check_ms.map(at),
        running_attempts,
        registered_at: at(e.registered_at_ms),
        updated_at: at(e.updated_at_ms),
    }
}
