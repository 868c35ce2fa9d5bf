//! Runs and the executors that run them, through the console: stopping a long run from its page
//! (which follows the run by itself until it ends), and an executor set to maintenance on the
//! executors page, after which it gets no work while the other instance of its group gets it all.

use std::time::Duration;

use super::{id_in, task_in, word, Console, EVERY_SECOND, YEARLY};
use crate::common::executor::Behavior;
use crate::common::wait_for;
use cronraft_api::context::Consistency;
use cronraft_api::types::{TaskInput, TriggerInput};
use cronraft_raft::model::{BalanceStrategy, ExecutionStatus};
use serde_json::json;

/// Whether the page is still the document that was marked with `window.__kept` (no navigation,
/// no reload since).
async fn same_document(c: &Console) -> bool {
    c.browser.js("return window.__kept === true").await == json!(true)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs chromium and chromium-driver (Debian), run by .ci/run"]
async fn stop_ends_a_long_run_and_its_page_follows_without_a_reload() {
    // Phase 1: a slow executor (each run lasts ten minutes) and a task with a long timeout.
    let c = Console::start().await;
    let b = &c.browser;
    let (x, _) = c.executor("slow", "slow-1", Behavior::Succeed { after_ms: 600_000 }).await;
    let input = TaskInput { timeout_seconds: Some(3_600), ..task_in("long", "slow", YEARLY, json!({})) };
    let task = c.task(input).await;
    c.login(&c.admin).await;

    // Phase 2: a run started from the trigger form; its page shows it running and refreshes
    // itself (`main[data-refresh-ms]`).
    b.open(&c.url(&format!("/tasks/{task}/trigger"))).await;
    b.click_and_wait("button#trigger").await;
    let run = id_in(&b.wait_path("/executions/{id}", |p| p.starts_with("/executions/")).await, "/executions/");
    b.wait_text("#execution-status", |t| t.contains("running")).await;
    assert!(b.exists("main[data-refresh-ms]").await, "a running execution's page refreshes itself");
    wait_for("the slow executor to get the run", Duration::from_secs(20), || async {
        x.executes().iter().any(|e| e.execution_id == run).then_some(())
    })
    .await;

    // Phase 3: `#stop`: the run ends as cancelled (stopped), on the page and in the API, and the
    // executor is told to stop it.
    b.click_and_wait("#stop").await;
    b.js("window.__kept = true").await;
    let status = b.wait_text("#execution-status", |t| t.contains("cancelled") || t.contains("stopped")).await;
    assert!(same_document(&c).await, "the page changed by itself, without a reload");
    let e = c.api().get_execution(run, Consistency::default()).await.expect("execution");
    assert_eq!(e.status, ExecutionStatus::Cancelled, "{e:?}");
    wait_for("a /stop at the executor", Duration::from_secs(20), || async {
        x.stops().iter().any(|s| s.execution_id == run).then_some(())
    })
    .await;
    b.wait_gone("#stop-form").await;
    eprintln!("phase 3: {status:?}");

    // Phase 4: the self-refresh alone: a second run's page is open, the run is stopped through
    // the REST API (not this page), and the same document shows it cancelled, then stops
    // refreshing.
    let second = c.api().trigger_task(&task.to_string(), &TriggerInput::default(), None).await.expect("trigger").id;
    b.open(&c.url(&format!("/executions/{second}"))).await;
    b.wait_text("#execution-status", |t| t.contains("running")).await;
    b.js("window.__kept = true").await;
    c.api().stop_execution(second, None, None).await.expect("stop through the API");
    b.wait_text("#execution-status", |t| t.contains("cancelled") || t.contains("stopped")).await;
    assert!(same_document(&c).await, "the page followed the run by itself");
    b.wait_gone("main[data-refresh-ms]").await;
    b.wait_gone("#stop-form").await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs chromium and chromium-driver (Debian), run by .ci/run"]
async fn an_executor_set_to_maintenance_on_the_executors_page_gets_no_work() {
    // Phase 1: two instances of group `pool`, each its own test executor, and an every-second
    // round-robin task: both get work.
    let c = Console::start().await;
    let b = &c.browser;
    let (a, a_id) = c.executor("pool", "pool-a", Behavior::Succeed { after_ms: 10 }).await;
    let (other, _) = c.executor("pool", "pool-b", Behavior::Succeed { after_ms: 10 }).await;
    let input = TaskInput {
        load_balance_strategy: Some(BalanceStrategy::RoundRobin),
        ..task_in("spread", "pool", EVERY_SECOND, json!({}))
    };
    c.task(input).await;
    wait_for("runs on both instances", Duration::from_secs(30), || async {
        (!a.executes().is_empty() && !other.executes().is_empty()).then_some(())
    })
    .await;

    // Phase 2: on the executors page, instance a's row: status maintenance, with a reason.
    c.login(&c.admin).await;
    b.open(&c.url("/executors")).await;
    let row = format!("tr[data-executor-id=\"{a_id}\"]");
    b.wait_for(&row).await;
    b.select(&format!("{row} form.status-form select[name=status]"), "maintenance").await;
    b.fill(&format!("{row} form.status-form input[name=reason]"), "patching the kernel").await;
    b.click_and_wait(&format!("{row} form.status-form button")).await;
    b.wait_text(&row, |t| t.contains("maintenance") && t.contains("patching the kernel")).await;
    let seen = c.api().get_executor(&a_id.to_string(), Consistency::default()).await.expect("executor");
    assert_eq!((word(&seen.status).as_str(), seen.status_reason.as_str()), ("maintenance", "patching the kernel"));

    // Phase 3: from then on the other instance gets every run. A dispatch decided before the
    // status change may still arrive just after it, so a's count is taken once b has had two
    // runs since; then b gets five more and a gets none of them.
    let b_then = other.executes().len();
    wait_for("two runs on b after the change", Duration::from_secs(30), || async {
        (other.executes().len() >= b_then + 2).then_some(())
    })
    .await;
    let a_settled = a.executes().len();
    let b_settled = other.executes().len();
    wait_for("five more runs on b", Duration::from_secs(30), || async {
        (other.executes().len() >= b_settled + 5).then_some(())
    })
    .await;
    assert_eq!(a.executes().len(), a_settled, "the instance in maintenance got work");
    eprintln!("phase 3: a stayed at {a_settled}, b went {b_then} -> {}", other.executes().len());
}
