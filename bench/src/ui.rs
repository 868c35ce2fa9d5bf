//! `ui`: the console's server-side render time per page at scale. Issue 18 asks for "p99 ≤ 50 ms
//! for list pages, ≤ 100 ms for the overview", measured at 10,000 tasks and 1,000,000 execution
//! records (a benchmark, not a timed test).
//!
//! # What it does
//!
//! 1. Starts a fresh 3-node cluster (`cronraft::start`: the release binary, `--no-agent`) and gives
//!    it executors: group `bench-ok`, served by the recording executor of `dispatch.rs` inside
//!    this process (it accepts `/execute` at once and reports success by callback), and four
//!    instances in groups `etl`, `web` and `reports` that nothing answers (unhealthy after three
//!    failed checks), so that `/executors` and the overview's unhealthy card show something.
//! 2. Creates `--tasks` tasks through `POST /api/v1/tasks`: varied names, executor groups,
//!    execution modes, time zones and schedules (daily, weekly, monthly, every 6 hours); one idle
//!    task in ten is then paused.
//! 3. Lets the scheduler make `--executions` records. `--fire-tasks` of the tasks (a quarter by
//!    default, spread through the id range) fire every second, phases spread over the second:
//!    nine in ten into `bench-none`, a group nobody serves (the run is recorded `failed`,
//!    `no_healthy_executor`, in its fire entry, as in `schedule.rs`), one in ten into `bench-ok`
//!    (`success`, by callback). It polls the total (`GET /executions?page_size=1`) until it
//!    reaches the target, then pauses the fast tasks and waits for the total to stop moving and
//!    the followers to catch up, so the pages are timed on a steady state. (Steps 1 to 3 are
//!    `fill.rs`, shared with `backup.rs`.)
//! 4. Times each page of the console contract on a follower, then on the leader: `--warmup`
//!    GETs, then `--requests` sequential GETs. For each: p50/p99/max of the node's own
//!    `Server-Timing: render;dur=` (the handler's whole time; the target is on its p99) and of
//!    this client's time (send to the end of the body), the answers' statuses and sizes.
//!
//! # Why it looks this way
//!
//! - Real API, real scheduler, no offline import: the trees, indexes, counters and rollups are
//!   what a node has after that history, including the cost of every index kept in apply.
//! - Sequential requests: the target is one page's render time, not throughput, and one request
//!   at a time keeps queueing in the benchmark out of the figures.
//! - A follower first: it is the harder case (a linearizable read asks the leader for a read
//!   index, and the overview asks the leader for the scheduler's figures over HTTP).
//! - An answer other than 200 is an error: counted and shown with its code, never timed. A 200
//!   whose page shows an API error in place (the overview's cards, the executions list) is timed
//!   but marked partial and not judged, since it did less than the real page.
//! - Every wait has a deadline; a fill that misses its deadline is measured anyway, and the
//!   report says how many records there were.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::cronraft::{self, Cluster};
use crate::fill::{fill, start_executors, total_any, Fill, Plan, GROUP_OK};
use crate::schedule::{executions_total, leader_url, run_for};

/// Server p99 targets (issue 18): the overview, and every list page.
const OVERVIEW_TARGET_MS: f64 = 100.0;
const LIST_TARGET_MS: f64 = 50.0;
/// Rows per page of the console's lists (its `page` counts pages of this size).
const UI_PAGE_SIZE: u64 = 20;
/// Longest wait for the records to stop moving, and the followers to catch up, after the fill.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// Longest a page may take before it counts as a transport error.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// `/tasks?name=` searches for one job of the plan's names (a tenth of the tasks).
const NAME_SEARCHED: &str = "report";

/// What to build and how much to measure.
pub struct Settings {
    pub tasks: u64,
    pub executions: u64,
    pub fire_tasks: u64,
    pub requests: u64,
    pub warmup: u64,
    pub fill_limit: Duration,
}

/// The records once the fast tasks stopped and the followers caught up.
struct Settled {
    settled_s: f64,
    by_status: Vec<(&'static str, u64)>,
    total: u64,
}

/// Runs the whole benchmark on a fresh cluster and returns the Markdown report.
pub async fn run(http: &reqwest::Client, bin: &std::path::Path, s: &Settings) -> Result<String> {
    let plan = Plan::new(s.tasks, s.fire_tasks, 0, s.executions)?;
    let mut c = cronraft::start(bin, 3, &std::env::temp_dir(), http).await?;
    eprintln!("ui: cluster formed, leader {}", c.leader_url);
    let _ok_executor = start_executors(http, &c.leader_url).await?;
    let fill = fill(http, &mut c, &plan, s.executions, s.fill_limit).await?;
    let settled = settle_and_count(http, &mut c).await?;
    let leader = leader_url(http, &c).await?;
    let pages = pages(http, &leader, &plan, settled.total).await?;
    let (rows, notes) = measure_all(http, &mut c, &leader, &pages, s).await?;
    Ok(report(s, &fill, &settled, &rows, &notes))
}

/// Every page on a follower, then on the leader; notes on the cluster and the CPU meanwhile.
async fn measure_all(
    http: &reqwest::Client,
    c: &mut Cluster,
    leader: &str,
    pages: &[(String, Kind)],
    s: &Settings,
) -> Result<(Vec<Row>, Vec<String>)> {
    let follower = c.urls.iter().find(|u| *u != leader).context("no follower")?.clone();
    let nodes = [("follower", follower), ("leader", leader.to_string())];
    let pids: Vec<u32> = c.nodes.iter().map(|p| p.pid).collect();
    let (state0, counters0) = (cronraft::state(http, leader).await, cronraft::counters(http, &c.urls).await);
    let (cpu0, started) = (crate::cpu_now(&pids)?, Instant::now());
    let client = page_client()?;
    let mut rows = Vec::new();
    for (role, url) in &nodes {
        let node = format!("{role} (node {})", c.urls.iter().position(|u| u == url).map_or(0, |p| p + 1));
        for (path, kind) in pages {
            let samples = measure(&client, url, path, s.warmup, s.requests).await;
            let row = summarize(path, &node, *kind, &samples);
            eprintln!("ui: {node} {path}: {}; server {}; {}", row.answers(), row.server_figures(), row.met());
            rows.push(row);
        }
        for n in c.nodes.iter_mut() {
            n.check_alive()?;
        }
    }
    let (cpu1, wall_s) = (crate::cpu_now(&pids)?, started.elapsed().as_secs_f64());
    let (state1, counters1) = (cronraft::state(http, leader).await, cronraft::counters(http, &c.urls).await);
    let mut notes = Vec::new();
    if state0 != state1 {
        notes.push(format!("leadership changed during the measurement: {state0} -> {state1}"));
    }
    notes.extend(cronraft::counter_notes(&counters0, &counters1, 1).into_iter().filter(|n| n.starts_with("snapshot")));
    let (nodes_s, client_s) = (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]);
    let other_s = cpu1[2] - cpu0[2] - nodes_s - client_s;
    notes.push(format!(
        "measurement: {wall_s:.0} s; CPU of the 3 nodes {:.2} cores, of this client {:.2}, of everything else {:.2} (on {} CPUs)",
        nodes_s / wall_s,
        client_s / wall_s,
        other_s / wall_s,
        cpus()
    ));
    Ok((rows, notes))
}

/// Waits for the records to stop moving and the followers to catch up, then counts them.
async fn settle_and_count(http: &reqwest::Client, c: &mut Cluster) -> Result<Settled> {
    let settle_started = Instant::now();
    settle(http, c).await?;
    let settled_s = settle_started.elapsed().as_secs_f64();
    let total = total_any(http, &c.urls).await?;
    let mut by_status = Vec::new();
    for status in ["success", "failed", "missed", "skipped", "timeout", "cancelled", "pending", "running"] {
        by_status.push((status, executions_total(http, &c.urls[0], &format!("&status={status}")).await?));
    }
    eprintln!("ui: {total} records after settling");
    Ok(Settled { settled_s, by_status, total })
}

/// Waits until the total has not moved for 3 s and every node has applied the same index.
async fn settle(http: &reqwest::Client, c: &mut Cluster) -> Result<()> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    let mut last = total_any(http, &c.urls).await?;
    let mut still_since = Instant::now();
    loop {
        run_for(c, Duration::from_millis(500)).await?;
        let now = total_any(http, &c.urls).await?;
        if now != last {
            (last, still_since) = (now, Instant::now());
        }
        let applied = applied_indexes(http, &c.urls).await;
        let caught_up = applied.as_ref().is_some_and(|a| a.windows(2).all(|w| w[0] == w[1]));
        if still_since.elapsed() >= Duration::from_secs(3) && caught_up {
            return Ok(());
        }
        if Instant::now() > deadline {
            eprintln!("ui: not settled within {SETTLE_LIMIT:?} (total still moving or applied indexes {applied:?}); measuring anyway");
            return Ok(());
        }
    }
}

/// Every node's applied index, from one cluster view (None if a node did not answer).
async fn applied_indexes(http: &reqwest::Client, urls: &[String]) -> Option<Vec<u64>> {
    for url in urls {
        if let Ok(view) = cronraft::cluster_view(http, url).await {
            return view.nodes.iter().map(|n| n.applied_index).collect();
        }
    }
    None
}

/// Which target a page is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Overview,
    List,
    /// A detail page, `/executors` or `/cluster`: no target of its own in the issue; held to the
    /// list target.
    Other,
}

impl Kind {
    fn target_ms(self) -> f64 {
        match self {
            Kind::Overview => OVERVIEW_TARGET_MS,
            Kind::List | Kind::Other => LIST_TARGET_MS,
        }
    }

    fn label(self) -> String {
        match self {
            Kind::Overview | Kind::List => format!("≤ {} ms", self.target_ms()),
            Kind::Other => format!("≤ {} ms (list's)", self.target_ms()),
        }
    }
}

/// The pages of the console contract, with real ids and pages that exist at this scale.
async fn pages(http: &reqwest::Client, leader: &str, plan: &Plan, total: u64) -> Result<Vec<(String, Kind)>> {
    // A fast task served by `bench-ok`: hundreds of records, successes with durations.
    let first_ok = (0..plan.tasks()).find(|i| plan.group(*i) == GROUP_OK).context("no task in bench-ok")?;
    let task: Value = get_json(http, &format!("{leader}/api/v1/tasks/{}", Plan::name(first_ok))).await?;
    let task_id = task["id"].as_u64().context("task without an id")?;
    let execution_id = match newest_execution(http, leader, "&status=success").await? {
        Some(id) => id,
        None => newest_execution(http, leader, "").await?.context("no execution at all")?,
    };
    let last_page = |n: u64| n.div_ceil(UI_PAGE_SIZE).max(1);
    let tasks_page = last_page(plan.tasks()).min(250);
    let executions_page = last_page(total).min(1_000);
    let list = |p: String| (p, Kind::List);
    Ok(vec![
        ("/".to_string(), Kind::Overview),
        list("/tasks".into()),
        list(format!("/tasks?page={tasks_page}")),
        list(format!("/tasks?name={NAME_SEARCHED}")),
        list("/tasks?sort=next_fire".into()),
        list("/tasks?status=paused".into()),
        (format!("/tasks/{task_id}"), Kind::Other),
        list("/executions".into()),
        list(format!("/executions?page={executions_page}")),
        // How the console pages: by cursor, here from the middle of the history.
        list(format!("/executions?before={}", execution_id / 2)),
        list(format!("/executions?status=failed&before={}", execution_id / 2)),
        list("/executions?status=failed".into()),
        list(format!("/executions?task={task_id}")),
        (format!("/executions/{execution_id}"), Kind::Other),
        ("/executors".to_string(), Kind::Other),
        ("/cluster".to_string(), Kind::Other),
    ])
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value> {
    let resp = http.get(url).send().await?;
    Ok(resp.error_for_status()?.json().await?)
}

async fn newest_execution(http: &reqwest::Client, url: &str, query: &str) -> Result<Option<u64>> {
    let page = get_json(http, &format!("{url}/api/v1/executions?page_size=1{query}")).await?;
    Ok(page["items"].get(0).and_then(|e| e["id"].as_u64()))
}

/// The pages' client: no redirects (a 303 to `/login` is an answer to report, not to follow), a
/// console cookie (with `--auth`, the session; without, the browser seed of the CSRF token, so
/// no answer carries a `Set-Cookie`).
fn page_client() -> Result<reqwest::Client> {
    let cookie = match cronraft::auth_token() {
        Some(token) => format!("cronraft_session={token}"),
        None => format!("cronraft_browser={}", "0123456789abcdef".repeat(2)),
    };
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::COOKIE, cookie.parse()?);
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .http1_only()
        .timeout(PAGE_TIMEOUT)
        .build()?)
}

/// One GET of a page.
struct Sample {
    /// 0 when no answer came (then `failure` says why).
    status: u16,
    server_ms: Option<f64>,
    client_ms: f64,
    bytes: usize,
    /// API error codes the page shows (`data-code` of its error boxes).
    codes: Vec<String>,
    failure: Option<String>,
}

async fn measure(client: &reqwest::Client, base: &str, path: &str, warmup: u64, requests: u64) -> Vec<Sample> {
    let url = format!("{base}{path}");
    for _ in 0..warmup {
        fetch(client, &url).await;
    }
    let mut samples = Vec::with_capacity(requests as usize);
    for _ in 0..requests {
        samples.push(fetch(client, &url).await);
    }
    samples
}

async fn fetch(client: &reqwest::Client, url: &str) -> Sample {
    let started = Instant::now();
    let failed = |e: reqwest::Error| Sample {
        status: 0,
        server_ms: None,
        client_ms: 0.0,
        bytes: 0,
        codes: Vec::new(),
        failure: Some(if e.is_timeout() { "timeout".into() } else { format!("transport: {e}") }),
    };
    let resp = match client.get(url).send().await {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let status = resp.status().as_u16();
    let server_ms = resp.headers().get("server-timing").and_then(|v| v.to_str().ok()).and_then(render_ms);
    match resp.bytes().await {
        Ok(body) => Sample {
            status,
            server_ms,
            client_ms: started.elapsed().as_secs_f64() * 1_000.0,
            bytes: body.len(),
            codes: error_codes(&String::from_utf8_lossy(&body)),
            failure: None,
        },
        Err(e) => failed(e),
    }
}

/// `render;dur=12.34` → 12.34.
fn render_ms(header: &str) -> Option<f64> {
    header.split(',').find_map(|m| {
        let mut parts = m.trim().split(';');
        (parts.next()? == "render").then_some(())?;
        parts.find_map(|p| p.trim().strip_prefix("dur=")?.parse().ok())
    })
}

/// The distinct `data-code="…"` values of a page (its error summary or error boxes).
fn error_codes(html: &str) -> Vec<String> {
    let mut codes = BTreeSet::new();
    for part in html.split("data-code=\"").skip(1) {
        if let Some(code) = part.split('"').next() {
            codes.insert(code.to_string());
        }
    }
    codes.into_iter().collect()
}

/// One page on one node.
struct Row {
    path: String,
    node: String,
    kind: Kind,
    /// 200 answers (timed).
    ok: usize,
    /// Other answers by kind (`HTTP 400 invalid_query`, `timeout`, …).
    errors: BTreeMap<String, usize>,
    /// Codes of API errors shown in place on 200 answers.
    partial: BTreeSet<String>,
    server_ms: Option<[f64; 3]>,
    client_ms: Option<[f64; 3]>,
    /// Median size of the 200 answers.
    kib: f64,
}

fn summarize(path: &str, node: &str, kind: Kind, samples: &[Sample]) -> Row {
    let mut errors = BTreeMap::new();
    let mut partial = BTreeSet::new();
    let (mut server, mut client, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    for s in samples {
        if s.status != 200 {
            let what = match (&s.failure, s.codes.first()) {
                (Some(f), _) => f.clone(),
                (None, Some(code)) => format!("HTTP {} `{code}`", s.status),
                (None, None) => format!("HTTP {}", s.status),
            };
            *errors.entry(what).or_insert(0) += 1;
            continue;
        }
        partial.extend(s.codes.iter().cloned());
        server.extend(s.server_ms);
        client.push(s.client_ms);
        sizes.push(s.bytes as f64 / 1024.0);
    }
    Row {
        path: path.to_string(),
        node: node.to_string(),
        kind,
        ok: client.len(),
        errors,
        partial,
        server_ms: p50_p99_max(&mut server),
        client_ms: p50_p99_max(&mut client),
        kib: p50_p99_max(&mut sizes).map_or(0.0, |q| q[0]),
    }
}

/// Nearest-rank p50, p99 and the max.
fn p50_p99_max(values: &mut [f64]) -> Option<[f64; 3]> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    Some([rank(0.50), rank(0.99), values[values.len() - 1]])
}

fn figures(q: Option<[f64; 3]>) -> String {
    q.map_or("—".into(), |[p50, p99, max]| format!("{p50:.1} / {p99:.1} / {max:.1}"))
}

impl Row {
    fn answers(&self) -> String {
        let mut parts = Vec::new();
        if self.ok > 0 {
            parts.push(format!("200 × {}", self.ok));
        }
        parts.extend(self.errors.iter().map(|(what, n)| format!("{what} × {n}")));
        if !self.partial.is_empty() {
            let codes: Vec<String> = self.partial.iter().map(|c| format!("`{c}`")).collect();
            parts.push(format!("errors shown in place: {}", codes.join(", ")));
        }
        parts.join("; ")
    }

    fn server_figures(&self) -> String {
        figures(self.server_ms)
    }

    fn met(&self) -> String {
        match self.server_ms {
            _ if self.ok == 0 => "error".into(),
            _ if !self.errors.is_empty() => "**no** (errors)".into(),
            _ if !self.partial.is_empty() => "— (partial page)".into(),
            None => "— (no Server-Timing)".into(),
            Some([_, p99, _]) if p99 <= self.kind.target_ms() => "yes".into(),
            Some(_) => "**no**".into(),
        }
    }
}

/// The whole report: settings, the fill, the table, notes.
fn report(s: &Settings, fill: &Fill, settled: &Settled, rows: &[Row], notes: &[String]) -> String {
    let mut out = format!(
        "## cronraft-bench ui\n\n3 nodes and this client on one machine ({} CPUs). {} tasks, {} of them firing every \
         second during the fill; target {} execution records. Each page: {} sequential GETs after {} warm-up, on a \
         follower, then on the leader.\n\n",
        cpus(),
        s.tasks,
        s.fire_tasks,
        s.executions,
        s.requests,
        s.warmup
    );
    let by_status: Vec<String> =
        settled.by_status.iter().filter(|(_, n)| *n > 0).map(|(status, n)| format!("{status} {n}")).collect();
    out.push_str(&format!(
        "Fill: {} tasks created in {:.1} s, {} idle ones paused; {} records in {:.0} s ({:.0}/s){}; the {} fast tasks \
         paused in {:.1} s; settled in {:.1} s. Measured with {} records ({}).\n\n",
        s.tasks,
        fill.created_s,
        fill.idle_paused,
        fill.reached,
        fill.filled_s,
        fill.reached as f64 / fill.filled_s.max(0.001),
        if fill.deadline_hit { " — **the fill deadline passed before the target**" } else { "" },
        s.fire_tasks,
        fill.fast_paused_s,
        settled.settled_s,
        settled.total,
        by_status.join(", ")
    ));
    out.push_str(
        "| page | node | answers | server ms p50 / p99 / max | client ms p50 / p99 / max | KiB | target (server p99) | met |\n\
         |---|---|---|---:|---:|---:|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |\n",
            r.path,
            r.node,
            r.answers(),
            r.server_figures(),
            figures(r.client_ms),
            if r.ok > 0 { format!("{:.1}", r.kib) } else { "—".into() },
            r.kind.label(),
            r.met()
        ));
    }
    let judged: Vec<&Row> = rows.iter().filter(|r| matches!(r.met().as_str(), "yes" | "**no**")).collect();
    let met = judged.iter().filter(|r| r.met() == "yes").count();
    let errors = rows.iter().filter(|r| r.ok == 0 || !r.errors.is_empty()).count();
    let partial = rows.iter().filter(|r| r.met().starts_with("— (partial")).count();
    out.push_str(&format!(
        "\n{met} of {} judged rows meet their target; {errors} rows answered errors, {partial} rendered partial pages \
         (not judged).\n\nServer = the node's `Server-Timing: render;dur=` (the handler's whole time); client = send \
         to the end of the body here. The issue's targets are for list pages (50 ms) and the overview (100 ms); \
         detail pages, `/executors` and `/cluster` are held to the list target.\n",
        judged.len()
    ));
    if !notes.is_empty() {
        out.push_str("\nNotes:\n\n");
        for n in notes {
            out.push_str(&format!("- {n}\n"));
        }
    }
    out
}

pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
}
