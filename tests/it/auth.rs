//! Who may do what (issue 17, points 1 and 2), end to end on three real nodes with a cluster
//! secret: the first admin token, tokens of every role, the permission of every route for every
//! kind of caller through a follower and through the leader, the author of every write, revoking,
//! and the peers' credential (forged Raft RPCs, a node without the secret trying to join).

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{wait_for, Cluster};
use cronraft_api::client::{Client, RawResponse};
use cronraft_api::types::{ErrorBody, TaskInput, TokenInput};
use cronraft_raft::model::Role;
use reqwest::Method;

pub(crate) const SECRET: &str = "a-cluster-secret-of-forty-bytes-0123456789";
const ASK: Duration = Duration::from_secs(20);

/// The cluster secret file and the config that turns auth on, in `root`.
fn auth_config(root: &std::path::Path, secret: &str) -> String {
    let path = root.join(format!("secret-{}", secret.len()));
    std::fs::write(&path, format!("{secret}\n")).expect("write secret");
    format!("[auth]\ncluster_secret_file = {:?}\n[agent]\nenabled = false\n", path.display().to_string())
}

pub(crate) fn client(url: &str, token: Option<&str>) -> Client {
    Client::with_timeout([url], ASK).with_token(token)
}

/// What a caller gets from a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Anything but 401 and 403 `forbidden`/`out_of_scope`: the check let it through.
    Allowed,
    Unauthenticated,
    Forbidden,
    OutOfScope,
}

fn outcome(resp: &RawResponse) -> Outcome {
    let code = serde_json::from_str::<ErrorBody>(&resp.body).map(|b| b.error.code).unwrap_or_default();
    match (resp.status, code.as_str()) {
        (401, _) => Outcome::Unauthenticated,
        (403, "forbidden") => Outcome::Forbidden,
        (403, "out_of_scope") => Outcome::OutOfScope,
        _ => Outcome::Allowed,
    }
}

/// Waits until the nodes at `urls` agree on one leader and three voters, asking with `token`.
pub(crate) async fn wait_three_voters(urls: &[String], token: &str) -> u64 {
    wait_for("three voters with an agreed leader", Duration::from_secs(30), || async {
        let mut leader = None;
        for url in urls {
            let v = client(url, Some(token)).cluster().await.ok()?;
            let voters = v.nodes.iter().filter(|n| n.role == "leader" || n.role == "follower").count();
            if voters != 3 || v.leader_id.is_none() || (leader.is_some() && leader != v.leader_id) {
                return None;
            }
            leader = v.leader_id;
        }
        leader
    })
    .await
}

/// Starts node 1 of `cluster` with auth on (the cluster secret `secret`; its embedded agent if
/// `agent`) and returns the first admin token once the node has written it (it works from then on).
pub(crate) async fn start_first_node(cluster: &mut Cluster, secret: &str, agent: bool) -> String {
    let config_path = cluster.root().join("auth.toml");
    let mut config = auth_config(cluster.root(), secret);
    if agent {
        config = config.replace("[agent]\nenabled = false\n", "");
        cluster.agent = true;
    }
    std::fs::write(&config_path, config).unwrap();
    cluster.set_config_file(&config_path);
    cluster.spawn(1, None, None);
    let token_file = cluster.nodes[&1].dir.join("data/admin.token");
    let admin = wait_for("the first admin token", Duration::from_secs(20), || async {
        std::fs::read_to_string(&token_file).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
    })
    .await;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the admin token file is private");
    admin
}

/// Three nodes with auth on (node 1 bootstraps, 2 and 3 join; embedded agents if `agent`):
/// the cluster, the first admin token and the leader's id.
pub(crate) async fn start_three(agent: bool) -> (Cluster, String, u64) {
    let mut cluster = Cluster::new("");
    let admin = start_first_node(&mut cluster, SECRET, agent).await;
    let join = cluster.nodes[&1].url();
    cluster.spawn(2, Some(&join), None);
    cluster.spawn(3, Some(&join), None);
    let urls: Vec<String> = (1..=3).map(|id| cluster.nodes[&id].url()).collect();
    let leader = wait_three_voters(&urls, &admin).await;
    (cluster, admin, leader)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_each_role_as_the_permission_table_says_on_a_follower_and_on_the_leader() {
    // Phase 1: node 1 bootstraps with auth on and writes the first admin token, private, to its
    // data directory; nodes 2 and 3 join with the same secret.
    let (cluster, admin, leader) = start_three(false).await;
    let urls: Vec<String> = (1..=3).map(|id| cluster.nodes[&id].url()).collect();
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    // Phase 2: tokens of every role, and another team's (operate, limited to `team-b-` tasks).
    let admin_client = client(&cluster.nodes[&follower].url(), Some(&admin));
    let mut tokens = std::collections::BTreeMap::new();
    for (name, role, prefixes) in [
        ("reader", Role::Read, vec![]),
        ("operator", Role::Operate, vec![]),
        ("worker", Role::Executor, vec![]),
        ("root2", Role::Admin, vec![]),
        ("team-b", Role::Operate, vec!["team-b-".to_string()]),
    ] {
        let input = TokenInput { name: name.into(), role, groups: vec![], prefixes };
        let created = admin_client.create_token(&input).await.expect("create token");
        assert!(created.token.starts_with("crt_") && created.token.len() == 68, "256 bits in hex: {}", created.token);
        tokens.insert(name, created.token);
    }
    let listed = admin_client.list_tokens().await.expect("list");
    assert_eq!(listed.len(), 6, "admin and five more: {listed:?}");
    assert!(!serde_json::to_string(&listed).unwrap().contains("crt_"), "a listing never shows a secret");

    // Fixtures the routes act on: tasks of team a (one to delete), an execution.
    let yearly = |name: &str| TaskInput {
        name: Some(name.into()),
        cron_expression: Some("0 0 0 1 1 *".into()),
        ..TaskInput::default()
    };
    let secret_task = TaskInput {
        parameters: Some(serde_json::json!({"command": "true", "password": {"secret": "p4ss"}})),
        ..yearly("team-a-job")
    };
    let task = admin_client.create_task(&secret_task, None).await.expect("task").id;
    let doomed = admin_client.create_task(&yearly("team-a-doomed"), None).await.expect("task").id;
    let run = admin_client.trigger_task(&task.to_string(), &Default::default(), None).await.expect("trigger").id;

    // Phase 3: the matrix. `need`: - open, R read, O operate, E executor, A admin, C cluster only.
    let routes: Vec<(Method, String, Option<String>, char)> = vec![
        (Method::GET, "/health".into(), None, '-'),
        (Method::GET, "/ready".into(), None, '-'),
        (Method::GET, "/api/v1/openapi.json".into(), None, '-'),
        (Method::GET, "/metrics".into(), None, 'R'),
        (Method::GET, "/api/v1/cluster".into(), None, 'R'),
        (Method::GET, "/api/v1/schedule/preview?cron_expression=*+*+*+*+*+*".into(), None, 'R'),
        (Method::GET, "/api/v1/scheduler/status".into(), None, 'R'),
        (Method::GET, "/api/v1/stats".into(), None, 'R'),
        (Method::GET, "/api/v1/tasks".into(), None, 'R'),
        (Method::GET, format!("/api/v1/tasks/{task}"), None, 'R'),
        (Method::GET, format!("/api/v1/tasks/{task}/stats"), None, 'R'),
        (Method::GET, "/api/v1/executions".into(), None, 'R'),
        (Method::GET, format!("/api/v1/executions/{run}"), None, 'R'),
        (Method::GET, "/api/v1/executors".into(), None, 'R'),
        (Method::GET, "/api/v1/executors/999".into(), None, 'R'),
        (
            Method::POST,
            "/api/v1/tasks".into(),
            Some(r#"{"name":"team-a-new","cron_expression":"0 0 0 1 1 *"}"#.into()),
            'O',
        ),
        (Method::PUT, format!("/api/v1/tasks/{task}"), Some(r#"{"description":"changed"}"#.into()), 'O'),
        (Method::POST, format!("/api/v1/tasks/{task}/pause"), None, 'O'),
        (Method::POST, format!("/api/v1/tasks/{task}/resume"), None, 'O'),
        (Method::POST, format!("/api/v1/tasks/{task}/trigger"), None, 'O'),
        (Method::DELETE, format!("/api/v1/tasks/{doomed}"), None, 'O'),
        (Method::POST, format!("/api/v1/executions/{run}/stop"), None, 'O'),
        (
            Method::POST,
            "/api/v1/executors/register".into(),
            Some(r#"{"name":"g","instance_id":"g-1","base_url":"http://127.0.0.1:9"}"#.into()),
            'E',
        ),
        (
            Method::POST,
            format!("/api/v1/executions/{run}/callback"),
            Some(r#"{"attempt":1,"status":"success","callback_token":"x"}"#.into()),
            'E',
        ),
        (Method::GET, "/api/v1/cluster/digest".into(), None, 'A'),
        (Method::GET, "/api/v1/tokens".into(), None, 'A'),
        (Method::GET, "/api/v1/audit".into(), None, 'A'),
        (Method::POST, "/api/v1/tokens".into(), Some(r#"{"name":"x y","role":"read"}"#.into()), 'A'),
        (Method::DELETE, "/api/v1/tokens/nobody".into(), None, 'A'),
        (Method::POST, "/api/v1/cluster/nodes".into(), Some("{}".into()), 'A'),
        (Method::POST, "/api/v1/cluster/nodes/99/promote".into(), None, 'A'),
        (Method::DELETE, "/api/v1/cluster/nodes/99".into(), None, 'A'),
        (Method::PUT, "/api/v1/executors/999/status".into(), Some(r#"{"status":"offline"}"#.into()), 'A'),
        (Method::DELETE, "/api/v1/executors/999".into(), None, 'A'),
        (Method::GET, "/api/v1/cluster/self".into(), None, 'C'),
        (Method::POST, "/api/v1/internal/read-index".into(), None, 'C'),
    ];
    // Denied callers first: a refused request changes nothing, so the allowed ones after them
    // act on the fixtures as they were.
    let callers: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("unknown token", Some("crt_0000000000000000000000000000000000000000000000000000000000000000".into())),
        ("read", Some(tokens["reader"].clone())),
        ("executor", Some(tokens["worker"].clone())),
        ("other team", Some(tokens["team-b"].clone())),
        ("operate", Some(tokens["operator"].clone())),
        ("admin", Some(tokens["root2"].clone())),
    ];
    let expect = |need: char, caller: &str| -> Outcome {
        use Outcome::*;
        match (need, caller) {
            ('-', _) => Allowed,
            (_, "no token") | (_, "unknown token") => Unauthenticated,
            ('C', _) => Forbidden,
            ('R', "read" | "operate" | "admin" | "other team") => Allowed,
            ('O', "operate" | "admin") => Allowed,
            ('O', "other team") => OutOfScope,
            ('E', "executor" | "admin") => Allowed,
            ('A', "admin") => Allowed,
            _ => Forbidden,
        }
    };
    let mut checked = 0;
    for (node, label) in [(follower, "follower"), (leader, "leader")] {
        let url = cluster.nodes[&node].url();
        for (method, path, body, need) in &routes {
            for (caller, token) in &callers {
                let c = client(&url, token.as_deref());
                let resp = c
                    .raw(method.clone(), path, body.as_ref().map(|b| b.as_bytes().to_vec()), None)
                    .await
                    .expect("request");
                let want = expect(*need, caller);
                assert_eq!(
                    outcome(&resp),
                    want,
                    "{method} {path} by {caller} through the {label}: {} {}",
                    resp.status,
                    resp.body
                );
                if want == Outcome::Unauthenticated {
                    assert_eq!(resp.status, 401, "{method} {path}: {}", resp.body);
                }
                checked += 1;
            }
        }
    }
    eprintln!("phase 3: {checked} requests answered as the table says");

    // Phase 4: a forwarded request is checked again on the leader with the token it carries: a
    // read token claiming to be admin and to come from a follower is still refused there.
    let leader_url = cluster.nodes[&leader].url();
    let forged = reqwest::Client::new()
        .post(format!("{leader_url}/api/v1/tasks"))
        .header("authorization", format!("Bearer {}", tokens["reader"]))
        .header("x-cronraft-forwarded", "1")
        .header("x-cronraft-caller", "admin")
        .header("content-type", "application/json")
        .body(r#"{"name":"forged","cron_expression":"0 0 0 1 1 *"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403, "a claimed identity counts for nothing");

    // Phase 5: every write names its author: the task's `updated_by`, the run's `requested_by`,
    // and the audit list (newest first).
    let operator = client(&cluster.nodes[&follower].url(), Some(&tokens["operator"]));
    let t = operator.pause_task(&task.to_string(), Some("audit-pause")).await.expect("pause");
    assert_eq!(t.updated_by, "operator");
    let e = operator.trigger_task(&task.to_string(), &Default::default(), None).await.expect("trigger");
    assert_eq!(e.requested_by, "operator", "the token's name, not a claim");
    let audit = admin_client.audit(1, 50).await.expect("audit");
    let mine: Vec<_> = audit.items.iter().filter(|a| a.by == "operator").map(|a| a.action.as_str()).collect();
    assert!(mine.starts_with(&["trigger_task", "pause_task"]), "newest first: {mine:?}");
    assert!(audit.items.iter().any(|a| a.by == "admin" && a.action == "create_token" && a.target == "token team-b"));
    assert!(audit.total >= 10, "{}", audit.total);

    // Phase 5b: a secret parameter value is hidden from a read token, shown to operate.
    let shown = |token: &str| {
        let c = client(&cluster.nodes[&follower].url(), Some(token));
        async move { c.get_task(&task.to_string(), Default::default()).await.expect("read").parameters["password"].clone() }
    };
    assert_eq!(shown(&tokens["reader"]).await, serde_json::json!({"secret": "***"}));
    assert_eq!(shown(&tokens["operator"]).await, serde_json::json!({"secret": "p4ss"}));

    // Phase 6: a revoked token stops working on every node once each has applied the revoke.
    admin_client.revoke_token("reader").await.expect("revoke");
    for url in &urls {
        let reader = client(url, Some(&tokens["reader"]));
        wait_for("the revoked token refused", Duration::from_secs(10), || async {
            (outcome(&reader.raw(Method::GET, "/api/v1/tasks", None, None).await.ok()?) == Outcome::Unauthenticated)
                .then_some(())
        })
        .await;
    }

    // Phase 7: an executor token registers its own group's tasks, never another group's.
    let worker = client(&cluster.nodes[&follower].url(), Some(&tokens["worker"]));
    let body =
        r#"{"name":"g","instance_id":"g-2","base_url":"http://127.0.0.1:9","tasks":[{"task_name":"team-a-job"}]}"#;
    let resp = worker.raw(Method::POST, "/api/v1/executors/register", Some(body.into()), None).await.unwrap();
    assert_eq!(outcome(&resp), Outcome::OutOfScope, "{}", resp.body);
    let body = r#"{"name":"g","instance_id":"g-2","base_url":"http://127.0.0.1:9","tasks":[{"task_name":"g-own","cron":"0 0 0 1 1 *"}]}"#;
    let resp = worker.raw(Method::POST, "/api/v1/executors/register", Some(body.into()), None).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn peers_without_the_cluster_secret_are_refused_before_any_body_is_decoded() {
    // Phase 1: one node with auth on.
    let mut cluster = Cluster::new("");
    let admin = start_first_node(&mut cluster, SECRET, false).await;
    let raft = format!("http://{}", cluster.nodes[&1].raft);

    // Phase 2: Raft RPCs without the credential, or with a wrong one, are refused with 401 — even
    // the 17-byte decode bomb of issue 15, so nothing was decoded (a decoded bomb answers 400).
    let bomb: &[u8] = &[0xff, 0, 0, 0, 0, 0, 0, 0, 0x40, 1, 2, 3, 4, 5, 6, 7, 8];
    let http = reqwest::Client::new();
    let other =
        cronraft_raft::cluster_secret::ClusterSecret::from_bytes(b"some-other-secret-0123456789abcdef", "t").unwrap();
    for path in ["append", "vote", "snapshot"] {
        for auth in [None, Some("Bearer crp_00".to_string()), Some(other.authorization())] {
            let mut req = http.post(format!("{raft}/raft/{path}")).body(bomb.to_vec());
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 401, "{path} with {auth:?}");
        }
    }
    // With the right credential the same bytes reach the decoder, which refuses them.
    let right = cronraft_raft::cluster_secret::ClusterSecret::from_bytes(SECRET.as_bytes(), "t").unwrap();
    let resp = http
        .post(format!("{raft}/raft/vote"))
        .header("authorization", right.authorization())
        .body(bomb.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400, "the decoder saw it only with the secret");
    let health = client(&cluster.nodes[&1].url(), None).raw(Method::GET, "/health", None, None).await.unwrap();
    assert_eq!(health.status, 200, "the node still answers");

    // Phase 3: a node with another secret cannot join: its add-learner request is refused (401),
    // and the membership stays one voter.
    let other_config = cluster.root().join("other.toml");
    std::fs::write(&other_config, auth_config(cluster.root(), "another-secret-of-enough-bytes-0123456789!")).unwrap();
    cluster.set_config_file(&other_config);
    let join = cluster.nodes[&1].url();
    cluster.spawn(2, Some(&join), None);
    let log = cluster.nodes[&2].dir.join("stderr.log");
    wait_for("node 2's join refused", Duration::from_secs(20), || async {
        std::fs::read_to_string(&log).ok().filter(|l| l.contains("unauthenticated")).map(|_| ())
    })
    .await;
    let view = client(&join, Some(&admin)).cluster().await.expect("view");
    assert_eq!(view.nodes.len(), 1, "no learner was added: {view:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_take_only_fresh_signed_requests_and_the_cluster_s_own_dispatch_is_signed() {
    // Phase 1: one node with auth on and its embedded agent; the agent learns its key when it
    // registers, and the leader's signed dispatch runs an every-second task on it.
    let mut cluster = Cluster::new("");
    let admin = start_first_node(&mut cluster, SECRET, true).await;
    let api = client(&cluster.nodes[&1].url(), Some(&admin));
    let task = TaskInput {
        name: Some("signed".into()),
        cron_expression: Some("* * * * * *".into()),
        parameters: Some(serde_json::json!({"command": "echo signed"})),
        ..TaskInput::default()
    };
    let task_id = api.create_task(&task, None).await.expect("create").id;
    let done = wait_for("a successful run through the signed protocol", Duration::from_secs(30), || async {
        let page =
            api.list_executions(Some(&task_id.to_string()), Some("success"), 1, 5, Default::default()).await.ok()?;
        page.items.into_iter().next()
    })
    .await;
    assert_eq!(done.logs.trim(), "signed");
    let agent = api.list_executors(None, 1, 10, Default::default()).await.expect("executors").items.remove(0);

    // Phase 2: the agent refuses an unsigned request, one signed with the wrong key, a replay of
    // a good one, and a good one with a stale timestamp; it takes the good one once.
    let key = cronraft_raft::cluster_secret::ClusterSecret::from_bytes(SECRET.as_bytes(), "t")
        .unwrap()
        .executor_key(&agent.instance_id);
    let body = serde_json::json!({
        "execution_id": 999_999, "attempt": 1, "task_id": task_id, "task_name": "signed",
        "parameters": {"command": "true"}, "timeout_seconds": 5, "scheduled_time": "2026-12-02T00:00:00Z",
        "term": 1, "log_index": 1, "callback_urls": [cluster.nodes[&1].url()], "callback_token": "x"
    })
    .to_string();
    let http = reqwest::Client::new();
    let post = |ts: Option<String>, sig: Option<String>| {
        let mut req = http.post(format!("{}/execute", agent.base_url)).body(body.clone());
        if let (Some(ts), Some(sig)) = (ts, sig) {
            req = req
                .header(cronraft_api::signature::TIMESTAMP_HEADER, ts)
                .header(cronraft_api::signature::SIGNATURE_HEADER, sig);
        }
        req.send()
    };
    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(post(None, None).await.unwrap().status().as_u16(), 401, "unsigned");
    let (ts, wrong) = cronraft_api::signature::sign(&[1; 32], "/execute", now, body.as_bytes());
    assert_eq!(post(Some(ts), Some(wrong)).await.unwrap().status().as_u16(), 401, "wrong key");
    let (ts, sig) = cronraft_api::signature::sign(&key, "/execute", now, body.as_bytes());
    assert_eq!(post(Some(ts.clone()), Some(sig.clone())).await.unwrap().status().as_u16(), 202, "signed");
    assert_eq!(post(Some(ts), Some(sig)).await.unwrap().status().as_u16(), 401, "replayed");
    let stale = now - cronraft_api::signature::WINDOW_MS - 60_000;
    let (ts, sig) = cronraft_api::signature::sign(&key, "/execute", stale, body.as_bytes());
    assert_eq!(post(Some(ts), Some(sig)).await.unwrap().status().as_u16(), 401, "stale");

    // Phase 3: a callback with a wrong token changes nothing.
    let before = api.get_execution(done.id, Default::default()).await.expect("read");
    let report = r#"{"attempt":1,"status":"failed","callback_token":"wrong"}"#;
    let path = format!("/api/v1/executions/{}/callback", done.id);
    let resp = api.raw(Method::POST, &path, Some(report.into()), None).await.unwrap();
    assert!(resp.status == 403 || resp.status == 409, "refused: {} {}", resp.status, resp.body);
    let after = api.get_execution(done.id, Default::default()).await.expect("read");
    assert_eq!((after.status, after.end_time), (before.status, before.end_time), "nothing changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_mid_rotation_of_its_secret_forms_forwards_and_runs_signed_jobs() {
    // Phase 1: the middle of a rotation from secret A to B: node 2 already sends B, nodes 1 and 3
    // still send A; every node accepts both (one secret per line, the first the one it uses).
    let (a, b) = ("the-old-cluster-secret-0123456789abcdef", "the-new-cluster-secret-0123456789abcdef");
    let mut cluster = Cluster::new("");
    cluster.agent = true;
    let config = |cluster: &Cluster, id: u64, lines: &str| {
        let secret = cluster.root().join(format!("secret-{id}"));
        std::fs::write(&secret, lines).unwrap();
        let path = cluster.root().join(format!("auth-{id}.toml"));
        std::fs::write(&path, format!("[auth]\ncluster_secret_file = {:?}\n", secret.display().to_string())).unwrap();
        path
    };
    let c1 = config(&cluster, 1, &format!("{a}\n{b}\n"));
    cluster.set_config_file(&c1);
    cluster.spawn(1, None, None);
    let token_file = cluster.nodes[&1].dir.join("data/admin.token");
    let admin = wait_for("the first admin token", Duration::from_secs(20), || async {
        std::fs::read_to_string(&token_file).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
    })
    .await;
    let join = cluster.nodes[&1].url();
    for (id, lines) in [(2, format!("{b}\n{a}\n")), (3, format!("{a}\n{b}\n"))] {
        let path = config(&cluster, id, &lines);
        cluster.set_config_file(&path);
        cluster.spawn(id, Some(&join), None);
    }
    let urls: Vec<String> = (1..=3).map(|id| cluster.nodes[&id].url()).collect();
    wait_three_voters(&urls, &admin).await;

    // Phase 2: a task written through node 2 runs on the embedded agents of all three nodes: the
    // leader signs with its current secret's key, and every agent accepts either key.
    let api = client(&cluster.nodes[&2].url(), Some(&admin));
    let task = TaskInput {
        name: Some("mid-rotation".into()),
        cron_expression: Some("* * * * * *".into()),
        parameters: Some(serde_json::json!({"command": "echo rotated"})),
        ..TaskInput::default()
    };
    api.create_task(&task, None).await.expect("create through node 2");
    wait_for("successful runs on all three agents", Duration::from_secs(30), || async {
        let page = api.list_executions(Some("mid-rotation"), Some("success"), 1, 100, Default::default()).await.ok()?;
        let on: std::collections::BTreeSet<String> =
            page.items.iter().flat_map(|e| &e.attempts).map(|a| a.instance_id.clone()).collect();
        (on.len() == 3).then_some(())
    })
    .await;
}
