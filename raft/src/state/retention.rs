//! Retention in apply: dropping old final execution records, a bounded number per entry.
//!
//! The leader proposes a [`PurgeOrder`] now and then (see the node's retention service); apply
//! removes final records created before the cutoff, oldest id first, and the oldest final
//! records of the named tasks beyond the per-task maximum. Rollups ([`super::stats`]) are not
//! touched, so statistics outlive the records; the per-status counters shrink with the records
//! they count. Active executions are never dropped. Rollups older than the longest report window
//! go a few at a time: the named tasks' and, in every order, the cluster's.

use super::executions::{decode_execution, put_runtime, runtime};
use super::keys::{self, bump};
use super::stats::{CLUSTER, ROLLUP_HOURS_KEPT};
use crate::codec::parse_key_u64;
use crate::command::{PurgeOrder, Response};
use crate::error::StoreError;
use crate::model::Execution;
use crate::txn::WriteSet;

/// Most records one purge entry may drop, whatever the order asks.
pub const PURGE_PER_ENTRY_MAX: u32 = 10_000;

fn drop_record(ws: &mut WriteSet<'_>, e: &Execution) -> Result<(), StoreError> {
    ws.remove(keys::execution(e.id));
    ws.remove(keys::execution_by_task(e.task_id, e.id));
    ws.remove(keys::execution_by_status(e.status, e.id));
    bump(ws, &keys::execution_count(e.status), -1)?;
    let mut rt = runtime(ws, e.task_id)?;
    let slot = &mut rt.counts[e.status.code() as usize - 1];
    *slot = slot.saturating_sub(1);
    put_runtime(ws, e.task_id, &rt)
}

pub(super) fn apply_purge(ws: &mut WriteSet<'_>, at: super::At, order: &PurgeOrder) -> Result<Response, StoreError> {
    let limit = order.limit.min(PURGE_PER_ENTRY_MAX) as usize;
    let mut dropped = 0usize;
    // By age: records are created in id order with the proposers' clocks, so the oldest ids
    // come first; the walk stops at the first final record that is young enough.
    for (_, v) in ws.scan_prefix(keys::EXECUTION, limit.saturating_mul(2))? {
        if dropped >= limit {
            break;
        }
        let e = decode_execution(&v)?;
        if e.created_ms >= order.before_ms {
            break;
        }
        if !e.status.is_active() {
            drop_record(ws, &e)?;
            dropped += 1;
        }
    }
    // By count: the oldest records of each named task beyond the maximum.
    for task in &order.tasks {
        let total: u64 = runtime(ws, *task)?.counts.iter().sum();
        let excess = total.saturating_sub(order.per_task_max) as usize;
        let want = excess.min(limit.saturating_sub(dropped));
        if want == 0 {
            continue;
        }
        let prefix = keys::execution_by_task_prefix(*task);
        let mut done = 0;
        for (k, _) in ws.scan_prefix(&prefix, want.saturating_mul(2))? {
            let Some(id) = parse_key_u64(&k[prefix.len()..]) else { continue };
            let Some(bytes) = ws.get(&keys::execution(id))? else { continue };
            let e = decode_execution(&bytes)?;
            if !e.status.is_active() {
                drop_record(ws, &e)?;
                done += 1;
                if done >= want {
                    break;
                }
            }
        }
        dropped += done;
    }
    purge_rollups(ws, at, &order.tasks)?;
    Ok(Response::Count(dropped as u64))
}

/// Rollups older than the longest report window, a few per entry: the named tasks' and, in every
/// order, the cluster's.
fn purge_rollups(ws: &mut WriteSet<'_>, at: super::At, tasks: &[u64]) -> Result<(), StoreError> {
    let cutoff_hour = at.now_ms.div_euclid(3_600_000) - ROLLUP_HOURS_KEPT;
    for task in tasks.iter().chain([&CLUSTER]) {
        let prefix = keys::rollup_prefix(*task);
        for (k, _) in ws.scan_prefix(&prefix, 64)? {
            if k < keys::rollup(*task, cutoff_hour) {
                ws.remove(k);
            }
        }
    }
    Ok(())
}
