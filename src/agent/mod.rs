//! The bundled executor agent (`cronraft agent`): runs `command` and `http` jobs for a cluster.
//!
//! An agent is an HTTP server speaking the executor protocol of
//! [`cronraft_api::protocol`]. [`Agent::start`] binds it, registers it with the cluster (in the
//! background if no node answers at once), and returns; [`Agent::shutdown`] stops it.
//!
//! # Layout
//!
//! - `server`: `POST /execute`, `POST /stop`, `GET /health`.
//! - `runs`: the run table — deduplication by `(execution_id, attempt)`, capacity, stop signals.
//! - `run`: one run from request to report; `job` reads what the parameters ask for.
//! - `command`: `sh -c` in its own process group, killed as a group; `http`: one request.
//! - `tail`: output kept as its last 64 KiB.
//! - `report`: the bounded queue of callbacks and their delivery with retries.
//! - `register`: registration, retried until it succeeds and repeated every 30 s.
//!
//! See `docs/internals/agent.md` for why it runs, kills and reports the way it does.

mod command;
pub mod environment;
mod http;
mod job;
mod register;
mod report;
mod run;
mod runs;
mod server;
mod signing;
mod tail;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cronraft_api::protocol::RegisterRequest;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use cronraft_raft::outbound;

use crate::http_server::{serve, ListenerLimits};
use crate::tls::{Listener, Tls, TlsError};
use register::Registration;
use report::Reporter;
use runs::Runs;
use server::Shared;
use signing::Signing;

/// Where `cronraft agent` listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7390";
/// Most concurrent runs by default.
pub const DEFAULT_CAPACITY: u32 = 64;
/// At shutdown, how long killed runs may take to finish (kill, reap, drain their pipes).
const RUNS_GRACE: Duration = Duration::from_secs(5);
/// At shutdown, how long in-flight requests may take before the server is dropped.
const SERVER_GRACE: Duration = Duration::from_secs(5);

/// How to run an agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The executor group; tasks name it in `executor`.
    pub name: String,
    /// Unique in the cluster; empty = `{name}-{hostname}-{port}` (the bound port).
    pub instance_id: String,
    /// Node API base URLs (`http://127.0.0.1:7340`); the scheme is added when missing
    /// (`https://` when the agent serves TLS, `http://` otherwise).
    pub cluster: Vec<String>,
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The base URL to register. Default: `http(s)://{advertise_host}:{bound port}`, or
    /// `http(s)://{bound address}` without an `advertise_host` (`https` when it serves TLS).
    pub advertise_url: Option<String>,
    /// The host other machines reach this agent at, when `advertise_url` is unset (the embedded
    /// agent passes its node's advertised API host). A wildcard `listen` needs one of the two.
    pub advertise_host: Option<String>,
    /// Most concurrent runs; 0 = unlimited.
    pub capacity: u32,
    /// Sent with the registration; `capacity` is set from the field above.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The listener's limits (default [`ListenerLimits::AGENT`]).
    pub limits: ListenerLimits,
    /// The token sent with registrations and reports when the cluster has auth on (an
    /// `executor` token; the embedded agent uses its node's credential). With a token, reports go
    /// only to `cluster`, never to the `callback_urls` an execute request names, so the token
    /// cannot be sent anywhere else.
    pub token: Option<String>,
    /// The agent's environment variables `command` jobs get (`*` at the end: a prefix); default
    /// [`environment::DEFAULT_ALLOW`].
    pub env_allow: Vec<String>,
    /// Its certificate (the listener serves TLS when there is one) and the CA its clients
    /// trust; the embedded agent gets its node's. Default: plain HTTP, system roots.
    pub tls: Tls,
}

impl AgentConfig {
    /// A configuration with the defaults: listen on [`DEFAULT_LISTEN`], [`DEFAULT_CAPACITY`] runs.
    pub fn new(name: impl Into<String>, cluster: Vec<String>) -> Self {
        AgentConfig {
            name: name.into(),
            instance_id: String::new(),
            cluster,
            listen: DEFAULT_LISTEN.parse().expect("a valid default address"),
            advertise_url: None,
            advertise_host: None,
            capacity: DEFAULT_CAPACITY,
            metadata: serde_json::Map::new(),
            limits: ListenerLimits::AGENT,
            token: None,
            env_allow: environment::default_allow(),
            tls: Tls::default(),
        }
    }
}

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A value that cannot work, with what to fix.
    #[error("invalid agent configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Http(#[from] outbound::BuildError),
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
}

/// A running agent. Dropping it without [`Agent::shutdown`] stops its server and background
/// tasks but leaves running jobs alone.
pub struct Agent {
    addr: SocketAddr,
    base_url: String,
    instance_id: String,
    shared: Arc<Shared>,
    /// `true` stops the server and the registration task.
    stop: watch::Sender<bool>,
    /// `true` tells the reporter to flush and stop; sent last, after the runs have reported.
    stop_reports: watch::Sender<bool>,
    server: JoinHandle<()>,
    registrar: JoinHandle<()>,
    reporter: JoinHandle<()>,
}

impl Agent {
    /// Binds the server, makes one quick registration round, and returns; registration goes on
    /// in the background until it succeeds.
    pub async fn start(config: AgentConfig) -> Result<Agent, AgentError> {
        let client_tls = config.tls.client();
        let cluster = check(&config, &client_tls)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| AgentError::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| AgentError::Bind { addr: config.listen, source })?;
        let scheme = client_tls.node_scheme();
        let base_url = match (&config.advertise_url, &config.advertise_host) {
            (Some(url), _) => normalize_url(url, scheme)?,
            (None, Some(host)) => format!("{scheme}://{host}:{}", addr.port()),
            (None, None) => format!("{scheme}://{addr}"),
        };
        let instance_id = match config.instance_id.trim() {
            "" => format!("{}-{}-{}", config.name, hostname().unwrap_or_else(|| addr.ip().to_string()), addr.port()),
            id => id.to_string(),
        };

        let authorization = match &config.token {
            Some(t) => Some(
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", t.trim()))
                    .map_err(|_| AgentError::Config("the token has characters a header cannot carry".into()))?,
            ),
            None => None,
        };
        let report_to = config.token.is_some().then(|| cluster.clone());
        let cluster_client = outbound::agent_cluster(&client_tls, authorization)?;
        let jobs_client = outbound::agent_jobs(&client_tls)?;
        let reporter = Arc::new(Reporter::new(cluster_client.clone(), report_to));
        let signing = Arc::new(Signing::new(config.token.is_some()));
        let shared = Arc::new(Shared {
            runs: Runs::new(config.capacity),
            reporter: reporter.clone(),
            jobs_client,
            signing: signing.clone(),
            base_env: environment::base(std::env::vars(), &config.env_allow).into(),
        });

        let (stop, signal) = watch::channel(false);
        let (stop_reports, reports_signal) = watch::channel(false);
        let acceptor = config.tls.acceptor(Listener::Agent)?;
        let server = serve(listener, server::router(shared.clone()), signal.clone(), "agent", config.limits, acceptor);
        let reporter = tokio::spawn(reporter.run(reports_signal));

        let body = register_request(&config, &instance_id, &base_url);
        let registration = Registration { cluster, body, client: cluster_client, signing };
        let registered = match tokio::time::timeout(register::FIRST_TRY_MAX, registration.try_once()).await {
            Ok(Ok(node)) => {
                tracing::info!(%node, %instance_id, "registered with the cluster");
                true
            }
            Ok(Err(last)) => {
                tracing::warn!(last, "cannot register yet; retrying in the background");
                false
            }
            Err(_) => {
                tracing::warn!("no node answered the registration quickly; retrying in the background");
                false
            }
        };
        let registrar = tokio::spawn(registration.run(registered, signal));
        tracing::info!(name = %config.name, %instance_id, %addr, %base_url, "agent started");
        Ok(Agent { addr, base_url, instance_id, shared, stop, stop_reports, server, registrar, reporter })
    }

    /// The address the server is bound to (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL registered with the cluster.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Runs in progress.
    pub fn running(&self) -> usize {
        self.shared.runs.running()
    }

    /// Stops accepting requests, kills running jobs (their whole process groups; they report
    /// `failed`), stops registering, and gives pending reports a few seconds to reach the cluster.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.shared.runs.stop_all();
        if !self.shared.runs.wait_idle(RUNS_GRACE).await {
            tracing::warn!(running = self.shared.runs.running(), "runs still finishing at shutdown");
        }
        let server = self.server;
        let abort = server.abort_handle();
        if tokio::time::timeout(SERVER_GRACE, server).await.is_err() {
            abort.abort();
        }
        let _ = self.registrar.await;
        let _ = self.stop_reports.send(true);
        let _ = self.reporter.await;
        tracing::info!(instance_id = %self.instance_id, "agent stopped");
    }
}

/// Checks the configuration; the cluster URLs, normalized (`tls` gives the default scheme).
fn check(config: &AgentConfig, tls: &outbound::ClientTls) -> Result<Vec<String>, AgentError> {
    if config.name.trim().is_empty() {
        return Err(AgentError::Config("name (the executor group) must not be empty".into()));
    }
    if config.cluster.is_empty() {
        return Err(AgentError::Config("cluster must list at least one node API URL".into()));
    }
    if config.listen.ip().is_unspecified() && config.advertise_url.is_none() && config.advertise_host.is_none() {
        return Err(AgentError::Config(format!(
            "listen {} is a wildcard address that the cluster cannot connect to: set --advertise-url to the \
             URL the cluster reaches this agent at, e.g. http://10.0.0.5:{}",
            config.listen,
            config.listen.port()
        )));
    }
    config.cluster.iter().map(|u| normalize_url(u, tls.node_scheme())).collect()
}

/// `host:port` → `{default_scheme}://host:port`, without a trailing `/`; `http://` and
/// `https://` are kept as given.
fn normalize_url(url: &str, default_scheme: &str) -> Result<String, AgentError> {
    let url = url.trim().trim_end_matches('/');
    if url.is_empty() {
        return Err(AgentError::Config("empty URL".into()));
    }
    match url.split_once("://") {
        Some(("http" | "https", _)) => Ok(url.to_string()),
        Some((scheme, _)) => {
            Err(AgentError::Config(format!("{url}: unsupported scheme {scheme:?}; use http:// or https://")))
        }
        None => Ok(format!("{default_scheme}://{url}")),
    }
}

fn register_request(config: &AgentConfig, instance_id: &str, base_url: &str) -> RegisterRequest {
    let mut metadata = config.metadata.clone();
    metadata.insert("capacity".into(), json!(config.capacity));
    RegisterRequest {
        name: config.name.clone(),
        instance_id: instance_id.to_string(),
        base_url: base_url.to_string(),
        health_check_url: Some(format!("{base_url}/health")),
        metadata: Some(serde_json::Value::Object(metadata)),
        tasks: Vec::new(),
    }
}

/// This machine's host name, if it has a usable one.
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

pub(crate) use outbound::error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized_with_the_default_scheme() {
        assert_eq!(normalize_url("127.0.0.1:7340/", "http").unwrap(), "http://127.0.0.1:7340");
        assert_eq!(normalize_url("127.0.0.1:7340", "https").unwrap(), "https://127.0.0.1:7340");
        assert_eq!(normalize_url(" http://a:1 ", "https").unwrap(), "http://a:1");
        assert_eq!(normalize_url("https://a:1/", "http").unwrap(), "https://a:1");
        assert!(normalize_url("ftp://a", "http").is_err());
        assert!(normalize_url("", "http").is_err());
    }

    #[test]
    fn registration_carries_capacity_and_the_health_url() {
        let mut c = AgentConfig::new("g", vec!["http://n:1".into()]);
        c.metadata.insert("region".into(), json!("eu"));
        c.capacity = 3;
        let r = register_request(&c, "g-h-1", "http://a:2");
        assert_eq!(r.health_check_url.as_deref(), Some("http://a:2/health"));
        assert_eq!(r.metadata.unwrap(), json!({"region": "eu", "capacity": 3}));
        let tls = outbound::ClientTls::default();
        assert!(check(&AgentConfig::new("", vec!["x".into()]), &tls).is_err());
        assert!(check(&AgentConfig::new("g", vec![]), &tls).is_err());
    }
}
