//! The database side of the harness: real `cronraft` node processes that can be killed (-9),
//! paused (SIGSTOP / SIGCONT) and restarted on the same addresses and data directory.
//!
//! The processes themselves are the test kit's ([`cronraft_testkit::Node`]: port 0, the
//! `listening` line, the addresses reused on restart, signals); this module adds what only the
//! harness needs: namespaces, libfaketime, the unsafe switch and rejoins. With a [`Net`] each node runs inside its own
//! network namespace (`ip netns exec`), so partitions can cut node-to-node traffic while the
//! harness still reaches every node.
//!
//! With [`NodeOptions::faketime`] every node runs under libfaketime with a per-node offset file
//! ([`Cluster::set_clock`] changes it while the node runs: the clock nemesis); a node can also be
//! wiped and started again as a fresh joiner on its old addresses ([`Cluster::rejoin_fresh`]:
//! the membership nemesis). With [`NodeOptions::agent`] every node also runs its embedded agent on
//! its own host, so tasks of group `local` run on the nodes' hosts themselves.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cronraft_api::client::Client;
use cronraft_testkit::views::{self, Agreement};
use cronraft_testkit::{poll_until, KitError, Launch};

pub use cronraft_testkit::Node;

use crate::net::Net;

/// Why a node could not be managed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Kit(#[from] KitError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Timeout(String),
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
    /// The cluster secret file (`--cluster-secret-file`): auth on. `None`: auth off, and nodes in
    /// namespaces start with `--insecure`.
    pub cluster_secret: Option<PathBuf>,
    /// A `cronraft certs init` directory (`ca.pem`, `nodeN.pem`, `nodeN-key.pem`): TLS on every
    /// listener, mTLS on Raft. The harness's clients must trust `ca.pem`
    /// (`cronraft_api::client::set_process_tls`).
    pub tls_dir: Option<PathBuf>,
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
    /// `--join` URLs each node was last started with: kept for restarts, so a node killed before
    /// its join flow finished runs the flow again (the flow is idempotent).
    joins: BTreeMap<u64, String>,
}

impl Cluster {
    /// Starts `n` nodes under `root`: node 1 bootstraps, the others join through it.
    pub async fn start(root: &Path, n: u64, opts: NodeOptions, net: Option<Net>) -> Result<Cluster, ClusterError> {
        std::fs::create_dir_all(root)?;
        std::fs::write(root.join("config.toml"), &opts.config)?;
        let mut c = Cluster { root: root.to_path_buf(), opts, net, nodes: BTreeMap::new(), joins: BTreeMap::new() };
        c.spawn(1, None, None)?;
        let join = c.nodes[&1].url();
        for id in 2..=n {
            c.spawn(id, Some(&join), None)?;
        }
        c.wait_healthy(Duration::from_secs(60)).await?;
        // Every node is a voter now: restarts need no join flow (only fresh rejoiners keep one).
        c.joins.clear();
        Ok(c)
    }

    pub fn net(&self) -> Option<&Net> {
        self.net.as_ref()
    }

    /// How node `id` is started: in its namespace, under libfaketime with its own offset file,
    /// with or without the unsafe switch.
    fn launch(&self, id: u64) -> Launch {
        let mut l = Launch::new(&self.opts.bin);
        if let Some(net) = &self.net {
            l.wrapper = ["ip", "netns", "exec", &net.ns(id)].map(OsString::from).to_vec();
            // Each host's addresses are beyond loopback: a node refuses them without auth
            // unless told, and this sandbox network is reachable from nothing else.
            if self.opts.cluster_secret.is_none() {
                l.args.push("--insecure".into());
            }
        }
        if let Some(secret) = &self.opts.cluster_secret {
            l.args.push("--cluster-secret-file".into());
            l.args.push(secret.into());
        }
        if let Some(dir) = &self.opts.tls_dir {
            l.tls = true;
            l.env.push(("CRONRAFT_TLS_CERT_FILE".into(), dir.join(format!("node{id}.pem")).into()));
            l.env.push(("CRONRAFT_TLS_KEY_FILE".into(), dir.join(format!("node{id}-key.pem")).into()));
            l.env.push(("CRONRAFT_TLS_CA_FILE".into(), dir.join("ca.pem").into()));
            l.env.push(("CRONRAFT_TLS_PEER_CLIENT_AUTH".into(), "true".into()));
        }
        l.config = Some(self.root.join("config.toml"));
        l.agent = self.opts.agent;
        l.log_filter = node_log_filter();
        l.log_name = "node.log".into();
        l.listen_limit = Duration::from_secs(20);
        let mut env = |k: &str, v: &dyn AsRef<std::ffi::OsStr>| l.env.push((k.into(), v.as_ref().into()));
        if let Some(lib) = &self.opts.faketime {
            // DONT_FAKE_MONOTONIC is not optional: a tokio runtime under libfaketime hangs at
            // start without it (shared/research/jepsen-brief.md §4.4), and a real clock step
            // moves CLOCK_REALTIME only. 0.9.10 reads both spellings.
            env("LD_PRELOAD", lib);
            env("FAKETIME_TIMESTAMP_FILE", &self.clock_file(id));
            env("FAKETIME_NO_CACHE", &"1");
            env("DONT_FAKE_MONOTONIC", &"1");
            env("FAKETIME_DONT_FAKE_MONOTONIC", &"1");
        }
        match &self.opts.unsafe_mode {
            Some(m) => env("CRONRAFT_UNSAFE", m),
            None => l.env_remove.push("CRONRAFT_UNSAFE".into()),
        }
        l
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.join(format!("n{id}"))
    }

    fn clock_file(&self, id: u64) -> PathBuf {
        self.dir(id).join("faketime.rc")
    }

    fn spawn(&mut self, id: u64, join: Option<&str>, addrs: Option<(String, String)>) -> Result<(), ClusterError> {
        let dir = self.dir(id);
        std::fs::create_dir_all(&dir)?;
        if self.opts.faketime.is_some() && !self.clock_file(id).exists() {
            std::fs::write(self.clock_file(id), faketime_offset(0))?;
        }
        let host = self.net.as_ref().map(|n| n.ip(id)).unwrap_or_else(|| "127.0.0.1".into());
        let (http, raft) = addrs.unwrap_or((format!("{host}:0"), format!("{host}:0")));
        let node = Node::start(&self.launch(id), id, &dir, (&http, &raft), join)?;
        match join {
            Some(j) => self.joins.insert(id, j.into()),
            None => self.joins.remove(&id),
        };
        self.nodes.insert(id, node);
        Ok(())
    }
    /// Sets node `id`'s wall-clock offset (libfaketime re-reads the file on every clock read).
    /// Written to a temporary file and renamed, so a node never reads half a line.
    pub fn set_clock(&self, id: u64, offset_ms: i64) -> Result<(), ClusterError> {
        if self.opts.faketime.is_none() {
            return Err(ClusterError::Timeout("clock skew needs the nodes started under libfaketime".into()));
        }
        let tmp = self.dir(id).join("faketime.rc.tmp");
        std::fs::write(&tmp, faketime_offset(offset_ms))?;
        std::fs::rename(&tmp, self.clock_file(id))?;
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
        let Some(pid) = self.nodes.get_mut(&id).and_then(Node::kill) else { return };
        if self.opts.faketime.is_some() {
            // libfaketime leaves its shared memory behind when its process is killed.
            let _ = std::fs::remove_file(format!("/dev/shm/faketime_shm_{pid}"));
            let _ = std::fs::remove_file(format!("/dev/shm/sem.faketime_sem_{pid}"));
        }
    }

    /// Restarts a killed node on its old addresses with its old data.
    pub fn restart(&mut self, id: u64) -> Result<(), ClusterError> {
        if self.nodes[&id].is_running() {
            return Ok(());
        }
        let launch = self.launch(id);
        let join = self.joins.get(&id).cloned();
        self.nodes.get_mut(&id).expect("known node").restart(&launch, join.as_deref())?;
        Ok(())
    }

    pub fn pause(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.pause();
        }
    }

    pub fn resume(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.resume();
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

    /// `(id, base URL)` of every node.
    fn urls(&self) -> Vec<(u64, String)> {
        self.nodes.values().map(|n| (n.id, n.url())).collect()
    }

    /// The leader by the highest-term claim among reachable nodes.
    pub async fn leader(&self) -> Option<u64> {
        views::leader_by_term(&self.urls(), Duration::from_millis(500)).await
    }

    /// Waits until every node agrees on one leader and sees every node as a voter.
    pub async fn wait_healthy(&self, limit: Duration) -> Result<u64, ClusterError> {
        let (urls, want) = (self.urls(), Agreement { voters: Some(self.nodes.len()), leader_among_asked: false });
        let check = || views::agreed_leader(&urls, want, Duration::from_secs(1));
        poll_until("cluster healthy", limit, Duration::from_millis(200), check)
            .await
            .map_err(|_| ClusterError::Timeout(format!("cluster not healthy within {limit:?}")))
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
