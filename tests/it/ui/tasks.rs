//! Tasks through the console: the form on a follower (the live schedule preview, a field error
//! next to its field, a saved task whose runs appear on its page), pause and resume, and a
//! manual trigger with a parameter override. What the pages show is checked against the REST
//! API and against what the test executor received.

use std::time::Duration;

use super::{id_in, task_in, word, Console, EVERY_SECOND, YEARLY};
use crate::common::executor::Behavior;
use crate::common::wait_for;
use cronraft_api::context::Consistency;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs chromium and chromium-driver (Debian), run by .ci/run"]
async fn a_task_created_with_the_form_on_a_follower_runs_and_its_runs_appear_on_its_page() {
    // Phase 1: a cluster, an executor group `web`, the admin signed in on a follower.
    let c = Console::start().await;
    let b = &c.browser;
    let (web, _) = c.executor("web", "web-1", Behavior::Succeed { after_ms: 10 }).await;
    c.login(&c.admin).await;
    b.open(&c.url("/tasks")).await;
    b.click_and_wait("a#new-task").await;
    assert_eq!(b.path().await, "/tasks/new");
    b.wait_for("form#task-form").await;
    let banner = b.wait_text("#node-banner", |t| t.contains("follower")).await;
    eprintln!("phase 1: the form on {banner:?}");

    // Phase 2: the preview follows what is typed: ten next fires for one expression, and a
    // different first fire once the expression changes (no reload, no submit).
    b.fill("#cron_expression", "0 0 12 * * *").await;
    let first_noon = b
        .until("ten preview items for the noon schedule", || async {
            let items = b.texts("#preview li").await;
            (items.len() == 10 && items[0].contains("12:00")).then(|| items[0].clone())
        })
        .await;
    // 12:00 UTC is 07:00 (EST) or 08:00 (EDT) in the browser's zone; the UTC time is shown too.
    b.fill("#cron_expression", "0 30 6 * * *").await;
    let first_early = b
        .until("the preview's first item to change with the expression", || async {
            let items = b.texts("#preview li").await;
            (items.len() == 10 && items[0] != first_noon && items[0].contains("06:30")).then(|| items[0].clone())
        })
        .await;
    eprintln!("phase 2: preview {first_noon:?} -> {first_early:?}");
    // A monthly noon in New York crosses a DST change within any ten fires (March and November
    // are eight months apart): a fire after a change of UTC offset is flagged (`li.dst`), and
    // the preview follows the zone field as it is typed.
    b.fill("#timezone", "America/New_York").await;
    b.fill("#cron_expression", "0 0 12 1 * *").await;
    b.wait_count("#preview li.dst", "one or two", |n| n == 1 || n == 2).await;
    let items = b.texts("#preview li").await;
    assert!(items.iter().all(|i| i.contains("12:00:00 E")), "noon in New York each month: {items:?}");
    b.fill("#timezone", "UTC").await;
    b.wait_count("#preview li.dst", "none in UTC", |n| n == 0).await;

    // Phase 3: a bad expression is refused by the API, and its error shows next to the field,
    // with the form keeping what was typed; nothing was created.
    b.fill("#name", "form-made").await;
    b.fill("#cron_expression", "every blue moon").await;
    b.click_and_wait("button#save").await;
    let error = b.wait_text("#cron_expression-error", |t| !t.trim().is_empty()).await;
    eprintln!("phase 3: field error {error:?}");
    assert!(b.exists("#error-summary").await, "an error summary on top");
    let kept = b.attrs("#cron_expression", "value").await;
    assert_eq!(kept, vec!["every blue moon".to_string()], "the form keeps what was typed");
    assert!(b.exists("#cron_expression-error.field-error").await);
    assert!(c.api().get_task("form-made", Consistency::default()).await.is_err(), "nothing was created");

    // Phase 4: a good expression, the group `web` and parameters: saved through the follower
    // (forwarded to the leader), the browser lands on the task's page.
    b.fill("#cron_expression", "*/2 * * * * *").await;
    b.fill("#executor", "web").await;
    b.set_value("#parameters", r#"{"made_by": "the form"}"#).await;
    b.fill("#description", "created in the browser").await;
    b.click_and_wait("button#save").await;
    let path = b.wait_path("/tasks/{id}", |p| p.starts_with("/tasks/") && p[7..].parse::<u64>().is_ok()).await;
    let id = id_in(&path, "/tasks/");
    let task = c.api().get_task(&id.to_string(), Consistency::default()).await.expect("the task on the leader");
    assert_eq!(
        (task.name.as_str(), task.cron_expression.as_str(), task.executor.as_str()),
        ("form-made", "*/2 * * * * *", "web")
    );
    assert_eq!(task.parameters, json!({"made_by": "the form"}));
    assert_eq!(task.updated_by, "admin", "written with the session's token");
    b.wait_text("#task-status", |t| t.contains("active")).await;

    // Phase 5: its runs appear on its page, and the executor received them with the task's
    // parameters.
    let rows = c.reload_until_count("#executions-table tr[data-execution-id]", 2).await;
    let runs = c.wait_executions(id, Some("success"), 2).await;
    let statuses = b.texts("#executions-table tr[data-execution-id] td.status").await;
    assert!(statuses.iter().any(|s| s.contains("success")), "a successful run on the page: {statuses:?}");
    let ids = b.attrs("#executions-table tr[data-execution-id]", "data-execution-id").await;
    assert!(runs.iter().any(|r| ids.contains(&r.id.to_string())), "the API's runs are the page's rows");
    let sent: Vec<_> = web.executes().into_iter().filter(|x| x.task_id == id).collect();
    assert!(sent.len() >= 2 && sent.iter().all(|x| x.parameters["made_by"] == "the form"), "{sent:?}");
    eprintln!("phase 5: {rows} rows on the page, {} runs sent", sent.len());

    // Phase 6: times are shown in the browser's zone (New York), with UTC on hover.
    let shown = b.texts("#executions-table tr[data-execution-id] time[datetime]").await;
    let hover = b.attrs("#executions-table tr[data-execution-id] time[datetime]", "title").await;
    assert!(!shown.is_empty() && shown.iter().all(|t| t.contains("EST") || t.contains("EDT")), "{shown:?}");
    assert!(!hover.is_empty() && hover.iter().all(|t| t.ends_with("UTC")), "{hover:?}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs chromium and chromium-driver (Debian), run by .ci/run"]
async fn pause_stops_new_runs_and_resume_starts_them_again() {
    // Phase 1: two every-second tasks in group `p`: the one to pause, and a witness that keeps
    // running (its runs show the scheduler kept firing while the other one was paused).
    let c = Console::start().await;
    let b = &c.browser;
    let (_x, _) = c.executor("p", "p-1", Behavior::Succeed { after_ms: 10 }).await;
    let task = c.task(task_in("to-pause", "p", EVERY_SECOND, json!({}))).await;
    let witness = c.task(task_in("witness", "p", EVERY_SECOND, json!({}))).await;
    c.wait_executions(task, None, 2).await;
    c.login(&c.admin).await;
    b.open(&c.url(&format!("/tasks/{task}"))).await;
    b.wait_text("#task-status", |t| t.contains("active")).await;

    // Phase 2: pause from the task's page; the page and the API say paused.
    b.click_and_wait("#pause-form button").await;
    b.wait_text("#task-status", |t| t.contains("paused")).await;
    assert!(b.exists("#resume-form").await && !b.exists("#pause-form").await, "resume replaces pause");
    let paused = c.api().get_task(&task.to_string(), Consistency::default()).await.expect("task");
    assert_eq!(word(&paused.status), "paused");
    let at_pause = c.execution_count(task).await;
    let witness_at_pause = c.execution_count(witness).await;

    // Phase 3: while the witness runs four more slots, the paused task gets no new execution:
    // none in the API, none on its page.
    wait_for("four more witness slots", Duration::from_secs(30), || async {
        (c.execution_count(witness).await >= witness_at_pause + 4).then_some(())
    })
    .await;
    assert_eq!(c.execution_count(task).await, at_pause, "no execution after the pause");
    let newest = c.executions(task).await.into_iter().map(|e| e.scheduled_time).max().expect("a run");
    assert!(newest <= paused.updated_at, "no slot after the pause: {newest} > {}", paused.updated_at);
    b.client.refresh().await.expect("reload");
    b.wait_loaded().await;
    let rows = b.count("#executions-table tr[data-execution-id]").await;
    assert!(rows as u64 <= at_pause, "the page shows no new row: {rows} > {at_pause}");
    let rows_at_pause = rows;
    b.wait_text("#task-status", |t| t.contains("paused")).await;

    // Phase 4: resume from the page: active again, and new runs arrive (API and page).
    b.click_and_wait("#resume-form button").await;
    b.wait_text("#task-status", |t| t.contains("active")).await;
    let resumed = c.api().get_task(&task.to_string(), Consistency::default()).await.expect("task");
    assert_eq!(word(&resumed.status), "active");
    wait_for("runs after the resume", Duration::from_secs(30), || async {
        (c.execution_count(task).await >= at_pause + 2).then_some(())
    })
    .await;
    if rows_at_pause < 20 {
        c.reload_until_count("#executions-table tr[data-execution-id]", rows_at_pause + 1).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs chromium and chromium-driver (Debian), run by .ci/run"]
async fn trigger_with_a_parameter_override_runs_once_with_it() {
    // Phase 1: a yearly task (it never fires by itself here) with two parameters.
    let c = Console::start().await;
    let b = &c.browser;
    let (x, _) = c.executor("t", "t-1", Behavior::Succeed { after_ms: 10 }).await;
    let task = c.task(task_in("manual", "t", YEARLY, json!({"mode": "default", "keep": "yes"}))).await;
    c.login(&c.admin).await;

    // Phase 2: from the task's page to the trigger form, which shows the task's parameters;
    // override one and run.
    b.open(&c.url(&format!("/tasks/{task}"))).await;
    b.click_and_wait("a#trigger-link").await;
    b.wait_for("form#trigger-form").await;
    let shown = b.js("return document.querySelector('textarea#parameters').value").await;
    let shown: serde_json::Value = serde_json::from_str(shown.as_str().unwrap_or("{}")).expect("JSON in the form");
    assert_eq!(shown["mode"], "default", "the form starts from the task's parameters");
    b.set_value("textarea#parameters", r#"{"mode": "override"}"#).await;
    b.click_and_wait("button#trigger").await;

    // Phase 3: the browser lands on the new execution, which succeeds (the page follows it).
    let path = b.wait_path("/executions/{id}", |p| p.starts_with("/executions/")).await;
    let run = id_in(&path, "/executions/");
    b.wait_text("#execution-status", |t| t.contains("success")).await;

    // Phase 4: exactly one run, manual, with the override recorded; the executor received it
    // once, with the override merged into the task's parameters.
    let runs = c.wait_executions(task, Some("success"), 1).await;
    assert_eq!(runs.len(), 1, "one run: {runs:?}");
    assert_eq!(runs[0].id, run);
    assert_eq!(word(&runs[0].trigger), "manual");
    assert_eq!(runs[0].parameters, Some(json!({"mode": "override"})));
    assert_eq!(c.execution_count(task).await, 1, "nothing else ran");
    let sent: Vec<_> = x.executes().into_iter().filter(|e| e.task_id == task).collect();
    assert_eq!(sent.len(), 1, "one delivery: {sent:?}");
    assert_eq!(sent[0].parameters, json!({"mode": "override", "keep": "yes"}));
    assert_eq!(sent[0].execution_id, run);
}
