//! The cronraft side: start an N-node cluster from the release binary on loopback (port 0, temp
//! data dirs), wait until it has one leader and N-1 followers, and describe its write workload
//! (`POST /api/v1/tasks`, 201 Created) and its state (leader, term, fsync counters).
//!
//! The node command line, its `listening` line, the cluster view and the `/metrics` reader are the
//! test kit's (`cronraft-testkit`); the processes are the benchmark's own [`Proc`]s, which write
//! their output to files and are metered for CPU time like the etcd members.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cronraft_testkit::metrics::Metrics;
use cronraft_testkit::node::{parse_listening_line, Launch};
use cronraft_testkit::views::ClusterView;
use tempfile::TempDir;

use crate::child::Proc;
use crate::load::Workload;

/// How long a node may take to print its listening line, and the cluster to form.
const START_LIMIT: Duration = Duration::from_secs(30);
/// A schedule that never fires during a run (midnight, January 1st).
const CRON: &str = "0 0 0 1 1 *";
/// name + cron_expression + description, in bytes: etcd's 256-byte value.
const PAYLOAD_BYTES: usize = 256;

/// Auth on for every cluster this process starts (`--auth`): a cluster secret and the first admin
/// token, both chosen here before any node starts (the token through `--bootstrap-token-file`), so
/// the one HTTP client can send the token from its first request.
pub struct Auth {
    pub secret_file: PathBuf,
    pub token_file: PathBuf,
    pub token: String,
}

static AUTH: std::sync::OnceLock<Auth> = std::sync::OnceLock::new();

/// Turns auth on for this process's clusters, with files in `dir` (kept for the run).
pub fn enable_auth(dir: &Path) -> Result<()> {
    let random = || format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let secret_file = dir.join("cronraft-bench-cluster.secret");
    let token_file = dir.join("cronraft-bench-admin.token");
    let token = format!("crt_{}", random());
    std::fs::write(&secret_file, random())?;
    std::fs::write(&token_file, &token)?;
    AUTH.set(Auth { secret_file, token_file, token }).map_err(|_| anyhow::anyhow!("auth enabled twice"))
}

/// The admin token every request sends, when auth is on.
pub fn auth_token() -> Option<&'static str> {
    AUTH.get().map(|a| a.token.as_str())
}

/// A running cluster. Field order matters: the nodes are killed before the data dir is removed.
pub struct Cluster {
    pub nodes: Vec<Proc>,
    /// API base URLs, node 1 first.
    pub urls: Vec<String>,
    pub leader_url: String,
    _dir: TempDir,
}

/// The `cronraft` binary next to this benchmark's own executable (both live in `target/release`).
pub fn default_binary() -> PathBuf {
    let sibling = std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join("cronraft")));
    sibling.filter(|p| p.exists()).unwrap_or_else(|| PathBuf::from("target/release/cronraft"))
}

/// Starts `size` nodes (node 1 bootstraps, the others `--join` it) and waits until it is formed.
pub async fn start(bin: &Path, size: u64, tmp_base: &Path, http: &reqwest::Client) -> Result<Cluster> {
    if !bin.exists() {
        bail!("{} not found: run `cargo build --release` first, or pass --cronraft-bin", bin.display());
    }
    let dir = tempfile::Builder::new().prefix("cronraft-bench-").tempdir_in(tmp_base)?;
    let mut nodes = Vec::new();
    let mut urls = Vec::new();
    for id in 1..=size {
        let join = urls.first().cloned();
        let mut node = spawn_node(bin, id, dir.path(), join.as_deref())?;
        urls.push(format!("http://{}", listening_http_addr(&mut node, id)?));
        nodes.push(node);
    }
    let leader_url = wait_formed(http, &urls[0], size as usize, &mut nodes).await?;
    Ok(Cluster { nodes, urls, leader_url, _dir: dir })
}

fn spawn_node(bin: &Path, id: u64, dir: &Path, join: Option<&str>) -> Result<Proc> {
    // Executors are the benchmark's to start (see `dispatch.rs`); no embedded agent.
    let mut launch = Launch::new(bin);
    if let Ok(filter) = std::env::var("CRONRAFT_LOG") {
        launch.log_filter = filter;
    }
    if let Some(auth) = AUTH.get() {
        launch.args.extend(["--cluster-secret-file".into(), auth.secret_file.clone().into_os_string()]);
        launch.args.extend(["--bootstrap-token-file".into(), auth.token_file.clone().into_os_string()]);
    }
    let any = ("127.0.0.1:0", "127.0.0.1:0");
    let mut cmd = launch.serve_command(id, &dir.join(format!("node{id}")), any, join);
    Proc::spawn(&format!("cronraft{id}"), &mut cmd, dir)
}

/// Reads `cronraft node <id> listening http=<addr> raft=<addr>` from the node's stdout.
fn listening_http_addr(node: &mut Proc, id: u64) -> Result<String> {
    node.wait_for_line(START_LIMIT, |line| parse_listening_line(line, id).map(|(http, _)| http))
}

/// Polls `GET /api/v1/cluster` until it shows one leader and `size - 1` followers.
async fn wait_formed(http: &reqwest::Client, url: &str, size: usize, nodes: &mut [Proc]) -> Result<String> {
    let deadline = Instant::now() + START_LIMIT;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        for n in nodes.iter_mut() {
            n.check_alive()?;
        }
        match cluster_view(http, url).await {
            Ok(view) => match formed_leader(&view, size) {
                Some(leader) => return Ok(format!("http://{leader}")),
                None => last = format!("{view:?}"),
            },
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("cluster not formed within {START_LIMIT:?}; last view: {last}")
}

/// The leader's HTTP address if the view shows exactly one leader and only followers besides.
fn formed_leader(view: &ClusterView, size: usize) -> Option<String> {
    let leaders: Vec<_> = view.nodes.iter().filter(|n| n.role == "leader").collect();
    let followers = view.nodes.iter().filter(|n| n.role == "follower").count();
    let ok = view.nodes.len() == size && leaders.len() == 1 && followers == size - 1;
    let leader = leaders.first().filter(|l| ok && view.leader_id == Some(l.id))?;
    Some(leader.http_addr.clone())
}

/// `leader=<id> term=<n>` as the leader sees it.
pub async fn state(http: &reqwest::Client, leader_url: &str) -> String {
    match cluster_view(http, leader_url).await {
        Ok(v) => format!("leader={} term={}", v.leader_id.map_or("none".into(), |l| l.to_string()), v.term),
        Err(e) => format!("state unavailable ({e:#})"),
    }
}

/// `GET /api/v1/cluster` through the benchmark's own client (the view type is the API's).
pub async fn cluster_view(http: &reqwest::Client, url: &str) -> Result<ClusterView> {
    let resp = http.get(format!("{url}/api/v1/cluster")).timeout(Duration::from_secs(2)).send().await?;
    Ok(resp.error_for_status()?.json().await?)
}

/// Counters scraped from one node's `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct NodeCounters {
    /// `cronraft_storage_syncs_total`: fdatasync calls so far.
    pub syncs: u64,
    /// `cronraft_raft_snapshot_index`: last index covered by the node's snapshot.
    pub snapshot_index: u64,
}

/// Every node's counters, in node order (None where a node did not answer).
pub async fn counters(http: &reqwest::Client, urls: &[String]) -> Vec<Option<NodeCounters>> {
    let mut out = Vec::new();
    for url in urls {
        out.push(node_counters(http, url).await.ok());
    }
    out
}

async fn node_counters(http: &reqwest::Client, url: &str) -> Result<NodeCounters> {
    let m = Metrics::fetch(http, url, Duration::from_secs(30)).await?;
    let gauge = |name: &str| m.value(name).map(|v| v as u64).with_context(|| format!("no {name} in /metrics"));
    let snapshot_index = gauge("cronraft_raft_snapshot_index").unwrap_or(0);
    Ok(NodeCounters { syncs: gauge("cronraft_storage_syncs_total")?, snapshot_index })
}

/// Notes on fsyncs per write and snapshots taken, from counters before and after a level.
pub fn counter_notes(before: &[Option<NodeCounters>], after: &[Option<NodeCounters>], ok: usize) -> Vec<String> {
    let pairs: Vec<Option<(NodeCounters, NodeCounters)>> =
        before.iter().zip(after).map(|(b, a)| Some(((*b)?, (*a)?))).collect();
    if pairs.is_empty() || ok == 0 {
        return Vec::new();
    }
    let per_op: Vec<String> = pairs
        .iter()
        .map(|p| p.map_or("?".into(), |(b, a)| format!("{:.2}", (a.syncs - b.syncs) as f64 / ok as f64)))
        .collect();
    let mut notes = vec![format!("fdatasync per ok write, node 1..{}: {}", per_op.len(), per_op.join(", "))];
    let snapshotted: Vec<String> = (1..)
        .zip(&pairs)
        .filter(|(_, p)| p.is_some_and(|(b, a)| a.snapshot_index != b.snapshot_index))
        .map(|(id, _)| format!("node {id}"))
        .collect();
    if !snapshotted.is_empty() {
        notes.push(format!("snapshot built during the level on {}", snapshotted.join(", ")));
    }
    notes
}

/// `POST /api/v1/tasks` against the leader; task names are unique per run tag and index.
pub fn workload(leader_url: &str) -> Workload {
    Workload {
        url: format!("{leader_url}/api/v1/tasks"),
        ok_status: 201,
        body: Arc::new(|tag: &str, i: u64| task_body(tag, i)),
    }
}

/// `{"name":"bench-<tag>-<i>","cron_expression":CRON,"description":<padding>}`, where the three
/// values add up to [`PAYLOAD_BYTES`].
fn task_body(tag: &str, i: u64) -> String {
    let name = format!("bench-{tag}-{i}");
    let pad = PAYLOAD_BYTES.saturating_sub(name.len() + CRON.len());
    let description: String = (0..pad).map(|k| char::from(b'a' + (k % 26) as u8)).collect();
    format!(r#"{{"name":"{name}","cron_expression":"{CRON}","description":"{description}"}}"#)
}
