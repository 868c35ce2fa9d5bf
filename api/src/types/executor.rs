//! The JSON shapes of `/api/v1/executors` and of stopping an execution.
//!
//! The registration body itself is [`crate::protocol::RegisterRequest`]: it belongs to the
//! executor protocol, shared with the bundled agent. What the API answers lives here.

use chrono::{DateTime, Utc};
use cronraft_raft::model::ExecutorStatus;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An executor instance as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ExecutorView {
    /// Assigned by the cluster; stable across re-registrations of the same `instance_id`.
    pub id: u64,
    /// The group; tasks name it in `executor`.
    pub name: String,
    pub instance_id: String,
    pub base_url: String,
    pub health_check_url: String,
    /// The JSON object the instance registered with.
    pub metadata: serde_json::Value,
    /// Most concurrent attempts (0 = unlimited), from `metadata.capacity`.
    pub capacity: u32,
    /// Share under `weighted_round_robin`, from `metadata.weight` (default 1).
    pub weight: u32,
    /// `online`, `offline` or `maintenance`, as an operator set it.
    pub status: ExecutorStatus,
    /// Why the status was set (empty after registration).
    pub status_reason: String,
    /// Kept by the leader's health checker.
    pub is_healthy: bool,
    /// Consecutive failed checks at the last health transition.
    pub health_check_failures: u32,
    /// The check that caused the last health transition (null before any).
    pub last_health_check: Option<DateTime<Utc>>,
    /// Attempts running on this instance now (the `least_loaded` measure).
    pub running_attempts: u64,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Answer of `POST /executors/register`: the instance, and the tasks it upserted and bound, in
/// the order of the request's `tasks`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct RegisteredView {
    pub executor: ExecutorView,
    pub task_ids: Vec<u64>,
    /// With auth on: the key (hex) the cluster signs this instance's `/execute` and `/stop`
    /// with; the instance refuses requests not signed with it. Absent with auth off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    /// With auth on: every key the instance should accept, `signing_key` first (more than one
    /// while the cluster secret is being rotated). Empty with auth off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<String>,
}

/// Body of `PUT /executors/{id}/status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutorStatusInput {
    /// `online`, `offline` or `maintenance`.
    pub status: String,
    /// Why (at most 512 characters); recorded on the executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Body of `POST /executions/{id}/stop` (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopInput {
    /// Who asks (recorded on the execution when it has no `requested_by` yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}
