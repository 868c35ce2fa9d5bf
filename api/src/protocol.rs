//! The executor protocol (DESIGN §6): what a node sends to an executor and what an executor sends
//! back. Shared by the dispatcher, the bundled agent and test executors, so the two sides cannot
//! drift apart.
//!
//! - `POST {base_url}/execute` with an [`ExecuteRequest`]; any 2xx means "accepted" (the run goes
//!   on in the background and ends with a callback). The executor deduplicates by
//!   `(execution_id, attempt)`: dispatch is at-least-once.
//! - `POST {base_url}/stop` with a [`StopRequest`]; 2xx whether or not the run was known.
//! - `GET {health_check_url}`: 2xx = healthy.
//! - `POST {node}/api/v1/executions/{id}/callback` with a [`CallbackRequest`], to any node in
//!   `callback_urls` (a follower forwards it). Retrying with the same `Idempotency-Key` is safe.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of `POST {base_url}/execute`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExecuteRequest {
    pub execution_id: u64,
    /// 1 for the first attempt; each retry or failover is a new attempt.
    pub attempt: u32,
    pub task_id: u64,
    pub task_name: String,
    /// The task's parameters with a manual trigger's overrides merged in.
    pub parameters: serde_json::Value,
    pub timeout_seconds: u32,
    /// The slot this run is for (a manual run: when it was asked for).
    pub scheduled_time: DateTime<Utc>,
    /// Fencing: the Raft term and log index of the committed entry that made this attempt. An
    /// executor that has seen a higher term for the same execution may refuse a lower one.
    pub term: u64,
    pub log_index: u64,
    /// Every node's API base URL (`http://host:port`); report to any of them.
    pub callback_urls: Vec<String>,
    /// Proves a callback is about this attempt; send it back in [`CallbackRequest`].
    pub callback_token: String,
}

/// The body of `POST {base_url}/stop`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StopRequest {
    pub execution_id: u64,
    /// The attempt to stop (0 = whatever attempt of this execution is running).
    #[serde(default)]
    pub attempt: u32,
    /// `stopped` (a user asked), `timeout`, or `replaced`.
    #[serde(default)]
    pub reason: String,
}

/// What an executor reports about a run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatus {
    /// Still going (optional progress report: start time, logs so far).
    Running,
    Success,
    Failed,
    Timeout,
    /// The executor stopped the run (after a stop request).
    Cancelled,
}

/// The body of `POST /api/v1/executions/{id}/callback`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackRequest {
    /// The attempt being reported (from [`ExecuteRequest::attempt`]).
    pub attempt: u32,
    /// From [`ExecuteRequest::callback_token`].
    pub callback_token: String,
    pub status: CallbackStatus,
    /// Any JSON (an object in the seeds' example); stored as text, at most 64 KiB.
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    /// Output of the run; the node keeps the last 64 KiB.
    #[serde(default)]
    pub logs: Option<String>,
    #[serde(default)]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub end_time: Option<DateTime<Utc>>,
    /// The exit code of a `command` run, or the HTTP status of an `http` run.
    #[serde(default)]
    pub exit_code: Option<i32>,
}

/// Most bytes of `logs` a node keeps per execution (the tail).
pub const LOGS_BYTES_MAX: usize = 64 * 1024;
/// Most bytes of `result` (as JSON text) a node accepts.
pub const RESULT_BYTES_MAX: usize = 64 * 1024;

/// A task to upsert and bind when an executor registers (seed 004's shape).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterTask {
    pub task_name: String,
    /// The cron expression (`cron_expression` is accepted too).
    #[serde(default, alias = "cron_expression")]
    pub cron: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub execution_mode: Option<cronraft_raft::model::ExecutionMode>,
    #[serde(default)]
    pub load_balance_strategy: Option<cronraft_raft::model::BalanceStrategy>,
    /// Seconds (`timeout_seconds` is accepted too).
    #[serde(default, alias = "timeout_seconds")]
    pub timeout: Option<u32>,
    #[serde(default)]
    pub max_retry: Option<u32>,
    /// The binding's weight for `weighted_round_robin` (default: the executor's weight).
    #[serde(default)]
    pub weight: Option<u32>,
    /// Higher priority instances are preferred while any of them is healthy (default 0).
    #[serde(default)]
    pub priority: Option<u32>,
}

/// The body of `POST /api/v1/executors/register`: an upsert keyed by `instance_id`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The executor group; tasks name it in `executor`.
    pub name: String,
    pub instance_id: String,
    /// `http://host:port` where `/execute` and `/stop` are served.
    pub base_url: String,
    /// Full URL answered with 2xx while healthy (default: `{base_url}/health`).
    #[serde(default)]
    pub health_check_url: Option<String>,
    /// Free-form JSON object; `capacity` (most concurrent attempts, 0 = unlimited), `weight`
    /// (default 1) and `region` are understood.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    #[serde(default)]
    pub tasks: Vec<RegisterTask>,
}
