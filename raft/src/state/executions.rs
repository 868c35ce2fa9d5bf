//! Execution records and their indexes.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `x/` | execution id | [`StoredExecution`] |
//! | `y/` | task id + execution id | empty: a task's executions in creation order |
//! | `z/` | status byte + execution id | empty: executions by status |
//! | `q/` | task id + execution id | empty: the task's `sequential` wait queue (FIFO by id) |
//! | `r/` | task id | [`TaskRuntime`]: fire watermark, per-status counts, active runs |
//! | `m/xcount/` | status byte | count of all executions in that status |
//!
//! The keys are built in [`super::keys`]. Listing newest first is a reverse scan of `y/<task>` or `z/<status>`, so the latest page of a
//! task with a million records costs one page of reads. Everything a fire changes about a task
//! lives in its one runtime record, because sled's cost is per key written: a fired slot writes
//! its record, two index entries and the (per-task) runtime record.

use serde::{Deserialize, Serialize};

use super::keys::{self, bump, get_u64, put_u64};
use super::StateView;
use crate::codec::{self, parse_key_u64};
use crate::error::StoreError;
use crate::model::{Execution, ExecutionStatus};
use crate::txn::WriteSet;

/// Most bytes of logs and result kept per execution (the tail of the logs).
pub const REPORT_BYTES_MAX: usize = 64 * 1024;

/// What changes about a task as it fires and runs, kept apart from the task's spec so a fire does
/// not rewrite the task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRuntime {
    /// The latest slot fired (UTC ms); merged with the task's own watermark on read.
    pub watermark_ms: i64,
    /// Executions of the task per status, indexed by `ExecutionStatus::code() - 1`.
    pub counts: [u64; 8],
    /// Runs that are running, or pending and not queued.
    pub active: u32,
    /// The execution of the task that most recently reached a final status, in log order
    /// (`None` before the first one ends, and for a record last written by a build before V2).
    pub last_final: Option<LastFinal>,
}

/// A task's latest final execution, as its runtime record keeps it (so listings can show and
/// filter by it without reading execution records). The execution itself may since have been
/// purged by retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastFinal {
    pub execution_id: u64,
    pub status: ExecutionStatus,
    /// The record's end time (the apply time stamped on it; its creation time if it has none).
    pub end_ms: i64,
}

/// The runtime record as stored before it kept the latest final execution.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RuntimeV1 {
    watermark_ms: i64,
    counts: [u64; 8],
    active: u32,
}

/// On-disk envelope of a runtime record. Variants are appended, never changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum StoredRuntime {
    V1(RuntimeV1),
    /// Adds the latest final execution.
    V2(TaskRuntime),
}

pub(super) fn decode_runtime(bytes: &[u8]) -> Result<TaskRuntime, StoreError> {
    Ok(match codec::decode(bytes)? {
        StoredRuntime::V1(r) => {
            TaskRuntime { watermark_ms: r.watermark_ms, counts: r.counts, active: r.active, last_final: None }
        }
        StoredRuntime::V2(r) => r,
    })
}

/// The task's runtime record as the run sees it (zeroes if it never fired).
pub(super) fn runtime(ws: &WriteSet<'_>, task: u64) -> Result<TaskRuntime, StoreError> {
    ws.get(&keys::runtime(task))?.map(|b| decode_runtime(&b)).transpose().map(Option::unwrap_or_default)
}

pub(super) fn put_runtime(ws: &mut WriteSet<'_>, task: u64, r: &TaskRuntime) -> Result<(), StoreError> {
    ws.insert(keys::runtime(task), codec::encode(&StoredRuntime::V2(*r))?);
    Ok(())
}

/// On-disk envelope of an execution.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StoredExecution {
    V1(ExecutionV1),
    /// Adds attempts, the attempt count and the retry backoff.
    V2(Execution),
}

/// An execution as stored before executors existed; read as a V2 record with no attempts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecutionV1 {
    id: u64,
    task_id: u64,
    scheduled_ms: i64,
    created_ms: i64,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    status: ExecutionStatus,
    trigger: crate::model::Trigger,
    reason: Option<crate::model::Reason>,
    queued: bool,
    parameters: String,
    requested_by: String,
    result: String,
    logs: String,
    retry_count: u32,
    log_index: u64,
    slot_count: u64,
}

impl From<ExecutionV1> for Execution {
    fn from(v: ExecutionV1) -> Self {
        Execution {
            id: v.id,
            task_id: v.task_id,
            scheduled_ms: v.scheduled_ms,
            created_ms: v.created_ms,
            start_ms: v.start_ms,
            end_ms: v.end_ms,
            status: v.status,
            trigger: v.trigger,
            reason: v.reason,
            queued: v.queued,
            parameters: v.parameters,
            requested_by: v.requested_by,
            result: v.result,
            logs: v.logs,
            retry_count: v.retry_count,
            log_index: v.log_index,
            slot_count: v.slot_count,
            attempts: Vec::new(),
            attempt_count: 0,
            not_before_ms: 0,
        }
    }
}

/// The leading fields of a stored execution (V1 and V2 begin alike), decoded without the text
/// behind them: what a filtered listing looks at for each record it passes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ExecutionHead {
    pub id: u64,
    pub task_id: u64,
    pub scheduled_ms: i64,
    pub created_ms: i64,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub status: ExecutionStatus,
    pub trigger: crate::model::Trigger,
}

/// [`StoredExecution`] read as far as its [`ExecutionHead`].
#[derive(Deserialize)]
enum StoredHead {
    V1(ExecutionHead),
    V2(ExecutionHead),
}

/// The head of a stored execution; the bytes after it are not read.
pub(super) fn decode_head(bytes: &[u8]) -> Result<ExecutionHead, StoreError> {
    Ok(match codec::decode(bytes)? {
        StoredHead::V1(h) | StoredHead::V2(h) => h,
    })
}

/// The next execution id (dense, never reused).
pub(super) fn next_execution_id(ws: &mut WriteSet<'_>) -> Result<u64, StoreError> {
    let id = get_u64(ws, keys::NEXT_EXECUTION_ID)?.max(1);
    put_u64(ws, keys::NEXT_EXECUTION_ID, id + 1);
    Ok(id)
}

pub(super) fn get_execution(ws: &WriteSet<'_>, id: u64) -> Result<Option<Execution>, StoreError> {
    ws.get(&keys::execution(id))?.map(|b| decode_execution(&b)).transpose()
}

pub(super) fn decode_execution(bytes: &[u8]) -> Result<Execution, StoreError> {
    Ok(match codec::decode(bytes)? {
        StoredExecution::V1(e) => e.into(),
        StoredExecution::V2(e) => e,
    })
}

/// Whether a record sits in the task's active set: running, or pending and not queued.
fn is_active(e: &Execution) -> bool {
    e.status == ExecutionStatus::Running || (e.status == ExecutionStatus::Pending && !e.queued)
}

/// Whether this write of `exec` is the one that gives it a final status.
pub(super) fn ended(exec: &Execution, old: Option<&Execution>) -> bool {
    !exec.status.is_active() && old.map(|o| o.status.is_active()).unwrap_or(true)
}

/// Writes `exec` and moves its indexes and counters from `old` (its previous state, if any).
pub(super) fn put_execution(
    ws: &mut WriteSet<'_>,
    exec: &Execution,
    old: Option<&Execution>,
) -> Result<(), StoreError> {
    let id = exec.id;
    let mut rt = runtime(ws, exec.task_id)?;
    match old {
        None => ws.insert(keys::execution_by_task(exec.task_id, id), Vec::new()),
        Some(o) => {
            if o.status != exec.status {
                ws.remove(keys::execution_by_status(o.status, id));
                let slot = &mut rt.counts[o.status.code() as usize - 1];
                *slot = slot.saturating_sub(1);
                bump(ws, &keys::execution_count(o.status), -1)?;
            }
            if is_active(o) {
                rt.active = rt.active.saturating_sub(1);
            }
            if o.queued && !exec.queued {
                ws.remove(keys::queue(o.task_id, id));
            }
        }
    }
    if old.map(|o| o.status != exec.status).unwrap_or(true) {
        ws.insert(keys::execution_by_status(exec.status, id), Vec::new());
        rt.counts[exec.status.code() as usize - 1] += 1;
        bump(ws, &keys::execution_count(exec.status), 1)?;
    }
    if is_active(exec) {
        rt.active += 1;
    }
    if ended(exec, old) {
        let end_ms = exec.end_ms.unwrap_or(exec.created_ms);
        rt.last_final = Some(LastFinal { execution_id: id, status: exec.status, end_ms });
    }
    if exec.queued && !old.map(|o| o.queued).unwrap_or(false) {
        ws.insert(keys::queue(exec.task_id, id), Vec::new());
    }
    put_runtime(ws, exec.task_id, &rt)?;
    super::stats::record_transition(ws, exec, old)?;
    super::outcomes::record_transition(ws, exec, old)?;
    ws.insert(keys::execution(id), codec::encode(&StoredExecution::V2(exec.clone()))?);
    Ok(())
}

/// The ids of the task's active runs, newest first (a reverse walk of its records that stops once
/// it found them all; active runs are recent).
pub(super) fn active_ids(ws: &WriteSet<'_>, task: u64) -> Result<Vec<u64>, StoreError> {
    let want = runtime(ws, task)?.active as usize;
    let prefix = keys::execution_by_task_prefix(task);
    let mut found = Vec::new();
    if want == 0 {
        return Ok(found);
    }
    let ids = ids_under(ws, &prefix, usize::MAX)?;
    for id in ids.into_iter().rev() {
        if let Some(e) = get_execution(ws, id)? {
            if is_active(&e) {
                found.push(id);
                if found.len() == want {
                    break;
                }
            }
        }
    }
    Ok(found)
}

/// Ids under a `task`-scoped prefix (`y/` or `q/`), in id order, at most `limit`.
pub(super) fn ids_under(ws: &WriteSet<'_>, prefix: &[u8], limit: usize) -> Result<Vec<u64>, StoreError> {
    let pairs = ws.scan_prefix(prefix, limit)?;
    Ok(pairs.iter().filter_map(|(k, _)| parse_key_u64(&k[prefix.len()..])).collect())
}

/// One page of executions plus the total that matched.
#[derive(Debug, Clone)]
pub struct ExecutionPage {
    pub items: Vec<Execution>,
    pub total: u64,
}

impl StateView {
    pub fn execution(&self, id: u64) -> Result<Option<Execution>, StoreError> {
        self.tree.get(keys::execution(id))?.map(|b| decode_execution(&b)).transpose()
    }

    fn count_at(&self, key: &[u8]) -> Result<u64, StoreError> {
        Ok(self.tree.get(key)?.as_deref().and_then(parse_key_u64).unwrap_or(0))
    }

    /// The task's runtime record.
    pub fn runtime(&self, task: u64) -> Result<TaskRuntime, StoreError> {
        self.tree.get(keys::runtime(task))?.map(|b| decode_runtime(&b)).transpose().map(Option::unwrap_or_default)
    }

    /// Execution records kept, in every status: a few counter reads.
    pub fn execution_records(&self) -> Result<u64, StoreError> {
        let mut total = 0u64;
        for s in ExecutionStatus::ALL {
            total = total.saturating_add(self.count_at(&keys::execution_count(s))?);
        }
        Ok(total)
    }

    /// Executions waiting in a `sequential` task's queue, over every task: one walk of the queue
    /// keys (each task's queue holds at most `SEQUENTIAL_QUEUE_MAX`).
    pub fn queued_runs(&self) -> Result<u64, StoreError> {
        let mut n = 0;
        for k in self.tree.scan_prefix(keys::queue_prefix_all()).keys() {
            k?;
            n += 1;
        }
        Ok(n)
    }

    /// The `n` tasks with the most failed or timed-out execution records kept, most first (ties
    /// by id), leaving out tasks with none: one pass over the runtime records, one per task.
    pub fn tasks_by_failures(&self, n: usize) -> Result<Vec<(u64, u64)>, StoreError> {
        let (failed, timeout) =
            (ExecutionStatus::Failed.code() as usize - 1, ExecutionStatus::Timeout.code() as usize - 1);
        let mut top: std::collections::BinaryHeap<std::cmp::Reverse<(u64, std::cmp::Reverse<u64>)>> =
            std::collections::BinaryHeap::with_capacity(n + 1);
        for kv in self.tree.scan_prefix(keys::RUNTIME) {
            let (k, v) = kv?;
            let Some(task) = keys::parse_runtime(&k) else { continue };
            let r = decode_runtime(&v)?;
            let failures = r.counts[failed] + r.counts[timeout];
            if failures == 0 || n == 0 {
                continue;
            }
            top.push(std::cmp::Reverse((failures, std::cmp::Reverse(task))));
            if top.len() > n {
                top.pop();
            }
        }
        let mut out: Vec<(u64, u64)> =
            top.into_iter().map(|std::cmp::Reverse((f, std::cmp::Reverse(t)))| (t, f)).collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// How many executions `task` has in `status`.
    pub fn execution_count(&self, task: u64, status: ExecutionStatus) -> Result<u64, StoreError> {
        Ok(self.runtime(task)?.counts[status.code() as usize - 1])
    }

    /// Executions newest first, filtered by task and/or status; `page` counts from 1.
    pub fn list_executions(
        &self,
        task: Option<u64>,
        status: Option<ExecutionStatus>,
        page: u64,
        page_size: u64,
    ) -> Result<ExecutionPage, StoreError> {
        let skip = page.saturating_sub(1).saturating_mul(page_size) as usize;
        let take = page_size as usize;
        let (prefix, total): (Vec<u8>, u64) = match (task, status) {
            (Some(t), Some(s)) => (keys::execution_by_task_prefix(t), self.execution_count(t, s)?),
            (Some(t), None) => (keys::execution_by_task_prefix(t), self.runtime(t)?.counts.iter().sum()),
            (None, Some(s)) => (keys::execution_by_status_prefix(s), self.count_at(&keys::execution_count(s))?),
            (None, None) => {
                let mut total = 0;
                for s in ExecutionStatus::ALL {
                    total += self.count_at(&keys::execution_count(s))?;
                }
                (keys::EXECUTION.to_vec(), total)
            }
        };
        let mut items = Vec::with_capacity(take);
        // With a task and a status the walk reads the task's index and filters. The task's exact
        // count of that status lets it stop at the last match (or not start when the page lies
        // past every match) instead of reading a million records to find none.
        let filtered = task.is_some() && status.is_some();
        if filtered && skip as u64 >= total {
            return Ok(ExecutionPage { items, total });
        }
        let mut skipped = 0;
        let mut matched = 0u64;
        for kv in self.tree.scan_prefix(&prefix).rev() {
            let (k, v) = kv?;
            let exec = if prefix.starts_with(keys::EXECUTION) {
                decode_execution(&v)?
            } else {
                let id = parse_key_u64(&k[prefix.len()..]).unwrap_or(0);
                match self.execution(id)? {
                    Some(e) => e,
                    None => continue,
                }
            };
            if filtered && Some(exec.status) != status {
                continue;
            }
            matched += 1;
            if skipped < skip {
                skipped += 1;
                continue;
            }
            items.push(exec);
            if items.len() >= take || (filtered && matched >= total) {
                break;
            }
        }
        Ok(ExecutionPage { items, total })
    }

    /// The ids of every pending or running execution, queued ones included (what a new
    /// leader's dispatcher resumes).
    pub fn active_execution_ids(&self) -> Result<Vec<u64>, StoreError> {
        let mut ids = Vec::new();
        for status in [ExecutionStatus::Pending, ExecutionStatus::Running] {
            for k in self.tree.scan_prefix(keys::execution_by_status_prefix(status)).keys() {
                ids.extend(keys::parse_execution_by_status(&k?));
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }
}

/// The last `max` bytes of `s`, cut at a character boundary.
pub fn truncate_tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Trigger;

    /// A runtime record written by a build before V2 still decodes, with no latest result.
    #[test]
    fn a_v1_runtime_record_decodes_without_a_latest_result() {
        let v1 = StoredRuntime::V1(RuntimeV1 { watermark_ms: 42, counts: [1, 0, 2, 0, 0, 0, 0, 0], active: 1 });
        let r = decode_runtime(&codec::encode(&v1).unwrap()).unwrap();
        assert_eq!((r.watermark_ms, r.counts[2], r.active, r.last_final), (42, 2, 1, None));
        let last = LastFinal { execution_id: 7, status: ExecutionStatus::Failed, end_ms: 99 };
        let v2 = TaskRuntime { last_final: Some(last), ..r };
        assert_eq!(decode_runtime(&codec::encode(&StoredRuntime::V2(v2)).unwrap()).unwrap(), v2);
    }

    /// The head a listing reads is the leading fields of both stored shapes of an execution.
    #[test]
    fn the_head_of_either_stored_execution_is_its_leading_fields() {
        let v1 = ExecutionV1 {
            id: 3,
            task_id: 2,
            scheduled_ms: -5,
            created_ms: 10,
            start_ms: None,
            end_ms: Some(11),
            status: ExecutionStatus::Missed,
            trigger: Trigger::Catchup,
            reason: None,
            queued: false,
            parameters: String::new(),
            requested_by: "me".into(),
            result: String::new(),
            logs: "x".repeat(1000),
            retry_count: 0,
            log_index: 9,
            slot_count: 1,
        };
        let v2: Execution = Execution { logs: "y".repeat(70_000), ..v1.clone().into() };
        let want = ExecutionHead {
            id: 3,
            task_id: 2,
            scheduled_ms: -5,
            created_ms: 10,
            start_ms: None,
            end_ms: Some(11),
            status: ExecutionStatus::Missed,
            trigger: Trigger::Catchup,
        };
        assert_eq!(decode_head(&codec::encode(&StoredExecution::V1(v1)).unwrap()).unwrap(), want);
        assert_eq!(decode_head(&codec::encode(&StoredExecution::V2(v2)).unwrap()).unwrap(), want);
    }
}
