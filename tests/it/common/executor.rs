//! A test executor: a small HTTP server in the test process that implements the executor
//! protocol, records everything it receives, and behaves as the test tells it (succeed after
//! a delay, fail, hang, refuse, or report through one chosen node).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cronraft_api::protocol::{CallbackRequest, CallbackStatus, ExecuteRequest, StopRequest};

/// What the executor does with an `/execute`.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// Report success after this long.
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

/// Everything the executor saw, in arrival order.
pub struct Seen {
    pub executes: Mutex<Vec<ExecuteRequest>>,
    pub stops: Mutex<Vec<StopRequest>>,
    pub health_checks: AtomicU64,
    pub healthy: AtomicBool,
    pub behavior: Mutex<Behavior>,
    /// Callbacks that got a 2xx.
    pub reported: AtomicU64,
    client: reqwest::Client,
}

pub struct TestExecutor {
    pub url: String,
    pub seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestExecutor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestExecutor {
    pub async fn start(behavior: Behavior) -> TestExecutor {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Seen {
            executes: Mutex::new(Vec::new()),
            stops: Mutex::new(Vec::new()),
            health_checks: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            behavior: Mutex::new(behavior),
            reported: AtomicU64::new(0),
            client: reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap(),
        });
        let app = Router::new()
            .route("/execute", post(execute))
            .route("/stop", post(stop))
            .route("/health", get(health))
            .with_state(seen.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestExecutor { url, seen, task }
    }

    /// The registration body for this executor.
    pub fn registration(&self, group: &str, instance: &str, weight: u32) -> serde_json::Value {
        serde_json::json!({
            "name": group, "instance_id": instance, "base_url": self.url,
            "health_check_url": format!("{}/health", self.url), "metadata": {"weight": weight},
        })
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

/// Registers an executor through `node`'s REST API; returns the executor's id.
pub async fn register(node: &str, body: &serde_json::Value) -> u64 {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = client.post(format!("{node}/api/v1/executors/register")).json(body).send().await.unwrap();
    let status = resp.status();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(status.is_success(), "register answered {status}: {v}");
    v["executor"]["id"].as_u64().unwrap()
}

async fn execute(State(seen): State<Arc<Seen>>, Json(req): Json<ExecuteRequest>) -> StatusCode {
    seen.executes.lock().unwrap().push(req.clone());
    let behavior = seen.behavior.lock().unwrap().clone();
    let (status, urls, delay) = match behavior {
        Behavior::Refuse => return StatusCode::INTERNAL_SERVER_ERROR,
        Behavior::Hang => return StatusCode::ACCEPTED,
        Behavior::Succeed { after_ms } => (CallbackStatus::Success, req.callback_urls.clone(), after_ms),
        Behavior::Fail => (CallbackStatus::Failed, req.callback_urls.clone(), 0),
        Behavior::ReportVia(url) => (CallbackStatus::Success, vec![url], 0),
    };
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        report(&seen, &req, status, &urls).await;
    });
    StatusCode::ACCEPTED
}

/// Posts the callback, trying each URL in turn until one gives a definite answer.
async fn report(seen: &Seen, req: &ExecuteRequest, status: CallbackStatus, urls: &[String]) {
    let body = CallbackRequest {
        attempt: req.attempt,
        callback_token: req.callback_token.clone(),
        status,
        result: Some(serde_json::json!({"by": "test-executor"})),
        logs: Some(format!("ran execution {} attempt {}", req.execution_id, req.attempt)),
        start_time: None,
        end_time: Some(chrono::Utc::now()),
        exit_code: None,
    };
    let key = format!("cb-{}-{}", req.execution_id, req.attempt);
    for round in 0..200 {
        let url = &urls[round % urls.len()];
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
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn stop(State(seen): State<Arc<Seen>>, Json(req): Json<StopRequest>) -> StatusCode {
    seen.stops.lock().unwrap().push(req);
    StatusCode::OK
}

async fn health(State(seen): State<Arc<Seen>>) -> StatusCode {
    seen.health_checks.fetch_add(1, Ordering::Relaxed);
    if seen.healthy.load(Ordering::Relaxed) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}
