//! Operations and small read-only endpoints: `/health`, `/ready`, `/metrics`,
//! `/api/v1/schedule/preview`, and the internal read-index endpoint followers call on the leader.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use cronraft_raft::schedule::{DstPolicy, Schedule};
use cronraft_raft::spec::schedule_error;
use serde::Deserialize;
use serde_json::json;

use crate::context::{Ctx, ReadIndex};
use crate::error::{ApiError, ErrorCode};
use crate::extract::ApiQuery;
use crate::types::PreviewView;

/// Most slots one preview returns.
pub const PREVIEW_COUNT_MAX: usize = 1000;
/// A follower whose applied index trails its log by more than this is not ready.
const READY_LAG_MAX: u64 = 100;

/// Routes under `/api/v1`.
pub fn api_router() -> Router<Ctx> {
    Router::new().route("/schedule/preview", get(preview)).route("/internal/read-index", post(read_index))
}

/// Routes at the root.
pub fn root_router() -> Router<Ctx> {
    Router::new().route("/health", get(health)).route("/ready", get(ready)).route("/metrics", get(metrics))
}

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

async fn metrics(State(ctx): State<Ctx>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::render(&ctx))
}

async fn read_index(State(ctx): State<Ctx>) -> Result<Json<ReadIndex>, ApiError> {
    Ok(Json(ctx.read_index().await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewQuery {
    cron_expression: Option<String>,
    #[serde(default = "utc")]
    timezone: String,
    after: Option<String>,
    count: Option<usize>,
    #[serde(default)]
    dst_policy: DstPolicy,
}

fn utc() -> String {
    "UTC".into()
}

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
