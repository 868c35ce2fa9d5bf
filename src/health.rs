//! The leader's health checker: asks every executor's `health_check_url` each interval and
//! proposes only the transitions. Its client comes from [`outbound::executors`]: no redirects,
//! the `[executors]` address policy (a refused address is a failed check).
//!
//! An instance turns unhealthy after `failure_threshold` consecutive failed checks and healthy
//! again after `recovery_threshold` consecutive successes. The streaks live in memory (they
//! start from the replicated `is_healthy` each term); one `SetHealth` entry per round carries
//! every transition, so steady state writes nothing to Raft. A dispatch that cannot connect
//! ejects an instance at once through apply, and the checker then needs its successes to bring
//! it back.

use std::collections::HashMap;
use std::time::Duration;

use cronraft_raft::command::{Command, HealthChange};
use cronraft_raft::model::Executor;
use cronraft_raft::outbound::{self, error_chain, read_body_capped, ExecutorClient, EXECUTOR_BODY_BYTES_MAX};
use cronraft_raft::store::StateMachineStore;
use cronraft_raft::{NodeId, Raft};
use futures::future::join_all;
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::config::ExecutorSettings;
use crate::leadership::run_while_leader;
use crate::propose::{Proposer, PROPOSE_TIMEOUT};

/// Most checks in flight at once (each is bounded by the check timeout).
const CHECKS_INFLIGHT_MAX: usize = 256;

#[derive(Clone)]
pub struct HealthChecker {
    pub node_id: NodeId,
    pub raft: Raft,
    pub sm: StateMachineStore,
    pub settings: ExecutorSettings,
    /// The node's client TLS (`https://` health URLs).
    pub tls: outbound::ClientTls,
}

/// Consecutive outcomes of one instance, as seen this term.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Streak {
    pub healthy: bool,
    pub failures: u32,
    pub successes: u32,
}

impl Streak {
    /// Folds in one check; returns `Some(new health)` on a transition.
    pub fn record(&mut self, ok: bool, failure_threshold: u32, recovery_threshold: u32) -> Option<bool> {
        if ok {
            (self.successes, self.failures) = (self.successes + 1, 0);
            if !self.healthy && self.successes >= recovery_threshold {
                self.healthy = true;
                return Some(true);
            }
        } else {
            (self.failures, self.successes) = (self.failures + 1, 0);
            if self.healthy && self.failures >= failure_threshold {
                self.healthy = false;
                return Some(false);
            }
        }
        None
    }
}

impl HealthChecker {
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let timeout = Duration::from_millis(self.settings.health_check_timeout_ms);
        let client = match outbound::executors(self.settings.address_policy(), timeout, 1, &self.tls) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "health checker cannot build its HTTP client");
                return;
            }
        };
        let (raft, node_id) = (self.raft.clone(), self.node_id);
        run_while_leader(raft, node_id, stop, "health", |term| self.clone().lead(term, client.clone())).await;
    }

    async fn lead(self, term: u64, client: ExecutorClient) {
        let mut streaks: HashMap<u64, Streak> = HashMap::new();
        let interval = Duration::from_millis(self.settings.health_check_interval_ms);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let proposer = Proposer::new(self.raft.clone(), PROPOSE_TIMEOUT).guarded(self.sm.space());
        loop {
            tick.tick().await;
            let executors = match self.sm.view().all_executors() {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "health checker cannot read the registry");
                    continue;
                }
            };
            let changes = self.check_round(&client, &executors, &mut streaks).await;
            if changes.is_empty() {
                continue;
            }
            tracing::info!(term, changes = changes.len(), "executor health changed");
            if let Err(e) = proposer.propose(Command::SetHealth(changes), now_ms()).await {
                // Streaks are re-seeded from the replicated state next round.
                tracing::info!(error = %e, "health transition not committed");
                streaks.clear();
            }
        }
    }

    /// Checks every instance once (bounded concurrency) and returns the transitions.
    async fn check_round(
        &self,
        client: &ExecutorClient,
        executors: &[Executor],
        streaks: &mut HashMap<u64, Streak>,
    ) -> Vec<HealthChange> {
        streaks.retain(|id, _| executors.iter().any(|e| e.id == *id));
        let mut changes = Vec::new();
        for chunk in executors.chunks(CHECKS_INFLIGHT_MAX) {
            let results = join_all(chunk.iter().map(|e| check(client, &e.spec.health_check_url))).await;
            let checked_ms = now_ms();
            for (e, ok) in chunk.iter().zip(results) {
                let streak = streaks.entry(e.id).or_insert(Streak { healthy: e.is_healthy, ..Default::default() });
                // An ejection by dispatch (or another writer) wins over this term's memory.
                if streak.healthy != e.is_healthy {
                    *streak = Streak { healthy: e.is_healthy, ..Default::default() };
                }
                let s = &self.settings;
                if let Some(healthy) = streak.record(ok, s.failure_threshold, s.recovery_threshold) {
                    let failures = streak.failures;
                    changes.push(HealthChange { executor_id: e.id, healthy, failures, checked_ms });
                }
            }
        }
        changes
    }
}

/// One check: a 2xx within the timeout, without following a redirect, at an allowed address.
async fn check(client: &ExecutorClient, url: &str) -> bool {
    let target = match client.target(url) {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(%url, error = %e, "health check not sent");
            return false;
        }
    };
    match client.client.get(target).send().await {
        Ok(resp) => {
            let ok = resp.status().is_success();
            // Read (capped) so the connection goes back to the pool.
            let _ = read_body_capped(resp, EXECUTOR_BODY_BYTES_MAX).await;
            ok
        }
        Err(e) => {
            tracing::debug!(%url, error = %error_chain(&e), "health check failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_failures_eject_and_two_successes_restore() {
        let mut s = Streak { healthy: true, ..Default::default() };
        assert_eq!(s.record(false, 3, 2), None);
        assert_eq!(s.record(false, 3, 2), None);
        assert_eq!(s.record(false, 3, 2), Some(false));
        assert_eq!(s.record(false, 3, 2), None, "only the transition is reported");
        assert_eq!(s.record(true, 3, 2), None);
        assert_eq!(s.record(false, 3, 2), None, "a failure resets the recovery streak");
        assert_eq!(s.record(true, 3, 2), None);
        assert_eq!(s.record(true, 3, 2), Some(true));
    }
}
