//! `/api/v1/tasks`: create, list (with filters and orders), read, update, soft-delete, pause,
//! resume.
//!
//! Writes arrive here only on the leader (the forwarding middleware sees to that) and become one
//! `Request` each, carrying the request id from the `Idempotency-Key` header. Reads pass the
//! consistency barrier first, then read this node's state machine. A listing's filters are
//! checked here and answered by `StateView::query_tasks` (one pass over the task table); without
//! any, it is the plain listing.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use axum::Json;
use cronraft_raft::model::{ExecutionMode, ExecutionStatus, Task, TaskStatus};
use cronraft_raft::state::{LastResultFilter, StateView, TaskQuery, TaskSort};
use cronraft_raft::Command;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Caller;
use crate::context::{now_ms, Consistency, Ctx};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::handler::{self, pagination, propose_expect, with_log_index, ReadQuery};
use crate::types::{Page, TaskInput, TaskView};
use crate::validate::{new_spec, patch};
use crate::views::{task_view, task_view_for};

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(read, update, delete))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

/// Longest `name` filter, in bytes (a task name is at most 128 characters).
pub const NAME_FILTER_BYTES_MAX: usize = 128;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `active`, `paused` or `deleted` (default: active and paused).
    status: Option<String>,
    /// A part of the name, any case (at most 128 bytes).
    name: Option<String>,
    /// The executor group (`executor`), exactly.
    group: Option<String>,
    /// An execution mode: `parallel`, `sequential`, `skip` or `replace`.
    mode: Option<String>,
    /// Comma-separated statuses of the task's latest final execution (`success`, `failed`,
    /// `timeout`, `cancelled`, `skipped`, `missed`), and `none` for tasks none of whose runs has
    /// ended.
    last_result: Option<String>,
    /// `id` (default), `-id`, `name`, `-name`, `next_fire` (soonest first, none last) or
    /// `-updated` (most recently changed first).
    sort: Option<String>,
    /// From 1 (default 1) to 10,000,000.
    #[param(minimum = 1, maximum = 10_000_000)]
    page: Option<u64>,
    /// 1 to 500 (default 20).
    #[param(minimum = 1, maximum = 500)]
    page_size: Option<u64>,
    #[serde(default)]
    #[param(required = false)]
    consistency: Consistency,
}

/// The view of `task` with its author and latest result, as of `now_ms`.
fn full_view(view: &StateView, task: &Task, now_ms: i64) -> Result<TaskView, ApiError> {
    Ok(task_view(task, now_ms, view.task_author(task.id)?, view.runtime(task.id)?.last_final))
}

/// Proposes `command` and answers with the resulting task.
async fn write_task(ctx: &Ctx, headers: &HeaderMap, command: Command, ok: StatusCode) -> Result<Response, ApiError> {
    let (task, log_index) = propose_expect(ctx, headers, command, "a task", handler::task).await?;
    Ok(with_log_index(ok, Json(full_view(&ctx.sm.view(), &task, now_ms())?), log_index))
}

/// Refuses a task outside the caller's scope (a team's token); an unknown id is left to apply,
/// which answers `task_not_found`.
pub fn check_scope(ctx: &Ctx, caller: &Caller, id: u64) -> Result<(), ApiError> {
    if let Some(task) = ctx.sm.view().task(id)? {
        caller.check_task(&task.spec.name, &task.spec.executor)?;
    }
    Ok(())
}

/// A path segment names a task by id (all digits) or by name.
pub fn resolve(ctx: &Ctx, raw: &str) -> Result<u64, ApiError> {
    if let Ok(id) = raw.parse::<u64>() {
        return Ok(id);
    }
    match ctx.sm.view().task_by_name(raw)? {
        Some(task) => Ok(task.id),
        None => Err(ApiError::new(ErrorCode::TaskNotFound, format!("no task is named {raw:?}"))),
    }
}

#[utoipa::path(post, path = "/tasks", tag = "tasks", params(("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")), request_body = TaskInput,
    responses((status = 201, description = "The task created", body = TaskView), crate::openapi::ErrorResponses))]
async fn create(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<TaskInput>,
) -> Result<Response, ApiError> {
    let spec = new_spec(input)?;
    caller.check_task(&spec.name, &spec.executor)?;
    write_task(&ctx, &headers, Command::CreateTask { spec }, StatusCode::CREATED).await
}

#[utoipa::path(put, path = "/tasks/{id}", tag = "tasks", params(("id" = String, Path, description = "a task id, or a live task's name"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")), request_body = TaskInput,
    responses((status = 200, description = "The task", body = TaskView), crate::openapi::ErrorResponses))]
async fn update(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<TaskInput>,
) -> Result<Response, ApiError> {
    let (patch, expected_version) = patch(input)?;
    let id = resolve(&ctx, &raw)?;
    // Fail fast on a patch that would make the spec invalid, before it takes a log entry
    // (apply checks again against the state it applies to). A scoped token must hold the task
    // both as it is and as it would become (no renaming it out of another team's reach).
    if let Some(current) = ctx.sm.view().task(id)? {
        caller.check_task(&current.spec.name, &current.spec.executor)?;
        let merged = patch.merged_into(&current.spec);
        caller.check_task(&merged.name, &merged.executor)?;
        cronraft_raft::spec::check_spec(&merged)?;
    }
    write_task(&ctx, &headers, Command::UpdateTask { id, patch, expected_version }, StatusCode::OK).await
}

#[utoipa::path(delete, path = "/tasks/{id}", tag = "tasks", params(("id" = String, Path, description = "a task id, or a live task's name"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")),
    responses((status = 200, description = "The task, now deleted", body = TaskView), crate::openapi::ErrorResponses))]
async fn delete(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = resolve(&ctx, &raw)?;
    check_scope(&ctx, &caller, id)?;
    write_task(&ctx, &headers, Command::DeleteTask { id }, StatusCode::OK).await
}

#[utoipa::path(post, path = "/tasks/{id}/pause", tag = "tasks", params(("id" = String, Path, description = "a task id, or a live task's name"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")),
    responses((status = 200, description = "The task", body = TaskView), crate::openapi::ErrorResponses))]
async fn pause(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = resolve(&ctx, &raw)?;
    check_scope(&ctx, &caller, id)?;
    write_task(&ctx, &headers, Command::PauseTask { id }, StatusCode::OK).await
}

#[utoipa::path(post, path = "/tasks/{id}/resume", tag = "tasks", params(("id" = String, Path, description = "a task id, or a live task's name"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")),
    responses((status = 200, description = "The task", body = TaskView), crate::openapi::ErrorResponses))]
async fn resume(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = resolve(&ctx, &raw)?;
    check_scope(&ctx, &caller, id)?;
    write_task(&ctx, &headers, Command::ResumeTask { id }, StatusCode::OK).await
}

#[utoipa::path(get, path = "/tasks/{id}", tag = "tasks", params(("id" = String, Path, description = "a task id, or a live task's name"), ReadQuery),
    responses((status = 200, description = "The task", body = TaskView), crate::openapi::ErrorResponses))]
async fn read(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<TaskView>, ApiError> {
    ctx.read_barrier(q.consistency).await?;
    let id = resolve(&ctx, &raw)?;
    let view = ctx.sm.view();
    match view.task(id)? {
        Some(task) => Ok(Json(task_view_for(&caller, full_view(&view, &task, now_ms())?))),
        None => Err(ApiError::new(ErrorCode::TaskNotFound, format!("task {id} does not exist"))),
    }
}

#[utoipa::path(get, path = "/tasks", tag = "tasks", params(ListQuery),
    responses((status = 200, description = "One page of tasks", body = Page<TaskView>), crate::openapi::ErrorResponses))]
async fn list(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page<TaskView>>, ApiError> {
    let query = task_query(&q)?;
    let (page, page_size) = pagination(q.page, q.page_size)?;
    ctx.read_barrier(q.consistency).await?;
    let now = now_ms();
    let view = ctx.sm.view();
    let found = view.query_tasks(&query, now, page, page_size)?;
    let items = found
        .items
        .iter()
        .map(|t| Ok(task_view_for(&caller, full_view(&view, t, now)?)))
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(Page { items, total: found.total, page, page_size }))
}

/// A listing's query parameters, checked; an empty value is no filter.
fn task_query(q: &ListQuery) -> Result<TaskQuery, ApiError> {
    let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let name = given(&q.name).map(|n| n.to_lowercase());
    if q.name.as_ref().is_some_and(|n| n.len() > NAME_FILTER_BYTES_MAX) {
        let msg = format!("`name` is a part of a task name: at most {NAME_FILTER_BYTES_MAX} bytes");
        return Err(ApiError::new(ErrorCode::InvalidNameFilter, msg));
    }
    Ok(TaskQuery {
        status: given(&q.status).map(|s| task_status(&s)).transpose()?,
        name,
        group: given(&q.group),
        mode: given(&q.mode).map(|m| mode(&m)).transpose()?,
        last_result: given(&q.last_result).map(|r| last_result(&r)).transpose()?,
        sort: given(&q.sort).map(|s| sort(&s)).transpose()?.unwrap_or_default(),
    })
}

fn task_status(raw: &str) -> Result<TaskStatus, ApiError> {
    [TaskStatus::Active, TaskStatus::Paused, TaskStatus::Deleted].into_iter().find(|s| s.as_str() == raw).ok_or_else(
        || {
            let msg = format!("unknown status {raw:?}; expected active, paused or deleted");
            ApiError::new(ErrorCode::InvalidStatusFilter, msg)
        },
    )
}

/// Every execution mode, by its JSON name.
const MODES: [ExecutionMode; 4] =
    [ExecutionMode::Parallel, ExecutionMode::Sequential, ExecutionMode::Skip, ExecutionMode::Replace];

fn mode(raw: &str) -> Result<ExecutionMode, ApiError> {
    let name = |m: &ExecutionMode| serde_json::to_value(m).ok().and_then(|v| v.as_str().map(str::to_string));
    MODES.into_iter().find(|m| name(m).as_deref() == Some(raw)).ok_or_else(|| {
        let msg = format!("unknown mode {raw:?}; expected parallel, sequential, skip or replace");
        ApiError::new(ErrorCode::InvalidMode, msg)
    })
}

/// `success,failed,none` → the statuses, and whether `none` is asked for.
fn last_result(raw: &str) -> Result<LastResultFilter, ApiError> {
    let mut out = LastResultFilter::default();
    for part in raw.split(',').map(str::trim) {
        if part == "none" {
            out.none = true;
            continue;
        }
        let found = ExecutionStatus::ALL.into_iter().find(|s| !s.is_active() && s.as_str() == part);
        let Some(status) = found else {
            let msg = format!(
                "`last_result` takes final statuses and `none`, comma-separated: success, failed, timeout, cancelled, skipped, missed, none; got {part:?}"
            );
            return Err(ApiError::new(ErrorCode::InvalidLastResult, msg));
        };
        out.statuses.push(status);
    }
    Ok(out)
}

fn sort(raw: &str) -> Result<TaskSort, ApiError> {
    Ok(match raw {
        "id" => TaskSort::Id,
        "-id" => TaskSort::IdDesc,
        "name" => TaskSort::Name,
        "-name" => TaskSort::NameDesc,
        "next_fire" => TaskSort::NextFire,
        "-updated" => TaskSort::UpdatedDesc,
        other => {
            let msg = format!("unknown sort {other:?}; expected id, -id, name, -name, next_fire or -updated");
            return Err(ApiError::new(ErrorCode::InvalidSort, msg));
        }
    })
}
