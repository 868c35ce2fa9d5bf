//! The harness' recording executor: the test kit's executor ([`cronraft_testkit::executor`], an
//! HTTP server in the harness process that implements the executor protocol) with every delivery
//! and run end recorded into the history.
//!
//! The schedule checkers need ground truth that does not come from the cluster: what was really
//! sent to an executor, when, and with which fencing data. So every `/execute` becomes a
//! `deliver` event (`process: "executor"`) carrying execution id, attempt, task, slot, term,
//! log index and the instance that received it (`at`, its listening address); a run lasts
//! [`Executor::run_ms`] (or the task parameter `run_ms`, when set) and then ends with a `run_end`
//! event and a success callback (tried on each of `callback_urls` in turn, with retries, under the
//! Idempotency-Key `cb-{id}-{attempt}`). Deliveries are deduplicated by `(execution_id, attempt)`
//! as the protocol asks: a repeat is recorded (`duplicate: true`) but not run again.
//!
//! Executor faults (the `executor-kill` and `executor-slow` nemeses) act here: `down` drops the
//! listener (connections are refused) and re-binds the same port when healed; `slow` delays the
//! answer to `/execute` past the node's dispatch timeout.
//!
//! The `executor-churn` nemesis adds more instances of the same recording executor
//! ([`Executor::add_instance`]: another port, the same history and the same deduplication, as
//! several replicas of one service would share a database) and registers, deregisters and takes
//! them offline through the REST API. Extra instances keep listening until the run ends, so an
//! attempt dispatched just before its instance left still lands.

use std::sync::Arc;
use std::time::Duration;

use cronraft_testkit::executor::{self as kit, Behavior, Event, Options};
use serde_json::json;

use crate::history::{Kind, Process, Recorder};

pub use cronraft_testkit::executor::{registration, SLOW_REPLY};

/// Why the executor could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error(transparent)]
    Kit(#[from] cronraft_testkit::KitError),
}

/// The running executor. Dropping it stops the server.
pub struct Executor {
    inner: kit::Executor,
    run: Duration,
}

impl Executor {
    /// Binds `host:0` (use an address every node can reach) and serves until dropped.
    pub async fn start(host: &str, run: Duration, rec: Recorder) -> Result<Executor, ExecutorError> {
        let mut opts = Options::new(Behavior::Succeed { after_ms: run.as_millis() as u64 });
        opts.host = host.into();
        opts.dedupe = true;
        opts.keep_requests = false;
        opts.name = "cronraft-chaos".into();
        // Each URL in turn, for up to ~60 s: callbacks must survive node faults.
        (opts.callback_rounds, opts.callback_pause) = (300, Duration::from_millis(200));
        opts.client_timeout = Duration::from_secs(3);
        opts.observer = Some(Arc::new(move |e: Event<'_>| record(&rec, e)));
        Ok(Executor { inner: kit::Executor::bind(opts).await?, run })
    }

    /// Starts one more instance on the primary's host and a new port, sharing this executor's
    /// history and deduplication; returns its base URL. It serves until the executor is dropped.
    pub async fn add_instance(&self) -> Result<String, ExecutorError> {
        Ok(self.inner.add_instance().await?)
    }

    pub fn url(&self) -> String {
        self.inner.url.clone()
    }

    /// The registration body for group `group`.
    pub fn registration(&self, group: &str, instance: &str) -> serde_json::Value {
        registration(&self.inner.url, group, instance)
    }

    /// `executor-kill`: stop listening (new connections are refused). Runs already accepted
    /// still end and report.
    pub fn down(&self) {
        self.inner.down();
    }

    /// Heals `down`: re-binds the same port (retrying while the old socket closes).
    pub async fn up(&self) -> Result<(), ExecutorError> {
        Ok(self.inner.up().await?)
    }

    /// `executor-slow`: answer `/execute` only after [`SLOW_REPLY`] (on) or at once (off).
    pub fn set_slow(&self, on: bool) {
        self.inner.set_slow(on);
    }

    pub fn run_ms(&self) -> u64 {
        self.run.as_millis() as u64
    }
}

/// A `deliver` or `run_end` event of process `executor` in the history.
fn record(rec: &Recorder, e: Event<'_>) {
    let executor = || Process::Named("executor".into());
    match e {
        Event::Deliver { req, duplicate, at } => {
            let value = json!({
                "execution_id": req.execution_id, "attempt": req.attempt, "task_id": req.task_id,
                "scheduled_ms": req.scheduled_time.timestamp_millis(), "term": req.term, "log_index": req.log_index,
                "duplicate": duplicate, "at": at,
            });
            rec.record(executor(), Kind::Ok, "deliver", Some(&req.task_id.to_string()), value, None, None);
        }
        Event::RunEnd { req } => {
            let value = json!({"execution_id": req.execution_id, "attempt": req.attempt, "task_id": req.task_id});
            rec.record(executor(), Kind::Ok, "run_end", Some(&req.task_id.to_string()), value, None, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn request(id: u64) -> serde_json::Value {
        json!({
            "execution_id": id, "attempt": 1, "task_id": 7, "task_name": "t", "parameters": {},
            "timeout_seconds": 5, "scheduled_time": "2026-01-01T00:00:02Z", "term": 3, "log_index": 40,
            "callback_urls": [], "callback_token": "x",
        })
    }

    /// Polls the history until `f` events number `n` (or 5 s pass).
    async fn wait_for(rec: &Recorder, f: &str, n: usize) -> Vec<crate::history::Event> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let seen: Vec<_> = rec.snapshot().into_iter().filter(|e| e.f == f).collect();
            if seen.len() >= n || Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn records_deliveries_deduplicates_and_survives_down_and_up() {
        // Phase 1: an executor with 50 ms runs; the same (execution, attempt) twice, then another.
        let rec = Recorder::in_memory();
        let ex = Executor::start("127.0.0.1", Duration::from_millis(50), rec.clone()).await.unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let post = |id| http.post(format!("{}/execute", ex.url())).json(&request(id)).send();
        for id in [1, 1, 2] {
            assert!(post(id).await.unwrap().status().is_success());
        }

        // Phase 2: three deliveries (the repeat marked), two runs.
        let delivered = wait_for(&rec, "deliver", 3).await;
        let dup: Vec<bool> = delivered.iter().map(|e| e.value["duplicate"].as_bool().unwrap()).collect();
        assert_eq!(dup, vec![false, true, false]);
        assert_eq!(delivered[0].value["scheduled_ms"], 1_767_225_602_000i64);
        assert_eq!(
            (delivered[0].value["term"].as_u64(), delivered[0].value["log_index"].as_u64()),
            (Some(3), Some(40))
        );
        assert_eq!(wait_for(&rec, "run_end", 2).await.len(), 2);

        // Phase 3: down refuses connections; up serves again on the same address.
        ex.down();
        let deadline = Instant::now() + Duration::from_secs(5);
        while post(3).await.is_ok() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(post(3).await.is_err(), "down must refuse connections");
        ex.up().await.unwrap();
        assert!(post(4).await.unwrap().status().is_success());
    }
}
