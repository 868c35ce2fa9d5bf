//! The network sandbox that makes partitions possible: one network namespace per node, joined by a
//! Linux bridge in the harness' own (private) namespace, and partitions as policy-routing rules
//! (`ip rule ... blackhole`) inside the nodes' namespaces — iproute2 alone, no nftables. They cut
//! node-to-node traffic only: the harness at 10.77.0.254 still reaches every node, so clients can
//! observe what an isolated node answers.
//!
//! Three shapes: [`Net::isolate`] (a node or a group cut from the rest, both ways),
//! [`Net::bridge`] (two halves that cannot talk, and one node that talks to both) and
//! [`Net::one_way`] (A cannot reach B, B still reaches A). Every cut is a rule in the *receiving*
//! node's namespace that drops, on input, packets from the cut-off node: a symmetric cut is such
//! a rule on both sides. Input drops are silent (the node namespaces do not forward, so the
//! kernel sends no ICMP error for them), so a cut looks like a dead link — connects and requests
//! time out — as the nftables drops on the bridge did before. A one-way cut cannot simply drop
//! all of A's packets at B: that drops A's SYN-ACKs and answers too, so B could not reach A
//! either (a two-way TCP partition). Without connection tracking it tells the two directions
//! apart by port: a connection A opened to B goes to one of B's *listening* ports, while A's
//! packets on a connection B opened come from A's listening port to one of B's ephemeral ports
//! (which never equal a port B listens on). So the rule drops A's packets to B's listening ports
//! (read with `ss` when the cut starts), and only those.
//!
//! All of it lives inside `unshare --pid --net --mount --fork --kill-child`: the namespaces, the
//! bridge, the rules and every node process vanish with the harness, even after `kill -9`.
//! [`reexec_in_sandbox`] starts that sandbox around the harness itself.

use std::process::{Command, ExitStatus};

/// The harness' own address on the bridge: nodes in their namespaces reach it (and the
/// recording executor listening on it) through the bridge; partitions never cut it.
pub const BRIDGE_IP: &str = "10.77.0.254";

/// Set in the harness' environment once it runs inside the sandbox.
pub const SANDBOX_ENV: &str = "CRONRAFT_CHAOS_SANDBOX";

/// Why the sandbox could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("`{cmd}` failed: {detail}")]
    Command { cmd: String, detail: String },
    #[error("partitions need {0}; this run cannot use them")]
    Unsupported(String),
}

/// Whether this process already runs inside the sandbox.
pub fn in_sandbox() -> bool {
    std::env::var(SANDBOX_ENV).is_ok_and(|v| v == "1")
}

/// What partitions need: root, `unshare` and iproute2's `ip` (and its `ss`, which reads a
/// node's listening ports for one-way cuts). `Err` names what is missing.
pub fn partitions_supported() -> Result<(), NetError> {
    needs(&[("unshare", "--version"), ("ip", "-V"), ("ss", "-V")])
}

/// What the sandbox and its namespaces need without partitions ([`Net::hosts`]): root,
/// `unshare`, `ip`. `Err` names what is missing.
pub fn sandbox_supported() -> Result<(), NetError> {
    needs(&[("unshare", "--version"), ("ip", "-V")])
}

fn needs(tools: &[(&str, &str)]) -> Result<(), NetError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(NetError::Unsupported("root (network namespaces)".into()));
    }
    for &(tool, arg) in tools {
        let ok = Command::new(tool).arg(arg).output().map(|o| o.status.success()).unwrap_or(false);
        if !ok {
            let pkg = match tool {
                "ip" => "the `ip` tool (Debian package iproute2)",
                "ss" => "the `ss` tool (Debian package iproute2)",
                _ => "the `unshare` tool (Debian package util-linux)",
            };
            return Err(NetError::Unsupported(pkg.into()));
        }
    }
    Ok(())
}

/// Runs this same program again inside a fresh PID, network and mount namespace and returns its
/// exit status. The harness is PID 1 there: when it dies, the kernel kills every node.
pub fn reexec_in_sandbox() -> std::io::Result<ExitStatus> {
    reexec_in_sandbox_with(std::env::args_os().skip(1))
}

/// [`reexec_in_sandbox`] with these arguments instead of this process' own: a test binary that
/// holds many tests re-executes only the one asking (its exact name).
pub fn reexec_in_sandbox_with<S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
) -> std::io::Result<ExitStatus> {
    let exe = std::env::current_exe()?;
    Command::new("unshare")
        .args(["--pid", "--net", "--mount", "--fork", "--kill-child", "--mount-proc", "--propagation", "private"])
        .arg(exe)
        .args(args)
        .env(SANDBOX_ENV, "1")
        .status()
}

fn sh(args: &[&str]) -> Result<(), NetError> {
    output(args).map(|_| ())
}

/// Runs `args` and returns its standard output, or why it failed.
fn output(args: &[&str]) -> Result<String, NetError> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| NetError::Command { cmd: args.join(" "), detail: e.to_string() })?;
    if !out.status.success() {
        let detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(NetError::Command { cmd: args.join(" "), detail });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `ip rule` priority of every partition rule. Below [`LOCAL_PREF`]: the local table's rule
/// delivers every packet addressed to the node, so a cut must be looked at before it.
const CUT_PREF: &str = "10";

/// Where [`Net::setup`] moves the local table's rule in each node namespace (the kernel puts it
/// at 0, the first priority, where no rule can precede it).
const LOCAL_PREF: &str = "100";

/// The namespaces and bridge of one run (inside the sandbox).
#[derive(Debug, Clone)]
pub struct Net {
    n: u64,
    /// Whether the node namespaces are ready for partition rules ([`Net::setup`]: the local
    /// table's rule moved after [`CUT_PREF`]); without that ([`Net::hosts`]) there is nothing to
    /// heal.
    partitions: bool,
}

impl Net {
    /// Creates the bridge (10.77.0.254) and `n` node namespaces (10.77.0.1..n) ready for
    /// partition rules. Must run inside the sandbox: it mounts a private `/run/netns` and changes
    /// this namespace's links.
    pub fn setup(n: u64) -> Result<Net, NetError> {
        let mut net = Net::hosts(n)?;
        for id in 1..=n {
            // Add the new local rule before deleting the old one: without either, the node would
            // receive nothing, not even from the harness.
            let ns = net.ns(id);
            sh(&["ip", "-n", &ns, "rule", "add", "pref", LOCAL_PREF, "lookup", "local"])?;
            sh(&["ip", "-n", &ns, "rule", "del", "pref", "0", "lookup", "local"])?;
        }
        net.partitions = true;
        Ok(net)
    }

    /// The namespaces and the bridge only, no partition rules: `n` "hosts" on one LAN, each with
    /// its own address, for runs that need separate hosts but no partitions (the embedded agents'
    /// three-host test, the `cron-embedded` workload). Needs root, `unshare` and `ip`.
    pub fn hosts(n: u64) -> Result<Net, NetError> {
        if !in_sandbox() {
            return Err(NetError::Unsupported("the sandbox (run through `cronraft-chaos run`)".into()));
        }
        // A second run in the same sandbox (a test retrying with another seed) finds the first
        // run's bridge and veths: remove them, or `ip link add` fails with "File exists".
        // Deleting a veth deletes its peer in the old node namespace too. Errors only mean
        // there was nothing to remove.
        let mut leftovers = vec!["br0".to_string()];
        leftovers.extend((1..=n).map(|id| format!("veth{id}")));
        for link in &leftovers {
            let _ = Command::new("ip").args(["link", "del", link]).output();
        }
        sh(&["mkdir", "-p", "/run/netns"])?;
        sh(&["mount", "-t", "tmpfs", "chaos-netns", "/run/netns"])?;
        sh(&["ip", "link", "set", "lo", "up"])?;
        sh(&["ip", "link", "add", "br0", "type", "bridge"])?;
        sh(&["ip", "addr", "add", "10.77.0.254/24", "dev", "br0"])?;
        sh(&["ip", "link", "set", "br0", "up"])?;
        let net = Net { n, partitions: false };
        for id in 1..=n {
            let ns = net.ns(id);
            let veth = format!("veth{id}");
            sh(&["ip", "netns", "add", &ns])?;
            sh(&["ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            sh(&["ip", "link", "set", &veth, "master", "br0", "up"])?;
            sh(&["ip", "-n", &ns, "addr", "add", &format!("{}/24", net.ip(id)), "dev", "eth0"])?;
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    pub fn ns(&self, id: u64) -> String {
        format!("crn{id}")
    }

    pub fn ip(&self, id: u64) -> String {
        format!("10.77.0.{id}")
    }

    /// Cuts all traffic, both ways, between `side` and every other node.
    pub fn isolate(&self, side: &[u64]) -> Result<(), NetError> {
        let rest: Vec<u64> = (1..=self.n).filter(|b| !side.contains(b)).collect();
        self.cut(side, &rest)
    }

    /// Cuts all traffic, both ways, between every node of `a` and every node of `b`: each drops
    /// whatever arrives from the other.
    pub fn cut(&self, a: &[u64], b: &[u64]) -> Result<(), NetError> {
        for x in a {
            for y in b.iter().filter(|y| *y != x) {
                self.drop_input(*x, *y, &[])?;
                self.drop_input(*y, *x, &[])?;
            }
        }
        Ok(())
    }

    /// The bridge partition: halves `a` and `b` cannot talk to each other; `bridge` (in neither)
    /// still talks to both, so each half plus the bridge node is a majority and the two
    /// majorities overlap in it.
    pub fn bridge(&self, a: &[u64], b: &[u64]) -> Result<(), NetError> {
        self.cut(a, b)
    }

    /// One-way: `from` can no longer reach `to` — every packet `from` sends to a port `to`
    /// listens on (the SYN and everything after it on a connection `from` opened to `to`) is
    /// dropped in `to`'s namespace — while `to` still opens connections to `from` and gets
    /// `from`'s answers on them (those go to `to`'s ephemeral ports). For request/response
    /// traffic such as Raft over HTTP this is "messages from A to B are lost, messages from B to A
    /// arrive". Connections already open from `from` to `to` (pooled keep-alive ones too) stall
    /// as well: a new rule invalidates every socket's cached input route, so their packets meet
    /// the rule too. The ports are `to`'s listeners when the cut starts (its API, Raft and, with
    /// the embedded agent, agent ports); steps never overlap, so `to` does not restart meanwhile.
    pub fn one_way(&self, from: u64, to: u64) -> Result<(), NetError> {
        let ports = self.listening_ports(to)?;
        if ports.is_empty() {
            let detail = "no listening TCP port: a one-way cut would cut nothing".to_string();
            return Err(NetError::Command { cmd: format!("ss -N {} -Hltn", self.ns(to)), detail });
        }
        self.drop_input(to, from, &ports)
    }

    /// In `at`'s namespace, drops every packet arriving from `from` (with `ports`, only TCP
    /// packets to one of them): policy-routing rules of type `blackhole` at [`CUT_PREF`].
    fn drop_input(&self, at: u64, from: u64, ports: &[u16]) -> Result<(), NetError> {
        let (ns, src) = (self.ns(at), self.ip(from));
        let rule = ["ip", "-n", &ns, "rule", "add", "pref", CUT_PREF, "iif", "eth0", "from", &src];
        if ports.is_empty() {
            return sh(&[&rule[..], &["blackhole"]].concat());
        }
        for port in ports {
            sh(&[&rule[..], &["ipproto", "tcp", "dport", &port.to_string(), "blackhole"]].concat())?;
        }
        Ok(())
    }

    /// The TCP ports node `id` listens on (`ss` in its namespace).
    fn listening_ports(&self, id: u64) -> Result<Vec<u16>, NetError> {
        Ok(parse_listening_ports(&output(&["ss", "-N", &self.ns(id), "-Hltn"])?))
    }

    /// Removes every partition rule from every node namespace; nothing to do on namespaces made
    /// without partition support.
    pub fn heal(&self) -> Result<(), NetError> {
        if !self.partitions {
            return Ok(());
        }
        let mut first_err = None;
        for id in 1..=self.n {
            if let Err(e) = sh(&["ip", "-n", &self.ns(id), "rule", "flush", "pref", CUT_PREF]) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// The ports of `ss -Hltn`'s listing (local address is the fourth column: `10.77.0.2:41234`,
/// `*:80`, `[::]:8080`), sorted, without repeats.
fn parse_listening_ports(listing: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|local| local.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use super::*;

    #[test]
    fn listening_ports_come_from_the_local_address_column() {
        let listing = "LISTEN 0      1024   10.77.0.2:41234 0.0.0.0:*\n\
                       LISTEN 0      128    10.77.0.2:35001 0.0.0.0:*\n\
                       LISTEN 0      4096   *:80 *:*\n\
                       LISTEN 0      511    [::]:41234 [::]:*\n\n";
        assert_eq!(parse_listening_ports(listing), vec![80, 35001, 41234]);
        assert!(parse_listening_ports("").is_empty());
    }

    /// Runs `f` on a thread that has joined node `id`'s network namespace: sockets it makes
    /// belong to that namespace for good.
    fn in_ns<T: Send + 'static>(net: &Net, id: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", net.ns(id));
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open the namespace");
            // SAFETY: setns on a valid namespace fd changes only this thread's network namespace.
            assert_eq!(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {path}");
            f()
        })
        .join()
        .expect("namespace thread")
    }

    /// An echo server on node `id`'s address, port 0; returns its address.
    fn echo_server(net: &Net, id: u64) -> SocketAddr {
        let ip = net.ip(id);
        let listener = in_ns(net, id, move || TcpListener::bind((ip.as_str(), 0)).expect("bind"));
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for mut conn in listener.incoming().map_while(Result::ok) {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1];
                    while conn.read_exact(&mut buf).is_ok() && conn.write_all(&buf).is_ok() {}
                });
            }
        });
        addr
    }

    /// One byte there and back on `conn` within a second.
    fn echoes(conn: &mut TcpStream) -> bool {
        conn.set_read_timeout(Some(Duration::from_secs(1))).expect("timeout");
        let mut buf = [0u8; 1];
        conn.write_all(b"x").is_ok() && conn.read_exact(&mut buf).is_ok()
    }

    /// Whether a new connection from node `from` (or the harness, `None`) to `to` echoes.
    fn reaches(net: &Net, from: Option<u64>, to: SocketAddr) -> bool {
        let probe = move || {
            TcpStream::connect_timeout(&to, Duration::from_secs(1)).map(|mut c| echoes(&mut c)).unwrap_or(false)
        };
        match from {
            Some(id) => in_ns(net, id, probe),
            None => probe(),
        }
    }

    /// The three cut shapes and heal, on real namespaces and sockets: a symmetric cut stops
    /// both directions, a one-way cut only the one it names (new and established connections
    /// alike), the harness always gets through, and heal restores everything. (A one-way cut
    /// that dropped all of 1's packets at 2 fails here: 2 could not reach 1 either.)
    #[test]
    #[ignore = "needs root, unshare and iproute2 (network namespaces); run with --include-ignored"]
    fn cuts_made_of_ip_rules_drop_what_they_should_and_heal() {
        if !in_sandbox() {
            let exe = std::env::current_exe().expect("test binary");
            let status = Command::new("unshare")
                .args([
                    "--pid",
                    "--net",
                    "--mount",
                    "--fork",
                    "--kill-child",
                    "--mount-proc",
                    "--propagation",
                    "private",
                ])
                .arg(exe)
                .args(["--exact", "net::tests::cuts_made_of_ip_rules_drop_what_they_should_and_heal"])
                .args(["--include-ignored", "--nocapture"])
                .env(SANDBOX_ENV, "1")
                .status()
                .expect("start the unshare sandbox");
            assert!(status.success(), "the sandboxed run failed: {status}");
            return;
        }
        // Two nodes on the bridge, each with an echo server; everything flows.
        let net = Net::setup(2).expect("namespaces");
        let (one, two) = (echo_server(&net, 1), echo_server(&net, 2));
        assert!(reaches(&net, Some(1), two) && reaches(&net, Some(2), one), "before any cut");
        let ip = net.ip(1);
        let mut pooled = in_ns(&net, 1, move || {
            TcpStream::connect_timeout(&two, Duration::from_secs(1)).expect("1 → 2 before the cut")
        });
        assert!(echoes(&mut pooled));
        assert_eq!(pooled.local_addr().expect("local").ip().to_string(), ip);

        // One-way: 1 cannot reach 2 (new or established connections); 2 still reaches 1.
        net.one_way(1, 2).expect("one-way cut");
        assert!(!reaches(&net, Some(1), two), "1 → 2 must be cut");
        assert!(!echoes(&mut pooled), "an established 1 → 2 connection must stall too");
        assert!(reaches(&net, Some(2), one), "2 → 1 must still work (its answers come back)");
        assert!(reaches(&net, None, two), "the harness always reaches every node");
        net.heal().expect("heal");
        assert!(reaches(&net, Some(1), two) && reaches(&net, Some(2), one), "after heal");

        // Isolate (and so bridge, the same cut between halves): neither direction works.
        net.isolate(&[1]).expect("isolate");
        assert!(!reaches(&net, Some(1), two) && !reaches(&net, Some(2), one), "isolate is both ways");
        assert!(reaches(&net, None, one), "clients still reach the isolated node");
        net.heal().expect("heal");
        assert!(reaches(&net, Some(1), two) && reaches(&net, Some(2), one), "after the second heal");
    }
}
