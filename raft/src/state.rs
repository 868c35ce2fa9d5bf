//! The state machine's data and its deterministic `apply`: this file routes one committed entry to
//! the module of its concept; each concept is one module.
//!
//! | module | concept |
//! |---|---|
//! | [`keys`] | every key prefix and key constructor (the on-disk layout, in one place) |
//! | [`dedupe`] | request ids: the answer a retried request gets, and their expiry |
//! | [`tasks`] | the task table: create, update, pause/resume/delete, the name and status indexes |
//! | [`view`] | [`StateView`], the read side (each concept adds its queries in its own module) |
//! | [`fire`] | slot acceptance: the watermark, the misfire policy, summarized spans |
//! | [`run`] | one execution's life: admit, dispatch, attempt close, retry, settle, queue |
//! | [`dispatch`] | the dispatcher's and executors' commands: rounds, reports, attempt ends, stops |
//! | [`executions`] | execution records, their indexes and the per-task runtime record |
//! | [`registry`], [`balance`] | executors, bindings and loads; the five balance strategies |
//! | [`stats`], [`retention`] | hourly rollups, per task and for the cluster; purging old records |
//! | [`listing`] | filtered listings: tasks by name, group, mode, latest result, sorted; executions by trigger and slot time |
//! | [`tokens`], [`audit`] | API tokens (hashes only); who changed what |
//! | [`notify`], [`alerts`] | notification channels, rules and delivery reports; events from state changes, rule matching, the outbox |
//!
//! Calls go one way: a module never calls back into the module that called it. A scheduled fire
//! reads `apply_command` → [`fire`] → [`run`] (admit, then the first attempt); the executor's
//! callback comes back as a `Report` through [`dispatch`] → [`run`] (close the attempt, retry or
//! settle, start the next queued run). A pause, delete or update is [`tasks`], then [`fire`]
//! for the slots it cut off before they were fired, then (pause, delete) [`run`] for the
//! task's queue. [`alerts`] is a leaf: [`executions`] (a run's final status), [`registry`] and
//! [`dispatch`] (executor health), and [`run`] (no healthy executor) call it; it calls back
//! into nothing but [`tasks`] and [`notify`] (the rules, the outbox entries).
//!
//! All replicated state lives in one sled tree (one per snapshot generation, see
//! [`crate::store::state_machine`]) under the short key prefixes of [`keys`], so one `apply` run
//! is one atomic sled batch and a snapshot is a plain dump of one tree.
//!
//! `apply` never reads a clock, a random source or the network: time and ids come inside the
//! [`Request`]; task ids come from a replicated counter.

use openraft::EntryPayload;

use crate::codec;
use crate::command::{Command, Request, Response};
use crate::error::StoreError;
use crate::model::TaskStatus;
use crate::txn::WriteSet;
use crate::TypeConfig;

mod alerts;
mod audit;
mod balance;
pub mod cluster_id;
mod dedupe;
mod dispatch;
mod executions;
mod fire;
pub(crate) mod keys;
mod listing;
mod notify;
mod outcomes;
mod registry;
mod retention;
mod run;
mod stats;
mod tasks;
mod tokens;
mod view;

pub use audit::{AuditEntry, StoredAudit, ANONYMOUS, AUDIT_LEN_MAX};
pub use dedupe::{StoredAnswer, StoredDedupe, DEDUPE_LEN_MAX, DEDUPE_TEXT_BYTES_MAX, DEDUPE_TTL_MS};
pub use executions::{
    truncate_tail, ExecutionHead, ExecutionPage, ExecutionV1, LastFinal, StoredExecution, TaskRuntime, REPORT_BYTES_MAX,
};
pub use fire::MISFIRE_THRESHOLD_MS;
pub use listing::{
    ExecutionQuery, ExecutionQueryPage, LastResultFilter, TaskQuery, TaskSort, COUNT_MAX, CREATED_MARGIN_MS,
    WALK_RECORDS_MAX,
};
pub use notify::{OutboxStats, RuleSummary};
pub use outcomes::{
    DispatchFailure, GroupOutcomes, GROUPS_MAX, MISSED_REASONS, OTHER_LABEL, RUN_STATUSES, SKIPPED_REASONS, TRIGGERS,
};
pub use registry::{ExecutorPage, StoredExecutor};
pub use retention::PURGE_PER_ENTRY_MAX;
pub use run::{end_run, retry_backoff_ms, ATTEMPTS_MAX, RETRY_BACKOFF_MS_BASE, SEQUENTIAL_QUEUE_MAX};
pub use stats::{LastHour, TaskStats, WindowStats, CLUSTER, ON_TIME_MS};
pub use tasks::{StoredTask, TaskPage, TASKS_MAX};
pub use tokens::{StoredToken, TOKENS_MAX, TOKEN_NAME_LEN_MAX, TOKEN_SCOPE_ITEMS_MAX};
pub use view::{encode_membership, StateDigest, StateView};

/// How apply behaves, beyond the entries: set once when the store opens
/// ([`crate::store::open`]) and kept by the state machine, never read from the environment
/// inside apply. Every node of a cluster must get the same value: apply stays a function of the
/// log only if all replicas apply it alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// UNSAFE, TEST-ONLY (`CRONRAFT_UNSAFE=ignore-watermark`, which `Node::start` turns into
    /// this flag; only a build with the `unsafe-modes` feature, see [`crate::unsafe_modes`]):
    /// apply ignores the task's fire watermark — it neither drops slots at or before it nor
    /// moves it forward on a fire. The leader that proposed a slot still remembers it (the
    /// scheduler's in-memory `fired_through`), so the damage shows when a scheduler rebuilds its
    /// timers from the replicated state — a new leader, a failed proposal: it re-derives every
    /// slot since the task's creation, update or resume and fires them again, giving a second
    /// execution for the same (task, slot). It exists only so the chaos harness can prove its
    /// one-execution-per-slot checker catches that
    /// (`cronraft-chaos run --unsafe ignore-watermark --nemesis kill --workload cron`).
    pub ignore_watermark: bool,
}

/// Context of the entry being applied.
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub now_ms: i64,
    pub log_index: u64,
}

/// Applies one committed entry to the write set and returns its response.
pub fn apply_entry(
    ws: &mut WriteSet<'_>,
    entry: &openraft::Entry<TypeConfig>,
    options: ApplyOptions,
) -> Result<Response, StoreError> {
    ws.insert(keys::APPLIED.to_vec(), codec::encode(&view::StoredApplied::V1(entry.log_id))?);
    match &entry.payload {
        EntryPayload::Blank => Ok(Response::Empty),
        EntryPayload::Membership(m) => {
            let stored = openraft::StoredMembership::new(Some(entry.log_id), m.clone());
            ws.insert(keys::MEMBERSHIP.to_vec(), codec::encode(&view::StoredMembershipConfig::V1(stored))?);
            Ok(Response::Empty)
        }
        EntryPayload::Normal(request) => apply_request(ws, request, entry.log_id.index, options),
    }
}

/// Applies one request, deduplicating by request id (internal requests, such as fires, carry an
/// empty id: the watermark deduplicates those).
pub fn apply_request(
    ws: &mut WriteSet<'_>,
    request: &Request,
    log_index: u64,
    options: ApplyOptions,
) -> Result<Response, StoreError> {
    let at = At { now_ms: request.now_ms, log_index };
    if request.request_id.is_empty() {
        return apply_command(ws, at, &request.command, options);
    }
    let fingerprint = dedupe::fingerprint(&request.command)?;
    if let Some(answer) = dedupe::seen(ws, request, fingerprint)? {
        tracing::debug!(request_id = %request.request_id, log_index, "write already applied: its first answer again");
        return Ok(answer);
    }
    // The client write's request id, as the access log of the node that received it shows it
    // (a log line is no state: apply stays deterministic).
    tracing::debug!(request_id = %request.request_id, log_index, "applying a client write");
    let response = apply_command(ws, at, &request.command, options)?;
    dedupe::remember(ws, request, fingerprint, &response)?;
    Ok(response)
}

fn apply_command(
    ws: &mut WriteSet<'_>,
    at: At,
    command: &Command,
    options: ApplyOptions,
) -> Result<Response, StoreError> {
    let outcome = match command {
        Command::CreateTask { spec } => tasks::create(ws, at.now_ms, spec)?,
        Command::UpdateTask { id, patch, expected_version } => {
            let before = tasks::get(ws, *id)?;
            let updated = tasks::update(ws, at.now_ms, *id, patch, *expected_version)?;
            if let (Ok(_), Some(before)) = (&updated, before) {
                fire::cut_off(ws, at, &before)?;
            }
            updated
        }
        Command::DeleteTask { id } => set_status(ws, at, *id, TaskStatus::Deleted)?,
        Command::PauseTask { id } => set_status(ws, at, *id, TaskStatus::Paused)?,
        Command::ResumeTask { id } => set_status(ws, at, *id, TaskStatus::Active)?,
        Command::Fire(batch) => return Ok(Response::Fired(fire::apply_fire(ws, at, batch, None, options)?)),
        Command::FireAndDispatch { batch, seed, term } => {
            return Ok(Response::Fired(fire::apply_fire(ws, at, batch, Some((*seed, *term)), options)?))
        }
        Command::Batch(requests) => {
            let mut out = Vec::with_capacity(requests.len());
            for r in requests {
                // One level only: no proposer builds a batch inside a batch.
                out.push(match r.command {
                    Command::Batch(_) => Response::Empty,
                    _ => apply_request(ws, r, at.log_index, options)?,
                });
            }
            return Ok(Response::Batch(out));
        }
        Command::TriggerTask { id, parameters, requested_by } => {
            return Ok(match run::trigger(ws, at, *id, parameters.as_deref(), requested_by)? {
                Ok(e) => Response::Execution(e),
                Err(r) => Response::Rejected(r),
            })
        }
        Command::RegisterExecutor { spec, tasks } => return registry::register(ws, at, spec, tasks),
        Command::SetExecutorStatus { id, status, reason } => return registry::set_status(ws, at, *id, *status, reason),
        Command::RemoveExecutor { id } => return registry::remove(ws, *id),
        Command::Dispatch(batch) => return dispatch::apply_dispatch(ws, at, batch),
        Command::Report(report) => return dispatch::apply_report(ws, at, report),
        Command::EndAttempts(ends) => return dispatch::apply_end_attempts(ws, at, ends),
        Command::StopExecution { id, requested_by } => return dispatch::apply_stop(ws, at, *id, requested_by),
        Command::SetHealth(changes) => return registry::set_health(ws, changes),
        Command::Purge(order) => return retention::apply_purge(ws, at, order),
        Command::Attributed { by, command } => {
            // One level only: no proposer wraps an attributed command again.
            if matches!(**command, Command::Attributed { .. } | Command::Batch(_)) {
                return Ok(Response::Empty);
            }
            let response = apply_command(ws, at, command, options)?;
            audit::record(ws, at, by, command, &response)?;
            return Ok(response);
        }
        Command::CreateToken { spec, created_by } => return tokens::create(ws, at, spec, created_by),
        Command::RevokeToken { name } => return tokens::revoke(ws, name),
        Command::CreateChannel { spec } => return notify::create_channel(ws, at, spec),
        Command::UpdateChannel { name, patch } => return notify::update_channel(ws, at, name, patch),
        Command::DeleteChannel { name } => return notify::delete_channel(ws, name),
        Command::CreateRule { spec } => return notify::create_rule(ws, at, spec),
        Command::UpdateRule { id, spec } => return notify::update_rule(ws, at, *id, spec),
        Command::DeleteRule { id } => return notify::delete_rule(ws, *id),
        Command::RaiseEvents(events) => return alerts::raise(ws, at, events),
        Command::ReportDeliveries(report) => return notify::report(ws, at, report),
        Command::SetClusterId { id } => return cluster_id::set(ws, id),
    };
    Ok(match outcome {
        Ok(task) => Response::Task(task),
        Err(rejection) => Response::Rejected(rejection),
    })
}

/// Pause, resume and delete: the task's record ([`tasks`]), then, when the task stops being
/// active, the slots it cut off before they were fired ([`fire::cut_off`]) and its queued
/// executions, which will not run ([`run`]).
fn set_status(ws: &mut WriteSet<'_>, at: At, id: u64, to: TaskStatus) -> Result<tasks::Outcome, StoreError> {
    let before = tasks::get(ws, id)?;
    let changed = tasks::set_status(ws, at.now_ms, id, to)?;
    if matches!(changed, Ok((_, true))) && to != TaskStatus::Active {
        if let Some(before) = before {
            fire::cut_off(ws, at, &before)?;
        }
        run::cancel_queued(ws, at, id)?;
    }
    Ok(changed.map(|(task, _)| task))
}

#[cfg(test)]
mod tests;
