//! What the schedule checkers read from a history of the `cron` workload: the tasks (from their
//! `cron_create` ops, with their misfire policy), the executor's deliveries and run ends, pause /
//! resume operations, the final execution records (with status, reason, creation time and log
//! index for the misfire checker), the final applied index, the heal / quiesce markers and any
//! clock skew a nemesis applied. In a `cron-embedded` history, where no recording executor saw
//! the runs, the deliveries and runs come from the final records' attempts instead.
//!
//! Kept apart from the checks so each check is a small function over plain data, and so the unit
//! tests can build bad histories event by event.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::history::{Event, Kind, Process};

/// A workload task, as created.
#[derive(Debug, Clone)]
pub struct CronTask {
    pub id: u64,
    pub name: String,
    /// Slot spacing: 1,000 for `* * * * * *`, 2,000 for `*/2 * * * * *`.
    pub step_ms: i64,
    pub mode: String,
    pub pausable: bool,
    /// `fire_once` (the product's default, also assumed for histories that do not say),
    /// `fire_all` or `skip`.
    pub misfire_policy: String,
    /// `fire_all`'s window (the product's default 3,600 s when the history does not say).
    pub catchup_window_s: u64,
    /// Wall times of the acknowledged create's invoke and completion: the task's watermark (the
    /// create's command time) lies between them.
    pub create_invoke_wall: i64,
    pub create_done_wall: i64,
}

/// One `/execute` the recording executor received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub execution_id: u64,
    pub attempt: u64,
    pub task_id: u64,
    pub scheduled_ms: i64,
    pub term: u64,
    pub log_index: u64,
    pub duplicate: bool,
    pub time_ns: u64,
    pub wall_ms: i64,
}

/// One run at the executor, by the executor's own clock.
#[derive(Debug, Clone)]
pub struct RunSpan {
    pub task_id: u64,
    pub execution_id: u64,
    pub attempt: u64,
    pub start_ns: u64,
    pub end_ns: Option<u64>,
}

/// One final execution record.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: u64,
    pub task_id: u64,
    pub scheduled_ms: i64,
    pub trigger: String,
    /// `pending`, `running`, `success`, …, `skipped`, `missed`.
    pub status: String,
    /// `misfire`, `overlap`, … (`None` when the record has none).
    pub reason: Option<String>,
    /// When the fire entry that created the record was stamped (its `now_ms`, the leader's
    /// clock): `created_at`. `None` in histories recorded before the harness kept it.
    pub created_ms: Option<i64>,
    /// The log index of the entry that created the record (shared by every record of one fire
    /// entry). `None` in older histories.
    pub log_index: Option<u64>,
    /// Slots the record stands for: more than 1 only for a summarized run of missed slots.
    pub slot_count: u64,
    pub attempt_count: u64,
    /// `(attempt, term, log_index)` of the attempts kept (at most the latest 16).
    pub attempts: Vec<(u64, u64, u64)>,
    /// Where and when those attempts ran, by the cluster's account (empty in histories recorded
    /// before the harness kept it): the execution evidence of the `cron-embedded` workload.
    pub runs: Vec<AttemptRun>,
}

/// One attempt of an execution record: the instance it went to, its status and its span
/// (`dispatched_ms` stamped by the leader that dispatched it, `end_ms` by the executor's report
/// or the leader's timeout, clamped by the node to `[dispatched_ms, now]`).
#[derive(Debug, Clone)]
pub struct AttemptRun {
    pub attempt: u64,
    /// Empty when no instance could be chosen (`no_healthy_executor`).
    pub instance_id: String,
    pub base_url: String,
    /// `running`, `success`, `failed`, `timeout` or `cancelled`.
    pub status: String,
    pub dispatched_ms: i64,
    pub end_ms: Option<i64>,
}

/// How a pause or resume ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Ok,
    Fail,
    Info,
}

/// A `cron_pause`, `cron_resume` or `cron_delete` (`pause: true`: a delete is a cut-off that
/// nothing lifts) operation, with wall-clock times (slots are wall times).
#[derive(Debug, Clone)]
pub struct Toggle {
    pub task: String,
    pub pause: bool,
    pub ended: Ended,
    pub invoke_wall: i64,
    pub done_wall: i64,
}

/// Everything the schedule checkers use.
#[derive(Debug, Clone, Default)]
pub struct CronHistory {
    pub tasks: Vec<CronTask>,
    pub deliveries: Vec<Delivery>,
    pub runs: Vec<RunSpan>,
    pub toggles: Vec<Toggle>,
    /// Per task id; `None` when some task's final read never succeeded.
    pub records: Option<BTreeMap<u64, Vec<Record>>>,
    /// The highest applied index any node reported in a `digest` read.
    pub final_applied: Option<u64>,
    /// Wall time of the final heal (`heal_all`), of recovery (`healthy`) and of `cron_quiesce`.
    pub heal_wall: Option<i64>,
    pub healthy_wall: Option<i64>,
    pub quiesce_wall: Option<i64>,
    /// Wall time of the first `cron_final` invoke (the records are read from then on).
    pub final_read_wall: Option<i64>,
    /// One entry per clock nemesis fault (`start` events whose `f` names a clock or skew): the
    /// skew it applied (`value.skew_ms` or `value.offset_ms`), `None` when the event does not say.
    pub clock_skews: Vec<Option<i64>>,
    /// `cron-embedded` runs: each node's embedded agent instance (`local-nodeN`) and the host
    /// (IP) it must be reached on, from the workload's `cron_embedded` marker. When set, the
    /// deliveries and runs are derived from the final records ([`super::embedded::derive`]),
    /// because no recording executor saw them.
    pub agents: Option<BTreeMap<String, String>>,
}

impl CronHistory {
    pub fn task(&self, id: u64) -> Option<&CronTask> {
        self.tasks.iter().find(|t| t.id == id)
    }
}

/// The slot spacing of the workload's schedules (`*/N` or `*` in the seconds field).
pub fn step_ms(cron: &str) -> Option<i64> {
    let secs = cron.split_whitespace().next()?;
    match secs {
        "*" => Some(1_000),
        s => s.strip_prefix("*/")?.parse::<i64>().ok().filter(|n| *n > 0).map(|n| n * 1_000),
    }
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

/// Extracts the cron workload's view of a history.
pub fn extract(events: &[Event]) -> CronHistory {
    let mut h = CronHistory::default();
    let mut open: HashMap<Process, &Event> = HashMap::new();
    let mut finals: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    let mut starts: HashMap<(u64, u64), usize> = HashMap::new();
    for e in events {
        match (&e.process, e.kind, e.f.as_str()) {
            (Process::Named(p), _, "deliver") if p == "executor" => {
                let v = &e.value;
                let d = Delivery {
                    execution_id: u(v, "execution_id"),
                    attempt: u(v, "attempt"),
                    task_id: u(v, "task_id"),
                    scheduled_ms: v["scheduled_ms"].as_i64().unwrap_or(0),
                    term: u(v, "term"),
                    log_index: u(v, "log_index"),
                    duplicate: v["duplicate"].as_bool().unwrap_or(false),
                    time_ns: e.time_ns,
                    wall_ms: e.wall_ms,
                };
                if !d.duplicate {
                    starts.insert((d.execution_id, d.attempt), h.runs.len());
                    h.runs.push(RunSpan {
                        task_id: d.task_id,
                        execution_id: d.execution_id,
                        attempt: d.attempt,
                        start_ns: e.time_ns,
                        end_ns: None,
                    });
                }
                h.deliveries.push(d);
            }
            (Process::Named(p), _, "run_end") if p == "executor" => {
                if let Some(i) = starts.get(&(u(&e.value, "execution_id"), u(&e.value, "attempt"))) {
                    h.runs[*i].end_ns = Some(e.time_ns);
                }
            }
            (Process::Named(p), Kind::Start, f) if p == "nemesis" && (f.contains("clock") || f.contains("skew")) => {
                h.clock_skews.push(e.value["skew_ms"].as_i64().or(e.value["offset_ms"].as_i64()));
            }
            (_, Kind::Ok, "cron_embedded") => {
                let agents = e.value["agents"].as_object().into_iter().flatten();
                h.agents = Some(agents.map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect());
            }
            (_, _, "heal_all") => h.heal_wall = Some(e.wall_ms),
            (_, _, "healthy") => h.healthy_wall = Some(e.wall_ms),
            (_, _, "cron_quiesce") => h.quiesce_wall = h.quiesce_wall.or(Some(e.wall_ms)),
            (Process::Client(_), Kind::Invoke, f) => {
                if f == "cron_final" {
                    h.final_read_wall = h.final_read_wall.or(Some(e.wall_ms));
                }
                open.insert(e.process.clone(), e);
            }
            (Process::Client(_), Kind::Ok | Kind::Fail | Kind::Info, f) => {
                let Some(inv) = open.remove(&e.process) else { continue };
                let ended = match e.kind {
                    Kind::Ok => Ended::Ok,
                    // A delete answered 404 `task_not_found` found the task deleted: by this very
                    // request (its first forwarded attempt was applied, the answer lost, the retry
                    // found the name gone) or an earlier one. Either way the task's life may have
                    // ended any time since this op was invoked: indeterminate, not refused.
                    // (Regression: read as refused, the delete that ended `del`'s life was not
                    // counted, and the misfire checker wanted records for the slots after it;
                    // kill,pause seed 31.)
                    Kind::Fail
                        if f == "cron_delete" && e.error.as_deref().is_some_and(|m| m.contains("task_not_found")) =>
                    {
                        Ended::Info
                    }
                    Kind::Fail => Ended::Fail,
                    _ => Ended::Info,
                };
                let key = e.key.clone().unwrap_or_default();
                match f {
                    "cron_create" if ended == Ended::Ok => {
                        let v = &e.value;
                        h.tasks.push(CronTask {
                            id: u(v, "id"),
                            name: key,
                            step_ms: v["cron"].as_str().and_then(step_ms).unwrap_or(1_000),
                            mode: v["mode"].as_str().unwrap_or("parallel").to_string(),
                            pausable: v["pausable"].as_bool().unwrap_or(false),
                            misfire_policy: v["misfire_policy"].as_str().unwrap_or("fire_once").to_string(),
                            catchup_window_s: v["catchup_window_seconds"].as_u64().unwrap_or(3_600),
                            create_invoke_wall: inv.wall_ms,
                            create_done_wall: e.wall_ms,
                        });
                    }
                    // A delete is a pause that no resume ever ends.
                    "cron_pause" | "cron_resume" | "cron_delete" => h.toggles.push(Toggle {
                        task: key,
                        pause: f != "cron_resume",
                        ended,
                        invoke_wall: inv.wall_ms,
                        done_wall: e.wall_ms,
                    }),
                    "cron_final" if ended == Ended::Ok => {
                        let recs = e.value.as_array().cloned().unwrap_or_default();
                        finals.insert(key, recs.iter().map(record).collect());
                    }
                    "digest" if ended == Ended::Ok => {
                        let applied = e.value["applied_index"].as_u64();
                        h.final_applied = h.final_applied.max(applied);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if h.tasks.iter().all(|t| finals.contains_key(&t.name)) {
        h.records = Some(h.tasks.iter().map(|t| (t.id, finals.remove(&t.name).unwrap_or_default())).collect());
    }
    if h.agents.is_some() {
        super::embedded::derive(&mut h);
    }
    h
}

fn record(v: &Value) -> Record {
    let attempts = v["attempts"]
        .as_array()
        .map(|a| a.iter().map(|x| (u(x, "attempt"), u(x, "term"), u(x, "log_index"))).collect())
        .unwrap_or_default();
    Record {
        id: u(v, "id"),
        task_id: u(v, "task_id"),
        scheduled_ms: v["scheduled_ms"].as_i64().unwrap_or(0),
        trigger: v["trigger"].as_str().unwrap_or("").to_string(),
        status: v["status"].as_str().unwrap_or("").to_string(),
        reason: v["reason"].as_str().map(String::from),
        created_ms: v["created_ms"].as_i64(),
        log_index: v["log_index"].as_u64(),
        slot_count: v["slot_count"].as_u64().unwrap_or(1).max(1),
        attempt_count: u(v, "attempt_count"),
        attempts,
        runs: v["attempts"].as_array().map(|a| a.iter().map(attempt_run).collect()).unwrap_or_default(),
    }
}

fn attempt_run(x: &Value) -> AttemptRun {
    let text = |k: &str| x[k].as_str().unwrap_or("").to_string();
    AttemptRun {
        attempt: u(x, "attempt"),
        instance_id: text("instance_id"),
        base_url: text("base_url"),
        status: text("status"),
        dispatched_ms: x["dispatched_ms"].as_i64().unwrap_or(0),
        end_ms: x["end_ms"].as_i64(),
    }
}
