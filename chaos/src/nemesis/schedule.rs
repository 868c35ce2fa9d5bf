//! The fault kinds and their schedule: a pure function of the seed, computed before the run.
//!
//! Every step draws its fault, duration and target in the same order; a fault that needs more
//! (the partition shapes, the clock offset, the membership and churn variants) draws its
//! [`Detail`] after those, so adding a fault kind never changes the schedule of the others.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
        ("partition", Fault::Partition, "isolate a random node or the leader from its peers (ip rules in namespaces)"),
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

    /// Whether the fault needs the network sandbox (one namespace per node, `ip rule` cuts).
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
