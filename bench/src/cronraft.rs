//! The cronraft side: start an N-node cluster from the release binary on loopback (port 0, temp
//! data dirs), wait until it has one leader and N-1 followers, and describe its write workload
//! (`POST /api/v1/tasks`, 201 Created) and its state (leader, term, fsync counters).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use tempfile::TempDir;

use crate::child::Proc;
use crate::load::Workload;

/// How long a node may take to print its listening line, and the cluster to form.
const START_LIMIT: Duration = Duration::from_secs(30);
/// A schedule that never fires during a run (midnight, January 1st).
const CRON: &str = "0 0 0 1 1 *";
/// name + cron_expression + description, in bytes: etcd's 256-byte value.
const PAYLOAD_BYTES: usize = 256;

#[derive(Debug, Deserialize)]
struct ClusterView {
    leader_id: Option<u64>,
    term: u64,
    nodes: Vec<NodeView>,
}

#[derive(Debug, Deserialize)]
struct NodeView {
    id: u64,
    http_addr: String,
    role: String,
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
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--node-id", &id.to_string(), "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0"]);
    // Executors are the benchmark's to start (see `dispatch.rs`); no embedded agent.
    cmd.arg("--no-agent");
    cmd.arg("--data-dir").arg(dir.join(format!("node{id}")));
    if let Some(url) = join {
        cmd.args(["--join", url]);
    }
    Proc::spawn(&format!("cronraft{id}"), &mut cmd, dir)
}

/// Reads `cronraft node <id> listening http=<addr> raft=<addr>` from the node's stdout.
fn listening_http_addr(node: &mut Proc, id: u64) -> Result<String> {
    let prefix = format!("cronraft node {id} listening ");
    node.wait_for_line(START_LIMIT, |line| {
        let rest = line.strip_prefix(&prefix)?;
        rest.split_whitespace().find_map(|kv| kv.strip_prefix("http=")).map(str::to_string)
    })
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
    let leaders: Vec<&NodeView> = view.nodes.iter().filter(|n| n.role == "leader").collect();
    let followers = view.nodes.iter().filter(|n| n.role == "follower").count();
    let ok = view.nodes.len() == size && leaders.len() == 1 && followers == size - 1;
    let leader = leaders.first().filter(|l| ok && view.leader_id == Some(l.id))?;
    Some(leader.http_addr.clone())
}

async fn cluster_view(http: &reqwest::Client, url: &str) -> Result<ClusterView> {
    let resp = http.get(format!("{url}/api/v1/cluster")).timeout(Duration::from_secs(2)).send().await?;
    Ok(resp.error_for_status()?.json().await?)
}

/// `leader=<id> term=<n>` as the leader sees it.
pub async fn state(http: &reqwest::Client, leader_url: &str) -> String {
    match cluster_view(http, leader_url).await {
        Ok(v) => format!("leader={} term={}", v.leader_id.map_or("none".into(), |l| l.to_string()), v.term),
        Err(e) => format!("state unavailable ({e:#})"),
    }
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
    let text = http.get(format!("{url}/metrics")).send().await?.error_for_status()?.text().await?;
    let snapshot_index = gauge(&text, "cronraft_raft_snapshot_index").unwrap_or(0);
    Ok(NodeCounters { syncs: gauge(&text, "cronraft_storage_syncs_total")?, snapshot_index })
}

fn gauge(text: &str, name: &str) -> Result<u64> {
    let line = text.lines().find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(' ')));
    let value = line.and_then(|l| l.rsplit(' ').next()).with_context(|| format!("no {name} in /metrics"))?;
    Ok(value.parse()?)
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
