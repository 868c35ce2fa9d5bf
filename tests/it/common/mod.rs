//! Test harness: real `cronraft` processes on free loopback ports, in temp dirs, on the test kit
//! (`cronraft-testkit`), with the panicking API tests want.
//!
//! Every node starts with `--http-addr 127.0.0.1:0 --raft-addr 127.0.0.1:0`; the kit reads the
//! bound addresses from the node's one stdout line and reuses them on restart (a node's addresses
//! are part of the replicated membership). Waiting is always on a condition, polled, with a
//! deadline. Dropping the cluster kills every process.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cronraft_api::client::{Client, RawResponse};
use cronraft_api::types::{ClusterView, ErrorBody, TaskInput};
use cronraft_testkit::views::{self, Agreement};
use cronraft_testkit::Launch;

pub use cronraft_testkit::wait_for;
pub use cronraft_testkit::Node as NodeProc;

pub mod gate;
pub mod sandbox;
pub mod slots;

/// The recording executor, under the name these tests know it by.
pub mod executor {
    pub use cronraft_testkit::executor::{register, Behavior, Executor as TestExecutor};
}

/// Config for fast snapshots: a snapshot every 50 entries, 5 kept behind it.
pub const SMALL_SNAPSHOTS: &str = "[raft]\nsnapshot_logs_since_last = 50\nlogs_kept_after_snapshot = 5\n";

/// How long one request of a wait may take.
const ASK: Duration = Duration::from_secs(20);

/// A set of node processes sharing one temp dir.
pub struct Cluster {
    // Field order matters: the nodes die before their directory is removed.
    pub nodes: BTreeMap<u64, NodeProc>,
    root: tempfile::TempDir,
    config: Option<PathBuf>,
    /// Run each node's embedded agent (off by default: most tests bring their own executors).
    pub agent: bool,
    /// The `cronraft` binary nodes start (and restart) from: the one cargo built, unless a test
    /// swaps it (the rolling upgrade).
    pub bin: PathBuf,
    /// More `serve` flags for nodes started from now on (`--log-format json`).
    pub args: Vec<String>,
    /// `CRONRAFT_LOG` for nodes started from now on (default: the kit's `info,openraft=warn`).
    pub log_filter: Option<String>,
    /// This test's share of the machine (a chaos run waits for it, see [`gate`]).
    _gate: gate::Shared,
}

impl Cluster {
    /// An empty cluster; `config` is TOML written to a file every node loads.
    pub fn new(config: &str) -> Cluster {
        let _gate = gate::shared();
        let root = tempfile::tempdir().expect("temp dir");
        let config = (!config.is_empty()).then(|| {
            let p = root.path().join("config.toml");
            std::fs::write(&p, config).expect("write config");
            p
        });
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_cronraft"));
        let (args, log_filter) = (Vec::new(), None);
        Cluster { root, config, nodes: BTreeMap::new(), agent: false, bin, args, log_filter, _gate }
    }

    /// Nodes started from now on load this TOML file.
    pub fn set_config_file(&mut self, path: &Path) {
        self.config = Some(path.to_path_buf());
    }

    /// Starts `n` nodes: node 1 bootstraps, the others join through it; waits for `n` voters.
    pub async fn start(n: u64, config: &str) -> Cluster {
        let mut c = Cluster::new(config);
        c.boot(n).await;
        c
    }

    /// Starts nodes 1 to `n` of an empty cluster (as [`Cluster::start`]), after the caller set
    /// [`Cluster::args`] or [`Cluster::log_filter`].
    pub async fn boot(&mut self, n: u64) {
        self.spawn(1, None, None);
        let join = self.nodes[&1].url();
        for id in 2..=n {
            self.spawn(id, Some(&join), None);
        }
        self.wait_voters(n).await;
    }

    /// What node `id` has written to stderr so far.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.nodes[&id].dir.join("stderr.log")).unwrap_or_default()
    }

    fn launch(&self, wrapper: &[&str]) -> Launch {
        let mut l = Launch::new(&self.bin);
        l.wrapper = wrapper.iter().map(OsString::from).collect();
        l.config = self.config.clone();
        l.agent = self.agent;
        l.args = self.args.iter().map(OsString::from).collect();
        if let Some(filter) = &self.log_filter {
            l.log_filter = filter.clone();
        }
        l
    }

    /// Starts node `id` (fresh ports unless `addrs` are given), joining through `join`.
    pub fn spawn(&mut self, id: u64, join: Option<&str>, addrs: Option<(String, String)>) {
        self.spawn_wrapped(id, join, addrs, &[]);
    }

    /// Like [`Cluster::spawn`], with the node run under `wrapper` (e.g. `strace … --`).
    pub fn spawn_wrapped(&mut self, id: u64, join: Option<&str>, addrs: Option<(String, String)>, wrapper: &[&str]) {
        let dir = self.root.path().join(format!("node{id}"));
        let (http, raft) = addrs.unwrap_or(("127.0.0.1:0".into(), "127.0.0.1:0".into()));
        let node = NodeProc::start(&self.launch(wrapper), id, &dir, (&http, &raft), join)
            .unwrap_or_else(|e| panic!("start node {id}: {e}"));
        self.nodes.insert(id, node);
    }

    /// `kill -9`.
    pub fn kill(&mut self, id: u64) {
        self.nodes.get_mut(&id).expect("node").kill();
    }

    /// SIGTERM, then waits for a graceful exit.
    pub fn stop(&mut self, id: u64) -> std::process::ExitStatus {
        self.nodes.get_mut(&id).expect("node").terminate().expect("running")
    }

    /// SIGTERM to the node's children (the node itself when it runs under a wrapper such as
    /// strace), then waits for the wrapper to exit.
    pub fn stop_wrapped(&mut self, id: u64) -> std::process::ExitStatus {
        self.nodes.get_mut(&id).expect("node").terminate_children().expect("running")
    }

    /// Restarts a stopped node on its old addresses with its old data.
    pub fn restart(&mut self, id: u64) {
        assert!(!self.nodes[&id].is_running(), "node {id} is still running");
        let launch = self.launch(&[]);
        let node = self.nodes.get_mut(&id).expect("node");
        node.restart(&launch, None).unwrap_or_else(|e| panic!("restart node {id}: {e}"));
    }

    pub fn client(&self, id: u64) -> Client {
        Client::with_timeout([self.nodes[&id].url()], ASK)
    }

    /// A client that knows every running node.
    pub fn any_client(&self) -> Client {
        Client::with_timeout(self.running_urls().into_iter().map(|(_, u)| u), ASK)
    }

    pub fn running(&self) -> Vec<u64> {
        self.nodes.values().filter(|n| n.is_running()).map(|n| n.id).collect()
    }

    fn running_urls(&self) -> Vec<(u64, String)> {
        self.nodes.values().filter(|n| n.is_running()).map(|n| (n.id, n.url())).collect()
    }

    /// The cluster view from node `id`.
    pub async fn view(&self, id: u64) -> Option<ClusterView> {
        self.client(id).cluster().await.ok()
    }

    /// Waits until every running node agrees on one leader and the membership has `n` voters.
    pub async fn wait_voters(&self, n: u64) -> u64 {
        let (urls, want) = (self.running_urls(), Agreement { voters: Some(n as usize), leader_among_asked: false });
        wait_for(&format!("{n} voters with an agreed leader"), Duration::from_secs(30), || {
            views::agreed_leader(&urls, want, ASK)
        })
        .await
    }

    /// Waits until the running nodes agree on a leader; returns it.
    pub async fn wait_leader(&self) -> u64 {
        let (urls, want) = (self.running_urls(), Agreement { voters: None, leader_among_asked: true });
        wait_for("an agreed leader among running nodes", Duration::from_secs(30), || {
            views::agreed_leader(&urls, want, ASK)
        })
        .await
    }

    /// Waits until every running node reports the same applied index and state digest.
    pub async fn wait_converged(&self) -> String {
        let urls = self.running_urls();
        wait_for("equal applied index and digest on every running node", Duration::from_secs(30), || {
            views::converged(&urls, ASK)
        })
        .await
    }

    /// A metric's value from node `id`'s `/metrics`.
    pub async fn metric(&self, id: u64, name: &str) -> Option<f64> {
        let http = reqwest::Client::new();
        let m = cronraft_testkit::metrics::Metrics::fetch(&http, &self.nodes[&id].url(), ASK).await.ok()?;
        m.value(name)
    }

    pub fn root(&self) -> &Path {
        self.root.path()
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
