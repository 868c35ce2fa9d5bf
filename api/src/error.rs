//! REST errors: one type, rendered as `{"error":{"code","message"}}` with a stable machine code.
//!
//! Codes are part of the API contract (documented in `docs/reference/api.md`): clients and the
//! chaos harness branch on them, so they never change meaning. The message says what to fix. The
//! codes, their statuses and their meanings are one table, [`ErrorCode`].
//!
//! An [`ErrorCode::Internal`] error never shows its text to the client: the answer carries a
//! generic message, and the text travels in the response's extensions as [`InternalDetail`] to
//! the `observe` middleware, which logs it once with the request id and names that id in the
//! message.

mod code;

pub use code::ErrorCode;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cronraft_raft::membership::MembershipError;
use cronraft_raft::notify::NotifyInputError;
use cronraft_raft::Rejection;

use crate::types::{ErrorBody, ErrorDetail};

/// Response header telling the forwarding layer that this write never reached a leader and may be
/// retried elsewhere.
pub const RETRY_HEADER: &str = "x-cronraft-retry";

/// The message of every 500 before the middleware names the request id in it.
pub const INTERNAL_MESSAGE: &str = "internal error";

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    /// For the client; for [`ErrorCode::Internal`], for the node's log only.
    pub message: String,
    /// Set when the write should be retried at the current leader. `Some(false)`: nothing was
    /// proposed here; `Some(true)`: it was proposed and may still take effect (the retry is safe
    /// because it carries the same request id).
    pub retry_elsewhere: Option<bool>,
}

/// The text of an internal error, kept out of the body and handed to the logging middleware in
/// the response's extensions.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), retry_elsewhere: None }
    }
    /// The status of the answer (the code's).
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
    /// A bug or a storage failure: `detail` is logged, never answered.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, detail)
    }
    /// This node is not the leader; nothing was proposed here.
    pub fn not_leader() -> Self {
        ApiError { retry_elsewhere: Some(false), ..Self::new(ErrorCode::NotLeader, "this node is not the leader") }
    }
    /// The listener already serves as many requests as its `requests_inflight_max` allows; this
    /// one was not started, so it is safe to retry.
    pub fn overloaded() -> Self {
        Self::new(ErrorCode::Overloaded, "too many requests in flight on this node; nothing was done, retry shortly")
    }
    /// The request ran longer than the listener's `request_timeout_ms` and was abandoned. The limit
    /// is above every internal wait, so this is rare; a write may still take effect.
    pub fn request_timeout(limit_ms: u64) -> Self {
        let message = format!(
            "the request did not finish within the server's limit of {limit_ms} ms; a write may still take \
             effect: retry with the same Idempotency-Key"
        );
        Self::new(ErrorCode::RequestTimeout, message)
    }
    /// Leadership was lost while the write was pending: it may or may not take effect.
    pub fn leadership_lost() -> Self {
        let e = Self::new(ErrorCode::LeadershipLost, "leadership changed while the write was pending");
        ApiError { retry_elsewhere: Some(true), ..e }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let internal = self.code == ErrorCode::Internal;
        let message = if internal { INTERNAL_MESSAGE.to_string() } else { self.message.clone() };
        let body = ErrorBody { error: ErrorDetail { code: self.code.as_str().to_string(), message } };
        let mut resp = (self.code.status(), Json(body)).into_response();
        if internal {
            resp.extensions_mut().insert(InternalDetail(self.message));
        }
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
        let code = match &r {
            Rejection::TaskNotFound { .. } => ErrorCode::TaskNotFound,
            Rejection::NameTaken { .. } => ErrorCode::TaskNameTaken,
            Rejection::TaskDeleted { .. } => ErrorCode::TaskDeleted,
            Rejection::VersionConflict { .. } => ErrorCode::VersionConflict,
            Rejection::RequestIdReused { .. } => ErrorCode::IdempotencyKeyReused,
            Rejection::TooManyTasks { .. } => ErrorCode::TaskLimitReached,
            Rejection::InvalidSpec(e) => return e.clone().into(),
            Rejection::ExecutorNotFound { .. } => ErrorCode::ExecutorNotFound,
            Rejection::ExecutionNotFound { .. } => ErrorCode::ExecutionNotFound,
            Rejection::ExecutionFinished { .. } => ErrorCode::ExecutionFinished,
            Rejection::StaleAttempt { .. } => ErrorCode::StaleAttempt,
            Rejection::BadCallbackToken { .. } => ErrorCode::InvalidCallbackToken,
            Rejection::BadReportStatus { .. } => ErrorCode::InvalidStatus,
            Rejection::TokenNameTaken { .. } => ErrorCode::TokenNameTaken,
            Rejection::TokenNotFound { .. } => ErrorCode::TokenNotFound,
            Rejection::TooManyTokens { .. } => ErrorCode::TokenLimitReached,
            Rejection::InvalidToken { .. } => ErrorCode::InvalidField,
            Rejection::ChannelNotFound { .. } => ErrorCode::ChannelNotFound,
            Rejection::ChannelNameTaken { .. } => ErrorCode::ChannelNameTaken,
            Rejection::ChannelInUse { .. } => ErrorCode::ChannelInUse,
            Rejection::TooManyChannels { .. } => ErrorCode::ChannelLimitReached,
            Rejection::RuleNotFound { .. } => ErrorCode::RuleNotFound,
            Rejection::TooManyRules { .. } => ErrorCode::RuleLimitReached,
            Rejection::UnknownChannel { .. } => ErrorCode::UnknownChannel,
            Rejection::InvalidNotification(e) => return e.clone().into(),
        };
        ApiError::new(code, r.to_string())
    }
}

impl From<NotifyInputError> for ApiError {
    fn from(e: NotifyInputError) -> Self {
        let code = match &e {
            NotifyInputError::ChannelName => ErrorCode::InvalidName,
            NotifyInputError::Url(_) => ErrorCode::InvalidChannelUrl,
            NotifyInputError::UnknownPlaceholder(_) => ErrorCode::UnknownPlaceholder,
            NotifyInputError::Template(_) => ErrorCode::InvalidTemplate,
            NotifyInputError::Secret => ErrorCode::InvalidSecret,
            NotifyInputError::Rule(_) => ErrorCode::InvalidRule,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<MembershipError> for ApiError {
    fn from(e: MembershipError) -> Self {
        let code = match &e {
            MembershipError::NotLeader { .. } => return ApiError::not_leader(),
            MembershipError::InProgress => ErrorCode::MembershipChangeInProgress,
            MembershipError::UnknownNode(_) => ErrorCode::NodeNotFound,
            MembershipError::AlreadyVoter(_) => ErrorCode::AlreadyVoter,
            MembershipError::LastVoter(_) => ErrorCode::LastVoter,
            MembershipError::IdTaken { .. } => ErrorCode::NodeIdTaken,
            MembershipError::AddressTaken { .. } => ErrorCode::AddressTaken,
            MembershipError::LearnerBehind { .. } => ErrorCode::LearnerBehind,
            MembershipError::Timeout => ErrorCode::Timeout,
            MembershipError::Raft(_) => ErrorCode::Internal,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<cronraft_raft::error::StoreError> for ApiError {
    fn from(e: cronraft_raft::error::StoreError) -> Self {
        ApiError::internal(format!("storage: {e}"))
    }
}
