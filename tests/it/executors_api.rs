//! The executor-facing REST API against a real node: the registry (upsert by `instance_id`,
//! task upserts and bindings, status, deregistration), stopping an execution, executor
//! callbacks, per-task statistics, and the bad-input paths of every one of those endpoints.
//!
//! No dispatcher runs here, so executions stay `pending` until stopped: callbacks can only be
//! refused (no attempt is running), which is exactly what the apply rules say. One node serves
//! the whole file; the phases share it and use distinct names.

use crate::common;

use common::{assert_error, send, Cluster};
use cronraft_api::client::Client;
use cronraft_api::context::Consistency;
use cronraft_api::protocol::{CallbackRequest, CallbackStatus, RegisterRequest, RegisterTask};
use cronraft_api::types::{ExecutorView, RegisteredView, TaskInput, TriggerInput};
use cronraft_raft::model::{ExecutionStatus, ExecutorStatus, Reason};
use reqwest::Method;

/// A year-long schedule: nothing fires while the test runs.
const YEARLY: &str = "0 0 0 1 1 *";

fn registration(instance_id: &str, group: &str, tasks: Vec<RegisterTask>) -> RegisterRequest {
    RegisterRequest {
        name: group.into(),
        instance_id: instance_id.into(),
        base_url: "http://127.0.0.1:1/".into(),
        metadata: Some(serde_json::json!({"capacity": 2, "region": "eu"})),
        tasks,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn executors_stops_callbacks_and_stats_over_the_api() {
    let c = Cluster::start(1, "").await;
    let client = c.client(1);
    registry(&client).await;
    registry_bad_input(&client).await;
    stop_callback_and_stats(&client, &c.nodes[&1].url()).await;
}

/// Register (and re-register), list, read, set the status, deregister.
async fn registry(client: &Client) {
    // Phase 1: a registration with a task creates the task in the executor's group and binds it.
    let task = RegisterTask {
        task_name: "nightly".into(),
        cron: Some(YEARLY.into()),
        parameters: Some(serde_json::json!({"command": "echo hi"})),
        weight: Some(3),
        priority: Some(1),
        ..Default::default()
    };
    let body = serde_json::to_string(&registration("a-1", "workers", vec![task])).unwrap();
    let first = send(client, Method::POST, "/api/v1/executors/register", Some(&body)).await;
    assert_eq!(first.status, 200, "registration answers 200, new or not: {}", first.body);
    let first: RegisteredView = serde_json::from_str(&first.body).unwrap();
    let e = &first.executor;
    assert_eq!((e.name.as_str(), e.instance_id.as_str(), e.status), ("workers", "a-1", ExecutorStatus::Online));
    assert_eq!((e.base_url.as_str(), e.health_check_url.as_str()), ("http://127.0.0.1:1", "http://127.0.0.1:1/health"));
    assert_eq!((e.capacity, e.weight, e.is_healthy, e.running_attempts), (2, 1, true, 0));
    assert_eq!(e.metadata["region"], "eu");
    assert_eq!(e.last_health_check, None);
    assert_eq!(first.task_ids.len(), 1);
    let nightly = client.get_task("nightly", Consistency::Linearizable).await.unwrap();
    assert_eq!((nightly.id, nightly.executor.as_str()), (first.task_ids[0], "workers"));
    assert_eq!(nightly.parameters["command"], "echo hi");

    // Phase 2: re-registering the instance keeps its id and updates the named task in place.
    let mut again = registration(
        "a-1",
        "workers",
        vec![RegisterTask { task_name: "nightly".into(), timeout: Some(60), ..Default::default() }],
    );
    again.base_url = "http://127.0.0.1:2".into();
    let second = client.register_executor(&again, None).await.unwrap();
    assert_eq!((second.executor.id, &second.task_ids), (e.id, &first.task_ids));
    assert_eq!(second.executor.base_url, "http://127.0.0.1:2");
    assert_eq!(second.executor.registered_at, e.registered_at);
    let nightly = client.get_task("nightly", Consistency::Linearizable).await.unwrap();
    assert_eq!((nightly.timeout_seconds, nightly.cron_expression.as_str()), (60, YEARLY), "patched, not replaced");

    // Phase 3: list with a group filter and pages; read by id and by instance_id.
    client.register_executor(&registration("a-2", "workers", vec![]), None).await.unwrap();
    let other = client.register_executor(&registration("b-1", "other", vec![]), None).await.unwrap().executor;
    let workers = client.list_executors(Some("workers"), 1, 20, Consistency::Linearizable).await.unwrap();
    let ids: Vec<&str> = workers.items.iter().map(|x| x.instance_id.as_str()).collect();
    assert_eq!((workers.total, ids), (2, vec!["a-1", "a-2"]));
    let page2 = client.list_executors(None, 2, 1, Consistency::Local).await.unwrap();
    assert_eq!((page2.total, page2.items.len(), page2.items[0].instance_id.as_str()), (3, 1, "a-2"));
    let by_id = client.get_executor(&e.id.to_string(), Consistency::Linearizable).await.unwrap();
    assert_eq!(by_id, client.get_executor("a-1", Consistency::Linearizable).await.unwrap());

    // Phase 4: an operator status with a reason; the scheduler status counts instances.
    let m = client.set_executor_status("a-1", ExecutorStatus::Maintenance, Some("kernel upgrade"), None).await.unwrap();
    assert_eq!((m.status, m.status_reason.as_str()), (ExecutorStatus::Maintenance, "kernel upgrade"));
    let read: ExecutorView = client.get_executor("a-1", Consistency::Linearizable).await.unwrap();
    assert_eq!(read.status, ExecutorStatus::Maintenance);
    let s = client.scheduler_status().await.unwrap();
    assert_eq!((s.executors_total, s.executors_online, s.executors_healthy), (3, 2, 2));

    // Phase 5: deregistration answers with the record; then it is gone.
    let removed = client.remove_executor(&other.id.to_string(), None).await.unwrap();
    assert_eq!(removed.instance_id, "b-1");
    let gone = client.get_executor("b-1", Consistency::Linearizable).await.unwrap_err();
    assert_eq!(gone.code(), Some("executor_not_found"));
    let path = format!("/api/v1/executors/{}", other.id);
    assert_error(&send(client, Method::GET, &path, None).await, 404, "executor_not_found", "get removed");
    assert_error(&send(client, Method::DELETE, &path, None).await, 404, "executor_not_found", "remove twice");
}

/// Every registry endpoint's bad input: coded JSON errors, and nothing changes.
async fn registry_bad_input(client: &Client) {
    let before = client.list_executors(None, 1, 100, Consistency::Linearizable).await.unwrap();
    let reg = |extra: &str| format!(r#"{{"name":"g","instance_id":"x-1","base_url":"http://127.0.0.1:9"{extra}}}"#);
    let big_metadata = reg(&format!(r#","metadata":{{"x":"{}"}}"#, "y".repeat(17 * 1024)));
    let many_tasks = reg(&format!(
        r#","tasks":[{}]"#,
        (0..101).map(|i| format!(r#"{{"task_name":"t{i}","cron":"@daily"}}"#)).collect::<Vec<_>>().join(",")
    ));
    let long_reason = format!(r#"{{"status":"offline","reason":"{}"}}"#, "r".repeat(513));
    let h = |name: &str, instance: &str, url: &str| {
        format!(r#"{{"name":"{name}","instance_id":"{instance}","base_url":"{url}"}}"#)
    };
    // POST /executors/register: (body, status, code)
    let register: Vec<(String, u16, &str)> = vec![
        (r#"{"name":"#.into(), 400, "malformed_json"),
        (String::new(), 400, "malformed_json"),
        ("[1]".into(), 422, "invalid_field"),
        (reg(r#","colour":1"#), 422, "invalid_field"),
        (r#"{"instance_id":"x-1","base_url":"http://h:1"}"#.into(), 422, "missing_field"),
        (r#"{"name":"g","base_url":"http://h:1"}"#.into(), 422, "missing_field"),
        (r#"{"name":"g","instance_id":"x-1"}"#.into(), 422, "missing_field"),
        (h("", "x-1", "http://h:1"), 422, "invalid_field"),
        (h(r"g\u0001", "x-1", "http://h:1"), 422, "invalid_field"),
        (h(&"n".repeat(129), "x-1", "http://h:1"), 422, "invalid_field"),
        (h("g", "123", "http://h:1"), 422, "invalid_field"),
        (h("g", "x-1", "ftp://h:1"), 422, "invalid_url"),
        (h("g", "x-1", "h:1"), 422, "invalid_url"),
        (h("g", "x-1", "not a url"), 422, "invalid_url"),
        (reg(r#","health_check_url":"ftp://h:1/health""#), 422, "invalid_url"),
        (reg(r#","metadata":[1]"#), 422, "invalid_metadata"),
        (reg(r#","metadata":"eu""#), 422, "invalid_metadata"),
        (reg(r#","metadata":{"capacity":-1}"#), 422, "invalid_metadata"),
        (reg(r#","metadata":{"capacity":1000001}"#), 422, "invalid_metadata"),
        (reg(r#","metadata":{"weight":"2"}"#), 422, "invalid_metadata"),
        (big_metadata, 422, "metadata_too_large"),
        (reg(r#","tasks":[{"task_name":"t","cron":"61 * * * * *"}]"#), 422, "invalid_cron_expression"),
        (reg(r#","tasks":[{"task_name":"t","cron":"@daily","timezone":"Mars/Base"}]"#), 422, "invalid_timezone"),
        (reg(r#","tasks":[{"task_name":"123","cron":"@daily"}]"#), 422, "invalid_name"),
        (reg(r#","tasks":[{"task_name":"brand-new"}]"#), 422, "missing_field"),
        (reg(r#","tasks":[{"task_name":"t","cron":"@daily","colour":1}]"#), 422, "invalid_field"),
        (reg(r#","tasks":[{"task_name":"t","cron":"@daily","weight":2000000}]"#), 422, "invalid_field"),
        (reg(r#","tasks":[{"task_name":"t","cron":"@daily","parameters":[1]}]"#), 422, "invalid_parameters"),
        (many_tasks, 422, "too_many_tasks"),
    ];
    let mut cases: Vec<(Method, &str, String, u16, &str)> = register
        .into_iter()
        .map(|(body, status, code)| (Method::POST, "/api/v1/executors/register", body, status, code))
        .collect();
    cases.extend([
        // GET /executors, /executors/{id}
        (Method::GET, "/api/v1/executors?page=0", String::new(), 400, "invalid_page"),
        (Method::GET, "/api/v1/executors?page_size=501", String::new(), 400, "invalid_page_size"),
        (Method::GET, "/api/v1/executors?colour=red", String::new(), 400, "invalid_query"),
        (Method::GET, "/api/v1/executors?consistency=eventual", String::new(), 400, "invalid_query"),
        (Method::GET, "/api/v1/executors/999", String::new(), 404, "executor_not_found"),
        (Method::GET, "/api/v1/executors/no-such-instance", String::new(), 404, "executor_not_found"),
        // PUT /executors/{id}/status
        (Method::PUT, "/api/v1/executors/a-1/status", r#"{"status":"sleepy"}"#.into(), 422, "invalid_status"),
        (Method::PUT, "/api/v1/executors/a-1/status", r#"{"status":"#.into(), 400, "malformed_json"),
        (Method::PUT, "/api/v1/executors/a-1/status", r#"{"status":"online","colour":1}"#.into(), 422, "invalid_field"),
        (Method::PUT, "/api/v1/executors/a-1/status", r#"{"reason":"x"}"#.into(), 422, "invalid_field"),
        (Method::PUT, "/api/v1/executors/a-1/status", long_reason, 422, "invalid_field"),
        (Method::PUT, "/api/v1/executors/999/status", r#"{"status":"online"}"#.into(), 404, "executor_not_found"),
        (Method::PUT, "/api/v1/executors/no-such/status", r#"{"status":"online"}"#.into(), 404, "executor_not_found"),
        // DELETE /executors/{id}
        (Method::DELETE, "/api/v1/executors/999", String::new(), 404, "executor_not_found"),
        (Method::DELETE, "/api/v1/executors/no-such", String::new(), 404, "executor_not_found"),
    ]);
    for (method, path, body, status, code) in cases {
        let case = format!("{method} {path} {}", body.chars().take(80).collect::<String>());
        let body = (method != Method::GET && method != Method::DELETE).then_some(body.as_str());
        assert_error(&send(client, method, path, body).await, status, code, &case);
    }
    let after = client.list_executors(None, 1, 100, Consistency::Linearizable).await.unwrap();
    assert_eq!(before.items, after.items, "no bad request changed the registry");
    let tasks = client.list_tasks(None, 1, 100, Consistency::Linearizable).await.unwrap();
    assert_eq!(tasks.total, 1, "no bad registration created a task");
}

/// Stop and callback (the apply rules' answers), their bad input, and task statistics.
async fn stop_callback_and_stats(client: &Client, url: &str) {
    let task = client
        .create_task(
            &TaskInput { name: Some("manual".into()), cron_expression: Some(YEARLY.into()), ..Default::default() },
            None,
        )
        .await
        .unwrap();

    // Phase 1: statistics of a task without runs: zeros, no rates, no score.
    let s = client.task_stats("manual", Consistency::Linearizable).await.unwrap();
    assert_eq!(s.task_id, task.id);
    for w in [&s.windows.last_24h, &s.windows.last_7d, &s.windows.last_90d] {
        assert_eq!(
            (w.total, w.cancelled, w.success_rate, w.avg_duration_ms, w.p95_duration_ms),
            (0, 0, None, None, None)
        );
    }
    assert!(s.daily.is_empty());
    assert_eq!(s.health_score, None);

    // Phase 2: a pending execution has no running attempt: any report about one is stale,
    // whether the token comes in the body or in the header.
    let run = client.trigger_task("manual", &TriggerInput::default(), None).await.unwrap();
    assert_eq!(
        (run.status, run.attempts.len(), run.attempt_count, run.next_attempt_at),
        (ExecutionStatus::Pending, 0, 0, None)
    );
    let report = CallbackRequest {
        attempt: 1,
        callback_token: "not-the-token".into(),
        status: CallbackStatus::Success,
        result: Some(serde_json::json!({"rows": 3})),
        logs: Some("done\n".into()),
        start_time: None,
        end_time: None,
        exit_code: Some(0),
    };
    let stale = client.callback(run.id, &report, None).await.unwrap_err();
    assert_eq!(stale.code(), Some("stale_attempt"), "{stale}");
    let path = format!("/api/v1/executions/{}/callback", run.id);
    let header =
        client.raw(Method::POST, &path, Some(br#"{"attempt":1,"status":"failed"}"#.to_vec()), None).await.unwrap();
    assert_error(&header, 422, "missing_field", "no token anywhere");
    let with_header = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .header("x-callback-token", "from-header")
        .body(r#"{"attempt":1,"status":"failed"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(with_header.status().as_u16(), 409, "the header token is read; the report is stale");

    // Phase 3: stop; then the execution is finished for stops and callbacks alike.
    let stopped = client.stop_execution(run.id, Some("tester"), None).await.unwrap();
    assert_eq!((stopped.status, stopped.reason), (ExecutionStatus::Cancelled, Some(Reason::Stopped)));
    assert!(stopped.end_time.is_some());
    let again = client.stop_execution(run.id, None, None).await.unwrap_err();
    assert_eq!(again.code(), Some("execution_finished"));
    let late = client.callback(run.id, &report, None).await.unwrap_err();
    assert_eq!(late.code(), Some("execution_finished"));
    let raw = send(client, Method::GET, &format!("/api/v1/executions/{}", run.id), None).await;
    // The dispatcher found no executor in `local` (one failed attempt); tokens are never shown.
    assert!(raw.body.contains("\"attempts\":[") && !raw.body.contains("callback_token"), "{}", raw.body);

    // Phase 4: the stopped run is counted, today, as cancelled; no success rate, no score.
    let s = client.task_stats(&task.id.to_string(), Consistency::Linearizable).await.unwrap();
    for w in [&s.windows.last_24h, &s.windows.last_7d, &s.windows.last_90d] {
        assert_eq!((w.total, w.cancelled, w.success, w.success_rate), (1, 1, 0, None));
    }
    assert_eq!(s.daily.len(), 1);
    assert_eq!((s.daily[0].date, s.daily[0].stats.cancelled), (s.generated_at.date_naive(), 1));
    assert_eq!(s.health_score, None);

    // Phase 5: bad input on stop, callback and stats.
    let pending = client.trigger_task("manual", &TriggerInput::default(), None).await.unwrap();
    let cb = format!("/api/v1/executions/{}/callback", pending.id);
    let stop = format!("/api/v1/executions/{}/stop", pending.id);
    let big_result =
        format!(r#"{{"attempt":1,"callback_token":"t","status":"success","result":"{}"}}"#, "r".repeat(70_000));
    let ok_report = r#"{"attempt":1,"callback_token":"t","status":"success"}"#;
    let cases: Vec<(Method, &str, Option<&str>, u16, &str)> = vec![
        (Method::POST, "/api/v1/executions/abc/stop", None, 400, "invalid_execution_id"),
        (Method::POST, "/api/v1/executions/999999/stop", None, 404, "execution_not_found"),
        (Method::POST, &stop, Some(r#"{"requested_by":"#), 400, "malformed_json"),
        (Method::POST, &stop, Some(r#"{"colour":1}"#), 422, "invalid_field"),
        (Method::POST, "/api/v1/executions/abc/callback", Some(ok_report), 400, "invalid_execution_id"),
        (Method::POST, "/api/v1/executions/999999/callback", Some(ok_report), 404, "execution_not_found"),
        (Method::POST, &cb, Some(r#"{"attempt":1,"#), 400, "malformed_json"),
        (
            Method::POST,
            &cb,
            Some(r#"{"attempt":1,"callback_token":"t","status":"success","colour":1}"#),
            422,
            "invalid_field",
        ),
        (Method::POST, &cb, Some(r#"{"attempt":1,"callback_token":"t","status":"done"}"#), 422, "invalid_status"),
        (Method::POST, &cb, Some(r#"{"attempt":1,"callback_token":"t","status":"pending"}"#), 422, "invalid_status"),
        (Method::POST, &cb, Some(r#"{"callback_token":"t","status":"success"}"#), 422, "missing_field"),
        (Method::POST, &cb, Some(r#"{"attempt":-1,"callback_token":"t","status":"success"}"#), 422, "invalid_field"),
        (
            Method::POST,
            &cb,
            Some(r#"{"attempt":1,"callback_token":"t","status":"success","end_time":"yesterday"}"#),
            422,
            "invalid_field",
        ),
        (Method::POST, &cb, Some(big_result.as_str()), 422, "result_too_large"),
        (Method::GET, "/api/v1/tasks/999/stats", None, 404, "task_not_found"),
        (Method::GET, "/api/v1/tasks/no-such-task/stats", None, 404, "task_not_found"),
        (Method::GET, "/api/v1/tasks/manual/stats?colour=red", None, 400, "invalid_query"),
    ];
    for (method, path, body, status, code) in cases {
        let case = format!("{method} {path} {}", body.unwrap_or("").chars().take(80).collect::<String>());
        assert_error(&send(client, method, path, body).await, status, code, &case);
    }
    let still = client.get_execution(pending.id, Consistency::Linearizable).await.unwrap();
    assert_eq!(still.status, ExecutionStatus::Pending, "no bad request touched it");

    // Logs are never refused for size: only their tail is kept (here: refused as stale, after
    // the size checks passed).
    let long_logs = CallbackRequest { logs: Some("l".repeat(200_000)), ..report };
    assert_eq!(client.callback(pending.id, &long_logs, None).await.unwrap_err().code(), Some("stale_attempt"));
}
