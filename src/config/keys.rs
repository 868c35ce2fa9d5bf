//! Every configuration key of a node, once: its place in the TOML file, its `CRONRAFT_*`
//! variable, its flag, its type, its default and what it means.
//!
//! The table is what the variables are parsed with ([`super::Config::apply_env`]), what makes
//! the `serve` flags that have no hand-written field ([`super::flags`]), what `cronraft config
//! check` prints the effective configuration with, and what the key table of
//! `docs/reference/cli.md` is generated from (`cronraft config table`; a test fails when the
//! committed table differs). Another test sets every key by file, variable and flag.
//!
//! Each entry is made by [`key!`] from the field's path in [`Config`], so the TOML key is the
//! serde field path by construction, and the type and default shown are the field's own.

use std::sync::LazyLock;

use super::value::Value;
use super::Config;

/// How a key is given on the `serve` command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// A flag made from this table (`--heartbeat-ms 250`): see [`super::flags`].
    Table(&'static str),
    /// A hand-written flag of `ServeArgs` that takes a value (`--node-id 2`).
    Own(&'static str),
    /// A hand-written switch of `ServeArgs`, without a value: it sets the key to its
    /// [`ConfigKey::example`] (`--no-agent` sets `agent.enabled` to `false`).
    Switch(&'static str),
}

impl Flag {
    /// The flag's name, without the dashes.
    pub fn name(self) -> &'static str {
        match self {
            Flag::Table(n) | Flag::Own(n) | Flag::Switch(n) => n,
        }
    }
}

/// One configuration key.
pub struct ConfigKey {
    /// The key in the TOML file, dotted (`raft.heartbeat_ms` is `heartbeat_ms` in `[raft]`).
    pub toml: &'static str,
    /// The environment variable.
    pub env: &'static str,
    pub flag: Flag,
    /// The value's type, as the reference says it.
    pub kind: &'static str,
    /// The default in words, for a key whose default is not a plain value (unset, derived).
    pub default_text: Option<&'static str>,
    /// What the key does (one markdown cell).
    pub meaning: &'static str,
    /// A valid value other than the default, as a variable or flag takes it (for the tests).
    pub example: &'static str,
    /// Sets the key from text, as a variable or flag gives it.
    pub set: fn(&mut Config, &str) -> Result<(), String>,
    /// The key's value as a TOML value (`""` when unset).
    pub show: fn(&Config) -> String,
}

impl ConfigKey {
    /// The default as the reference shows it.
    pub fn default_shown(&self) -> String {
        match self.default_text {
            Some(text) => text.to_string(),
            None => format!("`{}`", (self.show)(&Config::default())),
        }
    }
}

/// The type name of the field `field` points at.
fn kind_of<T: Value>(_field: fn(&Config) -> &T) -> &'static str {
    T::KIND
}

/// One [`ConfigKey`] for the field at `path` of [`Config`] (`raft.heartbeat_ms`); optionally
/// `default "words"` for a default that is not a plain value.
macro_rules! key {
    ($first:ident $(. $rest:ident)*, $env:literal, $flag:expr, $example:literal, $meaning:expr
     $(, default $default:literal)?) => {
        ConfigKey {
            toml: concat!(stringify!($first) $(, ".", stringify!($rest))*),
            env: $env,
            flag: $flag,
            kind: kind_of(|c| &c.$first$(.$rest)*),
            default_text: None $(.or(Some($default)))?,
            meaning: $meaning,
            example: $example,
            set: |c: &mut Config, v: &str| Value::set(&mut c.$first$(.$rest)*, v),
            show: |c: &Config| Value::show(&c.$first$(.$rest)*),
        }
    };
}

/// One listener limit: set as an override, shown as the listener's effective value.
macro_rules! limit {
    ($listener:ident, $field:ident, $env:literal, $flag:literal, $example:literal, $meaning:expr) => {
        ConfigKey {
            toml: concat!("listeners.", stringify!($listener), ".", stringify!($field)),
            env: $env,
            flag: Flag::Table($flag),
            kind: "integer",
            default_text: None,
            meaning: $meaning,
            example: $example,
            set: |c: &mut Config, v: &str| Value::set(&mut c.listeners.$listener.$field, v),
            show: |c: &Config| c.listeners.$listener().$field.to_string(),
        }
    };
}

const HEADER_READ: &str = "a new connection's first request head must arrive within this many ms";
const KEEPALIVE: &str = "a kept-alive connection's next request head must arrive within this many ms of the \
     previous answer; at least `header_read_timeout_ms`. Keep it above your clients' idle-connection limit (90 s \
     for reqwest, hyper and Go), so they close first";
const IDLE: &str =
    "a connection moving no byte for this many ms is closed; above `request_timeout_ms` and `keepalive_timeout_ms`";
const CONNECTIONS: &str = "open connections; one more is closed at once (keep `LimitNOFILE` above the sum)";
const INFLIGHT: &str = "requests handled at once; one more gets `503 overloaded`";
const REQUEST: &str = "a handler not done within this many ms is dropped: `503 request_timeout`";

/// Every key, in the order of the reference.
pub static KEYS: LazyLock<Vec<ConfigKey>> = LazyLock::new(|| {
    use Flag::{Own, Switch, Table};
    vec![
            key!(
                node_id,
                "CRONRAFT_NODE_ID",
                Own("node-id"),
                "3",
                "this node's Raft id. Unique in the cluster; never reuse it for another machine"
            ),
            key!(
                http_addr,
                "CRONRAFT_HTTP_ADDR",
                Own("http-addr"),
                "127.0.0.1:7350",
                "the REST API and console listener, host:port: an IP address (`10.0.0.1`, `[fe80::1]`) or a host name \
             (`node1.lan`); port 0 picks a free port"
            ),
            key!(
                raft_addr,
                "CRONRAFT_RAFT_ADDR",
                Own("raft-addr"),
                "127.0.0.1:7351",
                "the Raft RPC listener, host:port; must differ from `http_addr`"
            ),
            key!(advertise_http_addr, "CRONRAFT_ADVERTISE_HTTP_ADDR", Own("advertise-http-addr"), "10.0.0.1:7340",
            "the API address given to other nodes, agents and clients; **required** when `http_addr` is a wildcard \
             (`0.0.0.0`, `[::]`). Must be connectable: no wildcard, no port 0",
            default "the bound address (a host name stays a name)"),
            key!(advertise_raft_addr, "CRONRAFT_ADVERTISE_RAFT_ADDR", Own("advertise-raft-addr"), "10.0.0.1:7341",
            "the Raft address given to other nodes; required when `raft_addr` is a wildcard",
            default "the bound address"),
            key!(data_dir, "CRONRAFT_DATA_DIR", Own("data-dir"), "/var/lib/cronraft",
            "the sled database (log and state). Created `0700` if missing (its files are `0600`); a looser existing \
             one is tightened at start"),
            key!(join, "CRONRAFT_JOIN", Own("join"), "http://10.0.0.1:7340,http://10.0.0.2:7340",
            "API URLs of existing members to join through (comma-separated, or repeat the flag); empty: bootstrap a \
             one-node cluster when the data directory is empty"),
            key!(
                cache_bytes,
                "CRONRAFT_CACHE_BYTES",
                Table("cache-bytes"),
                "33554432",
                "sled page cache, in bytes of stored pages (their in-memory form is about 3.6× that); at least 1 MiB. \
             Raise it for a large execution history under heavy load; see `docs/performance.md` (Memory)"
            ),
            key!(
                log_format,
                "CRONRAFT_LOG_FORMAT",
                Table("log-format"),
                "json",
                "log lines on standard error: `text`, or `json` (one object per line). What is logged is filtered by \
             `CRONRAFT_LOG`"
            ),
            key!(
                raft.heartbeat_ms,
                "CRONRAFT_HEARTBEAT_MS",
                Table("heartbeat-ms"),
                "150",
                "leader heartbeat interval, ms"
            ),
            key!(
                raft.election_timeout_min_ms,
                "CRONRAFT_ELECTION_TIMEOUT_MIN_MS",
                Table("election-timeout-min-ms"),
                "350",
                "shortest election timeout, ms; greater than `raft.heartbeat_ms`"
            ),
            key!(
                raft.election_timeout_max_ms,
                "CRONRAFT_ELECTION_TIMEOUT_MAX_MS",
                Table("election-timeout-max-ms"),
                "600",
                "longest election timeout, ms; greater than `raft.election_timeout_min_ms`"
            ),
            key!(
                raft.snapshot_logs_since_last,
                "CRONRAFT_SNAPSHOT_LOGS_SINCE_LAST",
                Table("snapshot-logs-since-last"),
                "5000",
                "mark a snapshot point (one fsync, no copy) after this many entries, then purge the log behind \
             it; at least 1"
            ),
            key!(
                raft.logs_kept_after_snapshot,
                "CRONRAFT_LOGS_KEPT_AFTER_SNAPSHOT",
                Table("logs-kept-after-snapshot"),
                "50",
                "entries kept behind a snapshot for slow followers"
            ),
            key!(
                agent.enabled,
                "CRONRAFT_AGENT",
                Switch("no-agent"),
                "false",
                "run the embedded agent in group `local` (`--no-agent` sets `false`). It runs shell commands with the \
             node's user and privileges"
            ),
            key!(agent.listen, "CRONRAFT_AGENT_LISTEN", Own("agent-listen"), "127.0.0.1:7390",
            "where the embedded agent listens, host:port; pin the port for a firewall",
            default "the API's bound IP, a free port"),
            key!(agent.advertise_url, "CRONRAFT_AGENT_ADVERTISE_URL", Table("agent-advertise-url"),
            "http://node1.lan:7390",
            "the base URL registered for the embedded agent: `http://` or `https://` (use `https://` with `[tls]`: \
             the agent serves the node's certificate), connectable (no wildcard, no port 0)",
            default "`http://` (`https://` with `[tls]`) + the advertised API host + `:` + the agent's port"),
            key!(agent.env_allow, "CRONRAFT_AGENT_ENV_ALLOW", Table("agent-env-allow"), "PATH,LANG,LC_*",
            "the node's environment variables a `command` job gets (`NAME*`: a prefix); `CRONRAFT_*` never",
            default "`PATH`, `HOME`, `USER`, `LOGNAME`, `SHELL`, `LANG`, `LANGUAGE`, `LC_*`, `TZ`, `TMPDIR`, `TERM`"),
            key!(
                executors.health_check_interval_ms,
                "CRONRAFT_HEALTH_CHECK_INTERVAL_MS",
                Table("health-check-interval-ms"),
                "10000",
                "how often the leader checks each executor, ms; at least 100"
            ),
            key!(
                executors.health_check_timeout_ms,
                "CRONRAFT_HEALTH_CHECK_TIMEOUT_MS",
                Table("health-check-timeout-ms"),
                "2000",
                "how long one health check may take, ms"
            ),
            key!(
                executors.failure_threshold,
                "CRONRAFT_FAILURE_THRESHOLD",
                Table("failure-threshold"),
                "5",
                "consecutive failed checks that make an executor unhealthy"
            ),
            key!(
                executors.recovery_threshold,
                "CRONRAFT_RECOVERY_THRESHOLD",
                Table("recovery-threshold"),
                "4",
                "consecutive good checks that make it healthy again"
            ),
            key!(
                executors.dispatch_timeout_ms,
                "CRONRAFT_DISPATCH_TIMEOUT_MS",
                Table("dispatch-timeout-ms"),
                "8000",
                "how long `POST /execute` may take before the attempt counts as refused, ms"
            ),
            key!(
                executors.allow_cidrs,
                "CRONRAFT_ALLOW_CIDRS",
                Table("allow-cidrs"),
                "10.0.0.0/8,fd00::/8",
                "if not empty, the leader calls executors (dispatch, stop, health) only at addresses in these nets; \
             checked on the address connected to, after DNS"
            ),
            key!(
                executors.deny_cidrs,
                "CRONRAFT_DENY_CIDRS",
                Table("deny-cidrs"),
                "169.254.0.0/16",
                "the leader never calls executors at these addresses (wins over `allow_cidrs`), e.g. `169.254.0.0/16` \
             for cloud metadata; a refused dispatch fails with a reason naming the setting"
            ),
            key!(
                retention.max_age_days,
                "CRONRAFT_RETENTION_MAX_AGE_DAYS",
                Table("retention-max-age-days"),
                "30",
                "final execution records older than this many days are purged"
            ),
            key!(
                retention.per_task_max,
                "CRONRAFT_RETENTION_PER_TASK_MAX",
                Table("retention-per-task-max"),
                "500",
                "newest execution records kept per task"
            ),
            key!(
                retention.interval_ms,
                "CRONRAFT_RETENTION_INTERVAL_MS",
                Table("retention-interval-ms"),
                "5000",
                "how often the leader purges, ms; at least 100"
            ),
            key!(
                retention.records_max,
                "CRONRAFT_RETENTION_RECORDS_MAX",
                Table("retention-records-max"),
                "500000",
                "in the whole cluster, only the newest this many execution records are kept (oldest final records \
             go first; statistics stay); a warning is logged from 90 % of it; at least 1000"
            ),
            key!(
                storage.free_bytes_min,
                "CRONRAFT_STORAGE_FREE_BYTES_MIN",
                Table("storage-free-bytes-min"),
                "1073741824",
                "the node refuses writes (`507 storage_full`) while the data directory's filesystem has less free \
             space than this, and takes them again by itself once it has; see [deploy.md](../operating/deploy.md#a-full-disk)"
            ),
            key!(
                storage.data_bytes_max,
                "CRONRAFT_STORAGE_DATA_BYTES_MAX",
                Table("storage-data-bytes-max"),
                "8589934592",
                "the node refuses writes while its data directory holds more than this many bytes (0: no quota)"
            ),
            key!(
                storage.check_interval_ms,
                "CRONRAFT_STORAGE_CHECK_INTERVAL_MS",
                Table("storage-check-interval-ms"),
                "500",
                "how often free space and data size are measured, ms; at least 100"
            ),
            key!(
                backup.dir,
                "CRONRAFT_BACKUP_DIR",
                Table("backup-dir"),
                "/var/lib/cronraft/backups",
                "where the leader writes scheduled backups (created `0700`); see [backup.md](../operating/backup.md)",
                default "unset (no scheduled backups)"
            ),
            key!(
                backup.interval_s,
                "CRONRAFT_BACKUP_INTERVAL_S",
                Table("backup-interval-s"),
                "3600",
                "seconds between two scheduled backups (the first is written as soon as the node leads and finds none newer); at least 1"
            ),
            key!(
                backup.keep,
                "CRONRAFT_BACKUP_KEEP",
                Table("backup-keep"),
                "3",
                "how many of the newest scheduled backups are kept; at least 1"
            ),
            key!(
                notifications.delivery_timeout_ms,
                "CRONRAFT_NOTIFICATIONS_DELIVERY_TIMEOUT_MS",
                Table("notifications-delivery-timeout-ms"),
                "2000",
                "how long one notification delivery (connect, send, answer) may take, ms; at least 1"
            ),
            key!(
                notifications.deliveries_inflight_max,
                "CRONRAFT_NOTIFICATIONS_DELIVERIES_INFLIGHT_MAX",
                Table("notifications-deliveries-inflight-max"),
                "8",
                "most notification deliveries in flight at once; at least 1"
            ),
            key!(
                notifications.retry_backoff_ms_max,
                "CRONRAFT_NOTIFICATIONS_RETRY_BACKOFF_MS_MAX",
                Table("notifications-retry-backoff-ms-max"),
                "10000",
                "a failed delivery is retried after 500 ms, then twice as long each time, at most this, ms; at least 500"
            ),
            key!(
                notifications.node_unreachable_after_ms,
                "CRONRAFT_NOTIFICATIONS_NODE_UNREACHABLE_AFTER_MS",
                Table("notifications-node-unreachable-after-ms"),
                "5000",
                "a node whose replication has not advanced for this long while behind raises `node_unreachable`, ms; at least 1000"
            ),
            key!(
                metrics.task_series,
                "CRONRAFT_METRICS_TASK_SERIES",
                Table("metrics-task-series"),
                "nightly-report,backup",
                "task names that get per-task series in `/metrics` (at most 50; see [metrics.md](../operating/metrics.md))"
            ),
            key!(
                metrics.task_series_top_failures,
                "CRONRAFT_METRICS_TASK_SERIES_TOP_FAILURES",
                Table("metrics-task-series-top-failures"),
                "10",
                "also this many tasks with the most failed or timed-out records kept get per-task series (at most 50)"
            ),
            limit!(
                api,
                header_read_timeout_ms,
                "CRONRAFT_LISTENERS_API_HEADER_READ_TIMEOUT_MS",
                "listeners-api-header-read-timeout-ms",
                "5000",
                HEADER_READ
            ),
            limit!(
                api,
                keepalive_timeout_ms,
                "CRONRAFT_LISTENERS_API_KEEPALIVE_TIMEOUT_MS",
                "listeners-api-keepalive-timeout-ms",
                "125000",
                KEEPALIVE
            ),
            limit!(
                api,
                idle_timeout_ms,
                "CRONRAFT_LISTENERS_API_IDLE_TIMEOUT_MS",
                "listeners-api-idle-timeout-ms",
                "160000",
                IDLE
            ),
            limit!(
                api,
                connections_max,
                "CRONRAFT_LISTENERS_API_CONNECTIONS_MAX",
                "listeners-api-connections-max",
                "512",
                CONNECTIONS
            ),
            limit!(
                api,
                requests_inflight_max,
                "CRONRAFT_LISTENERS_API_REQUESTS_INFLIGHT_MAX",
                "listeners-api-requests-inflight-max",
                "256",
                INFLIGHT
            ),
            limit!(
                api,
                request_timeout_ms,
                "CRONRAFT_LISTENERS_API_REQUEST_TIMEOUT_MS",
                "listeners-api-request-timeout-ms",
                "40000",
                REQUEST
            ),
            limit!(
                raft,
                header_read_timeout_ms,
                "CRONRAFT_LISTENERS_RAFT_HEADER_READ_TIMEOUT_MS",
                "listeners-raft-header-read-timeout-ms",
                "5000",
                HEADER_READ
            ),
            limit!(
                raft,
                keepalive_timeout_ms,
                "CRONRAFT_LISTENERS_RAFT_KEEPALIVE_TIMEOUT_MS",
                "listeners-raft-keepalive-timeout-ms",
                "125000",
                KEEPALIVE
            ),
            limit!(
                raft,
                idle_timeout_ms,
                "CRONRAFT_LISTENERS_RAFT_IDLE_TIMEOUT_MS",
                "listeners-raft-idle-timeout-ms",
                "190000",
                IDLE
            ),
            limit!(
                raft,
                connections_max,
                "CRONRAFT_LISTENERS_RAFT_CONNECTIONS_MAX",
                "listeners-raft-connections-max",
                "128",
                CONNECTIONS
            ),
            limit!(
                raft,
                requests_inflight_max,
                "CRONRAFT_LISTENERS_RAFT_REQUESTS_INFLIGHT_MAX",
                "listeners-raft-requests-inflight-max",
                "128",
                INFLIGHT
            ),
            limit!(
                raft,
                request_timeout_ms,
                "CRONRAFT_LISTENERS_RAFT_REQUEST_TIMEOUT_MS",
                "listeners-raft-request-timeout-ms",
                "70000",
                REQUEST
            ),
            limit!(
                agent,
                header_read_timeout_ms,
                "CRONRAFT_LISTENERS_AGENT_HEADER_READ_TIMEOUT_MS",
                "listeners-agent-header-read-timeout-ms",
                "5000",
                HEADER_READ
            ),
            limit!(
                agent,
                keepalive_timeout_ms,
                "CRONRAFT_LISTENERS_AGENT_KEEPALIVE_TIMEOUT_MS",
                "listeners-agent-keepalive-timeout-ms",
                "125000",
                KEEPALIVE
            ),
            limit!(
                agent,
                idle_timeout_ms,
                "CRONRAFT_LISTENERS_AGENT_IDLE_TIMEOUT_MS",
                "listeners-agent-idle-timeout-ms",
                "160000",
                IDLE
            ),
            limit!(
                agent,
                connections_max,
                "CRONRAFT_LISTENERS_AGENT_CONNECTIONS_MAX",
                "listeners-agent-connections-max",
                "512",
                CONNECTIONS
            ),
            limit!(
                agent,
                requests_inflight_max,
                "CRONRAFT_LISTENERS_AGENT_REQUESTS_INFLIGHT_MAX",
                "listeners-agent-requests-inflight-max",
                "256",
                INFLIGHT
            ),
            limit!(
                agent,
                request_timeout_ms,
                "CRONRAFT_LISTENERS_AGENT_REQUEST_TIMEOUT_MS",
                "listeners-agent-request-timeout-ms",
                "40000",
                REQUEST
            ),
            key!(auth.cluster_secret_file, "CRONRAFT_CLUSTER_SECRET_FILE", Own("cluster-secret-file"),
            "/etc/cronraft/secret",
            "turns auth on: API requests need a token, nodes prove the secret to each other. The same secret \
             (32+ bytes) on every node; one per line, up to 4 during a rotation (the first is used, all are \
             accepted). See [security.md](../operating/security.md)",
            default "unset (auth off)"),
            key!(auth.bootstrap_token_file, "CRONRAFT_BOOTSTRAP_TOKEN_FILE", Own("bootstrap-token-file"),
            "/etc/cronraft/admin.token",
            "the first admin token (32+ bytes), instead of a new one written to `<data_dir>/admin.token`; only with \
             a cluster secret",
            default "unset"),
            key!(
                auth.insecure,
                "CRONRAFT_INSECURE",
                Switch("insecure"),
                "true",
                "listen beyond loopback with auth off. Without it (and without a secret), a node bound to a \
             non-loopback address refuses to start"
            ),
            key!(tls.cert_file, "CRONRAFT_TLS_CERT_FILE", Own("tls-cert-file"), "/etc/cronraft/node1.pem",
            "PEM certificate chain (leaf first): TLS on the API, Raft and embedded agent listeners, `https://` node \
             URLs, and the client certificate presented to the other nodes. Every node of the cluster needs one. \
             See [operating/tls.md](../operating/tls.md)",
            default "unset (no TLS)"),
            key!(tls.key_file, "CRONRAFT_TLS_KEY_FILE", Own("tls-key-file"), "/etc/cronraft/node1-key.pem",
            "the certificate's PEM private key (PKCS#8, RSA or SEC1), unencrypted; required with `tls.cert_file`",
            default "unset"),
            key!(tls.ca_file, "CRONRAFT_TLS_CA_FILE", Own("tls-ca-file"), "/etc/cronraft/ca.pem",
            "PEM CA certificate(s): node-to-node calls trust only these, other calls trust them besides the system \
             roots, and client certificates are checked against them",
            default "unset"),
            key!(
                tls.peer_client_auth,
                "CRONRAFT_TLS_PEER_CLIENT_AUTH",
                Table("tls-peer-client-auth"),
                "true",
                "the Raft listener requires a client certificate from `tls.ca_file` (mTLS between nodes)"
            ),
            key!(
                tls.api_client_auth,
                "CRONRAFT_TLS_API_CLIENT_AUTH",
                Table("tls-api-client-auth"),
                "optional",
                "the API listener's client certificates: `off`, `optional` (checked when sent) or `required`"
            ),
            key!(
                tls.reload_check_ms,
                "CRONRAFT_TLS_RELOAD_CHECK_MS",
                Table("tls-reload-check-ms"),
                "1000",
                "how often the certificate files are checked for a change, ms (SIGHUP reloads at once); at least 100"
            ),
        ]
});

/// The key whose variable is `env`.
pub fn by_env(env: &str) -> Option<&'static ConfigKey> {
    KEYS.iter().find(|k| k.env == env)
}

/// The key whose TOML name is `toml`.
pub fn by_toml(toml: &str) -> Option<&'static ConfigKey> {
    KEYS.iter().find(|k| k.toml == toml)
}

/// The reference's key table (markdown), as `docs/reference/cli.md` has it between its markers.
pub fn markdown_table() -> String {
    let mut out = String::from("| key | flag | variable | type | default | meaning |\n|---|---|---|---|---|---|\n");
    for k in KEYS.iter() {
        let flag = match k.flag {
            Flag::Table(n) | Flag::Own(n) => format!("`--{n}`"),
            Flag::Switch(n) => format!("`--{n}` (sets `{}`)", k.example),
        };
        let row =
            [format!("`{}`", k.toml), flag, format!("`{}`", k.env), k.kind.into(), k.default_shown(), k.meaning.into()];
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
