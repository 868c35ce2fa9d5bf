//! The JSON shapes of the REST API, shared by the server and the typed [`crate::client`].
//!
//! Field names follow the seeds (`cron_expression`, `execution_mode`, …). Times are RFC 3339 in
//! UTC. These are views: the replicated shapes live in `cronraft_raft::model`, and converting
//! between them is where validation happens ([`crate::validate`]).

use chrono::{DateTime, Utc};
use cronraft_raft::model::{BalanceStrategy, ExecutionMode, MisfirePolicy, TaskStatus};
use cronraft_raft::schedule::DstPolicy;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod auth;
mod executor;
mod notify;
mod stats;
pub use auth::{AuditView, CreatedTokenView, TokenInput, TokenView};
pub use executor::{ExecutorStatusInput, ExecutorView, RegisteredView, StopInput};
pub use notify::{ChannelInput, ChannelView, NotificationsView, PendingView, RuleInput, RuleView};
pub use stats::{ClusterStatsView, DailyStatsView, LastHourView, StatsWindows, TaskStatsView, WindowStatsView};

/// Body of `POST /tasks` (every field but `name` and `cron_expression` has a default) and of
/// `PUT /tasks/{id}` (every field optional: only the given ones change).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// A JSON object handed to the executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_mode: Option<ExecutionMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balance_strategy: Option<BalanceStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misfire_policy: Option<MisfirePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catchup_window_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_policy: Option<DstPolicy>,
    /// `PUT` only: the version the change is based on (optimistic concurrency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// A task as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct TaskView {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub cron_expression: String,
    pub timezone: String,
    pub parameters: serde_json::Value,
    pub execution_mode: ExecutionMode,
    pub load_balance_strategy: BalanceStrategy,
    pub max_retry: u32,
    pub timeout_seconds: u32,
    pub executor: String,
    pub misfire_policy: MisfirePolicy,
    pub catchup_window_seconds: u64,
    pub dst_policy: DstPolicy,
    pub status: TaskStatus,
    pub version: u64,
    /// The next slot after now (null while paused or deleted).
    pub next_fire_time: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Who made the last change (a token's name; `anonymous` while auth is off; empty for a
    /// change older than the audit list or made by a registration).
    #[serde(default)]
    pub updated_by: String,
    /// The task's execution that most recently reached a final status (null before the first
    /// one ends; null too, until the next one ends, for a task whose runtime record was last
    /// written by a build from before this field).
    #[serde(default)]
    pub last_result: Option<LastResultView>,
}

/// A task's latest final execution.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct LastResultView {
    /// The execution (it may since have been purged by retention).
    pub execution_id: u64,
    /// `success`, `failed`, `timeout`, `cancelled`, `skipped` or `missed`.
    pub status: cronraft_raft::model::ExecutionStatus,
    pub ended_at: DateTime<Utc>,
}

/// One page of a listing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
}

/// One page of `GET /executions`: a [`Page`] whose `total` may be a lower bound.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExecutionPageView {
    pub items: Vec<ExecutionView>,
    /// Every match on all pages; a lower bound when `total_capped`.
    pub total: u64,
    /// With `trigger`, `from` or `to`, the listing reads at most 10,000 records and stops
    /// counting at 1,000 matches once the page is full: true when it stopped there, so more
    /// records may match than `total` says (and pages past it may be empty). Always false
    /// without those filters.
    #[serde(default)]
    pub total_capped: bool,
    pub page: u64,
    pub page_size: u64,
}

/// `GET /schedule/preview`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PreviewView {
    pub times: Vec<DateTime<Utc>>,
}

/// One node in `GET /cluster`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    pub id: u64,
    pub http_addr: String,
    pub raft_addr: String,
    /// `leader`, `follower`, `learner` (or `candidate` while an election runs).
    pub role: String,
    /// From the node itself; null when it did not answer.
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub reachable: bool,
}

/// `GET /cluster`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterView {
    /// The cluster's identity, as this node knows it (none until the first leader has named the
    /// cluster; a restore names a new one). Nodes refuse Raft RPCs from another cluster's nodes.
    pub cluster_id: Option<String>,
    pub leader_id: Option<u64>,
    pub term: u64,
    pub nodes: Vec<NodeView>,
}

/// A node's own view of itself (`GET /cluster/self`), used to fill [`NodeView`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SelfView {
    pub id: u64,
    pub state: String,
    pub term: u64,
    pub leader_id: Option<u64>,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// The cluster identity this node knows (see [`ClusterView::cluster_id`]).
    #[serde(default)]
    pub cluster_id: Option<String>,
}

/// Body of `POST /cluster/nodes`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddNodeInput {
    pub id: u64,
    pub http_addr: String,
    pub raft_addr: String,
}

/// Answer to a membership change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MembershipChangeView {
    pub node_id: u64,
    pub log_index: u64,
}

/// `GET /cluster/digest`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DigestView {
    pub node_id: u64,
    pub applied_index: u64,
    /// Over every replicated key and value: equal on nodes at the same applied index.
    pub digest: String,
    /// Over every key but the two that place the state in the Raft log (`m/applied`,
    /// `m/membership`): a restored cluster's equals its backup's until it applies anything new.
    #[serde(default)]
    pub data_digest: String,
}

/// The error body of every non-2xx answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// Machine code (stable, snake_case) and a sentence for people.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// Header carrying the Raft log index of the entry a write produced.
pub const LOG_INDEX_HEADER: &str = "x-cronraft-log-index";
/// Header naming the request id of a write (echoed back, or generated when absent).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// An execution as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ExecutionView {
    pub id: u64,
    pub task_id: u64,
    pub scheduled_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub status: cronraft_raft::model::ExecutionStatus,
    pub trigger: cronraft_raft::model::Trigger,
    pub reason: Option<cronraft_raft::model::Reason>,
    /// `sequential` mode: waiting for the active run to end.
    pub queued: bool,
    /// Parameter overrides of a manual trigger (null when none).
    pub parameters: Option<serde_json::Value>,
    pub requested_by: String,
    pub result: String,
    pub logs: String,
    pub retry_count: u32,
    /// Raft log index of the entry that created the record (fencing data).
    pub log_index: u64,
    /// Slots this record stands for (more than 1 only for a summarized run of missed slots).
    pub slot_count: u64,
    /// The latest attempts, oldest first (at most 16 are kept; `attempt_count` counts all).
    pub attempts: Vec<AttemptView>,
    pub attempt_count: u32,
    /// A pending execution waiting out a retry backoff is not dispatched before this instant
    /// (null otherwise).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One dispatch of an execution to one executor instance. The attempt's callback token is never
/// shown: only the executor it was sent to knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct AttemptView {
    /// 1-based, across retries and failovers.
    pub attempt: u32,
    /// 0 when no instance could be chosen (`no_healthy_executor`).
    pub executor_id: u64,
    pub instance_id: String,
    pub base_url: String,
    /// `running` until it ends; then `success`, `failed`, `timeout` or `cancelled`.
    pub status: cronraft_raft::model::ExecutionStatus,
    pub dispatched_at: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    /// Why it failed, when it did.
    pub error: String,
    /// Fencing data handed to the executor: the term and log index of the entry that made it.
    pub term: u64,
    pub log_index: u64,
}

/// Body of `POST /tasks/{id}/trigger` (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerInput {
    /// Overrides of the task's parameters for this run (a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
    /// Who asks (recorded on the execution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// `GET /scheduler/status`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SchedulerStatusView {
    pub node_id: u64,
    pub leader_id: Option<u64>,
    pub term: u64,
    /// Whether this node's scheduler runs (it leads).
    pub scheduler_running: bool,
    /// Active tasks with a timer on this node (0 unless it leads).
    pub timers: u64,
    pub active_tasks: u64,
    pub paused_tasks: u64,
    pub pending_executions: u64,
    pub running_executions: u64,
    /// Registered executor instances, those an operator set `online`, and those online and
    /// healthy (the ones that receive work).
    pub executors_total: u64,
    pub executors_online: u64,
    pub executors_healthy: u64,
    /// Recent fire lag measured by this node while leading: commit of the fire − the slot.
    #[schema(value_type = crate::openapi::LagSummarySchema)]
    pub fire_lag: crate::scheduler_metrics::LagSummary,
    /// The same slots' applied lag: this node's apply of the fire − the slot.
    #[serde(default)]
    #[schema(value_type = crate::openapi::LagSummarySchema)]
    pub fire_applied_lag: crate::scheduler_metrics::LagSummary,
    /// Per minute of the last 60, oldest first, the minutes in which this node fired slots or
    /// recorded missed ones while leading (empty on a node that does not lead).
    #[serde(default)]
    pub history: Vec<MinuteLagView>,
}

/// One minute of the leader's fires.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct MinuteLagView {
    /// The minute's start (wall clock of the commits counted in it).
    pub minute: DateTime<Utc>,
    /// Slots in the fire entries committed that minute.
    pub fires: u64,
    /// Their fire lag (commit − slot), 50th and 99th percentile, in ms: the upper end of a
    /// histogram bucket (within 1/16 of the value, and never above the minute's largest lag);
    /// 0 without fires.
    pub p50_ms: u64,
    pub p99_ms: u64,
    /// Slots those entries recorded `missed`.
    pub missed: u64,
}
