//! Unit tests of apply's dispatch decisions: the five balance strategies, health and status
//! filtering, bindings, reports and their refusals, retries with backoff, failover on an
//! unreachable instance, timeouts, stops, the executor load, rollups and retention.

use std::collections::HashMap;

use super::{spec, task, Harness};
use crate::command::{
    AttemptEnd, AttemptEndKind, AttemptReport, Command, DispatchBatch, DispatchItem, HealthChange, PurgeOrder,
    Rejection, Response, TaskUpsert,
};
use crate::model::{BalanceStrategy, Execution, ExecutionStatus, ExecutorSpec, ExecutorStatus, Reason};
use crate::spec::TaskPatch;
use crate::state::retry_backoff_ms;

const T0: i64 = 1_700_000_000_000;

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

impl Harness {
    fn at(&mut self, now_ms: i64, command: Command) -> Response {
        self.next += 1;
        self.apply_with("", now_ms, command)
    }

    fn register(&mut self, instance: &str, weight: u32) -> u64 {
        match self.at(T0, Command::RegisterExecutor { spec: executor(instance, weight), tasks: vec![] }) {
            Response::Registered { executor, .. } => executor.id,
            other => panic!("{other:?}"),
        }
    }

    fn group_task(&mut self, name: &str, strategy: BalanceStrategy, max_retry: u32) -> u64 {
        let mut s = spec(name);
        (s.executor, s.load_balance_strategy, s.max_retry) = ("g".into(), strategy, max_retry);
        task(self.at(T0, Command::CreateTask { spec: s })).id
    }

    fn trigger(&mut self, task: u64) -> u64 {
        let cmd = Command::TriggerTask { id: task, parameters: None, requested_by: String::new() };
        match self.at(T0, cmd) {
            Response::Execution(e) => e.id,
            other => panic!("{other:?}"),
        }
    }

    fn dispatch(&mut self, now_ms: i64, seed: u64, items: &[(u64, u32)]) -> Vec<Execution> {
        let items = items.iter().map(|(id, a)| DispatchItem { execution_id: *id, attempt: *a }).collect();
        match self.at(now_ms, Command::Dispatch(DispatchBatch { seed, term: 3, items })) {
            Response::Dispatched(v) => v,
            other => panic!("{other:?}"),
        }
    }

    fn report(&mut self, e: &Execution, status: ExecutionStatus) -> Response {
        let a = e.current_attempt().unwrap();
        let r = AttemptReport {
            execution_id: e.id,
            attempt: a.number,
            callback_token: a.callback_token.clone(),
            status,
            result: Some("{}".into()),
            logs: Some("out".into()),
            start_ms: None,
            end_ms: None,
        };
        self.at(T0 + 10, Command::Report(r))
    }

    fn exec(&self, id: u64) -> Execution {
        self.view().execution(id).unwrap().unwrap()
    }

    /// Dispatches `n` manual runs of `task` one at a time, finishing each, and counts where they went.
    fn distribution(&mut self, task: u64, n: usize) -> HashMap<u64, usize> {
        let mut seen = HashMap::new();
        for i in 0..n {
            let id = self.trigger(task);
            let e = self.dispatch(T0, i as u64 * 7919, &[(id, 1)]).remove(0);
            *seen.entry(e.current_attempt().unwrap().executor_id).or_default() += 1;
            self.report(&e, ExecutionStatus::Success);
        }
        seen
    }
}

#[test]
fn round_robin_is_even_and_weighted_round_robin_is_proportional() {
    let mut h = Harness::new();
    let (a, b, c) = (h.register("a", 1), h.register("b", 2), h.register("c", 3));
    let rr = h.group_task("rr", BalanceStrategy::RoundRobin, 0);
    let seen = h.distribution(rr, 300);
    assert_eq!((seen[&a], seen[&b], seen[&c]), (100, 100, 100));
    let wrr = h.group_task("wrr", BalanceStrategy::WeightedRoundRobin, 0);
    let seen = h.distribution(wrr, 300);
    assert_eq!((seen[&a], seen[&b], seen[&c]), (50, 100, 150));
}

#[test]
fn random_spreads_and_is_decided_by_the_seed() {
    let mut h = Harness::new();
    let ids = [h.register("a", 1), h.register("b", 1), h.register("c", 1)];
    let t = h.group_task("rand", BalanceStrategy::Random, 0);
    let seen = h.distribution(t, 300);
    for id in ids {
        assert!((60..=140).contains(&seen[&id]), "uneven random spread: {seen:?}");
    }
    // Same seed, same state → same choice (replicas agree).
    let mut h2 = Harness::new();
    for x in ["a", "b", "c"] {
        h2.register(x, 1);
    }
    let t2 = h2.group_task("rand", BalanceStrategy::Random, 0);
    assert_eq!(h2.distribution(t2, 300), seen);
}

#[test]
fn sticky_keeps_one_instance_until_it_is_unhealthy() {
    let mut h = Harness::new();
    let (a, b) = (h.register("a", 1), h.register("b", 1));
    let t = h.group_task("st", BalanceStrategy::Sticky, 0);
    let seen = h.distribution(t, 20);
    assert_eq!(seen.len(), 1, "sticky moved: {seen:?}");
    let first = *seen.keys().next().unwrap();
    let change = HealthChange { executor_id: first, healthy: false, failures: 3, checked_ms: T0 };
    h.at(T0, Command::SetHealth(vec![change]));
    let seen = h.distribution(t, 20);
    let other = if first == a { b } else { a };
    assert_eq!(seen.get(&other), Some(&20), "{seen:?}");
}

#[test]
fn least_loaded_picks_the_instance_with_fewest_running_attempts() {
    let mut h = Harness::new();
    let (a, b) = (h.register("a", 1), h.register("b", 1));
    let t = h.group_task("ll", BalanceStrategy::LeastLoaded, 0);
    // Phase 1: two runs left running spread over both instances.
    let (x, y) = (h.trigger(t), h.trigger(t));
    let got = h.dispatch(T0, 1, &[(x, 1), (y, 1)]);
    let on: Vec<u64> = got.iter().map(|e| e.current_attempt().unwrap().executor_id).collect();
    assert_ne!(on[0], on[1]);
    // Phase 2: finish the one on `a`; the next run must go to `a` (load 0 vs 1).
    let on_a = got.iter().find(|e| e.current_attempt().unwrap().executor_id == a).unwrap().clone();
    h.report(&on_a, ExecutionStatus::Success);
    assert_eq!(h.view().executor_load(a).unwrap(), 0);
    assert_eq!(h.view().executor_load(b).unwrap(), 1);
    let z = h.trigger(t);
    let e = h.dispatch(T0, 2, &[(z, 1)]).remove(0);
    assert_eq!(e.current_attempt().unwrap().executor_id, a);
}

#[test]
fn only_online_healthy_instances_and_bound_ones_by_priority_are_chosen() {
    let mut h = Harness::new();
    let (a, b) = (h.register("a", 1), h.register("b", 1));
    let t = h.group_task("f", BalanceStrategy::RoundRobin, 0);
    h.at(T0, Command::SetExecutorStatus { id: a, status: ExecutorStatus::Maintenance, reason: "patching".into() });
    assert_eq!(h.distribution(t, 6).get(&b), Some(&6));
    // Bindings: register `c` with the task bound at a higher priority than a fresh binding of `b`.
    let mut up = |instance: &str, priority| {
        let patch = TaskPatch { executor: Some("g".into()), ..Default::default() };
        let mut create = spec("f");
        create.executor = "g".into();
        let tasks = vec![TaskUpsert { create, patch, weight: 0, priority }];
        match h.at(T0, Command::RegisterExecutor { spec: executor(instance, 1), tasks }) {
            Response::Registered { executor, task_ids } => {
                assert_eq!(task_ids, vec![t]);
                executor.id
            }
            other => panic!("{other:?}"),
        }
    };
    let b2 = up("b", 1);
    let c = up("c", 5);
    assert_eq!(b2, b, "re-registration keeps the id");
    assert_eq!(h.distribution(t, 4).get(&c), Some(&4));
    // `c` unhealthy → the next priority tier (`b`) takes over.
    h.at(T0, Command::SetHealth(vec![HealthChange { executor_id: c, healthy: false, failures: 3, checked_ms: T0 }]));
    assert_eq!(h.distribution(t, 4).get(&b), Some(&4));
}

#[test]
fn no_healthy_executor_is_recorded_and_retried_with_backoff_then_fails() {
    let mut h = Harness::new();
    let t = h.group_task("none", BalanceStrategy::RoundRobin, 2);
    let id = h.trigger(t);
    // Attempt 1: nobody → pending again with reason and a 1 s backoff.
    let e = h.dispatch(T0, 1, &[(id, 1)]).remove(0);
    assert_eq!((e.status, e.reason, e.retry_count), (ExecutionStatus::Pending, Some(Reason::NoHealthyExecutor), 1));
    assert_eq!(e.not_before_ms, T0 + retry_backoff_ms(1));
    // Too early: nothing happens; a stale attempt number: nothing happens.
    assert!(h.dispatch(T0 + 10, 1, &[(id, 2)]).is_empty());
    assert!(h.dispatch(T0 + 5_000, 1, &[(id, 1)]).is_empty());
    let e = h.dispatch(T0 + 1_000, 1, &[(id, 2)]).remove(0);
    assert_eq!((e.retry_count, e.not_before_ms), (2, T0 + 1_000 + retry_backoff_ms(2)));
    assert_eq!(retry_backoff_ms(2), 2 * retry_backoff_ms(1));
    let e = h.dispatch(T0 + 10_000, 1, &[(id, 3)]).remove(0);
    assert_eq!((e.status, e.attempt_count, e.attempts.len()), (ExecutionStatus::Failed, 3, 3));
    assert!(e.attempts[0].error.contains("no online and healthy executor"));
}

#[test]
fn reports_are_checked_and_a_failed_run_is_retried_as_a_new_attempt() {
    let mut h = Harness::new();
    h.register("a", 1);
    let t = h.group_task("rep", BalanceStrategy::RoundRobin, 1);
    let id = h.trigger(t);
    let e = h.dispatch(T0, 1, &[(id, 1)]).remove(0);
    assert_eq!(e.status, ExecutionStatus::Running);
    // A wrong token, a stale attempt, and a non-final bogus status are refused and change nothing.
    let mut bad = AttemptReport {
        execution_id: id,
        attempt: 1,
        callback_token: "nope".into(),
        status: ExecutionStatus::Success,
        result: None,
        logs: None,
        start_ms: None,
        end_ms: None,
    };
    assert!(matches!(h.at(T0, Command::Report(bad.clone())), Response::Rejected(Rejection::BadCallbackToken { .. })));
    (bad.callback_token, bad.attempt) = (e.attempts[0].callback_token.clone(), 2);
    assert!(matches!(h.at(T0, Command::Report(bad.clone())), Response::Rejected(Rejection::StaleAttempt { .. })));
    assert_eq!(h.exec(id).status, ExecutionStatus::Running);
    // Failed → retry (pending, backoff); the second attempt succeeds.
    let r = h.report(&e, ExecutionStatus::Failed);
    assert!(matches!(&r, Response::Execution(x) if x.status == ExecutionStatus::Pending && x.retry_count == 1));
    let e = h.dispatch(T0 + 60_000, 2, &[(id, 2)]).remove(0);
    assert_eq!(e.attempt_count, 2);
    h.report(&e, ExecutionStatus::Success);
    let done = h.exec(id);
    assert_eq!(
        (done.status, done.attempts[0].status, done.attempts[1].status),
        (ExecutionStatus::Success, ExecutionStatus::Failed, ExecutionStatus::Success)
    );
    // A report about a finished execution is refused.
    assert!(matches!(h.report(&e, ExecutionStatus::Success), Response::Rejected(Rejection::ExecutionFinished { .. })));
    let unknown = AttemptReport { execution_id: 999, ..bad };
    assert!(matches!(h.at(T0, Command::Report(unknown)), Response::Rejected(Rejection::ExecutionNotFound { id: 999 })));
}

#[test]
fn unreachable_instance_is_ejected_and_the_run_fails_over_without_spending_a_retry() {
    let mut h = Harness::new();
    let (a, b) = (h.register("a", 1), h.register("b", 1));
    let t = h.group_task("fo", BalanceStrategy::RoundRobin, 0);
    let id = h.trigger(t);
    let e = h.dispatch(T0, 1, &[(id, 1)]).remove(0);
    let first = e.current_attempt().unwrap().executor_id;
    let end = AttemptEnd { execution_id: id, attempt: 1, kind: AttemptEndKind::Unreachable, error: "refused".into() };
    h.at(T0 + 5, Command::EndAttempts(vec![end]));
    assert!(!h.view().executor(first).unwrap().unwrap().is_healthy);
    let e = h.exec(id);
    assert_eq!((e.status, e.retry_count, e.not_before_ms), (ExecutionStatus::Pending, 0, T0 + 5));
    let e = h.dispatch(T0 + 6, 2, &[(id, 2)]).remove(0);
    let second = e.current_attempt().unwrap().executor_id;
    assert_eq!(second, if first == a { b } else { a });
}

#[test]
fn timeout_and_stop_end_the_run_and_release_the_instance() {
    let mut h = Harness::new();
    let a = h.register("a", 1);
    let t = h.group_task("to", BalanceStrategy::RoundRobin, 0);
    let (x, y) = (h.trigger(t), h.trigger(t));
    h.dispatch(T0, 1, &[(x, 1), (y, 1)]);
    assert_eq!(h.view().executor_load(a).unwrap(), 2);
    let end = AttemptEnd { execution_id: x, attempt: 1, kind: AttemptEndKind::Timeout, error: "late".into() };
    h.at(T0 + 1, Command::EndAttempts(vec![end.clone()]));
    assert_eq!(h.exec(x).status, ExecutionStatus::Timeout);
    // The same end again changes nothing.
    assert_eq!(h.at(T0 + 2, Command::EndAttempts(vec![end])), Response::Count(0));
    let stopped = h.at(T0 + 3, Command::StopExecution { id: y, requested_by: "ops".into() });
    assert!(
        matches!(&stopped, Response::Execution(e) if e.status == ExecutionStatus::Cancelled && e.reason == Some(Reason::Stopped))
    );
    let again = h.at(T0 + 4, Command::StopExecution { id: y, requested_by: "ops".into() });
    assert!(matches!(again, Response::Rejected(Rejection::ExecutionFinished { .. })));
    assert_eq!(h.view().executor_load(a).unwrap(), 0);
    // Rollups saw one timeout and one cancel.
    let stats = h.view().task_stats(t, T0 + 10).unwrap();
    assert_eq!((stats.last_24h.timeout, stats.last_24h.cancelled), (1, 1));
}

#[test]
fn purge_drops_old_final_records_and_keeps_active_ones_and_rollups() {
    let mut h = Harness::new();
    h.register("a", 1);
    let t = h.group_task("p", BalanceStrategy::RoundRobin, 0);
    let ids: Vec<u64> = (0..5).map(|_| h.trigger(t)).collect();
    for id in &ids[..4] {
        h.at(T0, Command::StopExecution { id: *id, requested_by: String::new() });
    }
    let order = PurgeOrder { before_ms: T0 + 1, per_task_max: 1_000, tasks: vec![], limit: 3 };
    assert_eq!(h.at(T0 + 10, Command::Purge(order.clone())), Response::Count(3));
    assert_eq!(h.at(T0 + 10, Command::Purge(order)), Response::Count(1));
    let left = h.view().list_executions(Some(t), None, 1, 10).unwrap();
    assert_eq!((left.total, left.items[0].id), (1, ids[4]), "only the active run is left");
    let by_count = PurgeOrder { before_ms: 0, per_task_max: 0, tasks: vec![t], limit: 100 };
    assert_eq!(h.at(T0 + 10, Command::Purge(by_count)), Response::Count(0), "active runs are never purged");
    assert_eq!(h.view().task_stats(t, T0 + 10).unwrap().last_24h.cancelled, 4, "rollups stay");
}

#[test]
fn a_full_instance_makes_runs_wait_without_spending_retries() {
    let mut h = Harness::new();
    let mut s = executor("a", 1);
    s.capacity = 1;
    h.at(T0, Command::RegisterExecutor { spec: s, tasks: vec![] });
    let t = h.group_task("cap", BalanceStrategy::RoundRobin, 0);
    let (x, y) = (h.trigger(t), h.trigger(t));
    let got = h.dispatch(T0, 1, &[(x, 1), (y, 1)]);
    assert_eq!(got.len(), 1, "only one fits");
    let waiting = h.exec(y);
    assert_eq!((waiting.status, waiting.attempt_count, waiting.retry_count), (ExecutionStatus::Pending, 0, 0));
    h.report(&got[0], ExecutionStatus::Success);
    assert_eq!(h.dispatch(T0, 2, &[(y, 1)]).len(), 1, "it runs once the instance is free");
}

#[test]
fn a_fire_and_dispatch_entry_starts_new_runs_in_the_same_entry() {
    use crate::command::{FireBatch, TaskFire};
    let mut h = Harness::new();
    let a = h.register("a", 1);
    let mut s = spec("every");
    (s.executor, s.cron_expression) = ("g".into(), "* * * * * *".into());
    let t = task(h.at(T0, Command::CreateTask { spec: s }));
    let slots = vec![T0 + 1_000, T0 + 2_000];
    let batch =
        FireBatch { tasks: vec![TaskFire { task_id: t.id, task_version: t.version, slots, missed_before: None }] };
    h.at(T0 + 2_000, Command::FireAndDispatch { batch, seed: 9, term: 4 });
    let runs = h.view().list_executions(Some(t.id), None, 1, 10).unwrap().items;
    assert_eq!(runs.len(), 2);
    for e in runs {
        let attempt = e.current_attempt().unwrap();
        assert_eq!((e.status, attempt.number, attempt.executor_id, attempt.term), (ExecutionStatus::Running, 1, a, 4));
        assert_eq!(attempt.log_index, e.log_index, "the fire entry itself is the fencing point");
    }
    assert_eq!(h.view().executor_load(a).unwrap(), 2);
}

#[test]
fn a_remembered_callback_answer_keeps_only_the_tail_of_big_logs() {
    let mut h = Harness::new();
    h.register("a", 1);
    let t = h.group_task("big", BalanceStrategy::RoundRobin, 0);
    let id = h.trigger(t);
    let e = h.dispatch(T0, 1, &[(id, 1)]).remove(0);
    let a = e.current_attempt().unwrap();
    let report = AttemptReport {
        execution_id: id,
        attempt: 1,
        callback_token: a.callback_token.clone(),
        status: ExecutionStatus::Success,
        result: None,
        logs: Some("x".repeat(60_000) + "the end"),
        start_ms: None,
        end_ms: None,
    };
    // Phase 1: the record keeps the whole (bounded) logs.
    let first = h.apply_with("cb-1", T0 + 5, Command::Report(report.clone()));
    assert!(matches!(&first, Response::Execution(x) if x.logs.len() == 60_007));
    assert_eq!(h.exec(id).logs.len(), 60_007);
    // Phase 2: a retry with the same key replays a bounded answer, still ending with the tail.
    let again = h.apply_with("cb-1", T0 + 6, Command::Report(report));
    let Response::Execution(x) = again else { panic!("{again:?}") };
    assert!(x.logs.len() <= crate::state::DEDUPE_TEXT_BYTES_MAX && x.logs.ends_with("the end"));
    assert_eq!(x.status, ExecutionStatus::Success);
}
