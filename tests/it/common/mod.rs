//! Test harness: real `cronraft` processes on free loopback ports, in temp dirs.
//!
//! Every node starts with `--http-addr 127.0.0.1:0 --raft-addr 127.0.0.1:0`; the harness reads
//! the bound addresses from the node's one stdout line and reuses them on restart (a node's
//! addresses are part of the replicated membership). Waiting is always on a condition, polled,
//! with a deadline. Dropping the cluster kills every process.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cronraft_api::client::{Client, RawResponse};
use cronraft_api::types::{ClusterView, ErrorBody, TaskInput};

pub mod executor;

/// Config for fast snapshots: a snapshot every 50 entries, 5 kept behind it.
pub const SMALL_SNAPSHOTS: &str = "[raft]\nsnapshot_logs_since_last = 50\nlogs_kept_after_snapshot = 5\n";

/// One node process.
pub struct NodeProc {
    pub id: u64,
    pub http: String,
    pub raft: String,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl NodeProc {
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }
}

/// A set of node processes sharing one temp dir.
pub struct Cluster {
    root: tempfile::TempDir,
    config: Option<PathBuf>,
    pub nodes: BTreeMap<u64, NodeProc>,
    /// Run each node's embedded agent (off by default: most tests bring their own executors).
    pub agent: bool,
}

impl Cluster {
    /// An empty cluster; `config` is TOML written to a file every node loads.
    pub fn new(config: &str) -> Cluster {
        let root = tempfile::tempdir().expect("temp dir");
        let config = (!config.is_empty()).then(|| {
            let p = root.path().join("config.toml");
            std::fs::write(&p, config).expect("write config");
            p
        });
        Cluster { root, config, nodes: BTreeMap::new(), agent: false }
    }

    /// Starts `n` nodes: node 1 bootstraps, the others join through it; waits for `n` voters.
    pub async fn start(n: u64, config: &str) -> Cluster {
        let mut c = Cluster::new(config);
        c.spawn(1, None, None);
        let join = c.nodes[&1].url();
        for id in 2..=n {
            c.spawn(id, Some(&join), None);
        }
        c.wait_voters(n).await;
        c
    }

    /// Starts node `id` (fresh ports unless `addrs` are given), joining through `join`.
    pub fn spawn(&mut self, id: u64, join: Option<&str>, addrs: Option<(String, String)>) {
        self.spawn_wrapped(id, join, addrs, &[]);
    }

    /// Like [`Cluster::spawn`], with the node run under `wrapper` (e.g. `strace … --`).
    pub fn spawn_wrapped(&mut self, id: u64, join: Option<&str>, addrs: Option<(String, String)>, wrapper: &[&str]) {
        let dir = self.root.path().join(format!("node{id}"));
        std::fs::create_dir_all(&dir).expect("node dir");
        let (http, raft) = addrs.unwrap_or(("127.0.0.1:0".into(), "127.0.0.1:0".into()));
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(env!("CARGO_BIN_EXE_cronraft"));
                cmd
            }
            None => Command::new(env!("CARGO_BIN_EXE_cronraft")),
        };
        cmd.args(["serve", "--node-id", &id.to_string(), "--http-addr", &http, "--raft-addr", &raft]);
        cmd.arg("--data-dir").arg(dir.join("data"));
        if !self.agent {
            cmd.arg("--no-agent");
        }
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        if let Some(j) = join {
            cmd.args(["--join", j]);
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("stderr.log")).expect("log");
        cmd.stdout(Stdio::piped()).stderr(log).env("CRONRAFT_LOG", "info,openraft=warn");
        let mut child = cmd.spawn().expect("spawn cronraft");
        let (http, raft) = read_listening_line(&mut child, id);
        self.nodes.insert(id, NodeProc { id, http, raft, dir, child: Some(child) });
    }

    /// `kill -9`.
    pub fn kill(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("node");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for a graceful exit.
    pub fn stop(&mut self, id: u64) -> std::process::ExitStatus {
        let node = self.nodes.get_mut(&id).expect("node");
        let mut child = node.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        child.wait().expect("wait")
    }

    /// SIGTERM to the node's children (the node itself when it runs under a wrapper such as
    /// strace), then waits for the wrapper to exit.
    pub fn stop_wrapped(&mut self, id: u64) -> std::process::ExitStatus {
        let node = self.nodes.get_mut(&id).expect("node");
        let mut child = node.child.take().expect("running");
        let _ = Command::new("pkill").args(["-TERM", "-P", &child.id().to_string()]).status();
        child.wait().expect("wait")
    }

    /// Restarts a stopped node on its old addresses with its old data.
    pub fn restart(&mut self, id: u64) {
        let node = &self.nodes[&id];
        assert!(!node.is_running(), "node {id} is still running");
        let addrs = (node.http.clone(), node.raft.clone());
        self.spawn(id, None, Some(addrs));
    }

    pub fn client(&self, id: u64) -> Client {
        Client::with_timeout([self.nodes[&id].url()], Duration::from_secs(20))
    }

    /// A client that knows every running node.
    pub fn any_client(&self) -> Client {
        let urls: Vec<String> = self.nodes.values().filter(|n| n.is_running()).map(|n| n.url()).collect();
        Client::with_timeout(urls, Duration::from_secs(20))
    }

    pub fn running(&self) -> Vec<u64> {
        self.nodes.values().filter(|n| n.is_running()).map(|n| n.id).collect()
    }

    /// The cluster view from node `id`.
    pub async fn view(&self, id: u64) -> Option<ClusterView> {
        self.client(id).cluster().await.ok()
    }

    /// Waits until every running node agrees on one leader and the membership has `n` voters.
    pub async fn wait_voters(&self, n: u64) -> u64 {
        let running = self.running();
        wait_for(&format!("{n} voters with an agreed leader"), Duration::from_secs(30), || async {
            let mut leader = None;
            for id in &running {
                let v = self.view(*id).await?;
                let voters = v.nodes.iter().filter(|x| x.role == "leader" || x.role == "follower").count() as u64;
                if voters != n || v.leader_id.is_none() || (leader.is_some() && leader != v.leader_id) {
                    return None;
                }
                leader = v.leader_id;
            }
            leader
        })
        .await
    }

    /// Waits until the running nodes agree on a leader; returns it.
    pub async fn wait_leader(&self) -> u64 {
        let running = self.running();
        wait_for("an agreed leader among running nodes", Duration::from_secs(30), || async {
            let mut leader = None;
            for id in &running {
                let l = self.view(*id).await?.leader_id?;
                if !running.contains(&l) || (leader.is_some() && leader != Some(l)) {
                    return None;
                }
                leader = Some(l);
            }
            leader
        })
        .await
    }

    /// Waits until every running node reports the same applied index and state digest.
    pub async fn wait_converged(&self) -> String {
        let running = self.running();
        wait_for("equal applied index and digest on every running node", Duration::from_secs(30), || async {
            let mut seen = None;
            for id in &running {
                let d = self.client(*id).digest().await.ok()?;
                let key = (d.applied_index, d.digest.clone());
                if seen.is_some() && seen.as_ref() != Some(&key) {
                    return None;
                }
                seen = Some(key);
            }
            seen.map(|(_, d)| d)
        })
        .await
    }

    /// A metric's value from node `id`'s `/metrics`.
    pub async fn metric(&self, id: u64, name: &str) -> Option<f64> {
        let text = reqwest::get(format!("{}/metrics", self.nodes[&id].url())).await.ok()?.text().await.ok()?;
        text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))?.split(' ').nth(1)?.parse().ok()
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Reads `cronraft node N listening http=A raft=B` from the child's stdout, then keeps draining
/// stdout on a thread so the child never blocks on a full pipe.
fn read_listening_line(child: &mut Child, id: u64) -> (String, String) {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && line.contains(" listening ") {
                let field = |k: &str| line.split(' ').find_map(|w| w.strip_prefix(k)).map(String::from);
                let _ = tx.send((field("http="), field("raft=")));
                sent = true;
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok((Some(http), Some(raft))) => (http, raft),
        other => panic!("node {id} did not report its addresses: {other:?} (status {:?})", child.try_wait()),
    }
}

/// Polls `check` until it returns `Some`, or panics after `limit` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A minimal valid task input.
pub fn task(name: &str) -> TaskInput {
    TaskInput { name: Some(name.into()), cron_expression: Some("0 * * * * *".into()), ..Default::default() }
}

/// Sends a raw request (body as text) and returns the answer, whatever its status.
pub async fn send(client: &Client, method: reqwest::Method, path: &str, body: Option<&str>) -> RawResponse {
    client.raw(method, path, body.map(|b| b.as_bytes().to_vec()), None).await.expect("request")
}

/// Asserts the status and the machine code of an error answer.
pub fn assert_error(resp: &RawResponse, status: u16, code: &str, case: &str) {
    assert_eq!(resp.status, status, "{case}: {}", resp.body);
    let body: ErrorBody =
        serde_json::from_str(&resp.body).unwrap_or_else(|e| panic!("{case}: not an error body ({e}): {}", resp.body));
    assert_eq!(body.error.code, code, "{case}: {}", resp.body);
    assert!(!body.error.message.is_empty(), "{case}: the message says what to fix");
}
