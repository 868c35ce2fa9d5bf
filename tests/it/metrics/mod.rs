//! `/metrics` end to end: the outcome series after a known workload (exact counts, read again
//! after a restart: they are the replicated state's), per-task series for the configured tasks,
//! and the number of series staying bounded with 10,000 tasks in 100 executor groups. The
//! shipped alert rules and Grafana dashboard are checked against a live node's series in
//! [`docs`].

mod docs;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{Datelike, Timelike, Utc};
use cronraft_testkit::metrics::Metrics;
use serde_json::{json, Value};

use crate::common::{wait_for, Cluster};

const LONG: Duration = Duration::from_secs(60);

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn post(node: &str, path: &str, body: Value) -> Value {
    let resp = http().post(format!("{node}{path}")).json(&body).send().await.unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "POST {path}: {status} {v}");
    v
}

async fn get(node: &str, path: &str) -> Value {
    let resp = http().get(format!("{node}{path}")).send().await.unwrap();
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    resp.json().await.unwrap()
}

pub async fn scrape(node: &str) -> Metrics {
    Metrics::fetch(&http(), node, Duration::from_secs(30)).await.expect("GET /metrics")
}

/// A task body: `command` run by the embedded agent, never firing on its own unless `cron` says.
fn task(name: &str, command: &str, extra: Value) -> Value {
    let mut body = json!({"name": name, "cron_expression": "0 0 0 1 1 * 2099", "max_retry": 0,
                          "parameters": {"command": command}});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

/// A 7-field expression with exactly one slot: `at` (UTC, whole seconds).
fn once_at(at: chrono::DateTime<Utc>) -> String {
    format!("{} {} {} {} {} * {}", at.second(), at.minute(), at.hour(), at.day(), at.month(), at.year())
}

/// How many of `task`'s executions have `status` (the API's exact total for a task and status).
async fn count(node: &str, task: &str, status: &str) -> u64 {
    get(node, &format!("/api/v1/executions?task_id={task}&status={status}")).await["total"].as_u64().unwrap()
}

async fn wait_count(node: &str, task: &str, status: &str, at_least: u64) {
    wait_for(&format!("{task} to have {at_least} {status}"), LONG, || async {
        (count(node, task, status).await >= at_least).then_some(())
    })
    .await
}

/// Triggers `task` and waits for the run to end with `status`.
async fn run(node: &str, task: &str, status: &str) {
    let id = post(node, &format!("/api/v1/tasks/{task}/trigger"), json!({})).await["id"].as_u64().unwrap();
    wait_for(&format!("run {id} of {task} to end {status}"), LONG, || async {
        let e = get(node, &format!("/api/v1/executions/{id}")).await;
        (e["status"] == status).then_some(())
    })
    .await;
}

/// The value of one series, 0 if absent, with a message naming it.
fn value(m: &Metrics, series: &str) -> u64 {
    m.value(series).unwrap_or_else(|| panic!("no series {series} in:\n{}", m.text)) as u64
}

const WORKLOAD: &str = "[metrics]\ntask_series = [\"fail\"]\ntask_series_top_failures = 2\n";

#[tokio::test(flavor = "multi_thread")]
async fn outcome_series_count_a_known_workload_and_survive_a_restart() {
    let mut c = Cluster::new(WORKLOAD);
    c.agent = true;
    c.spawn(1, None, None);
    c.wait_leader().await;
    let node = c.nodes[&1].url();
    let healthy = r#"cronraft_executors{health="healthy",status="online"}"#;
    wait_for("the embedded agent to register", LONG, || async {
        (scrape(&node).await.value(healthy) == Some(1.0)).then_some(())
    })
    .await;

    // Phase 1: manual runs on the embedded agent (group `local`): two successes, a failure after
    // two retries, a timeout, and one run in a group with no instance (a dispatch failure).
    post(&node, "/api/v1/tasks", task("ok", "true", json!({}))).await;
    post(&node, "/api/v1/tasks", task("fail", "exit 3", json!({"max_retry": 2}))).await;
    post(&node, "/api/v1/tasks", task("slow", "sleep 30", json!({"timeout_seconds": 1}))).await;
    post(&node, "/api/v1/tasks", task("nowhere", "true", json!({"executor": "nowhere"}))).await;
    run(&node, "ok", "success").await;
    run(&node, "ok", "success").await;
    run(&node, "fail", "failed").await;
    run(&node, "slow", "timeout").await;
    run(&node, "nowhere", "failed").await;

    // Phase 2: one scheduled slot, 3 s from now.
    let at = Utc::now() + chrono::Duration::seconds(3);
    post(&node, "/api/v1/tasks", task("tick", "true", json!({"cron_expression": once_at(at)}))).await;
    wait_count(&node, "tick", "success", 1).await;

    // Phase 3: `skip` mode: a long run every second; the slots that come while it runs are
    // skipped (`overlap`). Pausing cuts off at most the slot of the last instant (`cut_off`);
    // stopping the run ends it `cancelled`.
    let busy = json!({"cron_expression": "@every 1s", "execution_mode": "skip", "timeout_seconds": 120});
    post(&node, "/api/v1/tasks", task("busy", "sleep 60", busy)).await;
    wait_count(&node, "busy", "skipped", 2).await;
    post(&node, "/api/v1/tasks/busy/pause", json!({})).await;
    let running = get(&node, "/api/v1/executions?task_id=busy&status=running").await;
    let running_id = running["items"][0]["id"].as_u64().expect("busy's run");
    post(&node, &format!("/api/v1/executions/{running_id}/stop"), json!({})).await;
    wait_count(&node, "busy", "cancelled", 1).await;

    // Phase 4: a slot that passes while the only node is down, with misfire policy `skip`: the
    // node records it `missed` (`misfire`) once it is back. The counters read afterwards were
    // all written before the restart: they are kept in the replicated state, not in memory.
    let before = scrape(&node).await;
    let at = Utc::now() + chrono::Duration::seconds(4);
    post(
        &node,
        "/api/v1/tasks",
        task("late", "true", json!({"cron_expression": once_at(at), "misfire_policy": "skip"})),
    )
    .await;
    c.stop(1);
    wait_for("the slot to be more than 5 s late", LONG, || async {
        (Utc::now() > at + chrono::Duration::seconds(6)).then_some(())
    })
    .await;
    c.restart(1);
    c.wait_leader().await;
    wait_count(&node, "late", "missed", 1).await;
    let m = scrape(&node).await;

    // Phase 5: every outcome series holds exactly what happened.
    let runs = |status: &str, trigger: &str, group: &str| {
        format!(r#"cronraft_runs_total{{status="{status}",trigger="{trigger}",group="{group}"}}"#)
    };
    assert_eq!(value(&m, &runs("success", "manual", "local")), 2);
    assert_eq!(value(&m, &runs("success", "schedule", "local")), 1);
    assert_eq!(value(&m, &runs("failed", "manual", "local")), 1);
    assert_eq!(value(&m, &runs("timeout", "manual", "local")), 1);
    assert_eq!(value(&m, &runs("cancelled", "schedule", "local")), 1);
    assert_eq!(value(&m, &runs("failed", "manual", "nowhere")), 1);
    assert_eq!(value(&m, &runs("success", "catchup", "local")), 0);
    assert_eq!(value(&m, r#"cronraft_retries_total{group="local"}"#), 2);
    assert_eq!(value(&m, r#"cronraft_retries_total{group="nowhere"}"#), 0);
    let failures = r#"cronraft_dispatch_failures_total{reason="no_healthy_executor",group="nowhere"}"#;
    assert_eq!(value(&m, failures), 1);
    let skipped = value(&m, r#"cronraft_slots_skipped_total{reason="overlap",group="local"}"#);
    assert_eq!(skipped, count(&node, "busy", "skipped").await, "skipped slots are the skipped records");
    assert!(skipped >= 2);
    assert_eq!(value(&m, r#"cronraft_slots_missed_total{reason="misfire",group="local"}"#), 1);
    let cut_off = get(&node, "/api/v1/executions?task_id=busy&status=missed").await;
    let cut_slots: u64 =
        cut_off["items"].as_array().unwrap().iter().map(|e| e["slot_count"].as_u64().unwrap_or(1)).sum();
    assert_eq!(value(&m, r#"cronraft_slots_missed_total{reason="cut_off",group="local"}"#), cut_slots);
    assert_eq!(value(&m, r#"cronraft_tasks{status="paused"}"#), 1);
    assert_eq!(value(&m, "cronraft_queued_runs"), 0);
    for series in [runs("success", "manual", "local"), runs("failed", "manual", "nowhere"), failures.to_string()] {
        assert_eq!(m.value(&series), before.value(&series), "{series} changed across the restart");
    }

    // Phase 6: per-task series: `fail` as listed, then the top 2 by failures (`fail` again, so
    // `slow`, the lower id of the two tied at one); no other task has any.
    assert_eq!(value(&m, r#"cronraft_task_executions{task="fail",status="failed"}"#), 1);
    assert_eq!(value(&m, r#"cronraft_task_last_run_failed{task="fail"}"#), 1);
    assert_eq!(value(&m, r#"cronraft_task_executions{task="slow",status="timeout"}"#), 1);
    let tasks: BTreeSet<&str> = label_values(&m.text, "task").collect();
    assert_eq!(tasks, BTreeSet::from(["fail", "slow"]), "{}", m.text);

    // Phase 7: the shipped rules and dashboard use only series this node exposes.
    docs::check_names_exposed(&m.text);
}

/// Every value of label `label` in `text`'s samples.
fn label_values<'a>(text: &'a str, label: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let key = format!("{label}=\"");
    text.lines().filter(|l| !l.starts_with('#')).filter_map(move |l| {
        let rest = &l[l.find(&key)? + key.len()..];
        Some(&rest[..rest.find('"')?])
    })
}

/// The series (sample lines) of a scrape.
fn series(text: &str) -> usize {
    text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count()
}

/// With 10,000 tasks in 100 executor groups, every one of which has failed runs, `/metrics`
/// stays under a fixed number of series: 64 groups and `other`, at most 50 tasks.
#[tokio::test(flavor = "multi_thread")]
async fn series_stay_bounded_with_10000_tasks_in_100_groups() {
    const SERIES_MAX: usize = 2_500;
    let c = Cluster::start(1, "[agent]\nenabled = false\n[metrics]\ntask_series_top_failures = 50\n").await;
    let node = c.nodes[&1].url();

    // Phase 1: 10,000 tasks, 100 at a time (the API commits concurrent writes in groups), in
    // groups g0..g99, none firing during the test.
    for batch in 0..100 {
        let creates = (0..100).map(|i| {
            let n = batch * 100 + i;
            let body = task(&format!("t{n}"), "true", json!({"executor": format!("g{}", n % 100)}));
            let node = node.clone();
            async move { post(&node, "/api/v1/tasks", body).await }
        });
        futures::future::join_all(creates).await;
    }
    assert_eq!(value(&scrape(&node).await, r#"cronraft_tasks{status="active"}"#), 10_000);

    // Phase 2: one run in each group (no group has an instance): 100 groups with a failed run
    // and a dispatch failure each, 100 tasks with one failure each.
    let triggers = (0..100).map(|n| {
        let node = node.clone();
        async move { run(&node, &format!("t{n}"), "failed").await }
    });
    futures::future::join_all(triggers).await;

    // Phase 3: the bound.
    let m = scrape(&node).await;
    let groups: BTreeSet<&str> = label_values(&m.text, "group").collect();
    assert_eq!(groups.len(), 65, "64 groups and `other`: {groups:?}");
    assert!(groups.contains("other"));
    let tasks: BTreeSet<&str> = label_values(&m.text, "task").collect();
    assert_eq!(tasks.len(), 50, "top 50 by failures: {tasks:?}");
    let other = r#"cronraft_dispatch_failures_total{reason="no_healthy_executor",group="other"}"#;
    assert_eq!(value(&m, other), 36, "groups 65 to 100 share `other`");
    let n = series(&m.text);
    assert!(n < SERIES_MAX, "{n} series with 10,000 tasks");
}
