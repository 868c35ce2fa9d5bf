//! The task table in apply: create, update, pause/resume/delete, and the indexes that go with a
//! task (its unique name, its status, the per-status counts); and the task queries of
//! [`StateView`].
//!
//! A task record (`t/`) holds the spec and its own fire watermark; what changes as it fires and
//! runs lives in its runtime record ([`super::executions::TaskRuntime`]) so a fire does not
//! rewrite the task, and every read here merges the two ([`get`], [`StateView::task`]). A
//! deleted task's record stays (ids are never reused, a dedupe replay may name it); its name is
//! freed.

use serde::{Deserialize, Serialize};

use super::executions::runtime;
use super::keys::{self, get_u64, put_u64};
use super::{balance, StateView};
use crate::codec::{self, key_u64, parse_key_u64};
use crate::command::Rejection;
use crate::error::StoreError;
use crate::model::{Task, TaskSpec, TaskStatus};
use crate::spec::{check_spec, TaskPatch};
use crate::txn::WriteSet;

/// Most tasks (active + paused) the cluster holds; creating more is rejected.
pub const TASKS_MAX: u64 = 1_000_000;

/// On-disk envelope of a task. Variants are appended, never changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StoredTask {
    V1(Task),
}

/// A task command's answer: the task as it now is, or why not.
pub(super) type Outcome = Result<Task, Rejection>;

/// Tasks that are active or paused.
pub(super) fn live(ws: &WriteSet<'_>) -> Result<u64, StoreError> {
    Ok(get_u64(ws, &keys::task_count(TaskStatus::Active))? + get_u64(ws, &keys::task_count(TaskStatus::Paused))?)
}

pub(super) fn create(ws: &mut WriteSet<'_>, now_ms: i64, spec: &TaskSpec) -> Result<Outcome, StoreError> {
    if live(ws)? >= TASKS_MAX {
        return Ok(Err(Rejection::TooManyTasks { max: TASKS_MAX }));
    }
    if let Err(e) = check_spec(spec) {
        return Ok(Err(Rejection::InvalidSpec(e)));
    }
    if let Some(id) = id_by_name(ws, &spec.name)? {
        return Ok(Err(Rejection::NameTaken { name: spec.name.clone(), id }));
    }
    let id = get_u64(ws, keys::NEXT_TASK_ID)?.max(1);
    put_u64(ws, keys::NEXT_TASK_ID, id + 1);
    let task = Task {
        id,
        spec: spec.clone(),
        status: TaskStatus::Active,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        version: 1,
        fire_watermark_ms: now_ms,
    };
    ws.insert(keys::task_name(&spec.name), key_u64(id).to_vec());
    index_status(ws, &task, None)?;
    put(ws, &task)?;
    Ok(Ok(task))
}

pub(super) fn update(
    ws: &mut WriteSet<'_>,
    now_ms: i64,
    id: u64,
    patch: &TaskPatch,
    expected_version: Option<u64>,
) -> Result<Outcome, StoreError> {
    let Some(mut task) = get(ws, id)? else { return Ok(Err(Rejection::TaskNotFound { id })) };
    if task.status == TaskStatus::Deleted {
        return Ok(Err(Rejection::TaskDeleted { id }));
    }
    if let Some(expected) = expected_version.filter(|v| *v != task.version) {
        return Ok(Err(Rejection::VersionConflict { id, expected, actual: task.version }));
    }
    let spec = &patch.merged_into(&task.spec);
    if let Err(e) = check_spec(spec) {
        return Ok(Err(Rejection::InvalidSpec(e)));
    }
    if spec.name != task.spec.name {
        if let Some(other) = id_by_name(ws, &spec.name)? {
            return Ok(Err(Rejection::NameTaken { name: spec.name.clone(), id: other }));
        }
        ws.remove(keys::task_name(&task.spec.name));
        ws.insert(keys::task_name(&spec.name), key_u64(id).to_vec());
    }
    task.spec = spec.clone();
    task.version += 1;
    task.updated_at_ms = now_ms;
    // Rescheduled from the next slot after the update.
    task.fire_watermark_ms = task.fire_watermark_ms.max(now_ms);
    put(ws, &task)?;
    Ok(Ok(task))
}

/// Pause, resume and delete, on the task's record and indexes. A change to the status it
/// already has is a no-op that succeeds; nothing leaves `deleted`. The flag says whether the
/// status changed: the caller then deals with the task's queued runs (they are the run's
/// business, [`super::run::cancel_queued`]).
pub(super) fn set_status(
    ws: &mut WriteSet<'_>,
    now_ms: i64,
    id: u64,
    to: TaskStatus,
) -> Result<Result<(Task, bool), Rejection>, StoreError> {
    let Some(mut task) = get(ws, id)? else { return Ok(Err(Rejection::TaskNotFound { id })) };
    if task.status == to {
        return Ok(Ok((task, false)));
    }
    if task.status == TaskStatus::Deleted {
        return Ok(Err(Rejection::TaskDeleted { id }));
    }
    let from = task.status;
    task.status = to;
    task.version += 1;
    task.updated_at_ms = now_ms;
    if to == TaskStatus::Active {
        // Slots that passed while paused are not fired: the watermark moves to the resume time.
        task.fire_watermark_ms = task.fire_watermark_ms.max(now_ms);
    }
    if to == TaskStatus::Deleted {
        ws.remove(keys::task_name(&task.spec.name));
        balance::forget(ws, id);
    }
    index_status(ws, &task, Some(from))?;
    put(ws, &task)?;
    Ok(Ok((task, true)))
}

fn index_status(ws: &mut WriteSet<'_>, task: &Task, from: Option<TaskStatus>) -> Result<(), StoreError> {
    if let Some(from) = from {
        ws.remove(keys::task_status(from, task.id));
        let n = get_u64(ws, &keys::task_count(from))?;
        put_u64(ws, &keys::task_count(from), n.saturating_sub(1));
    }
    ws.insert(keys::task_status(task.status, task.id), Vec::new());
    let n = get_u64(ws, &keys::task_count(task.status))?;
    put_u64(ws, &keys::task_count(task.status), n + 1);
    Ok(())
}

fn put(ws: &mut WriteSet<'_>, task: &Task) -> Result<(), StoreError> {
    ws.insert(keys::task(task.id), codec::encode(&StoredTask::V1(task.clone()))?);
    Ok(())
}

/// The task with its effective watermark (its own, or the latest fire from its runtime record).
pub(super) fn get(ws: &WriteSet<'_>, id: u64) -> Result<Option<Task>, StoreError> {
    let Some(mut task) = ws.get(&keys::task(id))?.map(|b| decode(&b)).transpose()? else { return Ok(None) };
    task.fire_watermark_ms = task.fire_watermark_ms.max(runtime(ws, id)?.watermark_ms);
    Ok(Some(task))
}

pub(super) fn id_by_name(ws: &WriteSet<'_>, name: &str) -> Result<Option<u64>, StoreError> {
    Ok(ws.get(&keys::task_name(name))?.as_deref().and_then(parse_key_u64))
}

pub(super) fn decode(bytes: &[u8]) -> Result<Task, StoreError> {
    let StoredTask::V1(task) = codec::decode(bytes)?;
    Ok(task)
}

/// One page of tasks plus the total that matched.
#[derive(Debug, Clone)]
pub struct TaskPage {
    pub items: Vec<Task>,
    pub total: u64,
}

impl StateView {
    /// A task, with its effective watermark (see [`super::executions::TaskRuntime`]).
    pub fn task(&self, id: u64) -> Result<Option<Task>, StoreError> {
        let Some(mut task) = self.tree.get(keys::task(id))?.map(|b| decode(&b)).transpose()? else {
            return Ok(None);
        };
        task.fire_watermark_ms = task.fire_watermark_ms.max(self.runtime(id)?.watermark_ms);
        Ok(Some(task))
    }

    /// A non-deleted task by its unique name.
    pub fn task_by_name(&self, name: &str) -> Result<Option<Task>, StoreError> {
        match self.tree.get(keys::task_name(name))?.as_deref().and_then(parse_key_u64) {
            Some(id) => self.task(id),
            None => Ok(None),
        }
    }

    /// How many tasks have `status`.
    pub fn count(&self, status: TaskStatus) -> Result<u64, StoreError> {
        Ok(self.tree.get(keys::task_count(status))?.as_deref().and_then(parse_key_u64).unwrap_or(0))
    }

    /// Tasks in id order, `page` counted from 1. With no status, every non-deleted task.
    pub fn list_tasks(&self, status: Option<TaskStatus>, page: u64, page_size: u64) -> Result<TaskPage, StoreError> {
        let statuses = match status {
            Some(s) => vec![s],
            None => vec![TaskStatus::Active, TaskStatus::Paused],
        };
        let mut total = 0;
        for s in &statuses {
            total += self.count(*s)?;
        }
        let skip = page.saturating_sub(1).saturating_mul(page_size) as usize;
        let mut ids = Vec::new();
        if statuses.len() == 1 {
            let prefix = keys::task_status_prefix(statuses[0]);
            for kv in self.tree.scan_prefix(&prefix).keys().skip(skip).take(page_size as usize) {
                ids.extend(keys::parse_task_status(&kv?));
            }
        } else {
            // Non-deleted tasks in id order: walk the task table and drop deleted ones.
            for kv in self.tree.scan_prefix(keys::TASK) {
                let (_, v) = kv?;
                let task = decode(&v)?;
                if task.status != TaskStatus::Deleted {
                    ids.push(task.id);
                }
                if ids.len() >= skip + page_size as usize {
                    break;
                }
            }
            ids.drain(..skip.min(ids.len()));
        }
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            items.extend(self.task(id)?);
        }
        Ok(TaskPage { items, total })
    }

    /// Up to `limit` tasks with `status` and an id greater than `after_id`, in id order: a
    /// cursor for walking every task without offset scans.
    pub fn tasks_after(&self, status: TaskStatus, after_id: u64, limit: usize) -> Result<Vec<Task>, StoreError> {
        let prefix = keys::task_status_prefix(status);
        let start = keys::task_status(status, after_id.saturating_add(1));
        let mut out = Vec::new();
        for k in self.tree.range(start..).keys() {
            let k = k?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            if let Some(task) = keys::parse_task_status(&k).map(|id| self.task(id)).transpose()?.flatten() {
                out.push(task);
            }
        }
        Ok(out)
    }
}
