//! `POST /api/v1/executions/{id}/stop` (a person ends a run) and
//! `POST /api/v1/executions/{id}/callback` (an executor reports on its attempt).
//!
//! Both are writes, so they reach the leader through the forwarding middleware and carry the
//! request id; an executor retrying a callback with the same `Idempotency-Key` is applied once.
//! Whether a report is acceptable (the execution exists and is active, the attempt is the
//! current running one, the token matches) is decided in apply, against the state the entry meets;
//! this module only checks shape and size, so a report never costs more than its bounded log entry.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use axum::Json;
use cronraft_raft::command::AttemptReport;
use cronraft_raft::model::ExecutionStatus;
use cronraft_raft::state::truncate_tail;
use cronraft_raft::Command;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Caller;
use crate::context::Ctx;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{parse_json, ApiPath, JsonBody};
use crate::handler::{self, propose_expect, with_log_index};
use crate::protocol::{CallbackRequest, CallbackStatus, LOGS_BYTES_MAX, RESULT_BYTES_MAX};
use crate::routes::executions::{execution_id, requested_by};
use crate::types::{ExecutionView, StopInput};
use crate::views::execution_view_for;

/// Header that may carry the callback token instead of the body (the body wins).
pub const CALLBACK_TOKEN_HEADER: &str = "x-callback-token";
/// Longest callback token accepted (the cluster issues 32 hex characters).
pub const CALLBACK_TOKEN_LEN_MAX: usize = 128;
const STATUSES: [&str; 5] = ["running", "success", "failed", "timeout", "cancelled"];

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(stop)).routes(routes!(callback))
}

/// Proposes an execution write and answers 200 with the execution.
async fn write_execution(
    ctx: &Ctx,
    caller: &Caller,
    headers: &HeaderMap,
    command: Command,
) -> Result<Response, ApiError> {
    let (e, log_index) = propose_expect(ctx, headers, command, "an execution", handler::execution).await?;
    Ok(with_log_index(StatusCode::OK, Json(execution_view_for(caller, &e)), log_index))
}

#[utoipa::path(post, path = "/executions/{id}/stop", tag = "executions", params(("id" = u64, Path, description = "an execution id"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")),
    request_body(content = Option<StopInput>, description = "optional"),
    responses((status = 200, description = "The execution", body = ExecutionView), crate::openapi::ErrorResponses))]
async fn stop(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = execution_id(&raw)?;
    let input: StopInput =
        if body.iter().all(u8::is_ascii_whitespace) { StopInput::default() } else { parse_json(&body)? };
    let requested_by = requested_by(&caller, input.requested_by)?;
    if let Some(e) = ctx.sm.view().execution(id)? {
        crate::routes::tasks::check_scope(&ctx, &caller, e.task_id)?;
    }
    write_execution(&ctx, &caller, &headers, Command::StopExecution { id, requested_by }).await
}

fn status_of(s: CallbackStatus) -> ExecutionStatus {
    match s {
        CallbackStatus::Running => ExecutionStatus::Running,
        CallbackStatus::Success => ExecutionStatus::Success,
        CallbackStatus::Failed => ExecutionStatus::Failed,
        CallbackStatus::Timeout => ExecutionStatus::Timeout,
        CallbackStatus::Cancelled => ExecutionStatus::Cancelled,
    }
}

/// Reads a callback body: the token from the body or else the header, the status checked by name
/// (so a wrong one is `invalid_status`, as apply would call it), then the strict shape.
fn parse_callback(headers: &HeaderMap, mut body: serde_json::Value) -> Result<CallbackRequest, ApiError> {
    let Some(fields) = body.as_object_mut() else {
        return Err(ApiError::new(ErrorCode::InvalidField, "the body must be a JSON object"));
    };
    if fields.get("callback_token").map(|v| v.is_null()).unwrap_or(true) {
        match headers.get(CALLBACK_TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
            Some(token) => {
                fields.insert("callback_token".into(), serde_json::Value::String(token.to_string()));
            }
            None => {
                let msg = "`callback_token` is required, in the body or in the X-Callback-Token header";
                return Err(ApiError::new(ErrorCode::MissingField, msg));
            }
        }
    }
    for f in ["attempt", "status"] {
        if fields.get(f).map(|v| v.is_null()).unwrap_or(true) {
            return Err(ApiError::new(ErrorCode::MissingField, format!("`{f}` is required")));
        }
    }
    if !fields["status"].as_str().map(|s| STATUSES.contains(&s)).unwrap_or(false) {
        let msg = format!("`status` must be one of {}, not {}", STATUSES.join(", "), fields["status"]);
        return Err(ApiError::new(ErrorCode::InvalidStatus, msg));
    }
    let req: CallbackRequest =
        serde_json::from_value(body).map_err(|e| ApiError::new(ErrorCode::InvalidField, e.to_string()))?;
    if req.callback_token.len() > CALLBACK_TOKEN_LEN_MAX {
        let msg = format!("`callback_token` must be at most {CALLBACK_TOKEN_LEN_MAX} bytes");
        return Err(ApiError::new(ErrorCode::InvalidField, msg));
    }
    Ok(req)
}

/// With auth on, executors hold a token derived from the replicated one with a key only nodes
/// know (`ClusterSecret::callback_token`): this checks it in constant time here (on the leader:
/// callbacks are writes) and hands apply the replicated token it compares with. An attempt this
/// node does not know yet (a new leader still applying its log) is looked for again after a read
/// barrier; one it still does not know is left to apply, which refuses it.
async fn replicated_token(ctx: &Ctx, execution_id: u64, attempt: u32, presented: String) -> Result<String, ApiError> {
    let Some(secret) = &ctx.cluster_secret else { return Ok(presented) };
    let find = || -> Result<Option<String>, ApiError> {
        Ok(ctx
            .sm
            .view()
            .execution(execution_id)?
            .and_then(|e| e.attempts.iter().find(|a| a.number == attempt).map(|a| a.callback_token.clone())))
    };
    let mut stored = find()?;
    if stored.is_none() {
        ctx.read_barrier(crate::context::Consistency::Linearizable).await?;
        stored = find()?;
    }
    match stored {
        Some(stored) if secret.callback_matches(execution_id, attempt, &stored, &presented) => Ok(stored),
        Some(_) => Err(ApiError::new(
            ErrorCode::InvalidCallbackToken,
            "the callback token does not match the execution's attempt",
        )),
        None => Ok(presented),
    }
}

#[utoipa::path(post, path = "/executions/{id}/callback", tag = "executions", params(("id" = u64, Path, description = "an execution id"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once"),
        ("X-Callback-Token" = Option<String>, Header, description = "the callback token, when the body has none")),
    request_body = CallbackRequest,
    responses((status = 200, description = "The execution", body = ExecutionView), crate::openapi::ErrorResponses))]
async fn callback(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    let execution_id = execution_id(&raw)?;
    let req = parse_callback(&headers, body)?;
    let result = req.result.as_ref().filter(|v| !v.is_null()).map(|v| v.to_string());
    if let Some(r) = result.as_ref().filter(|r| r.len() > RESULT_BYTES_MAX) {
        let msg = format!("`result` is {} bytes as JSON; at most {RESULT_BYTES_MAX}", r.len());
        return Err(ApiError::new(ErrorCode::ResultTooLarge, msg));
    }
    let callback_token = replicated_token(&ctx, execution_id, req.attempt, req.callback_token).await?;
    let report = AttemptReport {
        execution_id,
        attempt: req.attempt,
        callback_token,
        status: status_of(req.status),
        result,
        logs: req.logs.map(|l| truncate_tail(&l, LOGS_BYTES_MAX)),
        start_ms: req.start_time.map(|t| t.timestamp_millis()),
        end_ms: req.end_time.map(|t| t.timestamp_millis()),
    };
    write_execution(&ctx, &caller, &headers, Command::Report(report)).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_body_token_wins_over_the_header_and_one_of_them_is_required() {
        let mut headers = HeaderMap::new();
        let body = serde_json::json!({"attempt": 1, "status": "success"});
        assert_eq!(parse_callback(&headers, body.clone()).unwrap_err().code.as_str(), "missing_field");
        headers.insert(CALLBACK_TOKEN_HEADER, HeaderValue::from_static("from-header"));
        assert_eq!(parse_callback(&headers, body).unwrap().callback_token, "from-header");
        let body = serde_json::json!({"attempt": 1, "status": "success", "callback_token": "from-body"});
        assert_eq!(parse_callback(&headers, body).unwrap().callback_token, "from-body");
    }

    #[test]
    fn statuses_are_checked_by_name() {
        let headers = HeaderMap::new();
        for bad in [serde_json::json!("done"), serde_json::json!("pending"), serde_json::json!(3)] {
            let body = serde_json::json!({"attempt": 1, "status": bad, "callback_token": "t"});
            assert_eq!(parse_callback(&headers, body).unwrap_err().code.as_str(), "invalid_status", "{bad}");
        }
        let body = serde_json::json!({"attempt": 1, "status": "failed", "callback_token": "t", "colour": 1});
        assert_eq!(parse_callback(&headers, body).unwrap_err().code.as_str(), "invalid_field");
        let body = serde_json::json!({"status": "failed", "callback_token": "t"});
        assert_eq!(parse_callback(&headers, body).unwrap_err().code.as_str(), "missing_field");
    }
}
