//! Dispatch benchmarks: fire lag measured at the executor, and executions per second end to end.
//!
//! - `dispatch_lag`: a recording executor inside this process (it answers `/execute` at once
//!   and reports success by callback, like a real executor) serves 1,000 tasks every second;
//!   the lag is arrival time − `scheduled_time`, measured where the work arrives.
//! - `throughput`: the bundled agent (`cronraft agent`, a separate process) runs `http` tasks
//!   against a sink in this process; the rate is the growth of the `success` count per second,
//!   so every execution counted went fire → dispatch → run → callback → recorded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::child::Proc;
use crate::cronraft::Cluster;
use crate::load::{run_level, Workload};
use crate::schedule::Line;

/// Arrival lags (ms) seen by the recording executor, and the callbacks it still has to send.
#[derive(Default)]
pub struct Recorder {
    lags_ms: Mutex<Vec<i64>>,
}

pub struct RecorderState {
    pub rec: Arc<Recorder>,
    pub http: reqwest::Client,
}

pub async fn execute(State(s): State<Arc<RecorderState>>, Json(req): Json<Value>) -> StatusCode {
    let now = chrono::Utc::now().timestamp_millis();
    let scheduled = req["scheduled_time"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    if let Some(t) = scheduled {
        s.rec.lags_ms.lock().unwrap().push(now - t.timestamp_millis());
    }
    let http = s.http.clone();
    tokio::spawn(async move {
        let id = req["execution_id"].as_u64().unwrap_or(0);
        let body = json!({"attempt": req["attempt"], "callback_token": req["callback_token"], "status": "success"});
        let urls: Vec<String> = req["callback_urls"]
            .as_array()
            .map(|a| a.iter().filter_map(|u| u.as_str().map(String::from)).collect())
            .unwrap_or_default();
        for url in urls.iter().cycle().take(urls.len() * 3) {
            let sent = http
                .post(format!("{url}/api/v1/executions/{id}/callback"))
                .header("Idempotency-Key", format!("cb-{id}-{}", req["attempt"]))
                .json(&body)
                .send()
                .await;
            if matches!(&sent, Ok(r) if r.status().is_success() || r.status().is_client_error()) {
                return;
            }
        }
    });
    StatusCode::ACCEPTED
}

pub async fn serve(app: Router) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// Creates `n` tasks every second (phases spread over the second) in `group`.
async fn create_spread(
    http: &reqwest::Client,
    leader: &str,
    prefix: &str,
    group: &str,
    n: u64,
    parameters: Value,
) -> Result<()> {
    let (prefix, group) = (prefix.to_string(), group.to_string());
    let body = Arc::new(move |_tag: &str, i: u64| {
        json!({"name": format!("{prefix}-{i}"), "cron_expression": format!("@every 1s offset {}ms", i * 1000 / n),
               "executor": group, "max_retry": 0, "timeout_seconds": 60, "parameters": parameters})
        .to_string()
    });
    let work = Workload { url: format!("{leader}/api/v1/tasks"), ok_status: 201, body };
    let r = run_level(http, &work, "create", 64, n, Duration::from_secs(600)).await;
    if r.error_count() > 0 {
        bail!("{} task creations failed: {:?} ({:?})", r.error_count(), r.errors, r.error_sample);
    }
    Ok(())
}

async fn register(http: &reqwest::Client, leader: &str, group: &str, base_url: &str) -> Result<()> {
    let body = json!({"name": group, "instance_id": format!("{group}-1"), "base_url": base_url});
    let resp = http.post(format!("{leader}/api/v1/executors/register")).json(&body).send().await?;
    if !resp.status().is_success() {
        bail!("register answered {}: {}", resp.status(), resp.text().await.unwrap_or_default());
    }
    Ok(())
}

fn quantile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub async fn lag(http: &reqwest::Client, c: &mut Cluster, n: u64, seconds: u64) -> Result<Line> {
    let rec = Arc::new(Recorder::default());
    let state = Arc::new(RecorderState { rec: rec.clone(), http: http.clone() });
    let url = serve(
        Router::new().route("/execute", post(execute)).route("/health", get(|| async { "ok" })).with_state(state),
    )
    .await?;
    let leader = c.leader_url.clone();
    register(http, &leader, "lag", &url).await?;
    create_spread(http, &leader, "lag", "lag", n, json!({})).await?;
    tokio::time::sleep(Duration::from_secs(5)).await; // settle
    rec.lags_ms.lock().unwrap().clear();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let mut lags = std::mem::take(&mut *rec.lags_ms.lock().unwrap());
    lags.sort_unstable();
    let (p50, p99, max) = (quantile(&lags, 0.5), quantile(&lags, 0.99), lags.last().copied().unwrap_or(0));
    let met = !lags.is_empty() && p50 <= 10 && p99 <= 30;
    // The leader's own view: slot → fire entry committed (the first half of the path).
    let status: Value = http.get(format!("{leader}/api/v1/scheduler/status")).send().await?.json().await?;
    let commit = &status["fire_lag"];
    let figures = format!(
        "{} deliveries in {seconds} s; lag at the executor p50 {p50} ms, p99 {p99} ms, max {max} ms (fire committed: p50 {} ms, p99 {} ms)",
        lags.len(),
        commit["p50_ms"],
        commit["p99_ms"]
    );
    Ok(Line::new(
        format!("{n} tasks every second, lag at the executor"),
        figures,
        "p50 ≤ 10 ms, p99 ≤ 30 ms",
        Some(met),
    ))
}

async fn count(http: &reqwest::Client, url: &str, status: &str) -> Result<u64> {
    let v: Value = http
        .get(format!("{url}/api/v1/executions?status={status}&page_size=1&consistency=local"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    v["total"].as_u64().context("total")
}

pub async fn throughput(
    http: &reqwest::Client,
    c: &mut Cluster,
    bin: &std::path::Path,
    n: u64,
    seconds: u64,
) -> Result<Line> {
    let sink = serve(Router::new().route("/sink", get(|| async { "ok" }))).await?;
    let logs = tempfile::tempdir()?;
    let cluster = c.urls.join(",");
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["agent", "--name", "tput", "--cluster", &cluster, "--listen", "127.0.0.1:0", "--capacity", "0"]);
    let mut agent = Proc::spawn("agent", &mut cmd, logs.path())?;
    let leader = c.leader_url.clone();
    // The agent registers itself; wait until it is in the registry.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        agent.check_alive()?;
        let v: Value = http.get(format!("{leader}/api/v1/executors?name=tput")).send().await?.json().await?;
        if v["total"].as_u64() == Some(1) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the agent did not register within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    create_spread(http, &leader, "tput", "tput", n, json!({"http": {"url": format!("{sink}/sink")}})).await?;
    tokio::time::sleep(Duration::from_secs(10)).await; // settle
    let (s0, t0) = (count(http, &leader, "success").await?, Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    agent.check_alive()?;
    let s1 = count(http, &leader, "success").await?;
    let rate = (s1 - s0) as f64 / t0.elapsed().as_secs_f64();
    let failed = count(http, &leader, "failed").await?;
    let backlog = count(http, &leader, "pending").await? + count(http, &leader, "running").await?;
    let met = rate >= 2_000.0;
    let figures = format!(
        "{rate:.0} executions/s recorded `success` over {seconds} s ({n}/s offered); {failed} failed; backlog at the end {backlog}"
    );
    Ok(Line::new(
        format!("{n} tasks every second, bundled agent, http tasks"),
        figures,
        "≥ 2,000 executions/s",
        Some(met),
    ))
}
