//! The cluster's outcome counters for `/metrics`: runs by final status and trigger, missed and
//! skipped slots by reason, retries and dispatch failures, per executor group; kept by apply in
//! the replicated state, so every node shows the same totals, across restarts and leader changes.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `c/g/` | group name | its label index (`u64` BE, below [`GROUPS_MAX`]) |
//! | `c/o/` | label index (`u64` BE; [`OTHER`] for every group without one) | [`GroupOutcomes`] |
//! | `m/` | `outcome_groups` | how many groups have an index |
//!
//! The group dimension is bounded in apply, deterministically: the first [`GROUPS_MAX`] groups
//! whose executions count get their own index, in log order; every later one shares [`OTHER`]
//! (label `other`, which also holds a group literally named `other`, so no two series collide).
//! A counted transition costs one task read, one index read and one small read-modify-write of
//! its group's record, in the entry's write set. A scrape reads at most 65 + 64 small keys.
//! A state from before these keys reads as zero, and counts from its next transition on.

use serde::{Deserialize, Serialize};

use super::keys::{get_u64, outcome_group, outcomes, put_u64, OUTCOME_GROUP, OUTCOME_GROUP_COUNT};
use super::{tasks, StateView};
use crate::codec::{self, key_u64, parse_key_u64};
use crate::error::StoreError;
use crate::model::{Execution, ExecutionStatus, Reason, Trigger};
use crate::txn::WriteSet;

/// Groups with a label of their own; the rest count under [`OTHER`].
pub const GROUPS_MAX: u64 = 64;
/// The label index (and [`OTHER_LABEL`] the label) of every group past the first [`GROUPS_MAX`].
pub const OTHER: u64 = GROUPS_MAX;
pub const OTHER_LABEL: &str = "other";

/// Final statuses of a run, in the order of [`GroupOutcomes::runs`].
pub const RUN_STATUSES: [ExecutionStatus; 4] =
    [ExecutionStatus::Success, ExecutionStatus::Failed, ExecutionStatus::Timeout, ExecutionStatus::Cancelled];
/// Triggers, in the order of [`GroupOutcomes::runs`]'s inner arrays.
pub const TRIGGERS: [Trigger; 4] = [Trigger::Schedule, Trigger::Manual, Trigger::Catchup, Trigger::Retry];
/// Reasons of a `missed` slot, in the order of [`GroupOutcomes::missed`].
pub const MISSED_REASONS: [Reason; 2] = [Reason::Misfire, Reason::CutOff];
/// Reasons of a `skipped` slot, in the order of [`GroupOutcomes::skipped`].
pub const SKIPPED_REASONS: [Reason; 2] = [Reason::Overlap, Reason::QueueFull];

/// Why an attempt could not be handed to an executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchFailure {
    /// No online, healthy instance in the group (`no_healthy_executor`).
    NoHealthyExecutor,
    /// `/execute` could not connect (the run fails over).
    Unreachable,
    /// `/execute` answered an error or too slowly (`executor_refused`).
    Refused,
}

impl DispatchFailure {
    pub const ALL: [DispatchFailure; 3] =
        [DispatchFailure::NoHealthyExecutor, DispatchFailure::Unreachable, DispatchFailure::Refused];

    pub fn as_str(self) -> &'static str {
        match self {
            DispatchFailure::NoHealthyExecutor => "no_healthy_executor",
            DispatchFailure::Unreachable => "unreachable",
            DispatchFailure::Refused => "refused",
        }
    }
}

/// One group's totals since the cluster began counting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOutcomes {
    /// Runs that ended, `[status][trigger]` in the orders of [`RUN_STATUSES`] and [`TRIGGERS`].
    pub runs: [[u64; 4]; 4],
    /// Slots recorded `missed`, by [`MISSED_REASONS`] (a summarized record counts each slot).
    pub missed: [u64; 2],
    /// Slots recorded `skipped`, by [`SKIPPED_REASONS`].
    pub skipped: [u64; 2],
    /// Retries scheduled (a failed attempt sent back to `pending` after a backoff).
    pub retries: u64,
    /// Attempts that never reached a running job, by [`DispatchFailure::ALL`].
    pub dispatch_failures: [u64; 3],
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum StoredOutcomes {
    V1(GroupOutcomes),
}

fn decode(bytes: &[u8]) -> Result<GroupOutcomes, StoreError> {
    let StoredOutcomes::V1(o) = codec::decode(bytes)?;
    Ok(o)
}

/// The label index of `task`'s group, giving the group one if it is new and one is left.
fn group_index(ws: &mut WriteSet<'_>, task: u64) -> Result<u64, StoreError> {
    let Some(group) = tasks::get(ws, task)?.map(|t| t.spec.executor) else { return Ok(OTHER) };
    if group == OTHER_LABEL {
        return Ok(OTHER);
    }
    let key = outcome_group(&group);
    if let Some(index) = ws.get(&key)?.as_deref().and_then(parse_key_u64) {
        return Ok(index);
    }
    let next = get_u64(ws, OUTCOME_GROUP_COUNT)?;
    if next >= GROUPS_MAX {
        return Ok(OTHER);
    }
    ws.insert(key, key_u64(next).to_vec());
    put_u64(ws, OUTCOME_GROUP_COUNT, next + 1);
    Ok(next)
}

/// Applies `change` to the totals of `task`'s group.
fn count(ws: &mut WriteSet<'_>, task: u64, change: impl FnOnce(&mut GroupOutcomes)) -> Result<(), StoreError> {
    let key = outcomes(group_index(ws, task)?);
    let mut o = ws.get(&key)?.map(|b| decode(&b)).transpose()?.unwrap_or_default();
    change(&mut o);
    ws.insert(key, codec::encode(&StoredOutcomes::V1(o))?);
    Ok(())
}

fn position<T: PartialEq>(all: &[T], x: &T) -> Option<usize> {
    all.iter().position(|a| a == x)
}

/// Counts what `exec`'s change from `old` adds: an end (a run's final status, or a missed or
/// skipped slot) and retries scheduled. Called from `put_execution` for every write.
pub(super) fn record_transition(
    ws: &mut WriteSet<'_>,
    exec: &Execution,
    old: Option<&Execution>,
) -> Result<(), StoreError> {
    let ended = !exec.status.is_active() && old.map(|o| o.status.is_active()).unwrap_or(true);
    let retries = u64::from(exec.retry_count.saturating_sub(old.map(|o| o.retry_count).unwrap_or(0)));
    if !ended && retries == 0 {
        return Ok(());
    }
    count(ws, exec.task_id, |o| {
        o.retries += retries;
        if !ended {
            return;
        }
        let slots = exec.slot_count.max(1);
        match exec.status {
            ExecutionStatus::Missed => {
                let i = usize::from(exec.reason == Some(Reason::CutOff));
                o.missed[i] += slots;
            }
            ExecutionStatus::Skipped => {
                let i = usize::from(exec.reason == Some(Reason::QueueFull));
                o.skipped[i] += slots;
            }
            status => {
                if let (Some(s), Some(t)) = (position(&RUN_STATUSES, &status), position(&TRIGGERS, &exec.trigger)) {
                    o.runs[s][t] += 1;
                }
            }
        }
    })
}

/// Counts one attempt of `task` that could not be handed to an executor.
pub(super) fn record_dispatch_failure(
    ws: &mut WriteSet<'_>,
    task: u64,
    why: DispatchFailure,
) -> Result<(), StoreError> {
    let i = position(&DispatchFailure::ALL, &why).unwrap_or(0);
    count(ws, task, |o| o.dispatch_failures[i] += 1)
}

impl StateView {
    /// Every group's totals, by label: the groups with an index in index order, then `other` if
    /// anything counted there. At most [`GROUPS_MAX`] + 1 entries.
    pub fn outcome_totals(&self) -> Result<Vec<(String, GroupOutcomes)>, StoreError> {
        let mut named = Vec::new();
        for kv in self.tree.scan_prefix(OUTCOME_GROUP) {
            let (k, v) = kv?;
            let index = parse_key_u64(&v).unwrap_or(OTHER);
            named.push((index, String::from_utf8_lossy(&k[OUTCOME_GROUP.len()..]).into_owned()));
        }
        named.sort();
        named.push((OTHER, OTHER_LABEL.to_string()));
        let mut out = Vec::with_capacity(named.len());
        for (index, label) in named {
            let Some(bytes) = self.tree.get(outcomes(index))? else { continue };
            out.push((label, decode(&bytes)?));
        }
        Ok(out)
    }
}
