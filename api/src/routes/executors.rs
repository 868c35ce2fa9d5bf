//! `/api/v1/executors`: registration (an upsert by `instance_id`, optionally upserting and
//! binding tasks), listing, reading, operator status and deregistration.
//!
//! Writes arrive here only on the leader (the forwarding middleware sees to that), so the
//! pre-reads below (resolving an `instance_id`, finding the tasks a registration names) see the
//! newest applied state; apply still decides. Registration answers 200 whether the instance is new
//! or not: telling the two apart would need a pre-read that races with concurrent registrations.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, TimeZone, Utc};
use cronraft_raft::model::{Executor, ExecutorStatus};
use cronraft_raft::Command;
use serde::Deserialize;

use crate::context::{Consistency, Ctx};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::protocol::RegisterRequest;
use crate::routes::tasks::{request, ReadQuery};
use crate::types::{ExecutorStatusInput, ExecutorView, Page, RegisteredView, LOG_INDEX_HEADER};
use crate::validate::{executor_spec, status_reason, task_upserts};

pub fn router() -> Router<Ctx> {
    Router::new()
        .route("/executors/register", post(register))
        .route("/executors", get(list))
        .route("/executors/{id}", get(read).delete(remove))
        .route("/executors/{id}/status", put(set_status))
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
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

fn view(ctx: &Ctx, e: &Executor) -> Result<ExecutorView, ApiError> {
    Ok(executor_view(e, ctx.sm.view().executor_load(e.id)?))
}

fn with_log_index(body: impl IntoResponse, log_index: u64) -> Response {
    let mut out = (StatusCode::OK, body).into_response();
    out.headers_mut().insert(LOG_INDEX_HEADER, HeaderValue::from(log_index));
    out
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

async fn register(
    State(ctx): State<Ctx>,
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
    let tasks = task_upserts(&spec.name, &input.tasks, |name| Ok(ctx.sm.view().task_by_name(name)?.map(|t| t.spec)))?;
    let (resp, log_index) = ctx.propose(request(&headers, Command::RegisterExecutor { spec, tasks })).await?;
    match resp {
        cronraft_raft::Response::Registered { executor, task_ids } => {
            Ok(with_log_index(Json(RegisteredView { executor: view(&ctx, &executor)?, task_ids }), log_index))
        }
        cronraft_raft::Response::Rejected(r) => Err(r.into()),
        other => Err(ApiError::internal(format!("apply returned {other:?} instead of a registration"))),
    }
}

/// Proposes an executor write and answers with the executor.
async fn write_executor(ctx: &Ctx, headers: &HeaderMap, command: Command) -> Result<Response, ApiError> {
    let (resp, log_index) = ctx.propose(request(headers, command)).await?;
    match resp {
        cronraft_raft::Response::Executor(e) => Ok(with_log_index(Json(view(ctx, &e)?), log_index)),
        cronraft_raft::Response::Rejected(r) => Err(r.into()),
        other => Err(ApiError::internal(format!("apply returned {other:?} instead of an executor"))),
    }
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

async fn remove(
    State(ctx): State<Ctx>,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = resolve(&ctx, &raw)?;
    write_executor(&ctx, &headers, Command::RemoveExecutor { id }).await
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only this group.
    name: Option<String>,
    page: Option<u64>,
    page_size: Option<u64>,
    #[serde(default)]
    consistency: Consistency,
}

async fn list(State(ctx): State<Ctx>, ApiQuery(q): ApiQuery<ListQuery>) -> Result<Json<Page<ExecutorView>>, ApiError> {
    let (page, page_size) = super::pagination(q.page, q.page_size)?;
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
