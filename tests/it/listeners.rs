//! Listener hardening and outbound control, end to end: real `cronraft` processes, raw sockets
//! and small executor servers in this process.
//!
//! What is shown here (issue 15, points 3 and 4): connections that never send a request head do
//! not stop other clients and are closed after the header timeout; connections beyond the cap
//! are closed at once; requests beyond the in-flight cap get 503 `overloaded` at once and a
//! request past its time gets 503 `request_timeout`; invented methods add no metrics series; the
//! leader follows no redirect from an executor, records no executor's error body, and refuses
//! executor addresses in `[executors] deny_cidrs`, naming the setting.

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use axum::routing::{any, get, post};
use axum::Router;
use common::executor::register;
use common::{wait_for, Cluster};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Small API limits so a test can reach each of them: a 1.5 s first-head timeout, 4 s of
/// keep-alive, 16 connections, 2 requests in flight, 3 s per request. No embedded agent.
const SMALL_LIMITS: &str =
    "[agent]\nenabled = false\n[listeners.api]\nheader_read_timeout_ms = 1500\nconnections_max = 16\n\
     requests_inflight_max = 2\nrequest_timeout_ms = 3000\nkeepalive_timeout_ms = 4000\nidle_timeout_ms = 6000\n";

/// The connection-cap test's limits: as [`SMALL_LIMITS`] with an 8 s first-head timeout (and
/// keep-alive, which may not be shorter), so the 16 connections that fill the cap outlive the
/// check of the 17th on a loaded machine, and "closed at once" (within 4 s, half the timeout)
/// cannot be confused with "closed by the timeout".
/// Regressions: with 1.5 s the 16 could time out first and let the 17th in; with 3 s and a 1 s
/// bound on "at once", a node starved of CPU by the parallel tests closed the 17th after 1 s
/// (both seen in CI, never alone).
const CAP_LIMITS: &str =
    "[agent]\nenabled = false\n[listeners.api]\nheader_read_timeout_ms = 8000\nconnections_max = 16\n\
     requests_inflight_max = 2\nrequest_timeout_ms = 3000\nkeepalive_timeout_ms = 8000\nidle_timeout_ms = 10000\n";

/// A client that keeps no idle connection, so it never holds one of the node's connection slots.
fn fresh() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).timeout(Duration::from_secs(20)).build().unwrap()
}

/// Reads until the peer closes (or `limit` passes: `None`); returns what was read.
async fn read_until_closed(conn: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut text = Vec::new();
    let read = tokio::time::timeout(limit, conn.read_to_end(&mut text)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&text).into_owned()), // EOF or reset: closed either way
        Err(_) => None,
    }
}

/// Whether the peer has closed `conn` within `limit`.
async fn closed_within(conn: &mut TcpStream, limit: Duration) -> bool {
    read_until_closed(conn, limit).await.is_some()
}

/// Sends one raw request and returns the whole answer (the request asks for `Connection: close`).
async fn raw(addr: &str, method: &str, path: &str) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    conn.write_all(head.as_bytes()).await.unwrap();
    read_until_closed(&mut conn, Duration::from_secs(10)).await.expect("an answer")
}

async fn health_status(url: &str) -> (u16, String) {
    let resp = fresh().get(format!("{url}/health")).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_connections_do_not_stop_other_clients_and_extra_connections_are_closed_at_once() {
    let c = Cluster::start(1, CAP_LIMITS).await;
    let (url, addr) = (c.nodes[&1].url(), c.nodes[&1].http.clone());

    // Phase 1: half the connection cap opens and says nothing; one sends half a request head.
    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(&addr).await.unwrap());
    }
    silent[0].write_all(b"GET /health HTTP/1.1\r\nHost: slow\r\n").await.unwrap();

    // Phase 2: other clients are still answered, promptly (long before the silent ones' 8 s).
    for _ in 0..5 {
        let start = Instant::now();
        assert_eq!(health_status(&url).await.0, 200);
        assert!(start.elapsed() < Duration::from_secs(3), "answered in {:?}", start.elapsed());
    }

    // Phase 3: the silent connections are closed after the header timeout, not before.
    for conn in &mut silent {
        assert!(closed_within(conn, Duration::from_secs(20)).await, "a silent connection stays open");
    }
    let waited = opened.elapsed();
    assert!(waited >= Duration::from_millis(7_900), "closed after {waited:?}, before the 8 s header timeout");

    // Phase 4: at the cap (16), one more connection is closed at once instead of waiting in a
    // queue: well before the 8 s header timeout would close it. (The harness may hold up to two
    // idle connections of its own, hence the slack.)
    let mut full = Vec::new();
    for _ in 0..16 {
        full.push(TcpStream::connect(&addr).await.unwrap());
    }
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    let start = Instant::now();
    assert!(closed_within(&mut extra, Duration::from_secs(4)).await, "the connection over the cap is closed at once");
    assert!(start.elapsed() < Duration::from_millis(4_000));
    assert!(!closed_within(&mut full[0], Duration::from_millis(200)).await, "connections within the cap stay open");

    // Phase 5: once the silent ones time out, the node serves new connections again.
    drop(full);
    wait_for("the node to answer again", Duration::from_secs(10), || async {
        let resp = fresh().get(format!("{url}/health")).send().await.ok()?;
        (resp.status() == StatusCode::OK).then_some(())
    })
    .await;
}

/// Reads one answer on a kept-alive connection: the head, then `content-length` bytes of body.
async fn read_answer(conn: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before the answer was complete: {text:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Regression (the 600 s sustained benchmark, session 10): one 10 s header timeout covered both a
/// new connection's first head and the wait between kept-alive requests, so a client polling
/// every 10 s sent its next request just as the node closed the connection: "connection reset by
/// peer". The wait between requests is now the longer keep-alive (above clients' own 90 s), and
/// only a new connection's first head has the short limit.
#[tokio::test(flavor = "multi_thread")]
async fn a_kept_alive_connection_waits_longer_than_the_first_head_timeout_for_its_next_request() {
    let c = Cluster::start(1, SMALL_LIMITS).await;
    let addr = c.nodes[&1].http.clone();
    let get = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n";

    // Phase 1: one request on a kept-alive connection.
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    conn.write_all(get).await.unwrap();
    assert!(read_answer(&mut conn).await.starts_with("HTTP/1.1 200"));

    // Phase 2: idle for longer than the 1.5 s first-head timeout, the connection stays open and
    // serves the next request.
    assert!(!closed_within(&mut conn, Duration::from_millis(2_500)).await, "closed by the first-head timeout");
    // The keep-alive runs from the node's answer, which comes after this instant: measured from
    // here, the close can never look early on a loaded machine.
    let idle = Instant::now();
    conn.write_all(get).await.unwrap();
    assert!(read_answer(&mut conn).await.starts_with("HTTP/1.1 200"));

    // Phase 3: idle beyond the 4 s keep-alive, it is closed (and not by the 6 s stall watch).
    assert!(closed_within(&mut conn, Duration::from_secs(10)).await, "an idle kept-alive connection stays open");
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(3_900) && waited < Duration::from_millis(5_900),
        "closed after {waited:?}, not at the 4 s keep-alive"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_beyond_the_inflight_cap_get_503_overloaded_and_slow_ones_503_request_timeout() {
    let c = Cluster::start(1, SMALL_LIMITS).await;
    let (url, addr) = (c.nodes[&1].url(), c.nodes[&1].http.clone());

    // Phase 1: two writes hold the two in-flight slots: their heads are complete, their bodies
    // never will be, so their handlers wait (until the 3 s request timeout).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = TcpStream::connect(&addr).await.unwrap();
        let head = "POST /api/v1/tasks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":";
        conn.write_all(head.as_bytes()).await.unwrap();
        held.push(conn);
    }
    let held_at = Instant::now();

    // Phase 2: a third request is refused at once with the JSON error, not queued.
    let body = wait_for("a request over the cap to be refused", Duration::from_secs(2), || async {
        let (status, body) = health_status(&url).await;
        (status == 503).then_some(body)
    })
    .await;
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["error"]["code"], "overloaded", "{body}");

    // Phase 3: the held requests are answered 503 request_timeout once their 3 s are up.
    for conn in &mut held {
        let answer = read_until_closed(conn, Duration::from_secs(10)).await.expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    }
    let took = held_at.elapsed();
    assert!(took >= Duration::from_millis(2_900) && took < Duration::from_secs(8), "timed out after {took:?}");

    // Phase 4: their slots are free again, and the half-sent write created nothing.
    assert_eq!(health_status(&url).await.0, 200);
    let tasks: Value = fresh().get(format!("{url}/api/v1/tasks")).send().await.unwrap().json().await.unwrap();
    assert_eq!(tasks["total"], 0, "{tasks}");
}

/// Lines of the HTTP request counter in `/metrics`.
async fn request_series(url: &str) -> Vec<String> {
    let text = fresh().get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines().filter(|l| l.starts_with("cronraft_http_requests_total{")).map(String::from).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn invented_methods_add_no_metrics_series() {
    let c = Cluster::start(1, "[agent]\nenabled = false\n").await;
    let (url, addr) = (c.nodes[&1].url(), c.nodes[&1].http.clone());

    // Phase 1: invented methods on an unknown path and on a route; both get a JSON error.
    assert!(raw(&addr, "FOOBAR", "/x").await.starts_with("HTTP/1.1 404"));
    assert!(raw(&addr, "FOOBAR", "/api/v1/tasks").await.starts_with("HTTP/1.1 405"));
    request_series(&url).await; // the /metrics series itself now exists
    let before = request_series(&url).await;

    // Phase 2: more invented methods on other paths of the same shapes add no series.
    for (i, path) in ["/y", "/api/v1/tasks", "/zz/top"].iter().enumerate() {
        raw(&addr, &format!("INVENTED{i}"), path).await;
    }
    let after = request_series(&url).await;
    let labels = |lines: &[String]| lines.iter().map(|l| l.rsplit_once(' ').unwrap().0.to_string()).collect::<Vec<_>>();
    assert_eq!(labels(&before), labels(&after), "no new series");
    assert!(!after.iter().any(|l| l.contains("FOOBAR") || l.contains("INVENTED")), "{after:?}");
    assert!(after.iter().any(|l| l.contains("method=\"other\",route=\"unmatched\",status=\"404\"")), "{after:?}");
}

/// A server in this process answering as `app` says; returns its base URL.
async fn serve_app(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A manual task (never fires by itself) in `group`, run once without retries.
async fn trigger_once(url: &str, group: &str) -> u64 {
    let body = json!({"name": format!("t-{group}"), "cron_expression": "0 0 0 1 1 * 2099", "executor": group,
                      "max_retry": 0, "timeout_seconds": 60});
    let task: Value =
        fresh().post(format!("{url}/api/v1/tasks")).json(&body).send().await.unwrap().json().await.unwrap();
    let trigger = format!("{url}/api/v1/tasks/{}/trigger", task["id"]);
    let e: Value = fresh().post(trigger).json(&json!({})).send().await.unwrap().json().await.unwrap();
    e["id"].as_u64().unwrap_or_else(|| panic!("{e}"))
}

/// Waits for execution `id`'s first attempt to end with an error, and returns the execution
/// as the API shows it (raw text, to search it whole).
async fn first_attempt_error(url: &str, id: u64) -> (String, String) {
    wait_for(&format!("execution {id}'s first attempt to fail"), Duration::from_secs(20), || async {
        let text = fresh().get(format!("{url}/api/v1/executions/{id}")).send().await.ok()?.text().await.ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        let error = v["attempts"][0]["error"].as_str().filter(|e| !e.is_empty())?.to_string();
        Some((error, text))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn executor_redirects_are_not_followed_and_error_bodies_are_not_recorded() {
    let config =
        "[agent]\nenabled = false\n[executors]\nhealth_check_interval_ms = 300\nhealth_check_timeout_ms = 500\n";
    let c = Cluster::start(1, config).await;
    let url = c.nodes[&1].url();

    // Phase 1: a recorder counts every request it gets; a redirector answers /execute and
    // /moved-health with 302 to it, and /health with 200.
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    let recorder = serve_app(Router::new().fallback(any(move || {
        h.fetch_add(1, Ordering::SeqCst);
        async { StatusCode::OK }
    })))
    .await;
    let to = |path: &str| [(header::LOCATION, format!("{recorder}{path}"))];
    let (to_execute, to_health) = (to("/execute"), to("/health"));
    let redirector = serve_app(
        Router::new()
            .route("/execute", post(move || async move { (StatusCode::FOUND, to_execute) }))
            .route("/moved-health", get(move || async move { (StatusCode::FOUND, to_health) }))
            .route("/health", get(|| async { StatusCode::OK })),
    )
    .await;
    let reg = json!({"name": "redir", "instance_id": "r1", "base_url": redirector,
                     "health_check_url": format!("{redirector}/health")});
    register(&url, &reg).await;
    let moved = json!({"name": "moved", "instance_id": "m1", "base_url": redirector,
                       "health_check_url": format!("{redirector}/moved-health")});
    let moved_id = register(&url, &moved).await;

    // Phase 2: the dispatch's 302 is an error answer, and the recorder is never called.
    let id = trigger_once(&url, "redir").await;
    let (error, _) = first_attempt_error(&url, id).await;
    assert_eq!(error, "executor answered HTTP 302 Found");
    // Phase 3: a health check answered 302 is a failed check, not a call to the recorder.
    wait_for("the redirecting health check to eject its instance", Duration::from_secs(10), || async {
        let x: Value =
            fresh().get(format!("{url}/api/v1/executors/{moved_id}")).send().await.ok()?.json().await.ok()?;
        (x["is_healthy"] == false).then_some(())
    })
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the leader followed a redirect");

    // Phase 4: an executor's error answer with a secret in its body: only status and reason
    // reach the execution record.
    let leaky = serve_app(
        Router::new()
            .route("/execute", post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "db password: SECRET-hunter2") }))
            .route("/health", get(|| async { StatusCode::OK })),
    )
    .await;
    let reg = json!({"name": "leaky", "instance_id": "l1", "base_url": leaky,
                     "health_check_url": format!("{leaky}/health")});
    register(&url, &reg).await;
    let id = trigger_once(&url, "leaky").await;
    let (error, whole) = first_attempt_error(&url, id).await;
    assert_eq!(error, "executor answered HTTP 500 Internal Server Error");
    assert!(!whole.contains("SECRET") && !whole.contains("hunter2"), "{whole}");
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_executor_addresses_are_refused_with_a_reason_naming_the_setting() {
    // Ten failed checks (3 s) before a denied executor is unhealthy: with the default three, a
    // loaded machine took longer than 0.9 s over the first dispatch, and the second group was
    // already unhealthy when its run was triggered ("no online and healthy executor").
    let config =
        "[agent]\nenabled = false\n[executors]\nhealth_check_interval_ms = 300\nhealth_check_timeout_ms = 500\n\
                  failure_threshold = 10\ndeny_cidrs = [\"127.0.0.0/8\", \"::1/128\"]\n";
    let c = Cluster::start(1, config).await;
    let url = c.nodes[&1].url();

    // Phase 1: an executor on loopback, registered by IP and by host name.
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    let executor = serve_app(Router::new().fallback(any(move || {
        h.fetch_add(1, Ordering::SeqCst);
        async { StatusCode::OK }
    })))
    .await;
    let by_name = executor.replace("127.0.0.1", "localhost");
    for (group, base) in [("by-ip", executor.clone()), ("by-name", by_name)] {
        let reg = json!({"name": group, "instance_id": group, "base_url": base,
                         "health_check_url": format!("{base}/health")});
        register(&url, &reg).await;
    }

    // Phase 2: both dispatches fail, saying which setting refused the address: the IP literal
    // before sending, the host name when its resolved addresses are filtered.
    for group in ["by-ip", "by-name"] {
        let id = trigger_once(&url, group).await;
        let (error, _) = first_attempt_error(&url, id).await;
        assert!(error.contains("deny_cidrs") && error.contains("127.0.0."), "{group}: {error}");
    }

    // Phase 3: health checks fail the same way; the executor never saw a single request.
    wait_for("the denied executors to be unhealthy", Duration::from_secs(20), || async {
        let v: Value = fresh().get(format!("{url}/api/v1/executors")).send().await.ok()?.json().await.ok()?;
        let items = v["items"].as_array()?;
        (items.len() == 2 && items.iter().all(|x| x["is_healthy"] == false)).then_some(())
    })
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a denied address was called");
}
