//! API tokens as the replicated state keeps them: a name, a role, an optional scope, and the
//! hash of the secret (never the secret itself).
//!
//! A token's secret is 256 random bits made by the node that answered `POST /tokens` (or read
//! from the operator's bootstrap file); only its blake3 hash reaches the log, so neither the log,
//! a snapshot nor a backup holds a usable credential. Tokens are found by that hash: a presented
//! token is hashed and looked up, so no stored secret is ever compared byte by byte with it.

use serde::{Deserialize, Serialize};

/// What a token may do. `Read` < `Operate` < `Admin`; `Executor` is apart: an executor's own
/// calls (registration, reports), nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// Every `GET` (secret task parameters redacted).
    Read,
    /// `Read`, plus task writes, pause/resume, trigger and stop.
    Operate,
    /// An executor: register itself (and the tasks of its own groups), report its attempts.
    Executor,
    /// Everything: membership, executor status and removal, tokens, the digest, the audit list.
    Admin,
}

impl Role {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operate => "operate",
            Role::Executor => "executor",
            Role::Admin => "admin",
        }
    }

    /// Parses the JSON name.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "read" => Some(Role::Read),
            "operate" => Some(Role::Operate),
            "executor" => Some(Role::Executor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// What a token is limited to (a team's token). Empty lists mean no limit of that kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenScope {
    /// Executor groups: the token only touches tasks whose `executor` is one of them, and an
    /// `executor` token only registers instances in them.
    pub groups: Vec<String>,
    /// Task name prefixes: the token only touches tasks whose name starts with one of them.
    pub prefixes: Vec<String>,
}

impl TokenScope {
    /// Whether neither kind of limit is set.
    pub fn is_unlimited(&self) -> bool {
        self.groups.is_empty() && self.prefixes.is_empty()
    }

    /// Whether a task named `name` in executor group `group` is within the scope.
    pub fn covers_task(&self, name: &str, group: &str) -> bool {
        let group_ok = self.groups.is_empty() || self.groups.iter().any(|g| g == group);
        let name_ok = self.prefixes.is_empty() || self.prefixes.iter().any(|p| name.starts_with(p.as_str()));
        group_ok && name_ok
    }

    /// Whether executor group `group` is within the scope (prefixes do not limit groups).
    pub fn covers_group(&self, group: &str) -> bool {
        self.groups.is_empty() || self.groups.iter().any(|g| g == group)
    }
}

/// A token to create: everything but the time and the author, which apply adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSpec {
    /// Unique; how the token is listed, revoked and named in `requested_by` and the audit list.
    pub name: String,
    pub role: Role,
    pub scope: TokenScope,
    /// blake3 of the secret.
    pub hash: [u8; 32],
}

/// A token as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub spec: TokenSpec,
    pub created_at_ms: i64,
    /// The name of the token that created it (`bootstrap` for the first admin token).
    pub created_by: String,
}

/// The hash a token's secret is stored and found under.
pub fn token_hash(secret: &str) -> [u8; 32] {
    *blake3::hash(secret.as_bytes()).as_bytes()
}
