//! The network sandbox that makes partitions possible: one network namespace per node, joined by a
//! Linux bridge in the harness' own (private) namespace, and partitions as nftables DROP rules on
//! the bridge's forward hook (node-to-node traffic only; the harness at 10.77.0.254 still reaches
//! every node, so clients can observe what an isolated node answers).
//!
//! Three shapes: [`Net::isolate`] (a node or a group cut from the rest, both ways),
//! [`Net::bridge`] (two halves that cannot talk, and one node that talks to both) and
//! [`Net::one_way`] (A cannot reach B, B still reaches A). Symmetric cuts live on the bridge;
//! one-way cuts need connection tracking and live in the receiving node's namespace (an `inet`
//! table with an input hook), because a plain one-way packet drop is a two-way TCP partition:
//! dropping A's packets to B also drops A's SYN-ACKs to B, so B cannot connect to A either.
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

/// What partitions need: root, `unshare`, `ip`, `nft`. `Err` names what is missing.
pub fn partitions_supported() -> Result<(), NetError> {
    needs(&[("unshare", "--version"), ("ip", "-V"), ("nft", "--version")])
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
                "nft" => "the `nft` tool (Debian package nftables)",
                "ip" => "the `ip` tool (Debian package iproute2)",
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
    let exe = std::env::current_exe()?;
    Command::new("unshare")
        .args(["--pid", "--net", "--mount", "--fork", "--kill-child", "--mount-proc", "--propagation", "private"])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(SANDBOX_ENV, "1")
        .status()
}

fn sh(args: &[&str]) -> Result<(), NetError> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| NetError::Command { cmd: args.join(" "), detail: e.to_string() })?;
    if !out.status.success() {
        let detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(NetError::Command { cmd: args.join(" "), detail });
    }
    Ok(())
}

/// The namespaces and bridge of one run (inside the sandbox).
#[derive(Debug, Clone)]
pub struct Net {
    n: u64,
    /// Whether the nftables chains of partitions exist ([`Net::setup`]); without them
    /// ([`Net::hosts`]) there is nothing to heal.
    partitions: bool,
}

impl Net {
    /// Creates the bridge (10.77.0.254), `n` node namespaces (10.77.0.1..n) and the nftables
    /// chains partitions use. Must run inside the sandbox: it mounts a private `/run/netns` and
    /// changes this namespace's links.
    pub fn setup(n: u64) -> Result<Net, NetError> {
        let mut net = Net::hosts(n)?;
        net.add_partition_chains()?;
        net.partitions = true;
        Ok(net)
    }

    /// The namespaces and the bridge only, no nftables: `n` "hosts" on one LAN, each with its own
    /// address, for runs that need separate hosts but no partitions (the embedded agents'
    /// three-host test, the `cron-embedded` workload). Needs root, `unshare` and `ip`, not `nft`.
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

    /// The per-node one-way chains and the bridge's `grudge` chain that partitions add rules to.
    fn add_partition_chains(&self) -> Result<(), NetError> {
        for id in 1..=self.n {
            let ns = self.ns(id);
            sh(&["ip", "netns", "exec", &ns, "nft", "add", "table", "inet", "chaos"])?;
            sh(&[
                "ip",
                "netns",
                "exec",
                &ns,
                "nft",
                "add",
                "chain",
                "inet",
                "chaos",
                "oneway",
                "{ type filter hook input priority 0; policy accept; }",
            ])?;
            // A rule using conntrack turns connection tracking on in this namespace now, before
            // any node connects. Turned on only by the first one-way rule, it would pick up
            // connections mid-stream and take whichever side sent the next packet for the
            // initiator, so a one-way cut would miss some pooled connections (seen: a muted
            // leader kept replicating to one follower over its old keep-alive connection). It
            // lives in a chain of its own, which `heal` never flushes.
            let track = "{ type filter hook input priority -1; policy accept; }";
            sh(&["ip", "netns", "exec", &ns, "nft", "add", "chain", "inet", "chaos", "track", track])?;
            let count_invalid = ["ct", "state", "invalid", "counter"];
            let mut rule = vec!["ip", "netns", "exec", &ns, "nft", "add", "rule", "inet", "chaos", "track"];
            rule.extend(count_invalid);
            sh(&rule)?;
        }
        sh(&["nft", "add", "table", "bridge", "chaos"])?;
        sh(&[
            "nft",
            "add",
            "chain",
            "bridge",
            "chaos",
            "grudge",
            "{ type filter hook forward priority 0; policy accept; }",
        ])?;
        Ok(())
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

    /// Cuts all traffic, both ways, between every node of `a` and every node of `b`.
    pub fn cut(&self, a: &[u64], b: &[u64]) -> Result<(), NetError> {
        for x in a {
            for y in b.iter().filter(|y| *y != x) {
                for (s, d) in [(self.ip(*x), self.ip(*y)), (self.ip(*y), self.ip(*x))] {
                    sh(&[
                        "nft", "add", "rule", "bridge", "chaos", "grudge", "ip", "saddr", &s, "ip", "daddr", &d, "drop",
                    ])?;
                }
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

    /// One-way: `from` can no longer reach `to` — every packet `from` sends on a connection it
    /// opened to `to` (its SYN included) is dropped in `to`'s namespace — while `to` still opens
    /// connections to `from` and gets `from`'s answers on them. For request/response traffic such
    /// as Raft over HTTP this is "messages from A to B are lost, messages from B to A arrive".
    /// Connections already open from `from` to `to` (pooled keep-alive ones too) stall as well.
    pub fn one_way(&self, from: u64, to: u64) -> Result<(), NetError> {
        let ns = self.ns(to);
        let src = self.ip(from);
        sh(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "nft",
            "add",
            "rule",
            "inet",
            "chaos",
            "oneway",
            "ip",
            "saddr",
            &src,
            "ct",
            "direction",
            "original",
            "drop",
        ])
    }

    /// Removes every partition rule (the bridge's and every node's one-way rules); nothing to do
    /// on namespaces made without partition chains.
    pub fn heal(&self) -> Result<(), NetError> {
        if !self.partitions {
            return Ok(());
        }
        let mut first_err = sh(&["nft", "flush", "chain", "bridge", "chaos", "grudge"]).err();
        for id in 1..=self.n {
            let ns = self.ns(id);
            if let Err(e) = sh(&["ip", "netns", "exec", &ns, "nft", "flush", "chain", "inet", "chaos", "oneway"]) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
