//! Dispatch end to end: real nodes, test executors in this process (see `common::executor`).
//!
//! What is shown here: the balance strategies' distributions over hundreds of dispatches,
//! health checks ejecting and restoring an instance, failover away from an unreachable
//! instance, retries with backoff, timeouts followed by a stop request, the stop endpoint, a
//! callback through a follower, and a leader killed while executions run.

use crate::common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::executor::{register, Behavior, TestExecutor};
use common::{wait_for, Cluster};
use serde_json::{json, Value};

/// Health checks every 300 ms so ejection and recovery take about a second; no embedded agent.
const CONFIG: &str =
    "[agent]\nenabled = false\n[executors]\nhealth_check_interval_ms = 300\nhealth_check_timeout_ms = 500\n";

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().unwrap()
}

/// A read. A 503 (no leader or no quorum for a moment: an election on a loaded machine) is the
/// API's "try again", so it is polled for up to 15 s before the test fails on it.
async fn get(node: &str, path: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let resp = http().get(format!("{node}{path}")).send().await.unwrap();
        if resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        return resp.json().await.unwrap();
    }
}

async fn post(node: &str, path: &str, body: Value) -> (u16, Value) {
    let resp = http().post(format!("{node}{path}")).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn create_task(node: &str, body: Value) -> u64 {
    let (status, v) = post(node, "/api/v1/tasks", body).await;
    assert_eq!(status, 201, "{v}");
    v["id"].as_u64().unwrap()
}

async fn trigger(node: &str, task: u64) -> u64 {
    let (status, v) = post(node, &format!("/api/v1/tasks/{task}/trigger"), json!({})).await;
    assert!(status == 200 || status == 201, "{status} {v}");
    v["id"].as_u64().unwrap()
}

async fn execution(node: &str, id: u64) -> Value {
    get(node, &format!("/api/v1/executions/{id}")).await
}

/// Waits until execution `id` has status `status`, and returns it.
async fn wait_status(node: &str, id: u64, status: &str, limit: Duration) -> Value {
    wait_for(&format!("execution {id} to be {status}"), limit, || async {
        let e = execution(node, id).await;
        (e["status"] == status).then_some(e)
    })
    .await
}

/// A task in `group` that does not fire during the test (once, in 2099), for manual triggers.
fn manual_task(name: &str, group: &str, strategy: &str) -> Value {
    json!({"name": name, "cron_expression": "0 0 0 1 1 * 2099", "executor": group, "load_balance_strategy": strategy,
           "max_retry": 0, "timeout_seconds": 60})
}

#[tokio::test(flavor = "multi_thread")]
async fn strategies_distribute_as_designed_over_300_dispatches_each() {
    let c = Cluster::start(3, CONFIG).await;
    let node = c.nodes[&2].url(); // a follower for some requests: writes are forwarded
                                  // Phase 1: three instances weighted 1:2:3 in one group.
    let mut executors = Vec::new();
    let mut ids = Vec::new();
    for (i, weight) in [1, 2, 3].into_iter().enumerate() {
        let x = TestExecutor::start(Behavior::Succeed { after_ms: 10 }).await;
        ids.push(register(&node, &x.registration("dist", &format!("d{i}"), weight)).await);
        executors.push(x);
    }
    // Phase 2: 300 manual runs per strategy, 20 at a time.
    let strategies = ["round_robin", "weighted_round_robin", "random", "sticky", "least_loaded"];
    let mut runs: HashMap<&str, Vec<u64>> = HashMap::new();
    for s in strategies {
        let task = create_task(&node, manual_task(s, "dist", s)).await;
        for _ in 0..15 {
            let batch = futures::future::join_all((0..20).map(|_| trigger(&node, task))).await;
            runs.entry(s).or_default().extend(batch);
        }
    }
    // Phase 3: every run succeeds; count where each strategy's runs went.
    let leader = c.nodes[&c.wait_leader().await].url();
    let mut by: HashMap<&str, BTreeMap<u64, usize>> = HashMap::new();
    for s in strategies {
        for id in &runs[s] {
            let e = wait_status(&leader, *id, "success", Duration::from_secs(60)).await;
            let attempts = e["attempts"].as_array().unwrap();
            assert_eq!(attempts.len(), 1, "{s}: {e}");
            *by.entry(s).or_default().entry(attempts[0]["executor_id"].as_u64().unwrap()).or_default() += 1;
        }
    }
    let count = |s: &str, i: usize| by[s].get(&ids[i]).copied().unwrap_or(0);
    assert_eq!((0..3).map(|i| count("round_robin", i)).collect::<Vec<_>>(), vec![100, 100, 100]);
    assert_eq!((0..3).map(|i| count("weighted_round_robin", i)).collect::<Vec<_>>(), vec![50, 100, 150]);
    assert!((0..3).all(|i| count("random", i) >= 50), "random: {:?}", by["random"]);
    assert_eq!(by["sticky"].len(), 1, "sticky moved: {:?}", by["sticky"]);
    assert!((0..3).all(|i| count("least_loaded", i) >= 45), "least_loaded: {:?}", by["least_loaded"]);
    // Every delivery was one attempt of one committed execution. Dispatch is at-least-once: a
    // new leader (an election on a loaded machine) sends its running attempts again, and the
    // executor deduplicates them by (execution, attempt), so distinct pairs are what must match.
    let committed: HashSet<u64> = runs.values().flatten().copied().collect();
    let delivered: HashSet<(u64, u32)> =
        executors.iter().flat_map(|x| x.executes()).map(|r| (r.execution_id, r.attempt)).collect();
    assert!(delivered.iter().all(|(id, _)| committed.contains(id)), "a delivery without a committed execution");
    assert_eq!(delivered.len(), 1_500);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_failover_retries_timeouts_stops_and_callbacks_through_a_follower() {
    let c = Cluster::start(3, CONFIG).await;
    let leader_id = c.wait_leader().await;
    let follower_id = *c.nodes.keys().find(|id| **id != leader_id).unwrap();
    let node = c.nodes[&leader_id].url();
    let follower = c.nodes[&follower_id].url();

    // Phase 1: a failing health endpoint ejects the instance after 3 checks; 2 good ones restore it.
    let h = TestExecutor::start(Behavior::Succeed { after_ms: 0 }).await;
    let hid = register(&node, &h.registration("h", "h1", 1)).await;
    let before = h.seen.health_checks.load(Ordering::Relaxed);
    h.seen.healthy.store(false, Ordering::Relaxed);
    wait_for("h1 unhealthy", Duration::from_secs(10), || async {
        let x = get(&node, &format!("/api/v1/executors/{hid}")).await;
        (x["is_healthy"] == false).then_some(())
    })
    .await;
    let failed_checks = h.seen.health_checks.load(Ordering::Relaxed) - before;
    assert!(failed_checks >= 3, "ejected after {failed_checks} failed checks");
    let x = get(&node, &format!("/api/v1/executors/{hid}")).await;
    assert!(x["health_check_failures"].as_u64().unwrap() >= 3, "{x}");
    let before = h.seen.health_checks.load(Ordering::Relaxed);
    h.seen.healthy.store(true, Ordering::Relaxed);
    wait_for("h1 healthy again", Duration::from_secs(10), || async {
        let x = get(&node, &format!("/api/v1/executors/{hid}")).await;
        (x["is_healthy"] == true).then_some(())
    })
    .await;
    assert!(h.seen.health_checks.load(Ordering::Relaxed) - before >= 2);

    // Phase 2: an unreachable instance is ejected at the first dispatch and the run fails over.
    let dead_url = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let dead = json!({"name": "fo", "instance_id": "dead", "base_url": dead_url});
    let dead_id = register(&node, &dead).await;
    let live = TestExecutor::start(Behavior::Succeed { after_ms: 0 }).await;
    register(&node, &live.registration("fo", "live", 1)).await;
    let fo = create_task(&node, manual_task("fo", "fo", "round_robin")).await;
    let mut failed_over = 0;
    for _ in 0..4 {
        let id = trigger(&node, fo).await;
        let e = wait_status(&node, id, "success", Duration::from_secs(20)).await;
        let attempts = e["attempts"].as_array().unwrap();
        if attempts.len() == 2 {
            assert!(attempts[0]["error"].as_str().unwrap().contains("cannot connect"), "{e}");
            assert_eq!(e["retry_count"], 0, "a failover spends no retry: {e}");
            failed_over += 1;
        }
    }
    assert_eq!(failed_over, 1, "only the first dispatch to the dead instance fails over");
    assert_eq!(get(&node, &format!("/api/v1/executors/{dead_id}")).await["is_healthy"], false);

    // Phase 3: a failing run is retried max_retry times, with a doubling backoff.
    let f = TestExecutor::start(Behavior::Fail).await;
    register(&node, &f.registration("rt", "f1", 1)).await;
    let mut body = manual_task("rt", "rt", "round_robin");
    body["max_retry"] = json!(2);
    let rt = create_task(&node, body).await;
    let id = trigger(&node, rt).await;
    let e = wait_status(&node, id, "failed", Duration::from_secs(30)).await;
    assert_eq!((e["retry_count"].as_u64(), e["attempts"].as_array().unwrap().len()), (Some(2), 3), "{e}");
    let at: Vec<i64> = e["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| chrono::DateTime::parse_from_rfc3339(a["dispatched_at"].as_str().unwrap()).unwrap().timestamp_millis())
        .collect();
    assert!(at[1] - at[0] >= 1_000 && at[2] - at[1] >= 2_000, "backoff gaps: {at:?}");
    assert_eq!(f.executes().len(), 3);

    // Phase 4: no report within timeout_seconds → `timeout`, and the executor gets a stop request.
    let hang = TestExecutor::start(Behavior::Hang).await;
    register(&node, &hang.registration("hang", "hang1", 1)).await;
    let mut body = manual_task("to", "hang", "round_robin");
    body["timeout_seconds"] = json!(1);
    let to = create_task(&node, body).await;
    let id = trigger(&node, to).await;
    wait_status(&node, id, "timeout", Duration::from_secs(20)).await;
    wait_for("stop request after the timeout", Duration::from_secs(10), || async {
        hang.stops().iter().any(|s| s.execution_id == id && s.reason == "timeout").then_some(())
    })
    .await;

    // Phase 5: POST /executions/{id}/stop (through a follower) → `cancelled`, and a stop request.
    let long = create_task(&node, manual_task("long", "hang", "round_robin")).await;
    let id = trigger(&node, long).await;
    wait_status(&node, id, "running", Duration::from_secs(20)).await;
    let (status, v) = post(&follower, &format!("/api/v1/executions/{id}/stop"), json!({})).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("cancelled")), "{v}");
    wait_for("stop request after the stop", Duration::from_secs(10), || async {
        hang.stops().iter().any(|s| s.execution_id == id && s.reason == "stopped").then_some(())
    })
    .await;

    // Phase 6: a callback that reaches only a follower is forwarded and recorded.
    let via = TestExecutor::start(Behavior::ReportVia(follower.clone())).await;
    register(&node, &via.registration("via", "via1", 1)).await;
    let vt = create_task(&node, manual_task("via", "via", "round_robin")).await;
    let id = trigger(&node, vt).await;
    let e = wait_status(&node, id, "success", Duration::from_secs(20)).await;
    assert_eq!(e["result"], json!({"by": "test-executor"}).to_string(), "{e}");
    // The record can be read before the follower's relayed 2xx reaches the executor (seen once in
    // a loaded `cargo test --workspace`): wait for the executor to count it.
    wait_for("the executor to get its callback's 2xx through the follower", Duration::from_secs(10), || async {
        (via.seen.reported.load(Ordering::Relaxed) == 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_killed_while_executions_run_finishes_each_once_and_delivers_each_slot_once() {
    let mut c = Cluster::start(3, CONFIG).await;
    let node = c.any_client();
    let urls: Vec<String> = c.nodes.values().map(|n| n.url()).collect();
    // Phase 1: two instances that take 1.5 s per run; a task every second.
    let xs = [
        TestExecutor::start(Behavior::Succeed { after_ms: 1_500 }).await,
        TestExecutor::start(Behavior::Succeed { after_ms: 1_500 }).await,
    ];
    for (i, x) in xs.iter().enumerate() {
        register(&urls[0], &x.registration("k", &format!("k{i}"), 1)).await;
    }
    let body = json!({"name": "tick", "cron_expression": "* * * * * *", "executor": "k", "max_retry": 3,
                      "timeout_seconds": 30});
    let task = create_task(&urls[0], body).await;
    // Phase 2: 8 s of runs, kill -9 the leader, 8 s more, then pause.
    tokio::time::sleep(Duration::from_secs(8)).await; // the schedule itself is the workload
    let old = c.wait_leader().await;
    c.kill(old);
    let new = c.wait_leader().await;
    assert_ne!(old, new);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let live = c.nodes[&new].url();
    let (status, _) = post(&live, &format!("/api/v1/tasks/{task}/pause"), json!({})).await;
    assert_eq!(status, 200);
    drop(node);
    // Phase 3: wait until nothing is active, then check records and deliveries.
    let records = wait_for("every execution to end", Duration::from_secs(90), || async {
        let page = get(&live, &format!("/api/v1/executions?task_id={task}&page_size=500")).await;
        let items = page["items"].as_array().unwrap().clone();
        items.iter().all(|e| e["status"] != "pending" && e["status"] != "running").then_some(items)
    })
    .await;
    let mut slots = HashSet::new();
    for e in &records {
        assert!(slots.insert(e["scheduled_time"].as_str().unwrap().to_string()), "slot recorded twice: {e}");
        assert_eq!(e["status"], "success", "{e}");
    }
    assert!(records.len() >= 12, "only {} slots", records.len());
    let mut delivered: HashMap<String, HashSet<u64>> = HashMap::new();
    for x in &xs {
        for d in x.executes() {
            delivered
                .entry(d.scheduled_time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .or_default()
                .insert(d.execution_id);
        }
    }
    for (slot, ids) in &delivered {
        assert_eq!(ids.len(), 1, "slot {slot} delivered under several execution ids: {ids:?}");
    }
    assert_eq!(delivered.len(), records.len(), "every recorded run was delivered");
}

/// Runs the `cronraft` binary as a client of `node`; returns stdout, failing on a non-zero exit.
fn cli(node: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cronraft"))
        .args(args)
        .env("CRONRAFT_NODE", node)
        .output()
        .expect("run cronraft");
    assert!(out.status.success(), "cronraft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_agent_runs_echo_hello_from_the_cli() {
    // Phase 1: one node as `cronraft serve` starts it by default: with the agent in group `local`.
    let mut c = Cluster::new("");
    c.agent = true;
    c.spawn(1, None, None);
    c.wait_voters(1).await;
    let node = c.nodes[&1].url();
    wait_for("the embedded agent to register", Duration::from_secs(20), || async {
        let v = get(&node, "/api/v1/executors?name=local").await;
        (v["total"] == 1 && v["items"][0]["is_healthy"] == true).then_some(())
    })
    .await;
    // Phase 2: the README's flow, through the CLI.
    cli(&node, &["task", "create", "--name", "hello", "--cron", "*/5 * * * * *", "--command", "echo hello"]);
    let runs = wait_for("two successful runs of hello", Duration::from_secs(30), || async {
        let out = cli(&node, &["execution", "list", "--task", "hello", "--status", "success", "--json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        (v["items"].as_array().unwrap().len() >= 2).then_some(v)
    })
    .await;
    for e in runs["items"].as_array().unwrap() {
        assert!(e["logs"].as_str().unwrap().contains("hello"), "{e}");
        assert_eq!(e["trigger"], "schedule");
        let slot = chrono::DateTime::parse_from_rfc3339(e["scheduled_time"].as_str().unwrap()).unwrap();
        assert_eq!(slot.timestamp() % 5, 0, "a */5 slot: {e}");
    }
    // Phase 3: the table for people shows the run.
    let table = cli(&node, &["execution", "list", "--task", "hello"]);
    assert!(table.contains("success"), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_purges_records_beyond_the_per_task_maximum_and_keeps_the_statistics() {
    // Phase 1: a node that keeps 3 records per task and purges every 300 ms.
    let config = "[agent]\nenabled = false\n[retention]\nper_task_max = 3\ninterval_ms = 300\n";
    let c = Cluster::start(1, config).await;
    let node = c.nodes[&1].url();
    let task = create_task(&node, manual_task("kept", "nobody", "round_robin")).await;
    // Phase 2: six runs, each stopped (final records).
    for _ in 0..6 {
        let id = trigger(&node, task).await;
        let (status, v) = post(&node, &format!("/api/v1/executions/{id}/stop"), json!({})).await;
        assert!(status == 200 || v["error"]["code"] == "execution_finished", "{status} {v}");
    }
    // Phase 3: the oldest three go; the rollups still count all six.
    let left = wait_for("retention to purge down to 3 records", Duration::from_secs(20), || async {
        let page = get(&node, &format!("/api/v1/executions?task_id={task}&page_size=50")).await;
        (page["total"] == 3).then_some(page)
    })
    .await;
    let ids: Vec<u64> = left["items"].as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| *id >= 4), "the newest records stay: {ids:?}");
    let stats = get(&node, &format!("/api/v1/tasks/{task}/stats")).await;
    let w = &stats["windows"]["24h"];
    assert_eq!(w["cancelled"].as_u64().unwrap() + w["failed"].as_u64().unwrap(), 6, "{stats}");
}
