//! The bundled agent against a stub cluster: registration, runs, kills, logs, reports.
//!
//! The stub is a tiny axum app on port 0 that records register and callback requests and
//! serves `/target/{status}` for `http` jobs. Every wait is on a condition with a deadline.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{any, post};
use axum::{Json, Router};
use cronraft::agent::{Agent, AgentConfig};
use cronraft_api::protocol::{CallbackRequest, CallbackStatus, ExecuteRequest, RegisterRequest};
use serde_json::{json, Value};

const NO_JOB: &str = r#"parameters must contain "command" (a shell command line) or "http" (a request)"#;

/// One callback the stub received.
#[derive(Debug, Clone)]
struct Callback {
    execution_id: u64,
    idempotency_key: Option<String>,
    body: CallbackRequest,
}

/// One request to `/target/{status}`.
#[derive(Debug, Clone)]
struct Hit {
    method: String,
    headers: HeaderMap,
    body: String,
}

#[derive(Default)]
struct StubState {
    /// Register requests to answer 503 before answering 200.
    register_failures: AtomicUsize,
    register_tries: AtomicUsize,
    registers: Mutex<Vec<RegisterRequest>>,
    callbacks: Mutex<Vec<Callback>>,
    hits: Mutex<Vec<Hit>>,
}

struct Stub {
    url: String,
    state: Arc<StubState>,
}

impl Stub {
    async fn start(register_failures: usize) -> Stub {
        let state = Arc::new(StubState::default());
        state.register_failures.store(register_failures, Ordering::SeqCst);
        let app = Router::new()
            .route("/api/v1/executors/register", post(register))
            .route("/api/v1/executions/{id}/callback", post(callback))
            .route("/target/{status}", any(target))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Stub { url, state }
    }

    fn callbacks(&self, execution_id: u64) -> Vec<Callback> {
        self.state.callbacks.lock().unwrap().iter().filter(|c| c.execution_id == execution_id).cloned().collect()
    }

    /// Waits for the report of `execution_id`.
    async fn report(&self, execution_id: u64) -> Callback {
        wait_for(&format!("the report of execution {execution_id}"), || self.callbacks(execution_id).into_iter().next())
            .await
    }
}

async fn register(State(s): State<Arc<StubState>>, Json(req): Json<RegisterRequest>) -> (StatusCode, Json<Value>) {
    s.register_tries.fetch_add(1, Ordering::SeqCst);
    let left = s.register_failures.load(Ordering::SeqCst);
    if left > 0 {
        s.register_failures.store(left - 1, Ordering::SeqCst);
        let e = json!({"error": {"code": "not_leader", "message": "no leader yet"}});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(e));
    }
    s.registers.lock().unwrap().push(req);
    (StatusCode::OK, Json(json!({"ok": true})))
}

async fn callback(
    State(s): State<Arc<StubState>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    Json(body): Json<CallbackRequest>,
) -> Json<Value> {
    let idempotency_key = headers.get("idempotency-key").map(|v| v.to_str().unwrap().to_string());
    s.callbacks.lock().unwrap().push(Callback { execution_id: id, idempotency_key, body });
    Json(json!({"ok": true}))
}

async fn target(
    State(s): State<Arc<StubState>>,
    Path(status): Path<u16>,
    method: Method,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    s.hits.lock().unwrap().push(Hit { method: method.to_string(), headers, body });
    (StatusCode::from_u16(status).unwrap(), format!("pong {method}"))
}

/// Polls `f` every 20 ms until it returns something; fails after 15 s.
async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start_agent(stub: &Stub, capacity: u32) -> Agent {
    let mut config = AgentConfig::new("test", vec![stub.url.clone()]);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.capacity = capacity;
    Agent::start(config).await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap()
}

fn execute_request(execution_id: u64, parameters: Value, timeout_seconds: u32, callback_urls: &[&str]) -> Value {
    let req = ExecuteRequest {
        execution_id,
        attempt: 1,
        task_id: 7,
        task_name: "t".into(),
        parameters,
        timeout_seconds,
        scheduled_time: chrono::Utc::now(),
        term: 1,
        log_index: 10,
        callback_urls: callback_urls.iter().map(|u| u.to_string()).collect(),
        callback_token: format!("token-{execution_id}"),
    };
    serde_json::to_value(req).unwrap()
}

async fn post_json(agent: &Agent, path: &str, body: &Value) -> (u16, Value) {
    let resp = client().post(format!("{}{path}", agent.base_url())).json(body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn get_json(agent: &Agent, path: &str) -> (u16, Value) {
    let resp = client().get(format!("{}{path}", agent.base_url())).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Runs `parameters` as execution `id` and waits for its report.
async fn run(stub: &Stub, agent: &Agent, id: u64, parameters: Value, timeout_seconds: u32) -> CallbackRequest {
    let (status, answer) =
        post_json(agent, "/execute", &execute_request(id, parameters, timeout_seconds, &[&stub.url])).await;
    assert_eq!((status, answer), (202, json!({"accepted": true})));
    stub.report(id).await.body
}

/// A process that has exited (gone, or a zombie waiting for a reaper).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn read_pid(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_with_retries_until_the_cluster_answers() {
    let stub = Stub::start(2).await;
    let agent = start_agent(&stub, 0).await;
    let reg = wait_for("a registration", || stub.state.registers.lock().unwrap().first().cloned()).await;
    assert!(stub.state.register_tries.load(Ordering::SeqCst) >= 3);
    assert_eq!(reg.name, "test");
    assert_eq!(reg.base_url, format!("http://{}", agent.addr()));
    assert_eq!(reg.base_url, agent.base_url());
    assert_eq!(reg.health_check_url, Some(format!("{}/health", agent.base_url())));
    assert!(reg.instance_id.starts_with("test-") && reg.instance_id.ends_with(&format!("-{}", agent.addr().port())));
    assert_eq!(reg.instance_id, agent.instance_id());
    assert_eq!(reg.metadata.unwrap()["capacity"], 0);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_reports_success_with_its_token_attempt_and_idempotency_key() {
    let stub = Stub::start(0).await;
    let agent = start_agent(&stub, 64).await;
    let mut req = execute_request(11, json!({"command": "echo hello"}), 0, &[&stub.url]);
    req["attempt"] = json!(2);
    assert_eq!(post_json(&agent, "/execute", &req).await, (202, json!({"accepted": true})));
    let cb = stub.report(11).await;
    assert_eq!(cb.idempotency_key.as_deref(), Some("cb-11-2"));
    let body = cb.body;
    assert_eq!((body.attempt, body.callback_token.as_str(), body.status), (2, "token-11", CallbackStatus::Success));
    assert_eq!(body.logs.as_deref(), Some("hello\n"));
    assert_eq!((body.exit_code, body.result), (Some(0), Some(json!({"exit_code": 0}))));
    assert!(body.start_time.unwrap() <= body.end_time.unwrap());
    assert_eq!(stub.callbacks(11).len(), 1, "one report, no `running` callback");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_zero_exit_reports_failed_with_the_exit_code() {
    let stub = Stub::start(0).await;
    let agent = start_agent(&stub, 64).await;
    let body = run(&stub, &agent, 12, json!({"command": "echo oops >&2; exit 3"}), 0).await;
    assert_eq!((body.status, body.exit_code), (CallbackStatus::Failed, Some(3)));
    assert_eq!(body.result, Some(json!({"exit_code": 3})));
    assert_eq!(body.logs.as_deref(), Some("oops\n"));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_whole_process_group() {
    let stub = Stub::start(0).await;
    let agent = start_agent(&stub, 64).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // Two background sleeps and a nested shell: all of them must die, not only the top shell.
    let command = format!("sleep 30 & echo $! > {d}/a; sh -c 'sleep 30 & echo $! > {d}/b; sleep 30' & wait");
    let started = Instant::now();
    let body = run(&stub, &agent, 13, json!({ "command": command }), 1).await;
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!((body.status, body.result), (CallbackStatus::Timeout, Some(json!({"signal": 9}))));
    assert!(body.logs.unwrap().contains("killed after the timeout of 1 s"));
    for name in ["a", "b"] {
        let pid = read_pid(&dir.path().join(name)).unwrap_or_else(|| panic!("pid file {name}"));
        wait_for(&format!("sleep {pid} ({name}) to die"), || is_dead(pid).then_some(())).await;
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_cancels_a_running_command() {
    let stub = Stub::start(0).await;
    let agent = start_agent(&stub, 64).await;
    let req = execute_request(14, json!({"command": "echo started; sleep 30"}), 0, &[&stub.url]);
    assert_eq!(post_json(&agent, "/execute", &req).await.0, 202);
    wait_for("the run to start", || (agent.running() == 1).then_some(())).await;
    assert_eq!(get_json(&agent, "/health").await, (200, json!({"status": "ok", "running": 1})));
    let stop = json!({"execution_id": 14, "reason": "stopped"});
    assert_eq!(post_json(&agent, "/stop", &stop).await, (200, json!({"stopped": true})));
    let body = stub.report(14).await.body;
    assert_eq!(body.status, CallbackStatus::Cancelled);
    assert!(body.logs.as_deref().unwrap().contains("stopped on request (stopped)"), "{:?}", body.logs);
    wait_for("the run to leave the table", || (agent.running() == 0).then_some(())).await;
    assert_eq!(post_json(&agent, "/stop", &stop).await, (200, json!({"stopped": false})));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_execute_runs_once() {
    let stub = Stub::start(0).await;
    let agent = start_agent(&stub, 64).await;
    let dir = tempfile::tempdir().unwrap();
    let req =
        execute_request(15, json!({"command": format!("echo run >> {}/count", dir.path().display())}), 0, &[&stub.url]);
    let duplicate = json!({"accepted": true, "duplicate": true});
    assert_eq!(post_json(&agent, "/execute", &req).await, (202, json!({"accepted": true})));
    assert_eq!(post_json(&agent, "/execute", &req).await, (200, duplicate.clone()));
    stub.report(15).await;
    assert_eq!(post_json(&agent, "/execute", &req).await, (200, duplicate), "still a duplicate after the run ended");
    assert_eq!(std::fs::read_to_string(dir.path().join("count")).unwrap(), "run\n");
    assert_eq!(stub.callbacks(15).len(), 1);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_keep_only_the_last_64_kib() {
    let stub = Stub::start(0).await;
    let agent = start_agent(&stub, 64).await;
    let command = r"head -c 1000000 /dev/zero | tr '\0' a; echo; echo END";
    let body = run(&stub, &agent, 16, json!({ "command": command }), 0).await;
    let logs = body.logs.unwrap();
    assert_eq!(body.status, CallbackStatus::Success);
    assert!(logs.len() <= 64 * 1024 && logs.len() > 60 * 1024, "{} bytes", logs.len());
    assert!(logs.ends_with("aaa\nEND\n"));
    let (marker, kept) = logs.split_once('\n').unwrap();
    let dropped: usize = marker.strip_prefix("[… ").unwrap().strip_suffix(" bytes dropped]").unwrap().parse().unwrap();
    assert_eq!(dropped + kept.len(), 1_000_000 + "\nEND\n".len());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_and_cwd_are_honoured() {
    let stub = Stub::start(0).await;
    let agent = start_agent(&stub, 64).await;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().canonicalize().unwrap().display().to_string();
    let params = json!({"command": "echo \"$GREETING\"; pwd -P", "env": {"GREETING": "hi there"}, "cwd": cwd});
    let body = run(&stub, &agent, 17, params, 0).await;
    assert_eq!(body.logs.as_deref(), Some(format!("hi there\n{cwd}\n").as_str()));
    let body = run(&stub, &agent, 18, json!({"command": "true", "cwd": format!("{cwd}/missing")}), 0).await;
    assert_eq!(body.status, CallbackStatus::Failed);
    assert!(body.logs.unwrap().starts_with("cannot start `sh -c` in"));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_jobs_succeed_on_the_expected_status_and_fail_otherwise() {
    let stub = Stub::start(0).await;
    let agent = start_agent(&stub, 64).await;
    let u = &stub.url;
    let http =
        json!({"method": "post", "url": format!("{u}/target/200"), "headers": {"X-Test": "yes"}, "body": {"a": 1}});
    let body = run(&stub, &agent, 20, json!({ "http": http }), 5).await;
    assert_eq!((body.status, body.exit_code), (CallbackStatus::Success, Some(200)));
    assert_eq!((body.result, body.logs.as_deref()), (Some(json!({"status": 200})), Some("pong POST")));
    let hit = stub.state.hits.lock().unwrap()[0].clone();
    assert_eq!((hit.method.as_str(), hit.body.as_str()), ("POST", r#"{"a":1}"#));
    assert_eq!(
        (hit.headers["x-test"].to_str().unwrap(), hit.headers["content-type"].to_str().unwrap()),
        ("yes", "application/json")
    );

    let body = run(&stub, &agent, 21, json!({"http": {"url": format!("{u}/target/500")}}), 5).await;
    assert_eq!((body.status, body.result), (CallbackStatus::Failed, Some(json!({"status": 500}))));
    assert!(body.logs.unwrap().ends_with("[cronraft agent: HTTP status 500, expected 2xx]\n"));

    let http = json!({"url": format!("{u}/target/201"), "expected_status": 201, "body": "raw"});
    assert_eq!(run(&stub, &agent, 22, json!({ "http": http }), 5).await.status, CallbackStatus::Success);
    let http = json!({"url": format!("{u}/target/200"), "expected_status": [201, 204]});
    assert_eq!(run(&stub, &agent, 23, json!({ "http": http }), 5).await.status, CallbackStatus::Failed);
    // https to a server that speaks plain HTTP: the TLS handshake fails, and the log says how.
    let plain = format!("{}/target/200", u.replacen("http://", "https://", 1));
    let https = run(&stub, &agent, 24, json!({"http": {"url": plain}}), 5).await;
    assert_eq!(https.status, CallbackStatus::Failed);
    assert!(https.logs.unwrap().contains(&format!("GET {plain}: ")), "the failed request is named");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_without_command_or_http_fail_with_a_message() {
    let stub = Stub::start(0).await;
    let agent = start_agent(&stub, 64).await;
    let body = run(&stub, &agent, 30, json!({"script": "echo"}), 0).await;
    assert_eq!((body.status, body.logs.as_deref()), (CallbackStatus::Failed, Some(NO_JOB)));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_move_on_when_a_node_refuses_connections() {
    let stub = Stub::start(0).await;
    let agent = start_agent(&stub, 64).await;
    let dead: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dead = format!("http://{dead}");
    // Two reports: the delivery start rotates, so at least one begins at the dead node.
    for id in [40, 41] {
        let req = execute_request(id, json!({"command": "echo ok"}), 0, &[&dead, &stub.url]);
        assert_eq!(post_json(&agent, "/execute", &req).await.0, 202);
    }
    for id in [40, 41] {
        assert_eq!(stub.report(id).await.body.status, CallbackStatus::Success);
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors() {
    let stub = Stub::start(0).await;
    let agent = start_agent(&stub, 64).await;
    let resp = client().post(format!("{}/execute", agent.base_url())).body("{not json").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "invalid_body");
    let (status, answer) = post_json(&agent, "/execute", &json!({"execution_id": 1})).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_body")));
    let (status, answer) = post_json(&agent, "/execute", &execute_request(2, json!({"command": "true"}), 0, &[])).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_body")), "no callback_urls");
    let (status, answer) = post_json(&agent, "/stop", &json!({"attempt": 1})).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_body")));
    let (status, answer) = get_json(&agent, "/nowhere").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("not_found")));
    assert_eq!(get_json(&agent, "/health").await, (200, json!({"status": "ok", "running": 0})));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_agent_answers_503_at_capacity() {
    let stub = Stub::start(0).await;
    let agent = start_agent(&stub, 1).await;
    assert_eq!(
        post_json(&agent, "/execute", &execute_request(50, json!({"command": "sleep 30"}), 0, &[&stub.url])).await.0,
        202
    );
    let second = execute_request(51, json!({"command": "true"}), 0, &[&stub.url]);
    let (status, answer) = post_json(&agent, "/execute", &second).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (503, Some("at_capacity")));
    assert_eq!(post_json(&agent, "/stop", &json!({"execution_id": 50})).await.1, json!({"stopped": true}));
    assert_eq!(stub.report(50).await.body.status, CallbackStatus::Cancelled);
    wait_for("room for another run", || (agent.running() == 0).then_some(())).await;
    assert_eq!(post_json(&agent, "/execute", &second).await.0, 202, "turned away before, so not a duplicate");
    assert_eq!(stub.report(51).await.body.status, CallbackStatus::Success);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_kills_running_jobs_and_reports_them() {
    let stub = Stub::start(0).await;
    let agent = start_agent(&stub, 64).await;
    let dir = tempfile::tempdir().unwrap();
    let command = format!("sleep 30 & echo $! > {}/pid; wait", dir.path().display());
    let req = execute_request(60, json!({ "command": command }), 0, &[&stub.url]);
    assert_eq!(post_json(&agent, "/execute", &req).await.0, 202);
    let pid = wait_for("the pid file", || read_pid(&dir.path().join("pid"))).await;
    let started = Instant::now();
    agent.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown took {:?}", started.elapsed());
    let body = stub.report(60).await.body;
    assert_eq!(body.status, CallbackStatus::Failed);
    assert!(body.logs.unwrap().contains("the agent shut down"));
    wait_for("the job's sleep to die", || is_dead(pid).then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_command_prints_its_address_registers_and_stops_on_sigterm() {
    use std::io::BufRead;
    let stub = Stub::start(0).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut child = Reaped(
        std::process::Command::new(env!("CARGO_BIN_EXE_cronraft"))
            .args(["agent", "--name", "cli", "--listen", "127.0.0.1:0", "--capacity", "2"])
            .env("CRONRAFT_CLUSTER", format!("http://{dead},{}", stub.url))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let addr = line.trim().strip_prefix("cronraft agent cli listening http=").unwrap_or_else(|| panic!("{line:?}"));
    let reg = wait_for("the agent's registration", || stub.state.registers.lock().unwrap().first().cloned()).await;
    assert_eq!((reg.name.as_str(), reg.base_url), ("cli", format!("http://{addr}")));
    assert_eq!(reg.metadata.unwrap()["capacity"], 2);

    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    let status = wait_for("the agent to exit", || child.0.try_wait().unwrap()).await;
    assert!(status.success(), "{status:?}");
}

/// A child process killed if the test fails before it exits.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
