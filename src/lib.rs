//! `cronraft`: a Raft-replicated distributed cron — the node and the command line.
//!
//! # Layout
//!
//! - [`node`]: [`node::Node::start`], the one wiring function (storage → Raft → listeners), used by
//!   `cronraft serve` and by the tests.
//! - [`scheduler`]: the leader-only cron loop (timers → one `Fire` entry per tick).
//! - [`dispatcher`]: the leader-only dispatcher (attempts → executors, timeouts, stops).
//! - [`health`]: the leader-only health checker (only transitions go through Raft).
//! - [`retention`]: the leader-only purge of old execution records.
//! - [`http_server`]: serving a router until the stop signal (node and agent listeners).
//! - [`tls`]: `[tls]`, the reloaded certificate, each listener's acceptor, `certs init`.
//! - [`leadership`]: running a service only while this node leads.
//! - [`propose`]: how the leader services propose an entry (timeout, error classes).
//! - [`clock`]: the leader services' wall clock (`now_ms`) and entry seeds.
//! - [`join`]: the `--join` flow (learner, catch up, promote).
//! - [`fsperm`]: the data directory `0700`, its files `0600`.
//! - [`logging`]: `--log-format text|json`, `CRONRAFT_LOG`.
//! - [`config`]: defaults → TOML file → `CRONRAFT_*` env → flags, with `validate()`.
//! - [`agent`]: the bundled executor agent (`cronraft agent`): runs shell commands and HTTP
//!   requests for the cluster and reports back.
//! - [`cli`], [`commands`]: the clap command line and the client commands.
//!
//! The replicated state is in `cronraft-raft`; the REST surface and client in `cronraft-api`.

pub mod address_keeper;
pub mod admin_token;
pub mod agent;
pub mod backup_schedule;
pub mod cli;
pub mod clock;
pub mod cluster_naming;
pub mod commands;
pub mod config;
pub mod dispatcher;
pub mod fsperm;
pub mod health;
pub mod http_server;
pub mod join;
pub mod leadership;
pub mod logging;
pub mod node;
pub mod notifier;
pub mod propose;
pub mod retention;
pub mod scheduler;
pub mod storage_guard;
#[cfg(test)]
mod test_raft;
pub mod tls;

pub use config::Config;
pub use node::Node;
