//! Operations and small read-only endpoints: `/health`, `/ready`, `/metrics`,
//! `/api/v1/schedule/preview`, and the internal read-index endpoint followers call on the leader.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use cronraft_raft::schedule::{DstPolicy, Schedule};
use cronraft_raft::spec::schedule_error;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::context::{Ctx, ReadIndex};
use crate::error::{ApiError, ErrorCode};
use crate::extract::ApiQuery;
use crate::types::PreviewView;

/// Most slots one preview returns.
pub const PREVIEW_COUNT_MAX: usize = 1000;
/// A follower whose applied index trails its log by more than this is not ready.
const READY_LAG_MAX: u64 = 100;

/// Routes under `/api/v1`.
pub fn api_router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(preview)).routes(routes!(read_index)).routes(routes!(crate::openapi::document))
}

/// Routes at the root.
pub fn root_router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(ready)).routes(routes!(metrics))
}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Raft runs", body = HealthView), (status = 503, description = "Raft stopped", body = HealthView)))]
async fn health(State(ctx): State<Ctx>) -> impl IntoResponse {
    let m = ctx.raft.metrics().borrow().clone();
    match &m.running_state {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok", "node_id": ctx.node_id}))),
        Err(fatal) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "failed", "node_id": ctx.node_id, "error": fatal.to_string()})),
        ),
    }
}

#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, description = "Ready", body = ReadyView), (status = 503, description = "Not ready; `reason` says why", body = ReadyView)))]
async fn ready(State(ctx): State<Ctx>) -> impl IntoResponse {
    let m = ctx.raft.metrics().borrow().clone();
    let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
    let lag = m.last_log_index.unwrap_or(0).saturating_sub(applied);
    let reason = if m.running_state.is_err() {
        Some("raft stopped")
    } else if m.current_leader.is_none() {
        Some("no leader known")
    } else if lag > READY_LAG_MAX {
        Some("catching up")
    } else {
        None
    };
    let body =
        json!({"ready": reason.is_none(), "reason": reason, "leader_id": m.current_leader, "applied_index": applied});
    let status = if reason.is_none() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String)))]
async fn metrics(State(ctx): State<Ctx>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], crate::metrics::render(&ctx))
}

#[utoipa::path(post, path = "/internal/read-index", tag = "internal",
    responses((status = 200, description = "A quorum-confirmed read index (leader only)", body = ReadIndex), crate::openapi::ErrorResponses))]
async fn read_index(State(ctx): State<Ctx>) -> Result<Json<ReadIndex>, ApiError> {
    Ok(Json(ctx.read_index().await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PreviewQuery {
    /// Required.
    cron_expression: Option<String>,
    /// An IANA zone (default `UTC`).
    #[serde(default = "utc")]
    #[param(required = false)]
    timezone: String,
    /// RFC 3339; the slots after it (default: now).
    after: Option<String>,
    /// 1 to 1000 (default 10).
    #[param(minimum = 1, maximum = 1000)]
    count: Option<usize>,
    #[serde(default)]
    #[param(required = false)]
    dst_policy: DstPolicy,
}

/// Body of `GET /health`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct HealthView {
    /// `ok` or `failed`.
    status: String,
    node_id: u64,
    /// Why Raft stopped (only when `failed`).
    error: Option<String>,
}

/// Body of `GET /ready`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ReadyView {
    ready: bool,
    /// `raft stopped`, `no leader known` or `catching up`; null when ready.
    reason: Option<String>,
    leader_id: Option<u64>,
    applied_index: u64,
}

fn utc() -> String {
    "UTC".into()
}

#[utoipa::path(get, path = "/schedule/preview", tag = "tasks", params(PreviewQuery),
    responses((status = 200, description = "The next slots", body = PreviewView), crate::openapi::ErrorResponses))]
async fn preview(ApiQuery(q): ApiQuery<PreviewQuery>) -> Result<Json<PreviewView>, ApiError> {
    let Some(expression) = q.cron_expression else {
        return Err(ApiError::new(ErrorCode::MissingQueryField, "`cron_expression` is required"));
    };
    let count = q.count.unwrap_or(10);
    if count == 0 || count > PREVIEW_COUNT_MAX {
        return Err(ApiError::new(ErrorCode::InvalidCount, format!("`count` must be 1 to {PREVIEW_COUNT_MAX}")));
    }
    let after = match q.after {
        None => Utc::now(),
        Some(raw) => DateTime::parse_from_rfc3339(&raw).map(|t| t.with_timezone(&Utc)).map_err(|e| {
            ApiError::new(ErrorCode::InvalidTime, format!("`after` must be RFC 3339 (e.g. 2025-01-01T00:00:00Z): {e}"))
        })?,
    };
    let schedule = Schedule::parse_with_policy(&expression, &q.timezone, q.dst_policy).map_err(schedule_error)?;
    Ok(Json(PreviewView { times: schedule.preview(after, count) }))
}
