//! Notification events in apply: turning a state change into an event, matching it against the
//! rules, suppressing repeats, and putting the matched (event, channel) pairs into the bounded
//! outbox — in the same write set as the change, so an event exists iff its cause was applied.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `p/o/` | outbox seq | an outbox entry (its envelope is [`super::notify`]'s) |
//! | `p/a/` | tag + subject | [`StoredAlert`]: `t` task failing, `m`/`s` last missed/skipped, `g` group without a healthy executor, `n` node unreachable |
//!
//! The rules, their index and summary are [`super::notify`]'s; this module only reads them.
//!
//! Cost. Every hook first reads the rule summary, one small key: with no rule at all it stops
//! there, so a fire or a run end pays one point read. With rules, matching is a few prefix scans
//! of the index (the task's, its group's, one per prefix length in use, the default's), never a
//! walk of all rules. Suppression state is written only for events some rule matched.
//!
//! The outbox holds at most [`OUTBOX_MAX`] entries; a push into a full outbox drops the oldest
//! and counts it under `m/notify_dropped`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::executions::{ended, put_execution};
use super::keys::{self, get_u64, put_u64};
use super::notify::{get_rule, put_entry, summary, RuleSummary};
use super::{tasks, At};
use crate::codec::{self, key_u64};
use crate::command::Response;
use crate::error::StoreError;
use crate::model::{Execution, ExecutionStatus, Executor, Task};
use crate::notify::{Event, EventKind, LeaderEvent, OutboxEntry, OUTBOX_MAX, SLOT_REPEAT_MS};
use crate::txn::WriteSet;

/// On-disk envelope of an alert's state: when it was raised (the event's time).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StoredAlert {
    V1 { since_ms: i64 },
}

/// An event before it has an id, with nothing set but its kind and time.
pub(super) fn draft(kind: EventKind, at_ms: i64) -> Event {
    Event {
        id: 0,
        kind,
        at_ms,
        task_id: None,
        task_name: String::new(),
        group: String::new(),
        executor: String::new(),
        node_id: None,
        execution_id: None,
        reason: String::new(),
        slot_count: 1,
    }
}

/// The channels the rules send `kind` to for a task (`(id, name)`) and/or a group, in name order.
pub(super) fn channels_for(
    ws: &WriteSet<'_>,
    s: &RuleSummary,
    kind: EventKind,
    task: Option<(u64, &str)>,
    group: Option<&str>,
) -> Result<BTreeSet<String>, StoreError> {
    let mut prefixes = Vec::new();
    if let Some((id, name)) = task {
        if s.task > 0 {
            prefixes.push(keys::rule_index_prefix(b't', &key_u64(id)));
        }
        for len in s.prefix_lens.keys().map(|l| *l as usize) {
            if len <= name.len() && name.is_char_boundary(len) {
                prefixes.push(keys::rule_index_prefix(b'p', &name.as_bytes()[..len]));
            }
        }
    }
    if let Some(g) = group.filter(|_| s.group > 0) {
        prefixes.push(keys::rule_index_prefix(b'g', g.as_bytes()));
    }
    let mut out = BTreeSet::new();
    collect(ws, &prefixes, kind, &mut out)?;
    if out.is_empty() && s.default > 0 {
        collect(ws, &[keys::rule_index_prefix(b'd', b"")], kind, &mut out)?;
    }
    Ok(out)
}

fn collect(
    ws: &WriteSet<'_>,
    prefixes: &[Vec<u8>],
    kind: EventKind,
    out: &mut BTreeSet<String>,
) -> Result<(), StoreError> {
    for prefix in prefixes {
        for (k, _) in ws.scan_prefix(prefix, crate::notify::RULES_MAX as usize)? {
            let Some(id) = keys::parse_rule_index(&k) else { continue };
            if let Some(rule) = get_rule(ws, id)? {
                if rule.spec.takes(kind) {
                    out.extend(rule.spec.channels.iter().cloned());
                }
            }
        }
    }
    Ok(())
}

/// Gives `event` the next event id and puts one outbox entry per channel, dropping the oldest
/// entries beyond [`OUTBOX_MAX`]. Returns the event id.
pub(super) fn push(ws: &mut WriteSet<'_>, mut event: Event, channels: &BTreeSet<String>) -> Result<u64, StoreError> {
    let id = get_u64(ws, keys::NOTIFY_NEXT_EVENT)?.max(1);
    put_u64(ws, keys::NOTIFY_NEXT_EVENT, id + 1);
    event.id = id;
    let mut seq = get_u64(ws, keys::NOTIFY_NEXT_SEQ)?.max(1);
    let mut depth = get_u64(ws, keys::NOTIFY_DEPTH)?;
    for channel in channels {
        let entry = OutboxEntry {
            seq,
            channel: channel.clone(),
            event: event.clone(),
            attempts: 0,
            last_error: String::new(),
            last_attempt_ms: None,
        };
        put_entry(ws, &entry)?;
        seq += 1;
        depth += 1;
        while depth > OUTBOX_MAX {
            let Some((oldest, _)) = ws.scan_prefix(keys::OUTBOX, 1)?.pop() else { break };
            ws.remove(oldest);
            depth -= 1;
            keys::bump(ws, keys::NOTIFY_DROPPED, 1)?;
        }
    }
    put_u64(ws, keys::NOTIFY_NEXT_SEQ, seq);
    put_u64(ws, keys::NOTIFY_DEPTH, depth);
    Ok(id)
}

fn alert_since(ws: &WriteSet<'_>, key: &[u8]) -> Result<Option<i64>, StoreError> {
    Ok(match ws.get(key)? {
        Some(b) => match codec::decode(&b)? {
            StoredAlert::V1 { since_ms } => Some(since_ms),
        },
        None => None,
    })
}

fn raise_alert(ws: &mut WriteSet<'_>, key: Vec<u8>, since_ms: i64) -> Result<(), StoreError> {
    ws.insert(key, codec::encode(&StoredAlert::V1 { since_ms })?);
    Ok(())
}

/// [`put_execution`] and, when the write gives the execution its final status, [`on_final`]:
/// what `fire` and `run` call to write an execution.
pub(super) fn put_and_notify(ws: &mut WriteSet<'_>, e: &Execution, old: Option<&Execution>) -> Result<(), StoreError> {
    put_execution(ws, e, old)?;
    if ended(e, old) {
        on_final(ws, e)?;
    }
    Ok(())
}

/// An execution reached a final status: a failed or timed-out run raises the task's "failing" alert once, a success
/// while it is raised resolves it (`recovered`), a `missed` or `skipped` record alerts at most
/// once per [`SLOT_REPEAT_MS`] per task.
pub(super) fn on_final(ws: &mut WriteSet<'_>, e: &Execution) -> Result<(), StoreError> {
    let kind = match e.status {
        ExecutionStatus::Failed => EventKind::RunFailed,
        ExecutionStatus::Timeout => EventKind::RunTimeout,
        ExecutionStatus::Missed => EventKind::SlotMissed,
        ExecutionStatus::Skipped => EventKind::SlotSkipped,
        ExecutionStatus::Success => EventKind::Recovered,
        _ => return Ok(()),
    };
    let s = summary(ws)?;
    if s.rules == 0 {
        return Ok(());
    }
    let at_ms = e.end_ms.unwrap_or(e.created_ms);
    let id = key_u64(e.task_id);
    let key = match kind {
        EventKind::SlotMissed => keys::alert(b'm', &id),
        EventKind::SlotSkipped => keys::alert(b's', &id),
        _ => keys::alert(b't', &id),
    };
    let since = alert_since(ws, &key)?;
    match kind {
        EventKind::Recovered if since.is_none() => return Ok(()),
        EventKind::Recovered => ws.remove(key.clone()),
        EventKind::RunFailed | EventKind::RunTimeout if since.is_some() => return Ok(()),
        EventKind::SlotMissed | EventKind::SlotSkipped if since.is_some_and(|t| at_ms - t < SLOT_REPEAT_MS) => {
            return Ok(())
        }
        _ => {}
    }
    let Some(task) = tasks::get(ws, e.task_id)? else { return Ok(()) };
    let channels = channels_for(ws, &s, kind, Some((task.id, &task.spec.name)), Some(&task.spec.executor))?;
    if channels.is_empty() {
        return Ok(());
    }
    if kind != EventKind::Recovered {
        raise_alert(ws, key, at_ms)?;
    }
    let mut event = task_event(kind, at_ms, &task);
    event.execution_id = Some(e.id);
    event.reason = e.reason.map(reason_name).unwrap_or_default();
    event.slot_count = e.slot_count.max(1);
    push(ws, event, &channels)?;
    Ok(())
}

fn task_event(kind: EventKind, at_ms: i64, task: &Task) -> Event {
    let mut event = draft(kind, at_ms);
    (event.task_id, event.task_name, event.group) = (Some(task.id), task.spec.name.clone(), task.spec.executor.clone());
    event
}

/// The snake_case name of an execution's reason.
fn reason_name(r: crate::model::Reason) -> String {
    serde_json::to_value(r).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// An executor became healthy or unhealthy (a health transition or a dispatch's ejection). A
/// healthy one also resolves its group's "no healthy executor" alert.
pub(super) fn on_health(
    ws: &mut WriteSet<'_>,
    at_ms: i64,
    x: &Executor,
    healthy: bool,
    why: &str,
) -> Result<(), StoreError> {
    let s = summary(ws)?;
    if s.rules == 0 {
        return Ok(());
    }
    let group = &x.spec.name;
    if healthy {
        clear_group(ws, group)?;
    }
    let kind = if healthy { EventKind::ExecutorHealthy } else { EventKind::ExecutorUnhealthy };
    let channels = channels_for(ws, &s, kind, None, Some(group))?;
    if channels.is_empty() {
        return Ok(());
    }
    let mut event = draft(kind, at_ms);
    (event.group, event.executor, event.reason) = (group.clone(), x.spec.instance_id.clone(), why.to_string());
    push(ws, event, &channels)?;
    Ok(())
}

/// The group has a healthy instance again (one became healthy or registered).
pub(super) fn clear_group(ws: &mut WriteSet<'_>, group: &str) -> Result<(), StoreError> {
    let key = keys::alert(b'g', group.as_bytes());
    if ws.get(&key)?.is_some() {
        ws.remove(key);
    }
    Ok(())
}

/// A run found no online, healthy executor in its group: alerts once until the group has one.
pub(super) fn on_no_executor(
    ws: &mut WriteSet<'_>,
    at_ms: i64,
    task: &Task,
    execution_id: u64,
) -> Result<(), StoreError> {
    let s = summary(ws)?;
    if s.rules == 0 {
        return Ok(());
    }
    let key = keys::alert(b'g', task.spec.executor.as_bytes());
    if alert_since(ws, &key)?.is_some() {
        return Ok(());
    }
    let kind = EventKind::NoHealthyExecutor;
    let channels = channels_for(ws, &s, kind, Some((task.id, &task.spec.name)), Some(&task.spec.executor))?;
    if channels.is_empty() {
        return Ok(());
    }
    raise_alert(ws, key, at_ms)?;
    let mut event = task_event(kind, at_ms, task);
    (event.execution_id, event.reason) = (Some(execution_id), "no_healthy_executor".into());
    push(ws, event, &channels)?;
    Ok(())
}

/// An event the leader observed (a node unreachable or reachable again, a new leader): an
/// unreachable node alerts once until it is reachable; reachable alerts only after unreachable.
/// Returns whether an event entered the outbox.
pub(super) fn on_leader_event(ws: &mut WriteSet<'_>, at_ms: i64, ev: &LeaderEvent) -> Result<bool, StoreError> {
    let key = keys::alert(b'n', &key_u64(ev.node_id));
    let since = alert_since(ws, &key)?;
    match ev.kind {
        EventKind::NodeUnreachable if since.is_some() => return Ok(false),
        EventKind::NodeReachable if since.is_none() => return Ok(false),
        EventKind::NodeUnreachable | EventKind::NodeReachable | EventKind::LeaderChange => {}
        _ => return Ok(false), // only these come from the leader
    }
    let s = summary(ws)?;
    if s.rules == 0 {
        return Ok(false);
    }
    if ev.kind == EventKind::NodeReachable {
        ws.remove(key.clone());
    }
    let channels = channels_for(ws, &s, ev.kind, None, None)?;
    if channels.is_empty() {
        return Ok(false);
    }
    if ev.kind == EventKind::NodeUnreachable {
        raise_alert(ws, key, at_ms)?;
    }
    let mut event = draft(ev.kind, at_ms);
    event.node_id = Some(ev.node_id);
    event.reason = crate::state::executions::truncate_tail(&ev.reason, 256);
    push(ws, event, &channels)?;
    Ok(true)
}

/// Most leader events in one entry.
const LEADER_EVENTS_MAX: usize = 64;

/// `RaiseEvents`: the leader's events (at most [`LEADER_EVENTS_MAX`] per entry); answers how many
/// entered the outbox.
pub(super) fn raise(ws: &mut WriteSet<'_>, at: At, events: &[LeaderEvent]) -> Result<Response, StoreError> {
    let mut raised = 0;
    for ev in events.iter().take(LEADER_EVENTS_MAX) {
        raised += u64::from(on_leader_event(ws, at.now_ms, ev)?);
    }
    Ok(Response::Count(raised))
}
