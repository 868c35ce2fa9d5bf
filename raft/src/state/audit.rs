//! Who changed what: the audit list, and the name of whoever last changed each task.
//!
//! A client write reaches the log wrapped as [`Command::Attributed`] with the name of the token
//! that made it (`anonymous` while auth is off). Apply runs the inner command and then appends one
//! [`AuditEntry`] under `u/` with a dense id from `m/next_audit_id`; when there are more than
//! [`AUDIT_LEN_MAX`], the entry that many ids older is removed in the same apply, so the list
//! is bounded and each write does constant work. A task write also sets `o/<task id>` to the
//! author (`updated_by` in the task's view), a side record so the task's own envelope and every
//! stored answer that holds a task keep their format.
//!
//! Executors' reports are not listed (one per run would crowd out every person's change; the
//! execution record keeps them), nor are the leader's own entries (fires, dispatch, health).
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `u/` | audit id | [`StoredAudit`] |
//! | `o/` | task id | the name of the last writer (UTF-8) |

use serde::{Deserialize, Serialize};

use super::keys::{self, get_u64, put_u64};
use super::{At, StateView};
use crate::codec;
use crate::command::{Command, Response};
use crate::error::StoreError;
use crate::txn::WriteSet;

/// Most audit entries kept; the oldest go first.
pub const AUDIT_LEN_MAX: u64 = 100_000;
/// The author of writes made while auth is off.
pub const ANONYMOUS: &str = "anonymous";

/// One change, as the audit list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Dense, from 1, in apply order.
    pub id: u64,
    pub at_ms: i64,
    /// The log entry that carried it.
    pub log_index: u64,
    /// The token's name (`anonymous` with auth off, `cluster` for a node's own call).
    pub by: String,
    /// The command's kind (`create_task`, `revoke_token`, ...).
    pub action: String,
    /// What it was about (`task 7`, `token ci`, `executor worker-3`), empty if nothing in particular.
    pub target: String,
    /// `ok`, or why apply refused it.
    pub outcome: String,
}

/// On-disk envelope of an audit entry. Variants are appended, never changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StoredAudit {
    V1(AuditEntry),
}

/// Whether a command is listed when a client makes it.
pub(super) fn is_audited(command: &Command) -> bool {
    !matches!(command, Command::Report(_) | Command::Attributed { .. } | Command::Batch(_))
}

/// Appends the entry for `command` (already applied, with `response`) by `by`, and records the
/// author of a task it changed.
pub(super) fn record(
    ws: &mut WriteSet<'_>,
    at: At,
    by: &str,
    command: &Command,
    response: &Response,
) -> Result<(), StoreError> {
    if let Response::Task(task) = response {
        ws.insert(keys::task_author(task.id), by.as_bytes().to_vec());
    }
    if !is_audited(command) {
        return Ok(());
    }
    let id = get_u64(ws, keys::NEXT_AUDIT_ID)?.max(1);
    put_u64(ws, keys::NEXT_AUDIT_ID, id + 1);
    let outcome = match response {
        Response::Rejected(r) => r.to_string(),
        _ => "ok".to_string(),
    };
    let entry = AuditEntry {
        id,
        at_ms: at.now_ms,
        log_index: at.log_index,
        by: by.to_string(),
        action: command.kind().to_string(),
        target: target(command, response),
        outcome,
    };
    ws.insert(keys::audit(id), codec::encode(&StoredAudit::V1(entry))?);
    if id > AUDIT_LEN_MAX {
        ws.remove(keys::audit(id - AUDIT_LEN_MAX));
    }
    Ok(())
}

/// What a command was about, for people reading the list.
fn target(command: &Command, response: &Response) -> String {
    match (command, response) {
        (Command::CreateTask { spec }, Response::Task(t)) => format!("task {} {}", t.id, spec.name),
        (Command::CreateTask { spec }, _) => format!("task {}", spec.name),
        (Command::UpdateTask { id, .. }, _)
        | (Command::DeleteTask { id }, _)
        | (Command::PauseTask { id }, _)
        | (Command::ResumeTask { id }, _)
        | (Command::TriggerTask { id, .. }, _) => format!("task {id}"),
        (Command::RegisterExecutor { spec, .. }, _) => format!("executor {}", spec.instance_id),
        (Command::SetExecutorStatus { id, .. }, _) | (Command::RemoveExecutor { id }, _) => format!("executor {id}"),
        (Command::StopExecution { id, .. }, _) => format!("execution {id}"),
        (Command::CreateToken { spec, .. }, _) => format!("token {}", spec.name),
        (Command::RevokeToken { name }, _) => format!("token {name}"),
        (Command::CreateChannel { spec }, _) => format!("channel {}", spec.name),
        (Command::UpdateChannel { name, .. }, _) | (Command::DeleteChannel { name }, _) => format!("channel {name}"),
        (Command::CreateRule { .. }, Response::Rule(r)) => format!("rule {}", r.id),
        (Command::UpdateRule { id, .. }, _) | (Command::DeleteRule { id }, _) => format!("rule {id}"),
        _ => String::new(),
    }
}

fn decode(bytes: &[u8]) -> Result<AuditEntry, StoreError> {
    let StoredAudit::V1(e) = codec::decode(bytes)?;
    Ok(e)
}

impl StateView {
    /// One page of the audit list, newest first, and how many entries it holds.
    pub fn audit(&self, page: u64, page_size: u64) -> Result<(Vec<AuditEntry>, u64), StoreError> {
        let next = self.tree.get(keys::NEXT_AUDIT_ID)?.as_deref().and_then(codec::parse_key_u64).unwrap_or(1).max(1);
        let newest = next - 1;
        let total = newest.min(AUDIT_LEN_MAX);
        let oldest = newest - total + 1;
        let skip = page.saturating_sub(1).saturating_mul(page_size);
        let mut out = Vec::new();
        let mut id = newest.saturating_sub(skip);
        while id >= oldest && id > 0 && (out.len() as u64) < page_size {
            if let Some(bytes) = self.tree.get(keys::audit(id))? {
                out.push(decode(&bytes)?);
            }
            id -= 1;
        }
        Ok((out, total))
    }

    /// The name of whoever last changed task `id` (empty if nobody recorded: a task from before
    /// the audit list, or one changed only by registrations before it).
    pub fn task_author(&self, id: u64) -> Result<String, StoreError> {
        Ok(self.tree.get(keys::task_author(id))?.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default())
    }
}
