//! The state machine's data and its deterministic `apply`.
//!
//! All replicated state lives in one sled tree (one per snapshot generation, see
//! [`crate::store::state_machine`]) under short key prefixes, so one `apply` run is one atomic
//! sled batch and a snapshot is a plain dump of one tree:
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `m/` | `applied`, `membership`, `next_task_id`, `count/<status>`, `dedupe_len`, `dedupe_floor` | meta |
//! | `t/` | task id (u64 BE) | [`StoredTask`] |
//! | `n/` | task name | task id (u64 BE); only non-deleted tasks |
//! | `s/` | status byte + task id | empty: the status index |
//! | `d/` | request id | [`StoredDedupe`]: the answer a retry gets |
//! | `e/` | time (i64 BE) + request id | empty: dedupe expiry order |
//! | `x/ y/ z/ q/ r/` | executions, their indexes, per-task runtime | see [`executions`] |
//! | `v/ i/ g/ b/ w/ l/a/` | executors, their indexes, bindings, loads | see [`registry`] |
//! | `l/c/ l/s/ l/w/` | balance state per task | see [`balance`] |
//! | `k/` | per-task hourly stat rollups | see [`stats`] |
//!
//! `apply` never reads a clock, a random source or the network: time and ids come inside the
//! [`Request`]; task ids come from a replicated counter.

use openraft::{EntryPayload, LogId, StoredMembership};
use serde::{Deserialize, Serialize};

use crate::codec::{self, key_i64, key_u64, parse_key_u64};
use crate::command::{Command, Rejection, Request, Response};
use crate::error::StoreError;
use crate::model::{NodeInfo, Task, TaskSpec, TaskStatus};
use crate::spec::{check_spec, TaskPatch};
use crate::txn::WriteSet;
use crate::{NodeId, TypeConfig};

mod balance;
mod dispatch;
mod executions;
mod fire;
mod registry;
mod retention;
mod stats;

pub use dispatch::{retry_backoff_ms, truncate_tail, ATTEMPTS_MAX, REPORT_BYTES_MAX, RETRY_BACKOFF_MS_BASE};
pub use executions::{ExecutionPage, ExecutionV1, StoredExecution, TaskRuntime};
pub use fire::{end_run, At, MISFIRE_THRESHOLD_MS, SEQUENTIAL_QUEUE_MAX};
pub use registry::{ExecutorPage, StoredExecutor};
pub use retention::PURGE_PER_ENTRY_MAX;
pub use stats::{TaskStats, WindowStats, ON_TIME_MS};

/// Most tasks (active + paused) the cluster holds; creating more is rejected.
pub const TASKS_MAX: u64 = 1_000_000;
/// Most request ids remembered for deduplication; the oldest are forgotten first.
pub const DEDUPE_LEN_MAX: u64 = 200_000;
/// How long a request id is remembered (by the requests' own clock, not apply's).
pub const DEDUPE_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// Most bytes of an execution's logs, and of its result, kept in a remembered answer.
pub const DEDUPE_TEXT_BYTES_MAX: usize = 512;
/// Most dedupe entries expired per applied request, so one apply never does unbounded work.
const DEDUPE_EVICT_PER_REQUEST: usize = 8;

const KEY_APPLIED: &[u8] = b"m/applied";
const KEY_MEMBERSHIP: &[u8] = b"m/membership";
const KEY_NEXT_TASK_ID: &[u8] = b"m/next_task_id";
const KEY_DEDUPE_LEN: &[u8] = b"m/dedupe_len";
const KEY_DEDUPE_FLOOR: &[u8] = b"m/dedupe_floor";

/// On-disk envelope of a task. Variants are appended, never changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StoredTask {
    V1(Task),
}

/// On-disk envelope of the last applied log id.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum StoredApplied {
    V1(LogId<NodeId>),
}

/// On-disk envelope of the last applied membership.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum StoredMembershipConfig {
    V1(StoredMembership<NodeId, NodeInfo>),
}

/// What is remembered about an applied request id. Variants are appended, never changed; apply
/// writes `V2` and still reads `V1`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StoredDedupe {
    V1 { at_ms: i64, fingerprint: [u8; 16], response: Response },
    V2 { at_ms: i64, fingerprint: [u8; 16], answer: StoredAnswer },
}

/// The answer a retry gets, as stored. A task answer is kept as the task's id only, because it
/// is most of the table's size (a create's whole task, about 100 bytes, per request id, under
/// every task ever created). A replay answers with the task as it is at the replay, which is the
/// original answer unless the task changed in between: the retried write took effect once, and
/// the client sees what it left behind (docs/internals/state-machine.md, "Deduplication").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StoredAnswer {
    /// Any answer but a task, kept whole (executions shortened by [`compact`]).
    Whole(Response),
    /// A [`Response::Task`], by the task's id.
    Task { id: u64 },
}

fn task_key(id: u64) -> Vec<u8> {
    [b"t/".as_slice(), &key_u64(id)].concat()
}
fn name_key(name: &str) -> Vec<u8> {
    [b"n/".as_slice(), name.as_bytes()].concat()
}
fn status_key(status: TaskStatus, id: u64) -> Vec<u8> {
    [b"s/".as_slice(), &[status.code()], &key_u64(id)].concat()
}
fn count_key(status: TaskStatus) -> Vec<u8> {
    [b"m/count/".as_slice(), &[status.code()]].concat()
}
fn dedupe_key(request_id: &str) -> Vec<u8> {
    [b"d/".as_slice(), request_id.as_bytes()].concat()
}
fn expiry_key(at_ms: i64, request_id: &str) -> Vec<u8> {
    [b"e/".as_slice(), &key_i64(at_ms), request_id.as_bytes()].concat()
}

fn get_u64(ws: &WriteSet<'_>, key: &[u8]) -> Result<u64, StoreError> {
    Ok(ws.get(key)?.as_deref().and_then(parse_key_u64).unwrap_or(0))
}

fn put_u64(ws: &mut WriteSet<'_>, key: &[u8], n: u64) {
    ws.insert(key.to_vec(), key_u64(n).to_vec());
}

/// Applies one committed entry to the write set and returns its response.
pub fn apply_entry(ws: &mut WriteSet<'_>, entry: &openraft::Entry<TypeConfig>) -> Result<Response, StoreError> {
    ws.insert(KEY_APPLIED.to_vec(), codec::encode(&StoredApplied::V1(entry.log_id))?);
    match &entry.payload {
        EntryPayload::Blank => Ok(Response::Empty),
        EntryPayload::Membership(m) => {
            let stored = StoredMembership::new(Some(entry.log_id), m.clone());
            ws.insert(KEY_MEMBERSHIP.to_vec(), codec::encode(&StoredMembershipConfig::V1(stored))?);
            Ok(Response::Empty)
        }
        EntryPayload::Normal(request) => apply_request(ws, request, entry.log_id.index),
    }
}

/// Applies one request, deduplicating by request id (internal requests, such as fires, carry an
/// empty id: the watermark deduplicates those).
pub fn apply_request(ws: &mut WriteSet<'_>, request: &Request, log_index: u64) -> Result<Response, StoreError> {
    let at = At { now_ms: request.now_ms, log_index };
    if request.request_id.is_empty() {
        return apply_command(ws, at, &request.command);
    }
    let fingerprint = fingerprint(&request.command)?;
    if let Some(bytes) = ws.get(&dedupe_key(&request.request_id))? {
        let (seen, answer) = match codec::decode(&bytes)? {
            StoredDedupe::V1 { fingerprint, response, .. } => (fingerprint, StoredAnswer::Whole(response)),
            StoredDedupe::V2 { fingerprint, answer, .. } => (fingerprint, answer),
        };
        if seen != fingerprint {
            let request_id = request.request_id.clone();
            return Ok(Response::Rejected(Rejection::RequestIdReused { request_id }));
        }
        return replay(ws, answer);
    }
    let response = apply_command(ws, at, &request.command)?;
    remember(ws, request, fingerprint, &response)?;
    Ok(response)
}

fn fingerprint(command: &Command) -> Result<[u8; 16], StoreError> {
    let hash = blake3::hash(&codec::encode(command)?);
    let mut out = [0u8; 16];
    out.copy_from_slice(&hash.as_bytes()[..16]);
    Ok(out)
}

/// Stores the response under the request id and expires old ids, a bounded amount per call.
///
/// Expiry walks the `e/` index from a stored floor (`m/dedupe_floor`: no live `e/` key is below
/// it), so each call reads only the keys it may expire, not the ones earlier calls of the same
/// run already deleted.
fn remember(
    ws: &mut WriteSet<'_>,
    request: &Request,
    fingerprint: [u8; 16],
    response: &Response,
) -> Result<(), StoreError> {
    let stored = StoredDedupe::V2 { at_ms: request.now_ms, fingerprint, answer: compact(response) };
    ws.insert(dedupe_key(&request.request_id), codec::encode(&stored)?);
    let expiry = expiry_key(request.now_ms, &request.request_id);
    let mut floor = ws.get(KEY_DEDUPE_FLOOR)?.unwrap_or_else(|| b"e/".to_vec());
    let floor_before = floor.clone();
    if expiry < floor {
        floor = expiry.clone();
    }
    ws.insert(expiry, Vec::new());
    let mut len = get_u64(ws, KEY_DEDUPE_LEN)? + 1;
    let oldest = ws.scan_from(&floor, b"e/", DEDUPE_EVICT_PER_REQUEST)?;
    for (key, _) in oldest {
        let at_ms = parse_key_u64(&key[2..]).map(|n| (n ^ (1 << 63)) as i64).unwrap_or(i64::MIN);
        let expired = at_ms < request.now_ms.saturating_sub(DEDUPE_TTL_MS);
        if !expired && len <= DEDUPE_LEN_MAX {
            break;
        }
        let request_id = &key[10..];
        ws.remove([b"d/".as_slice(), request_id].concat());
        // The smallest key above the one expired.
        floor = [key.as_slice(), &[0]].concat();
        ws.remove(key);
        len -= 1;
    }
    if floor != floor_before {
        ws.insert(KEY_DEDUPE_FLOOR.to_vec(), floor);
    }
    put_u64(ws, KEY_DEDUPE_LEN, len);
    Ok(())
}

/// The answer kept for a request id, bounded: a task by its id, and an execution's logs and
/// result (up to 64 KiB each) as their last [`DEDUPE_TEXT_BYTES_MAX`] bytes, so the table's size
/// is bounded by its entry count. A replayed callback answers with that shortened record.
fn compact(response: &Response) -> StoredAnswer {
    match response {
        Response::Task(task) => StoredAnswer::Task { id: task.id },
        Response::Execution(e) if e.logs.len() + e.result.len() > 2 * DEDUPE_TEXT_BYTES_MAX => {
            let mut e = e.clone();
            e.logs = dispatch::truncate_tail(&e.logs, DEDUPE_TEXT_BYTES_MAX);
            e.result = dispatch::truncate_tail(&e.result, DEDUPE_TEXT_BYTES_MAX);
            StoredAnswer::Whole(Response::Execution(e))
        }
        other => StoredAnswer::Whole(other.clone()),
    }
}

/// The answer a retry gets from what [`compact`] stored: a task as it is now (a task record is
/// never removed, so it is there; the rejection is for a table written by a future version).
fn replay(ws: &WriteSet<'_>, answer: StoredAnswer) -> Result<Response, StoreError> {
    Ok(match answer {
        StoredAnswer::Whole(response) => response,
        StoredAnswer::Task { id } => match get_task_ws(ws, id)? {
            Some(task) => Response::Task(task),
            None => Response::Rejected(Rejection::TaskNotFound { id }),
        },
    })
}

type Outcome = Result<Task, Rejection>;

fn apply_command(ws: &mut WriteSet<'_>, at: At, command: &Command) -> Result<Response, StoreError> {
    let now_ms = at.now_ms;
    let outcome = match command {
        Command::CreateTask { spec } => create_task(ws, now_ms, spec)?,
        Command::UpdateTask { id, patch, expected_version } => update_task(ws, now_ms, *id, patch, *expected_version)?,
        Command::DeleteTask { id } => set_status(ws, at, *id, TaskStatus::Deleted)?,
        Command::PauseTask { id } => set_status(ws, at, *id, TaskStatus::Paused)?,
        Command::ResumeTask { id } => set_status(ws, at, *id, TaskStatus::Active)?,
        Command::Fire(batch) => return Ok(Response::Fired(fire::apply_fire(ws, at, batch, None)?)),
        Command::FireAndDispatch { batch, seed, term } => {
            return Ok(Response::Fired(fire::apply_fire(ws, at, batch, Some((*seed, *term)))?))
        }
        Command::Batch(requests) => {
            let mut out = Vec::with_capacity(requests.len());
            for r in requests {
                // One level only: no proposer builds a batch inside a batch.
                out.push(match r.command {
                    Command::Batch(_) => Response::Empty,
                    _ => apply_request(ws, r, at.log_index)?,
                });
            }
            return Ok(Response::Batch(out));
        }
        Command::TriggerTask { id, parameters, requested_by } => {
            return Ok(match fire::apply_trigger(ws, at, *id, parameters.as_deref(), requested_by)? {
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
    };
    Ok(match outcome {
        Ok(task) => Response::Task(task),
        Err(rejection) => Response::Rejected(rejection),
    })
}

/// Tasks that are active or paused.
fn live_tasks(ws: &WriteSet<'_>) -> Result<u64, StoreError> {
    Ok(get_u64(ws, &count_key(TaskStatus::Active))? + get_u64(ws, &count_key(TaskStatus::Paused))?)
}

fn create_task(ws: &mut WriteSet<'_>, now_ms: i64, spec: &TaskSpec) -> Result<Outcome, StoreError> {
    if live_tasks(ws)? >= TASKS_MAX {
        return Ok(Err(Rejection::TooManyTasks { max: TASKS_MAX }));
    }
    if let Err(e) = check_spec(spec) {
        return Ok(Err(Rejection::InvalidSpec(e)));
    }
    if let Some(id) = task_id_by_name(ws, &spec.name)? {
        return Ok(Err(Rejection::NameTaken { name: spec.name.clone(), id }));
    }
    let id = get_u64(ws, KEY_NEXT_TASK_ID)?.max(1);
    put_u64(ws, KEY_NEXT_TASK_ID, id + 1);
    let task = Task {
        id,
        spec: spec.clone(),
        status: TaskStatus::Active,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        version: 1,
        fire_watermark_ms: now_ms,
    };
    ws.insert(name_key(&spec.name), key_u64(id).to_vec());
    index_status(ws, &task, None)?;
    put_task(ws, &task)?;
    Ok(Ok(task))
}

fn update_task(
    ws: &mut WriteSet<'_>,
    now_ms: i64,
    id: u64,
    patch: &TaskPatch,
    expected_version: Option<u64>,
) -> Result<Outcome, StoreError> {
    let Some(mut task) = get_task_ws(ws, id)? else { return Ok(Err(Rejection::TaskNotFound { id })) };
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
        if let Some(other) = task_id_by_name(ws, &spec.name)? {
            return Ok(Err(Rejection::NameTaken { name: spec.name.clone(), id: other }));
        }
        ws.remove(name_key(&task.spec.name));
        ws.insert(name_key(&spec.name), key_u64(id).to_vec());
    }
    task.spec = spec.clone();
    task.version += 1;
    task.updated_at_ms = now_ms;
    // Rescheduled from the next slot after the update.
    task.fire_watermark_ms = task.fire_watermark_ms.max(now_ms);
    put_task(ws, &task)?;
    Ok(Ok(task))
}

/// Pause, resume and delete. A change to the status it already has is a no-op that succeeds;
/// nothing leaves `deleted`.
fn set_status(ws: &mut WriteSet<'_>, at: At, id: u64, to: TaskStatus) -> Result<Outcome, StoreError> {
    let now_ms = at.now_ms;
    let Some(mut task) = get_task_ws(ws, id)? else { return Ok(Err(Rejection::TaskNotFound { id })) };
    if task.status == to {
        return Ok(Ok(task));
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
        ws.remove(name_key(&task.spec.name));
        balance::forget(ws, id);
    }
    if to != TaskStatus::Active {
        fire::cancel_queued(ws, at, id)?;
    }
    index_status(ws, &task, Some(from))?;
    put_task(ws, &task)?;
    Ok(Ok(task))
}

fn index_status(ws: &mut WriteSet<'_>, task: &Task, from: Option<TaskStatus>) -> Result<(), StoreError> {
    if let Some(from) = from {
        ws.remove(status_key(from, task.id));
        let n = get_u64(ws, &count_key(from))?;
        put_u64(ws, &count_key(from), n.saturating_sub(1));
    }
    ws.insert(status_key(task.status, task.id), Vec::new());
    let n = get_u64(ws, &count_key(task.status))?;
    put_u64(ws, &count_key(task.status), n + 1);
    Ok(())
}

fn put_task(ws: &mut WriteSet<'_>, task: &Task) -> Result<(), StoreError> {
    ws.insert(task_key(task.id), codec::encode(&StoredTask::V1(task.clone()))?);
    Ok(())
}

/// The task with its effective watermark (its own, or the latest fire from its runtime record).
fn get_task_ws(ws: &WriteSet<'_>, id: u64) -> Result<Option<Task>, StoreError> {
    let Some(mut task) = ws.get(&task_key(id))?.map(|b| decode_task(&b)).transpose()? else { return Ok(None) };
    task.fire_watermark_ms = task.fire_watermark_ms.max(executions::runtime(ws, id)?.watermark_ms);
    Ok(Some(task))
}

fn task_id_by_name(ws: &WriteSet<'_>, name: &str) -> Result<Option<u64>, StoreError> {
    Ok(ws.get(&name_key(name))?.as_deref().and_then(parse_key_u64))
}

fn decode_task(bytes: &[u8]) -> Result<Task, StoreError> {
    let StoredTask::V1(task) = codec::decode(bytes)?;
    Ok(task)
}

/// Read-only queries over one generation of the state-machine tree. Cheap to clone.
#[derive(Clone)]
pub struct StateView {
    tree: sled::Tree,
}

/// One page of tasks plus the total that matched.
#[derive(Debug, Clone)]
pub struct TaskPage {
    pub items: Vec<Task>,
    pub total: u64,
}

impl StateView {
    pub fn new(tree: sled::Tree) -> Self {
        StateView { tree }
    }

    /// The last applied log id and membership, as stored with the data they describe.
    pub fn applied_state(&self) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, NodeInfo>), StoreError> {
        let applied = match self.tree.get(KEY_APPLIED)? {
            Some(b) => match codec::decode(&b)? {
                StoredApplied::V1(id) => Some(id),
            },
            None => None,
        };
        let membership = match self.tree.get(KEY_MEMBERSHIP)? {
            Some(b) => match codec::decode(&b)? {
                StoredMembershipConfig::V1(m) => m,
            },
            None => StoredMembership::default(),
        };
        Ok((applied, membership))
    }

    /// A task, with its effective watermark (see [`executions::TaskRuntime`]).
    pub fn task(&self, id: u64) -> Result<Option<Task>, StoreError> {
        let Some(mut task) = self.tree.get(task_key(id))?.map(|b| decode_task(&b)).transpose()? else {
            return Ok(None);
        };
        task.fire_watermark_ms = task.fire_watermark_ms.max(self.runtime(id)?.watermark_ms);
        Ok(Some(task))
    }

    /// A non-deleted task by its unique name.
    pub fn task_by_name(&self, name: &str) -> Result<Option<Task>, StoreError> {
        match self.tree.get(name_key(name))?.as_deref().and_then(parse_key_u64) {
            Some(id) => self.task(id),
            None => Ok(None),
        }
    }

    /// How many tasks have `status`.
    pub fn count(&self, status: TaskStatus) -> Result<u64, StoreError> {
        Ok(self.tree.get(count_key(status))?.as_deref().and_then(parse_key_u64).unwrap_or(0))
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
            let prefix = [b"s/".as_slice(), &[statuses[0].code()]].concat();
            for kv in self.tree.scan_prefix(&prefix).keys().skip(skip).take(page_size as usize) {
                ids.extend(parse_key_u64(&kv?[3..]));
            }
        } else {
            // Non-deleted tasks in id order: walk the task table and drop deleted ones.
            for kv in self.tree.scan_prefix(b"t/") {
                let (_, v) = kv?;
                let task = decode_task(&v)?;
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
        let prefix = [b"s/".as_slice(), &[status.code()]].concat();
        let start = [prefix.as_slice(), &key_u64(after_id.saturating_add(1))].concat();
        let mut out = Vec::new();
        for k in self.tree.range(start..).keys() {
            let k = k?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            if let Some(task) = parse_key_u64(&k[3..]).map(|id| self.task(id)).transpose()?.flatten() {
                out.push(task);
            }
        }
        Ok(out)
    }

    /// A digest of every replicated key and value, read from the live tree. Replicas that applied
    /// the same log index produce the same digest if nothing applies meanwhile; the node's
    /// `/cluster/digest` uses `StateMachineStore::digest`, which gives this value at a fixed point
    /// while applies go on.
    pub fn digest(&self) -> Result<String, StoreError> {
        let mut digest = StateDigest::new();
        for kv in self.tree.iter() {
            let (k, v) = kv?;
            digest.add(&k, &v);
        }
        Ok(digest.finish())
    }
}

/// The state digest: blake3 over every key and value in key order, each prefixed by its length
/// (so no two states share a byte stream). The one definition of the digest's bytes.
pub struct StateDigest(blake3::Hasher);

impl StateDigest {
    /// An empty digest.
    pub fn new() -> Self {
        StateDigest(blake3::Hasher::new())
    }

    /// Adds the next key (in key order) and its value.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        self.0.update(&(key.len() as u64).to_be_bytes());
        self.0.update(key);
        self.0.update(&(value.len() as u64).to_be_bytes());
        self.0.update(value);
    }

    /// The digest in hex.
    pub fn finish(&self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

impl Default for StateDigest {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;
