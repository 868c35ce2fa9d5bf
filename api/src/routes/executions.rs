//! `/api/v1/executions` (history) and `POST /api/v1/tasks/{id}/trigger` (a run now), plus
//! `GET /api/v1/scheduler/status`.
//!
//! A listing by task and status has an exact total (the runtime record and the per-status
//! counters count them). With `trigger`, `from` or `to` it is a bounded walk, newest first
//! (`StateView::query_executions`), whose total may be a lower bound (`total_capped`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use axum::Json;
use cronraft_raft::model::{ExecutionStatus, ExecutorStatus, TaskStatus, Trigger};
use cronraft_raft::state::ExecutionQuery;
use cronraft_raft::Command;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Caller;
use crate::context::{Consistency, Ctx};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{parse_json, ApiPath, ApiQuery};
use crate::handler::{self, pagination, propose_expect, with_log_index, ReadQuery};
use crate::routes::tasks::resolve;
use crate::types::{ExecutionPageView, ExecutionView, MinuteLagView, SchedulerStatusView, TriggerInput};
use crate::views::{at, execution_view, execution_view_for};

pub const REQUESTED_BY_LEN_MAX: usize = 128;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(read)).routes(routes!(trigger)).routes(routes!(status))
}

/// Who asks for a trigger or a stop: with auth on, the caller's token name (a name in the body
/// is ignored: it would be a claim); with auth off, the body's `requested_by` (default `api`).
pub fn requested_by(caller: &Caller, raw: Option<String>) -> Result<String, ApiError> {
    if !matches!(caller, Caller::Anonymous) {
        return Ok(caller.name().to_string());
    }
    let requested_by = raw.unwrap_or_else(|| "api".into());
    if requested_by.chars().count() > REQUESTED_BY_LEN_MAX || requested_by.chars().any(char::is_control) {
        let msg = format!("`requested_by` must be at most {REQUESTED_BY_LEN_MAX} characters, no control characters");
        return Err(ApiError::new(ErrorCode::InvalidField, msg));
    }
    Ok(requested_by)
}

/// An execution id from a path segment.
pub fn execution_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidExecutionId,
            format!("execution id must be a non-negative integer, got {raw:?}"),
        )
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// A task id or name.
    task_id: Option<String>,
    /// An execution status (`pending`, `running`, `success`, …).
    status: Option<String>,
    /// `schedule`, `manual`, `retry` or `catchup`.
    trigger: Option<String>,
    /// RFC 3339: only executions whose slot (`scheduled_time`) is at or after it.
    from: Option<String>,
    /// RFC 3339: only executions whose slot is before it.
    to: Option<String>,
    /// From 1 (default 1) to 10,000,000.
    /// An execution id: only older executions (a cursor for the next page, newest first; its
    /// cost does not grow with depth as `page`'s does). The total is then bounded like the
    /// other walk filters' (`total_capped`).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    before: Option<u64>,
    #[param(minimum = 1, maximum = 10_000_000)]
    page: Option<u64>,
    /// 1 to 500 (default 20).
    #[param(minimum = 1, maximum = 500)]
    page_size: Option<u64>,
    #[serde(default)]
    #[param(required = false)]
    consistency: Consistency,
}

fn parse_status(raw: &str) -> Result<ExecutionStatus, ApiError> {
    ExecutionStatus::ALL.into_iter().find(|s| s.as_str() == raw).ok_or_else(|| {
        let all: Vec<&str> = ExecutionStatus::ALL.iter().map(|s| s.as_str()).collect();
        ApiError::new(
            ErrorCode::InvalidStatusFilter,
            format!("unknown status {raw:?}; expected one of {}", all.join(", ")),
        )
    })
}

/// Every trigger, by its JSON name.
const TRIGGERS: [Trigger; 4] = [Trigger::Schedule, Trigger::Manual, Trigger::Retry, Trigger::Catchup];

fn parse_trigger(raw: &str) -> Result<Trigger, ApiError> {
    let name = |t: &Trigger| serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_string));
    TRIGGERS.into_iter().find(|t| name(t).as_deref() == Some(raw)).ok_or_else(|| {
        let msg = format!("unknown trigger {raw:?}; expected schedule, manual, retry or catchup");
        ApiError::new(ErrorCode::InvalidTrigger, msg)
    })
}

/// An RFC 3339 query value as UTC milliseconds.
fn parse_time(field: &str, raw: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(raw).map(|t| t.timestamp_millis()).map_err(|e| {
        let msg = format!("`{field}` must be RFC 3339 (e.g. 2026-11-23T05:00:00Z): {e}");
        ApiError::new(ErrorCode::InvalidTime, msg)
    })
}

/// The filters other than the task (resolved after the read barrier); an empty value is none.
fn execution_query(q: &ListQuery) -> Result<ExecutionQuery, ApiError> {
    let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let query = ExecutionQuery {
        task: None,
        status: given(&q.status).map(|s| parse_status(&s)).transpose()?,
        trigger: given(&q.trigger).map(|t| parse_trigger(&t)).transpose()?,
        from_ms: given(&q.from).map(|t| parse_time("from", &t)).transpose()?,
        to_ms: given(&q.to).map(|t| parse_time("to", &t)).transpose()?,
        before_id: q.before,
    };
    // Ids are below 2^63 (the OpenAPI document says int64); a larger cursor is no execution id.
    if q.before.is_some_and(|b| b > i64::MAX as u64) {
        let msg = "`before` must be an execution id, 0 to 9223372036854775807";
        return Err(ApiError::new(ErrorCode::InvalidExecutionId, msg));
    }
    if let (Some(from), Some(to)) = (query.from_ms, query.to_ms) {
        if from >= to {
            return Err(ApiError::new(ErrorCode::InvalidTimeRange, "`from` must be before `to`"));
        }
    }
    Ok(query)
}

#[utoipa::path(get, path = "/executions", tag = "executions", params(ListQuery),
    responses((status = 200, description = "One page of executions, newest first", body = ExecutionPageView), crate::openapi::ErrorResponses))]
async fn list(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ExecutionPageView>, ApiError> {
    let mut query = execution_query(&q)?;
    let (page, page_size) = pagination(q.page, q.page_size)?;
    ctx.read_barrier(q.consistency).await?;
    query.task = q.task_id.as_deref().filter(|s| !s.is_empty()).map(|raw| resolve(&ctx, raw)).transpose()?;
    let found = ctx.sm.view().query_executions(&query, page, page_size)?;
    let items = found.items.iter().map(|e| execution_view_for(&caller, e)).collect();
    Ok(Json(ExecutionPageView { items, total: found.total, total_capped: found.total_capped, page, page_size }))
}

#[utoipa::path(get, path = "/executions/{id}", tag = "executions", params(("id" = u64, Path, description = "an execution id"), ReadQuery),
    responses((status = 200, description = "The execution", body = ExecutionView), crate::openapi::ErrorResponses))]
async fn read(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<ExecutionView>, ApiError> {
    let id = execution_id(&raw)?;
    ctx.read_barrier(q.consistency).await?;
    match ctx.sm.view().execution(id)? {
        Some(e) => Ok(Json(execution_view_for(&caller, &e))),
        None => Err(ApiError::new(ErrorCode::ExecutionNotFound, format!("execution {id} does not exist"))),
    }
}

#[utoipa::path(post, path = "/tasks/{id}/trigger", tag = "executions", params(("id" = String, Path, description = "a task id, or a live task's name"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")),
    request_body(content = Option<TriggerInput>, description = "optional; an empty body is no overrides"),
    responses((status = 201, description = "The execution created", body = ExecutionView), crate::openapi::ErrorResponses))]
async fn trigger(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input: TriggerInput =
        if body.iter().all(u8::is_ascii_whitespace) { TriggerInput::default() } else { parse_json(&body)? };
    let parameters = match input.parameters {
        Some(v) if !v.is_object() => {
            return Err(ApiError::new(ErrorCode::InvalidParameters, "`parameters` must be a JSON object"))
        }
        Some(v) => Some(v.to_string()),
        None => None,
    };
    if parameters.as_ref().map(|p| p.len() > cronraft_raft::spec::PARAMETERS_BYTES_MAX).unwrap_or(false) {
        return Err(ApiError::new(ErrorCode::ParametersTooLarge, "`parameters` is too large"));
    }
    let requested_by = requested_by(&caller, input.requested_by)?;
    let id = resolve(&ctx, &raw)?;
    crate::routes::tasks::check_scope(&ctx, &caller, id)?;
    let command = Command::TriggerTask { id, parameters, requested_by };
    let (e, log_index) = propose_expect(&ctx, &headers, command, "an execution", handler::execution).await?;
    Ok(with_log_index(StatusCode::CREATED, Json(execution_view(&e)), log_index))
}

#[utoipa::path(get, path = "/scheduler/status", tag = "executions",
    responses((status = 200, description = "This node's scheduler and the cluster's counts", body = SchedulerStatusView), crate::openapi::ErrorResponses))]
async fn status(State(ctx): State<Ctx>) -> Result<Json<SchedulerStatusView>, ApiError> {
    let m = ctx.raft.metrics().borrow().clone();
    let view = ctx.sm.view();
    let executors = view.all_executors()?;
    let online = executors.iter().filter(|e| e.status == ExecutorStatus::Online);
    Ok(Json(SchedulerStatusView {
        node_id: ctx.node_id,
        leader_id: m.current_leader,
        term: m.current_term,
        scheduler_running: ctx.scheduler.running(),
        timers: ctx.scheduler.timers(),
        active_tasks: view.count(TaskStatus::Active)?,
        paused_tasks: view.count(TaskStatus::Paused)?,
        pending_executions: view.list_executions(None, Some(ExecutionStatus::Pending), 1, 1)?.total,
        running_executions: view.list_executions(None, Some(ExecutionStatus::Running), 1, 1)?.total,
        executors_total: executors.len() as u64,
        executors_online: online.clone().count() as u64,
        executors_healthy: online.filter(|e| e.is_healthy).count() as u64,
        fire_lag: ctx.scheduler.summary(),
        fire_applied_lag: ctx.scheduler.applied_summary(),
        history: ctx.scheduler.history().iter().map(minute_view).collect(),
    }))
}

fn minute_view(m: &crate::scheduler_metrics::MinuteLag) -> MinuteLagView {
    MinuteLagView { minute: at(m.minute_ms), fires: m.fires, p50_ms: m.p50_ms, p99_ms: m.p99_ms, missed: m.missed }
}
