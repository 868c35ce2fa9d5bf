//! Scheduling benchmarks (fire lag and fire throughput) against a 3-node cluster:
//!
//! - `spread`: N tasks every second, phases spread over the second (`@every 1s offset …`);
//!   fire lag (commit of the fire − slot) as the leader measures it.
//! - `burst`: N tasks whose one slot is the same instant; how long until all are committed.
//! - `sustained`: N tasks every second for D seconds; lag over time, missed and duplicated slots.
//! - `failover`: tasks every second, `kill -9` of the leader; how late the gap's slots fire.
//! - `memory`: RSS per task per node with N idle tasks, and the idle cluster's CPU.
//!
//! The leader reports fire lag on `GET /api/v1/scheduler/status` (exact percentiles over its last
//! 10,000 fires) and `/metrics` (`cronraft_fire_lag_seconds`, a histogram over all fires).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::child::total_cpu_seconds;
use crate::cronraft::Cluster;
use crate::load::{run_level, Workload};

/// Concurrent clients used to create tasks.
const CREATE_CLIENTS: usize = 64;

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct LagSummary {
    pub samples: u64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SchedulerStatus {
    leader_id: Option<u64>,
    pub(crate) term: u64,
    pub(crate) scheduler_running: bool,
    fire_lag: LagSummary,
    /// The same slots to the leader's apply (after the commit; older servers lack it).
    #[serde(default)]
    fire_applied_lag: LagSummary,
}

#[derive(Debug, Deserialize)]
struct PageTotal {
    total: u64,
}

#[derive(Debug, Deserialize)]
struct ExecutionItem {
    id: u64,
    scheduled_time: chrono::DateTime<chrono::Utc>,
    status: String,
    /// Slots this record accounts for: more than 1 for a `missed` record of a misfired span,
    /// which ends at `scheduled_time`.
    #[serde(default = "one")]
    slot_count: u64,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
struct ExecutionPage {
    items: Vec<ExecutionItem>,
}

/// One line of the report.
pub struct Line {
    pub scenario: String,
    pub figures: String,
    pub target: String,
    pub met: Option<bool>,
}

impl Line {
    pub fn new(scenario: impl Into<String>, figures: String, target: &str, met: Option<bool>) -> Line {
        Line { scenario: scenario.into(), figures, target: target.into(), met }
    }
}

/// Renders the lines as a Markdown table.
pub fn table(lines: &[Line]) -> String {
    let mut out = String::from("| scenario | measured | target | met |\n|---|---|---|---|\n");
    for l in lines {
        let met = match l.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        out.push_str(&format!("| {} | {} | {} | {} |\n", l.scenario, l.figures, l.target, met));
    }
    out
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Creates `n` tasks named `<prefix>-<i>` with `expression(i)`, 64 clients at a time.
pub(crate) async fn create_tasks(
    http: &reqwest::Client,
    leader: &str,
    prefix: &str,
    n: u64,
    expression: Arc<dyn Fn(u64) -> String + Send + Sync>,
) -> Result<Duration> {
    let prefix = prefix.to_string();
    let body = Arc::new(move |_tag: &str, i: u64| {
        // A group nobody serves, no retries: each run is dispatched once, recorded
        // `no_healthy_executor` and ends `failed` — the scheduler's cost plus dispatch's, no more.
        serde_json::json!({"name": format!("{prefix}-{i}"), "cron_expression": expression(i),
                           "executor": "bench-none", "max_retry": 0})
        .to_string()
    });
    let work = Workload { url: format!("{leader}/api/v1/tasks"), ok_status: 201, body };
    let started = Instant::now();
    let r = run_level(http, &work, "create", CREATE_CLIENTS, n, Duration::from_secs(1_800)).await;
    if r.error_count() > 0 {
        bail!("{} task creations failed: {:?} ({:?})", r.error_count(), r.errors, r.error_sample);
    }
    Ok(started.elapsed())
}

pub(crate) async fn status(http: &reqwest::Client, url: &str) -> Result<SchedulerStatus> {
    let resp = http.get(format!("{url}/api/v1/scheduler/status")).send().await?;
    Ok(resp.error_for_status()?.json().await?)
}

/// The base URL of the node whose scheduler runs.
pub async fn leader_url(http: &reqwest::Client, c: &Cluster) -> Result<String> {
    for url in &c.urls {
        if let Ok(s) = status(http, url).await {
            if s.scheduler_running {
                return Ok(url.clone());
            }
        }
    }
    bail!("no node runs the scheduler")
}

/// The leader's fire-lag histogram (commit of the fire − slot) and applied-lag histogram (its
/// apply − slot).
pub(crate) const FIRE_LAG: &str = "cronraft_fire_lag_seconds";
const APPLIED_LAG: &str = "cronraft_fire_applied_lag_seconds";

/// `cronraft_fire_lag_seconds` histogram: (upper bound in ms, cumulative count), and the count.
pub(crate) async fn lag_histogram(http: &reqwest::Client, url: &str) -> Result<(Vec<(f64, u64)>, u64)> {
    let text = http.get(format!("{url}/metrics")).send().await?.text().await?;
    parse_histogram(&text, FIRE_LAG)
}

/// The node's fire-lag and applied-lag buckets, from one read of `/metrics`.
async fn both_lag_histograms(http: &reqwest::Client, url: &str) -> Result<(Vec<(f64, u64)>, Vec<(f64, u64)>)> {
    let text = http.get(format!("{url}/metrics")).send().await?.text().await?;
    Ok((parse_histogram(&text, FIRE_LAG)?.0, parse_histogram(&text, APPLIED_LAG)?.0))
}

/// The buckets (bound in ms, cumulative count) and the count of one histogram in a `/metrics` text
/// (read by the test kit's `/metrics` reader).
pub(crate) fn parse_histogram(text: &str, name: &str) -> Result<(Vec<(f64, u64)>, u64)> {
    let h = cronraft_testkit::metrics::Metrics::parse(text).histogram(name)?;
    Ok((h.buckets.into_iter().map(|(bound_s, n)| (bound_s * 1000.0, n)).collect(), h.count))
}

/// Fires between two histograms whose lag was above `bound_ms` (a bucket bound).
pub(crate) fn count_above(before: &[(f64, u64)], after: &[(f64, u64)], bound_ms: f64) -> u64 {
    let delta = |h: &[(f64, u64)], b: f64| h.iter().find(|(x, _)| *x >= b).map_or(0, |(_, n)| *n);
    let total = |h: &[(f64, u64)]| h.last().map_or(0, |(_, n)| *n);
    (total(after) - total(before)).saturating_sub(delta(after, bound_ms) - delta(before, bound_ms))
}

/// The smallest bucket bound under which at least `q` of the fires between two histograms fell.
pub(crate) fn bucket_quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> f64 {
    let total = after.last().map(|b| b.1).unwrap_or(0) - before.last().map(|b| b.1).unwrap_or(0);
    for (i, (bound, n)) in after.iter().enumerate() {
        let delta = n - before.get(i).map(|b| b.1).unwrap_or(0);
        if total > 0 && delta as f64 >= q * total as f64 {
            return *bound;
        }
    }
    f64::INFINITY
}

pub async fn executions_total(http: &reqwest::Client, url: &str, query: &str) -> Result<u64> {
    let resp = http.get(format!("{url}/api/v1/executions?page_size=1&consistency=local{query}")).send().await?;
    Ok(resp.error_for_status()?.json::<PageTotal>().await?.total)
}

/// Slots of `task` recorded more than once, and gaps between consecutive recorded slots.
async fn slot_faults(http: &reqwest::Client, url: &str, task: &str, period_ms: i64) -> Result<(u64, u64)> {
    // Distinct execution ids per slot: the task keeps firing while its pages are read (newest
    // first), so a record can show up on two pages; that is the same execution, not a duplicate.
    let mut slots: BTreeMap<i64, BTreeMap<u64, String>> = BTreeMap::new();
    for page in 1.. {
        let q = format!("{url}/api/v1/executions?task_id={task}&page={page}&page_size=500&consistency=local");
        let p: ExecutionPage = http.get(q).send().await?.error_for_status()?.json().await?;
        let n = p.items.len();
        for e in p.items {
            // A span record covers `slot_count` slots ending at its scheduled time.
            let last = e.scheduled_time.timestamp_millis();
            for k in 0..e.slot_count.clamp(1, 100_000) as i64 {
                slots.entry(last - k * period_ms).or_default().insert(e.id, e.status.clone());
            }
        }
        if n < 500 {
            break;
        }
    }
    let mut dupes = 0;
    for (slot, ids) in slots.iter().filter(|(_, ids)| ids.len() > 1) {
        dupes += 1;
        eprintln!("{task}: slot {slot} has {} executions: {ids:?}", ids.len());
    }
    let keys: Vec<i64> = slots.keys().copied().collect();
    let mut gaps = 0;
    for w in keys.windows(2).filter(|w| w[1] - w[0] != period_ms) {
        gaps += 1;
        eprintln!("{task}: no record between slots {} and {} ({} ms apart)", w[0], w[1], w[1] - w[0]);
    }
    Ok((dupes, gaps))
}

/// Waits `d` while checking the nodes are alive.
pub async fn run_for(c: &mut Cluster, d: Duration) -> Result<()> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        for n in c.nodes.iter_mut() {
            n.check_alive()?;
        }
        tokio::time::sleep(Duration::from_millis(200).min(until.saturating_duration_since(Instant::now()))).await;
    }
    Ok(())
}

/// `n` tasks every second, phases spread evenly over the second.
pub(crate) fn spread_expression(n: u64) -> Arc<dyn Fn(u64) -> String + Send + Sync> {
    Arc::new(move |i| format!("@every 1s offset {}ms", i * 1000 / n))
}

pub async fn spread(http: &reqwest::Client, c: &mut Cluster, n: u64, seconds: u64) -> Result<Line> {
    let leader = leader_url(http, c).await?;
    let took = create_tasks(http, &leader, "spread", n, spread_expression(n)).await?;
    run_for(c, Duration::from_secs(5)).await?; // settle
    let (before, count0) = lag_histogram(http, &leader).await?;
    run_for(c, Duration::from_secs(seconds)).await?;
    let (after, count1) = lag_histogram(http, &leader).await?;
    let st = status(http, &leader).await?;
    let (s, a) = (st.fire_lag, st.fire_applied_lag);
    let p99_bucket = bucket_quantile(&before, &after, 0.99);
    let met = s.p50_ms <= 5 && s.p99_ms <= 20 && s.max_ms <= 100;
    let figures = format!(
        "{} fires in {seconds} s; last {} fires: p50 {} ms, p99 {} ms, max {} ms (applied on the leader: p50 {} ms, p99 {} ms, max {} ms); whole run p99 ≤ {} ms (bucket); {n} tasks created in {:.1} s",
        count1 - count0, s.samples, s.p50_ms, s.p99_ms, s.max_ms, a.p50_ms, a.p99_ms, a.max_ms, p99_bucket, took.as_secs_f64()
    );
    Ok(Line::new(
        format!("{n} tasks every second, spread"),
        figures,
        "p50 ≤ 5 ms, p99 ≤ 20 ms, max ≤ 100 ms",
        Some(met),
    ))
}

pub async fn burst(http: &reqwest::Client, c: &mut Cluster, n: u64, limit_ms: u64) -> Result<Line> {
    let leader = leader_url(http, c).await?;
    // One slot for every task, far enough ahead for the creations to finish (≥ 800 writes/s).
    let slot_ms = now_ms() + (n as i64 / 800 + 20) * 1000;
    let slot_ms = slot_ms - slot_ms % 1000;
    let of_day = slot_ms.rem_euclid(86_400_000);
    let expression: Arc<dyn Fn(u64) -> String + Send + Sync> =
        Arc::new(move |_| format!("@every 1d offset {of_day}ms"));
    let prefix = format!("burst{n}");
    let took = create_tasks(http, &leader, &prefix, n, expression).await?;
    if now_ms() > slot_ms - 2_000 {
        bail!("creating {n} tasks took {took:?}, past the slot; retry on a quieter machine");
    }
    // Creating 100,000 tasks on a loaded machine can move the leadership: measure the node that
    // leads when the burst comes.
    let leader = leader_url(http, c).await?;
    let (before, count0) = lag_histogram(http, &leader).await?;
    let term0 = status(http, &leader).await?.term;
    let wait = (slot_ms - now_ms()).max(0) as u64 + limit_ms * 3 + 5_000;
    run_for(c, Duration::from_millis(wait)).await?;
    let (after, count1) = lag_histogram(http, &leader).await?;
    let st = status(http, &leader).await?;
    // The figures are the first leader's own: if another node led for part of the burst, it
    // fired some slots, and this node's histogram cannot say when. Say so rather than count.
    if !st.scheduler_running || st.term != term0 {
        let now_leader = leader_url(http, c).await.unwrap_or_else(|_| "none".into());
        let figures = format!(
            "the leader changed during the burst (term {term0} → {}, now {now_leader}); {} of {n} slots committed by the first leader, the rest not measured",
            st.term,
            count1 - count0
        );
        return Ok(Line::new(
            format!("{n} tasks due in the same second"),
            figures,
            &format!("all within {} s", limit_ms / 1000),
            Some(false),
        ));
    }
    let (s, a) = (st.fire_lag, st.fire_applied_lag);
    let fired = count1 - count0;
    // The exact max is over the leader's last 10,000 fires (the burst's last entries, which
    // commit last); the histogram bounds every fire of the burst, to its bucket.
    let all_within = bucket_quantile(&before, &after, 1.0);
    let met = fired == n && s.max_ms <= limit_ms && all_within <= limit_ms as f64;
    let figures = format!(
        "{fired} of {n} slots committed; the last {} ms after the slot (p50 of the last 10,000: {} ms; every one within the ≤ {all_within} ms bucket); applied on the leader: the last {} ms after the slot",
        s.max_ms, s.p50_ms, a.max_ms
    );
    Ok(Line::new(
        format!("{n} tasks due in the same second"),
        figures,
        &format!("all within {} s", limit_ms / 1000),
        Some(met),
    ))
}

pub async fn sustained(http: &reqwest::Client, c: &mut Cluster, n: u64, seconds: u64) -> Result<Line> {
    let mut leader = leader_url(http, c).await?;
    let first_leader = leader.clone();
    create_tasks(http, &leader, "sustained", n, spread_expression(n)).await?;
    run_for(c, Duration::from_secs(5)).await?;
    let pids: Vec<u32> = c.nodes.iter().map(|p| p.pid).collect();
    let cpu0 = total_cpu_seconds(&pids)?;
    let (before, _) = lag_histogram(http, &leader).await?;
    // Fires are counted from the replicated records, not the leader's own counter, which a
    // leader change would reset.
    let records0 = executions_total(http, &leader, "").await?;
    let started = Instant::now();
    // Each window's figures come from the difference of the leader's histograms (every fire of
    // the window, in buckets), not from its recent-lag summary, which holds only the last 10,000
    // fires: two seconds at 5,000 fires a second.
    let mut worst_p99 = 0.0f64;
    let mut worst_max = 0.0f64;
    let mut worst_applied_p99 = 0.0f64;
    let mut over_50_ms = 0;
    let mut window_start = both_lag_histograms(http, &leader).await?;
    let term0 = status(http, &leader).await?.term;
    let mut term_seen = term0;
    // Elections, counted by the term moving (the same node may win again).
    let mut elections = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        run_for(c, Duration::from_secs(10).min(Duration::from_secs(seconds).saturating_sub(started.elapsed()))).await?;
        let mut st = status(http, &leader).await?;
        if !st.scheduler_running {
            // The new leader's histograms start from its own zero: this window is not counted.
            leader = leader_url(http, c).await?;
            st = status(http, &leader).await?;
            eprintln!("{:.0} s: the leader changed (now {leader})", started.elapsed().as_secs_f64());
            window_start = both_lag_histograms(http, &leader).await?;
        }
        if st.term != term_seen {
            elections += 1;
            eprintln!("{:.0} s: term {term_seen} → {}", started.elapsed().as_secs_f64(), st.term);
            term_seen = st.term;
        }
        let now = both_lag_histograms(http, &leader).await?;
        let (p99, max) =
            (bucket_quantile(&window_start.0, &now.0, 0.99), bucket_quantile(&window_start.0, &now.0, 1.0));
        let applied_p99 = bucket_quantile(&window_start.1, &now.1, 0.99);
        let above = count_above(&window_start.0, &now.0, 50.0);
        eprintln!(
            "{:>4.0} s: window p99 ≤ {p99} ms, max ≤ {max} ms, {above} fires above 50 ms (applied: p99 ≤ {applied_p99} ms), term {}",
            started.elapsed().as_secs_f64(),
            st.term
        );
        worst_p99 = worst_p99.max(p99);
        worst_max = worst_max.max(max);
        worst_applied_p99 = worst_applied_p99.max(applied_p99);
        over_50_ms += above;
        window_start = now;
    }

    let wall = started.elapsed().as_secs_f64();
    let (after, _) = lag_histogram(http, &leader).await?;
    let cpu = total_cpu_seconds(&pids)? - cpu0;
    let fires = executions_total(http, &leader, "").await? - records0;
    let missed = executions_total(http, &leader, "&status=missed").await?;
    let (mut dupes, mut gaps) = (0, 0);
    for i in (0..n).step_by((n as usize / 20).max(1)) {
        let (d, g) = slot_faults(http, &leader, &format!("sustained-{i}"), 1_000).await?;
        dupes += d;
        gaps += g;
    }
    let rate = fires as f64 / wall;
    // The whole-run histogram is one node's: only meaningful if that node led throughout.
    let same_leader = leader == first_leader;
    let p99_bucket = same_leader.then(|| bucket_quantile(&before, &after, 0.99));
    let met = rate >= 5_000.0 * 0.99 && p99_bucket.is_some_and(|p| p <= 50.0) && missed == 0 && dupes == 0 && gaps == 0;
    let p99_bucket = p99_bucket.map_or("n/a (the leader changed)".to_string(), |p| format!("≤ {p} ms"));
    let figures = format!(
        "{fires} records in {wall:.0} s = {rate:.0}/s; p99 (whole run, bucket) {p99_bucket}; {over_50_ms} fires above 50 ms; worst 10 s window: p99 ≤ {worst_p99} ms, max ≤ {worst_max} ms (applied on the leader: p99 ≤ {worst_applied_p99} ms); missed {missed}; 20 sampled tasks: {dupes} duplicated, {gaps} gaps; term {term0} → {term_seen} ({elections} term changes seen); 3 nodes used {:.2} cores",
        cpu / wall
    );
    Ok(Line::new(
        format!("{n} tasks every second for {seconds} s"),
        figures,
        "≥ 5,000 fires/s, p99 ≤ 50 ms, 0 missed, 0 duplicated",
        Some(met),
    ))
}

pub async fn failover(http: &reqwest::Client, c: &mut Cluster, n: u64) -> Result<Line> {
    let leader = leader_url(http, c).await?;
    create_tasks(http, &leader, "failover", n, spread_expression(n)).await?;
    run_for(c, Duration::from_secs(5)).await?;
    let status0 = status(http, &leader).await?;
    let old = status0.leader_id.context("no leader")?;
    let idx = c.urls.iter().position(|u| *u == leader).context("leader not among nodes")?;
    let killed_at = Instant::now();
    let dead_url = c.urls.remove(idx);
    drop(c.nodes.remove(idx)); // SIGKILL (Proc kills on drop)
    let mut new_leader = None;
    while killed_at.elapsed() < Duration::from_secs(30) && new_leader.is_none() {
        new_leader = leader_url(http, c).await.ok();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new_leader = new_leader.context("no new leader within 30 s")?;
    let elected = killed_at.elapsed();
    run_for(c, Duration::from_secs(8)).await?;
    // The new leader's lag samples start with the slots of the gap.
    let s = status(http, &new_leader).await?.fire_lag;
    let missed = executions_total(http, &new_leader, "&status=missed").await?;
    let (mut dupes, mut gaps) = (0, 0);
    for i in 0..n {
        let (d, g) = slot_faults(http, &new_leader, &format!("failover-{i}"), 1_000).await?;
        dupes += d;
        gaps += g;
    }
    let met = s.max_ms <= 1_500 && missed == 0 && dupes == 0 && gaps == 0;
    let figures = format!(
        "node {old} ({dead_url}) killed; new scheduler after {:.2} s; worst slot {} ms late (p50 {} ms over the new leader's first {} fires); missed {missed}; duplicated {dupes}; gaps {gaps} ({n} tasks checked)",
        elected.as_secs_f64(), s.max_ms, s.p50_ms, s.samples
    );
    Ok(Line::new("leader `kill -9`, tasks every second", figures, "≤ 1.5 s late, 0 duplicated, 0 missed", Some(met)))
}

fn rss_bytes(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = text.lines().find_map(|l| l.strip_prefix("VmRSS:")).context("VmRSS")?;
    Ok(kb.trim().trim_end_matches("kB").trim().parse::<u64>()? * 1024)
}

pub async fn memory(http: &reqwest::Client, c: &mut Cluster, n: u64, idle_seconds: u64) -> Result<Vec<Line>> {
    let leader = leader_url(http, c).await?;
    let pids: Vec<u32> = c.nodes.iter().map(|p| p.pid).collect();
    let rss0: Vec<u64> = pids.iter().map(|p| rss_bytes(*p)).collect::<Result<_>>()?;
    // Tasks that never fire during the run (midnight, January 1st).
    let never: Arc<dyn Fn(u64) -> String + Send + Sync> = Arc::new(|_| "0 0 0 1 1 *".into());
    let took = create_tasks(http, &leader, "mem", n, never).await?;
    run_for(c, Duration::from_secs(5)).await?;
    let rss1: Vec<u64> = pids.iter().map(|p| rss_bytes(*p)).collect::<Result<_>>()?;
    let per_task: Vec<f64> = rss0.iter().zip(&rss1).map(|(a, b)| (*b as f64 - *a as f64) / n as f64).collect();
    let worst = per_task.iter().cloned().fold(0.0, f64::max);
    let mem = Line::new(
        format!("memory with {n} tasks"),
        format!(
            "RSS per task per node: {} bytes (RSS {} MiB → {} MiB); {n} tasks created in {:.1} s",
            per_task.iter().map(|b| format!("{b:.0}")).collect::<Vec<_>>().join(" / "),
            rss0.iter().map(|b| (b >> 20).to_string()).collect::<Vec<_>>().join("/"),
            rss1.iter().map(|b| (b >> 20).to_string()).collect::<Vec<_>>().join("/"),
            took.as_secs_f64()
        ),
        "≤ 1 KiB per task per node",
        Some(worst <= 1024.0),
    );
    let cpu0: Vec<f64> = pids.iter().map(|p| total_cpu_seconds(&[*p])).collect::<Result<_>>()?;
    let started = Instant::now();
    run_for(c, Duration::from_secs(idle_seconds)).await?;
    let wall = started.elapsed().as_secs_f64();
    let cpu: Vec<f64> =
        pids.iter().zip(&cpu0).map(|(p, c0)| Ok(total_cpu_seconds(&[*p])? - c0)).collect::<Result<_>>()?;
    let pct: Vec<f64> = cpu.iter().map(|c| 100.0 * c / wall).collect();
    let idle = Line::new(
        format!("idle cluster with {n} tasks"),
        format!(
            "CPU per node over {wall:.0} s: {} % of one core",
            pct.iter().map(|p| format!("{p:.1}")).collect::<Vec<_>>().join(" / ")
        ),
        "≤ 5 % of one core",
        Some(pct.iter().all(|p| *p <= 5.0)),
    );
    Ok(vec![mem, idle])
}
