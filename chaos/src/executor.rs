//! The harness' recording executor: an HTTP server in the harness process that implements the
//! executor protocol (`api/src/protocol.rs`) and records every delivery into the history.
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

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cronraft_api::protocol::{CallbackRequest, CallbackStatus, ExecuteRequest, StopRequest};
use serde_json::json;
use tokio::sync::oneshot;

use crate::history::{Kind, Process, Recorder};

/// How long `executor-slow` holds an `/execute` answer (beyond the node's dispatch timeout).
pub const SLOW_REPLY: Duration = Duration::from_secs(12);

/// Why the executor could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("executor cannot bind {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
}

struct Shared {
    rec: Recorder,
    run: Duration,
    client: reqwest::Client,
    seen: Mutex<HashSet<(u64, u32)>>,
    slow: AtomicBool,
}

/// The running executor. Dropping it stops the server.
pub struct Executor {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    /// Extra instances (executor churn): their stop handles, dropped with the executor.
    extra: Mutex<Vec<oneshot::Sender<()>>>,
}

impl Executor {
    /// Binds `host:0` (use an address every node can reach) and serves until dropped.
    pub async fn start(host: &str, run: Duration, rec: Recorder) -> Result<Executor, ExecutorError> {
        let addr = format!("{host}:0");
        let listener =
            tokio::net::TcpListener::bind(&addr).await.map_err(|source| ExecutorError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| ExecutorError::Bind { addr: host.into(), source })?;
        let client =
            reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(3)).build().expect("http client");
        let shared =
            Arc::new(Shared { rec, run, client, seen: Mutex::new(HashSet::new()), slow: AtomicBool::new(false) });
        let ex = Executor { addr, shared, stop: Mutex::new(None), extra: Mutex::new(Vec::new()) };
        let tx = ex.serve(listener);
        *ex.stop.lock().expect("executor lock") = Some(tx);
        Ok(ex)
    }

    /// Starts one more instance on the primary's host and a new port, sharing this executor's
    /// history and deduplication; returns its base URL. It serves until the executor is dropped.
    pub async fn add_instance(&self) -> Result<String, ExecutorError> {
        let addr = format!("{}:0", self.addr.ip());
        let listener =
            tokio::net::TcpListener::bind(&addr).await.map_err(|source| ExecutorError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| ExecutorError::Bind { addr: self.url(), source })?;
        let tx = self.serve(listener);
        self.extra.lock().expect("executor lock").push(tx);
        Ok(format!("http://{local}"))
    }

    fn serve(&self, listener: tokio::net::TcpListener) -> oneshot::Sender<()> {
        let at = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let app = Router::new()
            .route("/execute", post(execute))
            .route("/stop", post(stop))
            .route("/health", get(|| async { StatusCode::OK }))
            .with_state((self.shared.clone(), Arc::<str>::from(at)));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        tx
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The registration body for group `group`.
    pub fn registration(&self, group: &str, instance: &str) -> serde_json::Value {
        registration(&self.url(), group, instance)
    }

    /// `executor-kill`: stop listening (new connections are refused). Runs already accepted
    /// still end and report.
    pub fn down(&self) {
        if let Some(tx) = self.stop.lock().expect("executor lock").take() {
            let _ = tx.send(());
        }
    }

    /// Heals `down`: re-binds the same port (retrying while the old socket closes).
    pub async fn up(&self) -> Result<(), ExecutorError> {
        if self.stop.lock().expect("executor lock").is_some() {
            return Ok(());
        }
        let mut last = None;
        for _ in 0..50 {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => {
                    let tx = self.serve(l);
                    *self.stop.lock().expect("executor lock") = Some(tx);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ExecutorError::Bind { addr: self.addr.to_string(), source: last.expect("an error") })
    }

    /// `executor-slow`: answer `/execute` only after [`SLOW_REPLY`] (on) or at once (off).
    pub fn set_slow(&self, on: bool) {
        self.shared.slow.store(on, Ordering::Relaxed);
    }

    pub fn run_ms(&self) -> u64 {
        self.shared.run.as_millis() as u64
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.down();
        for tx in self.extra.lock().expect("executor lock").drain(..) {
            let _ = tx.send(());
        }
    }
}

/// The registration body of an instance at `base_url` in group `group`.
pub fn registration(base_url: &str, group: &str, instance: &str) -> serde_json::Value {
    json!({"name": group, "instance_id": instance, "base_url": base_url, "health_check_url": format!("{base_url}/health")})
}

fn executor() -> Process {
    Process::Named("executor".into())
}

/// The state of one instance's router: the shared recorder and the instance's address.
type Instance = (Arc<Shared>, Arc<str>);

async fn execute(State((sh, at)): State<Instance>, Json(req): Json<ExecuteRequest>) -> StatusCode {
    let duplicate = !sh.seen.lock().expect("executor lock").insert((req.execution_id, req.attempt));
    let value = json!({
        "execution_id": req.execution_id, "attempt": req.attempt, "task_id": req.task_id,
        "scheduled_ms": req.scheduled_time.timestamp_millis(), "term": req.term, "log_index": req.log_index,
        "duplicate": duplicate, "at": &*at,
    });
    sh.rec.record(executor(), Kind::Ok, "deliver", Some(&req.task_id.to_string()), value, None, None);
    if !duplicate {
        let sh2 = sh.clone();
        tokio::spawn(async move { run(&sh2, req).await });
    }
    if sh.slow.load(Ordering::Relaxed) {
        tokio::time::sleep(SLOW_REPLY).await;
    }
    StatusCode::ACCEPTED
}

/// One run: wait the run time, record its end, report success.
async fn run(sh: &Shared, req: ExecuteRequest) {
    let start = chrono::Utc::now();
    let run = req.parameters["run_ms"].as_u64().map_or(sh.run, Duration::from_millis);
    tokio::time::sleep(run).await;
    let value = json!({"execution_id": req.execution_id, "attempt": req.attempt, "task_id": req.task_id});
    sh.rec.record(executor(), Kind::Ok, "run_end", Some(&req.task_id.to_string()), value, None, None);
    let body = CallbackRequest {
        attempt: req.attempt,
        callback_token: req.callback_token.clone(),
        status: CallbackStatus::Success,
        result: Some(json!({"by": "cronraft-chaos"})),
        logs: None,
        start_time: Some(start),
        end_time: Some(chrono::Utc::now()),
        exit_code: Some(0),
    };
    let key = format!("cb-{}-{}", req.execution_id, req.attempt);
    // Each URL in turn, for up to ~60 s: callbacks must survive node faults.
    for round in 0..300 {
        let Some(url) = req.callback_urls.get(round % req.callback_urls.len().max(1)) else { return };
        let sent = sh
            .client
            .post(format!("{url}/api/v1/executions/{}/callback", req.execution_id))
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() || r.status().is_client_error() => return,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn stop(State(_): State<Instance>, Json(_): Json<StopRequest>) -> StatusCode {
    StatusCode::OK
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
