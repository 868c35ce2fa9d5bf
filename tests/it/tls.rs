//! TLS on every wire (issue 17, part 3), end to end: real `cronraft` processes whose certificates
//! come from `cronraft certs init`, on loopback ports.
//!
//! What is shown here:
//! - a three-node cluster with TLS on every listener (API, Raft, the embedded agents) and mTLS on
//!   Raft forms through `--join https://…`, forwards a write from a follower, reads it back on
//!   another node, and runs an every-second `echo` task on all three embedded agents (registered
//!   at `https://` URLs), and an `http` job against an `https://` endpoint of the test CA;
//! - plain HTTP to a TLS listener gets no answer; a Raft RPC without a client certificate is
//!   refused by the handshake (and the same RPC with the node's certificate is answered); a
//!   silent connection is closed at the header timeout and counts against the connection cap
//!   while it has not finished its handshake; the agents' job client trusts the CA file only
//!   when given it;
//! - a certificate re-issued on disk is served to new connections after SIGHUP, and after a
//!   change of the files alone; a broken key keeps the previous certificate;
//! - `certs init` refuses to overwrite, and signs new hosts with the CA it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use cronraft_api::client::Client;
use cronraft_api::context::Consistency;
use cronraft_api::types::TaskInput;
use cronraft_raft::model::{BalanceStrategy, ExecutionMode, ExecutionStatus};
use cronraft_raft::outbound::{self, ClientTls};
use cronraft_testkit::views::voters;
use cronraft_testkit::Launch;
use rustls::client::danger::ServerCertVerifier as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::json;
use tokio::net::TcpStream;

use crate::common::{gate, wait_for, NodeProc};

/// How long one request of a wait may take.
const ASK: Duration = Duration::from_secs(10);

/// `cronraft certs init --hosts HOSTS --out OUT [--force]`.
fn certs_init(out: &Path, hosts: &str, force: bool) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cronraft"));
    cmd.args(["certs", "init", "--hosts", hosts, "--out"]).arg(out);
    if force {
        cmd.arg("--force");
    }
    cmd.output().expect("run cronraft certs init")
}

fn init_ok(out: &Path, hosts: &str, force: bool) -> String {
    let o = certs_init(out, hosts, force);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "certs init {hosts}: {}{text}", String::from_utf8_lossy(&o.stderr));
    text
}

/// The first certificate of a PEM file, DER.
fn leaf_der(path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(path).expect("pem").next().expect("a certificate").expect("pem").to_vec()
}

/// Nodes that each serve TLS with their own certificate (`nodeN.pem`, issued for `nodeN` and
/// 127.0.0.1), from the CA in `certs/`.
struct TlsNodes {
    // Field order matters: the nodes die before their directory is removed.
    nodes: BTreeMap<u64, NodeProc>,
    root: tempfile::TempDir,
    certs: PathBuf,
    /// Settings every node gets, as `CRONRAFT_*` variables.
    env: Vec<(String, String)>,
    agent: bool,
    _gate: gate::Shared,
}

impl TlsNodes {
    /// Certificates for nodes `1..=n` (node 3 and up in a second run, which reuses the CA).
    fn new(n: u64, env: &[(&str, &str)], agent: bool) -> TlsNodes {
        let _gate = gate::shared();
        let root = tempfile::tempdir().expect("temp dir");
        let certs = root.path().join("certs");
        let first: Vec<String> = (1..=n.min(2)).map(|id| format!("node{id}+127.0.0.1")).collect();
        init_ok(&certs, &first.join(","), false);
        if n > 2 {
            let rest: Vec<String> = (3..=n).map(|id| format!("node{id}+127.0.0.1")).collect();
            let report = init_ok(&certs, &rest.join(","), false);
            assert!(report.contains("existing CA"), "{report}");
        }
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TlsNodes { nodes: BTreeMap::new(), root, certs, env, agent, _gate }
    }

    fn ca(&self) -> PathBuf {
        self.certs.join("ca.pem")
    }

    fn cert(&self, id: u64) -> PathBuf {
        self.certs.join(format!("node{id}.pem"))
    }

    fn launch(&self, id: u64) -> Launch {
        let mut l = Launch::new(env!("CARGO_BIN_EXE_cronraft"));
        l.agent = self.agent;
        let files = [
            ("CRONRAFT_TLS_CERT_FILE", self.cert(id)),
            ("CRONRAFT_TLS_KEY_FILE", self.certs.join(format!("node{id}-key.pem"))),
            ("CRONRAFT_TLS_CA_FILE", self.ca()),
        ];
        l.env = files.into_iter().map(|(k, v)| (OsString::from(k), v.into_os_string())).collect();
        l.env.extend(self.env.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))));
        l
    }

    fn spawn(&mut self, id: u64, join: Option<&str>) {
        let dir = self.root.path().join(format!("node{id}"));
        let node = NodeProc::start(&self.launch(id), id, &dir, ("127.0.0.1:0", "127.0.0.1:0"), join)
            .unwrap_or_else(|e| panic!("start node {id}: {e}"));
        self.nodes.insert(id, node);
    }

    fn url(&self, id: u64) -> String {
        format!("https://{}", self.nodes[&id].http)
    }

    /// A client that trusts the test CA (as `--ca-file` does).
    fn tls(&self) -> ClientTls {
        ClientTls::with_ca_file(&self.ca()).expect("the CA file")
    }

    fn client(&self, id: u64) -> Client {
        Client::with_tls([self.url(id)], ASK, &self.tls()).expect("client").with_token(self.admin().as_deref())
    }

    /// Turns auth on for the nodes started from now on: a cluster secret every node shares.
    fn with_auth(&mut self) {
        let path = self.root.path().join("cluster.secret");
        std::fs::write(&path, "a-cluster-secret-for-the-tls-test-0123456789").expect("write the secret");
        self.env.push(("CRONRAFT_CLUSTER_SECRET_FILE".into(), path.display().to_string()));
    }

    /// The first admin token, once node 1 has written it (auth on).
    fn admin(&self) -> Option<String> {
        let node = self.nodes.get(&1)?;
        std::fs::read_to_string(node.dir.join("data/admin.token")).ok().map(|t| t.trim().to_string())
    }

    /// Waits until every node names the same leader among `n` voters; returns the leader.
    async fn wait_voters(&self, n: usize) -> u64 {
        wait_for(&format!("{n} voters with one leader, over https"), Duration::from_secs(30), || async move {
            let mut leader = None;
            for id in self.nodes.keys() {
                let view = self.client(*id).cluster().await.ok()?;
                let l = view.leader_id?;
                if voters(&view) != n || leader.is_some_and(|x| x != l) {
                    return None;
                }
                leader = Some(l);
            }
            leader
        })
        .await
    }

    fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.nodes[&id].dir.join("stderr.log")).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_three_node_cluster_runs_with_tls_on_every_listener_mtls_between_peers_and_auth_on() {
    // Phase 1: certificates from `certs init` (node 3's from a second run, with the same CA);
    // node 1 bootstraps, nodes 2 and 3 join through `https://`; the Raft port requires a client
    // certificate from the CA, so Raft itself runs over mTLS. Auth is on as well (a cluster
    // secret): every request below carries the first admin token, the nodes' own calls and the
    // embedded agents the cluster credential, and the leader signs what it sends the agents.
    let mut c = TlsNodes::new(3, &[("CRONRAFT_TLS_PEER_CLIENT_AUTH", "true")], true);
    c.with_auth();
    c.spawn(1, None);
    let join = c.url(1);
    c.spawn(2, Some(&join));
    c.spawn(3, Some(&join));
    let leader = c.wait_voters(3).await;
    let view = c.client(leader).cluster().await.expect("cluster view");
    assert!(view.nodes.iter().all(|n| n.reachable), "every node answers the others over https: {view:?}");

    // Phase 2: a write through a follower is forwarded to the leader (https between the APIs)
    // and read back, linearizable, from the third node (read index over https).
    let follower = *c.nodes.keys().find(|id| **id != leader).expect("a follower");
    let third = *c.nodes.keys().find(|id| **id != leader && **id != follower).expect("a third node");
    let echo = TaskInput {
        name: Some("tls-echo".into()),
        cron_expression: Some("* * * * * *".into()),
        parameters: Some(json!({"command": "echo over-tls"})),
        execution_mode: Some(ExecutionMode::Parallel),
        load_balance_strategy: Some(BalanceStrategy::RoundRobin),
        timeout_seconds: Some(5),
        max_retry: Some(3),
        ..TaskInput::default()
    };
    let created = c.client(follower).create_task(&echo, Some("tls-create")).await.expect("create via a follower");
    let read = c.client(third).get_task("tls-echo", Consistency::Linearizable).await.expect("read back");
    assert_eq!(read.id, created.id);

    // Phase 3: the embedded agents registered at https:// URLs, and the every-second task runs
    // on all three (the leader dispatches over TLS; agents report over TLS).
    let agents = wait_for("three https agents, healthy", Duration::from_secs(30), || async {
        let page = c.client(third).list_executors(Some("local"), 1, 10, Consistency::Linearizable).await.ok()?;
        let good = page.items.iter().filter(|e| e.base_url.starts_with("https://127.0.0.1:") && e.is_healthy);
        (good.count() == 3).then_some(page.items)
    })
    .await;
    let ran = wait_for("successful runs on all three agents", Duration::from_secs(30), || async {
        let page = c.client(third).list_executions(Some("tls-echo"), None, 1, 100, Consistency::Local).await.ok()?;
        let ok: Vec<_> = page.items.iter().filter(|e| e.status == ExecutionStatus::Success).collect();
        let on: BTreeSet<String> =
            ok.iter().flat_map(|e| &e.attempts).map(|a| a.instance_id.clone()).collect::<BTreeSet<_>>();
        (on.len() == 3).then(|| ok.iter().map(|e| e.logs.clone()).collect::<Vec<_>>())
    })
    .await;
    assert!(ran.iter().all(|l| l == "over-tls\n"), "{ran:?}");
    assert!(agents.iter().all(|a| a.health_check_url.starts_with("https://")), "{agents:?}");

    // Phase 4: an `http` job calls an https endpoint served with the test CA (node 2's API):
    // the agents trust the CA file they were given.
    let target = format!("{}/health", c.url(2));
    let job = TaskInput {
        name: Some("tls-http".into()),
        cron_expression: Some("* * * * * *".into()),
        parameters: Some(json!({"http": {"url": target}})),
        ..TaskInput::default()
    };
    c.client(leader).create_task(&job, None).await.expect("create the http job");
    let status = wait_for("an https job to succeed", Duration::from_secs(30), || async {
        let page = c.client(leader).list_executions(Some("tls-http"), None, 1, 20, Consistency::Local).await.ok()?;
        page.items.iter().find(|e| e.status == ExecutionStatus::Success).map(|e| e.result.clone())
    })
    .await;
    assert!(status.contains("200"), "{status}");

    // Phase 5: without a token nothing is served; then the leader is killed (kill -9): a new
    // leader is elected over mTLS and the task goes on running on the two survivors' agents.
    let anonymous = Client::with_tls([c.url(third)], ASK, &c.tls()).expect("client").with_token(None);
    let refused = anonymous.list_tasks(None, 1, 10, Consistency::Local).await.expect_err("no token");
    assert_eq!(refused.code(), Some("unauthenticated"), "{refused}");
    let killed_at = chrono::Utc::now();
    c.nodes.get_mut(&leader).expect("leader").kill();
    let survivors: Vec<u64> = c.nodes.keys().copied().filter(|id| *id != leader).collect();
    let after = wait_for("runs on both survivors' agents after the leader's kill", Duration::from_secs(60), || async {
        let page = c
            .client(survivors[0])
            .list_executions(Some("tls-echo"), Some("success"), 1, 100, Consistency::Local)
            .await
            .ok()?;
        let on: BTreeSet<String> = page
            .items
            .iter()
            .filter(|e| e.scheduled_time > killed_at)
            .flat_map(|e| &e.attempts)
            .map(|a| a.instance_id.clone())
            .collect();
        (on.len() >= 2).then_some(on)
    })
    .await;
    assert!(!after.contains(&format!("local-node{leader}")), "no run on the dead host's agent: {after:?}");
}

/// Small API limits for the handshake checks: a 1.5 s header timeout, 4 connections.
const SMALL_API: &str = "[listeners.api]\nheader_read_timeout_ms = 1500\nconnections_max = 4\n";

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_and_raft_rpcs_without_a_client_certificate_are_refused_by_the_handshake() {
    let mut c = TlsNodes::new(1, &[], false);
    // `[tls]` from the config file this time (the other tests use CRONRAFT_TLS_* variables).
    let config = c.root.path().join("config.toml");
    let tls = format!("[tls]\npeer_client_auth = true\nca_file = {:?}\n", c.ca().display().to_string());
    std::fs::write(&config, format!("{SMALL_API}{tls}")).unwrap();
    let mut launch = c.launch(1);
    launch.config = Some(config);
    launch.env.retain(|(k, _)| k != "CRONRAFT_TLS_CA_FILE");
    let dir = c.root.path().join("node1");
    let node = NodeProc::start(&launch, 1, &dir, ("127.0.0.1:0", "127.0.0.1:0"), None).expect("start");
    c.nodes.insert(1, node);
    let (api, raft) = (c.nodes[&1].http.clone(), c.nodes[&1].raft.clone());
    c.wait_voters(1).await;

    // Phase 1: plain HTTP to the TLS API listener gets no HTTP answer.
    let plain = reqwest::Client::builder().no_proxy().timeout(ASK).build().unwrap();
    let err = plain.get(format!("http://{api}/health")).send().await.expect_err("plain HTTP to a TLS port");
    assert!(!err.is_status(), "{err:?}");

    // Phase 2: a Raft RPC from a client that trusts the CA but has no certificate is refused by
    // the handshake; the same RPC with the node's own certificate reaches the Raft router.
    let ca = reqwest::Certificate::from_pem(&std::fs::read(c.ca()).unwrap()).unwrap();
    let anonymous = reqwest::Client::builder().no_proxy().timeout(ASK).tls_certs_only([ca.clone()]).build().unwrap();
    let vote = format!("https://{raft}/raft/vote");
    let refused = anonymous.post(&vote).body(vec![0xffu8; 8]).send().await;
    assert!(refused.is_err(), "a certless Raft RPC got an answer: {refused:?}");
    let mut pem = std::fs::read(c.cert(1)).unwrap();
    pem.extend(std::fs::read(c.certs.join("node1-key.pem")).unwrap());
    let identity = reqwest::Identity::from_pem(&pem).unwrap();
    let peer = reqwest::Client::builder().no_proxy().timeout(ASK).tls_certs_only([ca]).identity(identity);
    let answered = peer.build().unwrap().post(&vote).body(vec![0xffu8; 8]).send().await.expect("an answer with a cert");
    assert_eq!(answered.status().as_u16(), 400, "the bytes reach the decoder (and fail it) only after the handshake");
    // The API listener asks for no certificate: the same certless client is served there.
    let health = anonymous.get(format!("https://{api}/health")).send().await.expect("api over https");
    assert_eq!(health.status().as_u16(), 200);

    drop(anonymous);

    // Phase 3: the handshake counts against the connection cap and the header timeout. Five
    // connections that never send a ClientHello: the one over the cap of four is closed at once,
    // the others after the 1.5 s header timeout. (A connection of an earlier phase may still be
    // closing: then two are closed at once, and three wait.)
    let opened = std::time::Instant::now();
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(&api).await.unwrap());
    }
    let closed = futures::future::join_all(silent.into_iter().map(|mut conn| async move {
        closed_within(&mut conn, Duration::from_secs(10)).await.then(|| opened.elapsed())
    }))
    .await;
    let closed: Vec<Duration> = closed.into_iter().map(|c| c.expect("a silent connection stays open")).collect();
    let at_once = closed.iter().filter(|t| **t < Duration::from_secs(1)).count();
    let at_timeout = closed.iter().filter(|t| **t >= Duration::from_millis(1_400)).count();
    assert!((1..=2).contains(&at_once) && at_once + at_timeout == 5, "close times: {closed:?}");

    // Phase 4: an agent's job client trusts the CA file when given one, and only then.
    let url = format!("https://{api}/health");
    let without = outbound::agent_jobs(&ClientTls::default()).unwrap().get(&url).send().await;
    let text = outbound::error_chain(&without.expect_err("an unknown CA is refused"));
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    let with = outbound::agent_jobs(&c.tls()).unwrap().get(&url).send().await.expect("the CA is trusted");
    assert_eq!(with.status().as_u16(), 200);
}

/// Whether the peer has closed `conn` within `limit` (EOF or reset).
async fn closed_within(conn: &mut TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    tokio::time::timeout(limit, conn.read_to_end(&mut buf)).await.is_ok()
}

/// The certificate the node serves to a new connection, DER.
async fn served(url: &str, ca: &Path) -> Option<Vec<u8>> {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).ok()?).ok()?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(ASK)
        .pool_max_idle_per_host(0)
        .tls_certs_only([ca])
        .tls_info(true)
        .build()
        .ok()?;
    let resp = client.get(format!("{url}/health")).send().await.ok()?;
    resp.extensions().get::<reqwest::tls::TlsInfo>()?.peer_certificate().map(<[u8]>::to_vec)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_replaced_on_disk_is_served_after_sighup_or_once_the_files_change() {
    // A file poll once a minute: within this test's waits, only SIGHUP can reload.
    let mut c = TlsNodes::new(1, &[("CRONRAFT_TLS_RELOAD_CHECK_MS", "60000")], false);
    c.spawn(1, None);
    c.wait_voters(1).await;
    let (url, ca) = (c.url(1), c.ca());
    let first = leaf_der(&c.cert(1));
    assert_eq!(served(&url, &ca).await.as_deref(), Some(first.as_slice()), "the file's certificate is served");

    // Phase 1: re-issue node 1 (same CA) and SIGHUP: new connections get the new certificate.
    init_ok(&c.certs, "node1+127.0.0.1", true);
    let second = leaf_der(&c.cert(1));
    assert_ne!(first, second);
    c.nodes[&1].signal(libc::SIGHUP);
    wait_for("the re-issued certificate to be served after SIGHUP", Duration::from_secs(10), || async {
        (served(&url, &ca).await? == second).then_some(())
    })
    .await;

    // Phase 2: a broken key and SIGHUP: the node keeps serving the last good certificate, alive,
    // and says why in one warning.
    let key = c.certs.join("node1-key.pem");
    let good_key = std::fs::read(&key).unwrap();
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n").unwrap();
    c.nodes[&1].signal(libc::SIGHUP);
    wait_for("a warning about the failed reload", Duration::from_secs(10), || async {
        c.log(1).contains("cannot reload the TLS certificate").then_some(())
    })
    .await;
    assert_eq!(served(&url, &ca).await, Some(second.clone()), "the previous certificate stays");
    assert!(!c.log(1).contains("broken"), "no key material in the log");
    std::fs::write(&key, good_key).unwrap();

    // Phase 3: restarted with a 200 ms file poll, the node picks up a new pair on disk without
    // any signal.
    c.nodes.get_mut(&1).unwrap().terminate();
    c.env = vec![("CRONRAFT_TLS_RELOAD_CHECK_MS".into(), "200".into())];
    let launch = c.launch(1);
    c.nodes.get_mut(&1).unwrap().restart(&launch, None).expect("restart");
    assert_eq!(served(&url, &ca).await, Some(second), "the files' certificate after the restart");
    init_ok(&c.certs, "node1+127.0.0.1", true);
    let third = leaf_der(&c.cert(1));
    wait_for("the changed files to be served without a signal", Duration::from_secs(10), || async {
        (served(&url, &ca).await? == third).then_some(())
    })
    .await;
    assert!(c.log(1).contains("file change"), "the reload says what triggered it");
}

#[test]
fn certs_init_refuses_to_overwrite_and_signs_new_hosts_with_the_ca_it_finds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");

    // Phase 1: a CA and two hosts; the report says what was written and what to do next.
    let report = init_ok(&out, "node1,10.0.0.3", false);
    for f in ["ca.pem", "ca-key.pem", "node1.pem", "node1-key.pem", "10.0.0.3.pem", "10.0.0.3-key.pem"] {
        assert!(out.join(f).exists(), "{f} written");
        assert!(report.contains(f), "{f} named in the report: {report}");
    }
    assert!(report.contains("--tls-cert-file") && report.contains("--ca-file"), "next steps: {report}");
    let ca_before = std::fs::read(out.join("ca.pem")).unwrap();
    let node1_before = std::fs::read(out.join("node1.pem")).unwrap();

    // Phase 2: the same host again is refused, nothing is written, and the error names --force.
    let again = certs_init(&out, "node2,node1", false);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("node1.pem") && err.contains("--force"), "{err}");
    assert!(!out.join("node2.pem").exists(), "a refusal writes nothing");
    assert_eq!(std::fs::read(out.join("node1.pem")).unwrap(), node1_before);

    // Phase 3: a new host is signed by the CA already there, which stays as it was: its
    // certificate verifies against ca.pem for its name.
    init_ok(&out, "node2", false);
    assert_eq!(std::fs::read(out.join("ca.pem")).unwrap(), ca_before, "the CA is never replaced");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(out.join("ca.pem")).unwrap()).unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        outbound::tls::provider(),
    )
    .build()
    .unwrap();
    let leaf = CertificateDer::from_pem_file(out.join("node2.pem")).unwrap();
    let name = rustls_pki_types::ServerName::try_from("node2").unwrap();
    let now = rustls_pki_types::UnixTime::now();
    verifier.verify_server_cert(&leaf, &[], &name, &[], now).expect("node2's certificate chains to the CA");
    let other = rustls_pki_types::ServerName::try_from("node9").unwrap();
    assert!(verifier.verify_server_cert(&leaf, &[], &other, &[], now).is_err(), "only for its own name");

    // Phase 4: --force re-issues an existing host.
    init_ok(&out, "node1", true);
    assert_ne!(std::fs::read(out.join("node1.pem")).unwrap(), node1_before);
}
