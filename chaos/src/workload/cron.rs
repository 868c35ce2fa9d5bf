//! The cron workload: real short-interval tasks run by the harness' recording executor, so the
//! schedule guarantees (one execution per slot, fencing, pause cut-off, no overlap, on-schedule
//! slots, liveness after the heal) can be checked against what the executor actually received.
//!
//! Setup registers the executor (group [`GROUP`]) and creates eight tasks, every one with
//! `timeout_seconds` 5 and runs of 1.5 s (the executor's run time; the `sequential` task's 0.5 s,
//! [`SEQ_RUN_MS`], so its queue drains after faults), so `skip` runs would overlap if the node let
//! them, and so would `sequential` ones whenever faults queued its slots:
//!
//! | task | schedule | mode | during the run |
//! |---|---|---|---|
//! | `cron-SEED-par` | every second | `parallel` | never paused |
//! | `cron-SEED-seq` | even seconds | `sequential` (0.5 s runs) | never paused |
//! | `cron-SEED-skip` | every second | `skip` | never paused |
//! | `cron-SEED-pp` | every second | `parallel` | paused and resumed every 2–4 s |
//! | `cron-SEED-del` | every second | `parallel` | deleted halfway through |
//! | `cron-SEED-once` | every second | `parallel`, misfire `fire_once` | never paused |
//! | `cron-SEED-all` | every second | `parallel`, misfire `fire_all`, catch-up window 8 s | never paused |
//! | `cron-SEED-mskip` | every second | `parallel`, misfire `skip` | never paused |
//!
//! The other tasks keep the product's default misfire policy (`fire_once`); the last three name
//! each policy explicitly so the misfire checker sees all three (the 8 s window is short enough
//! that a longer leaderless gap has slots on both sides of it).
//!
//! Operations are recorded as `cron_create` (its `ok` value carries the task's id, schedule, mode
//! and misfire policy), `cron_pause`, `cron_resume`, `cron_delete`; after the heal, [`quiesce`]
//! pauses every live task (so the cluster can converge) and [`final_reads`] records every
//! execution record (`cron_final`, with the status, reason, trigger, creation time and log index
//! the misfire checker reads, and each attempt's instance, status and span).
//!
//! The `cron-embedded` variant ([`Runner::Embedded`], [`super::cron_embedded`]) creates the same
//! tasks in group `local`, run by the nodes' own embedded agents as `sleep` commands.

use std::time::{Duration, Instant};

use chrono::DateTime;
use reqwest::Method;
use serde_json::{json, Value};

use super::{Ctx, Request};
use crate::history::Kind;
use crate::rng::Rng;

/// The executor group of the workload's tasks.
pub const GROUP: &str = "chaos";
/// How long one run lasts at the executor.
pub const RUN: Duration = Duration::from_millis(1_500);
/// How long one run of the `sequential` task lasts (its `run_ms` parameter). Shorter than
/// [`RUN`] on purpose: a queue that faults filled drains by period − run per slot, and at
/// 1.5 s of every 2 s a 30 s backlog (retries during `executor-kill`) took two minutes to drain,
/// longer than any liveness window (seed 8). Overlap is still tested: a backlog starts each
/// queued run right after the previous one's callback.
pub const SEQ_RUN_MS: u64 = 500;
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the workload does to a task during the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Runs untouched until the quiesce (the liveness checker watches it).
    Steady,
    /// Paused and resumed every 2–4 s.
    Toggled,
    /// Deleted once, halfway through the main phase.
    Deleted,
}

/// `(suffix, cron expression, mode, role)`.
pub const TASKS: [(&str, &str, &str, Role); 8] = [
    ("par", "* * * * * *", "parallel", Role::Steady),
    ("seq", "*/2 * * * * *", "sequential", Role::Steady),
    ("skip", "* * * * * *", "skip", Role::Steady),
    ("pp", "* * * * * *", "parallel", Role::Toggled),
    ("del", "* * * * * *", "parallel", Role::Deleted),
    ("once", "* * * * * *", "parallel", Role::Steady),
    ("all", "* * * * * *", "parallel", Role::Steady),
    ("mskip", "* * * * * *", "parallel", Role::Steady),
];

/// The misfire policy and catch-up window (seconds) a task is created with: explicit for the
/// three misfire tasks, the product's defaults (`fire_once`, 3,600 s) for the others.
fn misfire(suffix: &str) -> (&'static str, u64) {
    match suffix {
        "all" => ("fire_all", 8),
        "mskip" => ("skip", 3_600),
        _ => ("fire_once", 3_600),
    }
}

fn name(ctx: &Ctx, suffix: &str) -> String {
    format!("cron-{}-{suffix}", ctx.seed)
}

fn write<'a>(
    f: &'static str,
    key: &'a str,
    method: Method,
    path: String,
    body: Option<Value>,
    idem: Option<String>,
) -> Request<'a> {
    Request {
        f,
        key,
        value: Value::Null,
        method,
        path,
        body,
        idempotency_key: idem,
        timeout: WRITE_TIMEOUT,
        read_only: false,
    }
}

/// Who runs the workload's tasks.
#[derive(Debug, Clone)]
pub enum Runner {
    /// The harness' recording executor, registered with this body in group [`GROUP`].
    Recording(Value),
    /// The nodes' embedded agents (group `local`): the `cron-embedded` workload.
    Embedded,
}

/// Registers the executor (a [`Runner::Recording`]) or records the embedded agents' marker, and
/// creates the tasks, retrying each until `limit`. Returns the names of the tasks created.
pub async fn setup(ctx: &Ctx, runner: Runner, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    match &runner {
        Runner::Recording(registration) => register(ctx, registration, deadline).await,
        Runner::Embedded => super::cron_embedded::record_marker(ctx),
    }
    let mut created = Vec::new();
    for (suffix, cron, mode, role) in TASKS {
        let task = name(ctx, suffix);
        let pid = ctx.new_pid();
        loop {
            let (policy, window) = misfire(suffix);
            let run_ms = if mode == "sequential" { SEQ_RUN_MS } else { RUN.as_millis() as u64 };
            let (group, parameters) = match runner {
                Runner::Recording(_) => (GROUP, json!({"run_ms": run_ms})),
                Runner::Embedded => (super::cron_embedded::GROUP, super::cron_embedded::parameters(run_ms)),
            };
            let body = json!({
                "name": task, "cron_expression": cron, "execution_mode": mode, "timeout_seconds": 5,
                "executor": group, "max_retry": 3, "misfire_policy": policy, "catchup_window_seconds": window,
                "parameters": parameters,
            });
            let idem = Some(format!("create-{task}"));
            let req = write("cron_create", &task, Method::POST, "/api/v1/tasks".into(), Some(body), idem);
            let info = |b: &Value| {
                json!({"id": b["id"], "name": b["name"], "cron": cron, "mode": mode, "pausable": role != Role::Steady,
                    "misfire_policy": b["misfire_policy"], "catchup_window_seconds": b["catchup_window_seconds"]})
            };
            let out = ctx.op(pid, ctx.nodes[0].0, req, info).await;
            if out.kind == Kind::Ok {
                created.push(task);
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    created
}

/// Registers the recording executor, retrying until it is acknowledged or `deadline`.
async fn register(ctx: &Ctx, registration: &Value, deadline: Instant) {
    let pid = ctx.new_pid();
    loop {
        let path = "/api/v1/executors/register".to_string();
        let req = write("cron_register", GROUP, Method::POST, path, Some(registration.clone()), None);
        if ctx.op(pid, ctx.nodes[0].0, req, |_| Value::Null).await.kind == Kind::Ok || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn pause_or_resume(ctx: &Ctx, pid: u64, node: u64, task: &str, pause: bool) -> Kind {
    let (f, verb) = if pause { ("cron_pause", "pause") } else { ("cron_resume", "resume") };
    let req = write(f, task, Method::POST, format!("/api/v1/tasks/{task}/{verb}"), None, None);
    ctx.op(pid, node, req, |_| Value::Null).await.kind
}

fn with_role(ctx: &Ctx, role: Role) -> Vec<String> {
    TASKS.iter().filter(|t| t.3 == role).map(|t| name(ctx, t.0)).collect()
}

/// Pauses and resumes the toggled tasks on random nodes every 2–4 s until `deadline`, and
/// deletes the `Deleted` ones (`cron_delete`, by name) once half the time has passed, retrying
/// until one is deleted (a retry of a delete that did happen gets a definite 404); [`quiesce`]
/// finishes any the main phase could not.
pub async fn worker(ctx: &Ctx, start: Instant, deadline: Instant) {
    let mut rng = Rng::fork(ctx.seed, 3000);
    let mut pid = ctx.new_pid();
    let mut pause = true;
    let toggled = with_role(ctx, Role::Toggled);
    let mut to_delete = with_role(ctx, Role::Deleted);
    let half = start + (deadline - start) / 2;
    while Instant::now() + Duration::from_secs(1) < deadline {
        tokio::time::sleep(Duration::from_millis(rng.range(2_000, 4_000))).await;
        for task in &toggled {
            let node = rng.pick(&ctx.nodes).0;
            if pause_or_resume(ctx, pid, node, task, pause).await == Kind::Info {
                pid = ctx.new_pid();
            }
        }
        pause = !pause;
        if Instant::now() >= half {
            let mut left = Vec::new();
            for task in to_delete {
                let (deleted, kind) = delete(ctx, pid, rng.pick(&ctx.nodes).0, &task).await;
                if kind == Kind::Info {
                    pid = ctx.new_pid();
                }
                if !deleted {
                    left.push(task);
                }
            }
            to_delete = left;
        }
    }
}

/// One `cron_delete`: whether the task is now known deleted (this delete, or an earlier one whose
/// answer was lost: 404), and the op's kind. A delete refused before it was proposed (a node
/// down) is not done: the caller tries again. (Regression: the worker dropped a task after such
/// a refusal; the task was never deleted nor paused for the quiesce, kept firing through the
/// final reads, and `committed_delivery` flagged deliveries of records made after them; seed 31.)
async fn delete(ctx: &Ctx, pid: u64, node: u64, task: &str) -> (bool, Kind) {
    let req = write("cron_delete", task, Method::DELETE, format!("/api/v1/tasks/{task}"), None, None);
    let out = ctx.op(pid, node, req, |_| Value::Null).await;
    let not_found = out.kind == Kind::Fail && out.error.as_deref().is_some_and(|m| m.contains("task_not_found"));
    (out.kind == Kind::Ok || not_found, out.kind)
}

/// Before the quiesce: waits (at most `limit`) until every steady `parallel` or `sequential` task
/// has a delivery for a slot at most one step and 1.5 s old. A `sequential` task whose runs
/// (1.5 s) nearly fill its period (2 s) drains a backlog built up during the faults by only
/// 0.5 s per slot; the slots are fired and queued, not lost, but pausing it for the quiesce
/// would cancel the queued ones and the liveness checker would count them missing. Slots that
/// were never fired (a leader missing after the heal) are not helped by waiting: they stay missing.
/// Records how long it waited (`cron_caught_up`, `process: "harness"`).
pub async fn wait_caught_up(ctx: &Ctx, limit: Duration, runner: &Runner) {
    let began = Instant::now();
    let deadline = began + limit;
    let steady: Vec<(u64, i64)> = ctx
        .rec
        .snapshot()
        .into_iter()
        .filter(|e| e.f == "cron_create" && e.kind == Kind::Ok)
        .filter(|e| e.value["pausable"] == json!(false) && e.value["mode"] != json!("skip"))
        .filter_map(|e| {
            Some((e.value["id"].as_u64()?, if e.value["cron"] == json!("*/2 * * * * *") { 2_000 } else { 1_000 }))
        })
        .collect();
    loop {
        let events = ctx.rec.snapshot();
        let now = crate::history::wall_ms();
        let mut behind = false;
        for (id, step) in &steady {
            let newest = match runner {
                Runner::Recording(_) => events
                    .iter()
                    .filter(|e| e.f == "deliver" && e.value["task_id"].as_u64() == Some(*id))
                    .filter_map(|e| e.value["scheduled_ms"].as_i64())
                    .max(),
                Runner::Embedded => super::cron_embedded::newest_ran_slot(ctx, *id).await,
            };
            behind |= newest.is_none_or(|slot| slot < now - step - RUN.as_millis() as i64);
        }
        if !behind || Instant::now() >= deadline {
            let value = json!({"waited_ms": began.elapsed().as_millis() as u64, "caught_up": !behind});
            let harness = crate::history::Process::Named("harness".into());
            ctx.rec.record(harness, Kind::Ok, "cron_caught_up", None, value, None, None);
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// After the heal: pauses every task (retrying until acknowledged or `limit`), so no new
/// executions start and the cluster can converge, then waits one run time plus a margin so the
/// last callbacks land.
pub async fn quiesce(ctx: &Ctx, limit: Duration) {
    let deadline = Instant::now() + limit;
    // A task to delete whose deletion is not known done is deleted now (404: it already was).
    for task in with_role(ctx, Role::Deleted) {
        if deleted_before(ctx, &task) {
            continue;
        }
        let pid = ctx.new_pid();
        for i in 0.. {
            let node = ctx.nodes[i % ctx.nodes.len()].0;
            let (done, _) = delete(ctx, pid, node, &task).await;
            if done || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for (suffix, ..) in TASKS.iter().filter(|t| t.3 != Role::Deleted) {
        let task = name(ctx, suffix);
        let pid = ctx.new_pid();
        for i in 0.. {
            let node = ctx.nodes[i % ctx.nodes.len()].0;
            if pause_or_resume(ctx, pid, node, &task, true).await == Kind::Ok || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(RUN + Duration::from_secs(2)).await;
}

/// Whether a `cron_delete` of `task` succeeded earlier in the history, or met a 404 (an earlier
/// delete had).
fn deleted_before(ctx: &Ctx, task: &str) -> bool {
    ctx.rec.snapshot().iter().any(|e| {
        let not_found = e.kind == Kind::Fail && e.error.as_deref().is_some_and(|m| m.contains("task_not_found"));
        e.f == "cron_delete" && e.key.as_deref() == Some(task) && (e.kind == Kind::Ok || not_found)
    })
}

/// Reads every execution record of every created task (linearizable, paginated, by id: a
/// deleted task's name no longer resolves), from the first node that answers, recording one
/// `cron_final` op per task whose value is the compact record list.
pub async fn final_reads(ctx: &Ctx, limit: Duration) {
    let deadline = Instant::now() + limit;
    let created: Vec<(String, u64)> = ctx
        .rec
        .snapshot()
        .into_iter()
        .filter(|e| e.f == "cron_create" && e.kind == Kind::Ok)
        .filter_map(|e| Some((e.key?, e.value["id"].as_u64()?)))
        .collect();
    for (task, id) in created {
        let pid = ctx.new_pid();
        for i in 0.. {
            let node = ctx.nodes[i % ctx.nodes.len()].0;
            if read_task(ctx, pid, node, &task, id).await || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

async fn read_task(ctx: &Ctx, pid: u64, node: u64, task: &str, id: u64) -> bool {
    let url = ctx.nodes.iter().find(|(id, _)| *id == node).map(|(_, u)| u.clone()).expect("node");
    let p = crate::history::Process::Client(pid);
    ctx.rec.record(p.clone(), Kind::Invoke, "cron_final", Some(task), Value::Null, Some(node), None);
    let mut records = Vec::new();
    for page in 1.. {
        let path = format!("/api/v1/executions?task_id={id}&page_size=500&page={page}&consistency=linearizable");
        let out = crate::ops::send(&url, Duration::from_secs(5), Method::GET, &path, None, None).await;
        if out.kind != Kind::Ok {
            ctx.rec.record(p, Kind::Fail, "cron_final", Some(task), Value::Null, Some(node), out.error);
            return false;
        }
        let items = out.body.get("items").and_then(|i| i.as_array()).cloned().unwrap_or_default();
        records.extend(items.iter().map(compact));
        if items.len() < 500 {
            break;
        }
    }
    ctx.rec.record(p, Kind::Ok, "cron_final", Some(task), Value::Array(records), Some(node), None);
    true
}

/// The fields of an execution record the checkers use.
fn compact(e: &Value) -> Value {
    let ms = |v: &Value| v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.timestamp_millis());
    let attempts: Vec<Value> = e["attempts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    json!({"attempt": x["attempt"], "term": x["term"], "log_index": x["log_index"],
                        "instance_id": x["instance_id"], "base_url": x["base_url"], "status": x["status"],
                        "dispatched_ms": ms(&x["dispatched_at"]), "end_ms": ms(&x["end_time"])})
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "id": e["id"], "task_id": e["task_id"], "scheduled_ms": ms(&e["scheduled_time"]), "status": e["status"],
        "trigger": e["trigger"], "reason": e["reason"], "created_ms": ms(&e["created_at"]), "log_index": e["log_index"],
        "slot_count": e["slot_count"], "attempt_count": e["attempt_count"], "attempts": attempts,
    })
}
