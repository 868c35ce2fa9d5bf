//! The agent's HTTP side of the executor protocol: `POST /execute`, `POST /stop`, `GET /health`.
//!
//! `/execute` only admits the run and spawns it; the answer (202) goes out at once and the result
//! comes later as a callback, so a node's dispatch never waits on a job. Bodies are parsed from
//! bytes whatever their `Content-Type`, and every error has the cluster's JSON error shape
//! (`{"error":{"code","message"}}`), so a node reads the agent's answers like its own.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use cronraft_api::error::{ApiError, ErrorCode};
use cronraft_api::protocol::{CallbackRequest, CallbackStatus, ExecuteRequest, StopRequest};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::report::{Report, Reporter};
use super::runs::{Admission, Runs};
use super::signing::Signing;

/// Largest request body: an execute request carries the task's parameters (at most 64 KiB in the
/// cluster) plus a little; 1 MiB leaves room without letting a client tie up memory.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;

/// What the handlers and the runs they spawn share.
#[derive(Debug)]
pub struct Shared {
    pub runs: Runs,
    pub reporter: Arc<Reporter>,
    /// The client for `http` jobs (proxies from the environment apply; no overall timeout, the
    /// task's own timeout governs).
    pub jobs_client: reqwest::Client,
    /// Whether `/execute` and `/stop` must be signed, and the key to check them with.
    pub signing: Arc<Signing>,
    /// The environment `command` jobs start from: the allowlisted part of the agent's own.
    pub base_env: Arc<[(String, String)]>,
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/execute", post(execute))
        .route("/stop", post(stop))
        .route("/health", get(health))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(shared)
}

/// Admits the attempt (or says why not) and runs it in the background.
async fn execute(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: ExecuteRequest = parse_signed(&shared, "/execute", &headers, body)?;
    if req.callback_urls.is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidBody, "callback_urls must list at least one node API URL"));
    }
    let key = (req.execution_id, req.attempt);
    let stop = match shared.runs.admit(key) {
        Admission::Start(stop) => stop,
        Admission::Duplicate => return Ok((StatusCode::OK, Json(json!({ "accepted": true, "duplicate": true })))),
        Admission::AtCapacity(n) => {
            return Err(ApiError::new(ErrorCode::AtCapacity, format!("this agent is running its capacity of {n} runs")))
        }
        Admission::Closed => return Err(ApiError::new(ErrorCode::ShuttingDown, "this agent is shutting down")),
    };
    tracing::info!(execution_id = req.execution_id, attempt = req.attempt, task = %req.task_name, "run started");
    tokio::spawn(async move {
        let run = {
            let (req, client, env) = (req.clone(), shared.jobs_client.clone(), shared.base_env.clone());
            tokio::spawn(async move { super::run::run(&req, &client, &env, stop).await })
        };
        // A panicking run still frees its place and reports, as a failure.
        let body = run.await.unwrap_or_else(|e| panicked(&req, &e));
        tracing::info!(execution_id = req.execution_id, attempt = req.attempt, status = ?body.status, "run ended");
        shared.reporter.submit(Report { execution_id: req.execution_id, callback_urls: req.callback_urls, body });
        shared.runs.finish(key);
    });
    Ok((StatusCode::ACCEPTED, Json(json!({ "accepted": true }))))
}

/// Signals the matching run(s) to stop; the run reports `cancelled` itself once it is down.
async fn stop(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: StopRequest = parse_signed(&shared, "/stop", &headers, body)?;
    let stopped = shared.runs.stop(req.execution_id, req.attempt, &req.reason);
    tracing::info!(execution_id = req.execution_id, attempt = req.attempt, reason = %req.reason, stopped, "stop");
    Ok(Json(json!({ "stopped": stopped })))
}

fn panicked(req: &ExecuteRequest, e: &tokio::task::JoinError) -> CallbackRequest {
    tracing::error!(execution_id = req.execution_id, attempt = req.attempt, error = %e, "run panicked");
    CallbackRequest {
        attempt: req.attempt,
        callback_token: req.callback_token.clone(),
        status: CallbackStatus::Failed,
        result: None,
        logs: Some(format!("[cronraft agent: the run failed inside the agent: {e}]")),
        start_time: None,
        end_time: Some(chrono::Utc::now()),
        exit_code: None,
    }
}

async fn health(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({ "status": "ok", "running": shared.runs.running() }))
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "the agent serves POST /execute, POST /stop and GET /health")
}

/// A JSON body, whatever the `Content-Type`, after its signature is checked (when required): too
/// large → 413, unsigned or badly signed → 401, anything else wrong → 400.
fn parse_signed<T: DeserializeOwned>(
    shared: &Shared,
    path: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(ErrorCode::BodyTooLarge, format!("request bodies are limited to {BODY_BYTES_MAX} bytes"))
        }
        _ => ApiError::new(ErrorCode::InvalidBody, r.body_text()),
    })?;
    shared.signing.check(path, headers, &bytes)?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::new(ErrorCode::InvalidBody, format!("invalid JSON body: {e}")))
}
