//! Unit tests of the outcome counters apply keeps for `/metrics` (`state::outcomes`): every
//! series counts exactly what happened, per executor group, and the group dimension is bounded
//! the same way on every replica.

use super::{spec, task, Harness};
use crate::command::{
    AttemptEnd, AttemptEndKind, AttemptReport, Command, DispatchBatch, DispatchItem, FireBatch, Response, TaskFire,
};
use crate::model::{Execution, ExecutionMode, ExecutionStatus, ExecutorSpec, MisfirePolicy};
use crate::state::{retry_backoff_ms, DispatchFailure, GroupOutcomes, GROUPS_MAX, OTHER_LABEL};

const T0: i64 = 1_700_000_000_000;
const MIN: i64 = 60_000;
/// Indexes into [`GroupOutcomes::runs`]: statuses, then triggers.
const SUCCESS: usize = 0;
const FAILED: usize = 1;
const CANCELLED: usize = 3;
const MANUAL: usize = 1;

impl Harness {
    fn run(&mut self, now_ms: i64, command: Command) -> Response {
        self.next += 1;
        self.apply_with("", now_ms, command)
    }

    fn task_in(&mut self, name: &str, group: &str, max_retry: u32) -> u64 {
        let mut s = spec(name);
        (s.executor, s.max_retry) = (group.into(), max_retry);
        task(self.run(T0, Command::CreateTask { spec: s })).id
    }

    fn manual(&mut self, task: u64) -> u64 {
        match self.run(T0, Command::TriggerTask { id: task, parameters: None, requested_by: String::new() }) {
            Response::Execution(e) => e.id,
            other => panic!("{other:?}"),
        }
    }

    fn send(&mut self, now_ms: i64, id: u64, attempt: u32) -> Execution {
        let items = vec![DispatchItem { execution_id: id, attempt }];
        match self.run(now_ms, Command::Dispatch(DispatchBatch { seed: 1, term: 1, items })) {
            Response::Dispatched(mut v) => v.remove(0),
            other => panic!("{other:?}"),
        }
    }

    fn report_end(&mut self, e: &Execution, status: ExecutionStatus) {
        let a = e.current_attempt().unwrap();
        let r = AttemptReport {
            execution_id: e.id,
            attempt: a.number,
            callback_token: a.callback_token.clone(),
            status,
            result: None,
            logs: None,
            start_ms: None,
            end_ms: None,
        };
        self.run(T0 + 10, Command::Report(r));
    }

    fn totals(&self, group: &str) -> GroupOutcomes {
        let all = self.view().outcome_totals().unwrap();
        all.into_iter().find(|(g, _)| g == group).map(|(_, o)| o).unwrap_or_default()
    }
}

fn register(h: &mut Harness, group: &str, instance: &str) {
    let spec = ExecutorSpec {
        name: group.into(),
        instance_id: instance.into(),
        base_url: format!("http://{instance}"),
        health_check_url: format!("http://{instance}/health"),
        metadata: "{}".into(),
        capacity: 0,
        weight: 1,
    };
    assert!(matches!(h.run(T0, Command::RegisterExecutor { spec, tasks: vec![] }), Response::Registered { .. }));
}

#[test]
fn each_outcome_counts_once_in_its_groups_series() {
    let mut h = Harness::new();
    register(&mut h, "g", "a");
    let once = h.task_in("once", "g", 0);
    let twice = h.task_in("twice", "g", 1);
    let nobody = h.task_in("nobody", "empty", 0);

    // Phase 1: a success and a failure without retries, both manual.
    let e = {
        let x = h.manual(once);
        h.send(T0, x, 1)
    };
    h.report_end(&e, ExecutionStatus::Success);
    let e = {
        let x = h.manual(once);
        h.send(T0, x, 1)
    };
    h.report_end(&e, ExecutionStatus::Failed);

    // Phase 2: a failure that is retried once, then fails for good: one retry, one failed run.
    let id = h.manual(twice);
    let e = h.send(T0, id, 1);
    h.report_end(&e, ExecutionStatus::Failed);
    let e = h.send(T0 + 10 + retry_backoff_ms(1), id, 2);
    h.report_end(&e, ExecutionStatus::Failed);

    // Phase 3: the leader's own failures: unreachable (a failover, no retry spent), then
    // refused (no retry left: failed), then a stop ends one run cancelled.
    let id = h.manual(once);
    h.send(T0, id, 1);
    let end = |attempt, kind| AttemptEnd { execution_id: id, attempt, kind, error: "x".into() };
    h.run(T0 + 1, Command::EndAttempts(vec![end(1, AttemptEndKind::Unreachable)]));
    // The failover made `a` unhealthy: bring it back so attempt 2 reaches it.
    let back = crate::command::HealthChange { executor_id: 1, healthy: true, failures: 0, checked_ms: T0 };
    h.run(T0 + 1, Command::SetHealth(vec![back]));
    h.send(T0 + 2, id, 2);
    h.run(T0 + 3, Command::EndAttempts(vec![end(2, AttemptEndKind::Refused)]));
    let stopped = {
        let x = h.manual(once);
        h.send(T0, x, 1)
    };
    h.run(T0 + 4, Command::StopExecution { id: stopped.id, requested_by: String::new() });

    // Phase 4: a group with no instance: the attempt fails to dispatch, the run fails.
    {
        let x = h.manual(nobody);
        h.send(T0, x, 1)
    };

    let g = h.totals("g");
    assert_eq!(g.runs[SUCCESS][MANUAL], 1, "{g:?}");
    assert_eq!(g.runs[FAILED][MANUAL], 3, "{g:?}");
    assert_eq!(g.runs[CANCELLED][MANUAL], 1, "{g:?}");
    assert_eq!(g.runs.iter().flatten().sum::<u64>(), 5, "{g:?}");
    assert_eq!(g.retries, 1);
    let at = |f: DispatchFailure| DispatchFailure::ALL.iter().position(|x| *x == f).unwrap();
    assert_eq!(g.dispatch_failures[at(DispatchFailure::Unreachable)], 1);
    assert_eq!(g.dispatch_failures[at(DispatchFailure::Refused)], 1);
    assert_eq!(g.dispatch_failures[at(DispatchFailure::NoHealthyExecutor)], 0);
    let empty = h.totals("empty");
    assert_eq!(empty.dispatch_failures[at(DispatchFailure::NoHealthyExecutor)], 1);
    assert_eq!((empty.runs[FAILED][MANUAL], empty.retries), (1, 0));
}

#[test]
fn skipped_and_missed_slots_count_by_reason_and_slot() {
    let mut h = Harness::new();
    let mut s = spec("skip");
    (s.executor, s.execution_mode, s.misfire_policy) = ("g".into(), ExecutionMode::Skip, MisfirePolicy::Skip);
    let t = task(h.run(T0, Command::CreateTask { spec: s }));
    let fire = |slots: Vec<i64>| {
        Command::Fire(FireBatch {
            tasks: vec![TaskFire { task_id: t.id, task_version: t.version, slots, missed_before: None }],
        })
    };
    // Slot 1 runs (stays pending: nobody dispatches it); slot 2 comes while it is active: skipped.
    h.run(T0 + MIN, fire(vec![T0 + MIN]));
    h.run(T0 + 2 * MIN, fire(vec![T0 + 2 * MIN]));
    // Slots 3 and 4 are fired 10 minutes late: the `skip` misfire policy records both missed.
    h.run(T0 + 14 * MIN, fire(vec![T0 + 3 * MIN, T0 + 4 * MIN]));
    let g = h.totals("g");
    assert_eq!((g.skipped, g.missed), ([1, 0], [2, 0]), "{g:?}");
    assert_eq!(g.runs.iter().flatten().sum::<u64>(), 0, "the pending run has not ended: {g:?}");
}

#[test]
fn the_first_64_groups_get_a_label_and_the_rest_share_other() {
    let mut h = Harness::new();
    // 70 groups in creation order, plus one literally named `other`: none has an instance, so
    // each manual run fails to dispatch and fails.
    let mut groups: Vec<String> = (0..70).map(|i| format!("g{i:02}")).collect();
    groups.insert(10, OTHER_LABEL.to_string());
    for (i, g) in groups.iter().enumerate() {
        let t = h.task_in(&format!("t{i}"), g, 0);
        {
            let x = h.manual(t);
            h.send(T0, x, 1)
        };
    }
    let all = h.view().outcome_totals().unwrap();
    assert_eq!(all.len() as u64, GROUPS_MAX + 1, "64 groups and `other`");
    let labels: Vec<&str> = all.iter().map(|(g, _)| g.as_str()).collect();
    let want: Vec<String> = (0..64).map(|i| format!("g{i:02}")).chain([OTHER_LABEL.to_string()]).collect();
    assert_eq!(labels, want);
    let (_, other) = all.last().unwrap();
    // g64..g69 and the group named `other`.
    assert_eq!((other.runs[FAILED][MANUAL], other.dispatch_failures[0]), (7, 7));

    // Another replica applying the same log gives the same labels and the same digest.
    let mut h2 = Harness::new();
    for (i, g) in groups.iter().enumerate() {
        let t = h2.task_in(&format!("t{i}"), g, 0);
        {
            let x = h2.manual(t);
            h2.send(T0, x, 1)
        };
    }
    assert_eq!(h2.view().outcome_totals().unwrap(), all);
    assert_eq!(h2.view().digest().unwrap(), h.view().digest().unwrap());
}
