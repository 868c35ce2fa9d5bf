//! Nemeses: the faults, their schedule (a pure function of the seed), and the final heal.
//!
//! A schedule is a list of steps `(at, duration, fault, target)` computed before the run, so the
//! same seed gives the same schedule. A `Leader` target is resolved when the step starts (which
//! node leads depends on the run); the node actually hit is recorded in the history's `start`
//! event, and the `end` event marks the heal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
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
    /// The recording executor stops listening (connections refused), then re-binds its port.
    ExecutorKill,
    /// The recording executor answers `/execute` only after [`crate::executor::SLOW_REPLY`],
    /// beyond the node's 5 s dispatch timeout (the run itself still happens).
    ExecutorSlow,
}

impl Fault {
    pub const ALL: [(&'static str, Fault, &'static str); 5] = [
        ("kill", Fault::Kill, "kill -9 a random node or the leader, then restart it (same addresses and data)"),
        ("pause", Fault::Pause, "SIGSTOP a random node or the leader past the election timeout, then SIGCONT"),
        ("partition", Fault::Partition, "isolate a random node or the leader from its peers (nftables, namespaces)"),
        ("executor-kill", Fault::ExecutorKill, "the recording executor refuses connections for 3-6 s (cron workload)"),
        (
            "executor-slow",
            Fault::ExecutorSlow,
            "the recording executor answers /execute after 12 s, past the dispatch timeout (cron)",
        ),
    ];

    /// Whether the fault hits the recording executor (and so needs the `cron` workload).
    pub fn is_executor(self) -> bool {
        matches!(self, Fault::ExecutorKill | Fault::ExecutorSlow)
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

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub at_ms: u64,
    pub duration_ms: u64,
    pub fault: Fault,
    pub target: Target,
}

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
            Fault::Partition | Fault::ExecutorKill | Fault::ExecutorSlow => rng.range(3_000, 6_000),
        };
        let target = if rng.chance(50) { Target::Leader } else { Target::Node(rng.range(1, n)) };
        if t + duration_ms + 1_000 > end {
            break;
        }
        steps.push(Step { at_ms: t, duration_ms, fault, target });
        t += duration_ms + rng.range(1_000, 3_000);
    }
    steps
}

/// What the nemesis can hit: the cluster, and the recording executor when the `cron` workload
/// runs one.
#[derive(Clone)]
pub struct Targets {
    pub cluster: Arc<Mutex<Cluster>>,
    pub executor: Option<Arc<Executor>>,
}

/// Runs `steps` relative to `start`, recording every start and end. Executor faults record no
/// node (there is one executor).
pub async fn run(targets: Targets, steps: Vec<Step>, rec: Recorder, start: Instant) {
    for step in steps {
        tokio::time::sleep_until((start + Duration::from_millis(step.at_ms)).into()).await;
        let node = match step.target {
            _ if step.fault.is_executor() => None,
            Target::Node(id) => Some(id),
            Target::Leader => Some(targets.cluster.lock().await.leader().await.unwrap_or(1)),
        };
        let value = json!({"fault": step.fault, "target": step.target, "duration_ms": step.duration_ms});
        let error = apply(&targets, step.fault, node.unwrap_or(0), true).await;
        rec.record(Process::nemesis(), Kind::Start, step.fault.name(), None, value.clone(), node, error);
        tokio::time::sleep(Duration::from_millis(step.duration_ms)).await;
        let error = apply(&targets, step.fault, node.unwrap_or(0), false).await;
        rec.record(Process::nemesis(), Kind::End, step.fault.name(), None, value, node, error);
    }
}

/// Starts (`begin`) or heals one fault; returns an error description if it could not.
async fn apply(targets: &Targets, fault: Fault, node: u64, begin: bool) -> Option<String> {
    if fault.is_executor() {
        let Some(ex) = &targets.executor else { return Some("no recording executor (needs --workload cron)".into()) };
        match (fault, begin) {
            (Fault::ExecutorKill, true) => ex.down(),
            (Fault::ExecutorKill, false) => return ex.up().await.err().map(|e| e.to_string()),
            (_, on) => ex.set_slow(on),
        }
        return None;
    }
    let mut c = targets.cluster.lock().await;
    match (fault, begin) {
        (Fault::Kill, true) => c.kill(node),
        (Fault::Kill, false) => return c.restart(node).err().map(|e| e.to_string()),
        (Fault::Pause, true) => c.pause(node),
        (Fault::Pause, false) => c.resume(node),
        (Fault::Partition, true) => {
            return match c.net() {
                Some(net) => net.isolate(&[node]).err().map(|e| e.to_string()),
                None => Some("partition unsupported without the network sandbox".into()),
            }
        }
        (Fault::Partition, false) => return c.net().and_then(|n| n.heal().err()).map(|e| e.to_string()),
        (Fault::ExecutorKill | Fault::ExecutorSlow, _) => {}
    }
    None
}

/// The final generator: heal every partition, resume every paused node, restart every dead one,
/// and bring the recording executor back to normal.
pub async fn heal_all(targets: &Targets, rec: &Recorder) {
    let mut errors = Vec::new();
    if let Some(ex) = &targets.executor {
        ex.set_slow(false);
        if let Err(e) = ex.up().await {
            errors.push(e.to_string());
        }
    }
    let mut c = targets.cluster.lock().await;
    if let Some(net) = c.net() {
        if let Err(e) = net.heal() {
            errors.push(e.to_string());
        }
    }
    for id in c.ids() {
        c.resume(id);
        if let Err(e) = c.restart(id) {
            errors.push(e.to_string());
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
}
