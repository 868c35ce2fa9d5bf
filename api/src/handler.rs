//! What the route handlers share: building the replicated request of a write, proposing it and
//! expecting one kind of answer, the log-index header, the read query and pagination.
//!
//! Every write handler follows the same path: the forwarding middleware has put the request id
//! in `Idempotency-Key`; [`request`] stamps it and this node's clock on the command;
//! [`propose_expect`] proposes it, turns a rejection into its API error, and treats any other
//! answer than the expected one as a bug (500). [`with_log_index`] then answers with the
//! entry's index in [`LOG_INDEX_HEADER`].

// The pickers give apply's answer back, moved once per write, so `propose_expect` can name it.
#![allow(clippy::result_large_err)]

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cronraft_raft::model::{Execution, Executor, Task};
use cronraft_raft::{Command, Request};
use serde::Deserialize;

use cronraft_raft::state::ANONYMOUS;

use crate::auth::CALLER_HEADER;
use crate::context::{now_ms, Consistency, Ctx};
use crate::error::{ApiError, ErrorCode};
use crate::types::{IDEMPOTENCY_HEADER, LOG_INDEX_HEADER};

/// Largest `page_size` of a listing.
pub const PAGE_SIZE_MAX: u64 = 500;
/// Largest `page`: far past any listing's end (500 × 10,000,000 records), and small enough that
/// `page × page_size` never overflows.
pub const PAGE_MAX: u64 = 10_000_000;
/// `page_size` when none is given.
pub const PAGE_SIZE_DEFAULT: u64 = 20;

/// `?consistency=` of a single-record read.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// `linearizable` (default) or `local`.
    #[serde(default)]
    #[param(required = false)]
    pub consistency: Consistency,
}

/// Builds the replicated request for `command` (the middleware has set the request id), as
/// written by the caller `crate::auth` found: apply lists it in the audit list under that name.
pub fn request(headers: &HeaderMap, command: Command) -> Request {
    let request_id = headers.get(IDEMPOTENCY_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let by = headers.get(CALLER_HEADER).and_then(|v| v.to_str().ok()).unwrap_or(ANONYMOUS).to_string();
    Request { request_id, now_ms: now_ms(), command: Command::Attributed { by, command: Box::new(command) } }
}

/// Proposes `command` and returns what `pick` takes out of apply's answer, with the entry's log
/// index. A rejection is answered as its API error; an answer `pick` gives back is a bug, named
/// as not being `expected`.
pub async fn propose_expect<T>(
    ctx: &Ctx,
    headers: &HeaderMap,
    command: Command,
    expected: &str,
    pick: impl FnOnce(cronraft_raft::Response) -> Result<T, cronraft_raft::Response>,
) -> Result<(T, u64), ApiError> {
    let (resp, log_index) = ctx.propose(request(headers, command)).await?;
    match pick(resp) {
        Ok(value) => Ok((value, log_index)),
        Err(cronraft_raft::Response::Rejected(r)) => Err(r.into()),
        Err(other) => Err(ApiError::internal(format!("apply returned {other:?} instead of {expected}"))),
    }
}

/// Picks a task out of apply's answer (for [`propose_expect`]).
pub fn task(resp: cronraft_raft::Response) -> Result<Task, cronraft_raft::Response> {
    match resp {
        cronraft_raft::Response::Task(t) => Ok(t),
        other => Err(other),
    }
}

/// Picks an execution out of apply's answer (for [`propose_expect`]).
pub fn execution(resp: cronraft_raft::Response) -> Result<Execution, cronraft_raft::Response> {
    match resp {
        cronraft_raft::Response::Execution(e) => Ok(e),
        other => Err(other),
    }
}

/// Picks an executor out of apply's answer (for [`propose_expect`]).
pub fn executor(resp: cronraft_raft::Response) -> Result<Executor, cronraft_raft::Response> {
    match resp {
        cronraft_raft::Response::Executor(e) => Ok(e),
        other => Err(other),
    }
}

/// Answers `body` with `status` and the log index of the entry the write produced.
pub fn with_log_index(status: StatusCode, body: impl IntoResponse, log_index: u64) -> Response {
    let mut out = (status, body).into_response();
    out.headers_mut().insert(LOG_INDEX_HEADER, HeaderValue::from(log_index));
    out
}

/// Checks a listing's `page` (1 to [`PAGE_MAX`]) and `page_size` (1 to [`PAGE_SIZE_MAX`]), with defaults.
pub fn pagination(page: Option<u64>, page_size: Option<u64>) -> Result<(u64, u64), ApiError> {
    let page = page.unwrap_or(1);
    let page_size = page_size.unwrap_or(PAGE_SIZE_DEFAULT);
    if page == 0 || page > PAGE_MAX {
        return Err(ApiError::new(ErrorCode::InvalidPage, format!("`page` counts from 1, up to {PAGE_MAX}")));
    }
    if page_size == 0 || page_size > PAGE_SIZE_MAX {
        let msg = format!("`page_size` must be 1 to {PAGE_SIZE_MAX}");
        return Err(ApiError::new(ErrorCode::InvalidPageSize, msg));
    }
    Ok((page, page_size))
}
