//! Who is looking: signing in and out with an API token, and what a `read` token may not do —
//! its pages show no write button, and a form it forges (no csrf, a wrong one, or its own valid
//! one on a write) is refused with 403 and changes nothing.

use super::{task_in, word, Console, YEARLY};
use crate::common::executor::Behavior;
use cronraft_api::context::Consistency;
use cronraft_api::types::TriggerInput;
use cronraft_raft::model::Role;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs chromium and chromium-driver (Debian), run by .ci/run"]
async fn login_with_a_token_and_logout_end_to_end_in_the_browser() {
    let c = Console::start().await;
    let b = &c.browser;

    // Phase 1: without a cookie every page sends the browser to the login form, remembering
    // where it wanted to go.
    b.open(&c.url("/")).await;
    b.wait_for("form#login-form").await;
    assert_eq!(b.path().await, "/login");
    b.open(&c.url("/tasks")).await;
    b.wait_for("form#login-form").await;
    let url = b.url().await;
    assert!(url.contains("next=%2Ftasks") || url.contains("next=/tasks"), "the login remembers the page: {url}");
    assert!(!b.exists("#logout-form").await, "nobody to sign out");

    // Phase 2: a wrong token is refused with an error on the form, and no session cookie.
    b.fill("#token", "crt_0000000000000000000000000000000000000000000000000000000000000000").await;
    b.click_and_wait("#login").await;
    let error = b.wait_text("#error-summary", |t| !t.trim().is_empty()).await;
    assert!(error.to_lowercase().contains("not valid"), "the error says why: {error}");
    assert_eq!(b.path().await, "/login");
    assert!(b.cookie("cronraft_session").await.unwrap_or_default().is_empty(), "no session for a wrong token");

    // Phase 3: the admin token signs in and lands on the page asked for first (/tasks); the
    // session cookie is HttpOnly and SameSite=Strict; the header names the token and its role.
    b.fill("#token", &c.admin).await;
    b.click_and_wait("#login").await;
    b.wait_for("form#task-filters").await;
    assert_eq!(b.path().await, "/tasks", "back to the page asked for");
    let cookie = b.client.get_named_cookie("cronraft_session").await.expect("a session cookie");
    assert_eq!(cookie.http_only(), Some(true), "no script reads the session");
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)", "no other site sends it");
    let who = b.wait_text("#whoami", |t| t.contains("admin")).await;
    eprintln!("phase 3: signed in as {who:?}");

    // Phase 4: the overview shows the three nodes, the rendering node's banner names it a
    // follower (the page was opened there).
    b.open(&c.url("/")).await;
    b.wait_count("#cluster-health tr[data-node-id]", "3", |n| n == 3).await;
    let banner = b.wait_text("#node-banner", |t| t.contains("follower")).await;
    assert!(banner.contains(&format!("Node {}", c.follower)), "the banner names the node: {banner}");
    for id in ["#nav-overview", "#nav-tasks", "#nav-executions", "#nav-executors", "#nav-notifications", "#nav-cluster"]
    {
        assert!(b.exists(id).await, "the navigation has {id}");
    }

    // Phase 5: logout clears the session: the login page again, the cookie gone, and every page
    // (the old ones too) redirects to the login form.
    c.logout().await;
    assert_eq!(b.path().await, "/login");
    assert!(b.cookie("cronraft_session").await.unwrap_or_default().is_empty(), "the cookie is cleared");
    for page in ["/", "/tasks", "/executions", "/executors", "/cluster"] {
        b.open(&c.url(page)).await;
        b.wait_for("form#login-form").await;
        assert_eq!(b.path().await, "/login", "{page} after logout");
    }
    b.client.back().await.expect("back");
    b.wait_loaded().await;
    b.client.refresh().await.expect("reload");
    b.wait_for("form#login-form").await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs chromium and chromium-driver (Debian), run by .ci/run"]
async fn a_read_token_sees_no_write_buttons_and_forged_form_posts_are_refused() {
    // Phase 1: something to act on: a task, a running execution (a hanging executor), an
    // executor row; and a read token.
    let c = Console::start().await;
    let b = &c.browser;
    let (_hang, executor_id) = c.executor("ro", "ro-1", Behavior::Hang).await;
    let task = c.task(task_in("ro-task", "ro", YEARLY, json!({}))).await;
    let run = c.api().trigger_task(&task.to_string(), &TriggerInput::default(), None).await.expect("trigger").id;
    let reader = c.token("reader", Role::Read).await;
    let before = c.api().get_task(&task.to_string(), Consistency::default()).await.expect("task");

    // Phase 2: the admin sees every write control (so their absence below means something).
    let pages = [
        ("/tasks".to_string(), vec!["#new-task"]),
        (format!("/tasks/{task}"), vec!["#pause-form", "#trigger-link", "#edit-link", "#delete-link"]),
        (format!("/executions/{run}"), vec!["#stop-form"]),
        ("/executors".to_string(), vec![".status-form"]),
        ("/cluster".to_string(), vec!["#add-node-form"]),
    ];
    c.login(&c.admin).await;
    for (page, controls) in &pages {
        b.open(&c.url(page)).await;
        for control in controls {
            b.wait_for(control).await;
        }
    }
    c.logout().await;

    // Phase 3: the read token sees the same pages with their data and without any of them.
    c.login(&reader).await;
    b.wait_text("#whoami", |t| t.contains("read")).await;
    for (page, controls) in &pages {
        b.open(&c.url(page)).await;
        b.wait_for("main").await;
        assert!(!b.exists("#error-summary").await, "{page} reads fine for a read token: {}", b.body_text().await);
        for control in controls {
            assert!(!b.exists(control).await, "{page} shows {control} to a read token");
        }
        for never in ["#resume-form", "#stop", ".remove-link", ".promote-form"] {
            assert!(!b.exists(never).await, "{page} shows {never} to a read token");
        }
    }
    b.open(&c.url(&format!("/tasks/{task}"))).await;
    b.wait_text("#task-status", |t| t.contains("active")).await;
    b.open(&c.url("/executors")).await;
    b.wait_for(&format!("tr[data-executor-id=\"{executor_id}\"]")).await;

    // Phase 4: forged posts from the read token's own page: without csrf, with a wrong one, and
    // with its own valid csrf on writes it may not make. Each is refused with 403 and an error
    // page.
    let csrf = b.attrs("#logout-form input[name=csrf]", "value").await.pop().expect("the page's csrf field");
    let writes = [
        (format!("/tasks/{task}/pause"), vec![]),
        (format!("/executions/{run}/stop"), vec![]),
        (format!("/executors/{executor_id}/status"), vec![("status", "offline"), ("reason", "forged")]),
        (format!("/tasks/{task}/delete"), vec![]),
        ("/tasks/new".to_string(), vec![("name", "forged"), ("cron_expression", YEARLY)]),
    ];
    for (path, extra) in &writes {
        for (label, token) in
            [("no csrf", None), ("a wrong csrf", Some("0".repeat(csrf.len()))), ("its own csrf", Some(csrf.clone()))]
        {
            let mut fields: Vec<(&str, &str)> = vec![("request_id", "forged-1")];
            fields.extend(extra.iter().copied());
            if let Some(t) = &token {
                fields.push(("csrf", t));
            }
            let (status, body) = b.post_form(&c.url(path), &fields).await;
            assert_eq!(status, 403, "POST {path} by a read token with {label}: {body}");
            assert!(body.contains("error-summary"), "POST {path} with {label}: an error page");
        }
    }

    // Phase 5: the admin's own valid csrf posted from another site (a cross-site Origin) is
    // refused too; the same post from the admin's own page goes through (the refusals above are
    // the checks, not a broken route).
    c.logout().await;
    c.login(&c.admin).await;
    b.open(&c.url(&format!("/tasks/{task}"))).await;
    let admin_csrf = b.attrs("#pause-form input[name=csrf]", "value").await.pop().expect("the pause form's csrf");
    let pause = c.url(&format!("/tasks/{task}/pause"));
    let fields = [("csrf", admin_csrf.as_str()), ("request_id", "cross-site-1")];
    let (status, _) =
        b.post_outside(&pause, &fields, &[("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")]).await;
    assert_eq!(status, 403, "a cross-site post with a valid csrf");

    // Phase 6: nothing changed: the task is active at the same version, the run still runs, the
    // executor is online, no task `forged` exists.
    let after = c.api().get_task(&task.to_string(), Consistency::default()).await.expect("task");
    assert_eq!((after.status, after.version), (before.status, before.version), "the task is untouched");
    let e = c.api().get_execution(run, Consistency::default()).await.expect("execution");
    assert_eq!(e.status, cronraft_raft::model::ExecutionStatus::Running, "the run was not stopped");
    let x = c.api().get_executor(&executor_id.to_string(), Consistency::default()).await.expect("executor");
    assert_eq!(word(&x.status), "online", "the executor's status is untouched");
    assert!(c.api().get_task("forged", Consistency::default()).await.is_err(), "no forged task");

    // Phase 7: the control: the admin's valid form from its own page pauses the task.
    let (status, _) = b.post_form(&pause, &[("csrf", &admin_csrf), ("request_id", "real-1")]).await;
    assert_eq!(status, 200, "the real form goes through (and its redirect loads)");
    let after = c.api().get_task(&task.to_string(), Consistency::default()).await.expect("task");
    assert_eq!(after.status.as_str(), "paused");
}
