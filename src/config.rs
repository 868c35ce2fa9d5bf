//! Node configuration: defaults, then a TOML file, then `CRONRAFT_*` environment variables, then
//! flags (each overriding the previous), and `validate()` explaining bad values.

use std::path::PathBuf;

use cronraft_api::metrics::state::TASK_SERIES_MAX;
use cronraft_raft::outbound::AddressPolicy;
use ipnet::IpNet;
use serde::Deserialize;

pub mod check;
pub mod disk;
pub mod flags;
pub mod keys;
pub mod value;

use crate::http_server::ListenerLimits;
use crate::tls::TlsSettings;
use cronraft_raft::address::HostPort;

/// Everything a node needs to start.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's Raft id; unique in the cluster, never reused for another machine.
    pub node_id: u64,
    /// REST API / UI listener (`host:port`, the host an IP or a name; port 0 picks a free port).
    pub http_addr: String,
    /// Raft RPC listener.
    pub raft_addr: String,
    /// The API address other nodes, agents and clients use, when it differs from the bound one.
    /// Required when `http_addr` is a wildcard (`0.0.0.0`, `[::]`), which nobody can connect
    /// to. Default: `http_addr` as written (a host name stays a name, resolved by each client at
    /// connect time), with the bound port. The embedded agent's address takes its host.
    pub advertise_http_addr: Option<String>,
    /// Likewise for Raft RPC; required when `raft_addr` is a wildcard.
    pub advertise_raft_addr: Option<String>,
    /// Where sled and snapshots live.
    pub data_dir: PathBuf,
    /// API URLs of existing members to join through; empty = bootstrap a one-node cluster.
    pub join: Vec<String>,
    pub raft: RaftTiming,
    /// sled page cache, counted as sled counts it: bytes of pages *as stored*. Their decoded
    /// form in memory is about 3.6 times that, so this is what sets a node's RSS beyond a few
    /// hundred bytes per task (measured in `docs/performance.md`, "Memory").
    pub cache_bytes: u64,
    /// The embedded agent (`[agent]`).
    pub agent: AgentSettings,
    pub executors: ExecutorSettings,
    pub retention: Retention,
    /// `/metrics` series of chosen tasks.
    pub metrics: MetricsSettings,
    /// The leader's delivery of notifications (`[notifications]`).
    pub notifications: NotificationSettings,
    /// Limits of the API, Raft and agent listeners (`[listeners.api]`, ...).
    pub listeners: Listeners,
    /// Who may talk to the node (`[auth]`).
    pub auth: AuthSettings,
    /// TLS on every listener and the trust of every client (`[tls]`, `src/tls/`).
    pub tls: TlsSettings,
    /// How log lines look on stderr (`text` or `json`).
    pub log_format: crate::logging::LogFormat,
    /// When the node stops taking writes for want of disk (`[storage]`).
    pub storage: disk::StorageSettings,
    /// Backups the leader writes by itself (`[backup]`).
    pub backup: disk::BackupSettings,
}

/// Authentication (`[auth]`, issue 17). Auth is on exactly when `cluster_secret_file` is set.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// The cluster secret, the same file on every node (32 bytes or more). Turns auth on: API
    /// requests need a token, Raft RPC and the nodes' own calls need the secret.
    pub cluster_secret_file: Option<PathBuf>,
    /// The first admin token, read from this file instead of being made up and written to
    /// `<data_dir>/admin.token` (for automated set-ups). Only with a cluster secret.
    pub bootstrap_token_file: Option<PathBuf>,
    /// Listen beyond loopback with auth off, knowingly (`--insecure`). Without it, a node refuses.
    pub insecure: bool,
}

impl AuthSettings {
    /// Whether requests are authenticated.
    pub fn enabled(&self) -> bool {
        self.cluster_secret_file.is_some()
    }
}

/// The bundled agent that runs inside the node (`[agent]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// Run it, registered in group `local` (`--no-agent` turns it off). On by default so that
    /// `cronraft serve` alone can run `echo hello`.
    pub enabled: bool,
    /// Where it listens (`host:port`). Default: the IP the API is bound to, port 0 (a free
    /// port); pin the port here when a firewall must know it.
    pub listen: Option<String>,
    /// The base URL registered for it. Default: `http://` + the host of the advertised API
    /// address + `:` + the agent's bound port, so every host reaches it where it reaches the API.
    pub advertise_url: Option<String>,
    /// The node's environment variables its `command` jobs get (a trailing `*`: a prefix).
    /// Default: `PATH`, `HOME`, `USER`, `LOGNAME`, `SHELL`, `LANG`, `LANGUAGE`, `LC_*`, `TZ`,
    /// `TMPDIR`, `TERM`. `CRONRAFT_*` never.
    pub env_allow: Option<Vec<String>>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings { enabled: true, listen: None, advertise_url: None, env_allow: None }
    }
}

/// The leader's dispatcher and health checker.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorSettings {
    /// How often each executor's `health_check_url` is asked.
    pub health_check_interval_ms: u64,
    /// How long a health check may take.
    pub health_check_timeout_ms: u64,
    /// Consecutive failed checks that make a healthy executor unhealthy.
    pub failure_threshold: u32,
    /// Consecutive successful checks that make an unhealthy executor healthy again.
    pub recovery_threshold: u32,
    /// How long `POST /execute` may take before the attempt counts as refused.
    pub dispatch_timeout_ms: u64,
    /// If not empty, the leader calls executors (dispatch, stop, health) only at addresses in
    /// these nets (`["10.0.0.0/8"]`). Checked on the address actually connected to, after DNS.
    pub allow_cidrs: Vec<IpNet>,
    /// The leader never calls executors at addresses in these nets, even allowed ones: e.g.
    /// `["169.254.0.0/16"]` keeps registrations away from cloud metadata endpoints.
    pub deny_cidrs: Vec<IpNet>,
}

impl ExecutorSettings {
    /// The address policy the executor client enforces.
    pub fn address_policy(&self) -> AddressPolicy {
        AddressPolicy { allow: self.allow_cidrs.clone(), deny: self.deny_cidrs.clone() }
    }
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        ExecutorSettings {
            health_check_interval_ms: 30_000,
            health_check_timeout_ms: 5_000,
            failure_threshold: 3,
            recovery_threshold: 2,
            dispatch_timeout_ms: 5_000,
            allow_cidrs: Vec::new(),
            deny_cidrs: Vec::new(),
        }
    }
}

/// `[listeners]`: per listener kind, the values that override its [`ListenerLimits`] defaults.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Listeners {
    pub api: ListenerOverrides,
    pub raft: ListenerOverrides,
    pub agent: ListenerOverrides,
}

/// Some of a listener's limits; a field left out keeps that listener kind's default.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerOverrides {
    pub header_read_timeout_ms: Option<u64>,
    pub keepalive_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub connections_max: Option<u32>,
    pub requests_inflight_max: Option<u32>,
    pub request_timeout_ms: Option<u64>,
}

impl ListenerOverrides {
    /// `defaults` with these overrides applied.
    pub fn over(&self, defaults: ListenerLimits) -> ListenerLimits {
        ListenerLimits {
            header_read_timeout_ms: self.header_read_timeout_ms.unwrap_or(defaults.header_read_timeout_ms),
            keepalive_timeout_ms: self.keepalive_timeout_ms.unwrap_or(defaults.keepalive_timeout_ms),
            idle_timeout_ms: self.idle_timeout_ms.unwrap_or(defaults.idle_timeout_ms),
            connections_max: self.connections_max.unwrap_or(defaults.connections_max),
            requests_inflight_max: self.requests_inflight_max.unwrap_or(defaults.requests_inflight_max),
            request_timeout_ms: self.request_timeout_ms.unwrap_or(defaults.request_timeout_ms),
        }
    }
}

impl Listeners {
    /// The REST API listener's limits.
    pub fn api(&self) -> ListenerLimits {
        self.api.over(ListenerLimits::API)
    }
    /// The Raft RPC listener's limits.
    pub fn raft(&self) -> ListenerLimits {
        self.raft.over(ListenerLimits::RAFT)
    }
    /// The embedded agent's listener's limits.
    pub fn agent(&self) -> ListenerLimits {
        self.agent.over(ListenerLimits::AGENT)
    }

    /// Explains the first listener whose limits cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, limits) in [("api", self.api()), ("raft", self.raft()), ("agent", self.agent())] {
            limits.check().map_err(|e| ConfigError::Invalid(format!("listeners.{name}: {e}")))?;
        }
        Ok(())
    }
}

/// How long execution records are kept (statistics rollups are kept regardless).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Final records older than this are purged.
    pub max_age_days: u64,
    /// Per task, only the newest this many records are kept.
    pub per_task_max: u64,
    /// How often the leader looks for records to purge.
    pub interval_ms: u64,
    /// In the whole cluster, only the newest this many records are kept: a bound on the history
    /// whatever the number of tasks (a warning is logged from 90 % of it).
    pub records_max: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_age_days: 90, per_task_max: 10_000, interval_ms: 60_000, records_max: 2_000_000 }
    }
}

/// Which tasks get `/metrics` series of their own (at most 50 together; see
/// docs/operating/metrics.md).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Task names.
    pub task_series: Vec<String>,
    /// Also the tasks with the most failed or timed-out records kept, up to this many.
    pub task_series_top_failures: usize,
}

/// The leader's delivery of notifications (`[notifications]`). Channels and rules are
/// replicated (the API); these only shape how the leader sends.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationSettings {
    /// How long one delivery (connect, send, answer) may take.
    pub delivery_timeout_ms: u64,
    /// Most deliveries in flight at once.
    pub deliveries_inflight_max: usize,
    /// The first retry of a failed delivery waits 500 ms, each further one twice as long, at
    /// most this.
    pub retry_backoff_ms_max: u64,
    /// A node whose replication has not advanced for this long while it is behind is
    /// "unreachable" (`node_unreachable`).
    pub node_unreachable_after_ms: u64,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            delivery_timeout_ms: 5_000,
            deliveries_inflight_max: 32,
            retry_backoff_ms_max: 60_000,
            node_unreachable_after_ms: 10_000,
        }
    }
}

/// Raft timing and log compaction.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RaftTiming {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_logs_since_last: u64,
    /// Entries kept behind a snapshot (for slow followers) before purging.
    pub logs_kept_after_snapshot: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming {
            heartbeat_ms: 100,
            // openraft 0.9 makes a follower of a live leader wait its leader lease (the max) *plus*
            // its own timeout (drawn once per process from [min, max)) before it stands, checked
            // every 1.5 heartbeats: 500 + [300, 500) + up to 150 ms, so a failover is ~0.8–1.2 s
            // of silence (400–800 gave 1.2–1.75 s, over the 1.5 s target). 8+ missed heartbeats
            // still keep spurious elections away when fsyncs stall a node briefly.
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 500,
            // A snapshot point costs one fsync (the state is copied only when sent), but the log
            // behind it is purged, and a follower that falls behind the purge gets a whole copy:
            // 100,000 entries keep minutes of log at the scheduler's ~1,000 entries a second.
            snapshot_logs_since_last: 100_000,
            logs_kept_after_snapshot: 1_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            http_addr: "127.0.0.1:7340".into(),
            raft_addr: "127.0.0.1:7341".into(),
            advertise_http_addr: None,
            advertise_raft_addr: None,
            data_dir: PathBuf::from("./cronraft-data"),
            join: Vec::new(),
            raft: RaftTiming::default(),
            // 12 MiB: 100,000 tasks cost 760–930 bytes of RSS each per node (the target is
            // 1 KiB); 256 MiB cost 1,660–1,750. 8 MiB raised the 5,000 fires/s run's p99.
            cache_bytes: 12 * 1024 * 1024,
            agent: AgentSettings::default(),
            executors: ExecutorSettings::default(),
            retention: Retention::default(),
            metrics: MetricsSettings::default(),
            notifications: NotificationSettings::default(),
            listeners: Listeners::default(),
            auth: AuthSettings::default(),
            tls: TlsSettings::default(),
            log_format: crate::logging::LogFormat::Text,
            storage: disk::StorageSettings::default(),
            backup: disk::BackupSettings::default(),
        }
    }
}

/// One group of `validate()`'s checks.
type Check = fn(&Config) -> Result<(), ConfigError>;

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("{name}={value:?} is not valid: {reason}")]
    Env { name: String, value: String, reason: String },
    #[error("{flag} {value:?} is not valid: {reason}")]
    Flag { flag: String, value: String, reason: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })
    }

    /// Applies the `CRONRAFT_*` variables of the key table ([`keys`]) found in `vars` (pass
    /// `std::env::vars()`); others are left alone (`CRONRAFT_LOG`, the client's `CRONRAFT_NODE`).
    pub fn apply_env(&mut self, vars: impl Iterator<Item = (String, String)>) -> Result<(), ConfigError> {
        for (name, value) in vars {
            let Some(key) = keys::by_env(&name) else { continue };
            (key.set)(self, &value).map_err(|reason| ConfigError::Env { name, value, reason })?;
        }
        Ok(())
    }

    /// Explains the first value that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// What cannot work, one problem per group of keys checked together (addresses, Raft
    /// timing, ..., the TLS files), in that order: `cronraft config check` shows them all.
    pub fn problems(&self) -> Vec<ConfigError> {
        let checks: [Check; 10] = [
            Config::validate_addresses,
            Config::validate_raft,
            Config::validate_storage,
            Config::validate_executors,
            |c| c.listeners.validate(),
            Config::validate_auth,
            Config::validate_retention,
            Config::validate_metrics,
            Config::validate_notifications,
            // Reads every file `[tls]` names, so a bad one is reported before anything starts.
            |c| crate::tls::Tls::load(&c.tls).map(|_| ()).map_err(ConfigError::from),
        ];
        checks.iter().filter_map(|check| check(self).err()).collect()
    }

    fn validate_raft(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let t = &self.raft;
        if t.heartbeat_ms == 0 || t.election_timeout_min_ms <= t.heartbeat_ms {
            return invalid(format!(
                "raft.election_timeout_min_ms ({}) must be greater than raft.heartbeat_ms ({}) > 0",
                t.election_timeout_min_ms, t.heartbeat_ms
            ));
        }
        if t.election_timeout_max_ms <= t.election_timeout_min_ms {
            return invalid("raft.election_timeout_max_ms must be greater than raft.election_timeout_min_ms".into());
        }
        if t.snapshot_logs_since_last == 0 {
            return invalid("raft.snapshot_logs_since_last must be at least 1".into());
        }
        Ok(())
    }

    fn validate_storage(&self) -> Result<(), ConfigError> {
        if self.join.iter().any(String::is_empty) {
            return Err(ConfigError::Invalid("join URLs must not be empty".into()));
        }
        if self.cache_bytes < 1024 * 1024 {
            return Err(ConfigError::Invalid("cache_bytes must be at least 1 MiB".into()));
        }
        Ok(())
    }

    fn validate_executors(&self) -> Result<(), ConfigError> {
        let x = &self.executors;
        if x.health_check_interval_ms < 100 || x.health_check_timeout_ms == 0 || x.dispatch_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "executors.health_check_interval_ms must be at least 100 and the timeouts above 0".into(),
            ));
        }
        if x.failure_threshold == 0 || x.recovery_threshold == 0 {
            return Err(ConfigError::Invalid(
                "executors.failure_threshold and recovery_threshold must be at least 1".into(),
            ));
        }
        Ok(())
    }

    fn validate_retention(&self) -> Result<(), ConfigError> {
        let r = &self.retention;
        if r.max_age_days == 0 || r.per_task_max == 0 || r.interval_ms < 100 || r.records_max < 1_000 {
            return Err(ConfigError::Invalid(
                "retention.max_age_days and per_task_max must be at least 1, interval_ms at least 100, records_max at \
                 least 1000"
                    .into(),
            ));
        }
        self.storage.check().map_err(ConfigError::Invalid)?;
        self.backup.check().map_err(ConfigError::Invalid)?;
        Ok(())
    }

    fn validate_metrics(&self) -> Result<(), ConfigError> {
        let m = &self.metrics;
        if m.task_series.len() > TASK_SERIES_MAX || m.task_series_top_failures > TASK_SERIES_MAX {
            return Err(ConfigError::Invalid(format!(
                "metrics.task_series and metrics.task_series_top_failures: at most {TASK_SERIES_MAX} each"
            )));
        }
        Ok(())
    }

    fn validate_notifications(&self) -> Result<(), ConfigError> {
        let n = &self.notifications;
        if n.delivery_timeout_ms == 0
            || n.deliveries_inflight_max == 0
            || n.retry_backoff_ms_max < 500
            || n.node_unreachable_after_ms < 1_000
        {
            return Err(ConfigError::Invalid(
                "notifications.delivery_timeout_ms and deliveries_inflight_max must be at least 1, \
                 retry_backoff_ms_max at least 500, node_unreachable_after_ms at least 1000"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Auth settings that fit together, and the rule of issue 17: no listener beyond loopback
    /// with auth off unless the operator said `--insecure`.
    fn validate_auth(&self) -> Result<(), ConfigError> {
        let a = &self.auth;
        if a.bootstrap_token_file.is_some() && !a.enabled() {
            return Err(ConfigError::Invalid(
                "auth.bootstrap_token_file needs auth on: set --cluster-secret-file (auth.cluster_secret_file) too"
                    .into(),
            ));
        }
        if a.enabled() || a.insecure {
            return Ok(());
        }
        let mut exposed = Vec::new();
        let listeners = [("http_addr", Some(&self.http_addr)), ("raft_addr", Some(&self.raft_addr))];
        let agent = self.agent.enabled.then_some(()).and(self.agent.listen.as_ref());
        for (field, text) in listeners.into_iter().chain([("agent.listen", agent)]) {
            let Some(text) = text else { continue };
            if let Ok(hp) = HostPort::parse(text) {
                if !hp.is_loopback() {
                    exposed.push(format!("{field} {text}"));
                }
            }
        }
        if exposed.is_empty() {
            return Ok(());
        }
        Err(ConfigError::Invalid(format!(
            "refusing to listen beyond loopback ({}) without authentication: anyone who reaches these ports could \
             run commands on every node. Turn auth on with --cluster-secret-file FILE (the same secret on every \
             node, e.g. `head -c 32 /dev/urandom | base64 > FILE`; docs/operating/security.md), or pass --insecure \
             to run without it on a network you trust",
            exposed.join(", ")
        )))
    }

    /// The listeners and the addresses given to others: well formed, and never a wildcard
    /// where another host must connect (that would start a node nobody can reach).
    fn validate_addresses(&self) -> Result<(), ConfigError> {
        let parse =
            |field: &str, text: &str| HostPort::parse(text).map_err(|e| ConfigError::Invalid(format!("{field}: {e}")));
        let http = parse("http_addr", &self.http_addr)?;
        let raft = parse("raft_addr", &self.raft_addr)?;
        if http == raft && http.port != 0 {
            return Err(ConfigError::Invalid(format!("http_addr and raft_addr must differ (both are {http})")));
        }
        let pairs = [
            ("http_addr", "advertise_http_addr", "--advertise-http-addr", &http, &self.advertise_http_addr),
            ("raft_addr", "advertise_raft_addr", "--advertise-raft-addr", &raft, &self.advertise_raft_addr),
        ];
        for (bind_field, field, flag, bound, advertised) in pairs {
            match advertised {
                Some(text) => {
                    let a = parse(field, text)?;
                    if a.is_wildcard() || a.port == 0 {
                        return Err(ConfigError::Invalid(format!(
                            "{field} ({flag}) must be an address other hosts can connect to, with a port; got {text:?}"
                        )));
                    }
                }
                None if bound.is_wildcard() => {
                    return Err(ConfigError::Invalid(format!(
                        "{bind_field} {bound} is a wildcard address that no other host can connect to: \
                         set {flag} ({field}) to this host's reachable address, e.g. 10.0.0.1:{}",
                        bound.port
                    )))
                }
                None => {}
            }
        }
        if let Some(listen) = &self.agent.listen {
            parse("agent.listen", listen)?;
        }
        if let Some(url) = &self.agent.advertise_url {
            let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).ok_or_else(|| {
                ConfigError::Invalid(format!("agent.advertise_url must start with http:// or https://, got {url:?}"))
            })?;
            let host_port = rest.split('/').next().unwrap_or_default();
            let hp = parse("agent.advertise_url", host_port)?;
            if hp.is_wildcard() || hp.port == 0 {
                return Err(ConfigError::Invalid(format!(
                    "agent.advertise_url must name an address other hosts can connect to, got {url:?}"
                )));
            }
        }
        Ok(())
    }
}

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Splits `a,b , c` into trimmed non-empty items.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_ports() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.http_addr, "127.0.0.1:7340");
        assert_eq!(c.raft_addr, "127.0.0.1:7341");
    }

    #[test]
    fn env_overrides_and_bad_env_is_explained() {
        let mut c = Config::default();
        let vars = [("CRONRAFT_NODE_ID".to_string(), "3".to_string()), ("CRONRAFT_JOIN".into(), "a:1, b:2".into())];
        c.apply_env(vars.into_iter()).unwrap();
        assert_eq!(c.node_id, 3);
        assert_eq!(c.join, vec!["a:1", "b:2"]);
        let err = c.apply_env([("CRONRAFT_NODE_ID".to_string(), "x".to_string())].into_iter()).unwrap_err();
        assert!(err.to_string().contains("CRONRAFT_NODE_ID"), "{err}");
        let err = c.apply_env([("CRONRAFT_AGENT".to_string(), "maybe".to_string())].into_iter()).unwrap_err();
        assert!(err.to_string().contains("CRONRAFT_AGENT"), "{err}");
        c.apply_env([("CRONRAFT_AGENT".to_string(), "off".to_string())].into_iter()).unwrap();
        assert!(!c.agent.enabled);
        // The benchmarks size the snapshot interval and the page cache per run.
        let vars = [("CRONRAFT_SNAPSHOT_LOGS_SINCE_LAST".to_string(), "500".to_string())];
        c.apply_env(vars.into_iter()).unwrap();
        assert_eq!(c.raft.snapshot_logs_since_last, 500);
        let err = c.apply_env([("CRONRAFT_SNAPSHOT_LOGS_SINCE_LAST".into(), "many".into())].into_iter()).unwrap_err();
        assert!(err.to_string().contains("CRONRAFT_SNAPSHOT_LOGS_SINCE_LAST"), "{err}");
    }

    #[test]
    fn validate_rejects_what_cannot_work() {
        let cases: Vec<(fn(&mut Config), &str)> = vec![
            (|c| c.http_addr = "localhost".into(), "http_addr"),
            (|c| c.raft_addr = c.http_addr.clone(), "must differ"),
            (|c| c.raft.election_timeout_min_ms = 50, "election_timeout_min_ms"),
            (|c| c.raft.election_timeout_max_ms = c.raft.election_timeout_min_ms, "election_timeout_max_ms"),
            (|c| c.raft.snapshot_logs_since_last = 0, "snapshot_logs_since_last"),
            (|c| c.agent.listen = Some("nowhere".into()), "agent.listen"),
            (|c| c.agent.advertise_url = Some("ftp://10.0.0.1:1".into()), "agent.advertise_url"),
            (|c| c.agent.advertise_url = Some("http://0.0.0.0:7390".into()), "agent.advertise_url"),
            (|c| c.executors.health_check_interval_ms = 10, "health_check_interval_ms"),
            (|c| c.executors.failure_threshold = 0, "failure_threshold"),
            (|c| c.retention.per_task_max = 0, "per_task_max"),
            (|c| c.notifications.retry_backoff_ms_max = 100, "retry_backoff_ms_max"),
            (|c| c.notifications.deliveries_inflight_max = 0, "deliveries_inflight_max"),
        ];
        for (mutate, expected) in cases {
            let mut c = Config::default();
            mutate(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
    }

    #[test]
    fn a_wildcard_bind_needs_an_advertised_address_and_the_error_names_the_flag() {
        // Phase 1: 0.0.0.0 alone would register an address nobody can connect to: refused.
        let mut c = Config { http_addr: "0.0.0.0:7340".into(), ..Config::default() };
        c.auth.insecure = true;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("--advertise-http-addr") && err.contains("wildcard"), "{err}");
        c.raft_addr = "[::]:7341".into();
        c.advertise_http_addr = Some("10.0.0.1:7340".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("--advertise-raft-addr"), "{err}");
        // Phase 2: with both advertised (a host name is fine: resolved at connect time), it starts.
        c.advertise_raft_addr = Some("node1.lan:7341".into());
        c.validate().unwrap();
        // Phase 3: an advertised address must itself be connectable.
        c.advertise_http_addr = Some("0.0.0.0:7340".into());
        assert!(c.validate().unwrap_err().to_string().contains("advertise_http_addr"));
        c.advertise_http_addr = Some("10.0.0.1:0".into());
        assert!(c.validate().unwrap_err().to_string().contains("advertise_http_addr"));
    }

    #[test]
    fn host_names_are_accepted_for_listeners_and_advertised_addresses() {
        let vars = [
            ("CRONRAFT_HTTP_ADDR", "node1.lan:7340"),
            ("CRONRAFT_RAFT_ADDR", "node1.lan:7341"),
            ("CRONRAFT_ADVERTISE_RAFT_ADDR", "raft1.lan:7341"),
            ("CRONRAFT_AGENT_LISTEN", "10.0.0.1:7390"),
            ("CRONRAFT_AGENT_ADVERTISE_URL", "http://agent1.lan:7390"),
        ];
        let mut c = Config::default();
        c.apply_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        c.auth.insecure = true;
        c.validate().unwrap();
        assert_eq!(c.advertise_raft_addr.as_deref(), Some("raft1.lan:7341"));
        assert_eq!(c.agent.listen.as_deref(), Some("10.0.0.1:7390"));
    }

    #[test]
    fn a_listener_beyond_loopback_needs_auth_or_insecure_and_the_error_says_how() {
        // Phase 1: the loopback default needs nothing.
        Config::default().validate().unwrap();
        // Phase 2: a LAN address with auth off is refused, naming the flags that fix it.
        let mut c = Config { http_addr: "10.0.0.1:7340".into(), ..Config::default() };
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("--cluster-secret-file") && err.contains("--insecure") && err.contains("10.0.0.1:7340"),
            "{err}"
        );
        let agent_only = Config {
            agent: AgentSettings { listen: Some("10.0.0.1:7390".into()), ..AgentSettings::default() },
            ..Config::default()
        };
        assert!(agent_only.validate().unwrap_err().to_string().contains("agent.listen"));
        // Phase 3: a cluster secret (auth on) or --insecure lets it start.
        c.auth.cluster_secret_file = Some("/etc/cronraft/secret".into());
        c.validate().unwrap();
        let insecure = Config {
            http_addr: "10.0.0.1:7340".into(),
            auth: AuthSettings { insecure: true, ..AuthSettings::default() },
            ..Config::default()
        };
        insecure.validate().unwrap();
        // Phase 4: a bootstrap token without a secret would not turn auth on: refused.
        let token_only = Config {
            auth: AuthSettings { bootstrap_token_file: Some("t".into()), ..AuthSettings::default() },
            ..Config::default()
        };
        assert!(token_only.validate().unwrap_err().to_string().contains("cluster_secret_file"));
    }

    #[test]
    fn the_agent_table_sets_listen_and_advertise_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[agent]\nenabled = false\nlisten = \"10.0.0.1:7390\"\n").unwrap();
        let c = Config::from_file(&path).unwrap();
        assert!(!c.agent.enabled);
        assert_eq!(c.agent.listen.as_deref(), Some("10.0.0.1:7390"));
        std::fs::write(&path, "[agent]\nport = 1\n").unwrap();
        assert!(Config::from_file(&path).is_err(), "unknown keys in [agent] are refused");
    }

    #[test]
    fn listener_limits_override_field_by_field_and_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let text = "[listeners.api]\nrequests_inflight_max = 4\nheader_read_timeout_ms = 1000\n[listeners.raft]\nconnections_max = 9\n";
        std::fs::write(&path, text).unwrap();
        let c = Config::from_file(&path).unwrap();
        c.validate().unwrap();
        let api = c.listeners.api();
        assert_eq!((api.requests_inflight_max, api.header_read_timeout_ms), (4, 1000));
        assert_eq!(api.connections_max, ListenerLimits::API.connections_max, "left out: the api default");
        assert_eq!(c.listeners.raft().connections_max, 9);
        assert_eq!(c.listeners.raft().request_timeout_ms, ListenerLimits::RAFT.request_timeout_ms);
        assert_eq!(c.listeners.agent(), ListenerLimits::AGENT);
        let mut bad = Config::default();
        bad.listeners.agent.idle_timeout_ms = Some(1);
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("listeners.agent") && err.contains("idle_timeout_ms"), "{err}");
        std::fs::write(&path, "[listeners.api]\nconnection_max = 1\n").unwrap();
        assert!(Config::from_file(&path).is_err(), "a misspelt limit is refused");
    }

    #[test]
    fn executor_cidrs_parse_and_become_the_address_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let text = "[executors]\nallow_cidrs = [\"10.0.0.0/8\"]\ndeny_cidrs = [\"169.254.0.0/16\", \"fd00::/8\"]\n";
        std::fs::write(&path, text).unwrap();
        let c = Config::from_file(&path).unwrap();
        c.validate().unwrap();
        let policy = c.executors.address_policy();
        assert!(policy.check("10.1.1.1".parse().unwrap()).is_ok());
        assert!(policy.check("169.254.169.254".parse().unwrap()).is_err());
        assert!(Config::default().executors.address_policy().is_open(), "no lists: every address");
        std::fs::write(&path, "[executors]\ndeny_cidrs = [\"169.254.0.0\"]\n").unwrap();
        let err = Config::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("deny_cidrs") || err.contains("invalid IP"), "a CIDR needs its prefix: {err}");
    }

    #[test]
    fn toml_file_with_unknown_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "node_id = 2\n[raft]\nheartbeat_ms = 50\n").unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!((c.node_id, c.raft.heartbeat_ms), (2, 50));
        std::fs::write(&path, "nodeid = 2\n").unwrap();
        assert!(Config::from_file(&path).is_err());
    }

    /// `[metrics]` from the file and the environment, and its bound of 50.
    #[test]
    fn metrics_task_series_come_from_the_file_or_the_environment_and_are_bounded() {
        let mut c: Config =
            toml::from_str("[metrics]\ntask_series = [\"a\", \"b\"]\ntask_series_top_failures = 5\n").unwrap();
        assert_eq!(
            (c.metrics.task_series.clone(), c.metrics.task_series_top_failures),
            (vec!["a".into(), "b".into()], 5)
        );
        let vars = [
            ("CRONRAFT_METRICS_TASK_SERIES".to_string(), "x, y".to_string()),
            ("CRONRAFT_METRICS_TASK_SERIES_TOP_FAILURES".into(), "7".into()),
        ];
        c.apply_env(vars.into_iter()).unwrap();
        assert_eq!(
            (c.metrics.task_series.clone(), c.metrics.task_series_top_failures),
            (vec!["x".into(), "y".into()], 7)
        );
        c.validate().unwrap();
        c.metrics.task_series_top_failures = 51;
        assert!(c.validate().unwrap_err().to_string().contains("task_series_top_failures"));
        c.metrics.task_series_top_failures = 0;
        c.metrics.task_series = (0..51).map(|i| format!("t{i}")).collect();
        assert!(c.validate().unwrap_err().to_string().contains("metrics.task_series"));
    }
}
