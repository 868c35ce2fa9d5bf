//! One run, from its `ExecuteRequest` to the report that ends it.
//!
//! A run reads its job from the parameters, runs it ([`command`](super::command) or
//! [`http`](super::http)) under the task's timeout and the run's stop signal, and turns the
//! outcome into a [`CallbackRequest`] for the reporter. Every way a run can end produces exactly
//! one report, including bad parameters and a failure to start the process.

use std::time::Duration;

use chrono::Utc;
use cronraft_api::protocol::{CallbackRequest, CallbackStatus, ExecuteRequest};
use serde_json::Value;
use tokio::sync::watch;

use super::job::Job;

/// Why a run is being stopped before it ends on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// `POST /stop`, with its reason (`stopped`, `timeout`, `replaced`, or empty).
    Request(String),
    /// The agent is shutting down.
    Shutdown,
}

/// The receiving end of a run's stop signal: `None` until someone asks the run to stop.
pub type StopSignal = watch::Receiver<Option<Stop>>;

/// How a run ended, before the report's bookkeeping fields are added.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: CallbackStatus,
    pub result: Option<Value>,
    pub logs: String,
    pub exit_code: Option<i32>,
}

impl Outcome {
    /// A run that failed before doing anything; `message` is its whole log.
    pub fn failed(message: impl Into<String>) -> Self {
        Outcome { status: CallbackStatus::Failed, result: None, logs: message.into(), exit_code: None }
    }
}

/// Waits until the run is asked to stop. Never resolves if the sender is gone (the run table
/// keeps it for as long as the run is in it, so that only happens at teardown).
pub async fn stopped(signal: &mut StopSignal) -> Stop {
    let stop = signal.wait_for(Option::is_some).await.map(|stop| stop.clone());
    match stop {
        Ok(stop) => stop.unwrap_or(Stop::Shutdown),
        Err(_) => std::future::pending().await,
    }
}

/// What a kill notice in the logs says, and the status to report for it.
pub fn stop_status(stop: &Stop) -> (CallbackStatus, String) {
    match stop {
        Stop::Request(reason) if reason.is_empty() => (CallbackStatus::Cancelled, "stopped on request".to_string()),
        Stop::Request(reason) => (CallbackStatus::Cancelled, format!("stopped on request ({reason})")),
        Stop::Shutdown => (CallbackStatus::Failed, "killed because the agent shut down".to_string()),
    }
}

/// Runs `req`'s job and builds the report. `http` is the client for `http` jobs; `base_env` the
/// environment a `command` job starts from (see [`super::environment`]).
pub async fn run(
    req: &ExecuteRequest,
    http: &reqwest::Client,
    base_env: &[(String, String)],
    stop: StopSignal,
) -> CallbackRequest {
    let start_time = Utc::now();
    let timeout = (req.timeout_seconds > 0).then(|| Duration::from_secs(u64::from(req.timeout_seconds)));
    let outcome = match Job::parse(&req.parameters) {
        Ok(Job::Command(job)) => super::command::run(&job, base_env, timeout, stop).await,
        Ok(Job::Http(job)) => super::http::run(&job, http, timeout, stop).await,
        Err(message) => Outcome::failed(message),
    };
    CallbackRequest {
        attempt: req.attempt,
        callback_token: req.callback_token.clone(),
        status: outcome.status,
        result: outcome.result,
        logs: Some(outcome.logs),
        start_time: Some(start_time),
        end_time: Some(Utc::now()),
        exit_code: outcome.exit_code,
    }
}
