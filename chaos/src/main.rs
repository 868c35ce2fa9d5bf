//! `cronraft-chaos`: command-line entry of the Jepsen-style harness. Parses the run options, puts
//! the harness in its self-cleaning network sandbox when a partition nemesis or the
//! `cron-embedded` workload (a host per node) asks for one, runs,
//! prints a summary, and exits 0 only when every checker passes (1 = a checker failed or could not
//! decide, 2 = the run itself could not be carried out).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use cronraft_chaos::checker::{self, Verdict};
use cronraft_chaos::nemesis::Fault;
use cronraft_chaos::run::{self, RunConfig, WORKLOADS};
use cronraft_chaos::{history, net, timeline};

fn long_about() -> String {
    let mut s = String::from("Jepsen-style chaos harness for cronraft.\n\nNemeses (--nemesis, comma-separated):\n");
    for (name, _, help) in Fault::ALL {
        s.push_str(&format!("  {name:<17} {help}\n"));
    }
    s.push_str(
        "\nThe partition nemeses need root, ip (iproute2) and unshare (the run re-executes itself in a\n\
         sandbox); so does cron-embedded; clock needs libfaketime; executor-* need the cron workload.\n",
    );
    s.push_str("\nWorkloads (--workload, comma-separated):\n");
    for (name, help) in WORKLOADS {
        s.push_str(&format!("  {name:<10} {help}\n"));
    }
    s.push_str("\nUnsafe modes (--unsafe), which the checkers must catch:\n");
    for (name, help) in UNSAFE_MODES {
        s.push_str(&format!("  {name:<22} {help}\n"));
    }
    s
}

/// The node's test-only `CRONRAFT_UNSAFE` modes and the checker that must catch each.
const UNSAFE_MODES: [(&str, &str); 3] = [
    ("local-reads", "nodes serve linearizable reads locally (register: linearizable)"),
    ("ignore-watermark", "apply neither filters slots by a task's fire watermark nor moves it (cron: one_per_slot)"),
    ("dispatch-before-commit", "the scheduler sends /execute before proposing the fire (cron: committed_delivery)"),
];

#[derive(Parser)]
#[command(name = "cronraft-chaos", about = "Jepsen-style chaos harness for cronraft", long_about = long_about())]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a cluster, run workloads under faults, check the history.
    #[command(long_about = long_about())]
    Run {
        /// Comma-separated nemeses: kill, pause, partition, partition-bridge, partition-oneway, clock,
        /// membership, executor-kill, executor-slow, executor-churn (empty = none; see above).
        #[arg(long, default_value = "", value_delimiter = ',')]
        nemesis: Vec<String>,
        /// Comma-separated workloads: register, set, cron, cron-embedded.
        #[arg(long, default_value = "register", value_delimiter = ',')]
        workload: Vec<String>,
        /// Length of the main phase in seconds (the final heal and reads come after).
        #[arg(long, default_value_t = 60)]
        time_limit: u64,
        /// Seed of the nemesis schedule and the workload choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Run directory (default: chaos-runs/<seed>-<unix time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Start nodes with CRONRAFT_UNSAFE=MODE: local-reads, ignore-watermark, dispatch-before-commit.
        #[arg(long = "unsafe")]
        unsafe_mode: Option<String>,
        /// The cronraft binary (default: target/release/cronraft).
        #[arg(long)]
        bin: Option<PathBuf>,
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Auth on: a cluster secret on every node; the harness calls with the cluster credential.
        #[arg(long)]
        auth: bool,
        /// TLS on: certificates from `cronraft certs init` for every node, mTLS on Raft.
        #[arg(long)]
        tls: bool,
    },
    /// Re-check a recorded history offline (and draw its timeline.html next to it).
    Check {
        history: PathBuf,
        #[arg(long, default_value = "register", value_delimiter = ',')]
        workload: Vec<String>,
    },
}

fn main() {
    match real_main() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("cronraft-chaos: {e:#}");
            std::process::exit(2);
        }
    }
}

fn real_main() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run { nemesis, workload, time_limit, seed, out, unsafe_mode, bin, nodes, auth, tls } => {
            let mut nemeses = Vec::new();
            for n in nemesis.iter().filter(|n| !n.is_empty()) {
                match Fault::parse(n) {
                    Some(f) => nemeses.push(f),
                    None => bail!("unknown nemesis {n:?} (see --help)"),
                }
            }
            let partitions = nemeses.iter().any(|f| f.is_partition());
            let hosts = workload.iter().any(|w| w == "cron-embedded");
            if (partitions || hosts) && !net::in_sandbox() {
                match partitions {
                    true => net::partitions_supported().context("the partition nemesis is unsupported here")?,
                    false => net::sandbox_supported().context("cron-embedded (a host per node) is unsupported here")?,
                }
                let status = net::reexec_in_sandbox().context("starting the unshare sandbox")?;
                return Ok(status.code().unwrap_or(2));
            }
            let out = out.unwrap_or_else(|| PathBuf::from(format!("chaos-runs/{seed}-{}", history::wall_ms() / 1000)));
            let bin = bin.unwrap_or_else(|| PathBuf::from("target/release/cronraft"));
            let cfg = RunConfig {
                nemeses,
                workloads: workload,
                time_limit: Duration::from_secs(time_limit),
                seed,
                out: out.clone(),
                unsafe_mode,
                bin,
                nodes,
                auth,
                tls,
            };
            let rt = tokio::runtime::Runtime::new()?;
            let results = rt.block_on(run::run(cfg))?;
            print!("{}", run::summary(&results, &out));
            Ok(if results.verdict == Verdict::Pass { 0 } else { 1 })
        }
        Cmd::Check { history: path, workload } => {
            let events = history::read(&path)?;
            let mut all = Vec::new();
            if workload.iter().any(|w| w == "register") {
                all.push(checker::linearizable::check(&events, 2_000_000));
            }
            if workload.iter().any(|w| w == "set") {
                all.push(checker::set_full::check(&events));
            }
            if workload.iter().any(|w| w == "cron" || w == "cron-embedded") {
                all.extend(checker::schedule::check(&events));
            }
            all.push(checker::convergence::check(&events));
            println!("{}", serde_json::to_string_pretty(&all)?);
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let picture =
                timeline::write(dir, &events).with_context(|| format!("writing the timeline in {}", dir.display()))?;
            eprintln!("timeline: {}", picture.display());
            Ok(if all.iter().all(|c| c.verdict == Verdict::Pass) { 0 } else { 1 })
        }
    }
}
