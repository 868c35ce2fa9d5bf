//! `cronraft-bench`: measures durable write latency and throughput of a 3-node cronraft cluster
//! on loopback and, with `--etcd`, of a 3-member etcd 3.4 cluster driven by the same load
//! generator, then prints (and with `--out` writes) a Markdown table and the cronraft/etcd ratios.
//!
//! With `schedule`, it measures the scheduler instead: fire lag, bursts, a sustained fire rate, a
//! leader kill and memory per task (see `schedule.rs`).
//!
//! With `ui`, it measures the web console: each page's server-side render time at 10,000 tasks
//! and 1,000,000 execution records, on a follower and on the leader (see `ui.rs`).
//!
//! With `backup`, it measures a whole backup at 100,000 tasks and 1,000,000 execution records,
//! from a follower and from the leader, and the fire lag of 1,000 fires/s meanwhile (see
//! `backup.rs`).
//!
//! With `notify`, it measures what notifications cost the scheduler at 5,000 fires/s and how
//! fast the leader delivers alerts (see `notify.rs`).
//!
//! ```sh
//! cargo build --release && cargo run -p cronraft-bench --release -- writes --etcd --requests 5000 --clients 1,64
//! cargo run -p cronraft-bench --release -- schedule --scenarios spread,burst,failover,memory
//! cargo run -p cronraft-bench --release -- ui --tasks 10000 --executions 1000000
//! cargo run -p cronraft-bench --release -- backup --tasks 100000 --executions 1000000
//! cargo run -p cronraft-bench --release -- notify --tasks 5000
//! ```

mod backup;
mod child;
mod cronraft;
mod dispatch;
mod etcd;
mod fill;
mod load;
mod notify;
mod report;
mod schedule;
mod ui;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::load::Workload;
use crate::report::{Cpu, Row};

#[derive(Debug, Parser)]
#[command(name = "cronraft-bench", about = "Benchmarks for cronraft (loopback only, bounded)")]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Durable writes: POST /api/v1/tasks on the leader (and etcd's /v3/kv/put with --etcd).
    Writes(WritesArgs),
    /// The scheduler: fire lag, bursts, sustained fires, leader kill, memory and idle CPU.
    Schedule(ScheduleArgs),
    /// The web console: each page's render time (Server-Timing) at scale, on a follower and the leader.
    Ui(UiArgs),
    /// A whole backup at scale, from a follower and the leader, and the fire lag meanwhile.
    Backup(BackupArgs),
    /// Notifications: fire lag with and without rules at 5,000 fires/s, and alerts delivered per second.
    Notify(NotifyArgs),
}

#[derive(Debug, Args)]
struct NotifyArgs {
    /// Tasks every second (each run fails at once: no executor).
    #[arg(long, default_value_t = 5_000)]
    tasks: u64,
    /// Seconds of each fire-lag window (no rule; a rule that matches nothing).
    #[arg(long, default_value_t = 60)]
    window_seconds: u64,
    /// Longest wait for one alert per task.
    #[arg(long, default_value_t = 120)]
    delivery_seconds: u64,
    /// Write the Markdown report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The cronraft binary [default: `cronraft` next to this executable].
    #[arg(long)]
    cronraft_bin: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BackupArgs {
    /// Tasks to create (most idle: daily, weekly, monthly and 6-hourly crons).
    #[arg(long, default_value_t = 100_000)]
    tasks: u64,
    /// Execution records to reach before the backups.
    #[arg(long, default_value_t = 1_000_000)]
    executions: u64,
    /// Tasks firing every second until the records are there (at most 8,000 records each).
    #[arg(long, default_value_t = 5_000)]
    fill_tasks: u64,
    /// Of those, the tasks that go on firing every second through the backups (the load).
    #[arg(long, default_value_t = 1_000)]
    load_tasks: u64,
    /// Longest the fill may take; past it, the backups are taken with the records there are.
    #[arg(long, default_value_t = 3_600)]
    fill_seconds: u64,
    /// Wait after pausing the other fast tasks, for the lag to settle, before the baseline.
    #[arg(long, default_value_t = 10)]
    settle_seconds: u64,
    /// Rounds of backups on the one fill, each a backup from a follower then one from the
    /// leader: one pass of a lag target is luck; every round passing is a result.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    rounds: u64,
    /// Where the backup files go [default: the temporary directory, on the nodes' disk].
    #[arg(long)]
    backup_dir: Option<PathBuf>,
    /// Write the Markdown report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The cronraft binary [default: `cronraft` next to this executable].
    #[arg(long)]
    cronraft_bin: Option<PathBuf>,
    /// Auth on: the nodes get a cluster secret, the API calls (the backups too) an admin token.
    #[arg(long)]
    auth: bool,
}

#[derive(Debug, Args)]
struct UiArgs {
    /// Tasks to create.
    #[arg(long, default_value_t = 10_000)]
    tasks: u64,
    /// Execution records to reach before measuring.
    #[arg(long, default_value_t = 1_000_000)]
    executions: u64,
    /// Tasks firing every second until the records are there [default: a quarter of --tasks, at
    /// most 5,000].
    #[arg(long)]
    fire_tasks: Option<u64>,
    /// Measured sequential GETs per page and node.
    #[arg(long, default_value_t = 200)]
    requests: u64,
    /// Unmeasured GETs before each page's measured ones.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Longest the fill may take; past it, the pages are measured with the records there are.
    #[arg(long, default_value_t = 3_600)]
    fill_seconds: u64,
    /// Write the Markdown report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The cronraft binary [default: `cronraft` next to this executable].
    #[arg(long)]
    cronraft_bin: Option<PathBuf>,
    /// Auth on: the nodes get a cluster secret, the API calls an admin token, the pages its session.
    #[arg(long)]
    auth: bool,
}

#[derive(Debug, Args)]
struct ScheduleArgs {
    /// Scenarios to run, each on a fresh 3-node cluster: spread, burst, burst100k, sustained,
    /// failover, memory, dispatch_lag, throughput.
    #[arg(long, value_delimiter = ',', default_value = "spread,burst,failover,memory")]
    scenarios: Vec<String>,
    /// Tasks for `spread` (every second, phases spread over the second).
    #[arg(long, default_value_t = 1_000)]
    spread_tasks: u64,
    /// Seconds `spread` runs.
    #[arg(long, default_value_t = 30)]
    spread_seconds: u64,
    /// Tasks for `sustained` (every second).
    #[arg(long, default_value_t = 5_000)]
    sustained_tasks: u64,
    /// Seconds `sustained` runs.
    #[arg(long, default_value_t = 600)]
    sustained_seconds: u64,
    /// Tasks for `throughput` (every second; each run an `http` task on the bundled agent).
    #[arg(long, default_value_t = 2_500)]
    throughput_tasks: u64,
    /// Tasks for `memory` and the idle-CPU check.
    #[arg(long, default_value_t = 100_000)]
    memory_tasks: u64,
    /// Write the Markdown table to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The cronraft binary [default: `cronraft` next to this executable].
    #[arg(long)]
    cronraft_bin: Option<PathBuf>,
    /// Auth on: the nodes get a cluster secret and every request an admin token.
    #[arg(long)]
    auth: bool,
}

#[derive(Debug, Args)]
struct WritesArgs {
    /// Also run the same load against a 3-member etcd cluster (needs Debian's etcd-server).
    #[arg(long)]
    etcd: bool,
    /// Measured requests per concurrency level.
    #[arg(long, default_value_t = 5000)]
    requests: u64,
    /// Concurrency levels (closed-loop workers), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    clients: Vec<usize>,
    /// Write the Markdown report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Time limit per level; the level reports what it got by then.
    #[arg(long, default_value_t = 60)]
    max_seconds: u64,
    /// Unmeasured requests before each level.
    #[arg(long, default_value_t = 200)]
    warmup: u64,
    /// Size of the cronraft cluster (1 isolates the cost of replication).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// The cronraft binary [default: `cronraft` next to this executable, i.e. target/release].
    #[arg(long)]
    cronraft_bin: Option<PathBuf>,
    /// The etcd binary.
    #[arg(long, default_value = "etcd")]
    etcd_bin: PathBuf,
    /// Where the temp data dirs go (e.g. /dev/shm to take the disk out) [default: $TMPDIR or /tmp].
    #[arg(long)]
    tmp_dir: Option<PathBuf>,
    /// Auth on (cronraft only): the nodes get a cluster secret and every request an admin token.
    #[arg(long)]
    auth: bool,
}

/// Busy CPU of other processes (in cores, averaged over a level) above which the report says so.
const OTHER_CPU_NOTE: f64 = 0.05;

/// A system under test, kept alive (its processes and data) for as long as the value lives.
enum Sut {
    Cronraft(cronraft::Cluster),
    Etcd(etcd::Cluster),
}

impl Sut {
    fn pids(&self) -> Vec<u32> {
        match self {
            Sut::Cronraft(c) => c.nodes.iter().map(|p| p.pid).collect(),
            Sut::Etcd(c) => c.members.iter().map(|p| p.pid).collect(),
        }
    }

    fn workload(&self) -> Workload {
        match self {
            Sut::Cronraft(c) => cronraft::workload(&c.leader_url),
            Sut::Etcd(c) => etcd::workload(&c.leader_url),
        }
    }

    fn check_alive(&mut self) -> Result<()> {
        let procs = match self {
            Sut::Cronraft(c) => &mut c.nodes,
            Sut::Etcd(c) => &mut c.members,
        };
        procs.iter_mut().try_for_each(|p| p.check_alive())
    }

    /// Leader and term, as the node we send to sees them.
    async fn state(&self, http: &reqwest::Client) -> String {
        match self {
            Sut::Cronraft(c) => cronraft::state(http, &c.leader_url).await,
            Sut::Etcd(c) => etcd::state(http, &c.leader_url).await,
        }
    }

    /// Per-node fsync and snapshot counters (cronraft only).
    async fn counters(&self, http: &reqwest::Client) -> Vec<Option<cronraft::NodeCounters>> {
        match self {
            Sut::Cronraft(c) => cronraft::counters(http, &c.urls).await,
            Sut::Etcd(_) => Vec::new(),
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    // Returning (or being interrupted) drops every cluster, which kills its processes.
    let auth = match &cli.command {
        BenchCommand::Writes(a) => a.auth,
        BenchCommand::Schedule(a) => a.auth,
        BenchCommand::Ui(a) => a.auth,
        BenchCommand::Backup(a) => a.auth,
        BenchCommand::Notify(_) => false,
    };
    // Files of their own, removed with this directory when the benchmark ends.
    let auth_dir = tempfile::Builder::new().prefix("cronraft-bench-auth-").tempdir()?;
    if auth {
        cronraft::enable_auth(auth_dir.path())?;
    }
    let run = async {
        match &cli.command {
            BenchCommand::Writes(args) => writes(args).await,
            BenchCommand::Schedule(args) => schedule_bench(args).await,
            BenchCommand::Ui(args) => ui_bench(args).await,
            BenchCommand::Backup(args) => backup_bench(args).await,
            BenchCommand::Notify(args) => notify_bench(args).await,
        }
    };
    tokio::select! {
        r = run => r,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; child processes stopped"),
    }
}

/// Runs each scheduling scenario on a fresh 3-node cluster and reports them in one table.
async fn schedule_bench(a: &ScheduleArgs) -> Result<()> {
    let http = load::http_client()?;
    let bin = a.cronraft_bin.clone().unwrap_or_else(cronraft::default_binary);
    let mut lines = Vec::new();
    for scenario in &a.scenarios {
        let mut c = cronraft::start(&bin, 3, &std::env::temp_dir(), &http).await?;
        eprintln!("scenario {scenario}: cluster formed, leader {}", c.leader_url);
        let found = match scenario.as_str() {
            "spread" => vec![schedule::spread(&http, &mut c, a.spread_tasks, a.spread_seconds).await?],
            "burst" => vec![schedule::burst(&http, &mut c, 10_000, 1_000).await?],
            "burst100k" => vec![schedule::burst(&http, &mut c, 100_000, 5_000).await?],
            "sustained" => vec![schedule::sustained(&http, &mut c, a.sustained_tasks, a.sustained_seconds).await?],
            "failover" => vec![schedule::failover(&http, &mut c, 100).await?],
            "memory" => schedule::memory(&http, &mut c, a.memory_tasks, 60).await?,
            "dispatch_lag" => vec![dispatch::lag(&http, &mut c, 1_000, a.spread_seconds).await?],
            "throughput" => {
                vec![dispatch::throughput(&http, &mut c, &bin, a.throughput_tasks, a.spread_seconds).await?]
            }
            other => anyhow::bail!("unknown scenario {other:?}"),
        };
        for l in &found {
            eprintln!("{}: {}", l.scenario, l.figures);
        }
        lines.extend(found);
    }
    let text = format!(
        "## cronraft-bench schedule\n\n3 nodes on one machine ({} CPUs), scenarios {:?}.\n\n{}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        a.scenarios,
        schedule::table(&lines)
    );
    println!("{text}");
    if let Some(path) = &a.out {
        std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The console's render benchmark on a fresh 3-node cluster (`ui.rs`).
async fn ui_bench(a: &UiArgs) -> Result<()> {
    let http = load::http_client()?;
    let bin = a.cronraft_bin.clone().unwrap_or_else(cronraft::default_binary);
    let settings = ui::Settings {
        tasks: a.tasks,
        executions: a.executions,
        fire_tasks: a.fire_tasks.unwrap_or((a.tasks / 4).clamp(1, 5_000)),
        requests: a.requests,
        warmup: a.warmup,
        fill_limit: Duration::from_secs(a.fill_seconds),
    };
    let text = ui::run(&http, &bin, &settings).await?;
    println!("{text}");
    if let Some(path) = &a.out {
        std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The backup benchmark on a fresh 3-node cluster (`backup.rs`).
async fn backup_bench(a: &BackupArgs) -> Result<()> {
    let http = load::http_client()?;
    let bin = a.cronraft_bin.clone().unwrap_or_else(cronraft::default_binary);
    let settings = backup::Settings {
        tasks: a.tasks,
        executions: a.executions,
        fill_tasks: a.fill_tasks,
        load_tasks: a.load_tasks,
        fill_limit: Duration::from_secs(a.fill_seconds),
        settle: Duration::from_secs(a.settle_seconds),
        rounds: a.rounds,
        backup_dir: a.backup_dir.clone(),
    };
    let text = backup::run(&http, &bin, &settings).await?;
    println!("{text}");
    if let Some(path) = &a.out {
        std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

async fn notify_bench(a: &NotifyArgs) -> Result<()> {
    let http = load::http_client()?;
    let bin = a.cronraft_bin.clone().unwrap_or_else(cronraft::default_binary);
    let settings = notify::Settings {
        tasks: a.tasks,
        window: Duration::from_secs(a.window_seconds),
        delivery_limit: Duration::from_secs(a.delivery_seconds),
    };
    let text = notify::run(&http, &bin, &settings).await?;
    println!("{text}");
    if let Some(path) = &a.out {
        std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

async fn writes(a: &WritesArgs) -> Result<()> {
    let http = load::http_client()?;
    let name = if a.nodes == 3 { "cronraft".to_string() } else { format!("cronraft-{}node", a.nodes) };
    let mut rows = bench_cronraft(a, &http, &name).await?;
    // If etcd fails, the cronraft figures are still reported before the error.
    let etcd = if a.etcd { bench_etcd(a, &http).await } else { Ok(Vec::new()) };
    if let Ok(etcd_rows) = &etcd {
        rows.extend(etcd_rows.iter().cloned());
    }
    publish(a, &render(a, &rows, &name))?;
    etcd.map(|_| ())
}

/// Prints the report, and writes it to `--out` if given.
fn publish(a: &WritesArgs, text: &str) -> Result<()> {
    println!("{text}");
    if let Some(path) = &a.out {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn tmp_base(a: &WritesArgs) -> PathBuf {
    a.tmp_dir.clone().unwrap_or_else(std::env::temp_dir)
}

async fn bench_cronraft(a: &WritesArgs, http: &reqwest::Client, name: &str) -> Result<Vec<Row>> {
    let bin = a.cronraft_bin.clone().unwrap_or_else(cronraft::default_binary);
    eprintln!("starting a {}-node cronraft cluster from {}", a.nodes, bin.display());
    let cluster = cronraft::start(&bin, a.nodes, &tmp_base(a), http).await?;
    eprintln!("cronraft formed; leader {}", cluster.leader_url);
    run_levels(a, http, Sut::Cronraft(cluster), name).await
}

async fn bench_etcd(a: &WritesArgs, http: &reqwest::Client) -> Result<Vec<Row>> {
    eprintln!("starting a 3-member etcd cluster ({})", a.etcd_bin.display());
    let cluster = etcd::start(&a.etcd_bin, &tmp_base(a), http).await?;
    eprintln!("etcd healthy; leader {}", cluster.leader_url);
    run_levels(a, http, Sut::Etcd(cluster), "etcd").await
}

/// Every concurrency level against one system; the system is stopped when this returns.
async fn run_levels(a: &WritesArgs, http: &reqwest::Client, mut sut: Sut, name: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &clients in &a.clients {
        sut.check_alive()?;
        let row = level(a, http, &sut, name, clients).await?;
        eprintln!("{name} c={clients}: {} ok, {} errors, {:.0} req/s", row.ok, row.errors, row.req_per_s);
        rows.push(row);
    }
    sut.check_alive()?;
    Ok(rows)
}

/// Warm-up, then one measured level with CPU, leader/term and fsync counters taken around it.
async fn level(a: &WritesArgs, http: &reqwest::Client, sut: &Sut, name: &str, clients: usize) -> Result<Row> {
    let work = sut.workload();
    let limit = Duration::from_secs(a.max_seconds);
    let tag = format!("{}-c{clients}", run_id());
    if a.warmup > 0 {
        let w = load::run_level(http, &work, &format!("{tag}-warmup"), clients, a.warmup, limit).await;
        if w.error_count() > 0 {
            eprintln!("{name} c={clients} warm-up errors: {:?}", w.errors);
        }
    }
    let pids = sut.pids();
    let (state0, counters0) = (sut.state(http).await, sut.counters(http).await);
    let cpu0 = cpu_now(&pids)?;
    let result = load::run_level(http, &work, &tag, clients, a.requests, limit).await;
    let cpu1 = cpu_now(&pids)?;
    let (state1, counters1) = (sut.state(http).await, sut.counters(http).await);
    let mut notes = Vec::new();
    if state0 != state1 {
        notes.push(format!("leadership changed during the level: {state0} -> {state1}"));
    }
    notes.extend(cronraft::counter_notes(&counters0, &counters1, result.latencies_ns.len()));
    let cpu = Cpu { server_s: cpu1[0] - cpu0[0], client_s: cpu1[1] - cpu0[1] };
    notes.extend(other_cpu_note(cpu1[2] - cpu0[2] - cpu.server_s - cpu.client_s, result.wall));
    Ok(report::row(name, clients, &result, cpu, notes))
}

/// A note when CPU went to something other than the servers and the client during a level.
fn other_cpu_note(seconds: f64, wall: Duration) -> Option<String> {
    let cores = seconds / wall.as_secs_f64();
    (cores > OTHER_CPU_NOTE).then(|| {
        format!("CPU not attributed to servers or client (other processes, kernel threads): {seconds:.2} s, {cores:.2} cores on average")
    })
}

/// Server CPU (the given pids), this process's CPU, and the whole machine's busy CPU, in seconds.
fn cpu_now(pids: &[u32]) -> Result<[f64; 3]> {
    let server = child::total_cpu_seconds(pids)?;
    Ok([server, child::cpu_seconds(std::process::id())?, child::machine_busy_seconds()?])
}

fn run_id() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The whole report: settings, results, ratios, notes.
fn render(a: &WritesArgs, rows: &[Row], ours: &str) -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mut out = format!(
        "## cronraft-bench writes\n\n{} requests per level after {} warm-up, clients {:?}, limit {} s per level, \
         cronraft {} node(s), {cpus} CPUs, data in {}. Latency in ms (send to body read).\n\n",
        a.requests,
        a.warmup,
        a.clients,
        a.max_seconds,
        a.nodes,
        tmp_base(a).display()
    );
    out.push_str(&report::results_table(rows));
    if let Some(t) = report::ratio_table(rows, ours, "etcd") {
        out.push_str(&format!("\n{ours} / etcd (below 1 is better for latency, above 1 for throughput):\n\n{t}"));
    }
    let notes = report::notes(rows);
    if !notes.is_empty() {
        out.push_str(&format!("\nNotes:\n\n{notes}"));
    }
    out
}
