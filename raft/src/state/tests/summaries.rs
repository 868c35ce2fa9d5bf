//! Unit tests of the summaries apply keeps for the console's reads: each task's latest final
//! execution (its runtime record), and the cluster's statistics — hourly rollups that count every
//! task's executions as the per-task rollups do, a minute ring that gives the last hour, and
//! their purge by retention.

use super::{spec, task, Harness};
use crate::command::{Command, FireBatch, MissedSpan, PurgeOrder, Response, TaskFire};
use crate::model::{Execution, ExecutionStatus};
use crate::state::{end_run, keys, At, CLUSTER};
use crate::txn::WriteSet;

/// 2023-11-14T22:00:00Z: the start of an hour.
const H0: i64 = 1_699_999_200_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

impl Harness {
    fn every_minute(&mut self, name: &str) -> u64 {
        let mut s = spec(name);
        (s.executor, s.max_retry) = ("nobody".into(), 0);
        task(self.apply_with(&format!("create-{name}"), H0, Command::CreateTask { spec: s })).id
    }

    /// Fires `slots` of `task` at `now_ms`, with `missed` (a summarized span) before them.
    fn fire_with(&mut self, now_ms: i64, task: u64, slots: &[i64], missed: Option<MissedSpan>) {
        let fire = TaskFire { task_id: task, task_version: 1, slots: slots.to_vec(), missed_before: missed };
        match self.apply_with("", now_ms, Command::Fire(FireBatch { tasks: vec![fire] })) {
            Response::Fired(_) => {}
            other => panic!("{other:?}"),
        }
    }

    /// A manual run of `task`, requested at `at_ms`.
    pub(super) fn run_now(&mut self, task: u64, at_ms: i64) -> Execution {
        let command = Command::TriggerTask { id: task, parameters: None, requested_by: "t".into() };
        match self.apply_with("", at_ms, command) {
            Response::Execution(e) => e,
            other => panic!("{other:?}"),
        }
    }

    fn end_as(&mut self, id: u64, status: ExecutionStatus, at_ms: i64) {
        let mut ws = WriteSet::new(&self.tree);
        end_run(&mut ws, At { now_ms: at_ms, log_index: 0 }, id, status, None).unwrap();
        self.tree.apply_batch(ws.into_batch()).unwrap();
    }
}

#[test]
fn the_cluster_rollups_sum_every_task_and_the_ring_gives_the_last_hour() {
    let mut h = Harness::new();
    let (a, b) = (h.every_minute("a"), h.every_minute("b"));
    // Phase 1: a fires on time at minutes 10 and 20, b at minute 20 after a summarized span of
    // 5 missed slots (minutes 1 to 5); one run of each ends.
    h.fire_with(H0 + 10 * MIN, a, &[H0 + 10 * MIN], None);
    h.fire_with(H0 + 20 * MIN, a, &[H0 + 20 * MIN], None);
    let span = MissedSpan { first_ms: H0 + MIN, last_ms: H0 + 5 * MIN, count: 5 };
    h.fire_with(H0 + 20 * MIN, b, &[H0 + 20 * MIN], Some(span));
    let latest = |h: &Harness, task| h.view().list_executions(Some(task), None, 1, 1).unwrap().items[0].id;
    let (run_a, run_b) = (latest(&h, a), latest(&h, b));
    h.end_as(run_a, ExecutionStatus::Success, H0 + 21 * MIN);
    h.end_as(run_b, ExecutionStatus::Failed, H0 + 21 * MIN);

    // Phase 2: the cluster report is the sum of the tasks' reports.
    let v = h.view();
    let now = H0 + 30 * MIN;
    let (sa, sb, all) = (v.task_stats(a, now).unwrap(), v.task_stats(b, now).unwrap(), v.cluster_stats(now).unwrap());
    assert_eq!((all.last_24h.on_time, all.last_24h.missed), (3, 5));
    assert_eq!((all.last_24h.success, all.last_24h.failed), (1, 1));
    assert_eq!(all.last_24h.total, sa.last_24h.total + sb.last_24h.total);
    assert_eq!(all.daily.len(), 1);

    // Phase 3: the last hour counts fires and missed slots by the minute of their slot; an hour
    // later the minutes before have left the window.
    let last = v.cluster_last_hour(now).unwrap();
    assert_eq!((last.fires, last.missed), (3, 5));
    let later = v.cluster_last_hour(H0 + 70 * MIN + 30_000).unwrap();
    assert_eq!((later.fires, later.missed), (2, 0), "only minute 20's fires are within the hour before 23:10:30");
    assert_eq!(v.cluster_last_hour(H0 + 3 * HOUR).unwrap().fires, 0);
}

#[test]
fn a_slot_older_than_the_ring_leaves_it_alone() {
    let mut h = Harness::new();
    let (a, b) = (h.every_minute("a"), h.every_minute("b"));
    // Phase 1: a's fire at minute 100 holds the ring's place of minute 100 − 64 = 36.
    h.fire_with(H0 + 100 * MIN, a, &[H0 + 100 * MIN], None);
    // Phase 2: b's missed slot of minute 36, recorded at minute 101, would land in that place:
    // it is older than what the place holds, so the ring does not count it.
    let span = MissedSpan { first_ms: H0 + 36 * MIN, last_ms: H0 + 36 * MIN, count: 1 };
    h.fire_with(H0 + 101 * MIN, b, &[H0 + 101 * MIN], Some(span));
    let last = h.view().cluster_last_hour(H0 + 101 * MIN).unwrap();
    assert_eq!((last.fires, last.missed), (2, 0));
    // The hourly rollups count it: only the ring has a limited reach.
    assert_eq!(h.view().cluster_stats(H0 + 101 * MIN).unwrap().last_24h.missed, 1);
}

#[test]
fn retention_purges_the_cluster_rollups_past_the_longest_window() {
    let mut h = Harness::new();
    let a = h.every_minute("a");
    h.fire_with(H0 + MIN, a, &[H0 + MIN], None);
    let old = keys::rollup(CLUSTER, H0.div_euclid(HOUR));
    assert!(h.tree.get(&old).unwrap().is_some());
    // Phase 1: 90 days later the rollup is still within the 90-day report.
    let purge = |before_ms| Command::Purge(PurgeOrder { before_ms, per_task_max: 10_000, tasks: vec![], limit: 10 });
    h.apply_with("", H0 + 90 * 24 * HOUR, purge(0));
    assert!(h.tree.get(&old).unwrap().is_some());
    // Phase 2: past 91 days any purge order drops it, whatever tasks it names.
    h.apply_with("", H0 + 92 * 24 * HOUR, purge(0));
    assert!(h.tree.get(&old).unwrap().is_none());
    assert!(
        h.tree.get(keys::rollup(a, H0.div_euclid(HOUR))).unwrap().is_some(),
        "a task's rollups go when it is named"
    );
}

#[test]
fn the_runtime_record_follows_the_latest_final_execution() {
    let mut h = Harness::new();
    let id = h.every_minute("job");
    // Phase 1: nothing has ended yet: no latest result, even with a run under way.
    let first = h.run_now(id, H0 + 1_000);
    assert_eq!(h.view().runtime(id).unwrap().last_final, None);
    // Phase 2: it fails; then a second run succeeds: the latest result follows, with the end time
    // stamped by the entry that ended it.
    h.end_as(first.id, ExecutionStatus::Failed, H0 + 2_000);
    let last = h.view().runtime(id).unwrap().last_final.unwrap();
    assert_eq!((last.execution_id, last.status, last.end_ms), (first.id, ExecutionStatus::Failed, H0 + 2_000));
    let second = h.run_now(id, H0 + 3_000);
    assert_eq!(
        h.view().runtime(id).unwrap().last_final.unwrap().execution_id,
        first.id,
        "a run under way changes nothing"
    );
    h.end_as(second.id, ExecutionStatus::Success, H0 + 4_000);
    let last = h.view().runtime(id).unwrap().last_final.unwrap();
    assert_eq!((last.execution_id, last.status), (second.id, ExecutionStatus::Success));
    // Phase 3: a slot recorded `missed` is a final execution too (of two misfired slots,
    // `fire_once` records the first missed and runs the second).
    h.fire_with(H0 + 10 * MIN, id, &[H0 + MIN, H0 + 2 * MIN], None);
    assert_eq!(h.view().runtime(id).unwrap().last_final.unwrap().status, ExecutionStatus::Missed);
}
