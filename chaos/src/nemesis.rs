//! Nemeses: the faults, their schedule (a pure function of the seed), and the final heal.
//!
//! A schedule is a list of steps `(at, duration, fault, target, detail)` computed before the run,
//! so the same seed gives the same schedule. A `Leader` target is resolved when the step starts
//! (which node leads depends on the run); the node actually hit is recorded in the history's
//! `start` event, and the `end` event marks the heal. Faults that need more than a node (the
//! partition shapes, the clock offset, the membership and churn variants) draw their
//! [`Detail`] from the same seeded stream, after the draws every fault makes, so adding a fault
//! kind never changes the schedule of the others.
//!
//! Steps never overlap: each is healed before the next begins. The membership nemesis therefore
//! never takes a second node away while one is out, and removes a node only from a cluster whose
//! every member is a voter (never below a majority).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cronraft_api::client::Client;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::cluster::Cluster;
use crate::executor::Executor;
use crate::history::{Kind, Process, Recorder};
use crate::rng::Rng;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// `kill -9` one node, then restart it on the same addresses and data directory.
    Kill,
    /// SIGSTOP one node past the election timeout, then SIGCONT.
    Pause,
    /// Cut one node off from the others (clients still reach it), then heal.
    Partition,
    /// Two halves that cannot talk, and one node (in neither) that talks to both.
    PartitionBridge,
    /// One node cannot reach the others, or the others cannot reach it; the reverse still works.
    PartitionOneway,
    /// One node's wall clock jumps (bump) or flips back and forth (strobe), then is reset.
    Clock,
    /// One node is removed from the membership, then brought back as a voter.
    Membership,
    /// The recording executor stops listening (connections refused), then re-binds its port.
    ExecutorKill,
    /// The recording executor answers `/execute` only after [`crate::executor::SLOW_REPLY`],
    /// beyond the node's 5 s dispatch timeout (the run itself still happens).
    ExecutorSlow,
    /// Executor instances register, deregister, go offline and come back through the REST API.
    ExecutorChurn,
}

impl Fault {
    pub const ALL: [(&'static str, Fault, &'static str); 10] = [
        ("kill", Fault::Kill, "kill -9 a random node or the leader, then restart it (same addresses and data)"),
        ("pause", Fault::Pause, "SIGSTOP a random node or the leader past the election timeout, then SIGCONT"),
        ("partition", Fault::Partition, "isolate a random node or the leader from its peers (nftables, namespaces)"),
        (
            "partition-bridge",
            Fault::PartitionBridge,
            "cut the target from one other node; the third talks to both (two overlapping majorities)",
        ),
        (
            "partition-oneway",
            Fault::PartitionOneway,
            "the target cannot reach its peers (mute) or they cannot reach it (deaf); the reverse works",
        ),
        (
            "clock",
            Fault::Clock,
            "a node's wall clock jumps +-1 s..2 min (bump) or flips (strobe), then resets (libfaketime)",
        ),
        (
            "membership",
            Fault::Membership,
            "remove a node (admin API), then bring it back as a voter (wiped fresh joiner, or re-added)",
        ),
        ("executor-kill", Fault::ExecutorKill, "the recording executor refuses connections for 3-6 s (cron workload)"),
        (
            "executor-slow",
            Fault::ExecutorSlow,
            "the recording executor answers /execute after 12 s, past the dispatch timeout (cron)",
        ),
        (
            "executor-churn",
            Fault::ExecutorChurn,
            "executor instances join, leave (deregister) and go offline, then the primary is back (cron)",
        ),
    ];

    /// Whether the fault hits the recording executor (and so needs the `cron` workload).
    pub fn is_executor(self) -> bool {
        matches!(self, Fault::ExecutorKill | Fault::ExecutorSlow | Fault::ExecutorChurn)
    }

    /// Whether the fault needs the network sandbox (one namespace per node, nftables).
    pub fn is_partition(self) -> bool {
        matches!(self, Fault::Partition | Fault::PartitionBridge | Fault::PartitionOneway)
    }

    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.iter().find(|(n, _, _)| *n == s).map(|(_, f, _)| *f)
    }

    pub fn name(self) -> &'static str {
        Fault::ALL.iter().find(|(_, f, _)| *f == self).map(|(n, _, _)| *n).unwrap_or("?")
    }
}

/// Whom a step hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Leader,
    Node(u64),
}

/// What a churn step does to the executor group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Churn {
    /// A new instance registers (both serve); healed by deregistering it.
    Join,
    /// A new instance registers, then the primary is set `offline`; healed by `online`.
    Offline,
    /// A new instance registers, then the primary is deregistered; healed by registering the
    /// primary again (it gets a new id) and deregistering the new one.
    Deregister,
    /// The primary, alone, is set `offline`: no instance can take work until the heal.
    OfflineAlone,
}

/// The seeded parameters of a fault that needs more than a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum Detail {
    /// `partition-bridge`: the bridge node is the `pick`-th (mod their number) of the nodes other
    /// than the target; the target and the bridge's other neighbours form the two halves.
    Bridge { pick: u64 },
    /// `partition-oneway`: `mute` — the target cannot reach any peer (they still reach it);
    /// otherwise deaf — no peer can reach the target (it still reaches them).
    Oneway { mute: bool },
    /// `clock`: the target's wall clock is `offset_ms` off for the whole step.
    Bump { offset_ms: i64 },
    /// `clock`: the target's clock alternates between `offset_ms` off and right, every
    /// `period_ms`, for the whole step.
    Strobe { offset_ms: i64, period_ms: u64 },
    /// `membership`: after the removal, `wipe` — kill the node, delete its data and start it as
    /// a fresh joiner (the documented procedure); otherwise re-add the still running node with
    /// its old log (`POST /cluster/nodes`, then promote).
    Rejoin { wipe: bool },
    /// `executor-churn`.
    Churn { action: Churn },
}

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub at_ms: u64,
    pub duration_ms: u64,
    pub fault: Fault,
    pub target: Target,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Detail>,
}

/// The largest clock offset the `clock` nemesis sets (2^7 s and a fraction).
pub const CLOCK_OFFSET_MAX_MS: i64 = 129_000;

/// The schedule for `faults` over `time_limit` on nodes `1..=n`: alternating healthy gaps and
/// faults, the first after 2 s, the last healed a second before the end.
pub fn schedule(seed: u64, faults: &[Fault], time_limit: Duration, n: u64) -> Vec<Step> {
    let mut rng = Rng::fork(seed, 7);
    let end = time_limit.as_millis() as u64;
    let mut t = 2_000;
    let mut steps = Vec::new();
    if faults.is_empty() {
        return steps;
    }
    loop {
        let fault = *rng.pick(faults);
        let duration_ms = match fault {
            Fault::Kill => rng.range(1_500, 4_000),
            Fault::Pause => rng.range(1_500, 3_000),
            _ => rng.range(3_000, 6_000),
        };
        let target = if rng.chance(50) { Target::Leader } else { Target::Node(rng.range(1, n)) };
        let detail = detail(&mut rng, fault);
        if t + duration_ms + 1_000 > end {
            break;
        }
        steps.push(Step { at_ms: t, duration_ms, fault, target, detail });
        t += duration_ms + rng.range(1_000, 3_000);
    }
    steps
}

/// The seeded detail of `fault` (no draw at all for the faults that need none).
fn detail(rng: &mut Rng, fault: Fault) -> Option<Detail> {
    // Seconds to minutes, as Jepsen's bump (2^k ms): 2^0..2^7 s plus a fraction, either sign.
    let offset = |rng: &mut Rng, kmax: u64| {
        let ms = (1_000i64 << rng.range(0, kmax)) + rng.below(1_000) as i64;
        if rng.chance(50) {
            ms
        } else {
            -ms
        }
    };
    Some(match fault {
        Fault::PartitionBridge => Detail::Bridge { pick: rng.below(1 << 16) },
        Fault::PartitionOneway => Detail::Oneway { mute: rng.chance(50) },
        Fault::Clock if rng.chance(50) => Detail::Bump { offset_ms: offset(rng, 7) },
        Fault::Clock => Detail::Strobe { offset_ms: offset(rng, 5), period_ms: rng.range(100, 1_000) },
        Fault::Membership => Detail::Rejoin { wipe: rng.chance(50) },
        Fault::ExecutorChurn => {
            let action = *rng.pick(&[Churn::Join, Churn::Offline, Churn::Deregister, Churn::OfflineAlone]);
            Detail::Churn { action }
        }
        _ => return None,
    })
}

/// What the nemesis can hit: the cluster, and the recording executor when the `cron` workload
/// runs one (with the group and the primary instance's id it registered under).
#[derive(Clone)]
pub struct Targets {
    pub cluster: Arc<Mutex<Cluster>>,
    pub executor: Option<Arc<Executor>>,
    /// `(group, primary instance id)` of the recording executor's registration.
    pub executor_ids: Option<(String, String)>,
}

/// Runs `steps` relative to `start`, recording every start and end. Executor faults record no
/// node (there is one executor). A clock step records its start *before* changing the clock and
/// its end after resetting it, so the recorded window contains the skew.
pub async fn run(targets: Targets, steps: Vec<Step>, rec: Recorder, start: Instant) {
    for (i, step) in steps.iter().enumerate() {
        tokio::time::sleep_until((start + Duration::from_millis(step.at_ms)).into()).await;
        let node = match step.target {
            _ if step.fault.is_executor() => None,
            Target::Node(id) => Some(id),
            Target::Leader => Some(targets.cluster.lock().await.leader().await.unwrap_or(1)),
        };
        let mut value = json!({"fault": step.fault, "target": step.target, "duration_ms": step.duration_ms});
        if let Some(d) = step.detail {
            value["detail"] = serde_json::to_value(d).expect("serialize detail");
        }
        if let Some(Detail::Bump { offset_ms } | Detail::Strobe { offset_ms, .. }) = step.detail {
            value["offset_ms"] = json!(offset_ms);
        }
        let name = step.fault.name();
        let node_id = node.unwrap_or(0);
        if step.fault == Fault::Clock {
            rec.record(Process::nemesis(), Kind::Start, name, None, value.clone(), node, None);
            let error = begin(&targets, step, node_id, i).await.err();
            if error.is_some() {
                rec.record(Process::nemesis(), Kind::Info, name, None, value.clone(), node, error);
            }
        } else {
            let (error, extra) = match begin(&targets, step, node_id, i).await {
                Ok(extra) => (None, extra),
                Err(e) => (Some(e), Value::Null),
            };
            if !extra.is_null() {
                value["applied"] = extra;
            }
            rec.record(Process::nemesis(), Kind::Start, name, None, value.clone(), node, error);
        }
        hold(&targets, step, node_id).await;
        let error = end(&targets, step, node_id, i).await.err();
        rec.record(Process::nemesis(), Kind::End, name, None, value, node, error);
    }
}

/// Starts one fault; returns what it did (recorded with the start) or why it could not.
async fn begin(targets: &Targets, step: &Step, node: u64, index: usize) -> Result<Value, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    match step.fault {
        Fault::ExecutorKill => {
            executor(targets)?.down();
            Ok(Value::Null)
        }
        Fault::ExecutorSlow => {
            executor(targets)?.set_slow(true);
            Ok(Value::Null)
        }
        Fault::ExecutorChurn => churn_begin(targets, step, index).await,
        Fault::Kill => {
            targets.cluster.lock().await.kill(node);
            Ok(Value::Null)
        }
        Fault::Pause => {
            targets.cluster.lock().await.pause(node);
            Ok(Value::Null)
        }
        Fault::Partition | Fault::PartitionBridge | Fault::PartitionOneway => {
            let c = targets.cluster.lock().await;
            let Some(net) = c.net() else { return Err("partition unsupported without the network sandbox".into()) };
            let ids = c.ids();
            let others: Vec<u64> = ids.iter().copied().filter(|i| *i != node).collect();
            match step.detail {
                Some(Detail::Bridge { pick }) if !others.is_empty() => {
                    let bridge = others[(pick % others.len() as u64) as usize];
                    // The target's half: itself and (for more than three nodes) every other
                    // node below the bridge's position; the far half: the rest.
                    let rest: Vec<u64> = others.iter().copied().filter(|o| *o != bridge).collect();
                    let (near, far) = rest.split_at(rest.len() / 2);
                    let a: Vec<u64> = std::iter::once(node).chain(near.iter().copied()).collect();
                    net.bridge(&a, far).map_err(|e| err(&e))?;
                    Ok(json!({"halves": [a, far], "bridge": bridge}))
                }
                Some(Detail::Oneway { mute }) => {
                    for o in &others {
                        let (from, to) = if mute { (node, *o) } else { (*o, node) };
                        net.one_way(from, to).map_err(|e| err(&e))?;
                    }
                    let dropped: Vec<[u64; 2]> =
                        others.iter().map(|o| if mute { [node, *o] } else { [*o, node] }).collect();
                    Ok(json!({"dropped": dropped, "mute": mute}))
                }
                _ => {
                    net.isolate(&[node]).map_err(|e| err(&e))?;
                    Ok(Value::Null)
                }
            }
        }
        Fault::Clock => {
            let offset = match step.detail {
                Some(Detail::Bump { offset_ms } | Detail::Strobe { offset_ms, .. }) => offset_ms,
                _ => 0,
            };
            targets.cluster.lock().await.set_clock(node, offset).map_err(|e| err(&e))?;
            Ok(Value::Null)
        }
        Fault::Membership => membership_begin(targets, node).await,
    }
}

/// The fault's lifetime: a sleep, or for a strobe the flipping of the clock.
async fn hold(targets: &Targets, step: &Step, node: u64) {
    let until = Instant::now() + Duration::from_millis(step.duration_ms);
    if let Some(Detail::Strobe { offset_ms, period_ms }) = step.detail {
        let mut skewed = true;
        while Instant::now() + Duration::from_millis(period_ms) < until {
            tokio::time::sleep(Duration::from_millis(period_ms)).await;
            skewed = !skewed;
            let _ = targets.cluster.lock().await.set_clock(node, if skewed { offset_ms } else { 0 });
        }
    }
    tokio::time::sleep_until(until.into()).await;
}

/// Heals one fault.
async fn end(targets: &Targets, step: &Step, node: u64, index: usize) -> Result<(), String> {
    match step.fault {
        Fault::ExecutorKill => executor(targets)?.up().await.map_err(|e| e.to_string()),
        Fault::ExecutorSlow => {
            executor(targets)?.set_slow(false);
            Ok(())
        }
        Fault::ExecutorChurn => churn_end(targets, step, index).await,
        Fault::Kill => targets.cluster.lock().await.restart(node).map_err(|e| e.to_string()),
        Fault::Pause => {
            targets.cluster.lock().await.resume(node);
            Ok(())
        }
        Fault::Partition | Fault::PartitionBridge | Fault::PartitionOneway => {
            let c = targets.cluster.lock().await;
            c.net().map_or(Ok(()), |n| n.heal()).map_err(|e| e.to_string())
        }
        Fault::Clock => targets.cluster.lock().await.set_clock(node, 0).map_err(|e| e.to_string()),
        Fault::Membership => {
            let wipe = matches!(step.detail, Some(Detail::Rejoin { wipe: true }));
            membership_end(targets, node, wipe).await
        }
    }
}

fn executor(targets: &Targets) -> Result<&Executor, String> {
    targets.executor.as_deref().ok_or_else(|| "no recording executor (needs --workload cron)".into())
}

/// How long one admin call of a nemesis may take (membership changes wait up to 10 s).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(12);

/// Sends one admin request, trying the nodes in turn (starting at `first`) until one answers 2xx
/// (or one of `accept`'s statuses) or `limit` passes. Returns the body, or the last error.
async fn admin(
    urls: &[String],
    method: Method,
    path: &str,
    body: Option<Value>,
    accept: &[u16],
    limit: Duration,
) -> Result<Value, String> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no node answered");
    for i in 0.. {
        let url = &urls[i % urls.len().max(1)];
        let client = Client::with_timeout([url], ADMIN_TIMEOUT);
        let bytes = body.as_ref().map(|b| serde_json::to_vec(b).expect("serialize"));
        match client.raw(method.clone(), path, bytes, None).await {
            Ok(r) if (200..300).contains(&r.status) || accept.contains(&r.status) => {
                return Ok(serde_json::from_str(&r.body).unwrap_or(Value::Null))
            }
            Ok(r) => last = format!("{url}{path}: HTTP {} {}", r.status, r.body),
            Err(e) => last = format!("{url}{path}: {e}"),
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(last)
}

async fn urls(targets: &Targets, except: Option<u64>) -> Vec<String> {
    let c = targets.cluster.lock().await;
    c.ids().into_iter().filter(|i| Some(*i) != except).map(|i| c.url(i)).collect()
}

/// Where a node stands in the replicated membership, as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Voter,
    /// A learner that is not yet caught up enough to be promoted.
    Learner,
    Absent,
}

/// Asks the leader (through any other node) where `node` stands, with `POST
/// /cluster/nodes/{node}/promote`: `already_voter` — a voter; `node_not_found` — not a member;
/// `learner_behind` — a learner; 200 — it was a learner and is a voter now. The only side effect
/// is promoting a caught-up learner, which every caller wants anyway. (`GET /cluster` cannot
/// tell: it shows each member's own idea of its role, and a removed node that never saw its
/// removal still calls itself a candidate or follower.)
async fn membership_of(targets: &Targets, node: u64) -> Option<Member> {
    let path = format!("/api/v1/cluster/nodes/{node}/promote");
    for url in urls(targets, Some(node)).await {
        let client = Client::with_timeout([&url], ADMIN_TIMEOUT);
        let Ok(r) = client.raw(Method::POST, &path, None, None).await else { continue };
        let code =
            serde_json::from_str::<Value>(&r.body).ok().and_then(|v| v["error"]["code"].as_str().map(String::from));
        match (r.status, code.as_deref()) {
            (200..=299, _) | (409, Some("already_voter")) => return Some(Member::Voter),
            (409, Some("learner_behind")) => return Some(Member::Learner),
            (404, Some("node_not_found")) => return Some(Member::Absent),
            _ => {}
        }
    }
    None
}

/// Removes `node` from the membership, but only from a healthy cluster whose every node is a
/// voter: with one node out the others are still a majority, and steps never overlap.
async fn membership_begin(targets: &Targets, node: u64) -> Result<Value, String> {
    let healthy = targets.cluster.lock().await.wait_healthy(Duration::from_secs(10)).await;
    if let Err(e) = healthy {
        return Err(format!("removal skipped, the cluster is not fully healthy ({e})"));
    }
    let urls = urls(targets, None).await;
    let path = format!("/api/v1/cluster/nodes/{node}");
    let out = admin(&urls, Method::DELETE, &path, None, &[404], Duration::from_secs(5)).await;
    // A timed-out removal may still take effect: the heal looks at the membership, not at this.
    out.map(|v| json!({"removed": node, "log_index": v["log_index"]}))
}

/// Brings `node` back as a voter if it is not one: `wipe` — kill it, delete its data and start it
/// as a fresh joiner on its old addresses (its own join flow adds and promotes it); otherwise
/// re-add the running node with its old log and promote it. Then waits until it is a voter and
/// the cluster is healthy again (60 s at most in all).
async fn membership_end(targets: &Targets, node: u64, wipe: bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let others = urls(targets, Some(node)).await;
    let mut rejoined = false;
    loop {
        match membership_of(targets, node).await {
            Some(Member::Voter) => break,
            Some(Member::Absent) if !rejoined && wipe => {
                targets.cluster.lock().await.rejoin_fresh(node).map_err(|e| e.to_string())?;
                rejoined = true;
            }
            Some(Member::Absent) if !wipe => {
                let (http, raft) = {
                    let c = targets.cluster.lock().await;
                    (c.nodes[&node].http.clone(), c.nodes[&node].raft.clone())
                };
                let body = json!({"id": node, "http_addr": http, "raft_addr": raft});
                let limit = deadline.saturating_duration_since(Instant::now());
                admin(&others, Method::POST, "/api/v1/cluster/nodes", Some(body), &[], limit).await?;
            }
            // A learner catching up (promoted by the next probe), a fresh joiner still joining,
            // or no leader to ask yet.
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(format!("node {node} is not a voter again within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let limit = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(5));
    let healthy = targets.cluster.lock().await.wait_healthy(limit).await;
    healthy.map(|_| ()).map_err(|e| format!("node {node} is a voter again, but {e}"))
}

/// The instance id of the spare registered by churn step `index`.
fn spare_id(primary: &str, index: usize) -> String {
    format!("{primary}-churn{index}")
}

fn status_body(status: &str) -> Value {
    json!({"status": status, "reason": "chaos executor-churn"})
}

async fn churn_begin(targets: &Targets, step: &Step, index: usize) -> Result<Value, String> {
    let ex = executor(targets)?;
    let Some((group, primary)) = &targets.executor_ids else { return Err("no executor registration".into()) };
    let Some(Detail::Churn { action }) = step.detail else { return Err("no churn action".into()) };
    let urls = urls(targets, None).await;
    let limit = Duration::from_secs(5);
    let mut done = json!({"action": action});
    if action != Churn::OfflineAlone {
        let url = ex.add_instance().await.map_err(|e| e.to_string())?;
        let spare = spare_id(primary, index);
        let body = crate::executor::registration(&url, group, &spare);
        admin(&urls, Method::POST, "/api/v1/executors/register", Some(body), &[], limit).await?;
        done["spare"] = json!(spare);
    }
    let primary_path = format!("/api/v1/executors/{primary}");
    match action {
        Churn::Join => {}
        Churn::Offline | Churn::OfflineAlone => {
            let path = format!("{primary_path}/status");
            admin(&urls, Method::PUT, &path, Some(status_body("offline")), &[], limit).await?;
        }
        Churn::Deregister => {
            admin(&urls, Method::DELETE, &primary_path, None, &[404], limit).await?;
        }
    }
    Ok(done)
}

/// Heals a churn step: the primary registered and online, the step's spare deregistered.
async fn churn_end(targets: &Targets, step: &Step, index: usize) -> Result<(), String> {
    let ex = executor(targets)?;
    let Some((group, primary)) = &targets.executor_ids else { return Err("no executor registration".into()) };
    let urls = urls(targets, None).await;
    let limit = Duration::from_secs(20);
    admin(&urls, Method::POST, "/api/v1/executors/register", Some(ex.registration(group, primary)), &[], limit).await?;
    let path = format!("/api/v1/executors/{primary}/status");
    admin(&urls, Method::PUT, &path, Some(status_body("online")), &[], limit).await?;
    if !matches!(step.detail, Some(Detail::Churn { action: Churn::OfflineAlone })) {
        let path = format!("/api/v1/executors/{}", spare_id(primary, index));
        admin(&urls, Method::DELETE, &path, None, &[404], limit).await?;
    }
    Ok(())
}

/// The final generator: heal every partition, reset every clock, resume every paused node,
/// restart every dead one, make every node a voter again, and bring the recording executor (and
/// its registration) back to normal.
pub async fn heal_all(targets: &Targets, rec: &Recorder) {
    let mut errors = Vec::new();
    if let Some(ex) = &targets.executor {
        ex.set_slow(false);
        if let Err(e) = ex.up().await {
            errors.push(e.to_string());
        }
    }
    let ids = {
        let mut c = targets.cluster.lock().await;
        if let Some(net) = c.net() {
            if let Err(e) = net.heal() {
                errors.push(e.to_string());
            }
        }
        for id in c.ids() {
            if c.has_clock() {
                if let Err(e) = c.set_clock(id, 0) {
                    errors.push(e.to_string());
                }
            }
            c.resume(id);
            if let Err(e) = c.restart(id) {
                errors.push(e.to_string());
            }
        }
        c.ids()
    };
    for id in ids {
        // Only acts on a node that is not a voter (a membership step cut short): bring it back.
        if matches!(membership_of(targets, id).await, Some(Member::Absent | Member::Learner)) {
            if let Err(e) = membership_end(targets, id, true).await {
                errors.push(e);
            }
        }
    }
    if let (Some(ex), Some((group, primary))) = (&targets.executor, &targets.executor_ids) {
        let urls = urls(targets, None).await;
        let limit = Duration::from_secs(20);
        let reg = ex.registration(group, primary);
        let path = format!("/api/v1/executors/{primary}/status");
        let healed = async {
            admin(&urls, Method::POST, "/api/v1/executors/register", Some(reg), &[], limit).await?;
            admin(&urls, Method::PUT, &path, Some(status_body("online")), &[], limit).await
        };
        if let Err(e) = healed.await {
            errors.push(e);
        }
    }
    let error = (!errors.is_empty()).then(|| errors.join("; "));
    rec.record(Process::nemesis(), Kind::End, "heal_all", None, serde_json::Value::Null, None, error);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_schedule_and_it_fits_the_time_limit() {
        let faults = [Fault::Kill, Fault::Pause];
        let a = schedule(42, &faults, Duration::from_secs(60), 3);
        assert_eq!(a, schedule(42, &faults, Duration::from_secs(60), 3));
        assert_ne!(a, schedule(43, &faults, Duration::from_secs(60), 3));
        assert!(a.len() >= 5);
        assert!(a.iter().all(|s| s.at_ms + s.duration_ms < 60_000 && faults.contains(&s.fault)));
        assert!(a.windows(2).all(|w| w[0].at_ms + w[0].duration_ms < w[1].at_ms));
        assert!(schedule(1, &[], Duration::from_secs(60), 3).is_empty());
    }

    #[test]
    fn new_faults_carry_their_seeded_detail_and_old_ones_none() {
        let faults = [
            Fault::Kill,
            Fault::PartitionBridge,
            Fault::PartitionOneway,
            Fault::Clock,
            Fault::Membership,
            Fault::ExecutorChurn,
        ];
        let steps = schedule(5, &faults, Duration::from_secs(600), 3);
        assert_eq!(steps, schedule(5, &faults, Duration::from_secs(600), 3));
        for s in &steps {
            let ok = match (s.fault, s.detail) {
                (Fault::Kill, None) => true,
                (Fault::PartitionBridge, Some(Detail::Bridge { .. })) => true,
                (Fault::PartitionOneway, Some(Detail::Oneway { .. })) => true,
                (Fault::Clock, Some(Detail::Bump { offset_ms })) => {
                    (1_000..=CLOCK_OFFSET_MAX_MS).contains(&offset_ms.abs())
                }
                (Fault::Clock, Some(Detail::Strobe { offset_ms, period_ms })) => {
                    (1_000..=33_000).contains(&offset_ms.abs()) && (100..=1_000).contains(&period_ms)
                }
                (Fault::Membership, Some(Detail::Rejoin { .. })) => true,
                (Fault::ExecutorChurn, Some(Detail::Churn { .. })) => true,
                _ => false,
            };
            assert!(ok, "{s:?}");
        }
        for f in faults {
            assert!(steps.iter().any(|s| s.fault == f), "{f:?} never drawn");
        }
        // Both clock shapes and both signs show up over a long schedule.
        let clocks: Vec<_> = schedule(9, &[Fault::Clock], Duration::from_secs(900), 3);
        assert!(clocks.iter().any(|s| matches!(s.detail, Some(Detail::Bump { offset_ms }) if offset_ms > 0)));
        assert!(clocks.iter().any(|s| matches!(s.detail, Some(Detail::Bump { offset_ms }) if offset_ms < 0)));
        assert!(clocks.iter().any(|s| matches!(s.detail, Some(Detail::Strobe { .. }))));
    }

    #[test]
    fn the_old_faults_draw_no_detail_so_their_schedules_are_unchanged() {
        // Seed 11 with partition and kill over 20 s, as recorded by a run before the new faults.
        let s = schedule(11, &[Fault::Partition, Fault::Kill], Duration::from_secs(20), 3);
        let first: Vec<_> = s.iter().take(3).map(|s| (s.at_ms, s.duration_ms, s.fault, s.target)).collect();
        let recorded = vec![
            (2_000, 3_391, Fault::Partition, Target::Leader),
            (7_028, 3_140, Fault::Kill, Target::Node(1)),
            (12_150, 3_215, Fault::Kill, Target::Node(3)),
        ];
        assert_eq!(first, recorded);
        assert!(s.iter().all(|s| s.detail.is_none()));
        assert!(!serde_json::to_string(&s).unwrap().contains("detail"));
    }
}
