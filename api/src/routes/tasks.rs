//! `/api/v1/tasks`: create, list, read, update, soft-delete, pause, resume.
//!
//! Writes arrive here only on the leader (the forwarding middleware sees to that) and become one
//! `Request` each, carrying the request id from the `Idempotency-Key` header. Reads pass the
//! consistency barrier first, then read this node's state machine.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use axum::Json;
use cronraft_raft::model::TaskStatus;
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `active`, `paused` or `deleted`.
    status: Option<String>,
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

/// Proposes `command` and answers with the resulting task.
async fn write_task(ctx: &Ctx, headers: &HeaderMap, command: Command, ok: StatusCode) -> Result<Response, ApiError> {
    let (task, log_index) = propose_expect(ctx, headers, command, "a task", handler::task).await?;
    let by = ctx.sm.view().task_author(task.id)?;
    Ok(with_log_index(ok, Json(task_view(&task, now_ms(), by)), log_index))
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
    match ctx.sm.view().task(id)? {
        Some(task) => Ok(Json(task_view_for(&caller, task_view(&task, now_ms(), ctx.sm.view().task_author(id)?)))),
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
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some("active") => Some(TaskStatus::Active),
        Some("paused") => Some(TaskStatus::Paused),
        Some("deleted") => Some(TaskStatus::Deleted),
        Some(other) => {
            let msg = format!("unknown status {other:?}; expected active, paused or deleted");
            return Err(ApiError::new(ErrorCode::InvalidStatusFilter, msg));
        }
    };
    let (page, page_size) = pagination(q.page, q.page_size)?;
    ctx.read_barrier(q.consistency).await?;
    let found = ctx.sm.view().list_tasks(status, page, page_size)?;
    let now = now_ms();
    let view = ctx.sm.view();
    let items = found
        .items
        .iter()
        .map(|t| Ok(task_view_for(&caller, task_view(t, now, view.task_author(t.id)?))))
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(Page { items, total: found.total, page, page_size }))
}
