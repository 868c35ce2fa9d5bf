//! The command line: `serve` (the default), and client commands for the cluster, tasks,
//! executors and executions.
//!
//! Client commands talk to any node (`--node`, env `CRONRAFT_NODE`, default the local default
//! node) and print tables for people, or JSON with `--json`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{split_list, Config, ConfigError};

#[derive(Debug, Parser)]
#[command(name = "cronraft", version, about = "A Raft-replicated distributed cron", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

// Parsed once per process: the size of the largest variant costs nothing worth a `Box`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node (the default when no command is given).
    Serve(ServeArgs),
    /// Cluster membership: status, add, promote, remove.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Tasks: create, list, get, update, delete, pause, resume, trigger, stats.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Run the bundled executor agent: shell commands and HTTP requests for a cluster.
    Agent(AgentArgs),
    /// Executors: list, get, status, remove.
    #[command(subcommand)]
    Executor(ExecutorCommand),
    /// Executions: list, get, stop.
    #[command(subcommand)]
    Execution(ExecutionCommand),
    /// API tokens (admin): create, list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Who changed what, newest first (admin).
    Audit(AuditArgs),
    /// Notifications: channels and rules (admin), delivery status.
    #[command(subcommand)]
    Notify(crate::commands::notify::NotifyCommand),
    /// TLS certificates: `init` makes a CA and a certificate per host.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Stream a backup of the whole state from a running node into a file (admin).
    Backup(BackupArgs),
    /// Seed a stopped, new node's data directory from a backup (a new one-node cluster).
    Restore(RestoreArgs),
    /// Make a stopped survivor of a lost majority the only member of a new one-node cluster.
    Recover(RecoverArgs),
    /// The node configuration: check it as `serve` would load it; print the table of its keys.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `cronraft backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup file to write (written as FILE.partial, renamed once it checks out).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub target: Target,
}

/// `cronraft restore`: the node's own configuration (file, variables, flags) says which node
/// and data directory; the directory must be empty or absent.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file (from `cronraft backup` or the scheduled backups).
    #[arg(long)]
    pub from: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub node: ServeArgs,
}

/// `cronraft recover`: the node's own configuration says which node and data directory. The
/// node must be stopped.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Required: says that the rest of the cluster is gone for good (see
    /// docs/operating/recovery.md). Without it nothing is changed.
    #[arg(long)]
    pub force_new_cluster: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub node: ServeArgs,
}

// Parsed once per process, as `Command`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load the configuration exactly as `serve` would (file, CRONRAFT_* variables, flags), check
    /// it and the files it names, and print it; exit 1 naming every problem.
    Check(ServeArgs),
    /// Print the table of every configuration key (markdown, as in docs/reference/cli.md).
    Table,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once, alone on standard output.
    Create {
        /// Unique name (A-Z a-z 0-9 . _ -), shown in the audit list and `requested_by`.
        #[arg(long)]
        name: String,
        /// read, operate, executor or admin.
        #[arg(long)]
        role: String,
        /// Limit it to tasks of these executor groups (repeat or comma-separate).
        #[arg(long = "group", value_delimiter = ',')]
        groups: Vec<String>,
        /// Limit it to tasks whose name starts with one of these.
        #[arg(long = "prefix", value_delimiter = ',')]
        prefixes: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a token: it stops working on each node as soon as that node applies the change.
    Revoke {
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub paging: Paging,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// This node's Raft id (unique in the cluster).
    #[arg(long)]
    pub node_id: Option<u64>,
    /// REST API / UI address [default: 127.0.0.1:7340].
    #[arg(long)]
    pub http_addr: Option<String>,
    /// Raft RPC address [default: 127.0.0.1:7341].
    #[arg(long)]
    pub raft_addr: Option<String>,
    /// API address other hosts connect to (required when --http-addr is 0.0.0.0 or [::]);
    /// a host name is resolved at each connection.
    #[arg(long)]
    pub advertise_http_addr: Option<String>,
    /// Raft address other nodes connect to (required when --raft-addr is a wildcard).
    #[arg(long)]
    pub advertise_raft_addr: Option<String>,
    /// Where the embedded agent listens [default: the API's IP, a free port].
    #[arg(long)]
    pub agent_listen: Option<String>,
    /// Data directory [default: ./cronraft-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Join the cluster through these members' API URLs (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub join: Vec<String>,
    /// TOML configuration file (flags override it; `CRONRAFT_*` variables override it too).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Do not run the embedded agent (group `local`).
    #[arg(long)]
    pub no_agent: bool,
    /// Turn auth on with this cluster secret (the same file on every node, 32+ bytes).
    #[arg(long)]
    pub cluster_secret_file: Option<PathBuf>,
    /// Take the first admin token from this file instead of writing a new one to the data dir.
    #[arg(long)]
    pub bootstrap_token_file: Option<PathBuf>,
    /// Listen beyond loopback without authentication (refused otherwise).
    #[arg(long)]
    pub insecure: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// The keys without a flag above, made from the key table (`crate::config::keys`).
    #[command(flatten)]
    pub settings: crate::config::flags::ConfigFlags,
}

/// TLS files of `serve` and `agent` (each also `[tls]` in the config file and `CRONRAFT_TLS_*`).
#[derive(Debug, Args, Default, Clone)]
pub struct TlsArgs {
    /// PEM certificate (chain) served on every listener and presented to other nodes; turns TLS
    /// on (every node of the cluster needs one).
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// The certificate's PEM private key (PKCS#8, RSA or SEC1).
    #[arg(long)]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificate(s): trusted besides the system roots, and the roots client
    /// certificates are checked against.
    #[arg(long)]
    pub tls_ca_file: Option<PathBuf>,
}

impl TlsArgs {
    /// Sets the files given as flags over `settings`.
    pub fn apply(&self, settings: &mut crate::tls::TlsSettings) {
        if let Some(v) = &self.tls_cert_file {
            settings.cert_file = Some(v.clone());
        }
        if let Some(v) = &self.tls_key_file {
            settings.key_file = Some(v.clone());
        }
        if let Some(v) = &self.tls_ca_file {
            settings.ca_file = Some(v.clone());
        }
    }
}

impl ServeArgs {
    /// Defaults, then the file, then the environment, then flags; then `validate()`.
    pub fn to_config(&self, env: impl Iterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let (c, mut refused) = self.load(env)?;
        if !refused.is_empty() {
            return Err(refused.remove(0));
        }
        c.validate()?;
        Ok(c)
    }

    /// Defaults, then the file, then the environment, then flags, unchecked; with the variables
    /// and flags whose values were refused (and left out). Fails only on the file.
    pub fn load(&self, env: impl Iterator<Item = (String, String)>) -> Result<(Config, Vec<ConfigError>), ConfigError> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let mut refused: Vec<ConfigError> = env.filter_map(|var| c.apply_env(std::iter::once(var)).err()).collect();
        if self.no_agent {
            c.agent.enabled = false;
        }
        if let Some(v) = &self.advertise_http_addr {
            c.advertise_http_addr = Some(v.clone());
        }
        if let Some(v) = &self.advertise_raft_addr {
            c.advertise_raft_addr = Some(v.clone());
        }
        if let Some(v) = &self.agent_listen {
            c.agent.listen = Some(v.clone());
        }
        if let Some(v) = self.node_id {
            c.node_id = v;
        }
        if let Some(v) = &self.http_addr {
            c.http_addr = v.clone();
        }
        if let Some(v) = &self.raft_addr {
            c.raft_addr = v.clone();
        }
        if let Some(v) = &self.data_dir {
            c.data_dir = v.clone();
        }
        if !self.join.is_empty() {
            c.join = self.join.iter().flat_map(|j| split_list(j)).collect();
        }
        if let Some(v) = &self.cluster_secret_file {
            c.auth.cluster_secret_file = Some(v.clone());
        }
        if let Some(v) = &self.bootstrap_token_file {
            c.auth.bootstrap_token_file = Some(v.clone());
        }
        if self.insecure {
            c.auth.insecure = true;
        }
        self.tls.apply(&mut c.tls);
        refused.extend(self.settings.apply(&mut c));
        Ok((c, refused))
    }
}

/// `cronraft agent`: an executor that registers with the cluster and runs its jobs.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Executor group to serve; tasks name it in `executor`.
    #[arg(long)]
    pub name: String,
    /// API URL(s) of the cluster's nodes, comma-separated.
    #[arg(long, env = "CRONRAFT_CLUSTER", value_delimiter = ',', required = true)]
    pub cluster: Vec<String>,
    /// Where to listen for the cluster's requests (IP:port; port 0 picks one).
    #[arg(long, default_value = crate::agent::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// Unique id in the cluster [default: NAME-HOSTNAME-PORT].
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Base URL the cluster should use to reach this agent [default: http://LISTEN].
    #[arg(long)]
    pub advertise_url: Option<String>,
    /// Most concurrent runs (0 = unlimited).
    #[arg(long, default_value_t = crate::agent::DEFAULT_CAPACITY)]
    pub capacity: u32,
    /// An `executor` token, when the cluster has auth on (prefer CRONRAFT_TOKEN or --token-file).
    #[arg(long, env = "CRONRAFT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the `executor` token.
    #[arg(long, env = "CRONRAFT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Environment variables `command` jobs get from the agent (comma-separated; `NAME*` is a
    /// prefix) [default: PATH,HOME,USER,LOGNAME,SHELL,LANG,LANGUAGE,LC_*,TZ,TMPDIR,TERM].
    #[arg(long, value_delimiter = ',')]
    pub env_allow: Option<Vec<String>>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Log lines on stderr: text, or json (one object per line).
    #[arg(long, env = "CRONRAFT_LOG_FORMAT", default_value = "text")]
    pub log_format: crate::logging::LogFormat,
}

impl AgentArgs {
    /// The agent's configuration; TLS from `CRONRAFT_TLS_*` in `env`, then the flags (its files
    /// are read here, so a bad one is reported before the agent starts).
    pub fn to_config(
        &self,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<crate::agent::AgentConfig, ConfigError> {
        let cluster = self.cluster.iter().flat_map(|c| split_list(c)).collect();
        let mut c = crate::agent::AgentConfig::new(self.name.clone(), cluster);
        c.listen = self.listen;
        c.instance_id = self.instance_id.clone().unwrap_or_default();
        c.advertise_url = self.advertise_url.clone();
        c.capacity = self.capacity;
        c.token = read_token(self.token.as_deref(), self.token_file.as_deref()).map_err(ConfigError::Invalid)?;
        if let Some(allow) = &self.env_allow {
            c.env_allow = allow.clone();
        }
        let mut tls = crate::tls::TlsSettings::default();
        for (name, value) in env.filter(|(n, _)| n.starts_with("CRONRAFT_TLS_")) {
            tls.apply_env(&name, &value).map_err(|reason| ConfigError::Env { name, value, reason })?;
        }
        self.tls.apply(&mut tls);
        c.tls = crate::tls::Tls::load(&tls)?;
        Ok(c)
    }
}

/// Which page of a list to show.
#[derive(Debug, Args, Clone, Copy)]
pub struct Paging {
    /// Page number, from 1.
    #[arg(long, default_value_t = 1)]
    pub page: u64,
    /// Items per page (at most 500).
    #[arg(long, default_value_t = 20)]
    pub page_size: u64,
}

/// Where client commands send requests, and how they print.
#[derive(Debug, Args, Clone)]
pub struct Target {
    /// API URL(s) of any node(s), comma-separated.
    #[arg(long, env = "CRONRAFT_NODE", default_value = "http://127.0.0.1:7340", global = true)]
    pub node: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// API token, when the cluster has auth on (prefer CRONRAFT_TOKEN or --token-file: a flag shows in `ps`).
    #[arg(long, env = "CRONRAFT_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// File holding the API token (e.g. the first node's `<data-dir>/admin.token`).
    #[arg(long, env = "CRONRAFT_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificate(s) to trust besides the system roots, for `https://` nodes.
    #[arg(long, env = "CRONRAFT_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
}

impl Target {
    /// The token to send: `--token`, else the contents of `--token-file`, else none.
    pub fn token(&self) -> Result<Option<String>, String> {
        read_token(self.token.as_deref(), self.token_file.as_deref())
    }
}

/// Most bytes of a token file read.
pub const TOKEN_FILE_BYTES_MAX: u64 = 4096;

/// A token given directly, or read from a file (surrounding whitespace dropped).
pub fn read_token(token: Option<&str>, file: Option<&std::path::Path>) -> Result<Option<String>, String> {
    if let Some(t) = token.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(Some(t.to_string()));
    }
    let Some(path) = file else { return Ok(None) };
    let shown = path.display();
    let len = std::fs::metadata(path).map_err(|e| format!("cannot read token file {shown}: {e}"))?.len();
    if len > TOKEN_FILE_BYTES_MAX {
        return Err(format!("token file {shown} is {len} bytes; a token is under {TOKEN_FILE_BYTES_MAX}"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read token file {shown}: {e}"))?;
    match text.trim() {
        "" => Err(format!("token file {shown} is empty")),
        t => Ok(Some(t.to_string())),
    }
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show the leader, term and every member with its indexes.
    Status(#[command(flatten)] Target),
    /// Add a node as a learner.
    Add {
        #[arg(long)]
        id: u64,
        #[arg(long)]
        http_addr: String,
        #[arg(long)]
        raft_addr: String,
        #[command(flatten)]
        target: Target,
    },
    /// Promote a caught-up learner to voter.
    Promote {
        id: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a node (voter or learner); removing the leader works.
    Remove {
        id: u64,
        #[command(flatten)]
        target: Target,
    },
}

/// Task fields shared by create and update; unset flags keep defaults (create) or values (update).
#[derive(Debug, Args, Clone, Default)]
pub struct TaskFields {
    #[arg(long)]
    pub name: Option<String>,
    /// Cron expression: 6 fields with seconds, 5-field crontab, @daily, @every 30s …
    #[arg(long = "cron")]
    pub cron_expression: Option<String>,
    /// IANA time zone (a new task defaults to UTC).
    #[arg(long)]
    pub timezone: Option<String>,
    /// Parameters as a JSON object.
    #[arg(long, alias = "parameters")]
    pub params: Option<String>,
    /// Shortcut for parameters {"command": CMD} (a shell command for the bundled agent).
    #[arg(long)]
    pub command: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// parallel | sequential | skip | replace
    #[arg(long)]
    pub mode: Option<String>,
    /// round_robin | weighted_round_robin | random | sticky | least_loaded
    #[arg(long)]
    pub strategy: Option<String>,
    #[arg(long)]
    pub max_retry: Option<u32>,
    #[arg(long = "timeout")]
    pub timeout_seconds: Option<u32>,
    /// Executor group (a new task defaults to `local`).
    #[arg(long)]
    pub executor: Option<String>,
    /// fire_once | fire_all | skip
    #[arg(long)]
    pub misfire: Option<String>,
    /// Request id for safe retries (default: generated by the server).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Shortcut for parameters {"http": {"url": URL}} (an HTTP request for the bundled agent).
    #[arg(long)]
    pub http_url: Option<String>,
    /// The method of --http-url (default GET, as the agent's).
    #[arg(long, requires = "http_url")]
    pub http_method: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Create a task (needs --name and --cron).
    Create {
        #[command(flatten)]
        fields: TaskFields,
        #[command(flatten)]
        target: Target,
    },
    /// List tasks.
    List {
        /// active | paused | deleted (default: active and paused)
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        target: Target,
    },
    /// Show one task (by id or name).
    Get {
        task: String,
        #[command(flatten)]
        target: Target,
    },
    /// Change a task's fields.
    Update {
        task: String,
        #[command(flatten)]
        fields: TaskFields,
        /// Only apply if the task is at this version.
        #[arg(long)]
        version: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
    /// Soft-delete a task.
    Delete {
        task: String,
        #[command(flatten)]
        target: Target,
    },
    /// Pause a task: no slot fires until it is resumed.
    Pause {
        task: String,
        #[command(flatten)]
        target: Target,
    },
    /// Resume a paused task.
    Resume {
        task: String,
        #[command(flatten)]
        target: Target,
    },
    /// Run a task now (a manual execution), whatever its schedule and mode.
    Trigger {
        task: String,
        /// Parameter overrides for this run, as a JSON object.
        #[arg(long, alias = "params")]
        parameters: Option<String>,
        /// Who asks (recorded on the execution; default `cli`).
        #[arg(long)]
        requested_by: Option<String>,
        /// Request id for safe retries (default: generated by the server).
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Success rates, durations and schedule conformance over 24 h, 7 d and 90 d.
    Stats {
        task: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExecutorCommand {
    /// List executor instances.
    List {
        /// Only this group.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        target: Target,
    },
    /// Show one executor (by id or instance_id).
    Get {
        executor: String,
        #[command(flatten)]
        target: Target,
    },
    /// Set an executor's status: online (receives work), offline or maintenance.
    Status {
        executor: String,
        /// online | offline | maintenance
        status: String,
        /// Why (recorded on the executor).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Deregister an executor (its bindings go; running attempts finish or time out).
    Remove {
        executor: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExecutionCommand {
    /// List executions, newest first.
    List {
        /// Only this task (id or name).
        #[arg(long)]
        task: Option<String>,
        /// pending | running | success | failed | timeout | skipped | cancelled | missed
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        target: Target,
    },
    /// Show one execution with its attempts and logs.
    Get {
        id: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Stop an active execution (it ends cancelled).
    Stop {
        id: u64,
        /// Who asks (default `cli`).
        #[arg(long)]
        requested_by: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a CA (unless DIR has one) and a certificate and key per host, for server and client
    /// use; nothing is overwritten without --force, and the CA never is.
    Init {
        /// Hosts, comma-separated: each a DNS name or an IP address; join several names of one
        /// host with + (node1+10.0.0.1). The first name names the files.
        #[arg(long, value_delimiter = ',', required = true)]
        hosts: Vec<String>,
        /// Where to write (created 0700 if missing).
        #[arg(long, default_value = "cronraft-certs")]
        out: PathBuf,
        /// Replace the hosts' existing certificates and keys (re-issue; the CA stays).
        #[arg(long)]
        force: bool,
        /// How long the host certificates are valid.
        #[arg(long, default_value_t = crate::tls::init::HOST_DAYS_DEFAULT)]
        days: u32,
    },
}
