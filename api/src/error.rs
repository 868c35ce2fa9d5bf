//! REST errors: one type, rendered as `{"error":{"code","message"}}` with a stable machine code.
//!
//! Codes are part of the API contract (documented in `docs/reference/api.md`): clients and the
//! chaos harness branch on them, so they never change meaning. The message says what to fix.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cronraft_raft::membership::MembershipError;
use cronraft_raft::Rejection;

use crate::types::{ErrorBody, ErrorDetail};

/// Response header telling the forwarding layer that this write never reached a leader and may be
/// retried elsewhere.
pub const RETRY_HEADER: &str = "x-cronraft-retry";

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Set when the write should be retried at the current leader. `Some(false)`: nothing was
    /// proposed here; `Some(true)`: it was proposed and may still take effect (the retry is safe
    /// because it carries the same request id).
    pub retry_elsewhere: Option<bool>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_elsewhere: None }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
    /// This node is not the leader; nothing was proposed here.
    pub fn not_leader() -> Self {
        ApiError { retry_elsewhere: Some(false), ..Self::unavailable("not_leader", "this node is not the leader") }
    }
    /// The listener already serves as many requests as its `requests_inflight_max` allows; this
    /// one was not started, so it is safe to retry.
    pub fn overloaded() -> Self {
        Self::unavailable("overloaded", "too many requests in flight on this node; nothing was done, retry shortly")
    }
    /// The request ran longer than the listener's `request_timeout_ms` and was abandoned. The limit
    /// is above every internal wait, so this is rare; a write may still take effect.
    pub fn request_timeout(limit_ms: u64) -> Self {
        let message = format!(
            "the request did not finish within the server's limit of {limit_ms} ms; a write may still take \
             effect: retry with the same Idempotency-Key"
        );
        Self::unavailable("request_timeout", message)
    }
    /// Leadership was lost while the write was pending: it may or may not take effect.
    pub fn leadership_lost() -> Self {
        let e = Self::unavailable("leadership_lost", "leadership changed while the write was pending");
        ApiError { retry_elsewhere: Some(true), ..e }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_string(), message: self.message } };
        let mut resp = (self.status, Json(body)).into_response();
        match self.retry_elsewhere {
            Some(false) => {
                resp.headers_mut().insert(RETRY_HEADER, HeaderValue::from_static("unproposed"));
            }
            Some(true) => {
                resp.headers_mut().insert(RETRY_HEADER, HeaderValue::from_static("proposed"));
            }
            None => {}
        }
        resp
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let msg = r.to_string();
        match r {
            Rejection::TaskNotFound { .. } => ApiError::not_found("task_not_found", msg),
            Rejection::NameTaken { .. } => ApiError::conflict("task_name_taken", msg),
            Rejection::TaskDeleted { .. } => ApiError::conflict("task_deleted", msg),
            Rejection::VersionConflict { .. } => ApiError::conflict("version_conflict", msg),
            Rejection::RequestIdReused { .. } => ApiError::unprocessable("idempotency_key_reused", msg),
            Rejection::TooManyTasks { .. } => ApiError::conflict("task_limit_reached", msg),
            Rejection::InvalidSpec(e) => e.into(),
            Rejection::ExecutorNotFound { .. } => ApiError::not_found("executor_not_found", msg),
            Rejection::ExecutionNotFound { .. } => ApiError::not_found("execution_not_found", msg),
            Rejection::ExecutionFinished { .. } => ApiError::conflict("execution_finished", msg),
            Rejection::StaleAttempt { .. } => ApiError::conflict("stale_attempt", msg),
            Rejection::BadCallbackToken { .. } => ApiError::new(StatusCode::FORBIDDEN, "invalid_callback_token", msg),
            Rejection::BadReportStatus { .. } => ApiError::unprocessable("invalid_status", msg),
        }
    }
}

impl From<MembershipError> for ApiError {
    fn from(e: MembershipError) -> Self {
        let msg = e.to_string();
        match e {
            MembershipError::NotLeader { .. } => ApiError::not_leader(),
            MembershipError::InProgress => ApiError::conflict("membership_change_in_progress", msg),
            MembershipError::UnknownNode(_) => ApiError::not_found("node_not_found", msg),
            MembershipError::AlreadyVoter(_) => ApiError::conflict("already_voter", msg),
            MembershipError::LastVoter(_) => ApiError::conflict("last_voter", msg),
            MembershipError::IdTaken { .. } => ApiError::conflict("node_id_taken", msg),
            MembershipError::LearnerBehind { .. } => ApiError::conflict("learner_behind", msg),
            MembershipError::Timeout => ApiError::unavailable("timeout", msg),
            MembershipError::Raft(_) => ApiError::internal(msg),
        }
    }
}

impl From<cronraft_raft::error::StoreError> for ApiError {
    fn from(e: cronraft_raft::error::StoreError) -> Self {
        ApiError::internal(format!("storage: {e}"))
    }
}
