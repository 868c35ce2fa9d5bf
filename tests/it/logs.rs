//! The logs (issue 19, point 6): `--log-format json` writes one JSON object per line; every API
//! write is an INFO access line naming who, what, how it ended, how long it took and its request
//! id, reads only at DEBUG; the request id of a write sent to a follower is in the follower's
//! line, in the leader's and at apply.
//!
//! Nodes write stderr to `stderr.log` in their directory (the test kit); the tests parse it.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::auth::{client, start_first_node, wait_three_voters, SECRET};
use crate::common::{send, wait_for, Cluster};

/// INFO and up, plus apply's DEBUG line naming each client write's request id.
const FILTER: &str = "info,openraft=warn,cronraft_raft::state=debug";

/// Every line of node `id`'s stderr as JSON; a line that is not JSON fails the test.
fn json_lines(cluster: &Cluster, id: u64) -> Vec<Value> {
    let log = cluster.log(id);
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("node {id}: not a JSON line ({e}): {l}")))
        .collect()
}

/// Node `id`'s access lines for request id `request_id`.
fn access_lines(cluster: &Cluster, id: u64, request_id: &str) -> Vec<Value> {
    json_lines(cluster, id)
        .into_iter()
        .filter(|l| l["target"] == "cronraft::access" && l["request_id"] == request_id)
        .collect()
}

/// Waits until node `id` has an access line for `request_id`, and returns it.
async fn wait_access_line(cluster: &Cluster, id: u64, request_id: &str) -> Value {
    wait_for(&format!("node {id}'s access line for {request_id}"), Duration::from_secs(10), || async {
        access_lines(cluster, id, request_id).into_iter().next()
    })
    .await
}

/// Waits until node `id` logged apply's line for the write `request_id`.
async fn wait_apply_line(cluster: &Cluster, id: u64, request_id: &str) -> Value {
    wait_for(&format!("node {id}'s apply line for {request_id}"), Duration::from_secs(10), || async {
        json_lines(cluster, id)
            .into_iter()
            .find(|l| l["message"] == "applying a client write" && l["request_id"] == request_id)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_is_one_json_access_line_with_its_request_id_and_a_read_is_not_at_info() {
    // Phase 1: one node logging JSON.
    let mut cluster = Cluster::new("");
    cluster.args = vec!["--log-format".into(), "json".into()];
    cluster.log_filter = Some(FILTER.into());
    cluster.boot(1).await;
    let c = cluster.client(1);

    // Phase 2: a write without an Idempotency-Key: the node makes up its request id and echoes
    // it; the access line carries it with the route template, the path, the status and the
    // caller (auth is off: anonymous).
    let body = r#"{"name":"nightly","cron_expression":"0 0 2 * * *"}"#;
    let created = send(&c, Method::POST, "/api/v1/tasks", Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.idempotency_key.expect("the write's request id is echoed");
    let line = wait_access_line(&cluster, 1, &id).await;
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["method"], "POST", "{line}");
    assert_eq!(line["route"], "/api/v1/tasks", "{line}");
    assert_eq!(line["path"], "/api/v1/tasks", "{line}");
    assert_eq!(line["status"], 201, "{line}");
    assert_eq!(line["principal"], "anonymous", "{line}");
    assert_eq!(line["forwarded"], false, "{line}");
    assert!(line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "a latency in ms: {line}");
    // The same id on the request's span (every line logged while handling it), and at apply.
    assert_eq!(line["span"]["request_id"], id.as_str(), "{line}");
    wait_apply_line(&cluster, 1, &id).await;

    // Phase 3: a read (its own x-request-id) and then a second write with the client's key. The
    // write's line is logged after the read's would have been, so once it is there the read has
    // had its chance to be logged at INFO, and was not.
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/tasks/nightly", cluster.nodes[&1].url());
    let read = http.get(&url).header("x-request-id", "read-probe-1").send().await.expect("read");
    assert_eq!(read.status().as_u16(), 200);
    let paused = c.raw(Method::POST, "/api/v1/tasks/nightly/pause", None, Some("pause-key-1")).await.unwrap();
    assert_eq!(paused.status, 200, "{}", paused.body);
    let line = wait_access_line(&cluster, 1, "pause-key-1").await;
    assert_eq!(line["route"], "/api/v1/tasks/{id}/pause", "the template, not the name: {line}");
    assert_eq!(line["path"], "/api/v1/tasks/nightly/pause", "{line}");
    assert!(access_lines(&cluster, 1, "read-probe-1").is_empty(), "a read is logged at DEBUG only");
    // A refused write is logged too, with its status.
    let refused = c.raw(Method::POST, "/api/v1/tasks", Some(body.as_bytes().to_vec()), Some("dup-1")).await.unwrap();
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(wait_access_line(&cluster, 1, "dup-1").await["status"], 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_sent_to_a_follower_shows_its_request_id_on_the_follower_the_leader_and_at_apply() {
    // Phase 1: three nodes with auth on, logging JSON.
    let mut cluster = Cluster::new("");
    cluster.args = vec!["--log-format".into(), "json".into()];
    cluster.log_filter = Some(FILTER.into());
    let admin = start_first_node(&mut cluster, SECRET, false).await;
    let join = cluster.nodes[&1].url();
    cluster.spawn(2, Some(&join), None);
    cluster.spawn(3, Some(&join), None);
    let urls: Vec<String> = (1..=3).map(|id| cluster.nodes[&id].url()).collect();
    let leader = wait_three_voters(&urls, &admin).await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");

    // Phase 2: a write to the follower with the admin token, and no key of its own.
    let c = client(&cluster.nodes[&follower].url(), Some(&admin));
    let body = r#"{"name":"forwarded","cron_expression":"0 0 3 * * *"}"#;
    let created = send(&c, Method::POST, "/api/v1/tasks", Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.idempotency_key.expect("the write's request id is echoed");

    // Phase 3: the follower's line (as received) and the leader's (as forwarded) carry the same
    // id, the caller's token name and role, and the status; the leader applied it under that id.
    let on_follower = wait_access_line(&cluster, follower, &id).await;
    let on_leader = wait_access_line(&cluster, leader, &id).await;
    for (line, forwarded) in [(&on_follower, false), (&on_leader, true)] {
        assert_eq!(line["status"], 201, "{line}");
        assert_eq!(line["principal"], "admin", "{line}");
        assert_eq!(line["role"], "admin", "{line}");
        assert_eq!(line["route"], "/api/v1/tasks", "{line}");
        assert_eq!(line["forwarded"], forwarded, "{line}");
    }
    assert_eq!(on_leader["span"]["request_id"], id.as_str(), "the leader's span carries the id: {on_leader}");
    // Every node applies the entry, and names the id when it does.
    for node in 1..=3 {
        wait_apply_line(&cluster, node, &id).await;
    }

    // Phase 4: the token itself is in no node's log.
    for node in 1..=3 {
        assert!(!cluster.log(node).contains(&admin), "node {node} logged the token");
    }
}
