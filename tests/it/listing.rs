//! What the web console reads, against a real node: task listings filtered and sorted (with
//! their exact totals), each task's latest result, execution listings by trigger and slot time,
//! the cluster's statistics, and the leader's fire-lag history. Bad values of the new
//! parameters answer with their own codes.

use crate::common;

use std::time::Duration;

use common::executor::{register, Behavior, TestExecutor};
use common::{assert_error, send, wait_for, Cluster};
use cronraft_api::client::Client;
use reqwest::Method;
use serde_json::{json, Value};

/// A GET that must succeed, as JSON.
async fn get(client: &Client, path: &str) -> Value {
    let resp = send(client, Method::GET, path, None).await;
    assert_eq!(resp.status, 200, "GET {path}: {}", resp.body);
    serde_json::from_str(&resp.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", resp.body))
}

async fn post(client: &Client, path: &str, body: Value) -> Value {
    let resp = send(client, Method::POST, path, Some(&body.to_string())).await;
    assert!(resp.status == 200 || resp.status == 201, "POST {path}: {} {}", resp.status, resp.body);
    serde_json::from_str(&resp.body).unwrap()
}

/// The names of a task listing's items, and its total.
async fn names(client: &Client, query: &str) -> (Vec<String>, u64) {
    let page = get(client, &format!("/api/v1/tasks?{query}")).await;
    let items = page["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
    (items, page["total"].as_u64().unwrap())
}

/// A task that never fires during a test (its only slot is in `year`), in `group`.
fn later(name: &str, year: u32, group: &str, mode: &str) -> Value {
    json!({"name": name, "cron_expression": format!("0 0 0 1 1 * {year}"), "executor": group,
           "execution_mode": mode, "max_retry": 0, "timeout_seconds": 60})
}

#[tokio::test(flavor = "multi_thread")]
async fn task_filters_and_sorts_give_the_matching_tasks_and_their_total() {
    let c = Cluster::start(1, "").await;
    let client = c.client(1);
    // Phase 1: four tasks of two groups and three modes, slots in different years; one paused,
    // then one changed, so "most recently updated" is neither id order nor name order.
    for (name, year, group, mode) in [
        ("Nightly-Backup", 2090, "db", "parallel"),
        ("weekly-backup", 2080, "db", "skip"),
        ("report", 2085, "web", "skip"),
        ("cleanup", 2070, "web", "sequential"),
    ] {
        post(&client, "/api/v1/tasks", later(name, year, group, mode)).await;
    }
    post(&client, "/api/v1/tasks/cleanup/pause", json!({})).await;
    let resp = send(&client, Method::PUT, "/api/v1/tasks/report", Some(r#"{"description":"changed"}"#)).await;
    assert_eq!(resp.status, 200, "{}", resp.body);

    // Phase 2: each filter, alone and with the status; totals are exact.
    let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(names(&client, "name=BACKUP").await, (n(&["Nightly-Backup", "weekly-backup"]), 2));
    assert_eq!(names(&client, "group=web").await, (n(&["report", "cleanup"]), 2));
    assert_eq!(names(&client, "group=we").await.1, 0, "a group matches exactly");
    assert_eq!(names(&client, "mode=skip").await, (n(&["weekly-backup", "report"]), 2));
    assert_eq!(names(&client, "status=paused&mode=sequential").await, (n(&["cleanup"]), 1));
    assert_eq!(names(&client, "status=active&group=web").await, (n(&["report"]), 1));
    assert_eq!(names(&client, "last_result=none").await.1, 4, "no run has ended yet");
    assert_eq!(names(&client, "last_result=failed,timeout").await.1, 0);
    assert_eq!(names(&client, "name=&group=&sort=").await.1, 4, "empty values are no filter");

    // Phase 3: each order, over the whole match before the page is cut.
    assert_eq!(names(&client, "sort=name").await.0, n(&["cleanup", "Nightly-Backup", "report", "weekly-backup"]));
    assert_eq!(names(&client, "sort=-name").await.0, n(&["weekly-backup", "report", "Nightly-Backup", "cleanup"]));
    assert_eq!(names(&client, "sort=-id").await.0, n(&["cleanup", "report", "weekly-backup", "Nightly-Backup"]));
    assert_eq!(names(&client, "sort=next_fire").await.0, n(&["weekly-backup", "report", "Nightly-Backup", "cleanup"]));
    // The changed task, then the paused one (the other two were last changed at their creation).
    assert_eq!(names(&client, "sort=-updated").await.0[..2], n(&["report", "cleanup"]));
    assert_eq!(names(&client, "sort=name&page=2&page_size=1").await, (n(&["Nightly-Backup"]), 4));
    assert_eq!(names(&client, "name=backup&sort=-name").await, (n(&["weekly-backup", "Nightly-Backup"]), 2));

    // Phase 4: bad values get their own codes, on tasks and on executions.
    let long = "x".repeat(129);
    let cases: Vec<(String, &str)> = vec![
        (format!("/api/v1/tasks?name={long}"), "invalid_name_filter"),
        ("/api/v1/tasks?mode=sometimes".into(), "invalid_mode"),
        ("/api/v1/tasks?last_result=pending".into(), "invalid_last_result"),
        ("/api/v1/tasks?last_result=failed,,none".into(), "invalid_last_result"),
        ("/api/v1/tasks?sort=size".into(), "invalid_sort"),
        ("/api/v1/tasks?sort=-next_fire".into(), "invalid_sort"),
        ("/api/v1/tasks?status=sleeping&sort=name".into(), "invalid_status"),
        ("/api/v1/executions?trigger=cron".into(), "invalid_trigger"),
        ("/api/v1/executions?from=yesterday".into(), "invalid_time"),
        ("/api/v1/executions?to=2026-13-01T00:00:00Z".into(), "invalid_time"),
        ("/api/v1/executions?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z".into(), "invalid_time_range"),
        // Regression (Schemathesis): a cursor above the int64 the document promises was accepted.
        ("/api/v1/executions?before=9223372036854775808".into(), "invalid_execution_id"),
    ];
    for (path, code) in cases {
        assert_error(&send(&client, Method::GET, &path, None).await, 400, code, &path);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_latest_result_follows_a_failing_then_succeeding_task() {
    let c = Cluster::start(1, "").await;
    let client = c.client(1);
    let node = c.nodes[&1].url();
    // Phase 1: an executor that fails every run, and a task on it with no retry.
    let x = TestExecutor::start(Behavior::Fail).await;
    register(&node, &x.registration("flaky-group", "flaky-1", 1)).await;
    let task = post(&client, "/api/v1/tasks", later("flaky", 2099, "flaky-group", "parallel")).await;
    assert_eq!(task["last_result"], Value::Null, "no run has ended");
    let ended = |status: &'static str, id: u64| {
        let client = client.clone();
        async move {
            let e = get(&client, &format!("/api/v1/executions/{id}")).await;
            (e["status"] == status).then_some(e)
        }
    };

    // Phase 2: a run fails: the task shows it, and the `failed` filter finds the task.
    let first = post(&client, "/api/v1/tasks/flaky/trigger", json!({})).await["id"].as_u64().unwrap();
    let failed = wait_for("the first run to fail", Duration::from_secs(20), || ended("failed", first)).await;
    let t = get(&client, "/api/v1/tasks/flaky").await;
    assert_eq!(t["last_result"]["execution_id"], first);
    assert_eq!(t["last_result"]["status"], "failed");
    assert_eq!(t["last_result"]["ended_at"], failed["end_time"]);
    assert_eq!(names(&client, "last_result=failed,timeout").await, (vec!["flaky".to_string()], 1));
    assert_eq!(names(&client, "last_result=success").await.1, 0);

    // Phase 3: the executor recovers; the next run succeeds, and the task's latest result is it.
    x.set_behavior(Behavior::Succeed { after_ms: 0 });
    let second = post(&client, "/api/v1/tasks/flaky/trigger", json!({})).await["id"].as_u64().unwrap();
    wait_for("the second run to succeed", Duration::from_secs(20), || ended("success", second)).await;
    let t = get(&client, "/api/v1/tasks/flaky").await;
    assert_eq!(
        (t["last_result"]["execution_id"].as_u64(), t["last_result"]["status"].as_str()),
        (Some(second), Some("success"))
    );
    assert_eq!(names(&client, "last_result=failed").await.1, 0);
    assert_eq!(names(&client, "last_result=success,none").await, (vec!["flaky".to_string()], 1));
    let listed = get(&client, "/api/v1/tasks?name=flaky").await;
    assert_eq!(listed["items"][0]["last_result"], t["last_result"], "the listing shows it too");
}

/// Waits until node 1 has no pending or running execution.
async fn wait_idle(client: &Client) {
    wait_for("no active execution", Duration::from_secs(30), || async {
        let s = get(client, "/api/v1/scheduler/status").await;
        (s["pending_executions"] == 0 && s["running_executions"] == 0).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_executions_and_history_count_what_the_scheduler_fired() {
    let c = Cluster::start(1, "").await;
    let client = c.client(1);
    // Phase 1: a task firing every second and one run by hand, both in a group nobody serves
    // (each run fails at once: no executor).
    let every = json!({"name": "every-second", "cron_expression": "* * * * * *", "executor": "nobody", "max_retry": 0});
    post(&client, "/api/v1/tasks", every).await;
    post(&client, "/api/v1/tasks", later("by-hand", 2099, "nobody", "parallel")).await;
    for _ in 0..2 {
        post(&client, "/api/v1/tasks/by-hand/trigger", json!({})).await;
    }

    // Phase 2: the leader's history gets a minute with fires as soon as it fires.
    let minute = wait_for("a history minute with fires", Duration::from_secs(20), || async {
        let s = get(&client, "/api/v1/scheduler/status").await;
        s["history"].as_array().and_then(|h| h.last().cloned()).filter(|m| m["fires"].as_u64() > Some(0))
    })
    .await;
    assert!(minute["minute"].as_str().unwrap().ends_with(":00Z"), "{minute}");
    assert!(minute["p99_ms"].as_u64().unwrap() >= minute["p50_ms"].as_u64().unwrap(), "{minute}");

    // Phase 3: after a few fires, pause the task and let every run end, so the counts hold still.
    wait_for("four fires", Duration::from_secs(20), || async {
        let page = get(&client, "/api/v1/executions?task_id=every-second&page_size=1").await;
        (page["total"].as_u64() >= Some(4)).then_some(())
    })
    .await;
    post(&client, "/api/v1/tasks/every-second/pause", json!({})).await;
    wait_idle(&client).await;

    // Phase 4: the cluster's statistics are the two tasks' together; the last hour holds the
    // fires and missed slots.
    let a = get(&client, "/api/v1/tasks/every-second/stats").await["windows"]["24h"].clone();
    let b = get(&client, "/api/v1/tasks/by-hand/stats").await["windows"]["24h"].clone();
    let all = get(&client, "/api/v1/stats").await;
    let w = &all["windows"]["24h"];
    let sum = |k: &str| a[k].as_u64().unwrap() + b[k].as_u64().unwrap();
    for k in ["total", "failed", "cancelled", "missed", "on_time", "late"] {
        assert_eq!(w[k].as_u64().unwrap(), sum(k), "{k}: {all}");
    }
    assert_eq!(b["failed"], 2, "{b}");
    assert_eq!(all["last_hour"]["fires"].as_u64().unwrap(), sum("on_time") + sum("late"), "{all}");
    assert_eq!(all["last_hour"]["missed"], w["missed"], "{all}");
    assert_eq!(all["windows"]["7d"]["total"], w["total"]);
    assert!(all.get("task_id").is_none() && !all["daily"].as_array().unwrap().is_empty(), "{all}");

    // Phase 5: executions by trigger, and by slot time (`from` inclusive, `to` exclusive).
    let manual = get(&client, "/api/v1/executions?trigger=manual").await;
    assert_eq!((manual["total"].as_u64(), manual["total_capped"].as_bool()), (Some(2), Some(false)));
    assert!(manual["items"].as_array().unwrap().iter().all(|e| e["trigger"] == "manual" && e["task_id"] == 2));
    assert_eq!(get(&client, "/api/v1/executions?task_id=by-hand&trigger=schedule").await["total"], 0);
    // One record per slot: every record of the every-second task has a slot of its own.
    let fired = get(&client, "/api/v1/executions?task_id=every-second&page_size=500").await;
    let mut slots: Vec<String> =
        fired["items"].as_array().unwrap().iter().map(|e| e["scheduled_time"].as_str().unwrap().to_string()).collect();
    slots.sort();
    assert!(slots.len() >= 4, "{fired}");
    let path = format!("/api/v1/executions?task_id=every-second&from={}&to={}", slots[1], slots[3]);
    let window = get(&client, &path).await;
    let got: Vec<&str> =
        window["items"].as_array().unwrap().iter().map(|e| e["scheduled_time"].as_str().unwrap()).collect();
    assert_eq!(got, [slots[2].as_str(), slots[1].as_str()], "newest first: {window}");
    assert_eq!((window["total"].as_u64(), window["total_capped"].as_bool()), (Some(2), Some(false)));
    let after = get(&client, "/api/v1/executions?from=2099-01-01T00:00:00Z").await;
    assert_eq!(after["total"], 0);
    let plain = get(&client, "/api/v1/executions?task_id=by-hand").await;
    assert_eq!((plain["total"].as_u64(), plain["total_capped"].as_bool()), (Some(2), Some(false)));
}
