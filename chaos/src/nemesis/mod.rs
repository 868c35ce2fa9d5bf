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
//!
//! One module per fault family, each with the `begin` / `end` (and for the clock `hold`) this
//! module dispatches to: [`process`] (kill, pause), [`partition`] (isolate, bridge, one-way),
//! [`clock`], [`membership`], [`executor`] (kill, slow, churn); [`schedule`] holds the fault kinds
//! and the seeded schedule, [`admin`] the admin API calls two families share.

mod admin;
mod clock;
mod executor;
mod membership;
mod partition;
mod process;
mod schedule;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use self::membership::Member;

pub use self::schedule::{schedule, Churn, Detail, Fault, Step, Target, CLOCK_OFFSET_MAX_MS};
use crate::cluster::Cluster;
use crate::executor::Executor;
use crate::history::{Kind, Process, Recorder};

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
    match step.fault {
        Fault::ExecutorKill | Fault::ExecutorSlow | Fault::ExecutorChurn => executor::begin(targets, step, index).await,
        Fault::Kill | Fault::Pause => process::begin(targets, step, node).await,
        Fault::Partition | Fault::PartitionBridge | Fault::PartitionOneway => {
            partition::begin(targets, step, node).await
        }
        Fault::Clock => clock::begin(targets, step, node).await,
        Fault::Membership => membership::begin(targets, node).await,
    }
}

/// The fault's lifetime: a sleep, or for a strobe the flipping of the clock.
async fn hold(targets: &Targets, step: &Step, node: u64) {
    let until = Instant::now() + Duration::from_millis(step.duration_ms);
    clock::hold(targets, step, node, until).await;
    tokio::time::sleep_until(until.into()).await;
}

/// Heals one fault.
async fn end(targets: &Targets, step: &Step, node: u64, index: usize) -> Result<(), String> {
    match step.fault {
        Fault::ExecutorKill | Fault::ExecutorSlow | Fault::ExecutorChurn => executor::end(targets, step, index).await,
        Fault::Kill | Fault::Pause => process::end(targets, step, node).await,
        Fault::Partition | Fault::PartitionBridge | Fault::PartitionOneway => partition::end(targets).await,
        Fault::Clock => clock::end(targets, node).await,
        Fault::Membership => {
            let wipe = matches!(step.detail, Some(Detail::Rejoin { wipe: true }));
            membership::end(targets, node, wipe).await
        }
    }
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
        if matches!(membership::membership_of(targets, id).await, Some(Member::Absent | Member::Learner)) {
            if let Err(e) = membership::end(targets, id, true).await {
                errors.push(e);
            }
        }
    }
    if let (Some(ex), Some((group, primary))) = (&targets.executor, &targets.executor_ids) {
        let urls = admin::urls(targets, None).await;
        let limit = Duration::from_secs(20);
        let reg = ex.registration(group, primary);
        let path = format!("/api/v1/executors/{primary}/status");
        let healed = async {
            admin::admin(&urls, Method::POST, "/api/v1/executors/register", Some(reg), &[], limit).await?;
            admin::admin(&urls, Method::PUT, &path, Some(executor::status_body("online")), &[], limit).await
        };
        if let Err(e) = healed.await {
            errors.push(e);
        }
    }
    let error = (!errors.is_empty()).then(|| errors.join("; "));
    rec.record(Process::nemesis(), Kind::End, "heal_all", None, serde_json::Value::Null, None, error);
}
