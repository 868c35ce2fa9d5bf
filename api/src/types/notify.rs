//! The JSON shapes of `/api/v1/notifications`: channels, rules and the delivery state.
//!
//! A channel's secret is write-only: inputs take it, views only say whether there is one.

use chrono::{DateTime, Utc};
use cronraft_raft::notify::{ChannelKind, EventKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of `POST /notifications/channels` (`name`, `kind` and `url` required) and of
/// `PUT /notifications/channels/{name}` (any of `kind`, `url`, `secret`, `template`; `name`, if
/// given, must be the path's).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    /// Unique, 1 to 64 of `A-Z a-z 0-9 . _ -`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `webhook`, `slack` (Slack or Mattermost) or `alertmanager`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ChannelKind>,
    /// Where alerts are POSTed: `http://` or `https://`, no credentials (for Alertmanager, the
    /// receiver's `/api/v2/alerts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// 16 to 256 printable ASCII bytes: webhook bodies are signed with HMAC-SHA256 under it
    /// (`X-Cronraft-Signature: sha256=<hex>`). Never shown again. On `PUT`, `""` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The alert text, with `{{placeholder}}` fields (see the API reference). On `PUT`, `""`
    /// goes back to the default text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// A channel, with what delivery achieved (never the secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ChannelView {
    pub name: String,
    pub kind: ChannelKind,
    /// The whole URL for `admin`; for other roles only its origin (`https://hooks.slack.com/…`):
    /// a Slack or Mattermost webhook URL holds a secret in its path.
    pub url: String,
    /// Whether bodies are signed (the secret itself is never shown).
    pub has_secret: bool,
    /// `null`: the default text.
    pub template: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered: u64,
    pub failures: u64,
    pub last_delivery_at: Option<DateTime<Utc>>,
    pub last_event_id: Option<u64>,
    /// The last delivery error (empty if none yet).
    pub last_error: String,
    pub last_error_at: Option<DateTime<Utc>>,
}

/// The body of `POST /notifications/rules` and `PUT /notifications/rules/{id}` (which replaces
/// the rule). At most one of `task`, `task_prefix`, `group`; none of them makes the
/// cluster-wide default, which takes the events no task, prefix or group rule takes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    /// A task id or name (the rule keeps the id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_prefix: Option<String>,
    /// An executor group: its tasks' events and its executors' events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Event kinds; empty or absent = every kind.
    #[serde(default)]
    pub events: Vec<EventKind>,
    /// 1 to 16 channel names.
    #[serde(default)]
    pub channels: Vec<String>,
}

/// A rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct RuleView {
    pub id: u64,
    /// `default`, `task`, `task_prefix` or `group`.
    pub selector: String,
    pub task_id: Option<u64>,
    pub task_prefix: Option<String>,
    pub group: Option<String>,
    /// Empty = every kind.
    pub events: Vec<EventKind>,
    pub channels: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One undelivered (event, channel) entry of the outbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PendingView {
    /// The outbox position.
    pub seq: u64,
    /// The id receivers deduplicate by (`X-Cronraft-Event-Id`).
    pub event_id: u64,
    pub kind: EventKind,
    pub channel: String,
    pub at: DateTime<Utc>,
    /// `task nightly`, `executor x1 (group g)`, `node 2`, ...
    pub subject: String,
    /// Failed deliveries so far.
    pub attempts: u32,
    pub last_error: String,
    pub last_attempt_at: Option<DateTime<Utc>>,
}

/// The answer of `GET /notifications`: the outbox and every channel's delivery state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct NotificationsView {
    /// Undelivered entries now.
    pub outbox_depth: u64,
    /// The outbox bound (when full, the oldest entry is dropped).
    pub outbox_max: u64,
    /// Entries dropped because the outbox was full.
    pub dropped: u64,
    /// Events generated so far (the last event id).
    pub events: u64,
    pub channels: Vec<ChannelView>,
    /// The oldest undelivered entries (at most 100).
    pub pending: Vec<PendingView>,
}
