//! Unit tests of the filtered listings: task filters and sorts (the latest result read from the
//! runtime records), and the bounded walk of execution filters.

use super::{spec, task, Harness};
use crate::command::{Command, FireBatch, TaskFire};
use crate::model::{ExecutionMode, ExecutionStatus, TaskStatus, Trigger};
use crate::state::{
    end_run, At, ExecutionQuery, LastResultFilter, TaskQuery, TaskSort, COUNT_MAX, CREATED_MARGIN_MS, WALK_RECORDS_MAX,
};
use crate::txn::WriteSet;

const T0: i64 = 1_700_000_000_000;
const MIN: i64 = 60_000;

impl Harness {
    fn create_in(&mut self, name: &str, cron: &str, group: &str, mode: ExecutionMode, at_ms: i64) -> u64 {
        let mut s = spec(name);
        (s.cron_expression, s.executor, s.execution_mode) = (cron.into(), group.into(), mode);
        task(self.apply_with(&format!("create-{name}"), at_ms, Command::CreateTask { spec: s })).id
    }

    fn finish(&mut self, id: u64, status: ExecutionStatus, at_ms: i64) {
        let mut ws = WriteSet::new(&self.tree);
        end_run(&mut ws, At { now_ms: at_ms, log_index: 0 }, id, status, None).unwrap();
        self.tree.apply_batch(ws.into_batch()).unwrap();
    }

    fn fire_at(&mut self, now_ms: i64, task: u64, slots: &[i64]) {
        let fire = TaskFire { task_id: task, task_version: 1, slots: slots.to_vec(), missed_before: None };
        self.apply_with("", now_ms, Command::Fire(FireBatch { tasks: vec![fire] }));
    }

    fn names(&self, q: &TaskQuery, now_ms: i64) -> (Vec<String>, u64) {
        let page = self.view().query_tasks(q, now_ms, 1, 100).unwrap();
        (page.items.into_iter().map(|t| t.spec.name).collect(), page.total)
    }
}

/// Five tasks: names of mixed case, two groups, three modes, one paused, one deleted; runs that
/// ended in different ways; different schedules; updated at different times.
fn five_tasks() -> Harness {
    let mut h = Harness::new();
    let a = h.create_in("Alpha-backup", "0 30 * * * *", "g1", ExecutionMode::Parallel, T0);
    let b = h.create_in("beta", "0 50 * * * *", "g2", ExecutionMode::Skip, T0 + 1);
    let c = h.create_in("gamma-BACKUP", "0 40 * * * *", "g1", ExecutionMode::Sequential, T0 + 2);
    let d = h.create_in("delta", "0 15 * * * *", "g2", ExecutionMode::Skip, T0 + 3);
    let e = h.create_in("epsilon-backup", "0 1 * * * *", "g1", ExecutionMode::Parallel, T0 + 4);
    for (task, status) in [(a, ExecutionStatus::Failed), (b, ExecutionStatus::Success), (c, ExecutionStatus::Timeout)] {
        let run = h.run_now(task, T0 + 10);
        h.finish(run.id, status, T0 + 20);
    }
    h.apply_with("pause-d", T0 + 30, Command::PauseTask { id: d });
    h.apply_with("delete-e", T0 + 40, Command::DeleteTask { id: e });
    h.apply_with("pause-b", T0 + 50, Command::PauseTask { id: b });
    h.apply_with("resume-b", T0 + 60, Command::ResumeTask { id: b });
    h
}

#[test]
fn task_filters_keep_the_matching_tasks_with_an_exact_total() {
    let h = five_tasks();
    let q = |f: fn(&mut TaskQuery)| {
        let mut q = TaskQuery::default();
        f(&mut q);
        q
    };
    // Phase 1: the name is a case-insensitive substring; deleted tasks stay out unless asked for.
    let backup = q(|q| q.name = Some("backup".into()));
    assert_eq!(h.names(&backup, T0), (vec!["Alpha-backup".into(), "gamma-BACKUP".into()], 2));
    let deleted_backup = q(|q| (q.name, q.status) = (Some("backup".into()), Some(TaskStatus::Deleted)));
    assert_eq!(h.names(&deleted_backup, T0).1, 1);
    // Phase 2: group and mode are exact, and combine with the status.
    assert_eq!(h.names(&q(|q| q.group = Some("g1".into())), T0).1, 2);
    assert_eq!(h.names(&q(|q| q.group = Some("g".into())), T0).1, 0, "a group is not a prefix");
    let skip = q(|q| q.mode = Some(ExecutionMode::Skip));
    assert_eq!(h.names(&skip, T0), (vec!["beta".into(), "delta".into()], 2));
    let paused_skip = q(|q| (q.mode, q.status) = (Some(ExecutionMode::Skip), Some(TaskStatus::Paused)));
    assert_eq!(h.names(&paused_skip, T0), (vec!["delta".into()], 1));
    // Phase 3: the latest result, from the runtime records: a set of statuses, or none yet.
    let bad = LastResultFilter { statuses: vec![ExecutionStatus::Failed, ExecutionStatus::Timeout], none: false };
    let bad = TaskQuery { last_result: Some(bad), ..Default::default() };
    assert_eq!(h.names(&bad, T0), (vec!["Alpha-backup".into(), "gamma-BACKUP".into()], 2));
    let never =
        TaskQuery { last_result: Some(LastResultFilter { statuses: vec![], none: true }), ..Default::default() };
    assert_eq!(h.names(&never, T0), (vec!["delta".into()], 1));
}

#[test]
fn task_sorts_order_the_whole_match_before_the_page_is_cut() {
    let h = five_tasks();
    let sorted = |sort: TaskSort| h.names(&TaskQuery { sort, ..Default::default() }, T0).0;
    assert_eq!(sorted(TaskSort::IdDesc), ["delta", "gamma-BACKUP", "beta", "Alpha-backup"]);
    assert_eq!(sorted(TaskSort::Name), ["Alpha-backup", "beta", "delta", "gamma-BACKUP"]);
    assert_eq!(sorted(TaskSort::NameDesc), ["gamma-BACKUP", "delta", "beta", "Alpha-backup"]);
    // T0 is 22:13:20 UTC: minute 30, 40, 50 of the hour; the paused task has no next fire.
    assert_eq!(sorted(TaskSort::NextFire), ["Alpha-backup", "gamma-BACKUP", "beta", "delta"]);
    // beta was resumed last, delta paused before it; the others were last changed at creation.
    assert_eq!(sorted(TaskSort::UpdatedDesc), ["beta", "delta", "gamma-BACKUP", "Alpha-backup"]);
    // A page of a sorted listing is cut from the sorted whole; the total counts every match.
    let q = TaskQuery { sort: TaskSort::Name, ..Default::default() };
    let page2 = h.view().query_tasks(&q, T0, 2, 3).unwrap();
    assert_eq!((page2.total, page2.items.len(), page2.items[0].spec.name.as_str()), (4, 1, "gamma-BACKUP"));
}

/// One task fired once a minute for `minutes` minutes, each slot at its time (so every record is
/// created at its slot), plus a manual run created at minute `manual_at`.
fn fired_minutes(minutes: i64, manual_at: i64) -> (Harness, u64, u64) {
    let mut h = Harness::new();
    let id = h.create_in("tick", "0 * * * * *", "nobody", ExecutionMode::Parallel, T0);
    let mut manual = 0;
    for m in 1..=minutes {
        h.fire_at(T0 + m * MIN, id, &[T0 + m * MIN]);
        if m == manual_at {
            manual = h.run_now(id, T0 + m * MIN + 1).id;
        }
    }
    (h, id, manual)
}

#[test]
fn execution_filters_by_trigger_and_slot_time() {
    let (h, task, manual) = fired_minutes(120, 100);
    let v = h.view();
    // Phase 1: by trigger; the one manual run is found by a walk from the newest record.
    let q = ExecutionQuery { trigger: Some(Trigger::Manual), ..Default::default() };
    let page = v.query_executions(&q, 1, 20).unwrap();
    assert_eq!((page.total, page.total_capped, page.items[0].id), (1, false, manual));
    let q = ExecutionQuery { trigger: Some(Trigger::Schedule), task: Some(task), ..Default::default() };
    assert_eq!(v.query_executions(&q, 1, 20).unwrap().total, 120);
    // Phase 2: `from` is inclusive, `to` exclusive, on the slot; newest first.
    let q = ExecutionQuery { from_ms: Some(T0 + 10 * MIN), to_ms: Some(T0 + 20 * MIN), ..Default::default() };
    let page = v.query_executions(&q, 1, 20).unwrap();
    let slots: Vec<i64> = page.items.iter().map(|e| (e.scheduled_ms - T0) / MIN).collect();
    assert_eq!(slots, (10..20).rev().collect::<Vec<_>>());
    assert_eq!((page.total, page.total_capped), (10, false));
    // Phase 3: with a status and a page past the first.
    let q =
        ExecutionQuery { status: Some(ExecutionStatus::Pending), from_ms: Some(T0 + 100 * MIN), ..Default::default() };
    let page = v.query_executions(&q, 2, 5).unwrap();
    assert_eq!(page.total, 22, "21 slots and the manual run, all pending");
    assert_eq!(page.items.len(), 5);
    // Phase 4: a window with nothing in it.
    let q = ExecutionQuery { from_ms: Some(T0 + 500 * MIN), ..Default::default() };
    assert_eq!(v.query_executions(&q, 1, 20).unwrap().total, 0);
}

#[test]
fn a_cursor_pages_newest_first_from_any_depth() {
    let (h, task, _) = fired_minutes(120, 100);
    let v = h.view();
    // Phase 1: the first page by offset, then the next by the last id seen: the same records
    // as offset page 2, newest first.
    let first = v.query_executions(&ExecutionQuery::default(), 1, 10).unwrap();
    let by_offset = v.query_executions(&ExecutionQuery::default(), 2, 10).unwrap();
    let q = ExecutionQuery { before_id: Some(first.items[9].id), ..Default::default() };
    let by_cursor = v.query_executions(&q, 1, 10).unwrap();
    let ids = |items: &[crate::model::Execution]| items.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(&by_cursor.items), ids(&by_offset.items));
    // Phase 2: with a task filter, through the task's index; the oldest cursor finds nothing.
    let q = ExecutionQuery { task: Some(task), before_id: Some(first.items[0].id), ..Default::default() };
    assert!(v.query_executions(&q, 1, 5).unwrap().items.iter().all(|e| e.task_id == task && e.id < first.items[0].id));
    let q = ExecutionQuery { before_id: Some(1), ..Default::default() };
    assert_eq!(v.query_executions(&q, 1, 5).unwrap().items.len(), 0);
}

/// One task fired every second for `seconds` seconds, five slots per entry (each entry at its
/// last slot, so every slot is on time), plus a manual run after the first entry.
fn fired_seconds(seconds: i64) -> (Harness, u64) {
    let mut h = Harness::new();
    let id = h.create_in("often", "* * * * * *", "nobody", ExecutionMode::Parallel, T0);
    let mut manual = 0;
    for first in (1..=seconds).step_by(5) {
        let slots: Vec<i64> = (first..(first + 5).min(seconds + 1)).map(|i| T0 + i * 1_000).collect();
        h.fire_at(*slots.last().unwrap(), id, &slots);
        if first == 1 {
            manual = h.run_now(id, T0 + 5_001).id;
        }
    }
    (h, manual)
}

#[test]
fn the_execution_walk_is_bounded_and_says_when_it_stopped_early() {
    let seconds = WALK_RECORDS_MAX as i64 + 100;
    let (h, manual) = fired_seconds(seconds);
    let v = h.view();
    // Phase 1: a rare trigger whose one match lies beyond the newest records the walk reads: it
    // reads its maximum and says the total may be short.
    let q = ExecutionQuery { trigger: Some(Trigger::Manual), ..Default::default() };
    let page = v.query_executions(&q, 1, 20).unwrap();
    assert_eq!((page.total, page.total_capped), (0, true));
    // Phase 2: `to` starts the walk below the records created after it (and the margin), so the
    // old manual run is within reach.
    let q = ExecutionQuery { trigger: Some(Trigger::Manual), to_ms: Some(T0 + 10_000), ..Default::default() };
    let page = v.query_executions(&q, 1, 20).unwrap();
    assert_eq!(page.items.iter().map(|e| e.id).collect::<Vec<_>>(), [manual]);
    assert_eq!((page.total, page.total_capped), (1, false));
    // Phase 3: a common match stops counting at the cap once the page is full.
    let q = ExecutionQuery { trigger: Some(Trigger::Schedule), ..Default::default() };
    let page = v.query_executions(&q, 1, 20).unwrap();
    assert_eq!((page.total, page.total_capped, page.items.len()), (COUNT_MAX, true, 20));
    // Phase 4: `from` ends the walk at the margin before it: an exact total.
    let q = ExecutionQuery { from_ms: Some(T0 + (seconds - 30) * 1_000), ..Default::default() };
    let page = v.query_executions(&q, 1, 20).unwrap();
    assert_eq!((page.total, page.total_capped), (31, false));
    assert!(CREATED_MARGIN_MS < (seconds - 30) * 1_000, "the walk stopped before the oldest record");
}

/// What a filtered page costs (release, `--ignored --nocapture`): 10,000 tasks with a schedule
/// each of their own (`LISTING_TASKS`), and a task with 1,000,000 records (`LISTING_RECORDS`;
/// the walk reads at most `WALK_RECORDS_MAX` of them, so its cost does not grow past that).
#[test]
#[ignore]
fn filtered_pages_cost_one_pass_over_the_tasks_and_a_bounded_walk() {
    let mut h = Harness::new();
    let n = super::fire::size_from_env("LISTING_TASKS", 10_000) as i64;
    let records = super::fire::size_from_env("LISTING_RECORDS", 1_000_000) as i64;
    // Phase 1: the tasks, each on its own second of the day (the worst case for next fires: no
    // schedule is shared), one in ten with a failed run.
    for i in 0..n {
        let cron = format!("{} {} {} * * *", i % 60, (i / 60) % 60, (i / 3600) % 24);
        let id = h.create_in(&format!("task-{i}"), &cron, &format!("g{}", i % 7), ExecutionMode::Parallel, T0);
        if i % 10 == 0 {
            let run = h.run_now(id, T0 + 1);
            h.finish(run.id, ExecutionStatus::Failed, T0 + 2);
        }
    }
    let time = |what: &str, f: &dyn Fn() -> u64| {
        let started = std::time::Instant::now();
        let total = f();
        println!("{what}: {:?} ({total} matched)", started.elapsed());
    };
    let v = h.view();
    let tasks = |q: TaskQuery| {
        let v = v.clone();
        move || v.query_tasks(&q, T0, 1, 50).unwrap().total
    };
    time(
        "tasks, name contains \"1\", by name",
        &tasks(TaskQuery { name: Some("1".into()), sort: TaskSort::Name, ..Default::default() }),
    );
    let by_next_fire = tasks(TaskQuery { sort: TaskSort::NextFire, ..Default::default() });
    time("tasks, by next fire (schedules parsed)", &by_next_fire);
    time("tasks, by next fire (parses kept)", &by_next_fire);
    let failed = LastResultFilter { statuses: vec![ExecutionStatus::Failed], none: false };
    time(
        "tasks, last result failed, group g3",
        &tasks(TaskQuery { last_result: Some(failed), group: Some("g3".into()), ..Default::default() }),
    );
    // Phase 2: one task's records, 2,000 slots per entry, one a second.
    let id = h.create_in("busy", "* * * * * *", "nobody", ExecutionMode::Parallel, T0);
    let mut fired = 0;
    while fired < records {
        let k = (records - fired).min(2_000);
        let slots: Vec<i64> = (fired..fired + k).map(|i| T0 + 1_000 * (i + 1)).collect();
        h.fire_at(*slots.last().unwrap(), id, &slots);
        fired += k;
    }
    let v = h.view();
    let execs = |q: ExecutionQuery| {
        let v = v.clone();
        move || v.query_executions(&q, 1, 50).unwrap().total
    };
    time(
        "executions, manual (none: the walk's maximum)",
        &execs(ExecutionQuery { trigger: Some(Trigger::Manual), ..Default::default() }),
    );
    let mid = T0 + 1_000 * records / 2;
    time(
        "executions, an hour in the middle",
        &execs(ExecutionQuery { from_ms: Some(mid), to_ms: Some(mid + 3_600_000), ..Default::default() }),
    );
    time(
        "executions of the task, catch-up, to the middle",
        &execs(ExecutionQuery {
            task: Some(id),
            trigger: Some(Trigger::Catchup),
            to_ms: Some(mid),
            ..Default::default()
        }),
    );
}
