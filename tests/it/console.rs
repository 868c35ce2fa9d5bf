//! The web console over plain HTTP (no browser; the browser tests are `ui.rs`): sign-in and
//! sign-out, every page on a follower, a task created through the form, field errors from the
//! API's codes, forged and cross-site form posts refused, a `read` token shown no write
//! controls and refused anyway, a revoked token's session ended, and with auth off the CSRF
//! guard still on.

use std::time::Duration;

use cronraft_api::types::{TaskView, TokenInput};
use cronraft_raft::model::Role;
use cronraft_testkit::wait::wait_for;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

use crate::auth::{client, start_three};
use crate::common::Cluster;

/// A browser without a cookie jar: the test sets the session cookie itself.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

/// What a page answered.
struct Answer {
    status: u16,
    location: String,
    set_cookie: Vec<String>,
    body: String,
}

impl Browser {
    fn new(base: &str) -> Browser {
        let http =
            reqwest::Client::builder().redirect(Policy::none()).timeout(Duration::from_secs(20)).build().unwrap();
        Browser { http, base: base.to_string(), cookie: None }
    }

    async fn answer(resp: reqwest::Response) -> Answer {
        let status = resp.status().as_u16();
        let location = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let set_cookie =
            resp.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).map(String::from).collect();
        Answer { status, location, set_cookie, body: resp.text().await.unwrap_or_default() }
    }

    async fn get(&self, path: &str) -> Answer {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        Browser::answer(req.send().await.expect("GET")).await
    }

    /// A form post as a browser on this console sends it (`Origin` of the console).
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        self.post_from(path, fields, &self.base).await
    }

    async fn post_owned(&self, path: &str, fields: &[(&str, String)]) -> Answer {
        let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.post(path, &refs).await
    }

    async fn post_from(&self, path: &str, fields: &[(&str, &str)], origin: &str) -> Answer {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", origin)
            .body(body.join("&"));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        Browser::answer(req.send().await.expect("POST")).await
    }
}

/// Form encoding of one name or value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the first hidden `name` field of a page.
fn hidden(body: &str, name: &str) -> String {
    let at = body.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no {name} field in {body}"));
    let rest = &body[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_signs_in_by_token_and_refuses_forged_forms_and_what_a_role_may_not_do() {
    // Phase 1: three nodes with auth on; the pages are read on a follower.
    let (cluster, admin, leader) = start_three(false).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let url = cluster.nodes[&follower].url();
    let mut b = Browser::new(&url);

    // Phase 2: without a session every page sends the browser to sign in, and back after.
    let a = b.get("/tasks?status=paused").await;
    assert_eq!((a.status, a.location.as_str()), (303, "/login?next=/tasks%3Fstatus%3Dpaused"));
    let a = b.get("/login").await;
    assert!(a.body.contains("id=\"login-form\""), "{}", a.body);
    let a = b.post("/login", &[("token", "crt_not-a-real-token"), ("next", "/")]).await;
    assert_eq!(a.status, 401, "a wrong token is refused on the form");
    assert!(a.body.contains("not valid here"), "{}", a.body);
    let a = b.post("/login", &[("token", &admin), ("next", "https://evil.example/")]).await;
    assert_eq!((a.status, a.location.as_str()), (303, "/"), "never sent to another origin after sign-in");
    let session = a.set_cookie.iter().find(|c| c.starts_with("cronraft_session=")).expect("session cookie").clone();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    b.cookie = Some(session.split(';').next().unwrap().to_string());

    // Phase 3: every page renders on the follower, with its landmarks and the node banner.
    for (path, landmark) in [
        ("/", "id=\"cluster-health\""),
        ("/tasks", "id=\"task-filters\""),
        ("/tasks/new", "id=\"task-form\""),
        ("/executions", "id=\"execution-filters\""),
        ("/executors", "<h1>Executors</h1>"),
        ("/cluster", "id=\"add-node-form\""),
    ] {
        let a = b.get(path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert!(a.body.contains(landmark), "{path} shows {landmark}");
        assert!(a.body.contains(&format!("Node {follower} · follower")), "{path} names the node that rendered it");
        assert!(a.body.contains("id=\"logout-form\""), "{path} offers sign-out");
    }

    // Phase 4: the form creates a task on the follower (forwarded to the leader), attributed
    // to the token; a second post of the same rendered form is the same write (its request id).
    let form = b.get("/tasks/new").await.body;
    let (csrf, request_id) = (hidden(&form, "csrf"), hidden(&form, "request_id"));
    let fields = |name: &'static str, cron: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("request_id", request_id.clone()),
            ("name", name.to_string()),
            ("cron_expression", cron.to_string()),
            ("timezone", "Europe/Berlin".into()),
            ("executor", "default".into()),
            ("execution_mode", "skip".into()),
            ("max_retry", "2".into()),
            ("parameters", r#"{"command": "true"}"#.into()),
        ]
    };
    let as_refs = |v: &Vec<(&'static str, String)>| v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let a = b.post_owned("/tasks/new", &as_refs(&fields("console-made", "0 0 3 * * *"))).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let id: u64 = a.location.trim_start_matches("/tasks/").split('?').next().unwrap().parse().expect("task id");
    let again = b.post_owned("/tasks/new", &as_refs(&fields("console-made", "0 0 3 * * *"))).await;
    assert_eq!(again.location, a.location, "the same form, posted twice, is applied once");
    let api = client(&url, Some(&admin));
    let task: TaskView = api.get_task(&id.to_string(), Default::default()).await.expect("task");
    assert_eq!((task.timezone.as_str(), task.max_retry, task.updated_by.as_str()), ("Europe/Berlin", 2, "admin"));
    let page = b.get(&format!("/tasks/{id}?done=created")).await;
    assert!(page.body.contains("id=\"flash\"") && page.body.contains("id=\"pause-form\""), "{}", page.body);

    // Phase 5: a bad cron expression comes back next to its field, with what was typed kept.
    let form = b.get("/tasks/new").await.body;
    let mut bad = fields("console-bad", "61 * * * * *");
    bad[0].1 = hidden(&form, "csrf");
    bad[1].1 = hidden(&form, "request_id");
    let a = b.post_owned("/tasks/new", &bad).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("id=\"cron_expression-error\""), "the error is at its field: {}", a.body);
    assert!(a.body.contains("data-code=\"invalid_cron_expression\""), "with the API's code");
    assert!(a.body.contains("value=\"console-bad\""), "the form keeps what was typed");

    // Phase 6: the preview is the API's own, next to the form.
    let p = b.get("/ui/preview?cron_expression=0+30+2+*+*+*&timezone=America%2FNew_York").await;
    assert_eq!(p.body.matches("<li").count(), 10, "{}", p.body);
    let p = b.get("/ui/preview?cron_expression=nope&timezone=UTC").await;
    assert!(p.body.contains("field-error") && p.body.contains("invalid_cron_expression"), "{}", p.body);

    // Phase 7: forged posts change nothing: no csrf field, another session's token, another
    // site's Origin with the right token.
    let pause = format!("/tasks/{id}/pause");
    for (case, fields, origin) in [
        ("no csrf", vec![("request_id", "r1")], url.clone()),
        ("wrong csrf", vec![("csrf", "00000000000000000000000000000000"), ("request_id", "r2")], url.clone()),
        ("cross-site", vec![("csrf", csrf.as_str()), ("request_id", "r3")], "http://evil.example".to_string()),
    ] {
        let a = b.post_from(&pause, &fields, &origin).await;
        assert_eq!(a.status, 403, "{case}: {}", a.body);
        assert!(a.body.contains("data-code=\"csrf\""), "{case}");
    }
    let task: TaskView = api.get_task(&id.to_string(), Default::default()).await.unwrap();
    assert_eq!(cronraft_raft::model::TaskStatus::Active, task.status, "no forged post paused it");
    let a = b.post(&pause, &[("csrf", &csrf), ("request_id", "r4")]).await;
    assert_eq!((a.status, a.location.as_str()), (303, format!("/tasks/{id}?done=paused").as_str()));
    let task: TaskView = api.get_task(&id.to_string(), Default::default()).await.unwrap();
    assert_eq!(cronraft_raft::model::TaskStatus::Paused, task.status, "the genuine post paused it");

    // Phase 8: a `read` token sees no write control, and its own valid form post is refused
    // by the API's permission table.
    let reader = api
        .create_token(&TokenInput { name: "viewer".into(), role: Role::Read, groups: vec![], prefixes: vec![] })
        .await
        .expect("read token")
        .token;
    let mut r = Browser::new(&url);
    let a = r.post("/login", &[("token", &reader), ("next", "/tasks")]).await;
    r.cookie = Some(a.set_cookie[0].split(';').next().unwrap().to_string());
    let pages = [
        ("/tasks", "new-task"),
        (&*format!("/tasks/{id}"), "resume-form"),
        ("/cluster", "add-node-form"),
        ("/executors", "status-form"),
    ];
    for (path, control) in pages {
        let a = r.get(path).await;
        assert_eq!(a.status, 200, "{path}");
        assert!(!a.body.contains(control), "{path}: a read token is not shown {control}");
        assert!(a.body.contains("viewer (read)"), "{path} says who is signed in");
    }
    let page = r.get(&format!("/tasks/{id}")).await.body;
    let a = r.post(&format!("/tasks/{id}/resume"), &[("csrf", &hidden(&page, "csrf")), ("request_id", "r5")]).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("data-code=\"forbidden\""), "{}", a.body);
    let task: TaskView = api.get_task(&id.to_string(), Default::default()).await.unwrap();
    assert_eq!(cronraft_raft::model::TaskStatus::Paused, task.status, "the read token's post changed nothing");

    // Phase 9: revoking the token ends its sessions on every node; sign-out ends the admin's.
    api.revoke_token("viewer").await.expect("revoke");
    wait_for("the revoked session to end", Duration::from_secs(10), || async {
        let a = r.get("/tasks").await;
        (a.status == 303 && a.location.contains("expired=1")).then_some(())
    })
    .await;
    let a = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!((a.status, a.location.as_str()), (303, "/login"));
    assert!(a.set_cookie.iter().any(|c| c.starts_with("cronraft_session=;") && c.contains("Max-Age=0")));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_auth_off_the_console_needs_no_sign_in_but_still_guards_its_forms() {
    // Phase 1: one node, auth off (loopback): pages open at once, and the first one gives the
    // browser the cookie its CSRF token derives from.
    let cluster = Cluster::start(1, "[agent]\nenabled = false\n").await;
    let url = cluster.nodes[&1].url();
    let mut b = Browser::new(&url);
    let a = b.get("/").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("auth off") && !a.body.contains("logout-form"));
    let seed = a.set_cookie.iter().find(|c| c.starts_with("cronraft_browser=")).expect("browser cookie");
    assert!(seed.contains("HttpOnly") && seed.contains("SameSite=Strict"));
    b.cookie = Some(seed.split(';').next().unwrap().to_string());

    // Phase 2: a form without this browser's token is refused; with it, it works.
    let form = b.get("/tasks/new").await.body;
    let a = b.post("/tasks/new", &[("name", "x"), ("cron_expression", "@daily"), ("executor", "default")]).await;
    assert_eq!(a.status, 403, "{}", a.body);
    let fields = [
        ("csrf", hidden(&form, "csrf")),
        ("request_id", hidden(&form, "request_id")),
        ("name", "open-task".into()),
        ("cron_expression", "@daily".into()),
        ("timezone", "UTC".into()),
        ("executor", "default".into()),
    ];
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = b.post("/tasks/new", &refs).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let listed = b.get("/tasks").await.body;
    assert!(listed.contains("open-task"), "{listed}");
    let a = b.get("/login").await;
    assert!(a.body.contains("Authentication is off"), "{}", a.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_notifications_page_creates_and_deletes_channels_and_rules() {
    // Phase 1: one node, auth off: the page shows an empty outbox and the admin's forms.
    let cluster = Cluster::start(1, "[agent]\nenabled = false\n").await;
    let mut b = Browser::new(&cluster.nodes[&1].url());
    let seed = b.get("/").await.set_cookie.into_iter().find(|c| c.starts_with("cronraft_browser=")).unwrap();
    b.cookie = Some(seed.split(';').next().unwrap().to_string());
    let page = b.get("/notifications").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<strong>0</strong> of 10000") && page.body.contains("new-channel"), "{}", page.body);

    // Phase 2: a signed channel and a rule through the forms (the rule's checkboxes repeat).
    let secret = "console-secret-0123456789";
    let guard = |body: &str| (hidden(body, "csrf"), hidden(body, "request_id"));
    let (csrf, rid) = guard(&page.body);
    let fields = [
        ("csrf", csrf.as_str()),
        ("request_id", rid.as_str()),
        ("name", "ops"),
        ("kind", "webhook"),
        ("url", "http://127.0.0.1:9/hook"),
        ("secret", secret),
        ("template", "{{task}} {{event}}"),
    ];
    let a = b.post("/notifications/channels", &fields).await;
    assert_eq!((a.status, a.location.as_str()), (303, "/notifications?done=channel"), "{}", a.body);
    let page = b.get("/notifications").await.body;
    let (csrf, rid) = guard(&page);
    let fields = [
        ("csrf", csrf.as_str()),
        ("request_id", rid.as_str()),
        ("selector", "task_prefix"),
        ("value", "backup-"),
        ("events", "run_failed"),
        ("events", "recovered"),
        ("channels", "ops"),
    ];
    let a = b.post("/notifications/rules", &fields).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let page = b.get("/notifications").await.body;
    assert!(page.contains("data-channel=\"ops\"") && page.contains("signed") && !page.contains(secret), "{page}");
    assert!(page.contains("tasks named backup-") && page.contains("run_failed, recovered"), "{page}");
    let rules = cluster.client(1).list_rules().await.unwrap();
    assert_eq!((rules.len(), rules[0].task_prefix.as_deref()), (1, Some("backup-")));

    // Phase 3: an API refusal is shown with its code; then the rule and the channel go (each
    // post with its own request id, as each rendered form has).
    let csrf = hidden(&page, "csrf");
    let a = b.post("/notifications/channels/ops/delete", &[("csrf", &csrf), ("request_id", "t-1")]).await;
    assert!(a.body.contains("channel_in_use"), "{}", a.body);
    let a = b
        .post(&format!("/notifications/rules/{}/delete", rules[0].id), &[("csrf", &csrf), ("request_id", "t-2")])
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let a = b.post("/notifications/channels/ops/delete", &[("csrf", &csrf), ("request_id", "t-3")]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(cluster.client(1).list_channels().await.unwrap().is_empty());
}
