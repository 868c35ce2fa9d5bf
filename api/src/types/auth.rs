//! The JSON shapes of `/api/v1/tokens` and `/api/v1/audit`.

use chrono::{DateTime, Utc};
use cronraft_raft::model::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of `POST /tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    /// Unique, 1 to 64 of `A-Z a-z 0-9 . _ -`; names the token in listings, `requested_by` and the audit list.
    pub name: String,
    /// `read`, `operate`, `executor` or `admin`.
    pub role: Role,
    /// Limit the token to tasks (and, for `executor`, registrations) of these executor groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Limit the token to tasks whose name starts with one of these.
    #[serde(default)]
    pub prefixes: Vec<String>,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct TokenView {
    pub name: String,
    pub role: Role,
    pub groups: Vec<String>,
    pub prefixes: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// The token that created it (`bootstrap` for the first admin token).
    pub created_by: String,
}

/// The answer to `POST /tokens`: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct CreatedTokenView {
    /// Send it as `Authorization: Bearer <token>`. Only its hash is stored: keep it now.
    pub token: String,
    #[serde(flatten)]
    pub view: TokenView,
}

/// One entry of `GET /audit`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct AuditView {
    pub id: u64,
    pub at: DateTime<Utc>,
    /// The log entry that carried the change.
    pub log_index: u64,
    /// The token's name (`anonymous` while auth is off, `cluster` for a node's own call).
    pub by: String,
    /// `create_task`, `pause_task`, `revoke_token`, ...
    pub action: String,
    /// `task 7`, `token ci`, `executor worker-3`, ...
    pub target: String,
    /// `ok`, or why it was refused.
    pub outcome: String,
}
