//! A golden run: one fixed sequence of commands touching every concept of apply (tasks,
//! dedupe, fires with every mode and misfire policy, summarized spans, dispatch, reports,
//! failover, retries, timeouts, stops, the sequential queue, pause/delete, the registry,
//! health, retention), with the digest of the resulting state and of the answers pinned.
//!
//! The pinned values were taken from the code before issue 16 reshaped `state` into one module
//! per concept, and taken again once, in session 10, for one deliberate change of apply's
//! behaviour alone (a pause or delete records the slots it cut off, `fire::cut_off`; see
//! `docs/decisions.md`). The state's digest was taken again for issue 18, for what apply now
//! keeps for the console alone (each task's latest final execution in its runtime record, V2;
//! the cluster's rollups and minute ring; the answers did not change), and once more for issue
//! 19, for the outcome counters `/metrics` reads (`state::outcomes`; the answers did not change).
//! They hold as long as
//! `apply` writes the same bytes and answers the same
//! way. A change that alters them changes the storage format or apply's behaviour: a format
//! change needs a new stored variant, not a new pin; a behaviour change needs its own entry in
//! `docs/decisions.md` and a commit of its own.

use super::{spec, Harness};
use crate::codec;
use crate::command::{
    AttemptEnd, AttemptEndKind, AttemptReport, Command, DispatchBatch, DispatchItem, FireBatch, HealthChange,
    MissedSpan, PurgeOrder, Response, TaskFire, TaskUpsert,
};
use crate::model::{
    BalanceStrategy, Execution, ExecutionMode, ExecutionStatus, ExecutorSpec, ExecutorStatus, MisfirePolicy,
};
use crate::spec::TaskPatch;

const T0: i64 = 1_700_000_000_000;
const MIN: i64 = 60_000;

fn executor(instance: &str, weight: u32) -> ExecutorSpec {
    ExecutorSpec {
        name: "g".into(),
        instance_id: instance.into(),
        base_url: format!("http://{instance}"),
        health_check_url: format!("http://{instance}/health"),
        metadata: "{}".into(),
        capacity: 0,
        weight,
    }
}

/// Records every answer, so the answers are pinned along with the state.
struct Run {
    h: Harness,
    answers: blake3::Hasher,
}

impl Run {
    fn go(&mut self, request_id: &str, now_ms: i64, command: Command) -> Response {
        self.h.next += 1;
        let r = self.h.apply_with(request_id, now_ms, command);
        self.answers.update(&codec::encode(&r).unwrap());
        r
    }

    fn fire(&mut self, now_ms: i64, task_id: u64, task_version: u64, slots: &[i64], dispatch: bool) -> Response {
        let fire = TaskFire { task_id, task_version, slots: slots.to_vec(), missed_before: None };
        let batch = FireBatch { tasks: vec![fire] };
        let command =
            if dispatch { Command::FireAndDispatch { batch, seed: 7, term: 2 } } else { Command::Fire(batch) };
        self.go("", now_ms, command)
    }

    fn exec(&self, id: u64) -> Execution {
        self.h.view().execution(id).unwrap().unwrap()
    }

    fn report(&mut self, now_ms: i64, id: u64, status: ExecutionStatus) -> Response {
        let e = self.exec(id);
        let a = e.current_attempt().unwrap();
        let r = AttemptReport {
            execution_id: id,
            attempt: a.number,
            callback_token: a.callback_token.clone(),
            status,
            result: Some("{\"ok\":1}".into()),
            logs: Some("x".repeat(700)),
            start_ms: Some(now_ms - 50),
            end_ms: Some(now_ms),
        };
        self.go(&format!("report-{id}-{}", a.number), now_ms, Command::Report(r))
    }

    fn dispatch(&mut self, now_ms: i64, seed: u64, items: &[(u64, u32)]) -> Response {
        let items = items.iter().map(|(id, a)| DispatchItem { execution_id: *id, attempt: *a }).collect();
        self.go("", now_ms, Command::Dispatch(DispatchBatch { seed, term: 2, items }))
    }

    fn end(&mut self, now_ms: i64, id: u64, kind: AttemptEndKind) -> Response {
        let attempt = self.exec(id).attempt_count;
        let end = AttemptEnd { execution_id: id, attempt, kind, error: "gone".into() };
        self.go("", now_ms, Command::EndAttempts(vec![end]))
    }
}

fn task_spec(
    name: &str,
    mode: ExecutionMode,
    policy: MisfirePolicy,
    strategy: BalanceStrategy,
) -> crate::model::TaskSpec {
    let mut s = spec(name);
    (s.execution_mode, s.misfire_policy, s.load_balance_strategy) = (mode, policy, strategy);
    (s.executor, s.max_retry, s.catchup_window_seconds) = ("g".into(), 1, 600);
    s
}

#[test]
fn a_fixed_run_leaves_the_pinned_state_and_answers() {
    let mut run = Run { h: Harness::new(), answers: blake3::Hasher::new() };
    // The registry: three instances, one registering a task with a binding.
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let tasks = if *name == "c" {
            let create = task_spec("bound", ExecutionMode::Parallel, MisfirePolicy::Skip, BalanceStrategy::Sticky);
            vec![TaskUpsert { create, patch: TaskPatch::default(), weight: 5, priority: 1 }]
        } else {
            vec![]
        };
        run.go(&format!("reg-{name}"), T0, Command::RegisterExecutor { spec: executor(name, i as u32 + 1), tasks });
    }
    // Tasks in every mode (ids 2..=5; "bound" is 1).
    let modes = [
        ("seq", ExecutionMode::Sequential, MisfirePolicy::FireOnce, BalanceStrategy::RoundRobin),
        ("rep", ExecutionMode::Replace, MisfirePolicy::FireAll, BalanceStrategy::WeightedRoundRobin),
        ("skip", ExecutionMode::Skip, MisfirePolicy::Skip, BalanceStrategy::LeastLoaded),
        ("par", ExecutionMode::Parallel, MisfirePolicy::FireAll, BalanceStrategy::Random),
    ];
    for (name, mode, policy, strategy) in modes {
        run.go(&format!("create-{name}"), T0, Command::CreateTask { spec: task_spec(name, mode, policy, strategy) });
    }
    // A retried create gets the first answer; the same id with another command is refused.
    run.go("create-seq", T0 + 1, Command::CreateTask { spec: spec("seq") });
    run.go("create-seq", T0 + 2, Command::CreateTask { spec: spec("other") });
    // Fires: on time with dispatch, late (misfires), a summarized span, replays.
    let now = T0 + 10 * MIN;
    for id in 1..=5 {
        run.fire(now, id, 1, &[now - 3 * MIN, now - 2 * MIN, now - 1_000], true);
    }
    let span = MissedSpan { first_ms: T0 + MIN, last_ms: T0 + 5 * MIN, count: 5 };
    let fire = TaskFire { task_id: 5, task_version: 1, slots: vec![now + MIN], missed_before: Some(span) };
    run.go("", now + MIN, Command::Fire(FireBatch { tasks: vec![fire] }));
    run.fire(now + MIN, 5, 1, &[now - 1_000, now + MIN], true);
    run.fire(now + MIN, 3, 9, &[now + MIN], true); // stale version: refused
    run.fire(now + MIN, 4, 1, &[now + MIN - 500, now + MIN], false); // the second overlaps: skipped
                                                                     // The executions' lives: reports, failover, retries, timeouts, stops, the queue.
    let active = run.h.view().active_execution_ids().unwrap();
    let mut t = now + MIN + 1_000;
    for (i, id) in active.iter().copied().enumerate() {
        t += 1_000;
        let e = run.exec(id);
        if e.status == ExecutionStatus::Pending && !e.queued {
            run.dispatch(t, 11 + i as u64, &[(id, e.attempt_count + 1)]);
        }
        if run.exec(id).status != ExecutionStatus::Running {
            continue;
        }
        match i % 5 {
            0 => run.report(t, id, ExecutionStatus::Success),
            1 => run.end(t, id, AttemptEndKind::Unreachable),
            2 => run.report(t, id, ExecutionStatus::Failed),
            3 => run.end(t, id, AttemptEndKind::Timeout),
            _ => run.go(&format!("stop-{id}"), t, Command::StopExecution { id, requested_by: "op".into() }),
        };
    }
    // Retries and failovers come due; a second round picks them up.
    t += 10 * MIN;
    for id in run.h.view().active_execution_ids().unwrap() {
        let e = run.exec(id);
        if e.status == ExecutionStatus::Pending && !e.queued {
            run.dispatch(t, id, &[(id, e.attempt_count + 1)]);
            if run.exec(id).status == ExecutionStatus::Running {
                let kind = if id % 2 == 0 { AttemptEndKind::Refused } else { AttemptEndKind::Timeout };
                run.end(t + 1, id, kind);
            }
        }
    }
    // A replayed report answers from the dedupe table.
    let first = active[0];
    run.go(
        &format!("report-{first}-1"),
        t,
        Command::Report(AttemptReport {
            execution_id: first,
            attempt: 1,
            callback_token: String::new(),
            status: ExecutionStatus::Success,
            result: None,
            logs: None,
            start_ms: None,
            end_ms: None,
        }),
    );
    // Manual triggers, the registry's changes, the task table's changes.
    let trig = Command::TriggerTask { id: 2, parameters: Some("{\"p\":1}".into()), requested_by: "me".into() };
    run.go("trigger-2", t, trig);
    run.go(
        "",
        t,
        Command::SetHealth(vec![HealthChange { executor_id: 2, healthy: false, failures: 3, checked_ms: t }]),
    );
    run.go(
        "status-1",
        t,
        Command::SetExecutorStatus { id: 1, status: ExecutorStatus::Maintenance, reason: "r".into() },
    );
    let patch = TaskPatch { name: Some("seq2".into()), max_retry: Some(3), ..Default::default() };
    run.go("update-2", t, Command::UpdateTask { id: 2, patch, expected_version: Some(1) });
    run.go("pause-2", t, Command::PauseTask { id: 2 });
    run.go("pause-2b", t, Command::PauseTask { id: 2 });
    run.go("resume-2", t + 1, Command::ResumeTask { id: 2 });
    run.go("delete-5", t + 2, Command::DeleteTask { id: 5 });
    run.go("remove-3", t + 3, Command::RemoveExecutor { id: 3 });
    // The run went through every final status (else it would pin less than it claims).
    let view = run.h.view();
    let count = |s| (1..=6).map(|task| view.execution_count(task, s).unwrap()).sum::<u64>();
    let finals = [
        ExecutionStatus::Success,
        ExecutionStatus::Failed,
        ExecutionStatus::Timeout,
        ExecutionStatus::Cancelled,
        ExecutionStatus::Skipped,
        ExecutionStatus::Missed,
    ];
    assert!(finals.iter().all(|s| count(*s) > 0), "{:?}", finals.map(count));
    // The pause of task 2 and the delete of task 5 came minutes after their last fires.
    let cut_off = |task| {
        view.list_executions(Some(task), None, 1, 500)
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.reason == Some(crate::model::Reason::CutOff))
            .count()
    };
    assert_eq!((cut_off(2), cut_off(5)), (1, 1));
    // Retention, and request ids old enough to expire.
    let purge = PurgeOrder { before_ms: now, per_task_max: 2, tasks: vec![1, 2, 3, 4, 5], limit: 50 };
    run.go("", t + 4, Command::Purge(purge));
    let later = t + 2 * 24 * 60 * MIN;
    for i in 0..12 {
        run.go(&format!("late-{i}"), later + i, Command::CreateTask { spec: spec(&format!("late-{i}")) });
    }
    let state = run.h.view().digest().unwrap();
    let answers = run.answers.finalize().to_hex().to_string();
    assert_eq!(state, "e86275a65b0990181ea9b5bc948affc3c37ec573accab95a7622106593400fc6");
    assert_eq!(answers, "e7c29706ee53df971853692fa813d9dfb0f8c8560b17b7d5c9e4dd65133e2668");
}
