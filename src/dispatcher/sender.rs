//! The dispatcher's HTTP side: `POST /execute` and `POST /stop` to executors.
//!
//! One pooled client (no proxy, small connect timeout) serves every executor. A send reports
//! only what the leader must act on: nothing for a 2xx, `Unreachable` when no connection could
//! be made (the instance is ejected), `Refused` for any other failure (an error status, a reply
//! slower than `dispatch_timeout_ms`). A refused attempt may still run on the executor; the
//! retry it leads to is a new attempt, which is what at-least-once means.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use cronraft_api::protocol::{ExecuteRequest, StopRequest};
use cronraft_raft::command::{AttemptEnd, AttemptEndKind};
use cronraft_raft::model::{Execution, Task};

use super::book::{Running, StopOrder};
use crate::config::ExecutorSettings;

pub struct Sender {
    client: reqwest::Client,
}

impl Sender {
    pub fn new(settings: &ExecutorSettings) -> Result<Sender, reqwest::Error> {
        let timeout = Duration::from_millis(settings.dispatch_timeout_ms);
        let client = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .timeout(timeout)
            // As many idle connections as sends in flight: a burst above the pool size would open
            // (and then close) a connection per send.
            .pool_max_idle_per_host(super::SENDS_INFLIGHT_MAX)
            .build()?;
        Ok(Sender { client })
    }

    /// Sends one attempt; returns the failure to propose, if any.
    pub async fn execute(&self, running: &Running, request: ExecuteRequest, term: u64) -> Option<AttemptEnd> {
        let url = format!("{}/execute", running.base_url.trim_end_matches('/'));
        let (id, attempt) = (request.execution_id, request.attempt);
        let end = |kind, error: String| Some(AttemptEnd { execution_id: id, attempt, kind, error });
        match self.client.post(&url).json(&request).send().await {
            Ok(resp) if resp.status().is_success() => {
                tracing::debug!(execution = id, attempt, term, %url, "dispatched");
                None
            }
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                let body: String = body.chars().take(512).collect();
                end(AttemptEndKind::Refused, format!("{url} answered {status}: {body}"))
            }
            Err(e) if e.is_connect() => end(AttemptEndKind::Unreachable, format!("cannot connect to {url}: {e}")),
            Err(e) if e.is_timeout() => end(AttemptEndKind::Refused, format!("{url} did not answer in time: {e}")),
            Err(e) => end(AttemptEndKind::Refused, format!("sending to {url} failed: {e}")),
        }
    }

    /// Tells an executor to stop a run; failures are logged (the run's record already ended).
    pub async fn stop(&self, order: &StopOrder) {
        let url = format!("{}/stop", order.base_url.trim_end_matches('/'));
        let body =
            StopRequest { execution_id: order.execution_id, attempt: order.attempt, reason: order.reason.into() };
        match self.client.post(&url).json(&body).send().await {
            Ok(resp) if resp.status().is_success() => {
                tracing::debug!(execution = order.execution_id, reason = order.reason, "stop sent")
            }
            Ok(resp) => tracing::warn!(execution = order.execution_id, status = %resp.status(), %url, "stop refused"),
            Err(e) => tracing::warn!(execution = order.execution_id, error = %e, %url, "stop not delivered"),
        }
    }
}

/// The `/execute` body for `attempt` of `e`: the task's parameters with a manual trigger's
/// overrides merged in, and the attempt's fencing data and token.
pub fn execute_request(e: &Execution, task: &Task, attempt: u32, callback_urls: &[String]) -> Option<ExecuteRequest> {
    let a = e.attempts.iter().find(|a| a.number == attempt)?;
    let mut parameters: serde_json::Value =
        serde_json::from_str(&task.spec.parameters).unwrap_or_else(|_| serde_json::json!({}));
    if let (Some(base), Ok(serde_json::Value::Object(overrides))) =
        (parameters.as_object_mut(), serde_json::from_str::<serde_json::Value>(&e.parameters))
    {
        base.extend(overrides);
    }
    Some(ExecuteRequest {
        execution_id: e.id,
        attempt,
        task_id: task.id,
        task_name: task.spec.name.clone(),
        parameters,
        timeout_seconds: task.spec.timeout_seconds,
        scheduled_time: Utc.timestamp_millis_opt(e.scheduled_ms).single().unwrap_or_default(),
        term: a.term,
        log_index: a.log_index,
        callback_urls: callback_urls.to_vec(),
        callback_token: a.callback_token.clone(),
    })
}
