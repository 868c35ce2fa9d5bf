//! Notifications end to end: real nodes, a recording executor and a recording alert receiver in
//! this process (`cronraft_testkit::receiver`), both on loopback port 0.
//!
//! What is shown here: a task that fails twice then succeeds sends exactly one "failing" alert
//! and one "recovered" (a webhook, its HMAC signature checked); a missed slot sends one alert
//! (Slack shape); an alert whose delivery was refused survives a `kill -9` of the leader and is
//! delivered by the next one with the same event id (Alertmanager shape); a receiver that is
//! down gets its alert when it comes back, with the failed attempts visible meanwhile; bad
//! channel and rule input gets clear 4xx codes, and no answer shows a secret.

use crate::common;

use std::time::Duration;

use aws_lc_rs::hmac;
use common::executor::{register, Behavior, TestExecutor};
use common::{assert_error, send, wait_for, Cluster};
use cronraft_api::client::Client;
use cronraft_api::types::{ChannelInput, NotificationsView, RuleInput, TaskInput, TriggerInput};
use cronraft_raft::notify::{ChannelKind, EventKind};
use cronraft_testkit::receiver::{Delivery, Receiver};
use reqwest::Method;
use serde_json::Value;

/// No embedded agent (the tests bring their executor); delivery retries at most 500 ms apart.
const CONFIG: &str = "[agent]\nenabled = false\n[notifications]\nretry_backoff_ms_max = 500\n";
const SECRET: &str = "a-webhook-secret-of-32-bytes-...";
const WAIT: Duration = Duration::from_secs(60);

async fn receiver() -> Receiver {
    Receiver::start().await.expect("bind a loopback receiver")
}

fn channel(name: &str, kind: ChannelKind, url: &str) -> ChannelInput {
    ChannelInput { name: Some(name.into()), kind: Some(kind), url: Some(url.into()), ..Default::default() }
}

fn rule(task: Option<&str>, events: &[EventKind], channel: &str) -> RuleInput {
    RuleInput {
        task: task.map(Into::into),
        events: events.to_vec(),
        channels: vec![channel.into()],
        ..Default::default()
    }
}

/// A task of group `g` that never fires by itself (2099), no retries: runs come from triggers.
fn manual_task(name: &str) -> TaskInput {
    TaskInput {
        name: Some(name.into()),
        cron_expression: Some("0 0 0 1 1 * 2099".into()),
        executor: Some("g".into()),
        max_retry: Some(0),
        ..Default::default()
    }
}

/// Triggers one run of `task` and waits for it to end with `status`.
async fn run_once(client: &Client, task: u64, status: &str) {
    let e = client.trigger_task(&task.to_string(), &TriggerInput::default(), None).await.expect("trigger");
    wait_for(&format!("execution {} to end {status}", e.id), WAIT, || async {
        let e = client.get_execution(e.id, Default::default()).await.ok()?;
        (serde_json::to_value(e.status).ok()? == status).then_some(())
    })
    .await;
}

/// Waits until the outbox is empty and `n` events exist: every alert generated is delivered.
async fn wait_all_delivered(client: &Client, events: u64) -> NotificationsView {
    wait_for(&format!("{events} events, all delivered"), WAIT, || async {
        let v = client.notifications().await.ok()?;
        (v.outbox_depth == 0 && v.events == events).then_some(v)
    })
    .await
}

fn kind(d: &Delivery) -> String {
    d.header("x-cronraft-event").unwrap_or_default().to_string()
}

fn event_id(d: &Delivery) -> u64 {
    d.header("x-cronraft-event-id").and_then(|v| v.parse().ok()).expect("an event id header")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_failing_twice_then_succeeding_sends_one_failing_and_one_recovered_alert() {
    // Phase 1: one node, a failing executor, a signed webhook channel and a rule for the task.
    let c = Cluster::start(1, CONFIG).await;
    let client = c.client(1);
    let exe = TestExecutor::start(Behavior::Fail).await;
    register(&c.nodes[&1].url(), &exe.registration("g", "x1", 1)).await;
    let hook = receiver().await;
    let input = ChannelInput {
        secret: Some(SECRET.into()),
        template: Some("{{task}}: {{event}} ({{reason}})".into()),
        ..channel("ops", ChannelKind::Webhook, &format!("{}/hook", hook.url))
    };
    let created = client.create_channel(&input).await.expect("create the channel");
    assert!(created.has_secret);
    let task = client.create_task(&manual_task("nightly"), None).await.expect("create the task");
    client.create_rule(&rule(Some("nightly"), &[], "ops")).await.expect("create the rule");

    // Phase 2: two failures, then a success: the second failure is suppressed (the task is
    // already failing), the success resolves it.
    run_once(&client, task.id, "failed").await;
    run_once(&client, task.id, "failed").await;
    exe.set_behavior(Behavior::Succeed { after_ms: 0 });
    run_once(&client, task.id, "success").await;
    run_once(&client, task.id, "success").await;

    // Phase 3: exactly two events were generated and delivered, in order, each signed.
    let status = wait_all_delivered(&client, 2).await;
    let got = hook.accepted();
    assert_eq!(got.iter().map(kind).collect::<Vec<_>>(), vec!["run_failed", "recovered"], "{got:?}");
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    for d in &got {
        let body = d.json();
        assert_eq!(body["event_id"].as_u64(), Some(event_id(d)), "the header and the body name one event");
        assert_eq!(body["task"], "nightly");
        let sig = d.header("x-cronraft-signature").expect("a signature header");
        let hex = sig.strip_prefix("sha256=").expect("sha256=");
        let tag: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        hmac::verify(&key, &d.body, &tag).expect("the signature verifies with the channel's secret");
    }
    assert_eq!(got[0].json()["text"], "nightly: run_failed (executor_failed)");
    assert_eq!(got[1].json()["status"], "resolved");
    assert_eq!((status.channels[0].delivered, status.dropped), (2, 0));
    assert!(!serde_json::to_string(&status).unwrap().contains(SECRET), "no answer shows the secret");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missed_slot_sends_one_alert() {
    // Phase 1: one node, a task every second whose late slots are skipped (`missed`), and a
    // cluster-wide default rule for missed slots to a Slack-shaped channel.
    let mut c = Cluster::start(1, CONFIG).await;
    let client = c.client(1);
    let slack = receiver().await;
    client.create_channel(&channel("chat", ChannelKind::Slack, &format!("{}/slack", slack.url))).await.unwrap();
    client.create_rule(&rule(None, &[EventKind::SlotMissed], "chat")).await.unwrap();
    let input = TaskInput {
        cron_expression: Some("* * * * * *".into()),
        misfire_policy: Some(cronraft_raft::model::MisfirePolicy::Skip),
        ..manual_task("every-second")
    };
    let task = client.create_task(&input, None).await.unwrap();

    // Phase 2: freeze the node past the misfire threshold (5 s): on waking, the slots it slept
    // through are more than 5 s late, so each is recorded `missed`.
    c.nodes.get_mut(&1).unwrap().pause();
    let frozen = std::time::Instant::now();
    wait_for("the freeze to outlast the misfire threshold", Duration::from_secs(20), || async {
        (frozen.elapsed() > Duration::from_secs(8)).then_some(())
    })
    .await;
    c.nodes.get_mut(&1).unwrap().resume();
    wait_for("a missed alert", WAIT, || async { (!slack.accepted().is_empty()).then_some(()) }).await;

    // Phase 3: stop the task, let the outbox drain: several slots were missed, one alert says so.
    client.pause_task(&task.id.to_string(), None).await.unwrap();
    let missed = client.list_executions(Some(&task.id.to_string()), Some("missed"), 1, 100, Default::default()).await;
    assert!(missed.unwrap().total >= 3, "the freeze produced several missed slots");
    let status = wait_for("the outbox to drain", WAIT, || async {
        let v = client.notifications().await.ok()?;
        (v.outbox_depth == 0).then_some(v)
    })
    .await;
    let got = slack.accepted();
    assert_eq!((got.len(), status.events), (1, 1), "{got:?}");
    assert_eq!(kind(&got[0]), "slot_missed");
    let text = got[0].json()["text"].as_str().unwrap_or_default().to_string();
    assert!(text.contains("slot_missed") && text.contains("every-second") && text.contains("misfire"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_outlives_a_leader_kill_between_its_event_and_its_delivery() {
    // Phase 1: three nodes; the receiver (Alertmanager-shaped) refuses at first.
    let mut c = Cluster::start(3, CONFIG).await;
    let client = c.any_client();
    let exe = TestExecutor::start(Behavior::Fail).await;
    register(&c.nodes[&1].url(), &exe.registration("g", "x1", 1)).await;
    let am = receiver().await;
    am.set_refusing(true);
    client
        .create_channel(&channel("am", ChannelKind::Alertmanager, &format!("{}/api/v2/alerts", am.url)))
        .await
        .unwrap();
    client.create_rule(&rule(None, &[EventKind::RunFailed], "am")).await.unwrap();
    let task = client.create_task(&manual_task("flaky"), None).await.unwrap();

    // Phase 2: the run fails; the leader tries to deliver and is refused: the alert waits in
    // the replicated outbox, its failed attempts counted.
    run_once(&client, task.id, "failed").await;
    let refused = wait_for("a refused delivery", WAIT, || async { am.attempts().first().cloned() }).await;
    wait_for("the failed attempt to be replicated", WAIT, || async {
        let v = client.notifications().await.ok()?;
        v.pending.first().filter(|p| p.attempts >= 1 && p.last_error.contains("503")).map(|_| ())
    })
    .await;

    // Phase 3: kill -9 the leader, then accept: the next leader delivers the same event.
    let leader = c.wait_leader().await;
    c.kill(leader);
    am.set_refusing(false);
    c.wait_leader().await;
    let delivered =
        wait_for("the alert delivered by the next leader", WAIT, || async { am.accepted().first().cloned() }).await;
    assert_eq!(event_id(&delivered), event_id(&refused), "the same event id, for the receiver's dedupe");
    let alerts = delivered.json();
    assert_eq!(alerts[0]["labels"]["alertname"], "CronraftTaskFailing");
    assert_eq!(
        (alerts[0]["labels"]["task"].as_str(), alerts[0]["labels"]["severity"].as_str()),
        (Some("flaky"), Some("critical"))
    );
    assert!(alerts[0]["startsAt"].is_string() && alerts[0].get("endsAt").is_none());
    let status = wait_all_delivered(&c.any_client(), 1).await;
    assert!(status.channels[0].delivered >= 1 && status.channels[0].last_error.contains("503"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_is_down_gets_the_alert_when_it_comes_back() {
    // Phase 1: one node, a receiver that is down, a default rule to it.
    let c = Cluster::start(1, CONFIG).await;
    let client = c.client(1);
    let exe = TestExecutor::start(Behavior::Fail).await;
    register(&c.nodes[&1].url(), &exe.registration("g", "x1", 1)).await;
    let hook = receiver().await;
    hook.down();
    client.create_channel(&channel("ops", ChannelKind::Webhook, &hook.url)).await.unwrap();
    client.create_rule(&rule(None, &[EventKind::RunFailed], "ops")).await.unwrap();
    let task = client.create_task(&manual_task("t"), None).await.unwrap();

    // Phase 2: the alert cannot be delivered; the delivery state says so.
    run_once(&client, task.id, "failed").await;
    let pending = wait_for("failed attempts to show", WAIT, || async {
        let v = client.notifications().await.ok()?;
        v.pending.first().filter(|p| p.attempts >= 2).cloned()
    })
    .await;
    assert_eq!(
        (pending.kind, pending.channel.as_str(), pending.subject.as_str()),
        (EventKind::RunFailed, "ops", "task t")
    );
    assert!(!pending.last_error.is_empty());
    assert_eq!(c.metric(1, "cronraft_notification_outbox_depth").await, Some(1.0), "/metrics shows the waiting alert");

    // Phase 3: the receiver comes back and gets it, once.
    hook.up().await.expect("the receiver comes back on its port");
    let status = wait_all_delivered(&client, 1).await;
    let got = hook.accepted();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(event_id(&got[0]), pending.event_id);
    assert!(status.channels[0].failures >= 2 && status.channels[0].last_delivery_at.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_channel_and_rule_input_gets_clear_codes() {
    let c = Cluster::start(1, CONFIG).await;
    let client = c.client(1);
    let post = |path: &'static str, body: Value| {
        let client = &client;
        async move { send(client, Method::POST, path, Some(&body.to_string())).await }
    };
    let channels = "/api/v1/notifications/channels";
    let hook = |extra: Value| {
        let mut v = serde_json::json!({"name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/hook"});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    };
    use serde_json::json;
    let cases = [
        (hook(json!({"template": "{{task}} {{nope}}"})), 422, "unknown_placeholder"),
        (hook(json!({"template": "{{task"})), 422, "invalid_template"),
        (hook(json!({"url": "ftp://x/"})), 422, "invalid_channel_url"),
        (hook(json!({"url": "http://user:pw@x/"})), 422, "invalid_channel_url"),
        (hook(json!({"name": "o p s"})), 422, "invalid_name"),
        (hook(json!({"secret": "short"})), 422, "invalid_secret"),
        (hook(json!({"kind": "pager"})), 422, "invalid_field"),
        (json!({"name": "ops", "kind": "webhook"}), 422, "missing_field"),
    ];
    for (body, status, code) in cases {
        assert_error(&post(channels, body.clone()).await, status, code, &body.to_string());
    }
    assert_eq!(post(channels, hook(json!({"secret": SECRET}))).await.status, 201);
    assert_error(&post(channels, hook(json!({}))).await, 409, "channel_name_taken", "twice");
    let shown = send(&client, Method::GET, "/api/v1/notifications/channels/ops", None).await;
    assert!(shown.body.contains("\"has_secret\":true") && !shown.body.contains(SECRET), "{}", shown.body);

    let rules = "/api/v1/notifications/rules";
    let rule_cases = [
        (json!({"channels": ["nope"]}), 422, "unknown_channel"),
        (json!({"channels": []}), 422, "invalid_rule"),
        (json!({"channels": ["ops"], "group": "g", "task_prefix": "x"}), 422, "invalid_rule"),
        (json!({"channels": ["ops"], "events": ["party"]}), 422, "invalid_field"),
        (json!({"channels": ["ops"], "task": "no-such-task"}), 404, "task_not_found"),
    ];
    for (body, status, code) in rule_cases {
        assert_error(&post(rules, body.clone()).await, status, code, &body.to_string());
    }
    let created = post(rules, json!({"channels": ["ops"], "group": "g", "events": ["run_failed"]})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = serde_json::from_str::<Value>(&created.body).unwrap()["id"].as_u64().unwrap();
    let del = send(&client, Method::DELETE, "/api/v1/notifications/channels/ops", None).await;
    assert_error(&del, 409, "channel_in_use", "a rule names it");
    let missing = send(&client, Method::GET, "/api/v1/notifications/channels/nope", None).await;
    assert_error(&missing, 404, "channel_not_found", "no such channel");
    assert_error(&send(&client, Method::GET, "/api/v1/notifications/rules/x", None).await, 400, "invalid_rule_id", "x");
    assert_error(
        &send(&client, Method::GET, "/api/v1/notifications/rules/99", None).await,
        404,
        "rule_not_found",
        "99",
    );
    let empty = send(&client, Method::PUT, "/api/v1/notifications/channels/ops", Some("{}")).await;
    assert_error(&empty, 422, "empty_update", "a PUT that changes nothing");

    // The rule goes, then the channel can go.
    assert_eq!(send(&client, Method::DELETE, &format!("{rules}/{id}"), None).await.status, 200);
    assert_eq!(send(&client, Method::DELETE, "/api/v1/notifications/channels/ops", None).await.status, 200);
    assert!(client.list_channels().await.unwrap().is_empty());
}

fn cli(node: &str, args: &[&str]) -> std::process::Output {
    let cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cronraft")).args(args).env("CRONRAFT_NODE", node).output();
    cmd.expect("run cli")
}

fn stdout(o: &std::process::Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}", o.status, String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_notify_commands_create_list_and_delete_channels_and_rules() {
    // Phase 1: a channel with a secret from a file, a rule for a prefix; both listed.
    let c = Cluster::start(1, CONFIG).await;
    let node = c.nodes[&1].url();
    let secret = c.root().join("hook.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let args = ["notify", "channel", "create", "--name", "ops", "--kind", "webhook", "--url", "http://127.0.0.1:9/h"];
    let created = stdout(&cli(&node, &[&args[..], &["--secret-file", secret.to_str().unwrap(), "--json"]].concat()));
    let created: Value = serde_json::from_str(&created).unwrap();
    assert_eq!((created["has_secret"].as_bool(), created.get("secret")), (Some(true), None));
    let rule = stdout(&cli(
        &node,
        &[
            "notify",
            "rule",
            "create",
            "--task-prefix",
            "backup-",
            "--event",
            "run_failed,recovered",
            "--channel",
            "ops",
        ],
    ));
    assert!(rule.contains("prefix backup-") && rule.contains("run_failed,recovered"), "{rule}");
    let channels = stdout(&cli(&node, &["notify", "channel", "list"]));
    assert!(channels.contains("ops") && channels.contains("webhook") && !channels.contains(SECRET), "{channels}");
    let status = stdout(&cli(&node, &["notify", "status"]));
    assert!(status.contains("outbox: 0 of 10000"), "{status}");

    // Phase 2: the server's codes reach the user; then the rule and the channel go.
    let bad = cli(
        &node,
        &[
            "notify",
            "channel",
            "create",
            "--name",
            "x",
            "--kind",
            "slack",
            "--url",
            "http://h/",
            "--template",
            "{{nope}}",
        ],
    );
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown_placeholder"));
    let in_use = cli(&node, &["notify", "channel", "delete", "ops"]);
    assert!(!in_use.status.success() && String::from_utf8_lossy(&in_use.stderr).contains("channel_in_use"));
    let rules: Value = serde_json::from_str(&stdout(&cli(&node, &["notify", "rule", "list", "--json"]))).unwrap();
    let id = rules[0]["id"].as_u64().unwrap().to_string();
    stdout(&cli(&node, &["notify", "rule", "delete", &id]));
    stdout(&cli(&node, &["notify", "channel", "delete", "ops"]));
    assert_eq!(stdout(&cli(&node, &["notify", "channel", "list", "--json"])).trim(), "[]");
}
