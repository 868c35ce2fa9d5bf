//! Every key of the replicated state: the prefixes, the key constructors and parsers, and the
//! `u64` counters stored under `m/` keys.
//!
//! All replicated state lives in one sled tree under short prefixes, so this file is the on-disk
//! key layout in one place (the store uses it too, to tell which tasks and executions a batch
//! wrote). Integers are big-endian and fixed-width ([`key_u64`], [`key_i64`]), so byte order is
//! numeric order and a prefix scan walks ids in order. The bytes are the storage format: a
//! constructor must never change what it produces (the tests below pin a few, byte for byte).
//!
//! | prefix | key | value | owner |
//! |---|---|---|---|
//! | `m/` | `applied`, `membership`, `next_*_id`, `count/<status>`, `xcount/<status>`, `dedupe_len`, `dedupe_floor`, `outcome_groups`, `cluster_id` | meta | several |
//! | `t/` | task id | `StoredTask` | [`super::tasks`] |
//! | `n/` | task name | task id; only non-deleted tasks | [`super::tasks`] |
//! | `s/` | status byte + task id | empty: the status index | [`super::tasks`] |
//! | `d/` | request id | `StoredDedupe`: the answer a retry gets | [`super::dedupe`] |
//! | `e/` | time (i64) + request id | empty: dedupe expiry order | [`super::dedupe`] |
//! | `x/` | execution id | `StoredExecution` | [`super::executions`] |
//! | `y/` | task id + execution id | empty: a task's executions in creation order | [`super::executions`] |
//! | `z/` | status byte + execution id | empty: executions by status | [`super::executions`] |
//! | `q/` | task id + execution id | empty: a `sequential` task's wait queue | [`super::executions`] |
//! | `r/` | task id | `TaskRuntime` | [`super::executions`] |
//! | `v/` | executor id | `StoredExecutor` | [`super::registry`] |
//! | `i/` | instance id | executor id | [`super::registry`] |
//! | `g/` | group name, `0x00`, executor id | empty: a group's instances | [`super::registry`] |
//! | `b/` | task id + executor id | binding | [`super::registry`] |
//! | `w/` | executor id + task id | empty: the reverse of `b/` | [`super::registry`] |
//! | `l/a/` | executor id | attempts running on it | [`super::registry`] |
//! | `l/c/ l/s/ l/w/` | task id | balance cursor, sticky instance, smooth weights | [`super::balance`] |
//! | `k/` | task id + hour (i64) | hourly rollup; task id 0 holds the whole cluster's | [`super::stats`] |
//! | `c/` | `minutes` | the cluster's fires and missed slots per minute, a ring of 64 | [`super::stats`] |
//! | `c/g/` | group name | the group's label index in the outcome counters (at most 64) | [`super::outcomes`] |
//! | `c/o/` | label index | one group's outcome counters (index 64: every other group) | [`super::outcomes`] |
//! | `a/h/` | blake3 of a token's secret | the token | [`super::tokens`] |
//! | `a/n/` | token name | the hash: the name index | [`super::tokens`] |
//! | `u/` | audit id | one audit entry | [`super::audit`] |
//! | `o/` | task id | who last changed the task | [`super::audit`] |
//! | `p/c/` | channel name | a notification channel | [`super::notify`] |
//! | `p/h/` | channel name | the channel's delivery state | [`super::notify`] |
//! | `p/r/` | rule id | a notification rule | [`super::notify`] |
//! | `p/i/` | selector tag + selector + `0x00` + rule id | empty: the rules of one task, prefix, group, or the default | [`super::notify`] |
//! | `p/o/` | outbox seq | one undelivered (event, channel) | [`super::notify`] |
//! | `p/a/` | subject tag + subject | an alert's suppression state | [`super::notify`] |
//! | `p/m/` | `rules` | the rule summary read before any match (none: zero cost) | [`super::notify`] |

use crate::codec::{key_i64, key_u64, parse_key_u64};
use crate::error::StoreError;
use crate::model::{ExecutionStatus, TaskStatus};
use crate::txn::WriteSet;

/// The last applied log id.
pub const APPLIED: &[u8] = b"m/applied";
/// The last applied membership.
pub const MEMBERSHIP: &[u8] = b"m/membership";
/// The cluster's identity: set once, by the first leader that finds none ([`super::cluster_id`]).
pub const CLUSTER_ID: &[u8] = b"m/cluster_id";
/// The id the next created task gets.
pub const NEXT_TASK_ID: &[u8] = b"m/next_task_id";
/// The id the next execution gets.
pub const NEXT_EXECUTION_ID: &[u8] = b"m/next_execution_id";
/// The id the next registered executor gets.
pub const NEXT_EXECUTOR_ID: &[u8] = b"m/next_executor_id";
/// How many request ids are remembered.
pub const DEDUPE_LEN: &[u8] = b"m/dedupe_len";
/// No live `e/` key is below this one (where expiry resumes its walk).
pub const DEDUPE_FLOOR: &[u8] = b"m/dedupe_floor";
/// How many tokens exist.
pub const TOKEN_COUNT: &[u8] = b"m/token_count";
/// The id the next audit entry gets.
pub const NEXT_AUDIT_ID: &[u8] = b"m/next_audit_id";
/// The cluster's ring of per-minute fires and missed slots.
pub const CLUSTER_MINUTES: &[u8] = b"c/minutes";
/// How many executor groups have a label index of their own in the outcome counters.
pub const OUTCOME_GROUP_COUNT: &[u8] = b"m/outcome_groups";
/// The outcome counters' group index: group name → label index.
pub const OUTCOME_GROUP: &[u8] = b"c/g/";
const OUTCOMES: &[u8] = b"c/o/";
/// Notification counters: next event id, next outbox seq, outbox depth, dropped entries, next
/// rule id, channel and rule counts.
pub const NOTIFY_NEXT_EVENT: &[u8] = b"m/notify_next_event";
pub const NOTIFY_NEXT_SEQ: &[u8] = b"m/notify_next_seq";
pub const NOTIFY_DEPTH: &[u8] = b"m/notify_depth";
pub const NOTIFY_DROPPED: &[u8] = b"m/notify_dropped";
pub const NOTIFY_NEXT_RULE: &[u8] = b"m/notify_next_rule";
pub const NOTIFY_CHANNELS: &[u8] = b"m/notify_channels";
/// The rule summary (counts per selector kind, prefix lengths in use).
pub const NOTIFY_RULE_SUMMARY: &[u8] = b"p/m/rules";
const TASK_COUNT: &[u8] = b"m/count/";
const EXECUTION_COUNT: &[u8] = b"m/xcount/";

/// Task records.
pub const TASK: &[u8] = b"t/";
const TASK_NAME: &[u8] = b"n/";
const TASK_STATUS: &[u8] = b"s/";
const DEDUPE: &[u8] = b"d/";
/// Dedupe expiry order.
pub const DEDUPE_EXPIRY: &[u8] = b"e/";
/// Execution records.
pub const EXECUTION: &[u8] = b"x/";
const EXECUTION_BY_TASK: &[u8] = b"y/";
const EXECUTION_BY_STATUS: &[u8] = b"z/";
const QUEUE: &[u8] = b"q/";
/// Runtime records.
pub const RUNTIME: &[u8] = b"r/";
/// Executor records.
pub const EXECUTOR: &[u8] = b"v/";
const INSTANCE: &[u8] = b"i/";
const GROUP: &[u8] = b"g/";
const BINDING: &[u8] = b"b/";
const BINDING_REVERSE: &[u8] = b"w/";
const LOAD: &[u8] = b"l/a/";
const CURSOR: &[u8] = b"l/c/";
const STICKY: &[u8] = b"l/s/";
const WEIGHTS: &[u8] = b"l/w/";
const ROLLUP: &[u8] = b"k/";
const TOKEN: &[u8] = b"a/h/";
/// The token name index.
pub const TOKEN_NAME: &[u8] = b"a/n/";
const AUDIT: &[u8] = b"u/";
const TASK_AUTHOR: &[u8] = b"o/";
/// Notification channels.
pub const CHANNEL: &[u8] = b"p/c/";
const CHANNEL_STATE: &[u8] = b"p/h/";
/// Notification rules.
pub const RULE: &[u8] = b"p/r/";
const RULE_INDEX: &[u8] = b"p/i/";
/// The notification outbox.
pub const OUTBOX: &[u8] = b"p/o/";
const ALERT: &[u8] = b"p/a/";

fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The inverse of [`key_i64`].
fn parse_key_i64(bytes: &[u8]) -> Option<i64> {
    parse_key_u64(bytes).map(|n| (n ^ (1 << 63)) as i64)
}

// Tasks.

pub fn task(id: u64) -> Vec<u8> {
    join(&[TASK, &key_u64(id)])
}
pub fn task_name(name: &str) -> Vec<u8> {
    join(&[TASK_NAME, name.as_bytes()])
}
pub fn task_status_prefix(status: TaskStatus) -> Vec<u8> {
    join(&[TASK_STATUS, &[status.code()]])
}
pub fn task_status(status: TaskStatus, id: u64) -> Vec<u8> {
    join(&[TASK_STATUS, &[status.code()], &key_u64(id)])
}
/// The task id of a `s/` key.
pub fn parse_task_status(key: &[u8]) -> Option<u64> {
    parse_key_u64(key.get(TASK_STATUS.len() + 1..)?)
}
pub fn task_count(status: TaskStatus) -> Vec<u8> {
    join(&[TASK_COUNT, &[status.code()]])
}

// Request dedupe.

pub fn dedupe(request_id: &[u8]) -> Vec<u8> {
    join(&[DEDUPE, request_id])
}
pub fn dedupe_expiry(at_ms: i64, request_id: &str) -> Vec<u8> {
    join(&[DEDUPE_EXPIRY, &key_i64(at_ms), request_id.as_bytes()])
}
/// The time (`i64::MIN` if unreadable) and request id of an `e/` key.
pub fn parse_dedupe_expiry(key: &[u8]) -> (i64, &[u8]) {
    let at_ms = key.get(DEDUPE_EXPIRY.len()..).and_then(parse_key_i64).unwrap_or(i64::MIN);
    (at_ms, key.get(DEDUPE_EXPIRY.len() + 8..).unwrap_or_default())
}

// Executions.

pub fn execution(id: u64) -> Vec<u8> {
    join(&[EXECUTION, &key_u64(id)])
}
pub fn execution_by_task_prefix(task: u64) -> Vec<u8> {
    join(&[EXECUTION_BY_TASK, &key_u64(task)])
}
pub fn execution_by_task(task: u64, id: u64) -> Vec<u8> {
    join(&[EXECUTION_BY_TASK, &key_u64(task), &key_u64(id)])
}
pub fn execution_by_status_prefix(status: ExecutionStatus) -> Vec<u8> {
    join(&[EXECUTION_BY_STATUS, &[status.code()]])
}
pub fn execution_by_status(status: ExecutionStatus, id: u64) -> Vec<u8> {
    join(&[EXECUTION_BY_STATUS, &[status.code()], &key_u64(id)])
}
/// The execution id of a `z/` key.
pub fn parse_execution_by_status(key: &[u8]) -> Option<u64> {
    parse_key_u64(key.get(EXECUTION_BY_STATUS.len() + 1..)?)
}
pub fn execution_count(status: ExecutionStatus) -> Vec<u8> {
    join(&[EXECUTION_COUNT, &[status.code()]])
}
/// Every task's queue.
pub fn queue_prefix_all() -> &'static [u8] {
    QUEUE
}
pub fn queue_prefix(task: u64) -> Vec<u8> {
    join(&[QUEUE, &key_u64(task)])
}
pub fn queue(task: u64, id: u64) -> Vec<u8> {
    join(&[QUEUE, &key_u64(task), &key_u64(id)])
}
pub fn runtime(task: u64) -> Vec<u8> {
    join(&[RUNTIME, &key_u64(task)])
}
/// The task id of a `r/` key.
pub fn parse_runtime(key: &[u8]) -> Option<u64> {
    parse_key_u64(key.get(RUNTIME.len()..)?)
}

// Executors.

pub fn executor(id: u64) -> Vec<u8> {
    join(&[EXECUTOR, &key_u64(id)])
}
pub fn instance(instance_id: &str) -> Vec<u8> {
    join(&[INSTANCE, instance_id.as_bytes()])
}
pub fn group_prefix(group: &str) -> Vec<u8> {
    join(&[GROUP, group.as_bytes(), &[0]])
}
pub fn group(group: &str, id: u64) -> Vec<u8> {
    join(&[GROUP, group.as_bytes(), &[0], &key_u64(id)])
}
pub fn binding_prefix(task: u64) -> Vec<u8> {
    join(&[BINDING, &key_u64(task)])
}
pub fn binding(task: u64, executor: u64) -> Vec<u8> {
    join(&[BINDING, &key_u64(task), &key_u64(executor)])
}
pub fn binding_reverse_prefix(executor: u64) -> Vec<u8> {
    join(&[BINDING_REVERSE, &key_u64(executor)])
}
pub fn binding_reverse(executor: u64, task: u64) -> Vec<u8> {
    join(&[BINDING_REVERSE, &key_u64(executor), &key_u64(task)])
}
pub fn load(executor: u64) -> Vec<u8> {
    join(&[LOAD, &key_u64(executor)])
}

// Balance state.

pub fn cursor(task: u64) -> Vec<u8> {
    join(&[CURSOR, &key_u64(task)])
}
pub fn sticky(task: u64) -> Vec<u8> {
    join(&[STICKY, &key_u64(task)])
}
pub fn weights(task: u64) -> Vec<u8> {
    join(&[WEIGHTS, &key_u64(task)])
}

// Statistics.

pub fn rollup_prefix(task: u64) -> Vec<u8> {
    join(&[ROLLUP, &key_u64(task)])
}
pub fn rollup(task: u64, hour: i64) -> Vec<u8> {
    join(&[ROLLUP, &key_u64(task), &key_i64(hour)])
}
/// The hour of a `k/` key (0 if unreadable).
pub fn parse_rollup_hour(key: &[u8]) -> i64 {
    key.get(ROLLUP.len() + 8..).and_then(parse_key_i64).unwrap_or(0)
}

// Outcome counters.

pub fn outcome_group(group: &str) -> Vec<u8> {
    join(&[OUTCOME_GROUP, group.as_bytes()])
}
pub fn outcomes(index: u64) -> Vec<u8> {
    join(&[OUTCOMES, &key_u64(index)])
}

// Tokens and the audit list.

pub fn token(hash: &[u8; 32]) -> Vec<u8> {
    join(&[TOKEN, hash])
}
pub fn token_name(name: &str) -> Vec<u8> {
    join(&[TOKEN_NAME, name.as_bytes()])
}
pub fn audit(id: u64) -> Vec<u8> {
    join(&[AUDIT, &key_u64(id)])
}
pub fn task_author(task: u64) -> Vec<u8> {
    join(&[TASK_AUTHOR, &key_u64(task)])
}

// Notifications.

pub fn channel(name: &str) -> Vec<u8> {
    join(&[CHANNEL, name.as_bytes()])
}
pub fn channel_state(name: &str) -> Vec<u8> {
    join(&[CHANNEL_STATE, name.as_bytes()])
}
pub fn rule(id: u64) -> Vec<u8> {
    join(&[RULE, &key_u64(id)])
}
/// The index prefix of one selector: `tag` (`d` default, `t` task, `p` name prefix, `g` group)
/// and its bytes, closed by `0x00`.
pub fn rule_index_prefix(tag: u8, selector: &[u8]) -> Vec<u8> {
    join(&[RULE_INDEX, &[tag], selector, &[0]])
}
pub fn rule_index(tag: u8, selector: &[u8], id: u64) -> Vec<u8> {
    join(&[RULE_INDEX, &[tag], selector, &[0], &key_u64(id)])
}
/// The rule id at the end of a `p/i/` key.
pub fn parse_rule_index(key: &[u8]) -> Option<u64> {
    parse_key_u64(key.get(key.len().checked_sub(8)?..)?)
}
pub fn outbox(seq: u64) -> Vec<u8> {
    join(&[OUTBOX, &key_u64(seq)])
}
/// An alert's state: `tag` (`t` task failing, `m`/`s` task missed/skipped, `g` group without a
/// healthy executor, `n` node unreachable) and the subject's bytes.
pub fn alert(tag: u8, subject: &[u8]) -> Vec<u8> {
    join(&[ALERT, &[tag], subject])
}

// Counters: a `u64` value, big-endian, absent = 0.

pub fn get_u64(ws: &WriteSet<'_>, key: &[u8]) -> Result<u64, StoreError> {
    Ok(ws.get(key)?.as_deref().and_then(parse_key_u64).unwrap_or(0))
}

pub fn put_u64(ws: &mut WriteSet<'_>, key: &[u8], n: u64) {
    ws.insert(key.to_vec(), key_u64(n).to_vec());
}

/// Moves the counter under `key` by `delta` (saturating at 0 and `u64::MAX`).
pub fn bump(ws: &mut WriteSet<'_>, key: &[u8], delta: i64) -> Result<(), StoreError> {
    let n = get_u64(ws, key)?;
    put_u64(ws, key, n.saturating_add_signed(delta));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The storage format, byte for byte: a change here breaks every node's data.
    #[test]
    fn keys_are_todays_bytes() {
        let one = [0, 0, 0, 0, 0, 0, 0, 1u8];
        let two = [0, 0, 0, 0, 0, 0, 0, 2u8];
        assert_eq!(task(1), [b"t/".as_slice(), &one].concat());
        assert_eq!(task_name("nightly"), b"n/nightly");
        assert_eq!(task_status(TaskStatus::Active, 2), [b"s/".as_slice(), &[TaskStatus::Active.code()], &two].concat());
        assert_eq!(task_count(TaskStatus::Paused), [b"m/count/".as_slice(), &[TaskStatus::Paused.code()]].concat());
        assert_eq!(dedupe(b"req-1"), b"d/req-1");
        // 0 ms is the middle of the i64 range: the sign bit flipped.
        assert_eq!(dedupe_expiry(0, "r"), b"e/\x80\0\0\0\0\0\0\0r");
        assert_eq!(dedupe_expiry(-1, "r"), b"e/\x7f\xff\xff\xff\xff\xff\xff\xffr");
        assert_eq!(execution(2), b"x/\0\0\0\0\0\0\0\x02");
        assert_eq!(execution_by_task(1, 2), [b"y/".as_slice(), &one, &two].concat());
        let running = ExecutionStatus::Running.code();
        assert_eq!(execution_by_status(ExecutionStatus::Running, 1), [b"z/".as_slice(), &[running], &one].concat());
        assert_eq!(execution_count(ExecutionStatus::Running), [b"m/xcount/".as_slice(), &[running]].concat());
        assert_eq!(queue(1, 2), [b"q/".as_slice(), &one, &two].concat());
        assert_eq!(runtime(1), [b"r/".as_slice(), &one].concat());
        assert_eq!(executor(2), [b"v/".as_slice(), &two].concat());
        assert_eq!(instance("host:1"), b"i/host:1");
        assert_eq!(group("g", 1), [b"g/g\0".as_slice(), &one].concat());
        assert_eq!(binding(1, 2), [b"b/".as_slice(), &one, &two].concat());
        assert_eq!(binding_reverse(2, 1), [b"w/".as_slice(), &two, &one].concat());
        assert_eq!(load(1), [b"l/a/".as_slice(), &one].concat());
        assert_eq!(cursor(1), [b"l/c/".as_slice(), &one].concat());
        assert_eq!(sticky(1), [b"l/s/".as_slice(), &one].concat());
        assert_eq!(weights(1), [b"l/w/".as_slice(), &one].concat());
        assert_eq!(rollup(1, 0), [b"k/".as_slice(), &one, b"\x80\0\0\0\0\0\0\0"].concat());
        assert_eq!(token(&[7; 32]), [b"a/h/".as_slice(), &[7; 32]].concat());
        assert_eq!(token_name("ci"), b"a/n/ci");
        assert_eq!(audit(2), [b"u/".as_slice(), &two].concat());
        assert_eq!(task_author(1), [b"o/".as_slice(), &one].concat());
        assert_eq!((TOKEN_COUNT, NEXT_AUDIT_ID), (b"m/token_count".as_slice(), b"m/next_audit_id".as_slice()));
        assert_eq!(CLUSTER_MINUTES, b"c/minutes");
        assert_eq!(outcome_group("local"), b"c/g/local");
        assert_eq!(outcomes(64), b"c/o/\0\0\0\0\0\0\0\x40");
        assert_eq!(OUTCOME_GROUP_COUNT, b"m/outcome_groups");
        assert_eq!(channel("ops"), b"p/c/ops");
        assert_eq!(channel_state("ops"), b"p/h/ops");
        assert_eq!(rule(1), [b"p/r/".as_slice(), &one].concat());
        assert_eq!(rule_index(b'g', b"local", 2), [b"p/i/glocal\0".as_slice(), &two].concat());
        assert_eq!(outbox(1), [b"p/o/".as_slice(), &one].concat());
        assert_eq!(alert(b't', &one), [b"p/a/t".as_slice(), &one].concat());
        assert_eq!(parse_rule_index(&rule_index(b'p', b"nightly-", 9)), Some(9));
        let meta: [&[u8]; 7] =
            [APPLIED, MEMBERSHIP, NEXT_TASK_ID, NEXT_EXECUTION_ID, NEXT_EXECUTOR_ID, DEDUPE_LEN, DEDUPE_FLOOR];
        let want: [&[u8]; 7] = [
            b"m/applied",
            b"m/membership",
            b"m/next_task_id",
            b"m/next_execution_id",
            b"m/next_executor_id",
            b"m/dedupe_len",
            b"m/dedupe_floor",
        ];
        assert_eq!(meta, want);
    }

    /// Every prefix a constructor builds on is a prefix of its keys, so prefix scans find them.
    #[test]
    fn prefixes_and_parsers_agree_with_the_keys() {
        assert!(task_status(TaskStatus::Paused, 7).starts_with(&task_status_prefix(TaskStatus::Paused)));
        assert_eq!(parse_task_status(&task_status(TaskStatus::Paused, 7)), Some(7));
        assert_eq!(parse_execution_by_status(&execution_by_status(ExecutionStatus::Pending, 9)), Some(9));
        assert!(execution_by_task(3, 9).starts_with(&execution_by_task_prefix(3)));
        assert!(queue(3, 9).starts_with(&queue_prefix(3)));
        assert!(group("g", 9).starts_with(&group_prefix("g")));
        assert!(binding(3, 9).starts_with(&binding_prefix(3)));
        assert!(binding_reverse(9, 3).starts_with(&binding_reverse_prefix(9)));
        assert!(rollup(3, -5).starts_with(&rollup_prefix(3)));
        assert_eq!(parse_rollup_hour(&rollup(3, -5)), -5);
        assert_eq!(parse_runtime(&runtime(7)), Some(7));
        assert_eq!(parse_dedupe_expiry(&dedupe_expiry(-42, "abc")), (-42, b"abc".as_slice()));
        assert!(task(1).starts_with(TASK) && execution(1).starts_with(EXECUTION) && executor(1).starts_with(EXECUTOR));
        assert!(dedupe_expiry(1, "a").starts_with(DEDUPE_EXPIRY));
    }
}
