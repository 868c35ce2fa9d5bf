//! The fill shared by the `ui` and `backup` benchmarks: a cluster brought to scale through the
//! real API and the real scheduler, as a node gets there in production.
//!
//! A [`Plan`] names every task by index: `--tasks` of them, varied names, executor groups,
//! execution modes, time zones and schedules (daily, weekly, monthly, every 6 hours; one idle
//! task in ten paused), and `fire_tasks` of them, spread through the index range, firing every
//! second with phases spread over the second. [`fill`] creates them (64 clients), lets the fast
//! ones fire until the cluster holds the asked-for execution records, then pauses every fast
//! task but the plan's `load_tasks` (0 for `ui`, which wants a still cluster; `--load-tasks` for
//! `backup`, which wants fires to go on).
//!
//! Nine fast tasks in ten go to `bench-none`, a group nobody serves (the run is recorded `failed`,
//! `no_healthy_executor`, in its fire entry, as in `schedule.rs`); one in ten, among all the fast
//! tasks and among those left firing, goes to `bench-ok`, served by the recording executor of
//! `dispatch.rs` inside the benchmark ([`start_executors`], `success` by callback). Four dead
//! executor instances give the idle groups something to be unhealthy with.
//!
//! Why here and not in `ui.rs`: two benchmarks fill the same way, and a change to the fill (a
//! new index, another mix) should move both.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use axum::routing::{get, post};
use axum::Router;
use futures::stream::{self, StreamExt};
use serde_json::json;

use crate::cronraft::Cluster;
use crate::dispatch;
use crate::load::{run_level, Workload};
use crate::schedule::{executions_total, run_for};

/// The cluster's default `retention.per_task_max`: a fast task past it loses its oldest records,
/// so the fill must ask for fewer per fast task than this (with a margin).
const RECORDS_PER_TASK_MAX: u64 = 10_000;
/// Concurrent clients creating tasks, and sending the other writes (pauses).
const CREATE_CLIENTS: usize = 64;
const WRITE_CLIENTS: usize = 32;
/// How often the fill's progress is polled and printed.
const FILL_POLL: Duration = Duration::from_secs(5);

/// Tries of one pause: a leader change answers 503 for a moment, and so does a node over its
/// in-flight limit (`overloaded`) while the fill's 5,000 fires a second go on (one backup run
/// lost its fill to 471 pauses refused five times in a row, 5 s of backoff).
const WRITE_TRIES: u32 = 15;
/// The longest wait between two tries: 15 tries wait about 35 s in all.
const WRITE_BACKOFF_MAX: Duration = Duration::from_secs(3);
/// Passes over the pauses still refused (a node stays `overloaded` for minutes under the fill's
/// fires; a pass later, with fewer pauses in flight, they go through).
const PAUSE_PASSES: u32 = 5;

/// Names are `<team>-<job>-<index>`; `/tasks?name=` searches for one job (a tenth of the tasks).
const TEAMS: [&str; 8] = ["billing", "search", "ads", "infra", "data", "mobile", "payments", "ml"];
const JOBS: [&str; 10] =
    ["report", "sync", "cleanup", "backup", "export", "reindex", "digest", "rollup", "rotate", "warm"];
const ZONES: [&str; 8] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Europe/London",
];
const MODES: [&str; 4] = ["parallel", "sequential", "skip", "replace"];
/// Groups of the idle tasks: three have dead instances, two have none (`local`: the nodes run
/// `--no-agent`).
const IDLE_GROUPS: [&str; 5] = ["etl", "web", "reports", "batch", "local"];
/// Dead instances registered (group, instance id).
const DEAD_EXECUTORS: [(&str, &str); 4] =
    [("etl", "etl-1"), ("etl", "etl-2"), ("web", "web-1"), ("reports", "reports-1")];
/// The fast tasks' groups: one nobody serves, one served by the recording executor.
const GROUP_NONE: &str = "bench-none";
pub(crate) const GROUP_OK: &str = "bench-ok";

/// What a task is for in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Fires every second until the fill is done; the `k`-th of the fast tasks.
    Fast(u64),
    Idle,
    /// Idle and paused from the start.
    Paused,
}

/// The tasks of the run, by index.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    tasks: u64,
    fire_tasks: u64,
    /// Fast tasks left firing once the fill is done (0: all are paused).
    load_tasks: u64,
}

impl Plan {
    /// Checks the counts: `fire_tasks` within `1..=tasks`, `load_tasks` within `0..=fire_tasks`,
    /// and no more records asked of each fast task than retention keeps (with a margin).
    pub(crate) fn new(tasks: u64, fire_tasks: u64, load_tasks: u64, executions: u64) -> Result<Plan> {
        if tasks == 0 || fire_tasks == 0 || fire_tasks > tasks {
            bail!("the fast tasks must be 1 to the tasks ({tasks}), got {fire_tasks}");
        }
        if load_tasks > fire_tasks {
            bail!("the tasks left firing ({load_tasks}) must be at most the fast tasks ({fire_tasks})");
        }
        // Retention keeps 10,000 records per task: past that the total stops growing.
        if executions > fire_tasks * RECORDS_PER_TASK_MAX * 8 / 10 {
            bail!(
                "{executions} records from {fire_tasks} fast tasks is more than 8,000 each (retention keeps 10,000 per \
                 task); raise the fast tasks"
            );
        }
        Ok(Plan { tasks, fire_tasks, load_tasks })
    }

    pub(crate) fn tasks(&self) -> u64 {
        self.tasks
    }

    pub(crate) fn fire_tasks(&self) -> u64 {
        self.fire_tasks
    }

    /// `fire_tasks` indices spread evenly through `0..tasks` are fast; one idle task in ten is
    /// paused (counted among the idle ones, so the share holds whatever `fire_tasks` is).
    fn role(&self, i: u64) -> Role {
        // `before` fast tasks have an index below `i`.
        let (before, after) = (i * self.fire_tasks / self.tasks, (i + 1) * self.fire_tasks / self.tasks);
        if after > before {
            Role::Fast(before)
        } else if (i - before) % 10 == 7 {
            Role::Paused
        } else {
            Role::Idle
        }
    }

    /// The `j`-th of the tasks left firing, if the `k`-th fast task is one: `load_tasks` of them,
    /// spread evenly through the fast ones (so their phases spread over the second too).
    fn load_index(&self, k: u64) -> Option<u64> {
        let (before, after) = (k * self.load_tasks / self.fire_tasks, (k + 1) * self.load_tasks / self.fire_tasks);
        (after > before).then_some(before)
    }

    pub(crate) fn name(i: u64) -> String {
        format!("{}-{}-{i:05}", TEAMS[(i % 8) as usize], JOBS[((i / 8) % 10) as usize])
    }

    pub(crate) fn group(&self, i: u64) -> &'static str {
        match self.role(i) {
            // One in ten into `bench-ok`, both among those left firing and among the others (the
            // `k`-th fast task has `k × load / fire` of the left-firing ones before it).
            Role::Fast(k) => {
                let rank = self.load_index(k).unwrap_or(k - k * self.load_tasks / self.fire_tasks);
                if rank.is_multiple_of(10) {
                    GROUP_OK
                } else {
                    GROUP_NONE
                }
            }
            _ => IDLE_GROUPS[((i / 3) % 5) as usize],
        }
    }

    fn cron(&self, i: u64) -> String {
        let (minute, hour) = ((i * 7) % 60, (i * 5) % 24);
        match self.role(i) {
            Role::Fast(k) => format!("@every 1s offset {}ms", k * 1000 / self.fire_tasks),
            _ => match i % 5 {
                0 => format!("0 {minute} {hour} * * *"),
                1 => format!("0 {minute} {hour} * * MON-FRI"),
                2 => format!("0 {minute} {hour} {} * *", 1 + i % 28),
                3 => format!("0 {minute} */6 * * *"),
                _ => format!("0 {minute} {hour} * * SAT"),
            },
        }
    }

    fn body(&self, i: u64) -> String {
        let fast = matches!(self.role(i), Role::Fast(_));
        let description = format!(
            "{} job {i} of the render benchmark; {}",
            JOBS[((i / 8) % 10) as usize],
            "·".repeat((i % 40) as usize)
        );
        json!({
            "name": Self::name(i),
            "description": description,
            "cron_expression": self.cron(i),
            "timezone": ZONES[((i / 5) % 8) as usize],
            "execution_mode": MODES[((i / 2) % 4) as usize],
            "executor": self.group(i),
            "max_retry": if fast { 0 } else { i % 4 },
            "timeout_seconds": 60 + (i % 5) * 60,
            "parameters": {"command": format!("run-{}", JOBS[((i / 8) % 10) as usize]), "shard": i % 16},
        })
        .to_string()
    }

    fn names(&self, pick: impl Fn(Role) -> bool) -> Vec<String> {
        (0..self.tasks).filter(|i| pick(self.role(*i))).map(Self::name).collect()
    }
}

/// How the fill went, for the report.
pub(crate) struct Fill {
    pub(crate) created_s: f64,
    pub(crate) idle_paused: usize,
    pub(crate) reached: u64,
    pub(crate) filled_s: f64,
    pub(crate) deadline_hit: bool,
    /// Fast tasks paused once the target was reached (all but the plan's `load_tasks`).
    pub(crate) fast_paused: usize,
    pub(crate) fast_paused_s: f64,
}

/// The recording executor (group `bench-ok`, kept alive by the returned state) and the dead
/// instances; each registered through the API.
pub(crate) async fn start_executors(http: &reqwest::Client, leader: &str) -> Result<Arc<dispatch::Recorder>> {
    let rec = Arc::new(dispatch::Recorder::default());
    let state = Arc::new(dispatch::RecorderState { rec: rec.clone(), http: http.clone() });
    let app = Router::new()
        .route("/execute", post(dispatch::execute))
        .route("/health", get(|| async { "ok" }))
        .with_state(state);
    let url = dispatch::serve(app).await?;
    register(http, leader, GROUP_OK, "bench-ok-1", &url).await?;
    let ports = crate::child::free_ports(DEAD_EXECUTORS.len())?;
    for ((group, id), port) in DEAD_EXECUTORS.iter().zip(ports) {
        register(http, leader, group, id, &format!("http://127.0.0.1:{port}")).await?;
    }
    Ok(rec)
}

async fn register(http: &reqwest::Client, leader: &str, group: &str, id: &str, base_url: &str) -> Result<()> {
    let body = json!({"name": group, "instance_id": id, "base_url": base_url,
                      "metadata": {"capacity": 64, "region": "bench", "version": "ui-bench"}});
    let resp = http.post(format!("{leader}/api/v1/executors/register")).json(&body).send().await?;
    if !resp.status().is_success() {
        bail!("registering {id} answered {}: {}", resp.status(), resp.text().await.unwrap_or_default());
    }
    Ok(())
}

/// Creates the tasks, lets the fast ones fire until `executions` records are there (or `limit`
/// passed), then pauses every fast task but the plan's `load_tasks`.
pub(crate) async fn fill(
    http: &reqwest::Client,
    c: &mut Cluster,
    plan: &Plan,
    executions: u64,
    limit: Duration,
) -> Result<Fill> {
    let leader = c.leader_url.clone();
    let started = Instant::now();
    create_tasks(http, &leader, plan).await?;
    let created_s = started.elapsed().as_secs_f64();
    let idle_paused = plan.names(|r| r == Role::Paused);
    pause_all(http, &c.urls, &idle_paused).await?;
    eprintln!("fill: {} tasks created in {created_s:.1} s; {} idle ones paused", plan.tasks, idle_paused.len());

    let fill_started = Instant::now();
    let deadline = fill_started + limit;
    let mut reached = total_any(http, &c.urls).await?;
    let mut last = (reached, Instant::now());
    while reached < executions && Instant::now() < deadline {
        run_for(c, FILL_POLL.min(deadline.saturating_duration_since(Instant::now()))).await?;
        reached = total_any(http, &c.urls).await.unwrap_or(reached);
        let rate = reached.saturating_sub(last.0) as f64 / last.1.elapsed().as_secs_f64();
        last = (reached, Instant::now());
        eprintln!(
            "fill: {:>5.0} s: {reached} of {executions} records ({rate:.0}/s)",
            fill_started.elapsed().as_secs_f64()
        );
    }
    let filled_s = fill_started.elapsed().as_secs_f64();
    let deadline_hit = reached < executions;

    let paused_started = Instant::now();
    let stopping = plan.names(|r| matches!(r, Role::Fast(k) if plan.load_index(k).is_none()));
    pause_all(http, &c.urls, &stopping).await?;
    let fast_paused_s = paused_started.elapsed().as_secs_f64();
    eprintln!(
        "fill: {reached} records in {filled_s:.0} s; {} fast tasks paused in {fast_paused_s:.1} s, {} left firing",
        stopping.len(),
        plan.load_tasks
    );
    Ok(Fill {
        created_s,
        idle_paused: idle_paused.len(),
        reached,
        filled_s,
        deadline_hit,
        fast_paused: stopping.len(),
        fast_paused_s,
    })
}

async fn create_tasks(http: &reqwest::Client, leader: &str, plan: &Plan) -> Result<()> {
    let shared = Arc::new(plan.clone());
    let body = Arc::new(move |_tag: &str, i: u64| shared.body(i));
    let work = Workload { url: format!("{leader}/api/v1/tasks"), ok_status: 201, body };
    let r = run_level(http, &work, "ui-create", CREATE_CLIENTS, plan.tasks, Duration::from_secs(1_800)).await;
    if r.error_count() > 0 || r.hit_time_limit {
        bail!("{} task creations failed: {:?} ({:?})", r.error_count(), r.errors, r.error_sample);
    }
    Ok(())
}

/// The executions total from the first node that answers.
pub(crate) async fn total_any(http: &reqwest::Client, urls: &[String]) -> Result<u64> {
    let mut last = None;
    for url in urls {
        match executions_total(http, url, "").await {
            Ok(n) => return Ok(n),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no node")))
}

/// Pauses the named tasks, `WRITE_CLIENTS` at a time, through any node (a follower forwards).
async fn pause_all(http: &reqwest::Client, urls: &[String], names: &[String]) -> Result<()> {
    let mut left: Vec<String> = names.to_vec();
    for pass in 1..=PAUSE_PASSES {
        let jobs = left.iter().enumerate().map(|(i, name)| async move {
            let url = format!("{}/api/v1/tasks/{name}/pause", urls[i % urls.len()]);
            post_ok(http, url, format!("ui-bench-pause-{name}")).await.map_err(|e| (name.clone(), e))
        });
        let results: Vec<Result<(), (String, anyhow::Error)>> =
            stream::iter(jobs).buffer_unordered(WRITE_CLIENTS).collect().await;
        let failed: Vec<(String, anyhow::Error)> = results.into_iter().filter_map(Result::err).collect();
        match failed.first() {
            None => return Ok(()),
            Some((_, e)) if pass == PAUSE_PASSES => {
                bail!("{} of {} pauses failed {PAUSE_PASSES} passes; the first: {e:#}", failed.len(), names.len())
            }
            Some(_) => {
                eprintln!("fill: {} of {} pauses refused in pass {pass}; again", failed.len(), left.len());
                left = failed.into_iter().map(|(name, _)| name).collect();
                tokio::time::sleep(WRITE_BACKOFF_MAX).await;
            }
        }
    }
    Ok(())
}

/// A POST that must answer 2xx; retried (same idempotency key) on 5xx and transport errors.
async fn post_ok(http: &reqwest::Client, url: String, key: String) -> Result<()> {
    let mut last = String::new();
    for attempt in 1..=WRITE_TRIES {
        match http.post(&url).header("Idempotency-Key", &key).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status().is_client_error() => {
                bail!("{url} answered {}: {}", r.status(), r.text().await.unwrap_or_default())
            }
            Ok(r) => last = format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep((Duration::from_millis(500) * attempt).min(WRITE_BACKOFF_MAX)).await;
    }
    bail!("{url} failed {WRITE_TRIES} times; the last: {last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast tasks' indices (`k`) and whether each is left firing, in task order.
    fn fast(plan: &Plan) -> Vec<(u64, u64, bool)> {
        (0..plan.tasks)
            .filter_map(|i| match plan.role(i) {
                Role::Fast(k) => Some((i, k, plan.load_index(k).is_some())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_load_is_the_asked_number_of_fast_tasks_spread_and_one_in_ten_served() {
        let plan = Plan::new(100_000, 5_000, 1_000, 1_000_000).unwrap();
        let fast = fast(&plan);
        assert_eq!(fast.len(), 5_000);
        let kept: Vec<u64> = fast.iter().filter(|f| f.2).map(|f| f.1).collect();
        assert_eq!(kept.len(), 1_000);
        // One in five fast tasks, so their phases (k ms × 1000 / 5000) are 5 ms apart.
        assert!(kept.windows(2).all(|w| w[1] - w[0] == 5), "kept: {:?}", &kept[..10]);
        let served = fast.iter().filter(|f| f.2 && plan.group(f.0) == GROUP_OK).count();
        assert_eq!(served, 100, "one in ten of those left firing goes to the recording executor");
        let served_all = fast.iter().filter(|f| plan.group(f.0) == GROUP_OK).count();
        assert_eq!(served_all, 500, "one in ten of all the fast tasks");
    }

    #[test]
    fn without_a_load_every_fast_task_stops_and_the_groups_are_as_before() {
        let plan = Plan::new(10_000, 2_500, 0, 1_000_000).unwrap();
        let fast = fast(&plan);
        assert_eq!(fast.len(), 2_500);
        assert!(fast.iter().all(|f| !f.2));
        assert!(fast.iter().all(|f| (plan.group(f.0) == GROUP_OK) == f.1.is_multiple_of(10)));
    }

    #[test]
    fn impossible_counts_are_refused() {
        assert!(Plan::new(100, 200, 0, 1).is_err(), "more fast tasks than tasks");
        assert!(Plan::new(100, 10, 20, 1).is_err(), "a load above the fast tasks");
        assert!(Plan::new(100, 10, 5, 80_001).is_err(), "more than 8,000 records per fast task");
        assert!(Plan::new(100, 10, 10, 80_000).is_ok());
    }
}
