//! `notify`: what notifications cost the scheduler, and how fast the leader delivers them
//! (issue 19: "Notifications add no measurable fire lag at 5,000 fires/s when no rule matches,
//! and deliver ≥ 500 alerts/s when many do"; a benchmark, not a timed test).
//!
//! # What it does
//!
//! 1. Starts a fresh 3-node cluster (the release binary, `--no-agent`) and a receiver in this
//!    process (`POST /hook` on a free loopback port: it answers 200 and notes each
//!    `X-Cronraft-Event-Id` with the moment it first arrived).
//! 2. Creates `--tasks` tasks (default 5,000) every second, phases spread over the second, in a
//!    group nobody serves with no retries: every run is recorded `failed` in its fire entry, so
//!    every fire is also a finished failed run that apply hands to the notifications code.
//! 3. Window A, `--window-seconds` (default 60): no channel, no rule. Window B, as long: a
//!    webhook channel to the receiver and a rule for a task prefix no task has, so apply looks
//!    up the rules for every failed run and none matches. For each window: the leader's fire-lag
//!    p50/p99 (from the difference of its `cronraft_fire_lag_seconds` histograms over the
//!    window: every fire, in buckets), fires above 50 ms, fires per second and CPU of the nodes.
//! 4. Delivery: a rule for the tasks' prefix and `run_failed`. Each task's next failed run raises
//!    its "failing" alert (one per task until it recovers), so `--tasks` alerts go into the outbox
//!    within about a second, while the fires go on. The rate is distinct event ids received over
//!    the time from the rule's acknowledgement to the last one, and the report says how long the
//!    outbox took to drain (its depth from `/metrics`).
//!
//! # Why it looks this way
//!
//! - The fires are the real scheduler's: the cost under test is apply's (one summary read per
//!   finished run, the rule lookups when rules exist) inside the fire entries, and the leader's
//!   delivery service competing for the same two cores.
//! - "No measurable" is judged as the difference between the two windows' p99 buckets: the
//!   histogram's bounds (…, 20, 50, 100 ms) are the resolution, and a difference within one
//!   bucket is what this machine can tell.
//! - The alerts are as many as the tasks, one each, because repeat suppression is part of the
//!   design: a task that keeps failing sends one "failing" alert.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use serde_json::json;

use crate::child::total_cpu_seconds;
use crate::cronraft::{self, Cluster};
use crate::schedule::{
    bucket_quantile, count_above, create_tasks, lag_histogram, leader_url, run_for, spread_expression,
};

/// What to run.
pub struct Settings {
    pub tasks: u64,
    pub window: Duration,
    /// Longest wait for every alert.
    pub delivery_limit: Duration,
}

/// One window's figures.
struct Window {
    fires: u64,
    seconds: f64,
    p50: f64,
    p99: f64,
    above_50: u64,
    cores: f64,
}

/// The receiver: each event id with the moment it first arrived, and how many requests came.
#[derive(Default)]
struct Received {
    first_seen: HashMap<String, Instant>,
    requests: u64,
}

pub async fn run(http: &reqwest::Client, bin: &std::path::Path, s: &Settings) -> Result<String> {
    let received = Arc::new(Mutex::new(Received::default()));
    let hook = start_receiver(received.clone()).await?;
    let mut c = cronraft::start(bin, 3, &std::env::temp_dir(), http).await?;
    let leader = leader_url(http, &c).await?;
    create_tasks(http, &leader, "notify", s.tasks, spread_expression(s.tasks)).await?;
    eprintln!("notify: {} tasks every second; settling", s.tasks);
    run_for(&mut c, Duration::from_secs(15)).await?;

    let a = window(http, &mut c, &leader, s.window).await?;
    eprintln!("notify: window A (no rule): {}", describe(&a));
    post_json(
        http,
        &leader,
        "/api/v1/notifications/channels",
        json!({"name": "bench", "kind": "webhook", "url": hook}),
    )
    .await?;
    let none = json!({"task_prefix": "elsewhere-", "events": ["run_failed"], "channels": ["bench"]});
    post_json(http, &leader, "/api/v1/notifications/rules", none).await?;
    run_for(&mut c, Duration::from_secs(5)).await?;
    let b = window(http, &mut c, &leader, s.window).await?;
    eprintln!("notify: window B (a rule that matches nothing): {}", describe(&b));

    let (delivered, delivery_s, drained_s, requests) = deliveries(http, &mut c, &leader, s, &received).await?;
    let rate = delivered as f64 / delivery_s.max(0.001);
    let lag_met = b.p99 <= a.p99.max(next_bucket(a.p99));
    let text = format!(
        "# Notifications benchmark\n\n3 nodes on loopback, {} tasks every second, each run `failed` at once (no executor).\n\n\
         | window | fires/s | fire lag p50 (bucket) | p99 (bucket) | fires > 50 ms | CPU (3 nodes) |\n|---|---:|---:|---:|---:|---:|\n\
         | A: no channel, no rule | {:.0} | ≤ {} ms | ≤ {} ms | {} | {:.2} cores |\n\
         | B: a rule that matches nothing | {:.0} | ≤ {} ms | ≤ {} ms | {} | {:.2} cores |\n\n\
         No measurable fire lag added (B's p99 within one bucket of A's): **{}**\n\n\
         Delivery: {delivered} of {} alerts in {delivery_s:.2} s = **{rate:.0} alerts/s** (target ≥ 500: **{}**), in \
         {requests} requests; the outbox was empty {drained_s:.1} s after the rule.\n",
        s.tasks,
        a.fires as f64 / a.seconds,
        a.p50,
        a.p99,
        a.above_50,
        a.cores,
        b.fires as f64 / b.seconds,
        b.p50,
        b.p99,
        b.above_50,
        b.cores,
        if lag_met { "PASS" } else { "FAIL" },
        s.tasks,
        if rate >= 500.0 && delivered == s.tasks { "PASS" } else { "FAIL" },
    );
    Ok(text)
}

/// The histogram bound after `ms` (the resolution of "no measurable difference").
fn next_bucket(ms: f64) -> f64 {
    const BOUNDS: [f64; 12] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 1_500.0, 5_000.0];
    BOUNDS.iter().copied().find(|b| *b > ms).unwrap_or(f64::INFINITY)
}

fn describe(w: &Window) -> String {
    format!(
        "{:.0} fires/s, p50 ≤ {} ms, p99 ≤ {} ms, {} above 50 ms, {:.2} cores",
        w.fires as f64 / w.seconds,
        w.p50,
        w.p99,
        w.above_50,
        w.cores
    )
}

/// The leader's fire lag over `length` of schedule time.
async fn window(http: &reqwest::Client, c: &mut Cluster, leader: &str, length: Duration) -> Result<Window> {
    let pids: Vec<u32> = c.nodes.iter().map(|p| p.pid).collect();
    let cpu0 = total_cpu_seconds(&pids)?;
    let (before, n0) = lag_histogram(http, leader).await?;
    let started = Instant::now();
    run_for(c, length).await?;
    let (after, n1) = lag_histogram(http, leader).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cores = (total_cpu_seconds(&pids)? - cpu0) / seconds;
    Ok(Window {
        fires: n1.saturating_sub(n0),
        seconds,
        p50: bucket_quantile(&before, &after, 0.5),
        p99: bucket_quantile(&before, &after, 0.99),
        above_50: count_above(&before, &after, 50.0),
        cores,
    })
}

/// Adds the rule that matches every task and waits for one alert per task. Returns the alerts
/// received, the seconds from the rule's acknowledgement to the last, the seconds until the
/// outbox was empty, and the requests the receiver got.
async fn deliveries(
    http: &reqwest::Client,
    c: &mut Cluster,
    leader: &str,
    s: &Settings,
    received: &Arc<Mutex<Received>>,
) -> Result<(u64, f64, f64, u64)> {
    let all = json!({"task_prefix": "notify-", "events": ["run_failed"], "channels": ["bench"]});
    post_json(http, leader, "/api/v1/notifications/rules", all).await?;
    let ruled = Instant::now();
    let mut drained_s = f64::NAN;
    while ruled.elapsed() < s.delivery_limit {
        run_for(c, Duration::from_millis(500)).await?;
        let depth = outbox_depth(http, leader).await.unwrap_or(f64::NAN);
        let n = received.lock().expect("receiver").first_seen.len() as u64;
        eprintln!("notify: {:>5.1} s: {n} alerts received, outbox {depth}", ruled.elapsed().as_secs_f64());
        if n >= s.tasks && depth == 0.0 {
            drained_s = ruled.elapsed().as_secs_f64();
            break;
        }
    }
    let r = received.lock().expect("receiver");
    let last = r.first_seen.values().max().copied().unwrap_or(ruled);
    Ok((r.first_seen.len() as u64, last.saturating_duration_since(ruled).as_secs_f64(), drained_s, r.requests))
}

async fn outbox_depth(http: &reqwest::Client, url: &str) -> Result<f64> {
    let text = http.get(format!("{url}/metrics")).send().await?.text().await?;
    text.lines()
        .find_map(|l| l.strip_prefix("cronraft_notification_outbox_depth ").and_then(|v| v.trim().parse().ok()))
        .context("no cronraft_notification_outbox_depth in /metrics")
}

async fn post_json(http: &reqwest::Client, url: &str, path: &str, body: serde_json::Value) -> Result<()> {
    let mut req = http.post(format!("{url}{path}")).json(&body);
    if let Some(token) = cronraft::auth_token() {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await?;
    if !resp.status().is_success() {
        bail!("POST {path}: {} {}", resp.status(), resp.text().await.unwrap_or_default());
    }
    Ok(())
}

/// Starts the receiver; its hook URL.
async fn start_receiver(received: Arc<Mutex<Received>>) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap| {
            let received = received.clone();
            async move {
                let id = headers.get("x-cronraft-event-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let mut r = received.lock().expect("receiver");
                r.requests += 1;
                r.first_seen.entry(id).or_insert_with(Instant::now);
                "ok"
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/hook"))
}
