//! One `cronraft serve` process: started on the addresses it is given (port 0 the first time),
//! announced by its one stdout line, and killed, paused, resumed or terminated on request.
//!
//! A node prints `cronraft node N listening http=A raft=B` once it is up; [`Node::start`] reads
//! that line (within [`Launch::listen_limit`]) and keeps the bound addresses, because a node's
//! addresses are part of the replicated membership: [`Node::restart`] starts it again on the same
//! addresses with the same data directory. A thread keeps draining stdout after the line, so the
//! node never blocks on a full pipe. Dropping a [`Node`] kills and reaps its process.
//!
//! Signals go through `kill(2)` directly and a wrapper's children are found in `/proc`, so the kit
//! needs no `kill`/`pkill` binaries (procps is not on every fresh machine).

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::KitError;

/// How node processes are started; cloned and adjusted per node when nodes differ (a per-node
/// environment, a per-node network namespace wrapper).
#[derive(Debug, Clone)]
pub struct Launch {
    /// The `cronraft` binary.
    pub bin: PathBuf,
    /// A program and its arguments the node runs under (`strace … --`, `ip netns exec NS`);
    /// empty = the binary itself.
    pub wrapper: Vec<OsString>,
    /// A TOML file every node loads (`--config`).
    pub config: Option<PathBuf>,
    /// Run the node's embedded agent; `false` passes `--no-agent` (the harness brings executors).
    pub agent: bool,
    /// Environment set on the node (libfaketime's preload, `CRONRAFT_UNSAFE`, …).
    pub env: Vec<(OsString, OsString)>,
    /// Environment removed from the node (e.g. a `CRONRAFT_UNSAFE` the harness itself inherited).
    pub env_remove: Vec<OsString>,
    /// `CRONRAFT_LOG` for the node.
    pub log_filter: String,
    /// The file in the node's directory that receives its stderr (appended across restarts).
    pub log_name: String,
    /// How long a node may take to print its `listening` line.
    pub listen_limit: Duration,
    /// More `serve` flags (`--insecure`, `--cluster-secret-file F`).
    pub args: Vec<OsString>,
    /// The node serves TLS (its certificate is in `env`): its URL is `https://`.
    pub tls: bool,
}

impl Launch {
    /// Defaults: no wrapper, no config, no agent, `info,openraft=warn` to `stderr.log`, 30 s.
    pub fn new(bin: impl Into<PathBuf>) -> Launch {
        Launch {
            bin: bin.into(),
            wrapper: Vec::new(),
            config: None,
            agent: false,
            env: Vec::new(),
            env_remove: Vec::new(),
            log_filter: "info,openraft=warn".into(),
            log_name: "stderr.log".into(),
            listen_limit: Duration::from_secs(30),
            args: Vec::new(),
            tls: false,
        }
    }

    /// The `cronraft serve` command for node `id` with its data in `data_dir`, on `http`/`raft`,
    /// joining through `join` (comma-separated URLs) if given. Stdio is left to the caller.
    pub fn serve_command(&self, id: u64, data_dir: &Path, (http, raft): (&str, &str), join: Option<&str>) -> Command {
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(&self.bin);
                cmd
            }
            None => Command::new(&self.bin),
        };
        cmd.args(["serve", "--node-id", &id.to_string(), "--http-addr", http, "--raft-addr", raft]);
        if !self.agent {
            cmd.arg("--no-agent");
        }
        cmd.arg("--data-dir").arg(data_dir);
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        if let Some(j) = join {
            cmd.args(["--join", j]);
        }
        cmd.args(&self.args);
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.env("CRONRAFT_LOG", &self.log_filter);
        cmd
    }
}

/// `(http, raft)` from node `id`'s `cronraft node N listening http=A raft=B` line.
pub fn parse_listening_line(line: &str, id: u64) -> Option<(String, String)> {
    let rest = line.strip_prefix(&format!("cronraft node {id} listening "))?;
    let field = |k: &str| rest.split_whitespace().find_map(|w| w.strip_prefix(k)).map(String::from);
    Some((field("http=")?, field("raft=")?))
}

/// One node process and what outlives it (its addresses and directory).
pub struct Node {
    pub id: u64,
    /// The bound HTTP address (`host:port`), kept for restarts.
    pub http: String,
    /// The bound Raft address, kept for restarts.
    pub raft: String,
    /// The node's directory: its data in `data/`, its stderr in [`Launch::log_name`].
    pub dir: PathBuf,
    /// Stopped with SIGSTOP and not yet resumed.
    pub paused: bool,
    /// Serves TLS ([`Launch::tls`]): [`Node::url`] is `https://`.
    pub tls: bool,
    /// `None` once killed or terminated.
    child: Option<Child>,
}

impl Node {
    /// Starts node `id` in `dir` on `addrs` (`host:0` for fresh ports), joining through `join`.
    pub fn start(
        launch: &Launch,
        id: u64,
        dir: &Path,
        addrs: (&str, &str),
        join: Option<&str>,
    ) -> Result<Node, KitError> {
        std::fs::create_dir_all(dir)?;
        let mut node = Node {
            id,
            http: addrs.0.into(),
            raft: addrs.1.into(),
            dir: dir.into(),
            paused: false,
            tls: launch.tls,
            child: None,
        };
        node.spawn(launch, join)?;
        Ok(node)
    }

    /// Starts a stopped node again on its old addresses with its old data (no-op if running).
    pub fn restart(&mut self, launch: &Launch, join: Option<&str>) -> Result<(), KitError> {
        if self.is_running() {
            return Ok(());
        }
        self.spawn(launch, join)
    }

    fn spawn(&mut self, launch: &Launch, join: Option<&str>) -> Result<(), KitError> {
        let id = self.id;
        let log_path = self.dir.join(&launch.log_name);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let mut cmd = launch.serve_command(id, &self.dir.join("data"), (&self.http, &self.raft), join);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
        let bin = launch.bin.display().to_string();
        let mut child = cmd.spawn().map_err(|source| KitError::Spawn { id, bin, source })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addrs) = parse_listening_line(&line, id) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addrs);
                    }
                }
            }
        });
        let Ok((http, raft)) = rx.recv_timeout(launch.listen_limit) else {
            let _ = child.kill();
            let _ = child.wait();
            let secs = launch.listen_limit.as_secs();
            return Err(KitError::NoListenLine { id, secs, log: log_path.display().to_string() });
        };
        (self.http, self.raft, self.paused, self.child) = (http, raft, false, Some(child));
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.http)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id while running (the wrapper's, when the node runs under one).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `sig` to the running process (nothing if it is not running).
    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the pid of a child we own and have not reaped.
            unsafe { libc::kill(pid as i32, sig) };
        }
    }

    /// SIGSTOP: the process stays, frozen.
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        self.paused = self.is_running();
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
        self.paused = false;
    }

    /// `kill -9` and reap; returns the pid it killed, if the node was running.
    pub fn kill(&mut self) -> Option<u32> {
        self.paused = false;
        let mut child = self.child.take()?;
        let _ = child.kill();
        let _ = child.wait();
        Some(child.id())
    }

    /// SIGTERM, then waits for a graceful exit; `None` if the node was not running.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGTERM);
        self.paused = false;
        self.child.take()?.wait().ok()
    }

    /// SIGTERM to the process' children (the node itself when it runs under a wrapper such as
    /// strace), then waits for the wrapper to exit.
    pub fn terminate_children(&mut self) -> Option<ExitStatus> {
        let pid = self.pid()?;
        for child in children(pid) {
            // SAFETY: kill(2) on a pid read from our own child's /proc children list.
            unsafe { libc::kill(child as i32, libc::SIGTERM) };
        }
        self.paused = false;
        self.child.take()?.wait().ok()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The direct children of `pid`, from `/proc/PID/task/*/children`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let lists = tasks.flatten().filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok());
    lists.flat_map(|l| l.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<_>>()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_gives_both_addresses_of_the_right_node() {
        let line = "cronraft node 2 listening http=127.0.0.1:4100 raft=127.0.0.1:4101";
        assert_eq!(parse_listening_line(line, 2), Some(("127.0.0.1:4100".into(), "127.0.0.1:4101".into())));
        assert_eq!(parse_listening_line(line, 1), None, "another node's line");
        assert_eq!(parse_listening_line("cronraft node 2 listening http=x", 2), None, "no raft address");
    }
}
