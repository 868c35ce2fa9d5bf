//! Unit tests of notifications in apply: rule matching (task, prefix, group, the default as a
//! fallback), repeat suppression (one "failing" until "recovered"), missed slots, executor
//! health, leader events, the bounded outbox and its `dropped` counter, delivery reports, the
//! refusals of bad channels and rules, and determinism (same entries, same digest).

use super::{spec, task, Harness};
use crate::command::{
    AttemptReport, Command, DispatchBatch, DispatchItem, FireBatch, HealthChange, Rejection, Response, TaskFire,
};
use crate::model::{Execution, ExecutionStatus, ExecutorSpec, MisfirePolicy};
use crate::notify::{
    ChannelKind, ChannelPatch, ChannelSpec, DeliveryReport, EventKind, LeaderEvent, NotifyInputError, OutboxEntry,
    RuleSpec, Selector, OUTBOX_MAX,
};

const T0: i64 = 1_700_000_000_000;

fn at(h: &mut Harness, now_ms: i64, command: Command) -> Response {
    h.next += 1;
    h.apply_with("", now_ms, command)
}

fn channel(name: &str) -> ChannelSpec {
    ChannelSpec {
        name: name.into(),
        kind: ChannelKind::Webhook,
        url: format!("http://127.0.0.1:9/{name}"),
        secret: None,
        template: None,
    }
}

fn rule(selector: Selector, events: &[EventKind], channels: &[&str]) -> RuleSpec {
    RuleSpec { selector, events: events.to_vec(), channels: channels.iter().map(|c| c.to_string()).collect() }
}

fn create_rule(h: &mut Harness, spec: RuleSpec) -> u64 {
    match at(h, T0, Command::CreateRule { spec }) {
        Response::Rule(r) => r.id,
        other => panic!("{other:?}"),
    }
}

fn outbox(h: &Harness) -> Vec<OutboxEntry> {
    h.view().outbox(0, 100_000).unwrap()
}

fn kinds(h: &Harness) -> Vec<(EventKind, String)> {
    outbox(h).into_iter().map(|e| (e.event.kind, e.channel)).collect()
}

/// A task in group `g` with `max_retry` 0 and one executor `x1` in that group.
fn task_with_executor(h: &mut Harness, name: &str) -> u64 {
    let x = ExecutorSpec {
        name: "g".into(),
        instance_id: "x1".into(),
        base_url: "http://x1".into(),
        health_check_url: "http://x1/health".into(),
        metadata: "{}".into(),
        capacity: 0,
        weight: 1,
    };
    assert!(matches!(at(h, T0, Command::RegisterExecutor { spec: x, tasks: vec![] }), Response::Registered { .. }));
    let mut s = spec(name);
    (s.executor, s.max_retry) = ("g".into(), 0);
    task(at(h, T0, Command::CreateTask { spec: s })).id
}

/// Triggers a run of `task`, dispatches it and reports `status`: one whole run.
fn run(h: &mut Harness, task: u64, status: ExecutionStatus) -> Execution {
    let cmd = Command::TriggerTask { id: task, parameters: None, requested_by: String::new() };
    let Response::Execution(e) = at(h, T0, cmd) else { panic!("no trigger") };
    let round = DispatchBatch { seed: 1, term: 1, items: vec![DispatchItem { execution_id: e.id, attempt: 1 }] };
    let Response::Dispatched(mut v) = at(h, T0, Command::Dispatch(round)) else { panic!("no dispatch") };
    let e = v.remove(0);
    let a = e.current_attempt().unwrap();
    let report = AttemptReport {
        execution_id: e.id,
        attempt: a.number,
        callback_token: a.callback_token.clone(),
        status,
        result: None,
        logs: None,
        start_ms: None,
        end_ms: None,
    };
    at(h, T0 + 1, Command::Report(report));
    h.view().execution(e.id).unwrap().unwrap()
}

#[test]
fn a_failing_task_alerts_once_until_it_recovers_and_nothing_without_rules() {
    // Phase 1: no rule: runs fail and succeed, and no event, no alert state, no outbox entry.
    let mut h = Harness::new();
    let t = task_with_executor(&mut h, "nightly");
    assert_eq!(run(&mut h, t, ExecutionStatus::Failed).status, ExecutionStatus::Failed);
    run(&mut h, t, ExecutionStatus::Success);
    assert!(outbox(&h).is_empty());
    assert_eq!(h.view().outbox_stats().unwrap().events, 0);

    // Phase 2: a rule for the task: two failures give one `run_failed`, a success one
    // `recovered`, a success after that nothing, and a new failure a new alert.
    at(&mut h, T0, Command::CreateChannel { spec: channel("ops") });
    create_rule(&mut h, rule(Selector::Task(t), &[], &["ops"]));
    run(&mut h, t, ExecutionStatus::Failed);
    run(&mut h, t, ExecutionStatus::Failed);
    run(&mut h, t, ExecutionStatus::Success);
    run(&mut h, t, ExecutionStatus::Success);
    run(&mut h, t, ExecutionStatus::Timeout);
    let want = [EventKind::RunFailed, EventKind::Recovered, EventKind::RunTimeout];
    assert_eq!(kinds(&h), want.map(|k| (k, "ops".to_string())).to_vec());
    let entries = outbox(&h);
    assert_eq!(entries.iter().map(|e| e.event.id).collect::<Vec<_>>(), vec![1, 2, 3], "event ids are dense");
    assert_eq!((entries[0].event.task_name.as_str(), entries[0].event.reason.as_str()), ("nightly", "executor_failed"));
}

#[test]
fn specific_rules_win_over_the_default_which_catches_the_rest() {
    let mut h = Harness::new();
    for c in ["a", "b", "d"] {
        at(&mut h, T0, Command::CreateChannel { spec: channel(c) });
    }
    let t = task_with_executor(&mut h, "backup-db");
    create_rule(&mut h, rule(Selector::Default, &[], &["d"]));
    create_rule(&mut h, rule(Selector::TaskPrefix("backup-".into()), &[EventKind::RunFailed], &["a"]));
    create_rule(&mut h, rule(Selector::Group("g".into()), &[EventKind::RunFailed], &["b", "a"]));
    create_rule(&mut h, rule(Selector::TaskPrefix("nomatch".into()), &[], &["b"]));
    // A failure matches the prefix and group rules (each channel once, in name order); the
    // recovery matches no specific rule, so the default takes it.
    run(&mut h, t, ExecutionStatus::Failed);
    run(&mut h, t, ExecutionStatus::Success);
    let want = vec![
        (EventKind::RunFailed, "a".to_string()),
        (EventKind::RunFailed, "b".to_string()),
        (EventKind::Recovered, "d".to_string()),
    ];
    assert_eq!(kinds(&h), want);
    let e = outbox(&h);
    assert_eq!(e[0].event.id, e[1].event.id, "one event, two channels: one id");
}

#[test]
fn a_missed_slot_alerts_once_per_repeat_window() {
    let mut h = Harness::new();
    at(&mut h, T0, Command::CreateChannel { spec: channel("ops") });
    create_rule(&mut h, rule(Selector::Default, &[EventKind::SlotMissed], &["ops"]));
    let mut s = spec("late");
    s.misfire_policy = MisfirePolicy::Skip;
    let t = task(h.apply_with("c", T0, Command::CreateTask { spec: s })).id;
    let fire = |slots: Vec<i64>| {
        Command::Fire(FireBatch { tasks: vec![TaskFire { task_id: t, task_version: 1, slots, missed_before: None }] })
    };
    // Two slots 60 s late in one entry, then another a few seconds later: one alert in all.
    at(&mut h, T0 + 70_000, fire(vec![T0 + 10_000, T0 + 11_000]));
    at(&mut h, T0 + 80_000, fire(vec![T0 + 12_000]));
    assert_eq!(kinds(&h), vec![(EventKind::SlotMissed, "ops".to_string())]);
    assert_eq!(outbox(&h)[0].event.reason, "misfire");
}

#[test]
fn executor_health_and_leader_events_alert_on_transitions_only() {
    let mut h = Harness::new();
    at(&mut h, T0, Command::CreateChannel { spec: channel("ops") });
    create_rule(&mut h, rule(Selector::Default, &[], &["ops"]));
    let t = task_with_executor(&mut h, "t");
    let health =
        |healthy| Command::SetHealth(vec![HealthChange { executor_id: 1, healthy, failures: 3, checked_ms: T0 }]);
    at(&mut h, T0, health(false));
    at(&mut h, T0, health(false)); // not a transition: no event
                                   // No healthy executor: the run alerts once for the group, twice running does not repeat.
    run_without_executor(&mut h, t);
    run_without_executor(&mut h, t);
    at(&mut h, T0, health(true));
    let node = |kind| Command::RaiseEvents(vec![LeaderEvent { kind, node_id: 2, reason: "behind".into() }]);
    at(&mut h, T0, node(EventKind::NodeReachable)); // never unreachable: nothing
    at(&mut h, T0, node(EventKind::NodeUnreachable));
    at(&mut h, T0, node(EventKind::NodeUnreachable));
    at(&mut h, T0, node(EventKind::NodeReachable));
    at(&mut h, T0, node(EventKind::RunFailed)); // not a leader event: ignored
    let got: Vec<EventKind> = kinds(&h).into_iter().map(|(k, _)| k).collect();
    use EventKind::*;
    assert_eq!(
        got,
        vec![ExecutorUnhealthy, NoHealthyExecutor, RunFailed, ExecutorHealthy, NodeUnreachable, NodeReachable]
    );
}

fn run_without_executor(h: &mut Harness, task: u64) {
    let cmd = Command::TriggerTask { id: task, parameters: None, requested_by: String::new() };
    let Response::Execution(e) = at(h, T0, cmd) else { panic!("no trigger") };
    let round = DispatchBatch { seed: 1, term: 1, items: vec![DispatchItem { execution_id: e.id, attempt: 1 }] };
    at(h, T0, Command::Dispatch(round));
}

#[test]
fn the_outbox_is_bounded_and_counts_what_it_drops() {
    let mut h = Harness::new();
    at(&mut h, T0, Command::CreateChannel { spec: channel("ops") });
    create_rule(&mut h, rule(Selector::Default, &[EventKind::LeaderChange], &["ops"]));
    let batch: Vec<LeaderEvent> =
        (0..64).map(|n| LeaderEvent { kind: EventKind::LeaderChange, node_id: n, reason: String::new() }).collect();
    let rounds = OUTBOX_MAX / 64 + 2;
    for _ in 0..rounds {
        at(&mut h, T0, Command::RaiseEvents(batch.clone()));
    }
    let stats = h.view().outbox_stats().unwrap();
    assert_eq!((stats.depth, stats.dropped, stats.events), (OUTBOX_MAX, rounds * 64 - OUTBOX_MAX, rounds * 64));
    let entries = outbox(&h);
    assert_eq!(entries.len() as u64, OUTBOX_MAX);
    assert_eq!(entries[0].event.id, rounds * 64 - OUTBOX_MAX + 1, "the oldest went first");
}

#[test]
fn delivery_reports_remove_delivered_entries_and_count_failures() {
    let mut h = Harness::new();
    at(&mut h, T0, Command::CreateChannel { spec: channel("ops") });
    create_rule(&mut h, rule(Selector::Default, &[], &["ops"]));
    let ev = |n| LeaderEvent { kind: EventKind::LeaderChange, node_id: n, reason: String::new() };
    at(&mut h, T0, Command::RaiseEvents(vec![ev(1), ev(2)]));
    let failed = DeliveryReport { delivered: vec![], failed: vec![(2, "connection refused".into())] };
    assert_eq!(at(&mut h, T0 + 5, Command::ReportDeliveries(failed)), Response::Count(1));
    let done = DeliveryReport { delivered: vec![1, 1, 99], failed: vec![] };
    assert_eq!(
        at(&mut h, T0 + 9, Command::ReportDeliveries(done)),
        Response::Count(1),
        "a repeat and an unknown seq are skipped"
    );
    let left = outbox(&h);
    assert_eq!(
        (left.len(), left[0].seq, left[0].attempts, left[0].last_error.as_str()),
        (1, 2, 1, "connection refused")
    );
    let s = h.view().channel_state("ops").unwrap();
    assert_eq!((s.delivered, s.failures, s.last_event_id, s.last_delivery_ms), (1, 1, Some(1), Some(T0 + 9)));
    assert_eq!(h.view().outbox_stats().unwrap().depth, 1);
}

#[test]
fn bad_channels_and_rules_are_refused_and_a_used_channel_cannot_go() {
    let mut h = Harness::new();
    let bad = ChannelSpec { template: Some("{{nope}}".into()), ..channel("x") };
    let r = at(&mut h, T0, Command::CreateChannel { spec: bad });
    assert_eq!(
        r,
        Response::Rejected(Rejection::InvalidNotification(NotifyInputError::UnknownPlaceholder("nope".into())))
    );
    at(&mut h, T0, Command::CreateChannel { spec: channel("ops") });
    let twin = at(&mut h, T0, Command::CreateChannel { spec: channel("ops") });
    assert_eq!(twin, Response::Rejected(Rejection::ChannelNameTaken { name: "ops".into() }));
    let unknown = at(&mut h, T0, Command::CreateRule { spec: rule(Selector::Default, &[], &["nope"]) });
    assert_eq!(unknown, Response::Rejected(Rejection::UnknownChannel { name: "nope".into() }));
    let id = create_rule(&mut h, rule(Selector::Group("g".into()), &[], &["ops"]));
    let del = at(&mut h, T0, Command::DeleteChannel { name: "ops".into() });
    assert_eq!(del, Response::Rejected(Rejection::ChannelInUse { name: "ops".into(), rule: id }));
    // The secret is kept by a patch that does not name it, and the rule can go, then the channel.
    let patch = ChannelPatch { secret: Some(Some("0123456789abcdef".into())), ..Default::default() };
    at(&mut h, T0, Command::UpdateChannel { name: "ops".into(), patch });
    let patch = ChannelPatch { url: Some("https://example.com/hook".into()), ..Default::default() };
    let Response::Channel(c) = at(&mut h, T0, Command::UpdateChannel { name: "ops".into(), patch }) else { panic!() };
    assert_eq!((c.spec.secret.as_deref(), c.spec.url.as_str()), (Some("0123456789abcdef"), "https://example.com/hook"));
    assert!(matches!(at(&mut h, T0, Command::DeleteRule { id }), Response::Rule(_)));
    assert_eq!(h.view().rules().unwrap().len(), 0);
    assert!(matches!(at(&mut h, T0, Command::DeleteChannel { name: "ops".into() }), Response::Channel(_)));
    assert!(h.view().channels().unwrap().is_empty());
}

#[test]
fn the_same_entries_give_the_same_state_digest() {
    let play = || {
        let mut h = Harness::new();
        at(&mut h, T0, Command::CreateChannel { spec: channel("ops") });
        create_rule(&mut h, rule(Selector::Default, &[], &["ops"]));
        let t = task_with_executor(&mut h, "nightly");
        run(&mut h, t, ExecutionStatus::Failed);
        run(&mut h, t, ExecutionStatus::Success);
        at(&mut h, T0, Command::ReportDeliveries(DeliveryReport { delivered: vec![1], failed: vec![(2, "x".into())] }));
        h.view().digest().unwrap()
    };
    assert_eq!(play(), play());
}
