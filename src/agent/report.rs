//! Reports: the one callback that ends each run, delivered until a node takes it.
//!
//! A finished run puts its report in a bounded queue and moves on; the server never waits for a
//! node. A worker takes reports off the queue, at most [`INFLIGHT_MAX`] at a time, and posts each
//! to `{node}/api/v1/executions/{id}/callback`, trying the run's `callback_urls` in order and
//! backing off after each full round. The dispatching leader lists itself first, so a report
//! normally costs no forwarding hop; any node takes a callback (followers forward it), so the
//! first 2xx ends the delivery.
//!
//! An agent with a token (auth on) sends to its own `--cluster` URLs instead of a run's
//! `callback_urls`: its token must never go to an address a request named.
//!
//! Every try carries `Idempotency-Key: cb-{execution_id}-{attempt}`: a try whose answer was lost
//! may still have been recorded, and the cluster drops the repeat instead of recording it twice.
//! A 4xx that says the report can never be taken (unknown execution, wrong token, already
//! settled) ends the delivery with a warning; anything else is retried for [`DELIVERY_MAX`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cronraft_api::protocol::CallbackRequest;
use reqwest::StatusCode;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use cronraft_raft::outbound::{read_text_capped, ERROR_TEXT_BYTES_MAX};

use super::error_chain;

/// Most reports waiting for delivery; beyond it the oldest is dropped (with an error log).
pub const PENDING_MAX: usize = 10_000;
/// Most deliveries in progress at once. The cluster's group commit puts concurrent callbacks
/// into one Raft entry, so more in flight means larger entries, not more fsyncs: with 16, one
/// agent could not report more than a few hundred runs a second.
pub const INFLIGHT_MAX: usize = 1_024;
/// How long one report is retried before it is given up.
pub const DELIVERY_MAX: Duration = Duration::from_secs(600);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// At shutdown, how long pending reports may still take.
const FLUSH_GRACE: Duration = Duration::from_secs(3);

/// One run's report and where to send it.
#[derive(Debug, Clone)]
pub struct Report {
    pub execution_id: u64,
    pub callback_urls: Vec<String>,
    pub body: CallbackRequest,
}

/// The queue and the client; [`Reporter::run`] is the worker.
#[derive(Debug)]
pub struct Reporter {
    /// Reports not yet being delivered, oldest first; at most [`PENDING_MAX`].
    queue: Mutex<VecDeque<Report>>,
    /// One permit per submit, so the worker never misses a report put in while it was busy.
    ready: Notify,
    client: reqwest::Client,
    /// With a token: the agent's own cluster URLs, used instead of each run's `callback_urls`.
    report_to: Option<Vec<String>>,
}

/// What one try came to.
enum Try {
    Delivered,
    /// The cluster will never take it (status, body).
    Moot(StatusCode, String),
    Retry(String),
}

impl Reporter {
    pub fn new(client: reqwest::Client, report_to: Option<Vec<String>>) -> Self {
        Reporter { queue: Mutex::new(VecDeque::new()), ready: Notify::new(), client, report_to }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Report>> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a report; returns at once.
    pub fn submit(&self, report: Report) {
        let mut q = self.queue();
        if q.len() >= PENDING_MAX {
            if let Some(old) = q.pop_front() {
                tracing::error!(
                    execution_id = old.execution_id,
                    attempt = old.body.attempt,
                    "report dropped: {PENDING_MAX} reports are waiting for the cluster"
                );
            }
        }
        q.push_back(report);
        drop(q);
        self.ready.notify_one();
    }

    /// Reports waiting (not counting those being delivered).
    pub fn pending(&self) -> usize {
        self.queue().len()
    }

    /// The worker: delivers reports until `stop` turns true, then flushes for a short grace.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut inflight = JoinSet::new();
        loop {
            while inflight.try_join_next().is_some() {}
            if inflight.len() < INFLIGHT_MAX {
                if let Some(report) = self.queue().pop_front() {
                    inflight.spawn(self.clone().deliver(report));
                    continue;
                }
            }
            tokio::select! {
                _ = self.ready.notified(), if inflight.len() < INFLIGHT_MAX => {}
                Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        let flush = async {
            loop {
                while let Some(report) = self.queue().pop_front() {
                    inflight.spawn(self.clone().deliver(report));
                }
                if inflight.join_next().await.is_none() {
                    return;
                }
            }
        };
        if tokio::time::timeout(FLUSH_GRACE, flush).await.is_err() {
            let lost = self.pending() + inflight.len();
            tracing::warn!(reports = lost, "shutting down with reports the cluster has not taken");
        }
        inflight.abort_all();
    }

    /// Delivers one report: every URL in turn, backing off after each full round.
    async fn deliver(self: Arc<Self>, report: Report) {
        let (id, attempt) = (report.execution_id, report.body.attempt);
        let urls = self.report_to.as_ref().unwrap_or(&report.callback_urls);
        if urls.is_empty() {
            tracing::error!(execution_id = id, attempt, "report dropped: the execute request had no callback_urls");
            return;
        }
        let key = format!("cb-{id}-{attempt}");
        let give_up = Instant::now() + DELIVERY_MAX;
        let mut backoff = BACKOFF_MIN;
        let mut next = 0usize;
        for round in 0.. {
            let mut last = String::new();
            for _ in 0..urls.len() {
                let url = format!("{}/api/v1/executions/{id}/callback", urls[next % urls.len()].trim_end_matches('/'));
                next = next.wrapping_add(1);
                match self.try_once(&url, &key, &report.body).await {
                    Try::Delivered => {
                        tracing::debug!(execution_id = id, attempt, %url, status = ?report.body.status, "reported");
                        return;
                    }
                    Try::Moot(status, body) => {
                        tracing::warn!(execution_id = id, attempt, %url, %status, body, "report refused; not retried");
                        return;
                    }
                    Try::Retry(why) => last = format!("{url}: {why}"),
                }
            }
            if Instant::now() + backoff > give_up {
                tracing::error!(execution_id = id, attempt, last, "report given up after {DELIVERY_MAX:?}");
                return;
            }
            if round == 0 {
                tracing::warn!(execution_id = id, attempt, last, "no node took the report; retrying");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn try_once(&self, url: &str, key: &str, body: &CallbackRequest) -> Try {
        let resp = match self.client.post(url).header("Idempotency-Key", key).json(body).send().await {
            Ok(resp) => resp,
            Err(e) => return Try::Retry(error_chain(&e)),
        };
        let status = resp.status();
        if status.is_success() {
            return Try::Delivered;
        }
        let text = read_text_capped(resp, ERROR_TEXT_BYTES_MAX).await;
        if is_moot(status) {
            Try::Moot(status, text)
        } else {
            Try::Retry(format!("HTTP {status}: {text}"))
        }
    }
}

/// Statuses that say a retry cannot help: malformed or too large (400, 413, 422), wrong token
/// (403), unknown execution (404), or an attempt already settled or superseded (409).
fn is_moot(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 403 | 404 | 409 | 413 | 422)
}
