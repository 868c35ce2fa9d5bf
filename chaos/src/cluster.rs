//! The database side of the harness: real `cronraft` node processes that can be killed (-9),
//! paused (SIGSTOP / SIGCONT) and restarted on the same addresses and data directory.
//!
//! Nodes bind port 0 and announce themselves on stdout (`cronraft node N listening http=A
//! raft=B`); the harness reads that line and reuses the addresses on restart, because a node's
//! addresses are part of the replicated membership. With a [`Net`] each node runs inside its own
//! network namespace (`ip netns exec`), so partitions can cut node-to-node traffic while the
//! harness still reaches every node.
//!
//! With [`NodeOptions::faketime`] every node runs under libfaketime with a per-node offset file
//! ([`Cluster::set_clock`] changes it while the node runs: the clock nemesis); a node can also be
//! wiped and started again as a fresh joiner on its old addresses ([`Cluster::rejoin_fresh`]:
//! the membership nemesis). With [`NodeOptions::agent`] every node also runs its embedded agent on
//! its own host, so tasks of group `local` run on the nodes' hosts themselves.

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
    /// `--join` URLs it was last started with: kept for restarts, so a node killed before its
    /// join flow finished runs the flow again (the flow is idempotent).
    join: Option<String>,
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
    /// `libfaketime.so.1`: when set, every node runs under it with its own offset file (the
    /// clock nemesis). `None` = real clocks and no preload.
    pub faketime: Option<PathBuf>,
    /// Run each node's embedded agent (group `local`, instance `local-nodeN`, listening on the
    /// node's own host): the `cron-embedded` workload and the three-host test. `false` starts
    /// nodes with `--no-agent`, so only the harness' recording executor runs anything.
    pub agent: bool,
}

/// The nodes' log filter: `CRONRAFT_CHAOS_NODE_LOG` if set (e.g. `info,openraft=info` to see
/// elections when investigating a run), else `info,openraft=warn`.
fn node_log_filter() -> String {
    std::env::var("CRONRAFT_CHAOS_NODE_LOG").unwrap_or_else(|_| "info,openraft=warn".into())
}

/// Where libfaketime is installed (Debian package `libfaketime`), if it is.
pub fn find_libfaketime() -> Option<PathBuf> {
    let listed = Command::new("dpkg").args(["-L", "libfaketime"]).output().ok().and_then(|o| {
        String::from_utf8_lossy(&o.stdout).lines().find(|l| l.ends_with("/libfaketime.so.1")).map(PathBuf::from)
    });
    let known = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ];
    listed.into_iter().chain(known.iter().map(PathBuf::from)).find(|p| p.exists())
}

/// The content of a libfaketime offset file for `offset_ms` (relative seconds, e.g. `+12.345`).
pub fn faketime_offset(offset_ms: i64) -> String {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let abs = offset_ms.unsigned_abs();
    format!("{sign}{}.{:03}\n", abs / 1000, abs % 1000)
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
        // Every node is a voter now: restarts need no join flow (only fresh rejoiners keep one).
        for node in c.nodes.values_mut() {
            node.join = None;
        }
        Ok(c)
    }

    pub fn net(&self) -> Option<&Net> {
        self.net.as_ref()
    }

    fn spawn(&mut self, id: u64, join: Option<&str>, addrs: Option<(String, String)>) -> Result<(), ClusterError> {
        let dir = self.root.join(format!("n{id}"));
        std::fs::create_dir_all(&dir)?;
        let clock_file = dir.join("faketime.rc");
        if self.opts.faketime.is_some() && !clock_file.exists() {
            std::fs::write(&clock_file, faketime_offset(0))?;
        }
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
        cmd.args(["serve", "--node-id", &id.to_string(), "--http-addr", &http, "--raft-addr", &raft]);
        if !self.opts.agent {
            cmd.arg("--no-agent");
        }
        cmd.arg("--data-dir").arg(dir.join("data")).arg("--config").arg(self.root.join("config.toml"));
        if let Some(j) = join {
            cmd.args(["--join", j]);
        }
        if let Some(lib) = &self.opts.faketime {
            // DONT_FAKE_MONOTONIC is not optional: a tokio runtime under libfaketime hangs at
            // start without it (shared/research/jepsen-brief.md §4.4), and a real clock step
            // moves CLOCK_REALTIME only. 0.9.10 reads both spellings.
            cmd.env("LD_PRELOAD", lib)
                .env("FAKETIME_TIMESTAMP_FILE", &clock_file)
                .env("FAKETIME_NO_CACHE", "1")
                .env("DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        match &self.opts.unsafe_mode {
            Some(m) => cmd.env("CRONRAFT_UNSAFE", m),
            None => cmd.env_remove("CRONRAFT_UNSAFE"),
        };
        let log_path = dir.join("node.log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        cmd.stdout(Stdio::piped()).stderr(log).stdin(Stdio::null()).env("CRONRAFT_LOG", node_log_filter());
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
        let join = join.map(String::from);
        self.nodes.insert(id, Node { id, http, raft, dir, child: Some(child), paused: false, join });
        Ok(())
    }

    /// Sets node `id`'s wall-clock offset (libfaketime re-reads the file on every clock read).
    /// Written to a temporary file and renamed, so a node never reads half a line.
    pub fn set_clock(&self, id: u64, offset_ms: i64) -> Result<(), ClusterError> {
        if self.opts.faketime.is_none() {
            return Err(ClusterError::Timeout("clock skew needs the nodes started under libfaketime".into()));
        }
        let dir = self.root.join(format!("n{id}"));
        let tmp = dir.join("faketime.rc.tmp");
        std::fs::write(&tmp, faketime_offset(offset_ms))?;
        std::fs::rename(&tmp, dir.join("faketime.rc"))?;
        Ok(())
    }

    /// Whether nodes run under libfaketime.
    pub fn has_clock(&self) -> bool {
        self.opts.faketime.is_some()
    }

    /// Kills node `id`, deletes its data directory and starts it again on its old addresses as
    /// a fresh node joining through the others (`--join`): how an operator brings back a node
    /// that was removed from the membership (docs/reference/api.md: a removed node must not be
    /// restarted with its old data).
    pub fn rejoin_fresh(&mut self, id: u64) -> Result<(), ClusterError> {
        self.kill(id);
        let node = &self.nodes[&id];
        let addrs = (node.http.clone(), node.raft.clone());
        let data = node.dir.join("data");
        if data.exists() {
            std::fs::remove_dir_all(&data)?;
        }
        let join: Vec<String> = self.ids().into_iter().filter(|o| *o != id).map(|o| self.url(o)).collect();
        self.spawn(id, Some(&join.join(",")), Some(addrs))
    }

    /// `kill -9` and reap.
    pub fn kill(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id) {
            if let Some(mut child) = node.child.take() {
                let pid = child.id();
                let _ = child.kill();
                let _ = child.wait();
                if self.opts.faketime.is_some() {
                    // libfaketime leaves its shared memory behind when its process is killed.
                    let _ = std::fs::remove_file(format!("/dev/shm/faketime_shm_{pid}"));
                    let _ = std::fs::remove_file(format!("/dev/shm/sem.faketime_sem_{pid}"));
                }
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
        let join = node.join.clone();
        self.spawn(id, join.as_deref(), Some(addrs))
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
