//! The leader's retention service: purges old execution records through Raft, a bounded batch
//! at a time.
//!
//! Each interval it proposes `Purge` orders (at most [`PURGE_PER_ENTRY_MAX`] records each) for
//! records older than `max_age_days`, and for the tasks whose record count exceeds
//! `per_task_max`. Which records go is decided in apply from the order, so every replica drops
//! the same ones; statistics rollups stay.
//!
//! Then the cluster-wide cap, `records_max`: the per-task and age limits bound one task's
//! history, not the sum (5,000 every-second tasks would keep 50 million records). Past the cap
//! the service orders the oldest final records dropped whatever their age: an order whose cutoff
//! is the end of time and whose limit is the excess, so apply's oldest-first walk drops exactly
//! that many. From 90 % of the cap a warning says the history is about to be cut short, and
//! `/metrics` shows the count against the cap.

use std::time::Duration;

use cronraft_raft::command::{Command, PurgeOrder};
use cronraft_raft::model::TaskStatus;
use cronraft_raft::state::{StateView, PURGE_PER_ENTRY_MAX};
use cronraft_raft::store::StateMachineStore;
use cronraft_raft::{NodeId, Raft, Response};
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::config::Retention;
use crate::leadership::run_while_leader;
use crate::propose::{ProposeError, Proposer, PROPOSE_TIMEOUT};

/// Most tasks named in one order.
const TASKS_PER_ORDER_MAX: usize = 1_000;
/// Most orders per round, so one round never monopolizes the log.
const ORDERS_PER_ROUND_MAX: usize = 20;

/// Why a retention round stopped early (the next interval tries again).
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("cannot read the state: {0}")]
    Store(#[from] cronraft_raft::error::StoreError),
    #[error(transparent)]
    Propose(#[from] ProposeError),
}

#[derive(Clone)]
pub struct RetentionService {
    pub node_id: NodeId,
    pub raft: Raft,
    pub sm: StateMachineStore,
    pub settings: Retention,
}

impl RetentionService {
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let (raft, node_id) = (self.raft.clone(), self.node_id);
        run_while_leader(raft, node_id, stop, "retention", |_term| self.clone().lead()).await;
    }

    async fn lead(self) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.settings.interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.round().await {
                tracing::info!(error = %e, "retention round stopped");
            }
        }
    }

    async fn round(&self) -> Result<(), RoundError> {
        self.by_age_and_task().await?;
        self.by_cluster_cap().await
    }

    /// Drops the oldest final records beyond `records_max`, a bounded batch per order.
    async fn by_cluster_cap(&self) -> Result<(), RoundError> {
        let cap = self.settings.records_max;
        let proposer = Proposer::new(self.raft.clone(), PROPOSE_TIMEOUT);
        for order_no in 0..ORDERS_PER_ROUND_MAX {
            let total = self.sm.view().execution_records()?;
            if order_no == 0 && total.saturating_mul(10) >= cap.saturating_mul(9) {
                tracing::warn!(
                    records = total,
                    records_max = cap,
                    "the execution history is at {}% of retention.records_max: past it, the oldest records go \
                     before their max_age_days",
                    total.saturating_mul(100) / cap.max(1)
                );
            }
            let excess = total.saturating_sub(cap);
            if excess == 0 {
                return Ok(());
            }
            let limit = u32::try_from(excess).unwrap_or(u32::MAX).min(PURGE_PER_ENTRY_MAX);
            let order =
                PurgeOrder { before_ms: i64::MAX, per_task_max: self.settings.per_task_max, tasks: Vec::new(), limit };
            let done = proposer.propose(Command::Purge(order), now_ms()).await?;
            let dropped = match done.data {
                Response::Count(n) => n,
                _ => 0,
            };
            tracing::info!(dropped, records_max = cap, "execution records over the cluster-wide cap purged");
            if dropped == 0 {
                return Ok(()); // only active records left to drop: they never are
            }
        }
        Ok(())
    }

    async fn by_age_and_task(&self) -> Result<(), RoundError> {
        let over = tasks_over(&self.sm.view(), self.settings.per_task_max)?;
        let proposer = Proposer::new(self.raft.clone(), PROPOSE_TIMEOUT);
        let mut chunks = over.chunks(TASKS_PER_ORDER_MAX).map(|c| c.to_vec());
        let mut tasks = chunks.next().unwrap_or_default();
        for _ in 0..ORDERS_PER_ROUND_MAX {
            let now = now_ms();
            let max_age_ms = i64::try_from(self.settings.max_age_days).unwrap_or(i64::MAX / 86_400_000) * 86_400_000;
            let order = PurgeOrder {
                before_ms: now.saturating_sub(max_age_ms),
                per_task_max: self.settings.per_task_max,
                tasks: std::mem::take(&mut tasks),
                limit: PURGE_PER_ENTRY_MAX,
            };
            let done = proposer.propose(Command::Purge(order), now).await?;
            let dropped = match done.data {
                Response::Count(n) => n,
                _ => 0,
            };
            if dropped > 0 {
                tracing::info!(dropped, "execution records purged");
            }
            tasks = chunks.next().unwrap_or_default();
            if dropped < u64::from(PURGE_PER_ENTRY_MAX) && tasks.is_empty() {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Tasks (any status) holding more than `max` records.
fn tasks_over(view: &StateView, max: u64) -> Result<Vec<u64>, cronraft_raft::error::StoreError> {
    let mut out = Vec::new();
    for status in [TaskStatus::Active, TaskStatus::Paused, TaskStatus::Deleted] {
        let mut after = 0;
        loop {
            let page = view.tasks_after(status, after, 1_000)?;
            for t in &page {
                if view.runtime(t.id)?.counts.iter().sum::<u64>() > max {
                    out.push(t.id);
                }
            }
            match page.last() {
                Some(t) if page.len() == 1_000 => after = t.id,
                _ => break,
            }
        }
    }
    Ok(out)
}
