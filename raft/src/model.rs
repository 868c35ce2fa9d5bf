//! The replicated domain model: what a task is, and how a node is addressed.
//!
//! These are the shapes stored in sled and carried inside Raft commands, so they follow the
//! encoding rules of [`crate::codec`]: no `serde_json::Value` (task parameters are kept as JSON
//! *text*), no flattening or skipping, times as Unix milliseconds (`*_ms`). The REST layer renders
//! its own views of them; changing a field here is a storage-format change (see
//! [`crate::state::StoredTask`] for the envelope).

use serde::{Deserialize, Serialize};

use crate::schedule::DstPolicy;

mod executor;
mod token;
pub use executor::{Attempt, Binding, Executor, ExecutorSpec, ExecutorStatus};
pub use token::{token_hash, Role, Token, TokenScope, TokenSpec};

/// How a node is reached: its Raft RPC listener and its REST API listener. Replicated inside the
/// membership config, so every node knows every other node's addresses without a registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `host:port` of the REST API / UI.
    pub http_addr: String,
    /// `host:port` of the Raft RPC listener.
    pub raft_addr: String,
}

impl std::fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http={} raft={}", self.http_addr, self.raft_addr)
    }
}

/// A task's lifecycle state. `Deleted` is a soft delete: the record stays, the name is freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TaskStatus {
    Active,
    Paused,
    Deleted,
}

impl TaskStatus {
    /// One byte used in the status index key.
    pub fn code(self) -> u8 {
        match self {
            TaskStatus::Active => 1,
            TaskStatus::Paused => 2,
            TaskStatus::Deleted => 3,
        }
    }

    /// The wire/JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Active => "active",
            TaskStatus::Paused => "paused",
            TaskStatus::Deleted => "deleted",
        }
    }
}

/// What happens when a slot comes while an earlier run of the same task is still active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ExecutionMode {
    /// Every slot runs; runs may overlap.
    #[default]
    Parallel,
    /// The slot waits in a bounded FIFO and runs after the active run.
    Sequential,
    /// The slot is recorded as `skipped` (reason `overlap`).
    Skip,
    /// The active run is stopped and the new one starts.
    Replace,
}

/// How an execution picks an executor instance within the task's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BalanceStrategy {
    #[default]
    RoundRobin,
    WeightedRoundRobin,
    Random,
    Sticky,
    LeastLoaded,
}

/// What to do with slots that passed while no leader could fire them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MisfirePolicy {
    /// One catch-up execution for the latest missed slot; the others are recorded `missed`.
    #[default]
    FireOnce,
    /// Every missed slot within `catchup_window_seconds` runs.
    FireAll,
    /// Every missed slot is recorded `missed`.
    Skip,
}

/// Everything a user chooses about a task. Validated by the API before it is proposed; `apply`
/// trusts the shape but still refuses what would break an invariant (e.g. a taken name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Unique among non-deleted tasks; not all digits (so a path segment is either an id or a name).
    pub name: String,
    pub description: String,
    pub cron_expression: String,
    /// IANA zone name the expression is evaluated in.
    pub timezone: String,
    /// A JSON object, kept as text because bincode cannot carry `serde_json::Value`.
    pub parameters: String,
    pub execution_mode: ExecutionMode,
    pub load_balance_strategy: BalanceStrategy,
    pub max_retry: u32,
    pub timeout_seconds: u32,
    /// The executor group this task runs on.
    pub executor: String,
    pub misfire_policy: MisfirePolicy,
    /// How far back `fire_all` catches up.
    pub catchup_window_seconds: u64,
    pub dst_policy: DstPolicy,
}

impl TaskSpec {
    /// The executor group of a task that names none (the node's embedded agent serves it).
    pub const DEFAULT_EXECUTOR: &'static str = "local";
    pub const DEFAULT_MAX_RETRY: u32 = 3;
    pub const DEFAULT_TIMEOUT_SECONDS: u32 = 300;
    pub const DEFAULT_CATCHUP_WINDOW_SECONDS: u64 = 3600;

    /// A task named `name` on `cron_expression` with every other field at the product's
    /// default: UTC, no description, empty parameters, `parallel`, round robin, 3 retries,
    /// 300 s timeout, group `local`, `fire_once` within an hour, DST `shift`. The one place these
    /// defaults live: `POST /api/v1/tasks` starts from it, and so do the tests. Not validated.
    pub fn new(name: &str, cron_expression: &str) -> TaskSpec {
        TaskSpec {
            name: name.into(),
            description: String::new(),
            cron_expression: cron_expression.into(),
            timezone: "UTC".into(),
            parameters: "{}".into(),
            execution_mode: ExecutionMode::default(),
            load_balance_strategy: BalanceStrategy::default(),
            max_retry: Self::DEFAULT_MAX_RETRY,
            timeout_seconds: Self::DEFAULT_TIMEOUT_SECONDS,
            executor: Self::DEFAULT_EXECUTOR.into(),
            misfire_policy: MisfirePolicy::default(),
            catchup_window_seconds: Self::DEFAULT_CATCHUP_WINDOW_SECONDS,
            dst_policy: Default::default(),
        }
    }
}

/// A task as replicated: the spec plus what the cluster tracks about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Assigned in apply from a replicated counter: dense, deterministic, never reused.
    pub id: u64,
    pub spec: TaskSpec,
    pub status: TaskStatus,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Bumped by every change; `PUT` may name the version it expects.
    pub version: u64,
    /// Slots at or before this instant are never fired again (set to the create/update/resume
    /// time, and advanced by every fire). The exactly-once guard of the scheduler.
    pub fire_watermark_ms: i64,
}

/// Where an execution is in its life. `Pending` and `Running` are *active*; the rest are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ExecutionStatus {
    Pending,
    Running,
    Success,
    Failed,
    Timeout,
    /// The slot did not run because of the execution mode (reason `overlap`, `queue_full`).
    Skipped,
    Cancelled,
    /// The slot passed while no leader could fire it, and the misfire policy did not run it.
    Missed,
}

impl ExecutionStatus {
    pub const ALL: [ExecutionStatus; 8] = [
        ExecutionStatus::Pending,
        ExecutionStatus::Running,
        ExecutionStatus::Success,
        ExecutionStatus::Failed,
        ExecutionStatus::Timeout,
        ExecutionStatus::Skipped,
        ExecutionStatus::Cancelled,
        ExecutionStatus::Missed,
    ];

    /// One byte used in index keys.
    pub fn code(self) -> u8 {
        self as u8 + 1
    }

    pub fn is_active(self) -> bool {
        matches!(self, ExecutionStatus::Pending | ExecutionStatus::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "pending",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Success => "success",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Timeout => "timeout",
            ExecutionStatus::Skipped => "skipped",
            ExecutionStatus::Cancelled => "cancelled",
            ExecutionStatus::Missed => "missed",
        }
    }
}

/// Why an execution exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Trigger {
    /// A slot fired on time (or late within the misfire threshold).
    Schedule,
    /// `POST /tasks/{id}/trigger`.
    Manual,
    /// A new run after a failed attempt (issue: executors).
    Retry,
    /// A slot that misfired and that the misfire policy runs anyway.
    Catchup,
}

/// Why a slot did not run (or stopped), for records that say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Reason {
    /// `skip` mode: an earlier run was still active.
    Overlap,
    /// The slot passed while no leader could fire it.
    Misfire,
    /// `sequential` mode: the slot waits for the active run.
    Queued,
    /// `sequential` mode: the wait queue was full.
    QueueFull,
    /// `replace` mode: a newer slot replaced this run.
    Replaced,
    /// No online, healthy executor could take the run.
    NoHealthyExecutor,
    /// The task was paused or deleted while the run waited.
    Paused,
    /// `POST /executions/{id}/stop`.
    Stopped,
    /// The task was deleted before the run was dispatched.
    TaskDeleted,
    /// The run did not end within `timeout_seconds`.
    TimedOut,
    /// The executor answered the dispatch with an error.
    ExecutorRefused,
    /// The executor reported the run failed.
    ExecutorFailed,
    /// The task was paused, deleted or changed after the slot was due but before any leader had
    /// fired it (`missed`; added in session 10, so it is the last variant: stored records keep
    /// their encoding).
    CutOff,
}

/// One run of a task (or one slot that did not run), as replicated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// Assigned in apply from a replicated counter.
    pub id: u64,
    pub task_id: u64,
    /// The slot (UTC ms); for manual runs, the time of the request.
    pub scheduled_ms: i64,
    /// When the fire (or trigger) was proposed: the proposer's clock.
    pub created_ms: i64,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub status: ExecutionStatus,
    pub trigger: Trigger,
    pub reason: Option<Reason>,
    /// `sequential` mode: waiting in the task's FIFO for the active run to end.
    pub queued: bool,
    /// Parameter overrides of a manual trigger (JSON object text), else empty.
    pub parameters: String,
    /// Who asked (manual triggers).
    pub requested_by: String,
    pub result: String,
    pub logs: String,
    pub retry_count: u32,
    /// The log index of the entry that created this record: fencing data for executors.
    pub log_index: u64,
    /// How many slots this record stands for: 1, or more for one record summarizing a long
    /// run of missed slots (bounded backlog, see `FireBatch`).
    pub slot_count: u64,
    /// The latest attempts, oldest first (at most [`ATTEMPTS_KEPT`]; `attempt_count` counts all).
    pub attempts: Vec<Attempt>,
    /// Attempts made so far, including ones no longer kept in `attempts`.
    pub attempt_count: u32,
    /// A pending execution waiting out a retry backoff is not dispatched before this instant.
    pub not_before_ms: i64,
}

/// Most attempts kept in one execution record (the oldest are dropped first).
pub const ATTEMPTS_KEPT: usize = 16;

impl Execution {
    /// The attempt that is (or was last) under way.
    pub fn current_attempt(&self) -> Option<&Attempt> {
        self.attempts.last()
    }
}
