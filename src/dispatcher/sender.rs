//! The dispatcher's HTTP side: `POST /execute` and `POST /stop` to executors.
//!
//! One pooled client from [`outbound::executors`] serves every executor: no proxy, no redirects,
//! the `[executors]` address policy. A send reports only what the leader must act on: nothing
//! for a 2xx, `Unreachable` when no connection could be made or the address is refused (the
//! instance is ejected), `Refused` for any other failure (an error status, a reply slower than
//! `dispatch_timeout_ms`). Answers' bodies are read with a cap and never recorded. A refused
//! attempt may still run on the executor; the retry it leads to is a new attempt, which is what
//! at-least-once means.
//!
//! With auth on, both requests are signed with the instance's key (`cronraft_api::signature`):
//! the body is serialized once, and the signature covers those exact bytes.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use cronraft_api::protocol::{ExecuteRequest, StopRequest};
use cronraft_api::signature;
use cronraft_raft::cluster_secret::ClusterSecret;
use cronraft_raft::command::{AttemptEnd, AttemptEndKind};
use cronraft_raft::model::{Execution, Task};

use cronraft_raft::outbound::{self, error_chain, read_body_capped, ExecutorClient, EXECUTOR_BODY_BYTES_MAX};

use super::book::{Running, StopOrder};
use crate::config::ExecutorSettings;

pub struct Sender {
    client: ExecutorClient,
    /// With auth on: the cluster secret, which every instance's signing key derives from.
    secret: Option<ClusterSecret>,
}

impl Sender {
    pub fn new(
        settings: &ExecutorSettings,
        tls: &outbound::ClientTls,
        secret: Option<ClusterSecret>,
    ) -> Result<Sender, outbound::BuildError> {
        let timeout = Duration::from_millis(settings.dispatch_timeout_ms);
        // As many idle connections as sends in flight: a burst above the pool size would open
        // (and then close) a connection per send.
        let client = outbound::executors(settings.address_policy(), timeout, super::SENDS_INFLIGHT_MAX, tls)?;
        Ok(Sender { client, secret })
    }

    /// A POST of `body` (JSON) to `target` (`path` on the instance), signed when auth is on.
    fn post(&self, target: reqwest::Url, path: &str, instance_id: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
        let mut out = self.client.client.post(target).header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(secret) = &self.secret {
            let key = secret.executor_key(instance_id);
            let (ts, sig) = signature::sign(&key, path, crate::clock::now_ms(), &body);
            out = out.header(signature::TIMESTAMP_HEADER, ts).header(signature::SIGNATURE_HEADER, sig);
        }
        out.body(body)
    }

    /// Sends one attempt; returns the failure to propose, if any. The error text recorded is
    /// ours (status code and reason, or why no connection was made), never the executor's body.
    pub async fn execute(&self, running: &Running, mut request: ExecuteRequest, term: u64) -> Option<AttemptEnd> {
        let url = format!("{}/execute", running.base_url.trim_end_matches('/'));
        if let Some(secret) = &self.secret {
            // The executor gets a token only the nodes can compute, not the replicated one.
            request.callback_token =
                secret.callback_token(request.execution_id, request.attempt, &request.callback_token);
        }
        let (id, attempt) = (request.execution_id, request.attempt);
        let end = |kind, error: String| Some(AttemptEnd { execution_id: id, attempt, kind, error });
        let target = match self.client.target(&url) {
            Ok(t) => t,
            Err(e) => return end(AttemptEndKind::Unreachable, format!("not calling {url}: {e}")),
        };
        let body = match serde_json::to_vec(&request) {
            Ok(b) => b,
            Err(e) => return end(AttemptEndKind::Refused, format!("cannot encode the request: {e}")),
        };
        match self.post(target, "/execute", &running.instance_id, body).send().await {
            Ok(resp) if resp.status().is_success() => {
                // Read (capped) so the connection goes back to the pool.
                let _ = read_body_capped(resp, EXECUTOR_BODY_BYTES_MAX).await;
                tracing::debug!(execution = id, attempt, term, %url, "dispatched");
                None
            }
            Ok(resp) => {
                let answer = status_line(resp.status());
                let _ = read_body_capped(resp, EXECUTOR_BODY_BYTES_MAX).await;
                end(AttemptEndKind::Refused, format!("executor answered {answer}"))
            }
            Err(e) if e.is_connect() => {
                end(AttemptEndKind::Unreachable, format!("cannot connect to {url}: {}", error_chain(&e)))
            }
            Err(e) if e.is_timeout() => end(AttemptEndKind::Refused, format!("{url} did not answer in time")),
            Err(e) => end(AttemptEndKind::Refused, format!("sending to {url} failed: {}", error_chain(&e))),
        }
    }

    /// Tells an executor to stop a run; failures are logged (the run's record already ended).
    pub async fn stop(&self, order: &StopOrder) {
        let url = format!("{}/stop", order.base_url.trim_end_matches('/'));
        let target = match self.client.target(&url) {
            Ok(t) => t,
            Err(e) => return tracing::warn!(execution = order.execution_id, error = %e, "stop not sent"),
        };
        let body =
            StopRequest { execution_id: order.execution_id, attempt: order.attempt, reason: order.reason.into() };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        match self.post(target, "/stop", &order.instance_id, body).send().await {
            Ok(resp) if resp.status().is_success() => {
                let _ = read_body_capped(resp, EXECUTOR_BODY_BYTES_MAX).await;
                tracing::debug!(execution = order.execution_id, reason = order.reason, "stop sent")
            }
            Ok(resp) => tracing::warn!(execution = order.execution_id, status = %resp.status(), %url, "stop refused"),
            Err(e) => {
                tracing::warn!(execution = order.execution_id, error = %error_chain(&e), %url, "stop not delivered")
            }
        }
    }
}

/// `HTTP 500 Internal Server Error`: the status and its standard reason, nothing the executor
/// chose to say (its body could carry anything, secrets included, into the API).
pub fn status_line(status: reqwest::StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
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
    // The executor gets secret values in the clear: `{"secret": "…"}` becomes the string.
    cronraft_api::secrets::reveal(&mut parameters);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_recorded_as_status_and_reason_only() {
        assert_eq!(status_line(reqwest::StatusCode::INTERNAL_SERVER_ERROR), "HTTP 500 Internal Server Error");
        assert_eq!(status_line(reqwest::StatusCode::from_u16(599).unwrap()), "HTTP 599");
    }
}
