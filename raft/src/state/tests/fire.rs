//! Unit tests of apply's scheduling decisions: watermark, cutoff, modes, misfire policies,
//! manual triggers, and the execution indexes.

use super::{spec, task, Harness};
use crate::command::{Command, FireBatch, FireOutcome, MissedSpan, Response, TaskFire};
use crate::model::{Execution, ExecutionMode, ExecutionStatus, MisfirePolicy, Reason, Trigger};
use crate::state::{end_run, At, MISFIRE_THRESHOLD_MS, SEQUENTIAL_QUEUE_MAX};
use crate::txn::WriteSet;

const T0: i64 = 1_700_000_000_000;

impl Harness {
    /// A task created at `T0` with the given mode and policy.
    fn task_with(&mut self, name: &str, mode: ExecutionMode, policy: MisfirePolicy) -> u64 {
        let mut s = spec(name);
        s.execution_mode = mode;
        s.misfire_policy = policy;
        s.catchup_window_seconds = 55;
        task(self.apply_with(&format!("create-{name}"), T0, Command::CreateTask { spec: s })).id
    }

    /// A fire of `slots` for task `id` at version `version`, proposed at `now_ms`.
    fn fire(&mut self, now_ms: i64, id: u64, version: u64, slots: &[i64]) -> FireOutcome {
        let batch = FireBatch {
            tasks: vec![TaskFire { task_id: id, task_version: version, slots: slots.to_vec(), missed_before: None }],
        };
        match self.apply_with("", now_ms, Command::Fire(batch)) {
            Response::Fired(o) => o,
            other => panic!("{other:?}"),
        }
    }

    fn executions(&self, task: u64) -> Vec<Execution> {
        let mut items = self.view().list_executions(Some(task), None, 1, 500).unwrap().items;
        items.reverse(); // oldest first
        items
    }

    fn end(&mut self, id: u64, status: ExecutionStatus) {
        let mut ws = WriteSet::new(&self.tree);
        end_run(&mut ws, At { now_ms: T0 + 99_000, log_index: 999 }, id, status, None).unwrap();
        self.tree.apply_batch(ws.into_batch()).unwrap();
    }
}

fn statuses(execs: &[Execution]) -> Vec<(ExecutionStatus, Option<Reason>, bool)> {
    execs.iter().map(|e| (e.status, e.reason, e.queued)).collect()
}

#[test]
fn each_slot_fires_once_whatever_is_replayed() {
    let mut h = Harness::new();
    let id = h.task_with("a", ExecutionMode::Parallel, MisfirePolicy::FireOnce);
    let out = h.fire(T0 + 2_000, id, 1, &[T0 + 1_000, T0 + 2_000]);
    assert_eq!((out.executions, out.duplicate_slots), (2, 0));
    // A retried proposal, a new leader re-deriving the same slots, a clock that stepped back:
    // all at or before the watermark, all ignored.
    let replay = h.fire(T0 + 2_500, id, 1, &[T0 + 1_000, T0 + 2_000]);
    assert_eq!((replay.executions, replay.duplicate_slots), (0, 2));
    let back = h.fire(T0 + 500, id, 1, &[T0 + 2_000]);
    assert_eq!(back.duplicate_slots, 1);
    let execs = h.executions(id);
    assert_eq!(execs.iter().map(|e| e.scheduled_ms).collect::<Vec<_>>(), vec![T0 + 1_000, T0 + 2_000]);
    assert!(execs.iter().all(|e| e.trigger == Trigger::Schedule && e.status == ExecutionStatus::Pending));
    assert_eq!(h.view().task(id).unwrap().unwrap().fire_watermark_ms, T0 + 2_000);
}

/// The unsafe `ignore_watermark` switch is a store option read by apply (issue 16: it used to be
/// an environment read inside apply). With it, a replayed slot fires again and the watermark
/// stays put; the same replays on a store without it are ignored (the test above).
#[test]
fn the_unsafe_ignore_watermark_option_fires_a_replayed_slot_again() {
    let mut h = Harness::new();
    h.options = crate::state::ApplyOptions { ignore_watermark: true };
    let id = h.task_with("a", ExecutionMode::Parallel, MisfirePolicy::FireOnce);
    assert_eq!(h.fire(T0 + 2_000, id, 1, &[T0 + 1_000]).executions, 1);
    let replay = h.fire(T0 + 2_500, id, 1, &[T0 + 1_000]);
    assert_eq!((replay.executions, replay.duplicate_slots), (1, 0), "fired twice: the breakage the switch is for");
    assert_eq!(h.executions(id).len(), 2);
    assert_eq!(h.view().task(id).unwrap().unwrap().fire_watermark_ms, T0, "the watermark did not move");
}

#[test]
fn no_fire_after_an_acknowledged_pause_delete_or_update() {
    let mut h = Harness::new();
    let id = h.task_with("a", ExecutionMode::Parallel, MisfirePolicy::FireOnce);
    task(h.apply_with("p", T0 + 100, Command::PauseTask { id }));
    assert_eq!(h.fire(T0 + 1_000, id, 1, &[T0 + 1_000]).refused_tasks, 1, "computed before the pause");
    assert_eq!(h.fire(T0 + 1_000, id, 2, &[T0 + 1_000]).refused_tasks, 1, "paused");
    task(h.apply_with("r", T0 + 200, Command::ResumeTask { id }));
    // Version 3 after resume; a fire computed from version 2 is stale.
    assert_eq!(h.fire(T0 + 1_000, id, 2, &[T0 + 1_000]).refused_tasks, 1, "stale version");
    assert_eq!(h.fire(T0 + 1_000, id, 3, &[T0 + 1_000]).executions, 1);
    task(h.apply_with("d", T0 + 300, Command::DeleteTask { id }));
    assert_eq!(h.fire(T0 + 2_000, id, 4, &[T0 + 2_000]).refused_tasks, 1, "deleted");
    assert_eq!(h.fire(T0 + 2_000, 77, 1, &[T0 + 2_000]).refused_tasks, 1, "unknown task");
    assert_eq!(h.executions(id).len(), 1);
}

#[test]
fn skip_mode_records_overlapping_slots_as_skipped() {
    let mut h = Harness::new();
    let id = h.task_with("a", ExecutionMode::Skip, MisfirePolicy::FireOnce);
    let out = h.fire(T0 + 3_000, id, 1, &[T0 + 1_000, T0 + 2_000, T0 + 3_000]);
    assert_eq!((out.executions, out.skipped), (1, 2));
    let execs = h.executions(id);
    assert_eq!(
        statuses(&execs),
        vec![
            (ExecutionStatus::Pending, None, false),
            (ExecutionStatus::Skipped, Some(Reason::Overlap), false),
            (ExecutionStatus::Skipped, Some(Reason::Overlap), false)
        ]
    );
    h.end(execs[0].id, ExecutionStatus::Success);
    assert_eq!(h.fire(T0 + 4_000, id, 1, &[T0 + 4_000]).executions, 1, "runs again once the run ended");
}

#[test]
fn sequential_mode_queues_in_order_and_bounds_the_queue() {
    let mut h = Harness::new();
    let id = h.task_with("a", ExecutionMode::Sequential, MisfirePolicy::FireOnce);
    h.fire(T0 + 3_000, id, 1, &[T0 + 1_000, T0 + 2_000, T0 + 3_000]);
    let execs = h.executions(id);
    assert_eq!(
        statuses(&execs),
        vec![
            (ExecutionStatus::Pending, None, false),
            (ExecutionStatus::Pending, Some(Reason::Queued), true),
            (ExecutionStatus::Pending, Some(Reason::Queued), true)
        ]
    );
    // The first run ends: exactly the next one (FIFO) becomes runnable.
    h.end(execs[0].id, ExecutionStatus::Success);
    let after = statuses(&h.executions(id));
    assert_eq!(after[1], (ExecutionStatus::Pending, None, false));
    assert_eq!(after[2], (ExecutionStatus::Pending, Some(Reason::Queued), true));
    // The queue is bounded: slots beyond it are recorded skipped (queue_full).
    let slots: Vec<i64> = (0..SEQUENTIAL_QUEUE_MAX as i64 + 5).map(|i| T0 + 10_000 + i).collect();
    let out = h.fire(T0 + 10_000 + 200, id, 1, &slots);
    assert_eq!(out.skipped, 6, "{out:?}");
    let last = h.executions(id).pop().unwrap();
    assert_eq!((last.status, last.reason), (ExecutionStatus::Skipped, Some(Reason::QueueFull)));
    // Pausing cancels what waits.
    task(h.apply_with("pause", T0 + 20_000, Command::PauseTask { id }));
    let queued_left = h.executions(id).iter().filter(|e| e.queued).count();
    assert_eq!(queued_left, 0);
    let cancelled = h.view().execution_count(id, ExecutionStatus::Cancelled).unwrap();
    assert_eq!(cancelled, SEQUENTIAL_QUEUE_MAX as u64);
}

#[test]
fn replace_mode_cancels_the_active_run() {
    let mut h = Harness::new();
    let id = h.task_with("a", ExecutionMode::Replace, MisfirePolicy::FireOnce);
    h.fire(T0 + 2_000, id, 1, &[T0 + 1_000, T0 + 2_000]);
    assert_eq!(
        statuses(&h.executions(id)),
        vec![(ExecutionStatus::Cancelled, Some(Reason::Replaced), false), (ExecutionStatus::Pending, None, false)]
    );
}

#[test]
fn misfire_policies_account_for_every_late_slot() {
    let late = |h: &mut Harness, name, policy| {
        let id = h.task_with(name, ExecutionMode::Parallel, policy);
        // Fired at T0+70s: slots 60, 50 and 40 s late (misfires, beyond the threshold), and one
        // 1 s late (a failover-sized delay: fires normally).
        let now = T0 + 70_000;
        h.fire(now, id, 1, &[T0 + 10_000, T0 + 20_000, T0 + 30_000, now - 1_000]);
        h.executions(id).iter().map(|e| (e.status, e.trigger)).collect::<Vec<_>>()
    };
    let mut h = Harness::new();
    use ExecutionStatus::{Missed, Pending};
    use Trigger::{Catchup, Schedule};
    assert!(MISFIRE_THRESHOLD_MS < 40_000 && MISFIRE_THRESHOLD_MS > 1_000);
    assert_eq!(
        late(&mut h, "once", MisfirePolicy::FireOnce),
        vec![(Missed, Schedule), (Missed, Schedule), (Pending, Catchup), (Pending, Schedule)]
    );
    assert_eq!(
        late(&mut h, "skip", MisfirePolicy::Skip),
        vec![(Missed, Schedule), (Missed, Schedule), (Missed, Schedule), (Pending, Schedule)]
    );
    // fire_all within a 55 s window: the 60 s-late slot is outside it, 50 and 40 s are in.
    assert_eq!(
        late(&mut h, "all", MisfirePolicy::FireAll),
        vec![(Missed, Schedule), (Pending, Catchup), (Pending, Catchup), (Pending, Schedule)]
    );
}

#[test]
fn a_long_backlog_is_summarized_in_one_missed_record() {
    let mut h = Harness::new();
    let id = h.task_with("a", ExecutionMode::Parallel, MisfirePolicy::FireOnce);
    let now = T0 + 100_000_000;
    let span = MissedSpan { first_ms: T0 + 1_000, last_ms: T0 + 5_000_000, count: 5_000 };
    let batch = FireBatch {
        tasks: vec![TaskFire { task_id: id, task_version: 1, slots: vec![now - 10_000], missed_before: Some(span) }],
    };
    let Response::Fired(out) = h.apply_with("", now, Command::Fire(batch)) else { panic!() };
    assert_eq!((out.missed, out.executions), (5_000, 1));
    let execs = h.executions(id);
    assert_eq!((execs[0].status, execs[0].slot_count), (ExecutionStatus::Missed, 5_000));
    assert_eq!(execs[1].trigger, Trigger::Catchup);
}

/// Regression: a summarized span that an earlier entry had partly fired was dropped whole, so
/// the slots between that entry's last slot and the span's end got no record.
#[test]
fn a_span_partly_fired_by_an_earlier_entry_still_accounts_for_the_rest() {
    let mut h = Harness::new();
    let mut s = spec("every-second");
    s.cron_expression = "* * * * * *".into();
    let id = task(h.apply_with("c", T0, Command::CreateTask { spec: s })).id;
    let now = T0 + 60_000;
    let second = |k: i64| T0 + k * 1_000;

    // Phase 1: an entry proposed before a rebuild lists slots 1 to 3 and is applied first.
    h.fire(now, id, 1, &[second(1), second(2), second(3)]);

    // Phase 2: the rebuilt scheduler's entry, made from the older watermark, summarizes 1 to 5
    // and lists 6. Slots 4 and 5 must be recorded as missed, and 1 to 3 not again.
    let span = MissedSpan { first_ms: second(1), last_ms: second(5), count: 5 };
    let fire = TaskFire { task_id: id, task_version: 1, slots: vec![second(6)], missed_before: Some(span) };
    let Response::Fired(out) = h.apply_with("", now, Command::Fire(FireBatch { tasks: vec![fire] })) else { panic!() };
    assert_eq!((out.missed, out.executions), (2, 1));

    // Phase 3: every slot from 1 to 6 is accounted for exactly once.
    let execs = h.executions(id);
    let span_record = execs.iter().find(|e| e.slot_count > 1).expect("a span record");
    assert_eq!((span_record.scheduled_ms, span_record.slot_count), (second(5), 2));
    assert!(span_record.result.contains(&format!("from {}", second(4))), "{}", span_record.result);
    let slots: u64 = execs.iter().map(|e| e.slot_count).sum();
    assert_eq!(slots, 6, "slots 1..=6 once each: {execs:?}");

    // Phase 4: a span entirely at or before the watermark is a replay and adds nothing.
    let span = MissedSpan { first_ms: second(1), last_ms: second(5), count: 5 };
    let fire = TaskFire { task_id: id, task_version: 1, slots: vec![second(6)], missed_before: Some(span) };
    let Response::Fired(out) = h.apply_with("", now, Command::Fire(FireBatch { tasks: vec![fire] })) else { panic!() };
    assert_eq!((out.missed, out.executions, out.duplicate_slots), (0, 0, 1));
}

/// Regression (chaos run of kill and pause, seed 21, session 9): a delete applied before a new
/// leader's first fire entry left the slots between the task's watermark and the delete with
/// no record at all; the late fire of those slots was then refused, as it must be.
#[test]
fn slots_a_pause_delete_or_update_cuts_off_before_they_fired_are_recorded_missed() {
    let mut h = Harness::new();
    let second = |k: i64| T0 + k * 1_000;
    let every_second = |h: &mut Harness, name: &str| {
        let mut s = spec(name);
        s.cron_expression = "* * * * * *".into();
        task(h.apply_with(&format!("c-{name}"), T0, Command::CreateTask { spec: s })).id
    };
    let cut = |h: &Harness, id: u64| -> Vec<(i64, u64, Option<Reason>)> {
        h.executions(id)
            .iter()
            .filter(|e| e.status == ExecutionStatus::Missed)
            .map(|e| (e.scheduled_ms, e.slot_count, e.reason))
            .collect()
    };

    // Phase 1: the pause. Slots 1 to 5 fired; no leader fired 6 to 8 before the pause at 8.5 s.
    // They become one `missed` record (reason cut_off) ending at slot 8, and the fire that comes
    // too late is refused (the pause bumped the version) without a second record.
    let paused = every_second(&mut h, "paused");
    h.fire(second(5), paused, 1, &[second(1), second(2), second(3), second(4), second(5)]);
    task(h.apply_with("p", second(8) + 500, Command::PauseTask { id: paused }));
    assert_eq!(cut(&h, paused), vec![(second(8), 3, Some(Reason::CutOff))]);
    let late = h.fire(second(10), paused, 1, &[second(6), second(7), second(8)]);
    assert_eq!((late.executions, late.refused_tasks), (0, 1));
    assert_eq!(h.executions(paused).iter().map(|e| e.slot_count).sum::<u64>(), 8, "slots 1..=8 once each");
    let record = h.executions(paused).into_iter().find(|e| e.reason == Some(Reason::CutOff)).unwrap();
    assert!(record.result.contains(&format!("from {} to {}", second(6), second(8))), "{}", record.result);

    // Phase 2: pausing again, deleting the paused task and resuming cut off nothing: a paused
    // task has no active life, and resume starts from its own time.
    task(h.apply_with("p2", second(20), Command::PauseTask { id: paused }));
    task(h.apply_with("r", second(21), Command::ResumeTask { id: paused }));
    task(h.apply_with("p3", second(21), Command::PauseTask { id: paused }));
    task(h.apply_with("d", second(30), Command::DeleteTask { id: paused }));
    assert_eq!(cut(&h, paused).len(), 1);

    // Phase 3: the delete of an active task, never fired: every slot since its creation.
    let deleted = every_second(&mut h, "deleted");
    task(h.apply_with("d2", second(4), Command::DeleteTask { id: deleted }));
    assert_eq!(cut(&h, deleted), vec![(second(4), 4, Some(Reason::CutOff))]);

    // Phase 4: an update moves the watermark to its own time; the slots it skipped are recorded
    // under the old version, and a fire made from the old version is refused.
    let updated = every_second(&mut h, "updated");
    h.fire(second(2), updated, 1, &[second(1), second(2)]);
    let patch = crate::spec::TaskPatch { max_retry: Some(2), ..Default::default() };
    task(h.apply_with("u", second(5), Command::UpdateTask { id: updated, patch, expected_version: None }));
    assert_eq!(cut(&h, updated), vec![(second(5), 3, Some(Reason::CutOff))]);
    assert_eq!(h.fire(second(6), updated, 1, &[second(3)]).refused_tasks, 1);

    // Phase 5: a rejected command cuts off nothing, nor one whose time is not past the watermark.
    let stale = crate::spec::TaskPatch { max_retry: Some(3), ..Default::default() };
    let cmd = Command::UpdateTask { id: updated, patch: stale, expected_version: Some(1) };
    assert!(matches!(h.apply_with("u2", second(9), cmd), Response::Rejected(_)));
    h.fire(second(9), updated, 2, &[second(6), second(7), second(8), second(9)]);
    task(h.apply_with("p4", second(9), Command::PauseTask { id: updated }));
    assert_eq!(cut(&h, updated).len(), 1);
}

#[test]
fn manual_trigger_bypasses_the_mode_and_records_who_asked() {
    let mut h = Harness::new();
    let id = h.task_with("a", ExecutionMode::Skip, MisfirePolicy::FireOnce);
    h.fire(T0 + 1_000, id, 1, &[T0 + 1_000]);
    task(h.apply_with("p", T0 + 1_500, Command::PauseTask { id }));
    let cmd = Command::TriggerTask { id, parameters: Some(r#"{"x":1}"#.into()), requested_by: "alice".into() };
    let Response::Execution(e) = h.apply_with("t1", T0 + 2_000, cmd) else { panic!() };
    assert_eq!(
        (e.trigger, e.status, e.requested_by.as_str(), e.parameters.as_str()),
        (Trigger::Manual, ExecutionStatus::Pending, "alice", r#"{"x":1}"#)
    );
    task(h.apply_with("d", T0 + 3_000, Command::DeleteTask { id }));
    let cmd = Command::TriggerTask { id, parameters: None, requested_by: String::new() };
    assert!(matches!(h.apply_with("t2", T0 + 4_000, cmd), Response::Rejected(_)));
}

#[test]
fn listings_are_newest_first_with_exact_totals() {
    let mut h = Harness::new();
    let a = h.task_with("a", ExecutionMode::Skip, MisfirePolicy::FireOnce);
    let b = h.task_with("b", ExecutionMode::Parallel, MisfirePolicy::FireOnce);
    h.fire(T0 + 3_000, a, 1, &[T0 + 1_000, T0 + 2_000, T0 + 3_000]);
    h.fire(T0 + 3_000, b, 1, &[T0 + 1_000, T0 + 2_000]);
    let v = h.view();
    let page = v.list_executions(Some(a), None, 1, 2).unwrap();
    assert_eq!((page.total, page.items.len()), (3, 2));
    assert!(page.items[0].id > page.items[1].id, "newest first");
    assert_eq!(v.list_executions(Some(a), Some(ExecutionStatus::Skipped), 1, 10).unwrap().total, 2);
    // A task and a status: the walk stops at the task's last match, or never starts.
    let past = v.list_executions(Some(a), Some(ExecutionStatus::Skipped), 2, 2).unwrap();
    assert_eq!((past.total, past.items.len()), (2, 0));
    let none = v.list_executions(Some(a), Some(ExecutionStatus::Failed), 1, 10).unwrap();
    assert_eq!((none.total, none.items.len()), (0, 0));
    let last = v.list_executions(Some(a), Some(ExecutionStatus::Skipped), 2, 1).unwrap();
    assert_eq!((last.total, last.items.len()), (2, 1));
    assert_eq!(v.list_executions(None, Some(ExecutionStatus::Pending), 1, 10).unwrap().total, 3);
    assert_eq!(v.list_executions(None, None, 2, 4).unwrap().items.len(), 1);
    assert_eq!(v.active_execution_ids().unwrap().len(), 3);
}

/// A size from the environment for the measurement below, or `default`; a value that is not a
/// positive number stops the run instead of silently measuring the default.
pub(super) fn size_from_env(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().ok().filter(|n| *n > 0).unwrap_or_else(|| panic!("{name}={v:?} is not a positive number")),
        Err(_) => default,
    }
}

/// The apply cost of one large fire (release, `--ignored --nocapture`). `APPLY_COST_N` sets the
/// slots (default 10,000) and `APPLY_COST_CHUNK` the slots per entry (default: all in one).
#[test]
#[ignore]
fn apply_cost_of_a_10k_slot_fire() {
    let mut h = Harness::new();
    let n = size_from_env("APPLY_COST_N", 10_000);
    for i in 0..n {
        h.apply_with(&format!("c{i}"), T0, Command::CreateTask { spec: spec(&format!("t{i}")) });
    }
    let tasks = (1..=n)
        .map(|id| TaskFire { task_id: id, task_version: 1, slots: vec![T0 + 60_000], missed_before: None })
        .collect();
    let started = std::time::Instant::now();
    let mut ws = WriteSet::new(&h.tree);
    let req = crate::command::Request {
        request_id: String::new(),
        now_ms: T0 + 60_001,
        command: Command::Fire(FireBatch { tasks }),
    };
    crate::state::apply_request(&mut ws, &req, 1, h.options).unwrap();
    let applied = started.elapsed();
    let batch = ws.into_batch();
    h.tree.apply_batch(batch).unwrap();
    println!("apply {n} slots: decide {applied:?}, sled batch {:?}", started.elapsed() - applied);

    // The same slots fired and dispatched in one entry (as the scheduler does), to a group
    // nobody serves with no retry: each run is recorded `failed` (`no_healthy_executor`) — the
    // benchmark's burst shape.
    let mut h = Harness::new();
    for i in 0..n {
        let mut s = spec(&format!("t{i}"));
        s.executor = "nobody".into();
        s.max_retry = 0;
        h.apply_with(&format!("c{i}"), T0, Command::CreateTask { spec: s });
    }
    let chunk = size_from_env("APPLY_COST_CHUNK", n);
    let started = std::time::Instant::now();
    let (mut decide, mut write, mut keys) = (std::time::Duration::ZERO, std::time::Duration::ZERO, 0);
    for (i, first) in (1..=n).step_by(chunk as usize).enumerate() {
        let tasks = (first..(first + chunk).min(n + 1))
            .map(|id| TaskFire { task_id: id, task_version: 1, slots: vec![T0 + 60_000], missed_before: None })
            .collect();
        let t = std::time::Instant::now();
        let mut ws = WriteSet::new(&h.tree);
        let command = Command::FireAndDispatch { batch: FireBatch { tasks }, seed: 1, term: 1 };
        let req = crate::command::Request { request_id: String::new(), now_ms: T0 + 60_001, command };
        crate::state::apply_request(&mut ws, &req, 1 + i as u64, h.options).unwrap();
        decide += t.elapsed();
        keys += ws.pending_len();
        let t = std::time::Instant::now();
        h.tree.apply_batch(ws.into_batch()).unwrap();
        write += t.elapsed();
    }
    println!(
        "fire and dispatch {n} slots in entries of {chunk}: decide {decide:?} ({keys} keys written), sled batches {write:?}, total {:?}",
        started.elapsed()
    );
}

/// Listing the latest page of a task with a million records (release, `--ignored --nocapture`;
/// `LISTING_RECORDS` sets the count). The per-task index `y/<task><id>` is read backwards from
/// its end, so the first page costs the same whatever the history's size; a status filter on top
/// of a task reads the task's index until the page is full, so a rare status costs more.
#[test]
#[ignore]
fn listing_the_latest_page_of_a_task_with_a_million_records() {
    let mut h = Harness::new();
    let n = size_from_env("LISTING_RECORDS", 1_000_000);
    let a = h.task_with("a", ExecutionMode::Parallel, MisfirePolicy::FireOnce);
    let b = h.task_with("b", ExecutionMode::Parallel, MisfirePolicy::FireOnce);

    // Phase 1: task `a` gets `n` records in entries of 2,000 slots; each entry is applied at its
    // last slot, so most are recorded `missed` and the newest `pending` (one record per slot
    // either way). Task `b` gets one record per entry, interleaved with `a`'s ids.
    let started = std::time::Instant::now();
    let mut fired = 0u64;
    while fired < n {
        let k = (n - fired).min(2_000);
        let slots: Vec<i64> = (fired..fired + k).map(|i| T0 + 1_000 * (i as i64 + 1)).collect();
        let now = *slots.last().unwrap();
        h.fire(now, a, 1, &slots);
        h.fire(now, b, 1, &[now]);
        fired += k;
    }
    println!("{n} records of one task written in {:?}", started.elapsed());

    // Phase 2: the first page, newest first, with the exact total; timed over 100 reads.
    let v = h.view();
    let time = |reads: u32, f: &dyn Fn() -> crate::state::ExecutionPage| {
        let started = std::time::Instant::now();
        let mut page = f();
        for _ in 1..reads {
            page = f();
        }
        (page, started.elapsed() / reads)
    };
    let (page, first) = time(100, &|| v.list_executions(Some(a), None, 1, 50).unwrap());
    assert_eq!((page.total, page.items.len()), (n, 50));
    assert!(page.items.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert!(page.items.iter().all(|e| e.task_id == a));
    assert_eq!(page.items[0].scheduled_ms, T0 + 1_000 * n as i64);
    let (_, page_100) = time(100, &|| v.list_executions(Some(a), None, 100, 50).unwrap());
    let (pending, by_status) =
        time(100, &|| v.list_executions(Some(a), Some(ExecutionStatus::Pending), 1, 50).unwrap());
    assert_eq!(pending.items.len(), 50);
    assert!(pending.items.iter().all(|e| e.status == ExecutionStatus::Pending));
    // The worst case: a status the task has no record in reads the task's whole index.
    let (none, absent) = time(1, &|| v.list_executions(Some(a), Some(ExecutionStatus::Failed), 1, 50).unwrap());
    assert_eq!((none.total, none.items.len()), (0, 0));
    println!(
        "task with {n} records, page size 50: first page {first:?}, page 100 {page_100:?}, first page of `pending` ({} of them) {by_status:?}, a status with no record {absent:?}",
        pending.total
    );
}

/// Where the bytes of 100,000 tasks go, shaped like the benchmark's `memory` scenario (64
/// creates per apply run, a request id each): stored bytes per key prefix, and this process's RSS
/// growth (run with `--ignored --nocapture`, in release; the log tree is not included).
#[test]
#[ignore]
fn stored_bytes_of_100k_tasks() {
    fn rss() -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        let kb = s.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap();
        kb.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap() * 1024
    }
    let h = Harness::new();
    let r0 = rss();
    let n = 100_000u64;
    let mut i = 0;
    while i < n {
        let mut ws = WriteSet::new(&h.tree);
        for _ in 0..64 {
            if i >= n {
                break;
            }
            let mut s = spec(&format!("mem-{i}"));
            s.cron_expression = "0 0 0 1 1 *".into();
            s.executor = "bench-none".into();
            let req = crate::command::Request {
                request_id: format!("{:032x}-{i}", i * 7919),
                now_ms: T0 + i as i64,
                command: Command::CreateTask { spec: s },
            };
            crate::state::apply_request(&mut ws, &req, i, h.options).unwrap();
            i += 1;
        }
        h.tree.apply_batch(ws.into_batch()).unwrap();
    }
    let r1 = rss();
    let mut by: std::collections::BTreeMap<Vec<u8>, (u64, u64)> = Default::default();
    for kv in h.tree.iter() {
        let (k, v) = kv.unwrap();
        let p = k.iter().take_while(|b| **b != b'/').cloned().collect::<Vec<u8>>();
        let e = by.entry(p).or_default();
        e.0 += 1;
        e.1 += (k.len() + v.len()) as u64;
    }
    for (p, (c, b)) in by {
        println!("{:10} keys {c:8} bytes {b:10} per task {:.0}", String::from_utf8_lossy(&p), b as f64 / n as f64);
    }
    println!("rss {} -> {} MiB: {:.0} B/task", r0 >> 20, r1 >> 20, (r1 - r0) as f64 / n as f64);
}
