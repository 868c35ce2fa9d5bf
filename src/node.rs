//! One cronraft node: storage, Raft, the Raft RPC listener and the REST listener, wired together.
//!
//! [`Node::start`] is the only wiring function; `cronraft serve` and the tests both use it. A
//! pristine node with no `--join` bootstraps a one-node cluster; a node with `--join` asks the
//! cluster to add it as a learner and promotes itself once caught up (see [`crate::join`]); a
//! node with existing data simply restarts as the member it was.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cronraft_api::metrics::TaskSeries;
use cronraft_api::ApiContext;
use cronraft_raft::cluster_secret::ClusterSecret;
use cronraft_raft::network::{self, HttpNetwork};
use cronraft_raft::store::{self, StateMachineStore};
use cronraft_raft::{NodeInfo, Raft};
use openraft::SnapshotPolicy;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::address_keeper::AddressKeeper;
use crate::agent::{Agent, AgentConfig};
use crate::backup_schedule::BackupSchedule;
use crate::cluster_naming::ClusterNaming;
use crate::config::{Config, ConfigError};
use crate::dispatcher::Dispatcher;
use crate::health::HealthChecker;
use crate::http_server::serve;
use crate::notifier::Notifier;
use crate::retention::RetentionService;
use crate::scheduler::{Scheduler, SchedulerMetrics};
use crate::storage_guard::StorageGuard;
use crate::tls::{Listener, Tls, TlsError};
use cronraft_raft::address::HostPort;
use cronraft_raft::outbound::ClientTls;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound (address in use, permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    /// The data directory could not be opened (locked by another process, corrupt, permissions).
    #[error("cannot open storage in {dir}: {source}")]
    Storage { dir: String, source: cronraft_raft::error::StoreError },
    /// openraft refused to start or to bootstrap.
    #[error("raft: {0}")]
    Raft(String),
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Client(#[from] cronraft_raft::outbound::BuildError),
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    /// The embedded agent could not start (its address is taken).
    #[error("embedded agent: {0}")]
    Agent(String),
    /// The cluster secret cannot be used.
    #[error(transparent)]
    Secret(#[from] cronraft_raft::cluster_secret::SecretError),
}

/// The executor group of the embedded agent, and the default group of new tasks.
pub const EMBEDDED_AGENT_GROUP: &str = "local";

/// A running node. Dropping it without [`Node::shutdown`] leaves its tasks running.
pub struct Node {
    pub node_id: u64,
    /// Where the REST API actually listens (the real port when configured with port 0).
    pub http_addr: SocketAddr,
    pub raft_addr: SocketAddr,
    pub raft: Raft,
    pub sm: StateMachineStore,
    /// `true` tells both HTTP servers and the join task to stop.
    shutdown: watch::Sender<bool>,
    /// The two servers, which finish once they have drained in-flight requests.
    servers: Vec<JoinHandle<()>>,
    /// Leader services (the scheduler), which stop on shutdown.
    services: Vec<JoinHandle<()>>,
    /// The join task, or the first admin token's, if any (stops on shutdown).
    join: Option<JoinHandle<()>>,
    /// The embedded agent (group `local`), unless turned off.
    pub agent: Option<Agent>,
    /// Makes node URLs: `https://` when the listeners serve TLS.
    client_tls: ClientTls,
}

impl Node {
    /// Starts a node from `config`.
    pub async fn start(config: Config) -> Result<Node, NodeError> {
        config.validate()?;
        let tls = Tls::load(&config.tls)?;
        let client_tls = tls.client();
        cronraft_raft::unsafe_modes::warn_if_set();
        let secret = config.auth.cluster_secret_file.as_deref().map(ClusterSecret::read_file).transpose()?;
        let http = bind(&config.http_addr).await?;
        let raft_listener = bind(&config.raft_addr).await?;
        let http_addr =
            http.local_addr().map_err(|source| NodeError::Bind { addr: config.http_addr.clone(), source })?;
        let raft_addr =
            raft_listener.local_addr().map_err(|source| NodeError::Bind { addr: config.raft_addr.clone(), source })?;
        let info = NodeInfo {
            http_addr: advertised(config.advertise_http_addr.as_deref(), &config.http_addr, http_addr),
            raft_addr: advertised(config.advertise_raft_addr.as_deref(), &config.raft_addr, raft_addr),
        };
        if secret.is_none() {
            warn_if_reachable(http_addr, raft_addr);
        }

        let dir = config.data_dir.display().to_string();
        match crate::fsperm::private_data_dir(&config.data_dir) {
            Ok(0) => {}
            Ok(n) => tracing::warn!(data_dir = %dir, entries = n, "made the data directory private (0700, files 0600)"),
            Err(source) => return Err(NodeError::Storage { dir, source: source.into() }),
        }
        // The unsafe test switch reaches apply as a store option, read once here.
        let apply = store::ApplyOptions { ignore_watermark: cronraft_raft::unsafe_modes::enabled("ignore-watermark") };
        let (log, sm) = store::open(&config.data_dir, config.cache_bytes, apply)
            .map_err(|source| NodeError::Storage { dir: dir.clone(), source })?;
        let commit_clock = log.commit_clock();
        let raft_config = raft_config(&config)?;
        let network = HttpNetwork::new(&client_tls, secret.as_ref(), sm.cluster_identity())?;
        let raft = Raft::new(config.node_id, raft_config, network, log, sm.clone())
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;

        let (shutdown, signal) = watch::channel(false);
        let scheduler_metrics = Arc::new(SchedulerMetrics::default());
        let mut ctx = ApiContext::new(
            config.node_id,
            raft.clone(),
            sm.clone(),
            scheduler_metrics.clone(),
            &client_tls,
            secret.clone(),
        )?;
        let m = &config.metrics;
        ctx.task_series = TaskSeries { names: m.task_series.clone(), top_failures: m.task_series_top_failures };
        ctx.records_max = config.retention.records_max;
        let ctx = Arc::new(ctx);
        let (raft_app, raft_tls, api_tls) = (
            network::router(raft.clone(), secret.clone(), sm.cluster_identity()),
            tls.acceptor(Listener::Raft)?,
            tls.acceptor(Listener::Api)?,
        );
        // The API and, on the same listener, the console (which calls the API router in-process).
        let api_app = cronraft_api::router(ctx.clone());
        let app = cronraft_ui::router(ctx, api_app.clone(), api_tls.is_some()).merge(api_app);
        let mut servers = vec![
            serve(raft_listener, raft_app, signal.clone(), "raft", config.listeners.raft(), raft_tls),
            serve(http, app, signal.clone(), "api", config.listeners.api(), api_tls),
        ];
        servers.extend(tls.spawn_reloader(signal.clone()));

        let scheduler = Scheduler {
            node_id: config.node_id,
            raft: raft.clone(),
            sm: sm.clone(),
            metrics: scheduler_metrics,
            commit_clock,
        };
        let (node_id, settings) = (config.node_id, config.executors.clone());
        let outbound = client_tls.clone();
        let dispatcher = Dispatcher {
            node_id,
            raft: raft.clone(),
            sm: sm.clone(),
            settings: settings.clone(),
            secret: secret.clone(),
            tls: outbound.clone(),
        };
        let notifier = Notifier {
            node_id,
            raft: raft.clone(),
            sm: sm.clone(),
            settings: config.notifications.clone(),
            executors: settings.clone(),
            tls: outbound.clone(),
            announced_term: Default::default(),
        };
        let health = HealthChecker { node_id, raft: raft.clone(), sm: sm.clone(), settings, tls: outbound };
        let retention =
            RetentionService { node_id, raft: raft.clone(), sm: sm.clone(), settings: config.retention.clone() };
        let services = vec![
            tokio::spawn(scheduler.run(signal.clone())),
            tokio::spawn(dispatcher.run(signal.clone())),
            tokio::spawn(health.run(signal.clone())),
            tokio::spawn(retention.run(signal.clone())),
            tokio::spawn(notifier.run(signal.clone())),
            tokio::spawn(AddressKeeper { node_id, raft: raft.clone(), info: info.clone() }.run(signal.clone())),
            tokio::spawn(ClusterNaming { node_id, raft: raft.clone(), sm: sm.clone() }.run(signal.clone())),
            tokio::spawn(
                StorageGuard {
                    node_id,
                    raft: raft.clone(),
                    space: sm.space(),
                    data_dir: config.data_dir.clone(),
                    settings: config.storage.clone(),
                }
                .run(signal.clone()),
            ),
        ];

        let mut services = services;
        if let Some(dir) = config.backup.dir.clone() {
            let schedule =
                BackupSchedule { node_id, raft: raft.clone(), sm: sm.clone(), dir, settings: config.backup.clone() };
            services.push(tokio::spawn(schedule.run(signal.clone())));
        }

        let initialized = raft.is_initialized().await.map_err(|e| NodeError::Raft(e.to_string()))?;
        let mut join = None;
        let credential = secret.as_ref().map(|s| s.credential().to_string());
        if !config.join.is_empty() {
            join = Some(tokio::spawn(crate::join::run(
                raft.clone(),
                config.node_id,
                info.clone(),
                config.join.clone(),
                credential.clone(),
                signal.clone(),
                client_tls.clone(),
            )));
        } else {
            if !initialized {
                let members = BTreeMap::from([(config.node_id, info.clone())]);
                raft.initialize(members).await.map_err(|e| NodeError::Raft(e.to_string()))?;
                tracing::info!(node_id = config.node_id, "bootstrapped a one-node cluster");
            }
            if secret.is_some() {
                let bootstrap = crate::admin_token::ensure(
                    raft.clone(),
                    sm.clone(),
                    config.data_dir.clone(),
                    config.auth.bootstrap_token_file.clone(),
                    signal,
                );
                join = Some(tokio::spawn(bootstrap));
            }
        }
        let agent = if config.agent.enabled {
            Some(start_agent(&config, &info, http_addr, &tls, credential).await?)
        } else {
            None
        };
        let tls_on = tls.serves_tls();
        tracing::info!(node_id = config.node_id, %http_addr, %raft_addr, data_dir = %dir, tls = tls_on, "node started");
        let node_id = config.node_id;
        Ok(Node { node_id, http_addr, raft_addr, raft, sm, shutdown, servers, services, join, agent, client_tls })
    }

    /// The REST base URL, e.g. `http://127.0.0.1:7340` (`https://` with TLS).
    pub fn url(&self) -> String {
        self.client_tls.node_url(&self.http_addr.to_string())
    }

    /// Stops accepting requests, drains in-flight ones, stops Raft and syncs storage.
    pub async fn shutdown(self) {
        if let Some(agent) = self.agent {
            agent.shutdown().await;
        }
        let _ = self.shutdown.send(true);
        if let Some(j) = self.join {
            let _ = j.await;
        }
        for s in self.services {
            let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
        }
        for s in self.servers {
            let _ = tokio::time::timeout(Duration::from_secs(10), s).await;
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        if let Err(e) = self.sm.sync() {
            tracing::warn!(error = %e, "final storage sync");
        }
        tracing::info!(node_id = self.node_id, "node stopped");
    }
}

/// The embedded agent: group `local`, registered through this node (which forwards to the
/// leader), with an instance id that survives restarts so the registry entry is reused.
///
/// It listens on `[agent] listen`, by default on the IP the API is bound to (port 0), and
/// registers `[agent] advertise_url`, by default the advertised API host with the agent's port:
/// where other hosts reach this node's API, they reach its agent (a loopback default would
/// make every agent but the leader's own unreachable).
///
/// It shares the node's TLS: its listener serves the node's certificate, and it reaches the
/// node at an `https://` URL with the node's trust. With auth on it authenticates with the
/// node's credential (the cluster secret's), as the node itself: it lives in the node's process.
async fn start_agent(
    config: &Config,
    info: &NodeInfo,
    http_bound: SocketAddr,
    tls: &Tls,
    credential: Option<String>,
) -> Result<Agent, NodeError> {
    let mut agent = AgentConfig::new(EMBEDDED_AGENT_GROUP, vec![tls.client().node_url(&info.http_addr)]);
    agent.tls = tls.clone();
    agent.token = credential;
    if let Some(allow) = &config.agent.env_allow {
        agent.env_allow = allow.clone();
    }
    agent.instance_id = format!("{EMBEDDED_AGENT_GROUP}-node{}", config.node_id);
    agent.listen = match &config.agent.listen {
        Some(text) => resolve(text).await?,
        None => SocketAddr::new(http_bound.ip(), 0),
    };
    agent.advertise_url = config.agent.advertise_url.clone();
    agent.advertise_host = Some(HostPort::parse(&info.http_addr).map(|hp| hp.host).map_err(invalid)?);
    agent.limits = config.listeners.agent();
    Agent::start(agent).await.map_err(|e| NodeError::Agent(e.to_string()))
}

/// The address given to others: the configured one, else the bound address; a host name the
/// operator wrote stays a name (with the bound port), resolved by each client at connect time.
fn advertised(configured: Option<&str>, written: &str, bound: SocketAddr) -> String {
    if let Some(a) = configured {
        return a.to_string();
    }
    match HostPort::parse(written) {
        Ok(hp) if hp.ip().is_none() => hp.with_port(bound.port()).to_string(),
        _ => HostPort::from(bound).to_string(),
    }
}

/// One warning when a listener is reachable from other hosts with auth off (`--insecure`).
fn warn_if_reachable(http: SocketAddr, raft: SocketAddr) {
    let exposed: Vec<String> = [("api", http), ("raft", raft)]
        .iter()
        .filter(|(_, a)| !a.ip().is_loopback())
        .map(|(n, a)| format!("{n}={a}"))
        .collect();
    if !exposed.is_empty() {
        tracing::warn!(
            listeners = %exposed.join(" "),
            "listening beyond loopback WITHOUT AUTHENTICATION (--insecure): anyone who can reach these ports can \
             create tasks (and so run shell commands on every node with an embedded agent) and change the \
             membership; turn auth on with --cluster-secret-file (docs/operating/security.md)"
        );
    }
}

/// The first address `text` resolves to (a host name is looked up once, at bind time).
async fn resolve(text: &str) -> Result<SocketAddr, NodeError> {
    let mut addrs =
        tokio::net::lookup_host(text).await.map_err(|source| NodeError::Bind { addr: text.into(), source })?;
    addrs.next().ok_or_else(|| NodeError::Bind { addr: text.into(), source: std::io::Error::other("no address") })
}

fn invalid(e: cronraft_raft::address::AddressError) -> NodeError {
    NodeError::Config(ConfigError::Invalid(e.to_string()))
}

async fn bind(addr: &str) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr).await.map_err(|source| NodeError::Bind { addr: addr.to_string(), source })
}

/// openraft's config from ours. Timeouts are sized for HTTP plus an fsync on each side.
fn raft_config(config: &Config) -> Result<Arc<openraft::Config>, NodeError> {
    let t = &config.raft;
    let c = openraft::Config {
        cluster_name: "cronraft".into(),
        heartbeat_interval: t.heartbeat_ms,
        election_timeout_min: t.election_timeout_min_ms,
        election_timeout_max: t.election_timeout_max_ms,
        install_snapshot_timeout: 10_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(t.snapshot_logs_since_last),
        max_in_snapshot_log_to_keep: t.logs_kept_after_snapshot,
        replication_lag_threshold: t.snapshot_logs_since_last.saturating_mul(2).max(1_000),
        snapshot_max_chunk_size: 4 * 1024 * 1024,
        max_payload_entries: 512,
        ..Default::default()
    };
    Ok(Arc::new(c.validate().map_err(|e| NodeError::Raft(e.to_string()))?))
}
