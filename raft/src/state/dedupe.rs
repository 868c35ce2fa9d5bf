//! Request dedupe: the answer a retried request gets, and how old request ids are forgotten.
//!
//! A client request carries a request id (`Idempotency-Key`). Apply remembers, per id, a
//! fingerprint of the command and a bounded answer ([`StoredDedupe`] under `d/`); a retry with
//! the same id and command gets that answer without applying anything, the same id with another
//! command is refused. Ids are forgotten after [`DEDUPE_TTL_MS`] (by the requests' own clock,
//! not apply's) or when more than [`DEDUPE_LEN_MAX`] are remembered, oldest first, a bounded
//! number per request, walking the expiry index `e/` (time + id).

use serde::{Deserialize, Serialize};

use super::executions::truncate_tail;
use super::keys::{self, get_u64, put_u64};
use super::tasks;
use crate::codec;
use crate::command::{Command, Rejection, Request, Response};
use crate::error::StoreError;
use crate::txn::WriteSet;

/// Most request ids remembered for deduplication; the oldest are forgotten first.
pub const DEDUPE_LEN_MAX: u64 = 200_000;
/// How long a request id is remembered (by the requests' own clock, not apply's).
pub const DEDUPE_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// Most bytes of an execution's logs, and of its result, kept in a remembered answer.
pub const DEDUPE_TEXT_BYTES_MAX: usize = 512;
/// Most dedupe entries expired per applied request, so one apply never does unbounded work.
const DEDUPE_EVICT_PER_REQUEST: usize = 8;

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

/// The first 16 bytes of the blake3 hash of the encoded command.
pub(super) fn fingerprint(command: &Command) -> Result<[u8; 16], StoreError> {
    let hash = blake3::hash(&codec::encode(command)?);
    let mut out = [0u8; 16];
    out.copy_from_slice(&hash.as_bytes()[..16]);
    Ok(out)
}

/// The answer for a request id seen before: the remembered one, or a refusal if the id came with
/// another command. `None` for an id not remembered.
pub(super) fn seen(
    ws: &WriteSet<'_>,
    request: &Request,
    fingerprint: [u8; 16],
) -> Result<Option<Response>, StoreError> {
    let Some(bytes) = ws.get(&keys::dedupe(request.request_id.as_bytes()))? else { return Ok(None) };
    let (seen, answer) = match codec::decode(&bytes)? {
        StoredDedupe::V1 { fingerprint, response, .. } => (fingerprint, StoredAnswer::Whole(response)),
        StoredDedupe::V2 { fingerprint, answer, .. } => (fingerprint, answer),
    };
    if seen != fingerprint {
        let request_id = request.request_id.clone();
        return Ok(Some(Response::Rejected(Rejection::RequestIdReused { request_id })));
    }
    replay(ws, answer).map(Some)
}

/// Stores the response under the request id and expires old ids, a bounded amount per call.
///
/// Expiry walks the `e/` index from a stored floor (`m/dedupe_floor`: no live `e/` key is below
/// it), so each call reads only the keys it may expire, not the ones earlier calls of the same
/// run already deleted.
pub(super) fn remember(
    ws: &mut WriteSet<'_>,
    request: &Request,
    fingerprint: [u8; 16],
    response: &Response,
) -> Result<(), StoreError> {
    let stored = StoredDedupe::V2 { at_ms: request.now_ms, fingerprint, answer: compact(response) };
    ws.insert(keys::dedupe(request.request_id.as_bytes()), codec::encode(&stored)?);
    let expiry = keys::dedupe_expiry(request.now_ms, &request.request_id);
    let mut floor = ws.get(keys::DEDUPE_FLOOR)?.unwrap_or_else(|| keys::DEDUPE_EXPIRY.to_vec());
    let floor_before = floor.clone();
    if expiry < floor {
        floor = expiry.clone();
    }
    ws.insert(expiry, Vec::new());
    let mut len = get_u64(ws, keys::DEDUPE_LEN)? + 1;
    let oldest = ws.scan_from(&floor, keys::DEDUPE_EXPIRY, DEDUPE_EVICT_PER_REQUEST)?;
    for (key, _) in oldest {
        let (at_ms, request_id) = keys::parse_dedupe_expiry(&key);
        let expired = at_ms < request.now_ms.saturating_sub(DEDUPE_TTL_MS);
        if !expired && len <= DEDUPE_LEN_MAX {
            break;
        }
        ws.remove(keys::dedupe(request_id));
        // The smallest key above the one expired.
        floor = [key.as_slice(), &[0]].concat();
        ws.remove(key);
        len -= 1;
    }
    if floor != floor_before {
        ws.insert(keys::DEDUPE_FLOOR.to_vec(), floor);
    }
    put_u64(ws, keys::DEDUPE_LEN, len);
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
            e.logs = truncate_tail(&e.logs, DEDUPE_TEXT_BYTES_MAX);
            e.result = truncate_tail(&e.result, DEDUPE_TEXT_BYTES_MAX);
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
        StoredAnswer::Task { id } => match tasks::get(ws, id)? {
            Some(task) => Response::Task(task),
            None => Response::Rejected(Rejection::TaskNotFound { id }),
        },
    })
}
