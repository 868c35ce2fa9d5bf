//! `/api/v1/executors`: registration (an upsert by `instance_id`, optionally upserting and
//! binding tasks), listing, reading, operator status and deregistration.
//!
//! Writes arrive here only on the leader (the forwarding middleware sees to that), so the
//! pre-reads below (resolving an `instance_id`, finding the tasks a registration names) see the
//! newest applied state; apply still decides. Registration answers 200 whether the instance is new
//! or not: telling the two apart would need a pre-read that races with concurrent registrations.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use axum::Json;
use cronraft_raft::command::TaskUpsert;
use cronraft_raft::model::{Executor, ExecutorStatus};
use cronraft_raft::Command;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Caller;
use crate::context::{Consistency, Ctx};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::handler::{self, pagination, propose_expect, with_log_index, ReadQuery};
use crate::protocol::RegisterRequest;
use crate::types::{ExecutorStatusInput, ExecutorView, Page, RegisteredView};
use crate::validate::{executor_spec, status_reason, task_upserts};
use crate::views::executor_view;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(list))
        .routes(routes!(read, remove))
        .routes(routes!(set_status))
}

fn view(ctx: &Ctx, e: &Executor) -> Result<ExecutorView, ApiError> {
    Ok(executor_view(e, ctx.sm.view().executor_load(e.id)?))
}

/// A path segment names an executor by id (all digits) or by `instance_id` (never all digits).
/// Returns the id, or 404 for an unknown `instance_id` (an unknown id is left to the caller).
fn resolve(ctx: &Ctx, raw: &str) -> Result<u64, ApiError> {
    if let Ok(id) = raw.parse::<u64>() {
        return Ok(id);
    }
    match ctx.sm.view().executor_by_instance(raw)? {
        Some(e) => Ok(e.id),
        None => Err(ApiError::new(ErrorCode::ExecutorNotFound, format!("no executor has instance_id {raw:?}"))),
    }
}

/// Fields a registration must carry, checked before the body's shape so a missing one gets
/// `missing_field`, as for tasks.
const REGISTER_REQUIRED: [&str; 3] = ["name", "instance_id", "base_url"];

#[utoipa::path(post, path = "/executors/register", tag = "executors", params(("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")), request_body = RegisterRequest,
    responses((status = 200, description = "The instance and the tasks it upserted", body = RegisteredView), crate::openapi::ErrorResponses))]
#[allow(clippy::result_large_err)] // the picker gives apply's answer back (see `handler`)
async fn register(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    let Some(fields) = body.as_object() else {
        return Err(ApiError::new(ErrorCode::InvalidField, "the body must be a JSON object"));
    };
    if let Some(f) = REGISTER_REQUIRED.iter().find(|f| fields.get(**f).map(|v| v.is_null()).unwrap_or(true)) {
        return Err(ApiError::new(ErrorCode::MissingField, format!("`{f}` is required")));
    }
    let input: RegisterRequest =
        serde_json::from_value(body).map_err(|e| ApiError::new(ErrorCode::InvalidField, e.to_string()))?;
    let spec = executor_spec(&input)?;
    caller.check_group(&spec.name)?;
    check_instance(&ctx, &caller, &spec.instance_id, &spec.name)?;
    let tasks = task_upserts(&spec.name, &input.tasks, |name| Ok(ctx.sm.view().task_by_name(name)?.map(|t| t.spec)))?;
    check_upserts(&ctx, &caller, &spec.name, &tasks)?;
    let command = Command::RegisterExecutor { spec, tasks };
    let registered = |resp| match resp {
        cronraft_raft::Response::Registered { executor, task_ids } => Ok((executor, task_ids)),
        other => Err(other),
    };
    let ((executor, task_ids), log_index) =
        propose_expect(&ctx, &headers, command, "a registration", registered).await?;
    let hex = |k: [u8; 32]| blake3::Hash::from(k).to_hex().to_string();
    let signing_keys: Vec<String> = match &ctx.cluster_secret {
        Some(s) => s.executor_keys(&executor.spec.instance_id).into_iter().map(hex).collect(),
        None => Vec::new(),
    };
    let signing_key = signing_keys.first().cloned();
    let body = Json(RegisteredView { executor: view(&ctx, &executor)?, task_ids, signing_key, signing_keys });
    Ok(with_log_index(StatusCode::OK, body, log_index))
}

/// A registration is an upsert by `instance_id`: a token limited to some groups, or an `executor`
/// token, may not take over an instance registered in another group (it would get that
/// instance's signing key and its runs).
fn check_instance(ctx: &Ctx, caller: &Caller, instance_id: &str, group: &str) -> Result<(), ApiError> {
    if !caller.is_executor() && !caller.is_scoped() {
        return Ok(());
    }
    match ctx.sm.view().executor_by_instance(instance_id)? {
        Some(e) if e.spec.name != group => Err(ApiError::new(
            ErrorCode::OutOfScope,
            format!("instance {instance_id:?} is registered in group {:?}; this token cannot move it", e.spec.name),
        )),
        _ => Ok(()),
    }
}

/// A registration upserts tasks into the registering group: an `executor` token may not take over
/// a task of another group that way, and a scoped token only upserts tasks in its scope.
fn check_upserts(ctx: &Ctx, caller: &Caller, group: &str, tasks: &[TaskUpsert]) -> Result<(), ApiError> {
    for t in tasks {
        caller.check_task(&t.create.name, group)?;
        if let (true, Some(current)) = (caller.is_executor(), ctx.sm.view().task_by_name(&t.create.name)?) {
            if current.spec.executor != group {
                let msg = format!(
                    "task {:?} belongs to group {:?}; an executor token registers tasks of its own group ({group:?}) only",
                    t.create.name, current.spec.executor
                );
                return Err(ApiError::new(ErrorCode::OutOfScope, msg));
            }
        }
    }
    Ok(())
}

/// Proposes an executor write and answers with the executor.
async fn write_executor(ctx: &Ctx, headers: &HeaderMap, command: Command) -> Result<Response, ApiError> {
    let (e, log_index) = propose_expect(ctx, headers, command, "an executor", handler::executor).await?;
    Ok(with_log_index(StatusCode::OK, Json(view(ctx, &e)?), log_index))
}

fn parse_status(raw: &str) -> Result<ExecutorStatus, ApiError> {
    match raw {
        "online" => Ok(ExecutorStatus::Online),
        "offline" => Ok(ExecutorStatus::Offline),
        "maintenance" => Ok(ExecutorStatus::Maintenance),
        other => Err(ApiError::new(
            ErrorCode::InvalidStatus,
            format!("unknown executor status {other:?}; expected online, offline or maintenance"),
        )),
    }
}

#[utoipa::path(put, path = "/executors/{id}/status", tag = "executors", params(("id" = String, Path, description = "an executor id, or its `instance_id`"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")),
    request_body = ExecutorStatusInput, responses((status = 200, description = "The executor", body = ExecutorView), crate::openapi::ErrorResponses))]
async fn set_status(
    State(ctx): State<Ctx>,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<ExecutorStatusInput>,
) -> Result<Response, ApiError> {
    let status = parse_status(&input.status)?;
    let reason = status_reason(input.reason)?;
    let id = resolve(&ctx, &raw)?;
    write_executor(&ctx, &headers, Command::SetExecutorStatus { id, status, reason }).await
}

#[utoipa::path(delete, path = "/executors/{id}", tag = "executors", params(("id" = String, Path, description = "an executor id, or its `instance_id`"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")), responses((status = 200, description = "The executor", body = ExecutorView), crate::openapi::ErrorResponses))]
async fn remove(
    State(ctx): State<Ctx>,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = resolve(&ctx, &raw)?;
    write_executor(&ctx, &headers, Command::RemoveExecutor { id }).await
}

#[utoipa::path(get, path = "/executors/{id}", tag = "executors", params(("id" = String, Path, description = "an executor id, or its `instance_id`"), ReadQuery), responses((status = 200, description = "The executor", body = ExecutorView), crate::openapi::ErrorResponses))]
async fn read(
    State(ctx): State<Ctx>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<ExecutorView>, ApiError> {
    ctx.read_barrier(q.consistency).await?;
    let id = resolve(&ctx, &raw)?;
    match ctx.sm.view().executor(id)? {
        Some(e) => Ok(Json(view(&ctx, &e)?)),
        None => Err(ApiError::new(ErrorCode::ExecutorNotFound, format!("executor {id} does not exist"))),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this group.
    name: Option<String>,
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

#[utoipa::path(get, path = "/executors", tag = "executors", params(ListQuery),
    responses((status = 200, description = "One page of executors", body = Page<ExecutorView>), crate::openapi::ErrorResponses))]
async fn list(State(ctx): State<Ctx>, ApiQuery(q): ApiQuery<ListQuery>) -> Result<Json<Page<ExecutorView>>, ApiError> {
    let (page, page_size) = pagination(q.page, q.page_size)?;
    ctx.read_barrier(q.consistency).await?;
    let state = ctx.sm.view();
    let found = state.list_executors(q.name.as_deref().filter(|n| !n.is_empty()), page, page_size)?;
    let items = found
        .items
        .iter()
        .map(|e| Ok(executor_view(e, state.executor_load(e.id)?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(Page { items, total: found.total, page, page_size }))
}
