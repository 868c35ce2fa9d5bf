//! The recording executor: an HTTP server in the harness process that implements the executor
//! protocol (`api/src/protocol.rs`), records everything it receives and behaves as told.
//!
//! One executor serves the integration tests (which script its [`Behavior`]: succeed after a
//! delay, fail, hang, refuse, report through one chosen node, go unhealthy) and the chaos harness
//! (which wants ground truth for its checkers: every delivery and run end reported to an
//! [`Observer`], deliveries deduplicated by `(execution_id, attempt)` as the protocol asks, and
//! the executor faults: [`Executor::down`] / [`Executor::up`], [`Executor::set_slow`] and extra
//! instances sharing one record, [`Executor::add_instance`]).
//!
//! A run lasts `after_ms` of [`Behavior::Succeed`], or the task parameter `run_ms` when set, then
//! reports through `callback_urls` in turn, with retries, under the Idempotency-Key
//! `cb-{id}-{attempt}`; a 2xx counts in [`Seen::reported`], a 4xx ends the attempt's reporting.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cronraft_api::protocol::{CallbackRequest, CallbackStatus, ExecuteRequest, StopRequest};
use serde_json::json;
use tokio::sync::oneshot;

use crate::KitError;

/// How long a slow executor ([`Executor::set_slow`]) holds an `/execute` answer (beyond the
/// node's dispatch timeout).
pub const SLOW_REPLY: Duration = Duration::from_secs(12);

/// What the executor does with an `/execute`.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// Report success after this long (or the task parameter `run_ms`).
    Succeed { after_ms: u64 },
    /// Report failure at once.
    Fail,
    /// Accept and never report.
    Hang,
    /// Answer `/execute` with 500.
    Refuse,
    /// Report success, but only to this node URL (not the ones in `callback_urls`).
    ReportVia(String),
}

/// What an [`Observer`] is told, as it happens.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// An `/execute` arrived at instance `at` (its listening address); `duplicate` when its
    /// `(execution_id, attempt)` was seen before.
    Deliver { req: &'a ExecuteRequest, duplicate: bool, at: &'a str },
    /// A run's time is up; its callback follows.
    RunEnd { req: &'a ExecuteRequest },
}

/// A callback told every [`Event`] (the chaos harness records them into its history).
pub type Observer = Arc<dyn Fn(Event<'_>) + Send + Sync>;

/// A client builder that sends the process token (`cronraft_api::client::set_process_token`)
/// and trusts the process's CA (`set_process_tls`), when set: callbacks and registrations need
/// them when the cluster has auth or TLS on.
fn authorized(mut b: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    if let Some(tls) = cronraft_api::client::process_tls() {
        if let Ok(config) = tls.client_config(cronraft_raft::outbound::Trust::SystemAndCa, false) {
            b = b.tls_backend_preconfigured(config);
        }
    }
    let Some(token) = cronraft_api::client::process_token() else { return b };
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(v) = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")) {
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    b.default_headers(headers)
}

/// How an executor is started.
#[derive(Clone)]
pub struct Options {
    /// The host it binds (`host:0`): one every node can reach.
    pub host: String,
    pub behavior: Behavior,
    /// Run each `(execution_id, attempt)` once; repeats are recorded, not run again.
    pub dedupe: bool,
    /// Keep every request in [`Seen::executes`] / [`Seen::stops`]. The chaos harness, which has
    /// its own history, turns it off so a long run does not grow without bound.
    pub keep_requests: bool,
    /// Sent as the callbacks' `result` `{"by": name}`.
    pub name: String,
    /// Callback attempts per run, and the pause between two.
    pub callback_rounds: usize,
    pub callback_pause: Duration,
    /// Per-request timeout of the callbacks.
    pub client_timeout: Duration,
    pub observer: Option<Observer>,
}

impl Options {
    /// Loopback, no dedupe, requests kept, `test-executor`, 200 callback rounds 100 ms apart, 5 s requests.
    pub fn new(behavior: Behavior) -> Options {
        Options {
            host: "127.0.0.1".into(),
            behavior,
            dedupe: false,
            keep_requests: true,
            name: "test-executor".into(),
            callback_rounds: 200,
            callback_pause: Duration::from_millis(100),
            client_timeout: Duration::from_secs(5),
            observer: None,
        }
    }
}

/// Everything the executor saw, in arrival order, and the switches a test flips.
pub struct Seen {
    pub executes: Mutex<Vec<ExecuteRequest>>,
    pub stops: Mutex<Vec<StopRequest>>,
    pub health_checks: AtomicU64,
    /// What `/health` answers (200 or 503).
    pub healthy: AtomicBool,
    pub behavior: Mutex<Behavior>,
    /// Callbacks that got a 2xx.
    pub reported: AtomicU64,
    /// Hold `/execute` answers for [`SLOW_REPLY`].
    pub slow: AtomicBool,
    /// `(execution_id, attempt)` pairs delivered so far (for `dedupe`).
    delivered: Mutex<HashSet<(u64, u32)>>,
    opts: Options,
    client: reqwest::Client,
}

/// The running executor. Dropping it stops every instance.
pub struct Executor {
    /// The primary instance's base URL.
    pub url: String,
    pub seen: Arc<Seen>,
    addr: SocketAddr,
    /// The primary's stop handle; `None` while it is down.
    stop: Mutex<Option<oneshot::Sender<()>>>,
    /// Extra instances' stop handles.
    extra: Mutex<Vec<oneshot::Sender<()>>>,
}

impl Executor {
    /// A loopback executor with `behavior` and the test defaults ([`Options::new`]).
    pub async fn start(behavior: Behavior) -> Executor {
        Executor::bind(Options::new(behavior)).await.expect("bind a loopback executor")
    }

    /// Binds `opts.host:0` and serves until dropped.
    pub async fn bind(opts: Options) -> Result<Executor, KitError> {
        let (listener, addr) = listen(&format!("{}:0", opts.host)).await?;
        let client = authorized(reqwest::Client::builder().no_proxy().timeout(opts.client_timeout))
            .build()
            .expect("http client");
        let seen = Arc::new(Seen {
            executes: Mutex::new(Vec::new()),
            stops: Mutex::new(Vec::new()),
            health_checks: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            behavior: Mutex::new(opts.behavior.clone()),
            reported: AtomicU64::new(0),
            slow: AtomicBool::new(false),
            delivered: Mutex::new(HashSet::new()),
            opts,
            client,
        });
        let stop = serve(&seen, listener);
        let url = format!("http://{addr}");
        Ok(Executor { url, seen, addr, stop: Mutex::new(Some(stop)), extra: Mutex::new(Vec::new()) })
    }

    /// Starts one more instance on the primary's host and a new port, sharing this executor's
    /// record and deduplication; returns its base URL. It serves until the executor is dropped.
    pub async fn add_instance(&self) -> Result<String, KitError> {
        let (listener, addr) = listen(&format!("{}:0", self.addr.ip())).await?;
        self.extra.lock().expect("executor lock").push(serve(&self.seen, listener));
        Ok(format!("http://{addr}"))
    }

    /// Stops listening (new connections are refused); runs already accepted still end and report.
    pub fn down(&self) {
        if let Some(tx) = self.stop.lock().expect("executor lock").take() {
            let _ = tx.send(());
        }
    }

    /// Heals [`Executor::down`]: re-binds the same port (retrying while the old socket closes).
    pub async fn up(&self) -> Result<(), KitError> {
        if self.stop.lock().expect("executor lock").is_some() {
            return Ok(());
        }
        let mut last = None;
        for _ in 0..50 {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => {
                    *self.stop.lock().expect("executor lock") = Some(serve(&self.seen, l));
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(KitError::Bind { addr: self.addr.to_string(), source: last.expect("an error") })
    }

    /// Answer `/execute` only after [`SLOW_REPLY`] (on) or at once (off).
    pub fn set_slow(&self, on: bool) {
        self.seen.slow.store(on, Ordering::Relaxed);
    }

    /// The registration body for this executor, with a balancing weight.
    pub fn registration(&self, group: &str, instance: &str, weight: u32) -> serde_json::Value {
        let mut body = registration(&self.url, group, instance);
        body["metadata"] = json!({ "weight": weight });
        body
    }

    pub fn executes(&self) -> Vec<ExecuteRequest> {
        self.seen.executes.lock().unwrap().clone()
    }

    pub fn stops(&self) -> Vec<StopRequest> {
        self.seen.stops.lock().unwrap().clone()
    }

    pub fn set_behavior(&self, b: Behavior) {
        *self.seen.behavior.lock().unwrap() = b;
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

/// Registers an executor through `node`'s REST API; returns the executor's id (panics otherwise).
pub async fn register(node: &str, body: &serde_json::Value) -> u64 {
    let client = authorized(reqwest::Client::builder().no_proxy()).build().unwrap();
    let resp = client.post(format!("{node}/api/v1/executors/register")).json(body).send().await.unwrap();
    let status = resp.status();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(status.is_success(), "register answered {status}: {v}");
    v["executor"]["id"].as_u64().unwrap()
}

async fn listen(addr: &str) -> Result<(tokio::net::TcpListener, SocketAddr), KitError> {
    let bind = |source| KitError::Bind { addr: addr.into(), source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind)?;
    let local = listener.local_addr().map_err(bind)?;
    Ok((listener, local))
}

/// The state of one instance's router: the shared record and the instance's address.
type Instance = (Arc<Seen>, Arc<str>);

fn serve(seen: &Arc<Seen>, listener: tokio::net::TcpListener) -> oneshot::Sender<()> {
    let at = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let app = Router::new()
        .route("/execute", post(execute))
        .route("/stop", post(stop))
        .route("/health", get(health))
        .with_state((seen.clone(), Arc::<str>::from(at)));
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

async fn execute(State((seen, at)): State<Instance>, Json(req): Json<ExecuteRequest>) -> StatusCode {
    if seen.opts.keep_requests {
        seen.executes.lock().unwrap().push(req.clone());
    }
    let first = seen.delivered.lock().unwrap().insert((req.execution_id, req.attempt));
    if let Some(o) = &seen.opts.observer {
        o(Event::Deliver { req: &req, duplicate: !first, at: &at });
    }
    let behavior = seen.behavior.lock().unwrap().clone();
    let (status, urls, after_ms) = match behavior {
        Behavior::Refuse => return StatusCode::INTERNAL_SERVER_ERROR,
        Behavior::Hang => return StatusCode::ACCEPTED,
        Behavior::Succeed { after_ms } => (CallbackStatus::Success, req.callback_urls.clone(), after_ms),
        Behavior::Fail => (CallbackStatus::Failed, req.callback_urls.clone(), 0),
        Behavior::ReportVia(url) => (CallbackStatus::Success, vec![url], 0),
    };
    if first || !seen.opts.dedupe {
        let run = Duration::from_millis(req.parameters["run_ms"].as_u64().unwrap_or(after_ms));
        let seen = seen.clone();
        tokio::spawn(async move { run_and_report(&seen, &req, run, status, &urls).await });
    }
    if seen.slow.load(Ordering::Relaxed) {
        tokio::time::sleep(SLOW_REPLY).await;
    }
    StatusCode::ACCEPTED
}

/// One run: wait `run`, tell the observer, then post the callback, trying each URL in turn until
/// one gives a definite answer.
async fn run_and_report(seen: &Seen, req: &ExecuteRequest, run: Duration, status: CallbackStatus, urls: &[String]) {
    let start = chrono::Utc::now();
    tokio::time::sleep(run).await;
    if let Some(o) = &seen.opts.observer {
        o(Event::RunEnd { req });
    }
    let exit_code = matches!(status, CallbackStatus::Success).then_some(0);
    let body = CallbackRequest {
        attempt: req.attempt,
        callback_token: req.callback_token.clone(),
        status,
        result: Some(json!({"by": seen.opts.name})),
        logs: Some(format!("ran execution {} attempt {}", req.execution_id, req.attempt)),
        start_time: Some(start),
        end_time: Some(chrono::Utc::now()),
        exit_code,
    };
    let key = format!("cb-{}-{}", req.execution_id, req.attempt);
    for round in 0..seen.opts.callback_rounds {
        let Some(url) = urls.get(round % urls.len().max(1)) else { return };
        let sent = seen
            .client
            .post(format!("{url}/api/v1/executions/{}/callback", req.execution_id))
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                seen.reported.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(r) if r.status().is_client_error() => return,
            _ => tokio::time::sleep(seen.opts.callback_pause).await,
        }
    }
}

async fn stop(State((seen, _)): State<Instance>, Json(req): Json<StopRequest>) -> StatusCode {
    if seen.opts.keep_requests {
        seen.stops.lock().unwrap().push(req);
    }
    StatusCode::OK
}

async fn health(State((seen, _)): State<Instance>) -> StatusCode {
    seen.health_checks.fetch_add(1, Ordering::Relaxed);
    if seen.healthy.load(Ordering::Relaxed) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}
