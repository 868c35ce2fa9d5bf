//! `http` jobs: one request, judged by its status (seed 002's HTTP task).
//!
//! The whole exchange — connecting, sending, reading the body — runs under the task's timeout and
//! the run's stop signal; either one drops the request future, which aborts the connection. The
//! response body is read chunk by chunk into a [`LogTail`], so a huge answer costs 64 KiB.
//! `https://` URLs are verified against the system roots plus the agent's CA file
//! (`outbound::agent_jobs`); a certificate error fails the run with the reason in its log.

use std::pin::pin;
use std::time::Duration;

use cronraft_api::protocol::{CallbackStatus, LOGS_BYTES_MAX};
use reqwest::Method;
use serde_json::{json, Value};

use super::error_chain;
use super::job::{ExpectedStatus, HttpJob};
use super::run::{stop_status, stopped, Outcome, Stop, StopSignal};
use super::tail::LogTail;

enum End {
    Done(Result<u16, reqwest::Error>),
    Timeout(Duration),
    Stopped(Stop),
}

/// Sends `job`'s request and reads the answer, under `timeout` and `stop`.
pub async fn run(job: &HttpJob, client: &reqwest::Client, timeout: Option<Duration>, mut stop: StopSignal) -> Outcome {
    let mut tail = LogTail::new(LOGS_BYTES_MAX);
    let end = {
        let exchange = pin!(exchange(job, client, &mut tail));
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = exchange => End::Done(r),
            _ = deadline => End::Timeout(timeout.unwrap_or_default()),
            s = stopped(&mut stop) => End::Stopped(s),
        }
    };
    let (status, result, exit_code) = match end {
        End::Done(Ok(code)) => {
            let expected = job.expected_status.as_ref();
            if ExpectedStatus::matches(expected, code) {
                (CallbackStatus::Success, Some(json!({ "status": code })), Some(i32::from(code)))
            } else {
                tail.note(&format!("HTTP status {code}, expected {}", ExpectedStatus::describe(expected)));
                (CallbackStatus::Failed, Some(json!({ "status": code })), Some(i32::from(code)))
            }
        }
        End::Done(Err(e)) => {
            tail.note(&format!("{} {}: {}", job.method, job.url, error_chain(&e)));
            (CallbackStatus::Failed, None, None)
        }
        End::Timeout(t) => {
            tail.note(&format!("no complete answer within the timeout of {} s; request aborted", t.as_secs()));
            (CallbackStatus::Timeout, None, None)
        }
        End::Stopped(stop) => {
            let (status, why) = stop_status(&stop);
            tail.note(&format!("request aborted: {why}"));
            (status, None, None)
        }
    };
    Outcome { status, result, logs: tail.into_string(), exit_code }
}

/// Sends the request and reads the body into `tail`; the status code.
async fn exchange(job: &HttpJob, client: &reqwest::Client, tail: &mut LogTail) -> Result<u16, reqwest::Error> {
    // Checked when the job was parsed.
    let method = Method::from_bytes(job.method.to_ascii_uppercase().as_bytes()).unwrap_or(Method::GET);
    let mut req = client.request(method, &job.url);
    for (name, value) in &job.headers {
        req = req.header(name, value);
    }
    req = match &job.body {
        None | Some(Value::Null) => req,
        Some(Value::String(s)) => req.body(s.clone()),
        Some(v) => req.json(v),
    };
    let mut resp = req.send().await?;
    let status = resp.status().as_u16();
    while let Some(chunk) = resp.chunk().await? {
        tail.push(&chunk);
    }
    Ok(status)
}
