//! The one place where every outbound HTTP client of a node or an agent is built.
//!
//! Each purpose has its own builder, so the settings that make a call safe are decided here and
//! nowhere else, TLS included: every builder takes the process's [`ClientTls`] (what it trusts,
//! what certificate it presents, the scheme of node URLs; see [`tls`]):
//!
//! - [`peers`]: node to node (write forwarding, read index, `/cluster` views; the Raft network
//!   has its own pool, [`raft_peers`]). No proxy, no redirects, a short connect timeout; trusts
//!   the cluster CA and presents the node's certificate (mTLS).
//! - [`executors`]: the leader's calls to executor URLs (`/execute`, `/stop`, health checks).
//!   Those URLs come from registrations, so they are untrusted: no proxy, **no redirects** (a
//!   redirect could point the leader anywhere), and an [`AddressPolicy`] checked on the address
//!   actually connected to — host names through a filtering DNS resolver at connect time (a
//!   changed record cannot slip past a check made earlier), IP literals by
//!   [`ExecutorClient::target`] before sending, since reqwest connects to those without
//!   resolving.
//! - [`agent_cluster`]: an agent's calls to the node APIs (registration, reports).
//! - [`agent_jobs`]: an agent's `http` jobs, which call whatever the task says, as configured by
//!   the task's author (redirects followed, system proxy honoured); system roots plus the CA
//!   file, and never the agent's own certificate.
//! - [`cli`]: the typed API client of the CLI and the tests (`cronraft_api::client`).
//!
//! Bodies read from executors and peers go through [`read_body_capped`], so an answer cannot make
//! the reader buffer more than it chose to.

pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;

pub use self::tls::{ClientTls, Trust};

/// Idle pooled connections are dropped after this: below the servers' default header-read
/// timeout (10 s, which hyper also applies to a kept-alive connection waiting for its next
/// request), so a client rarely sends on a connection the server is closing.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connect timeout between nodes: peers are on the same network, a slow connect is a dead peer.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest connect to an executor (less when the whole call is allowed less).
pub const EXECUTOR_CONNECT_TIMEOUT_MAX: Duration = Duration::from_secs(2);
/// Largest answer body read from an executor (`/execute`, `/stop`, health): their answers are
/// acknowledgements, a few hundred bytes.
pub const EXECUTOR_BODY_BYTES_MAX: usize = 64 * 1024;

/// A client could not be built: reqwest's builder fails only on system resources, the TLS
/// configuration only on an impossible protocol setting.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot build the {purpose} HTTP client: {source}")]
    Http {
        purpose: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot set up TLS for the {purpose} HTTP client: {source}")]
    Tls {
        purpose: &'static str,
        #[source]
        source: rustls::Error,
    },
}

/// Builds `builder` with the TLS configuration `tls` makes for `trust`.
fn build(
    purpose: &'static str,
    builder: reqwest::ClientBuilder,
    tls: &ClientTls,
    trust: Trust,
    present_identity: bool,
) -> Result<reqwest::Client, BuildError> {
    let config = tls.client_config(trust, present_identity).map_err(|source| BuildError::Tls { purpose, source })?;
    builder.tls_backend_preconfigured(config).build().map_err(|source| BuildError::Http { purpose, source })
}

/// Node to node: write forwarding, internal reads, cluster views. Its own pool, separate from
/// the Raft RPC client (openraft#1716).
pub fn peers(tls: &ClientTls) -> Result<reqwest::Client, BuildError> {
    node_to_node("peers", tls)
}

/// Raft RPC to the other nodes (`raft/src/network.rs`): the same settings as [`peers`], in a pool
/// of its own so heartbeats never queue behind forwarded client requests (openraft#1716).
pub fn raft_peers(tls: &ClientTls) -> Result<reqwest::Client, BuildError> {
    node_to_node("raft peers", tls)
}

/// The settings every node-to-node client shares: no proxy, no redirects, a short connect, pooled
/// connections dropped before the peer's listener would close them; the cluster CA, and the
/// node's own certificate for the peer's client-certificate check. Each call is a new pool.
fn node_to_node(purpose: &'static str, tls: &ClientTls) -> Result<reqwest::Client, BuildError> {
    let b = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .redirect(Policy::none())
        .connect_timeout(PEER_CONNECT_TIMEOUT)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT);
    build(purpose, b, tls, Trust::Cluster, true)
}

/// An agent's client for the node APIs (registration, reports); presents the agent's certificate
/// when it has one. With auth on, every request carries `authorization` (`Bearer` and the agent's
/// token, marked sensitive so it is never printed): this client only ever calls the agent's own
/// cluster URLs (reports go there too, never to an address a request named).
pub fn agent_cluster(
    tls: &ClientTls,
    authorization: Option<reqwest::header::HeaderValue>,
) -> Result<reqwest::Client, BuildError> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(mut value) = authorization {
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let b = reqwest::Client::builder()
        .default_headers(headers)
        .no_proxy()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .pool_idle_timeout(POOL_IDLE_TIMEOUT);
    build("agent cluster", b, tls, Trust::SystemAndCa, true)
}

/// An agent's client for `http` jobs: the task's author chose the URL, so reqwest's defaults
/// (redirects, system proxy) apply; the job's own timeout bounds each call. It never presents the
/// agent's certificate to those servers.
pub fn agent_jobs(tls: &ClientTls) -> Result<reqwest::Client, BuildError> {
    let b = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
    build("agent jobs", b, tls, Trust::SystemAndCa, false)
}

/// The typed API client (`cronraft_api::client`: the CLI, `--join`, the tests): no proxy, each
/// call within `timeout`.
pub fn cli(timeout: Duration, tls: &ClientTls) -> Result<reqwest::Client, BuildError> {
    let b = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(2));
    build("api", b, tls, Trust::SystemAndCa, true)
}

/// Which addresses the leader may call executors at: `[executors] allow_cidrs` / `deny_cidrs`.
/// An empty allow list allows every address; a deny entry wins over an allow entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

/// An executor address the policy forbids; the message names the setting to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressRefused {
    #[error("address {ip} is refused by [executors] deny_cidrs ({net})")]
    Denied { ip: IpAddr, net: IpNet },
    #[error("address {ip} is not in [executors] allow_cidrs")]
    NotAllowed { ip: IpAddr },
}

impl AddressPolicy {
    /// Whether every address is allowed (no resolver filtering is needed).
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Checks one address. An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is checked as the
    /// IPv4 address it reaches, so it cannot slip past a deny of `127.0.0.0/8`.
    pub fn check(&self, ip: IpAddr) -> Result<(), AddressRefused> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if let Some(net) = self.deny.iter().find(|n| n.contains(&ip)) {
            return Err(AddressRefused::Denied { ip, net: *net });
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(&ip)) {
            return Err(AddressRefused::NotAllowed { ip });
        }
        Ok(())
    }
}

/// Resolves host names like the system resolver, then drops the addresses the policy forbids;
/// fails, naming the setting, when none is left.
struct PolicyResolver {
    policy: Arc<AddressPolicy>,
}

/// Every address a host name resolved to is forbidden.
#[derive(Debug, thiserror::Error)]
#[error("{host}: {reason}")]
struct HostRefused {
    host: String,
    reason: AddressRefused,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused.get_or_insert(e);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(reason)) => Err(Box::new(HostRefused { host, reason }) as _),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// Why an executor URL is not called.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{url:?} is not a valid URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("{0}")]
    Refused(#[from] AddressRefused),
}

/// The leader's client for executor URLs, with the address policy it enforces.
#[derive(Clone)]
pub struct ExecutorClient {
    pub client: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

/// Builds the client for executor calls that take at most `timeout` each, keeping up to
/// `idle_per_host` idle connections per executor. Executors may hold certificates from any CA:
/// system roots plus the CA file; the node presents its certificate when asked.
pub fn executors(
    policy: AddressPolicy,
    timeout: Duration,
    idle_per_host: usize,
    tls: &ClientTls,
) -> Result<ExecutorClient, BuildError> {
    let policy = Arc::new(policy);
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .redirect(Policy::none())
        .connect_timeout(timeout.min(EXECUTOR_CONNECT_TIMEOUT_MAX))
        .timeout(timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(idle_per_host);
    if !policy.is_open() {
        b = b.dns_resolver(Arc::new(PolicyResolver { policy: policy.clone() }));
    }
    Ok(ExecutorClient { client: build("executors", b, tls, Trust::SystemAndCa, true)?, policy })
}

impl ExecutorClient {
    /// Parses `url` and checks its host when it is an IP literal (host names are checked by the
    /// resolver when a connection is made).
    pub fn target(&self, url: &str) -> Result<reqwest::Url, TargetError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| TargetError::InvalidUrl { url: url.to_string(), reason: e.to_string() })?;
        if !self.policy.is_open() {
            let host = parsed.host_str().unwrap_or("");
            if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
                self.policy.check(ip)?;
            }
        }
        Ok(parsed)
    }
}

/// A response body could not be read within its cap.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer's body is larger than {bytes_max} bytes")]
    TooLarge { bytes_max: usize },
    #[error("reading the answer's body failed: {0}")]
    Read(#[from] reqwest::Error),
}

/// Reads `resp`'s body, chunk by chunk, and stops with [`BodyError::TooLarge`] as soon as it
/// would pass `bytes_max` (a declared `Content-Length` above it fails before anything is read).
/// A body that arrives in one chunk is returned without a copy.
pub async fn read_body_capped(mut resp: reqwest::Response, bytes_max: usize) -> Result<Bytes, BodyError> {
    if resp.content_length().is_some_and(|n| n > bytes_max as u64) {
        return Err(BodyError::TooLarge { bytes_max });
    }
    let Some(first) = resp.chunk().await? else { return Ok(Bytes::new()) };
    if first.len() > bytes_max {
        return Err(BodyError::TooLarge { bytes_max });
    }
    let Some(second) = resp.chunk().await? else { return Ok(first) };
    let mut buf = BytesMut::with_capacity((first.len() + second.len()).min(bytes_max));
    let mut next = Some(second);
    buf.extend_from_slice(&first);
    while let Some(chunk) = next {
        if buf.len() + chunk.len() > bytes_max {
            return Err(BodyError::TooLarge { bytes_max });
        }
        buf.extend_from_slice(&chunk);
        next = resp.chunk().await?;
    }
    Ok(buf.freeze())
}

/// Largest error answer read as text from a peer (an agent's view of a node's error answer).
pub const ERROR_TEXT_BYTES_MAX: usize = 16 * 1024;

/// The body of an error answer as text, for a log line or a message, at most `bytes_max` bytes
/// read; a body over the cap or unreadable gives a note saying so instead.
pub async fn read_text_capped(resp: reqwest::Response, bytes_max: usize) -> String {
    match read_body_capped(resp, bytes_max).await {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(e) => format!("({e})"),
    }
}

/// An error with its causes: reqwest's own message rarely says what went wrong (a refused
/// address, for one, is only in the chain).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn deny_wins_and_empty_allow_allows_all() {
        let open = AddressPolicy::default();
        assert!(open.is_open());
        assert_eq!(open.check("169.254.169.254".parse().unwrap()), Ok(()));
        let p = AddressPolicy { allow: nets(&["10.0.0.0/8"]), deny: nets(&["10.9.0.0/16", "169.254.0.0/16"]) };
        assert_eq!(p.check("10.1.2.3".parse().unwrap()), Ok(()));
        let denied = p.check("10.9.0.1".parse().unwrap()).unwrap_err();
        assert!(denied.to_string().contains("deny_cidrs (10.9.0.0/16)"), "{denied}");
        let outside = p.check("192.168.1.1".parse().unwrap()).unwrap_err();
        assert!(outside.to_string().contains("allow_cidrs"), "{outside}");
        let deny_only = AddressPolicy { allow: vec![], deny: nets(&["169.254.0.0/16"]) };
        assert_eq!(deny_only.check("8.8.8.8".parse().unwrap()), Ok(()));
    }

    #[test]
    fn ipv4_mapped_ipv6_is_checked_as_ipv4() {
        let p = AddressPolicy { allow: vec![], deny: nets(&["127.0.0.0/8"]) };
        assert!(p.check("::ffff:127.0.0.1".parse().unwrap()).is_err());
        assert!(p.check("::1".parse().unwrap()).is_ok(), "IPv6 loopback is another net");
    }

    #[tokio::test]
    async fn ip_literal_hosts_are_checked_before_sending() {
        let deny = AddressPolicy { allow: vec![], deny: nets(&["127.0.0.0/8", "::1/128"]) };
        let c = executors(deny, Duration::from_secs(1), 1, &ClientTls::default()).unwrap();
        assert!(matches!(c.target("http://127.0.0.1:9/execute"), Err(TargetError::Refused(_))));
        assert!(matches!(c.target("http://[::1]:9/x"), Err(TargetError::Refused(_))));
        // The URL parser normalizes other spellings of an IPv4 address before the check.
        assert!(matches!(c.target("http://2130706433:9/x"), Err(TargetError::Refused(_))));
        assert!(c.target("http://10.0.0.1:9/x").is_ok());
        assert!(matches!(c.target("not a url"), Err(TargetError::InvalidUrl { .. })));
    }

    #[tokio::test]
    async fn host_names_resolving_only_to_denied_addresses_fail_at_connect() {
        let deny = AddressPolicy { allow: vec![], deny: nets(&["127.0.0.0/8", "::1/128"]) };
        let c = executors(deny, Duration::from_secs(2), 1, &ClientTls::default()).unwrap();
        let url = c.target("http://localhost:9/health").unwrap();
        let err = c.client.get(url).send().await.unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        let text = error_chain(&err);
        assert!(text.contains("deny_cidrs"), "{text}");
    }
}
