//! The database side of the harness: real `cronraft` node processes that can be killed (-9),
//! paused (SIGSTOP / SIGCONT) and restarted on the same addresses and data directory.
//!
//! Nodes bind port 0 and announce themselves on stdout (`cronraft node N listening http=A
//! raft=B`); the harness reads that line and reuses the addresses on restart, because a node's
//! addresses are part of the replicated membership. With a [`Net`] each node runs inside its own
//! network namespace (`ip netns exec`), so partitions can cut node-to-node traffic while the
//! harness still reaches every node.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cronraft_api::client::Client;

use crate::net::Net;

/// Why a node could not be managed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot start node {id} ({bin}): {source}")]
    Spawn { id: u64, bin: String, source: std::io::Error },
    #[error("node {id} did not announce its addresses within {secs} s (see {log})")]
    NoListenLine { id: u64, secs: u64, log: String },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Timeout(String),
}

/// One node process.
pub struct Node {
    pub id: u64,
    pub http: String,
    pub raft: String,
    pub dir: PathBuf,
    child: Option<Child>,
    pub paused: bool,
}

impl Node {
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on the pid of a child we own and have not reaped.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }
}

/// How nodes are started.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub bin: PathBuf,
    /// Values for `CRONRAFT_UNSAFE` (empty = none).
    pub unsafe_mode: Option<String>,
    pub config: String,
}

/// The cluster under test.
pub struct Cluster {
    root: PathBuf,
    opts: NodeOptions,
    net: Option<Net>,
    pub nodes: BTreeMap<u64, Node>,
}

impl Cluster {
    /// Starts `n` nodes under `root`: node 1 bootstraps, the others join through it.
    pub async fn start(root: &Path, n: u64, opts: NodeOptions, net: Option<Net>) -> Result<Cluster, ClusterError> {
        std::fs::create_dir_all(root)?;
        std::fs::write(root.join("config.toml"), &opts.config)?;
        let mut c = Cluster { root: root.to_path_buf(), opts, net, nodes: BTreeMap::new() };
        c.spawn(1, None, None)?;
        let join = c.nodes[&1].url();
        for id in 2..=n {
            c.spawn(id, Some(&join), None)?;
        }
        c.wait_healthy(Duration::from_secs(60)).await?;
        Ok(c)
    }

    pub fn net(&self) -> Option<&Net> {
        self.net.as_ref()
    }

    fn spawn(&mut self, id: u64, join: Option<&str>, addrs: Option<(String, String)>) -> Result<(), ClusterError> {
        let dir = self.root.join(format!("n{id}"));
        std::fs::create_dir_all(&dir)?;
        let host = self.net.as_ref().map(|n| n.ip(id)).unwrap_or_else(|| "127.0.0.1".into());
        let (http, raft) = addrs.unwrap_or((format!("{host}:0"), format!("{host}:0")));
        let mut cmd = match &self.net {
            Some(net) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &net.ns(id)]).arg(&self.opts.bin);
                c
            }
            None => Command::new(&self.opts.bin),
        };
        cmd.args(["serve", "--node-id", &id.to_string(), "--http-addr", &http, "--raft-addr", &raft, "--no-agent"]);
        cmd.arg("--data-dir").arg(dir.join("data")).arg("--config").arg(self.root.join("config.toml"));
        if let Some(j) = join {
            cmd.args(["--join", j]);
        }
        match &self.opts.unsafe_mode {
            Some(m) => cmd.env("CRONRAFT_UNSAFE", m),
            None => cmd.env_remove("CRONRAFT_UNSAFE"),
        };
        let log_path = dir.join("node.log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        cmd.stdout(Stdio::piped()).stderr(log).stdin(Stdio::null()).env("CRONRAFT_LOG", "info,openraft=warn");
        let bin = self.opts.bin.display().to_string();
        let mut child = cmd.spawn().map_err(|source| ClusterError::Spawn { id, bin, source })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix(&format!("cronraft node {id} listening ")) {
                    let mut http = String::new();
                    let mut raft = String::new();
                    for part in rest.split_whitespace() {
                        if let Some(v) = part.strip_prefix("http=") {
                            http = v.into();
                        } else if let Some(v) = part.strip_prefix("raft=") {
                            raft = v.into();
                        }
                    }
                    if let Some(tx) = tx.take() {
                        let _ = tx.send((http, raft));
                    }
                }
            }
        });
        let secs = 20;
        let Ok((http, raft)) = rx.recv_timeout(Duration::from_secs(secs)) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ClusterError::NoListenLine { id, secs, log: log_path.display().to_string() });
        };
        self.nodes.insert(id, Node { id, http, raft, dir, child: Some(child), paused: false });
        Ok(())
    }

    /// `kill -9` and reap.
    pub fn kill(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id) {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            node.paused = false;
        }
    }

    /// Restarts a killed node on its old addresses with its old data.
    pub fn restart(&mut self, id: u64) -> Result<(), ClusterError> {
        let node = &self.nodes[&id];
        if node.is_running() {
            return Ok(());
        }
        let addrs = (node.http.clone(), node.raft.clone());
        self.spawn(id, None, Some(addrs))
    }

    pub fn pause(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.signal(libc::SIGSTOP);
            node.paused = node.is_running();
        }
    }

    pub fn resume(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.signal(libc::SIGCONT);
            node.paused = false;
        }
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub fn url(&self, id: u64) -> String {
        self.nodes[&id].url()
    }

    /// A client bound to one node (no fallback to others), with `timeout` per request.
    pub fn client(&self, id: u64, timeout: Duration) -> Client {
        Client::with_timeout([self.url(id)], timeout)
    }

    /// The leader by the highest-term claim among reachable nodes.
    pub async fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for id in self.ids() {
            if let Ok(v) = self.client(id, Duration::from_millis(500)).cluster().await {
                if let Some(l) = v.leader_id {
                    if best.is_none_or(|(t, _)| v.term > t) {
                        best = Some((v.term, l));
                    }
                }
            }
        }
        best.map(|(_, l)| l)
    }

    /// Waits until every node agrees on one leader and sees every node as a voter.
    pub async fn wait_healthy(&self, limit: Duration) -> Result<u64, ClusterError> {
        let deadline = Instant::now() + limit;
        let n = self.nodes.len();
        loop {
            let mut agreed: Option<u64> = None;
            let mut ok = true;
            for id in self.ids() {
                match self.client(id, Duration::from_secs(1)).cluster().await {
                    Ok(v) => {
                        let voters = v.nodes.iter().filter(|x| x.role == "leader" || x.role == "follower").count();
                        if voters != n || v.leader_id.is_none() || (agreed.is_some() && agreed != v.leader_id) {
                            ok = false;
                        }
                        agreed = v.leader_id;
                    }
                    Err(_) => ok = false,
                }
            }
            if let (true, Some(l)) = (ok, agreed) {
                return Ok(l);
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout(format!("cluster not healthy within {limit:?}")));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills every node (at the end of a run or on error).
    pub fn shutdown(&mut self) {
        for id in self.ids() {
            self.resume(id);
            self.kill(id);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
