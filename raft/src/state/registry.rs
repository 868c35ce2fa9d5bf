//! The executor registry in apply: registration (with task upserts and bindings), operator
//! status, deregistration and health transitions.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `v/` | executor id | [`StoredExecutor`] |
//! | `i/` | instance id | executor id |
//! | `g/` | group name, `0x00`, executor id | empty: a group's instances in id order |
//! | `b/` | task id + executor id | [`Binding`] |
//! | `w/` | executor id + task id | empty: the reverse of `b/`, to unbind on deregistration |
//! | `l/a/` | executor id | attempts running on it (the `least_loaded` measure) |

use serde::{Deserialize, Serialize};

use super::keys::{self, get_u64, put_u64};
use super::{tasks, At, StateView};
use crate::codec::{self, key_u64, parse_key_u64};
use crate::command::{HealthChange, Rejection, Response, TaskUpsert};
use crate::error::StoreError;
use crate::model::{Binding, Executor, ExecutorSpec, ExecutorStatus, TaskStatus};
use crate::spec::check_spec;
use crate::txn::WriteSet;

/// On-disk envelope of an executor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StoredExecutor {
    V1(Executor),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum StoredBinding {
    V1(Binding),
}

pub(super) fn get_executor(ws: &WriteSet<'_>, id: u64) -> Result<Option<Executor>, StoreError> {
    ws.get(&keys::executor(id))?.map(|b| decode_executor(&b)).transpose()
}

pub(super) fn decode_executor(bytes: &[u8]) -> Result<Executor, StoreError> {
    let StoredExecutor::V1(e) = codec::decode(bytes)?;
    Ok(e)
}

pub(super) fn put_executor(ws: &mut WriteSet<'_>, e: &Executor) -> Result<(), StoreError> {
    ws.insert(keys::executor(e.id), codec::encode(&StoredExecutor::V1(e.clone()))?);
    Ok(())
}

pub(super) fn decode_binding(bytes: &[u8]) -> Result<Binding, StoreError> {
    let StoredBinding::V1(b) = codec::decode(bytes)?;
    Ok(b)
}

/// Attempts running on `exec`, moved by `delta`.
pub(super) fn add_load(ws: &mut WriteSet<'_>, exec: u64, delta: i64) -> Result<(), StoreError> {
    let key = keys::load(exec);
    let n = get_u64(ws, &key)?.saturating_add_signed(delta);
    put_u64(ws, &key, n);
    Ok(())
}

/// `POST /executors/register`.
pub(super) fn register(
    ws: &mut WriteSet<'_>,
    at: At,
    spec: &ExecutorSpec,
    tasks: &[TaskUpsert],
) -> Result<Response, StoreError> {
    // Check every task first: a registration applies whole or not at all.
    let mut creates = 0;
    for t in tasks {
        let merged = match tasks::id_by_name(ws, &t.create.name)? {
            Some(id) => match tasks::get(ws, id)? {
                Some(task) => t.patch.merged_into(&task.spec),
                None => t.create.clone(),
            },
            None => {
                creates += 1;
                t.create.clone()
            }
        };
        if let Err(e) = check_spec(&merged) {
            return Ok(Response::Rejected(Rejection::InvalidSpec(e)));
        }
    }
    if creates > 0 && tasks::live(ws)? + creates > tasks::TASKS_MAX {
        return Ok(Response::Rejected(Rejection::TooManyTasks { max: tasks::TASKS_MAX }));
    }
    let existing = ws.get(&keys::instance(&spec.instance_id))?.as_deref().and_then(parse_key_u64);
    let executor = match existing.map(|id| get_executor(ws, id)).transpose()?.flatten() {
        Some(mut e) => {
            if e.spec.name != spec.name {
                ws.remove(keys::group(&e.spec.name, e.id));
                ws.insert(keys::group(&spec.name, e.id), Vec::new());
            }
            e.spec = spec.clone();
            e.updated_at_ms = at.now_ms;
            e
        }
        None => {
            let id = get_u64(ws, keys::NEXT_EXECUTOR_ID)?.max(1);
            put_u64(ws, keys::NEXT_EXECUTOR_ID, id + 1);
            ws.insert(keys::instance(&spec.instance_id), key_u64(id).to_vec());
            ws.insert(keys::group(&spec.name, id), Vec::new());
            Executor {
                id,
                spec: spec.clone(),
                status: ExecutorStatus::Online,
                status_reason: String::new(),
                is_healthy: true,
                health_check_failures: 0,
                last_health_check_ms: None,
                registered_at_ms: at.now_ms,
                updated_at_ms: at.now_ms,
            }
        }
    };
    put_executor(ws, &executor)?;
    if executor.is_healthy {
        super::alerts::clear_group(ws, &executor.spec.name)?;
    }
    let mut task_ids = Vec::with_capacity(tasks.len());
    for t in tasks {
        let outcome = match tasks::id_by_name(ws, &t.create.name)? {
            Some(id) => tasks::update(ws, at.now_ms, id, &t.patch, None)?,
            None => tasks::create(ws, at.now_ms, &t.create)?,
        };
        let Ok(task) = outcome else { continue };
        let binding = Binding { task_id: task.id, executor_id: executor.id, weight: t.weight, priority: t.priority };
        ws.insert(keys::binding(task.id, executor.id), codec::encode(&StoredBinding::V1(binding))?);
        ws.insert(keys::binding_reverse(executor.id, task.id), Vec::new());
        task_ids.push(task.id);
    }
    Ok(Response::Registered { executor, task_ids })
}

/// `PUT /executors/{id}/status`.
pub(super) fn set_status(
    ws: &mut WriteSet<'_>,
    at: At,
    id: u64,
    status: ExecutorStatus,
    reason: &str,
) -> Result<Response, StoreError> {
    let Some(mut e) = get_executor(ws, id)? else { return Ok(Response::Rejected(Rejection::ExecutorNotFound { id })) };
    (e.status, e.status_reason, e.updated_at_ms) = (status, reason.to_string(), at.now_ms);
    put_executor(ws, &e)?;
    Ok(Response::Executor(e))
}

/// `DELETE /executors/{id}`: attempts already running on it finish (or time out) as usual.
pub(super) fn remove(ws: &mut WriteSet<'_>, id: u64) -> Result<Response, StoreError> {
    let Some(e) = get_executor(ws, id)? else { return Ok(Response::Rejected(Rejection::ExecutorNotFound { id })) };
    ws.remove(keys::executor(id));
    ws.remove(keys::instance(&e.spec.instance_id));
    ws.remove(keys::group(&e.spec.name, id));
    ws.remove(keys::load(id));
    let prefix = keys::binding_reverse_prefix(id);
    for (k, _) in ws.scan_prefix(&prefix, usize::MAX)? {
        if let Some(task) = parse_key_u64(&k[prefix.len()..]) {
            ws.remove(keys::binding(task, id));
        }
        ws.remove(k);
    }
    Ok(Response::Executor(e))
}

/// Health transitions from the leader's checker (and ejections by dispatch).
pub(super) fn set_health(ws: &mut WriteSet<'_>, changes: &[HealthChange]) -> Result<Response, StoreError> {
    let mut changed = 0;
    for c in changes {
        let Some(mut e) = get_executor(ws, c.executor_id)? else { continue };
        let was_healthy = e.is_healthy;
        (e.is_healthy, e.health_check_failures, e.last_health_check_ms) = (c.healthy, c.failures, Some(c.checked_ms));
        put_executor(ws, &e)?;
        if was_healthy != c.healthy {
            let why = if c.healthy { "health checks pass again" } else { "health checks failed" };
            super::alerts::on_health(ws, c.checked_ms, &e, c.healthy, why)?;
        }
        changed += 1;
    }
    Ok(Response::Count(changed))
}

/// The executors a task may run on right now, each with the weight that applies, and whether
/// some available instance was left out only because it is at its capacity.
pub(super) fn candidates(
    ws: &WriteSet<'_>,
    task_id: u64,
    group: &str,
) -> Result<(Vec<(Executor, u32)>, bool), StoreError> {
    let all = available(ws, task_id, group)?;
    let total = all.len();
    let mut free = Vec::with_capacity(total);
    for (e, w) in all {
        if e.spec.capacity == 0 || get_u64(ws, &keys::load(e.id))? < u64::from(e.spec.capacity) {
            free.push((e, w));
        }
    }
    let busy = free.len() < total;
    Ok((free, busy))
}

/// Online, healthy instances of the group (or bound ones of the highest priority).
fn available(ws: &WriteSet<'_>, task_id: u64, group: &str) -> Result<Vec<(Executor, u32)>, StoreError> {
    let bindings: Vec<Binding> = ws
        .scan_prefix(&keys::binding_prefix(task_id), usize::MAX)?
        .iter()
        .map(|(_, v)| decode_binding(v))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    if bindings.is_empty() {
        let prefix = keys::group_prefix(group);
        for (k, _) in ws.scan_prefix(&prefix, usize::MAX)? {
            let Some(e) = parse_key_u64(&k[prefix.len()..]).map(|id| get_executor(ws, id)).transpose()?.flatten()
            else {
                continue;
            };
            if e.is_available() {
                let w = e.spec.weight;
                out.push((e, w));
            }
        }
        return Ok(out);
    }
    let mut bound = Vec::new();
    for b in bindings {
        let Some(e) = get_executor(ws, b.executor_id)? else { continue };
        if e.is_available() && e.spec.name == group {
            let w = if b.weight > 0 { b.weight } else { e.spec.weight };
            bound.push((e, w, b.priority));
        }
    }
    let top = bound.iter().map(|(_, _, p)| *p).max();
    out.extend(bound.into_iter().filter(|(_, _, p)| Some(*p) == top).map(|(e, w, _)| (e, w)));
    Ok(out)
}

/// One page of executors plus the total that matched.
#[derive(Debug, Clone)]
pub struct ExecutorPage {
    pub items: Vec<Executor>,
    pub total: u64,
}

impl StateView {
    pub fn executor(&self, id: u64) -> Result<Option<Executor>, StoreError> {
        self.tree.get(keys::executor(id))?.map(|b| decode_executor(&b)).transpose()
    }

    pub fn executor_by_instance(&self, instance_id: &str) -> Result<Option<Executor>, StoreError> {
        match self.tree.get(keys::instance(instance_id))?.as_deref().and_then(parse_key_u64) {
            Some(id) => self.executor(id),
            None => Ok(None),
        }
    }

    /// Executors in id order, optionally of one group; `page` counts from 1.
    pub fn list_executors(&self, group: Option<&str>, page: u64, page_size: u64) -> Result<ExecutorPage, StoreError> {
        let all = self.all_executors()?;
        let matching: Vec<Executor> =
            all.into_iter().filter(|e| group.map(|g| e.spec.name == g).unwrap_or(true)).collect();
        let skip = page.saturating_sub(1).saturating_mul(page_size) as usize;
        let total = matching.len() as u64;
        let items = matching.into_iter().skip(skip).take(page_size as usize).collect();
        Ok(ExecutorPage { items, total })
    }

    /// Every registered executor (the registry is small: instances, not tasks).
    pub fn all_executors(&self) -> Result<Vec<Executor>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(keys::EXECUTOR) {
            out.push(decode_executor(&kv?.1)?);
        }
        Ok(out)
    }

    /// Attempts currently running on `exec`.
    pub fn executor_load(&self, exec: u64) -> Result<u64, StoreError> {
        Ok(self.tree.get(keys::load(exec))?.as_deref().and_then(parse_key_u64).unwrap_or(0))
    }

    /// The task's bindings, in executor id order.
    pub fn bindings(&self, task: u64) -> Result<Vec<Binding>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(keys::binding_prefix(task)) {
            out.push(decode_binding(&kv?.1)?);
        }
        Ok(out)
    }
}

/// Whether a task status lets its pending executions be dispatched (deleted ones are cancelled).
pub(super) fn dispatchable(status: TaskStatus) -> bool {
    status != TaskStatus::Deleted
}
