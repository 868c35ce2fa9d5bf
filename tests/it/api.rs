//! The REST surface against a real node: every endpoint's bad-input paths answer with the JSON
//! error format and a stable code, and none of them changes state.

use crate::common;

use common::{task, Cluster};
use cronraft_api::client::{Client, RawResponse};
use cronraft_api::context::Consistency;
use cronraft_api::types::{ErrorBody, TaskInput};
use reqwest::Method;

async fn send(client: &Client, method: Method, path: &str, body: Option<&str>, key: Option<&str>) -> RawResponse {
    client.raw(method, path, body.map(|b| b.as_bytes().to_vec()), key).await.expect("request")
}

/// Every task in every status, as (id, name, status, version).
async fn all_tasks(client: &Client) -> Vec<(u64, String, String, u64)> {
    let mut out = Vec::new();
    for status in ["active", "paused", "deleted"] {
        for t in client.list_tasks(Some(status), 1, 500, Consistency::Linearizable).await.unwrap().items {
            out.push((t.id, t.name, t.status.as_str().to_string(), t.version));
        }
    }
    out
}

/// Asserts the status and the machine code of an error answer.
fn assert_error(resp: &RawResponse, status: u16, code: &str, case: &str) {
    assert_eq!(resp.status, status, "{case}: {}", resp.body);
    let body: ErrorBody =
        serde_json::from_str(&resp.body).unwrap_or_else(|e| panic!("{case}: not an error body ({e}): {}", resp.body));
    assert_eq!(body.error.code, code, "{case}: {}", resp.body);
    assert!(!body.error.message.is_empty(), "{case}: the message says what to fix");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_answers_bad_input_with_a_coded_json_error() {
    let c = Cluster::start(1, "").await;
    let client = c.client(1);
    let existing = client.create_task(&task("existing"), None).await.unwrap();
    let deleted = client.create_task(&task("gone"), None).await.unwrap();
    client.delete_task(&deleted.id.to_string(), None).await.unwrap();
    let tasks_before = all_tasks(&client).await;

    let huge =
        format!(r#"{{"name":"big","cron_expression":"@daily","description":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let big_params =
        format!(r#"{{"name":"p","cron_expression":"@daily","parameters":{{"x":"{}"}}}}"#, "y".repeat(70_000));
    // Over the router's 8 KiB limit on the request target, under hyper's own (64 KiB).
    let long_target = format!("/api/v1/tasks/{}", "a".repeat(9000));
    // (method, path, body, status, code)
    let cases: Vec<(Method, &str, Option<&str>, u16, &str)> = vec![
        // POST /tasks
        (Method::POST, "/api/v1/tasks", Some(r#"{"name":"#), 400, "malformed_json"),
        (Method::POST, "/api/v1/tasks", Some(""), 400, "malformed_json"),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(r#"{"name":"a","cron_expression":"@daily","colour":1}"#),
            422,
            "invalid_field",
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(r#"{"name":"a","cron_expression":"@daily","execution_mode":"sometimes"}"#),
            422,
            "invalid_field",
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(r#"{"name":"a","cron_expression":"@daily","max_retry":"3"}"#),
            422,
            "invalid_field",
        ),
        (Method::POST, "/api/v1/tasks", Some(r#"{"cron_expression":"@daily"}"#), 422, "missing_field"),
        (Method::POST, "/api/v1/tasks", Some(r#"{"name":"a"}"#), 422, "missing_field"),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(r#"{"name":"a","cron_expression":"61 * * * * *"}"#),
            422,
            "invalid_cron_expression",
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(r#"{"name":"a","cron_expression":"* * *"}"#),
            422,
            "invalid_cron_expression",
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(r#"{"name":"a","cron_expression":"@daily","timezone":"Mars/Base"}"#),
            422,
            "invalid_timezone",
        ),
        (Method::POST, "/api/v1/tasks", Some(r#"{"name":"123","cron_expression":"@daily"}"#), 422, "invalid_name"),
        (Method::POST, "/api/v1/tasks", Some(r#"{"name":"","cron_expression":"@daily"}"#), 422, "invalid_name"),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(r#"{"name":"a","cron_expression":"@daily","parameters":[1]}"#),
            422,
            "invalid_parameters",
        ),
        (Method::POST, "/api/v1/tasks", Some(big_params.as_str()), 422, "parameters_too_large"),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(r#"{"name":"a","cron_expression":"@daily","timeout_seconds":0}"#),
            422,
            "invalid_field",
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(r#"{"name":"a","cron_expression":"@daily","version":3}"#),
            422,
            "invalid_field",
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(r#"{"name":"existing","cron_expression":"@daily"}"#),
            409,
            "task_name_taken",
        ),
        // GET /tasks
        (Method::GET, "/api/v1/tasks?status=sleeping", None, 400, "invalid_status"),
        (Method::GET, "/api/v1/tasks?page=0", None, 400, "invalid_page"),
        // Found by Schemathesis: a page past the documented maximum was answered 200.
        (Method::GET, "/api/v1/tasks?page=9223372036854775808", None, 400, "invalid_page"),
        (Method::GET, "/api/v1/tasks?page_size=501", None, 400, "invalid_page_size"),
        (Method::GET, "/api/v1/tasks?page_size=x", None, 400, "invalid_query"),
        (Method::GET, "/api/v1/tasks?colour=red", None, 400, "invalid_query"),
        (Method::GET, "/api/v1/tasks?consistency=eventual", None, 400, "invalid_query"),
        // /tasks/{id}
        (Method::GET, "/api/v1/tasks/999", None, 404, "task_not_found"),
        (Method::GET, "/api/v1/tasks/no-such-name", None, 404, "task_not_found"),
        (Method::PUT, "/api/v1/tasks/999", Some(r#"{"max_retry":1}"#), 404, "task_not_found"),
        (Method::PUT, "/api/v1/tasks/existing", Some("{}"), 422, "empty_update"),
        (Method::PUT, "/api/v1/tasks/existing", Some(r#"{"max_retry":1,"version":99}"#), 409, "version_conflict"),
        (Method::PUT, "/api/v1/tasks/existing", Some(r#"{"cron_expression":"bad"}"#), 422, "invalid_cron_expression"),
        (Method::PUT, "/api/v1/tasks/existing", Some(r#"{"name":"x/y"}"#), 422, "invalid_name"),
        (Method::DELETE, "/api/v1/tasks/999", None, 404, "task_not_found"),
        (Method::POST, "/api/v1/tasks/999/pause", None, 404, "task_not_found"),
        (Method::POST, "/api/v1/tasks/no-such-name/resume", None, 404, "task_not_found"),
        // schedule preview
        (Method::GET, "/api/v1/schedule/preview", None, 400, "missing_field"),
        (Method::GET, "/api/v1/schedule/preview?cron_expression=bad", None, 422, "invalid_cron_expression"),
        (Method::GET, "/api/v1/schedule/preview?cron_expression=%40daily&count=0", None, 400, "invalid_count"),
        (Method::GET, "/api/v1/schedule/preview?cron_expression=%40daily&count=5000", None, 400, "invalid_count"),
        (Method::GET, "/api/v1/schedule/preview?cron_expression=%40daily&after=yesterday", None, 400, "invalid_time"),
        (
            Method::GET,
            "/api/v1/schedule/preview?cron_expression=%40daily&timezone=Nowhere",
            None,
            422,
            "invalid_timezone",
        ),
        // cluster admin
        (
            Method::POST,
            "/api/v1/cluster/nodes",
            Some(r#"{"id":5,"http_addr":"nowhere","raft_addr":"127.0.0.1:1"}"#),
            422,
            "invalid_address",
        ),
        (
            Method::POST,
            "/api/v1/cluster/nodes",
            Some(r#"{"id":5,"http_addr":"node5.lan:7340","raft_addr":"0.0.0.0:7341"}"#),
            422,
            "invalid_address",
        ),
        (Method::POST, "/api/v1/cluster/nodes", Some(r#"{"id":5}"#), 422, "invalid_field"),
        (
            Method::POST,
            "/api/v1/cluster/nodes",
            Some(r#"{"id":1,"http_addr":"127.0.0.1:1","raft_addr":"127.0.0.1:2"}"#),
            409,
            "node_id_taken",
        ),
        (Method::POST, "/api/v1/cluster/nodes/x/promote", None, 400, "invalid_node_id"),
        (Method::POST, "/api/v1/cluster/nodes/9/promote", None, 404, "node_not_found"),
        (Method::POST, "/api/v1/cluster/nodes/1/promote", None, 409, "already_voter"),
        (Method::DELETE, "/api/v1/cluster/nodes/9", None, 404, "node_not_found"),
        (Method::DELETE, "/api/v1/cluster/nodes/1", None, 409, "last_voter"),
        // executions and manual triggers
        (Method::GET, "/api/v1/executions?status=sleeping", None, 400, "invalid_status"),
        (Method::GET, "/api/v1/executions?page=0", None, 400, "invalid_page"),
        (Method::GET, "/api/v1/executions?page_size=501", None, 400, "invalid_page_size"),
        (Method::GET, "/api/v1/executions?task_id=no-such-name", None, 404, "task_not_found"),
        (Method::GET, "/api/v1/executions?colour=red", None, 400, "invalid_query"),
        (Method::GET, "/api/v1/executions/abc", None, 400, "invalid_execution_id"),
        (Method::GET, "/api/v1/executions/999999", None, 404, "execution_not_found"),
        (Method::POST, "/api/v1/tasks/999/trigger", None, 404, "task_not_found"),
        (Method::POST, "/api/v1/tasks/existing/trigger", Some(r#"{"parameters":[1]}"#), 422, "invalid_parameters"),
        (Method::POST, "/api/v1/tasks/existing/trigger", Some(r#"{"colour":1}"#), 422, "invalid_field"),
        (Method::POST, "/api/v1/tasks/existing/trigger", Some(r#"{"parameters":"#), 400, "malformed_json"),
        // routing
        (Method::GET, "/api/v1/nothing-here", None, 404, "not_found"),
        (Method::PATCH, "/api/v1/tasks", Some("{}"), 405, "method_not_allowed"),
        (Method::DELETE, "/health", None, 405, "method_not_allowed"),
        // Found by Schemathesis: TRACE was taken for a write and refused for its Idempotency-Key.
        (Method::TRACE, "/api/v1/tasks", None, 405, "method_not_allowed"),
        // The framework's own rejections answer in the same format (they were axum's plain text).
        (Method::GET, "/api/v1/tasks/%FF", None, 400, "invalid_path"),
        (Method::POST, "/api/v1/tasks/%FF%FE/trigger", None, 400, "invalid_path"),
        (Method::GET, "/api/v1/executors/%C3%28", None, 400, "invalid_path"),
        (Method::GET, "/api/v1/tasks?page=%FF", None, 400, "invalid_query"),
        (Method::GET, &long_target, None, 414, "uri_too_long"),
    ];
    for (method, path, body, status, code) in cases {
        let case = format!("{method} {}", &path[..path.len().min(60)]);
        let resp = send(&client, method, path, body, None).await;
        assert_error(&resp, status, code, &case);
    }

    // An oversized body: 413. Sent on its own client, because the server answers without
    // reading the whole body and then closes that connection.
    let resp = send(&c.client(1), Method::POST, "/api/v1/tasks", Some(huge.as_str()), None).await;
    assert_error(&resp, 413, "body_too_large", "oversized body");

    // Writes on a deleted task.
    let path = format!("/api/v1/tasks/{}/resume", deleted.id);
    assert_error(&send(&client, Method::POST, &path, None, None).await, 409, "task_deleted", "resume deleted");
    let path = format!("/api/v1/tasks/{}", deleted.id);
    assert_error(
        &send(&client, Method::PUT, &path, Some(r#"{"max_retry":1}"#), None).await,
        409,
        "task_deleted",
        "update deleted",
    );
    let path = format!("/api/v1/tasks/{}/trigger", deleted.id);
    assert_error(&send(&client, Method::POST, &path, None, None).await, 409, "task_deleted", "trigger deleted");

    // Headers: a bad Idempotency-Key, a wrong content type.
    let key = "x".repeat(200);
    let resp =
        send(&client, Method::POST, "/api/v1/tasks", Some(r#"{"name":"k","cron_expression":"@daily"}"#), Some(&key))
            .await;
    assert_error(&resp, 400, "invalid_idempotency_key", "long key");
    // Found by Schemathesis: a method a route does not have is 405 before the key is looked at.
    let resp = send(&client, Method::POST, "/api/v1/executors/0/status", Some("{}"), Some(&key)).await;
    assert_error(&resp, 405, "method_not_allowed", "POST to a PUT route with a bad key");
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/tasks", c.nodes[&1].url()))
        .header("content-type", "text/plain")
        .body(r#"{"name":"k","cron_expression":"@daily"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    let body: ErrorBody = resp.json().await.expect("a JSON error body");
    assert_eq!(body.error.code, "unsupported_media_type");

    // Every answer names its request id: the client's, or a new one.
    let url = format!("{}/api/v1/tasks/999", c.nodes[&1].url());
    let resp = reqwest::Client::new().get(&url).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(resp.headers().get("x-request-id").unwrap(), "trace-me-42");
    let resp = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(resp.headers().get("x-request-id").map(|v| v.len()), Some(36), "a UUID when none is sent");

    // Regression (found by Schemathesis): adding a member at the leader's own addresses under
    // another id made the leader send AppendEntries to itself, and openraft's engine panicked,
    // stopping Raft on the node for good. It is refused before any change is proposed.
    let me = &c.nodes[&1];
    let body = format!(r#"{{"id":2,"http_addr":"{}","raft_addr":"{}"}}"#, me.http, me.raft);
    let resp = send(&client, Method::POST, "/api/v1/cluster/nodes", Some(body.as_str()), None).await;
    assert_error(&resp, 409, "address_taken", "a second id at the leader's addresses");
    let body = format!(r#"{{"id":2,"http_addr":"127.0.0.1:1","raft_addr":"{}"}}"#, me.raft);
    let resp = send(&client, Method::POST, "/api/v1/cluster/nodes", Some(body.as_str()), None).await;
    assert_error(&resp, 409, "address_taken", "the leader's raft address alone");
    let health = reqwest::get(format!("{}/health", me.url())).await.unwrap();
    assert_eq!(health.status().as_u16(), 200, "Raft still runs");

    // Nothing above changed a task. (Refused writes are still log entries: each one's answer is
    // remembered under its request id, so the state digest does move.)
    assert_eq!(tasks_before, all_tasks(&client).await);
    let page = client.list_tasks(None, 1, 100, Consistency::Linearizable).await.unwrap();
    assert_eq!((page.total, page.items[0].id), (1, existing.id));
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_key_replays_the_first_answer_and_refuses_reuse() {
    let c = Cluster::start(1, "").await;
    let client = c.client(1);
    let body = r#"{"name":"once","cron_expression":"@hourly"}"#;

    // Phase 1: the same key and body: the same 201 answer, one task.
    let first = send(&client, Method::POST, "/api/v1/tasks", Some(body), Some("key-1")).await;
    let again = send(&client, Method::POST, "/api/v1/tasks", Some(body), Some("key-1")).await;
    assert_eq!((first.status, again.status), (201, 201));
    assert_eq!(first.idempotency_key.as_deref(), Some("key-1"));
    let a: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    let b: serde_json::Value = serde_json::from_str(&again.body).unwrap();
    assert_eq!(a["id"], b["id"]);

    // Phase 2: the same key with another command is refused, and changes nothing.
    let other = send(
        &client,
        Method::POST,
        "/api/v1/tasks",
        Some(r#"{"name":"twice","cron_expression":"@hourly"}"#),
        Some("key-1"),
    )
    .await;
    assert_error(&other, 422, "idempotency_key_reused", "reused key");

    // Phase 3: a PUT retried with its key is answered identically (the patch is what is replayed).
    let put = |key| send(&client, Method::PUT, "/api/v1/tasks/once", Some(r#"{"max_retry":9}"#), Some(key));
    let p1 = put("key-2").await;
    let p2 = put("key-2").await;
    assert_eq!((p1.status, p2.status), (200, 200));
    assert_eq!(p1.body, p2.body);
    let t = client.get_task("once", Consistency::Linearizable).await.unwrap();
    assert_eq!((t.max_retry, t.version), (9, 2), "applied once");

    // Phase 4: a write without a key gets a generated one back, usable for a retry.
    let fresh =
        send(&client, Method::POST, "/api/v1/tasks", Some(r#"{"name":"gen","cron_expression":"@hourly"}"#), None).await;
    let key = fresh.idempotency_key.clone().expect("generated key");
    let replay =
        send(&client, Method::POST, "/api/v1/tasks", Some(r#"{"name":"gen","cron_expression":"@hourly"}"#), Some(&key))
            .await;
    assert_eq!(replay.status, 201);
    assert_eq!(client.list_tasks(None, 1, 10, Consistency::Linearizable).await.unwrap().total, 2);
}

/// Without a leader a write answers 503 `no_leader` (nothing proposed), and the same key
/// succeeds once a quorum is back; with a leader that cannot reach a quorum the outcome is
/// unknown (503 with the key to retry), and the retry applies at most once.
#[tokio::test(flavor = "multi_thread")]
async fn writes_without_quorum_say_whether_they_may_have_taken_effect() {
    let mut c = Cluster::start(3, "").await;
    let leader = c.wait_leader().await;
    let followers: Vec<u64> = c.running().into_iter().filter(|id| *id != leader).collect();
    let body = r#"{"name":"after-outage","cron_expression":"@hourly"}"#;

    // Phase 1: the leader alone: it proposes, cannot commit, and says the outcome is unknown.
    c.kill(followers[0]);
    c.kill(followers[1]);
    let resp = send(&c.client(leader), Method::POST, "/api/v1/tasks", Some(body), Some("outage-1")).await;
    assert_eq!(resp.status, 503, "{}", resp.body);
    let code = serde_json::from_str::<ErrorBody>(&resp.body).unwrap().error.code;
    assert!(code == "timeout" || code == "unavailable", "{code}: {}", resp.body);
    assert!(resp.body.contains("outage-1"), "the answer names the key to retry with: {}", resp.body);

    // Phase 2: one follower back: a quorum; the retry with the same key succeeds, applied once.
    c.restart(followers[0]);
    c.wait_leader().await;
    let retry = send(&c.any_client(), Method::POST, "/api/v1/tasks", Some(body), Some("outage-1")).await;
    assert_eq!(retry.status, 201, "{}", retry.body);
    let page = c.any_client().list_tasks(None, 1, 10, Consistency::Linearizable).await.unwrap();
    assert_eq!(page.total, 1);

    // Phase 3: a follower that knows no leader: nothing can be proposed: `no_leader`.
    let lone = followers[0];
    c.kill(leader);
    common::wait_for("the lone node to lose its leader", std::time::Duration::from_secs(30), || async {
        let v = c.view(lone).await?;
        (v.leader_id.is_none() || v.leader_id == Some(lone)).then_some(())
    })
    .await;
    let resp = send(
        &c.client(lone),
        Method::POST,
        "/api/v1/tasks",
        Some(r#"{"name":"nl","cron_expression":"@hourly"}"#),
        None,
    )
    .await;
    assert_eq!(resp.status, 503, "{}", resp.body);
    let code = serde_json::from_str::<ErrorBody>(&resp.body).unwrap().error.code;
    assert_eq!(code, "no_leader", "{}", resp.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_ready_metrics_preview_and_task_lifecycle() {
    let c = Cluster::start(1, "").await;
    let client = c.client(1);
    let url = c.nodes[&1].url();

    // Phase 1: operations endpoints.
    let health = reqwest::get(format!("{url}/health")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let ready = reqwest::get(format!("{url}/ready")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    client.create_task(&task("m"), None).await.unwrap();
    let metrics = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();
    for name in [
        "cronraft_raft_term",
        "cronraft_raft_leader_id",
        "cronraft_raft_last_log_index",
        "cronraft_raft_applied_index",
        "cronraft_raft_members",
        "cronraft_storage_syncs_total",
        "cronraft_http_requests_total",
        "cronraft_http_request_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "missing {name}");
    }
    assert!(metrics.contains(r#"route="/api/v1/tasks",status="201""#), "requests are counted by route template");
    assert!(c.metric(1, "cronraft_storage_syncs_total").await.unwrap() >= 1.0);

    // Phase 2: preview uses the schedule code: crontab day-of-week, zones, DST.
    let p =
        client.preview("0 9 * * 1-5", "Europe/Berlin", Some("2025-03-28T00:00:00Z".parse().unwrap()), 3).await.unwrap();
    let times: Vec<String> = p.times.iter().map(|t| t.to_rfc3339()).collect();
    // Fri 28 Mar (CET, +1), then Mon 31 Mar and Tue 1 Apr (CEST, +2).
    assert_eq!(times, ["2025-03-28T08:00:00+00:00", "2025-03-31T07:00:00+00:00", "2025-04-01T07:00:00+00:00"]);

    // Phase 3: lifecycle with next_fire_time and pagination.
    let t =
        client.create_task(&TaskInput { timezone: Some("Asia/Tokyo".into()), ..task("tokyo") }, None).await.unwrap();
    assert!(t.next_fire_time.is_some());
    let paused = client.pause_task("tokyo", None).await.unwrap();
    assert_eq!((paused.status.as_str(), paused.next_fire_time), ("paused", None));
    assert_eq!(client.list_tasks(Some("paused"), 1, 10, Consistency::Local).await.unwrap().total, 1);
    let resumed = client.resume_task(&t.id.to_string(), None).await.unwrap();
    assert_eq!(resumed.status.as_str(), "active");
    let updated = client
        .update_task("tokyo", &TaskInput { name: Some("kyoto".into()), ..Default::default() }, None)
        .await
        .unwrap();
    assert_eq!((updated.name.as_str(), updated.timezone.as_str()), ("kyoto", "Asia/Tokyo"));
    for i in 0..5 {
        client.create_task(&task(&format!("p{i}")), None).await.unwrap();
    }
    let page2 = client.list_tasks(None, 2, 3, Consistency::Linearizable).await.unwrap();
    assert_eq!((page2.total, page2.items.len(), page2.page), (7, 3, 2));
    // Phase 4: a manual run, recorded with who asked and the overrides, readable by id.
    let input = cronraft_api::types::TriggerInput {
        parameters: Some(serde_json::json!({"dry_run": true})),
        requested_by: Some("alice".into()),
    };
    let run = client.trigger_task("kyoto", &input, None).await.unwrap();
    assert_eq!(
        (run.trigger, run.requested_by.as_str(), run.task_id),
        (cronraft_raft::model::Trigger::Manual, "alice", t.id)
    );
    assert_eq!(run.parameters, Some(serde_json::json!({"dry_run": true})));
    // The record moves on (the dispatcher finds no executor in `local` and retries), but it is
    // the same execution.
    let again = client.get_execution(run.id, Consistency::Linearizable).await.unwrap();
    assert_eq!(
        (again.id, again.trigger, again.parameters, again.scheduled_time),
        (run.id, run.trigger, run.parameters.clone(), run.scheduled_time)
    );
    let listed =
        client.list_executions(Some("kyoto"), Some("pending"), 1, 10, Consistency::Linearizable).await.unwrap();
    assert!(listed.items.iter().any(|e| e.id == run.id));
    let deleted = client.delete_task("kyoto", None).await.unwrap();
    assert_eq!(deleted.status.as_str(), "deleted");
    assert_eq!(client.get_task(&t.id.to_string(), Consistency::Linearizable).await.unwrap().status.as_str(), "deleted");
}
