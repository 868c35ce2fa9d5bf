//! The etcd side: a throw-away 3-member etcd 3.4 cluster on free loopback ports with its data in
//! a temp dir (the same command lines as `research/etcd_cluster.sh`), its leader found through
//! `POST /v3/maintenance/status`, and its write workload: `POST /v3/kv/put` on the JSON gateway
//! with a base64 key and a 256-byte value (200 OK).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::child::{free_ports, Proc};
use crate::load::Workload;

const MEMBERS: usize = 3;
const START_LIMIT: Duration = Duration::from_secs(30);
/// etcd's benchmark value size (perf-anchors §1.1 and §2.3).
const VALUE_BYTES: usize = 256;

/// A running cluster. Field order matters: members are killed before the data dir is removed.
pub struct Cluster {
    pub members: Vec<Proc>,
    pub leader_url: String,
    _dir: TempDir,
}

/// One member's address pair.
struct Member {
    name: String,
    client: String,
    peer: String,
}

/// Starts the three members and waits until they agree on a leader that accepts a put.
pub async fn start(bin: &Path, tmp_base: &Path, http: &reqwest::Client) -> Result<Cluster> {
    let dir = tempfile::Builder::new().prefix("etcd-bench-").tempdir_in(tmp_base)?;
    let ports = free_ports(2 * MEMBERS)?;
    let members: Vec<Member> = (0..MEMBERS)
        .map(|i| Member {
            name: format!("m{}", i + 1),
            client: format!("http://127.0.0.1:{}", ports[2 * i]),
            peer: format!("http://127.0.0.1:{}", ports[2 * i + 1]),
        })
        .collect();
    let initial = members.iter().map(|m| format!("{}={}", m.name, m.peer)).collect::<Vec<_>>().join(",");
    let mut procs = Vec::new();
    for m in &members {
        procs.push(spawn_member(bin, m, &initial, dir.path())?);
    }
    let client_urls: Vec<String> = members.into_iter().map(|m| m.client).collect();
    let leader_url = wait_healthy(http, &client_urls, &mut procs).await?;
    Ok(Cluster { members: procs, leader_url, _dir: dir })
}

fn spawn_member(bin: &Path, m: &Member, initial_cluster: &str, dir: &Path) -> Result<Proc> {
    let data: PathBuf = dir.join(&m.name);
    let log = dir.join(format!("{}.log", m.name));
    let mut cmd = Command::new(bin);
    cmd.arg("--name").arg(&m.name).arg("--data-dir").arg(&data);
    cmd.args(["--listen-client-urls", &m.client, "--advertise-client-urls", &m.client]);
    cmd.args(["--listen-peer-urls", &m.peer, "--initial-advertise-peer-urls", &m.peer]);
    cmd.args(["--initial-cluster", initial_cluster, "--initial-cluster-state", "new"]);
    cmd.args(["--initial-cluster-token", "cronraft-bench", "--logger", "zap"]);
    cmd.arg("--log-outputs").arg(&log);
    Proc::spawn(&format!("etcd-{}", m.name), &mut cmd, dir)
}

/// `(member_id, leader, raft_term)` of one member, as the gateway prints them (strings).
async fn status(http: &reqwest::Client, url: &str) -> Result<(String, String, String)> {
    let resp = http.post(format!("{url}/v3/maintenance/status")).json(&json!({})).send().await?;
    let v: Value = resp.error_for_status()?.json().await?;
    let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    Ok((text(&v["header"]["member_id"]), text(&v["leader"]), text(&v["raftTerm"])))
}

/// The client URL of the member whose id is the leader every member reports.
async fn find_leader(http: &reqwest::Client, urls: &[String]) -> Result<String> {
    let mut views = Vec::new();
    for url in urls {
        views.push((url.clone(), status(http, url).await?));
    }
    let leader = &views[0].1 .1;
    if leader.is_empty() || leader == "0" || views.iter().any(|(_, s)| &s.1 != leader) {
        bail!("members do not agree on a leader yet");
    }
    let found = views.iter().find(|(_, s)| &s.0 == leader).context("leader is not one of our members")?;
    Ok(found.0.clone())
}

async fn wait_healthy(http: &reqwest::Client, urls: &[String], procs: &mut [Proc]) -> Result<String> {
    let deadline = Instant::now() + START_LIMIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        for p in procs.iter_mut() {
            p.check_alive()?;
        }
        match find_leader(http, urls).await {
            Ok(leader) if probe_put(http, &leader).await.is_ok() => return Ok(leader),
            Ok(_) => last = "leader found but a put failed".into(),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("etcd not healthy within {START_LIMIT:?}: {last}")
}

async fn probe_put(http: &reqwest::Client, url: &str) -> Result<()> {
    let body = json!({"key": base64(b"bench-probe"), "value": base64(b"ok")});
    http.post(format!("{url}/v3/kv/put")).json(&body).send().await?.error_for_status()?;
    Ok(())
}

/// `leader=<member id> term=<n>` as `url` sees it.
pub async fn state(http: &reqwest::Client, url: &str) -> String {
    match status(http, url).await {
        Ok((_, leader, term)) => format!("leader={leader} term={term}"),
        Err(e) => format!("state unavailable ({e:#})"),
    }
}

/// `POST /v3/kv/put` against `leader_url`: key `bench-key-<tag>-<i>`, one 256-byte value.
pub fn workload(leader_url: &str) -> Workload {
    let value = base64(&pseudo_random_bytes(VALUE_BYTES));
    Workload {
        url: format!("{leader_url}/v3/kv/put"),
        ok_status: 200,
        body: Arc::new(move |tag: &str, i: u64| {
            let key = base64(format!("bench-key-{tag}-{i}").as_bytes());
            format!(r#"{{"key":"{key}","value":"{value}"}}"#)
        }),
    }
}

/// Deterministic xorshift bytes: incompressible enough, and no RNG dependency.
fn pseudo_random_bytes(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Standard base64 with padding (what the gateway expects for `bytes` fields).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            let sextet = (n >> (18 - 6 * k)) & 63;
            out.push(if k <= chunk.len() { char::from(ALPHABET[sextet as usize]) } else { '=' });
        }
    }
    out
}
