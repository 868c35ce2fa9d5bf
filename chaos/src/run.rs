//! One run: start the cluster, run the workloads and the nemesis for the time limit, heal, wait
//! for recovery, read every node, check the history, and write `history.jsonl`,
//! `results.json` and `timeline.html` into the run directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::checker::{self, CheckResult, Verdict};
use crate::cluster::{Cluster, ClusterError, NodeOptions};
use crate::executor::Executor;
use crate::history::{Event, Kind, Process, Recorder};
use crate::nemesis::{self, Fault};
use crate::net::{Net, NetError};
use crate::workload::cron::Runner;
use crate::workload::{self, Ctx, Request};

/// The workloads, with their `--help` descriptions.
pub const WORKLOADS: [(&str, &str); 4] = [
    ("register", "per-task register: PUT description / linearizable GET on random nodes; WGL checker"),
    ("set", "create uniquely named tasks on random nodes; final list from every node; set-full checker"),
    (
        "cron",
        "1-2 s tasks (parallel, sequential, skip; one paused/resumed) run by a recording executor; schedule checkers",
    ),
    (
        "cron-embedded",
        "the cron tasks run by the nodes' embedded agents, one namespace (host) per node; evidence from the records",
    ),
];

/// How long the cron workload keeps running after the cluster is healthy again, before it is
/// quiesced: the window in which the liveness checker expects every slot.
const CRON_AFTER_HEAL: Duration = Duration::from_secs(12);

/// How much longer the quiet period may last while a `sequential` task drains the backlog the
/// faults left in its queue (see [`workload::cron::wait_caught_up`]).
const CRON_CATCH_UP: Duration = Duration::from_secs(60);

/// Node config for runs: default Raft timing (election timeout 400–800 ms), and executor health
/// checks every second instead of every 30 s: an instance that could not be reached once is
/// ejected until two good checks, so with the default interval the `cron` workload's executor
/// would stay ejected for up to a minute after `executor-kill`, longer than the liveness window.
const NODE_CONFIG: &str = "[raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 400\nelection_timeout_max_ms = 800\n\
                           [executors]\nhealth_check_interval_ms = 1000\nhealth_check_timeout_ms = 500\n";

/// What to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    pub nemeses: Vec<Fault>,
    pub workloads: Vec<String>,
    pub time_limit: Duration,
    pub seed: u64,
    pub out: PathBuf,
    pub unsafe_mode: Option<String>,
    pub bin: PathBuf,
    pub nodes: u64,
    /// Auth on: the nodes share a cluster secret, and the harness's clients and recording
    /// executor send the cluster credential (so every request passes the nodes' checks, Raft
    /// and joins carry the secret, and the embedded agents take only signed requests).
    pub auth: bool,
    /// TLS on: certificates from `cronraft certs init` for every node's address, TLS on every
    /// listener and mTLS on Raft; the harness's clients trust the CA.
    pub tls: bool,
}

impl RunConfig {
    /// Whether the run includes workload `w`.
    pub fn has(&self, w: &str) -> bool {
        self.workloads.iter().any(|x| x == w)
    }
}

/// Why a run could not be carried out (as opposed to a checker failing).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("unknown workload {0:?}")]
    UnknownWorkload(String),
    #[error("the cronraft binary {0} does not exist (build it: cargo build --release -p cronraft)")]
    NoBinary(String),
    #[error(transparent)]
    Executor(#[from] crate::executor::ExecutorError),
}

/// The content of `results.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub verdict: Verdict,
    pub seed: u64,
    pub nemeses: Vec<Fault>,
    pub workloads: Vec<String>,
    pub unsafe_mode: Option<String>,
    pub time_limit_s: u64,
    pub elapsed_s: f64,
    pub ops: Value,
    pub nemesis_steps: Vec<nemesis::Step>,
    pub checkers: Vec<CheckResult>,
}

/// Carries out one run, phase by phase: check the configuration, start the cluster (in its
/// namespaces when the run needs them), set the workloads up, run them against the nemesis for
/// the time limit, heal and read every node, then check the history and write the results.
pub async fn run(cfg: RunConfig) -> Result<Results, RunError> {
    let faketime = validate(&cfg)?;
    let began = Instant::now();
    std::fs::create_dir_all(&cfg.out)?;
    let cluster = start_cluster(&cfg, faketime).await?;
    let nodes: Vec<(u64, String)> = cluster.ids().into_iter().map(|id| (id, cluster.url(id))).collect();
    let cluster = Arc::new(Mutex::new(cluster));
    let rec = Recorder::to_file(&cfg.out.join("history.jsonl"))?;
    let sampler = crate::sampler::spawn(nodes.clone(), rec.clone());
    let ctx = Arc::new(Ctx::new(nodes, rec.clone(), cfg.seed));

    let setup = setup_workloads(&cfg, &ctx, &cluster).await?;
    let targets = nemesis::Targets {
        cluster: cluster.clone(),
        executor: setup.executor.clone(),
        executor_ids: setup.executor_ids.clone(),
    };
    let steps = nemesis::schedule(cfg.seed, &cfg.nemeses, cfg.time_limit, cfg.nodes);
    main_phase(&cfg, &ctx, &setup, &targets, &steps).await;
    final_phase(&cfg, &ctx, &setup, &targets).await;
    sampler.abort();
    cluster.lock().await.shutdown();
    // The last references to the recording executor: dropping them stops its server.
    drop(targets);
    drop(setup);

    let events = rec.snapshot();
    let results = results(&cfg, &events, steps, began.elapsed().as_secs_f64());
    std::fs::write(cfg.out.join("results.json"), serde_json::to_vec_pretty(&results).expect("serialize"))?;
    crate::timeline::write(&cfg.out, &events)?;
    if cfg.auth {
        cronraft_api::client::set_process_token(None);
    }
    if cfg.tls {
        cronraft_api::client::set_process_tls(None);
    }
    Ok(results)
}

/// Whether the configuration can run here: known workloads, the combinations they need, the
/// sandbox, libfaketime for the clock nemesis (its path is returned), the binary.
fn validate(cfg: &RunConfig) -> Result<Option<PathBuf>, RunError> {
    for w in &cfg.workloads {
        if !WORKLOADS.iter().any(|(n, _)| n == w) {
            return Err(RunError::UnknownWorkload(w.clone()));
        }
    }
    if cfg.nemeses.iter().any(|f| f.is_executor()) && !cfg.has("cron") {
        return Err(RunError::Invalid(
            "executor-kill and executor-slow need the cron workload (its recording executor)".into(),
        ));
    }
    if cfg.nemeses.iter().any(|f| f.is_partition()) && !crate::net::in_sandbox() {
        return Err(RunError::Invalid(
            "partition nemeses need the network sandbox (run them through `cronraft-chaos run`)".into(),
        ));
    }
    let embedded = cfg.has("cron-embedded");
    if embedded && cfg.has("cron") {
        return Err(RunError::Invalid("cron and cron-embedded share task names: choose one".into()));
    }
    if embedded && !crate::net::in_sandbox() {
        return Err(RunError::Invalid(
            "cron-embedded runs each node on a host of its own: it needs the network sandbox (`cronraft-chaos run`)"
                .into(),
        ));
    }
    let faketime = match cfg.nemeses.contains(&Fault::Clock) {
        true => Some(crate::cluster::find_libfaketime().ok_or_else(|| {
            RunError::Invalid("the clock nemesis needs libfaketime (Debian package libfaketime)".into())
        })?),
        false => None,
    };
    if !cfg.bin.exists() {
        return Err(RunError::NoBinary(cfg.bin.display().to_string()));
    }
    Ok(faketime)
}

/// Starts the nodes: in namespaces with partition support for a partition nemesis, in plain
/// namespaces (a host each) for `cron-embedded`, on loopback otherwise.
async fn start_cluster(cfg: &RunConfig, faketime: Option<PathBuf>) -> Result<Cluster, RunError> {
    let embedded = cfg.has("cron-embedded");
    let net = match (cfg.nemeses.iter().any(|f| f.is_partition()), embedded) {
        (true, _) => Some(Net::setup(cfg.nodes)?),
        (false, true) => Some(Net::hosts(cfg.nodes)?),
        (false, false) => None,
    };
    let cluster_secret = match cfg.auth {
        true => {
            let path = cfg.out.join("cluster.secret");
            let secret = format!("chaos-run-{}-{}-0123456789abcdef0123456789", cfg.seed, crate::history::wall_ms());
            std::fs::create_dir_all(&cfg.out)?;
            std::fs::write(&path, &secret)?;
            let credential = cronraft_raft::cluster_secret::ClusterSecret::from_bytes(secret.as_bytes(), "chaos")
                .map_err(|e| RunError::Invalid(e.to_string()))?;
            cronraft_api::client::set_process_token(Some(credential.credential().to_string()));
            Some(path)
        }
        false => None,
    };
    let tls_dir = match cfg.tls {
        true => Some(make_certs(cfg, net.as_ref())?),
        false => None,
    };
    let opts = NodeOptions {
        bin: cfg.bin.clone(),
        unsafe_mode: cfg.unsafe_mode.clone(),
        config: NODE_CONFIG.into(),
        faketime,
        agent: embedded,
        cluster_secret,
        tls_dir,
    };
    Ok(Cluster::start(&cfg.out.join("nodes"), cfg.nodes, opts, net).await?)
}

/// `--tls`: a CA and a certificate per node (`nodeN` and its address) in the run directory, made
/// by the binary under test (`cronraft certs init`); the harness's clients trust the CA.
fn make_certs(cfg: &RunConfig, net: Option<&Net>) -> Result<PathBuf, RunError> {
    let dir = cfg.out.join("certs");
    let ip = |id: u64| net.map(|n| n.ip(id).to_string()).unwrap_or_else(|| "127.0.0.1".into());
    let hosts: Vec<String> = (1..=cfg.nodes).map(|id| format!("node{id}+{}", ip(id))).collect();
    let out = std::process::Command::new(&cfg.bin)
        .args(["certs", "init", "--force", "--hosts", &hosts.join(","), "--out"])
        .arg(&dir)
        .output()?;
    if !out.status.success() {
        return Err(RunError::Invalid(format!("certs init: {}", String::from_utf8_lossy(&out.stderr))));
    }
    let ca = cronraft_raft::outbound::tls::read_ca_file(&dir.join("ca.pem"))
        .map_err(|e| RunError::Invalid(e.to_string()))?;
    cronraft_api::client::set_process_tls(Some(cronraft_raft::outbound::ClientTls::new(ca, None, true)));
    Ok(dir)
}

/// What the workloads set up before the main phase.
struct Setup {
    /// The register workload's keys (empty without it).
    keys: Vec<String>,
    /// The `cron` workload's recording executor.
    executor: Option<Arc<Executor>>,
    /// Who runs the cron tasks: the recording executor, or (cron-embedded) the nodes' agents.
    runner: Option<Runner>,
    /// `(group, primary instance id)` of the recording executor's registration.
    executor_ids: Option<(String, String)>,
}

/// Creates the register keys, starts the recording executor and creates the cron tasks.
async fn setup_workloads(cfg: &RunConfig, ctx: &Ctx, cluster: &Mutex<Cluster>) -> Result<Setup, RunError> {
    let keys =
        if cfg.has("register") { workload::register::setup(ctx, 5, Duration::from_secs(30)).await } else { vec![] };
    // The recording executor listens where every node can reach it: on the bridge when nodes
    // live in their own network namespaces, on loopback otherwise.
    let instance = format!("chaos-{}", cfg.seed);
    let executor = match cfg.has("cron") {
        true => {
            let host = if cluster.lock().await.net().is_some() { crate::net::BRIDGE_IP } else { "127.0.0.1" };
            Some(Arc::new(Executor::start(host, workload::cron::RUN, ctx.rec.clone()).await?))
        }
        false => None,
    };
    let runner = match (&executor, cfg.has("cron-embedded")) {
        (Some(ex), _) => Some(Runner::Recording(ex.registration(workload::cron::GROUP, &instance))),
        (None, true) => Some(Runner::Embedded),
        (None, false) => None,
    };
    if let Some(runner) = &runner {
        workload::cron::setup(ctx, runner.clone(), Duration::from_secs(30)).await;
    }
    let executor_ids = executor.as_ref().map(|_| (workload::cron::GROUP.to_string(), instance.clone()));
    Ok(Setup { keys, executor, runner, executor_ids })
}

/// The main phase: the nemesis runs `steps` while the workers run, until the time limit.
async fn main_phase(
    cfg: &RunConfig,
    ctx: &Arc<Ctx>,
    setup: &Setup,
    targets: &nemesis::Targets,
    steps: &[nemesis::Step],
) {
    let start = Instant::now();
    let deadline = start + cfg.time_limit;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(nemesis::run(targets.clone(), steps.to_vec(), ctx.rec.clone(), start));
    if cfg.has("register") {
        for w in 0..4 {
            let (ctx, keys) = (ctx.clone(), setup.keys.clone());
            tasks.spawn(async move { workload::register::worker(&ctx, w, &keys, deadline).await });
        }
    }
    if setup.runner.is_some() {
        let ctx = ctx.clone();
        tasks.spawn(async move { workload::cron::worker(&ctx, start, deadline).await });
    }
    if cfg.has("set") {
        for w in 0..2 {
            let ctx = ctx.clone();
            tasks.spawn(async move { workload::set::worker(&ctx, w, deadline).await });
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// The final phase: heal everything, wait for one leader, let the cron tasks run on the healed
/// cluster and pause them, wait for convergence, then read every node.
async fn final_phase(cfg: &RunConfig, ctx: &Ctx, setup: &Setup, targets: &nemesis::Targets) {
    let rec = &ctx.rec;
    nemesis::heal_all(targets, rec).await;
    let healthy = targets.cluster.lock().await.wait_healthy(Duration::from_secs(60)).await;
    match &healthy {
        Err(e) => {
            rec.record(Process::nemesis(), Kind::Info, "recovery", None, Value::Null, None, Some(e.to_string()));
        }
        Ok(_) => {
            rec.record(Process::nemesis(), Kind::End, "healthy", None, Value::Null, None, None);
        }
    }
    if let Some(runner) = &setup.runner {
        cron_after_heal(ctx, runner).await;
    }
    converge(ctx, Duration::from_secs(30)).await;
    if setup.runner.is_some() {
        workload::cron::final_reads(ctx, Duration::from_secs(30)).await;
    }
    if cfg.has("set") {
        workload::set::final_reads(ctx, Duration::from_secs(30)).await;
    }
}

/// Lets the cron tasks run on the healed cluster (liveness), then pauses them so it can converge.
/// A clock that ran ahead moved watermarks into the future: slots up to the latest time any
/// node's clock showed were fired early (or recorded missed), so the liveness window starts
/// there (`crate::skew`), and the quiet period lasts until it has its full length.
async fn cron_after_heal(ctx: &Ctx, runner: &Runner) {
    let skew = crate::skew::Skew::from_history(&ctx.rec.snapshot());
    let now = crate::history::wall_ms();
    let extra = skew.latest(now).saturating_sub(now).max(0) as u64;
    tokio::time::sleep(CRON_AFTER_HEAL + Duration::from_millis(extra)).await;
    workload::cron::wait_caught_up(ctx, CRON_CATCH_UP, runner).await;
    ctx.rec.record(Process::Named("harness".into()), Kind::Ok, "cron_quiesce", None, Value::Null, None, None);
    workload::cron::quiesce(ctx, Duration::from_secs(30)).await;
}

/// The content of `results.json` for a run of `cfg` that recorded `events`: every checker its
/// workloads call for, and the verdict over them. A pure function of the history (and the
/// elapsed time it is given).
pub fn results(cfg: &RunConfig, events: &[Event], steps: Vec<nemesis::Step>, elapsed_s: f64) -> Results {
    let mut checkers = Vec::new();
    if cfg.has("register") {
        checkers.push(checker::linearizable::check(events, 2_000_000));
    }
    if cfg.has("set") {
        checkers.push(checker::set_full::check(events));
    }
    if cfg.has("cron") || cfg.has("cron-embedded") {
        checkers.extend(checker::schedule::check(events));
    }
    checkers.push(checker::convergence::check(events));
    let verdict = if checkers.iter().all(|c| c.verdict == Verdict::Pass) {
        Verdict::Pass
    } else if checkers.iter().any(|c| c.verdict == Verdict::Fail) {
        Verdict::Fail
    } else {
        Verdict::Unknown
    };
    let count = |k: Kind| events.iter().filter(|e| e.kind == k && matches!(e.process, Process::Client(_))).count();
    Results {
        verdict,
        seed: cfg.seed,
        nemeses: cfg.nemeses.clone(),
        workloads: cfg.workloads.clone(),
        unsafe_mode: cfg.unsafe_mode.clone(),
        time_limit_s: cfg.time_limit.as_secs(),
        elapsed_s,
        ops: json!({"invoke": count(Kind::Invoke), "ok": count(Kind::Ok), "fail": count(Kind::Fail), "info": count(Kind::Info)}),
        nemesis_steps: steps,
        checkers,
    }
}

/// Records `digest` rounds (one op per node) until every node reports the same applied index and
/// digest, or `limit` passes; the convergence checker judges the last round.
async fn converge(ctx: &Ctx, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let mut seen = Vec::new();
        for (node, _) in ctx.nodes.clone() {
            let req = Request {
                f: "digest",
                key: "cluster",
                value: Value::Null,
                method: Method::GET,
                path: "/api/v1/cluster/digest".into(),
                body: None,
                idempotency_key: None,
                timeout: Duration::from_secs(3),
                read_only: true,
            };
            let out = ctx.op(ctx.new_pid(), node, req, |b| b.clone()).await;
            seen.push((out.kind == Kind::Ok).then(|| (out.body["applied_index"].clone(), out.body["digest"].clone())));
        }
        let equal = seen.iter().all(|s| s.is_some() && *s == seen[0]);
        if equal || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A short human summary.
pub fn summary(r: &Results, out: &std::path::Path) -> String {
    let mut s = format!(
        "cronraft-chaos: {:?} — seed {}, nemeses {:?}, workloads {:?}{}, {:.1} s, ops {}\n",
        r.verdict,
        r.seed,
        r.nemeses.iter().map(|f| f.name()).collect::<Vec<_>>(),
        r.workloads,
        r.unsafe_mode.as_ref().map(|m| format!(", UNSAFE {m}")).unwrap_or_default(),
        r.elapsed_s,
        r.ops,
    );
    s.push_str(&format!("  nemesis steps: {}\n", r.nemesis_steps.len()));
    for c in &r.checkers {
        s.push_str(&format!("  {:<13} {:?} {:?}\n", c.checker, c.verdict, c.counts));
        for v in c.violations.iter().take(5) {
            s.push_str(&format!("      - {v}\n"));
        }
    }
    s.push_str(&format!("  history, results and timeline.html in {}\n", out.display()));
    s
}
