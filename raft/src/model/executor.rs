//! The replicated executor registry's shapes: instances, their groups and health, and the
//! bindings that tie a task to particular instances.
//!
//! Like the rest of [`crate::model`], these are stored in sled and carried in commands, so they
//! keep to bincode's rules (metadata is JSON *text*; times are Unix milliseconds).

use serde::{Deserialize, Serialize};

/// Whether an instance may receive work, as an operator set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ExecutorStatus {
    Online,
    Offline,
    Maintenance,
}

impl ExecutorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorStatus::Online => "online",
            ExecutorStatus::Offline => "offline",
            ExecutorStatus::Maintenance => "maintenance",
        }
    }
}

/// What an instance says about itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorSpec {
    /// The group; tasks name it in `executor`.
    pub name: String,
    /// Unique; registering the same `instance_id` again updates the record.
    pub instance_id: String,
    /// `http://host:port`: `/execute` and `/stop` live under it.
    pub base_url: String,
    pub health_check_url: String,
    /// A JSON object, as text.
    pub metadata: String,
    /// Most concurrent attempts (from `metadata.capacity`); 0 = unlimited.
    pub capacity: u32,
    /// Share under `weighted_round_robin` (from `metadata.weight`, default 1).
    pub weight: u32,
}

/// An executor instance as replicated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Executor {
    /// Assigned in apply from a replicated counter; stable across re-registrations.
    pub id: u64,
    pub spec: ExecutorSpec,
    pub status: ExecutorStatus,
    /// Why an operator set the status (empty when it registered).
    pub status_reason: String,
    /// Kept by the leader's health checker; only transitions are replicated, and a dispatch
    /// that cannot connect clears it at once.
    pub is_healthy: bool,
    /// Consecutive failed checks at the last replicated transition.
    pub health_check_failures: u32,
    pub last_health_check_ms: Option<i64>,
    pub registered_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Executor {
    /// Whether dispatch may choose it.
    pub fn is_available(&self) -> bool {
        self.status == ExecutorStatus::Online && self.is_healthy
    }
}

/// A task ↔ instance binding. A task with bindings runs only on bound instances of its group;
/// among the available ones, those with the highest `priority` are chosen from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub task_id: u64,
    pub executor_id: u64,
    /// Share under `weighted_round_robin` (0 = the executor's own weight).
    pub weight: u32,
    pub priority: u32,
}

/// One dispatch of an execution to one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based, across retries and failovers.
    pub number: u32,
    /// 0 when no instance could be chosen (`no_healthy_executor`).
    pub executor_id: u64,
    pub instance_id: String,
    pub base_url: String,
    pub dispatched_ms: i64,
    pub end_ms: Option<i64>,
    /// `running` until it ends; then `success`, `failed`, `timeout` or `cancelled`.
    pub status: crate::model::ExecutionStatus,
    /// Fencing: term and log index of the entry that made the attempt.
    pub term: u64,
    pub log_index: u64,
    /// What a callback for this attempt must present.
    pub callback_token: String,
    /// Why it failed, when it did (dispatch error, executor's refusal, timeout…).
    pub error: String,
}
