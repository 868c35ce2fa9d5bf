//! The web console (issue 18) in a real browser: headless Chromium through chromedriver
//! (`cronraft_testkit::browser`) against a real three-node cluster with auth on, clicking what a
//! person clicks and checking what the REST API and the test executors say happened.
//!
//! Every test here is ignored by the plain `cargo test` because it needs Debian's `chromium` and
//! `chromium-driver`; `.ci/run` installs them and runs the ignored tests. The pages' URLs and
//! element ids are the contract in `ui/` (the console's crate docs), nothing else: a test finds
//! things by id, never by layout.
//!
//! The modules:
//! - [`session`]: login and logout; a `read` token sees no write button and a forged form post is
//!   refused;
//! - [`tasks`]: the task form on a follower (preview, field error, runs appear), pause and resume,
//!   trigger with a parameter override;
//! - [`runs`]: stop ends a long run and the page follows by itself; an executor set to
//!   maintenance gets no work;
//! - [`screens`]: every page at 1440 and 375 px into `docs/ui/`, with a populated cluster.
//!
//! This module is the harness they share: [`Console`] starts the cluster, the browser, and
//! signs in.

mod runs;
mod screens;
mod session;
mod tasks;

use std::time::Duration;

use crate::common::executor::{register, Behavior, TestExecutor};
use crate::common::{wait_for, Cluster};
use cronraft_api::client::Client;
use cronraft_api::context::Consistency;
use cronraft_api::types::{ExecutionView, TaskInput, TokenInput};
use cronraft_raft::model::Role;
use cronraft_testkit::browser::Browser;

/// The cluster secret. The same one as the three-hosts test (`hosts.rs`), on purpose: the test
/// executors and the cluster helpers send the process-wide cluster credential
/// (`cronraft_api::client::set_process_token`), which any test of this binary running at the
/// same time may set too; with one secret, whoever sets it sets the same value.
pub const SECRET: &str = "the-three-hosts-cluster-secret-0123456789";

/// How long one API request of a test may take.
const ASK: Duration = Duration::from_secs(20);

/// A three-node cluster with auth on, a browser, and the first admin token.
pub struct Console {
    // Field order: the browser goes before the nodes it looks at.
    pub browser: Browser,
    pub cluster: Cluster,
    pub admin: String,
    pub leader: u64,
    /// A node that is not the leader (the pages are opened there: writes are forwarded).
    pub follower: u64,
}

impl Console {
    /// Node 1 bootstraps with the cluster secret and writes the first admin token; nodes 2 and 3
    /// join; the browser starts once three voters agree on a leader.
    pub async fn start() -> Console {
        // The cluster first: it waits while a chaos run holds the machine, and a chaos run sets
        // (and at its end clears) the same process-wide token.
        let mut cluster = Cluster::new("");
        let credential = cronraft_raft::cluster_secret::ClusterSecret::from_bytes(SECRET.as_bytes(), "test")
            .expect("a valid secret");
        cronraft_api::client::set_process_token(Some(credential.credential().to_string()));
        let secret_file = cluster.root().join("cluster.secret");
        std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write the secret");
        let config = cluster.root().join("auth.toml");
        std::fs::write(&config, format!("[auth]\ncluster_secret_file = {:?}\n", secret_file.display().to_string()))
            .expect("write the config");
        cluster.set_config_file(&config);
        cluster.spawn(1, None, None);
        let token_file = cluster.nodes[&1].dir.join("data/admin.token");
        let admin = wait_for("the first admin token", Duration::from_secs(20), || async {
            std::fs::read_to_string(&token_file).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
        })
        .await;
        let join = cluster.nodes[&1].url();
        cluster.spawn(2, Some(&join), None);
        cluster.spawn(3, Some(&join), None);
        let leader = cluster.wait_voters(3).await;
        let follower = (1..=3).find(|id| *id != leader).expect("a follower");
        let browser = Browser::start().await;
        Console { browser, cluster, admin, leader, follower }
    }

    /// `path` on node `node`'s listener.
    pub fn url_on(&self, node: u64, path: &str) -> String {
        format!("{}{path}", self.cluster.nodes[&node].url())
    }

    /// `path` on the follower (where the pages are opened).
    pub fn url(&self, path: &str) -> String {
        self.url_on(self.follower, path)
    }

    /// An API client on the leader with `token`.
    pub fn api_as(&self, token: &str) -> Client {
        Client::with_timeout([self.cluster.nodes[&self.leader].url()], ASK).with_token(Some(token))
    }

    /// An API client on the leader with the admin token.
    pub fn api(&self) -> Client {
        self.api_as(&self.admin)
    }

    /// A new token `name` of `role`; returns its secret.
    pub async fn token(&self, name: &str, role: Role) -> String {
        let input = TokenInput { name: name.into(), role, groups: vec![], prefixes: vec![] };
        self.api().create_token(&input).await.expect("create a token").token
    }

    /// Signs in on the follower with `token` through the login form; waits for the page the
    /// login returns to.
    pub async fn login(&self, token: &str) {
        self.browser.open(&self.url("/login")).await;
        self.browser.fill("#token", token).await;
        self.browser.click_and_wait("#login").await;
        self.browser.wait_path("anything but /login", |p| p != "/login").await;
        self.browser.wait_for("#whoami").await;
    }

    /// Signs out with the header's logout form; waits for the login page.
    pub async fn logout(&self) {
        self.browser.click_and_wait("#logout-form button").await;
        self.browser.wait_for("form#login-form").await;
    }

    /// Starts a test executor with `behavior` and registers it as instance `instance` of group
    /// `group`; returns it and its executor id.
    pub async fn executor(&self, group: &str, instance: &str, behavior: Behavior) -> (TestExecutor, u64) {
        let x = TestExecutor::start(behavior).await;
        let id = register(&self.cluster.nodes[&self.leader].url(), &x.registration(group, instance, 1)).await;
        (x, id)
    }

    /// Creates a task through the API (admin); returns its id.
    pub async fn task(&self, input: TaskInput) -> u64 {
        self.api().create_task(&input, None).await.expect("create a task").id
    }

    /// The task's executions, newest first (up to 100), read on the leader.
    pub async fn executions(&self, task: u64) -> Vec<ExecutionView> {
        self.api()
            .list_executions(Some(&task.to_string()), None, 1, 100, Consistency::default())
            .await
            .expect("list executions")
            .items
    }

    /// The number of the task's executions on the leader.
    pub async fn execution_count(&self, task: u64) -> u64 {
        self.api()
            .list_executions(Some(&task.to_string()), None, 1, 1, Consistency::default())
            .await
            .expect("list executions")
            .total
    }

    /// Waits until the task has at least `n` executions ending in `status` (`None`: any);
    /// returns them, newest first.
    pub async fn wait_executions(&self, task: u64, status: Option<&str>, n: usize) -> Vec<ExecutionView> {
        let what = format!("{n} execution(s) of task {task} with status {status:?}");
        wait_for(&what, Duration::from_secs(30), || async {
            let page = self
                .api()
                .list_executions(Some(&task.to_string()), status, 1, 100, Consistency::default())
                .await
                .ok()?;
            (page.items.len() >= n).then_some(page.items)
        })
        .await
    }

    /// Reloads the current page until `css` matches at least `n` elements (for pages that do
    /// not refresh themselves); returns how many matched.
    pub async fn reload_until_count(&self, css: &str, n: usize) -> usize {
        self.browser
            .until(&format!("at least {n} `{css}` after reloads"), || async {
                self.browser.client.refresh().await.ok()?;
                self.browser.wait_loaded().await;
                let got = self.browser.count(css).await;
                if got >= n {
                    return Some(got);
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
                None
            })
            .await
    }
}

/// A task input in group `group` firing on `cron`, with `parameters`.
pub fn task_in(name: &str, group: &str, cron: &str, parameters: serde_json::Value) -> TaskInput {
    TaskInput {
        name: Some(name.into()),
        cron_expression: Some(cron.into()),
        executor: Some(group.into()),
        parameters: Some(parameters),
        ..TaskInput::default()
    }
}

/// The JSON name of an API enum value (`online`, `paused`).
pub fn word<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// Never fires by itself in a test (1 January, midnight).
pub const YEARLY: &str = "0 0 0 1 1 *";
/// Every second.
pub const EVERY_SECOND: &str = "* * * * * *";

/// The id in a path like `/tasks/12` or `/executions/7?done=x`.
pub fn id_in(path: &str, prefix: &str) -> u64 {
    path.strip_prefix(prefix)
        .and_then(|rest| rest.split(['/', '?']).next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no id after {prefix} in {path}"))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs chromium and chromium-driver (Debian), run by .ci/run"]
async fn the_browser_kit_runs_chromium_in_new_york_time_at_both_screenshot_widths() {
    // Phase 1: the kit starts chromedriver and Chromium; a page sees the fixed time zone (the
    // console's localized times depend on it).
    let browser = Browser::start().await;
    browser.open("data:text/html,<title>kit</title><p id=p>hello</p>").await;
    assert_eq!(browser.wait_text("#p", |t| t == "hello").await, "hello");
    let zone = browser.js("return Intl.DateTimeFormat().resolvedOptions().timeZone").await;
    assert_eq!(zone, cronraft_testkit::browser::TIME_ZONE, "the browser's zone is fixed");

    // Phase 2: both screenshot widths are real viewport widths (the 375 px one is below
    // Chromium's smallest desktop window, so this is where a kit bug would show).
    for width in [cronraft_testkit::browser::NARROW, cronraft_testkit::browser::WIDE] {
        browser.resize_viewport(width, 700).await;
        let got = browser.js("return [window.innerWidth, window.innerHeight]").await;
        assert_eq!(got, serde_json::json!([width, 700]), "the viewport at {width}");
    }

    // Phase 3: `post_form` runs a `fetch()` inside the page and hands back what it got: here
    // nothing listens on port 9, so the fetch fails and the kit reports status 0.
    let (status, _) = browser.post_form("http://127.0.0.1:9/nowhere", &[("a", "b")]).await;
    assert_eq!(status, 0, "nothing listens on port 9");
    browser.close().await;
}
