//! The leader's view of which nodes it cannot reach, for `node_unreachable` and
//! `node_reachable` events, from openraft's replication metrics.
//!
//! openraft 0.9 reports, per follower and learner, the last log id it has matched. A node whose
//! matched index stays behind the leader's last log index, without moving, for
//! `node_unreachable_after_ms` is unreachable; once its matched index moves again it is
//! reachable. A node that is up to date cannot be told apart from a dead one while the log is
//! idle, so an outage shows once the next write happens (the scheduler, the health checker and
//! this service write often enough in practice). Apply suppresses repeats (an unreachable node
//! is alerted once until it is reachable), so the watcher may propose what it sees freely; it
//! proposes nothing while no rule exists.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cronraft_raft::command::Command;
use cronraft_raft::notify::{EventKind, LeaderEvent};
use cronraft_raft::store::StateMachineStore;
use cronraft_raft::{NodeId, Raft};

use crate::clock::now_ms;
use crate::propose::Proposer;

/// How often replication metrics are looked at.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// One node's replication as last seen.
#[derive(Debug, Clone, Copy)]
struct Seen {
    matched: u64,
    /// When `matched` last moved (or was first seen).
    since: Instant,
    unreachable: bool,
}

pub struct Watcher {
    node_id: NodeId,
    after: Duration,
    seen: BTreeMap<NodeId, Seen>,
}

impl Watcher {
    pub fn new(node_id: NodeId, after: Duration) -> Watcher {
        Watcher { node_id, after, seen: BTreeMap::new() }
    }

    pub async fn run(mut self, raft: &Raft, sm: &StateMachineStore, proposer: &Proposer) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (last, replication) = {
                let m = raft.metrics();
                let m = m.borrow();
                let rep: BTreeMap<NodeId, u64> = m
                    .replication
                    .as_ref()
                    .map(|r| r.iter().map(|(id, log)| (*id, log.map(|l| l.index).unwrap_or(0))).collect())
                    .unwrap_or_default();
                (m.last_log_index.unwrap_or(0), rep)
            };
            let events =
                self.observe(last, &replication, Instant::now(), |id| sm.view().node_alert_raised(id).unwrap_or(false));
            if events.is_empty() || !matches!(sm.view().rule_count(), Ok(n) if n > 0) {
                continue;
            }
            tracing::info!(events = events.len(), "node reachability changed");
            if let Err(e) = proposer.propose(Command::RaiseEvents(events), now_ms()).await {
                tracing::info!(error = %e, "node reachability event not committed");
                self.seen.clear(); // seen again from scratch next sample
            }
        }
    }

    /// Folds in one sample; returns the events to propose. `raised(id)`: whether the replicated
    /// state already alerts node `id` as unreachable (a previous leader saw it).
    fn observe(
        &mut self,
        last: u64,
        replication: &BTreeMap<NodeId, u64>,
        now: Instant,
        raised: impl Fn(NodeId) -> bool,
    ) -> Vec<LeaderEvent> {
        self.seen.retain(|id, _| replication.contains_key(id));
        let mut events = Vec::new();
        for (&id, &matched) in replication.iter().filter(|(id, _)| **id != self.node_id) {
            let s = self.seen.entry(id).or_insert_with(|| Seen { matched, since: now, unreachable: raised(id) });
            let moved = matched != s.matched;
            if moved {
                (s.matched, s.since) = (matched, now);
            }
            let behind = matched < last;
            if s.unreachable && (moved || !behind) {
                s.unreachable = false;
                let reason = format!("replication reached index {matched}");
                events.push(LeaderEvent { kind: EventKind::NodeReachable, node_id: id, reason });
            } else if !s.unreachable && behind && now.duration_since(s.since) >= self.after {
                s.unreachable = true;
                let reason =
                    format!("replication stuck at index {matched} of {last} for {:?}", now.duration_since(s.since));
                events.push(LeaderEvent { kind: EventKind::NodeUnreachable, node_id: id, reason });
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_stuck_behind_is_unreachable_once_and_reachable_when_it_moves() {
        let mut w = Watcher::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        let rep = |n2: u64| BTreeMap::from([(1, 50), (2, n2)]);
        let kinds = |v: Vec<LeaderEvent>| v.into_iter().map(|e| (e.kind, e.node_id)).collect::<Vec<_>>();
        assert!(w.observe(50, &rep(40), t0, |_| false).is_empty(), "behind, but not for long");
        assert!(w.observe(50, &rep(40), t0 + Duration::from_secs(9), |_| false).is_empty());
        let out = kinds(w.observe(50, &rep(40), t0 + Duration::from_secs(10), |_| false));
        assert_eq!(out, vec![(EventKind::NodeUnreachable, 2)]);
        assert!(w.observe(60, &rep(40), t0 + Duration::from_secs(20), |_| false).is_empty(), "said once");
        let out = kinds(w.observe(60, &rep(45), t0 + Duration::from_secs(21), |_| false));
        assert_eq!(out, vec![(EventKind::NodeReachable, 2)]);
        // A node a previous leader alerted is reported reachable once this leader sees it current.
        let mut w = Watcher::new(1, Duration::from_secs(10));
        assert_eq!(kinds(w.observe(50, &rep(50), t0, |id| id == 2)), vec![(EventKind::NodeReachable, 2)]);
    }
}
