//! Notifications, the replicated model: channels (where alerts go), rules (which events go to
//! which channels), events, the outbox of undelivered (event, channel) pairs, and the text
//! templates of channels.
//!
//! These shapes are stored in sled and carried in Raft commands, so they follow the encoding
//! rules of [`crate::codec`] (times as Unix milliseconds, no `serde_json::Value`). Apply
//! ([`crate::state`]'s `notify` module) generates events and matches rules; the leader's
//! delivery service (`src/notifier/`) renders the templates and sends. Input rules live here,
//! in one function per record ([`check_channel`], [`check_rule`]), called by the API before
//! proposing and by apply again, so a replica never stores a record the API would refuse.
//!
//! A template is text with `{{placeholder}}` fields, nothing more: no conditions, no loops, no
//! escapes. An unknown placeholder is refused when the channel is created, so rendering cannot
//! fail later; a placeholder whose field an event lacks renders empty.

use serde::{Deserialize, Serialize};

/// Most channels the cluster holds.
pub const CHANNELS_MAX: u64 = 100;
/// Most rules the cluster holds.
pub const RULES_MAX: u64 = 1_000;
/// Most undelivered (event, channel) entries; when full, the oldest is dropped and counted.
pub const OUTBOX_MAX: u64 = 10_000;
/// Longest channel name (bytes of `A-Z a-z 0-9 . _ -`).
pub const CHANNEL_NAME_LEN_MAX: usize = 64;
/// Longest channel URL.
pub const URL_LEN_MAX: usize = 2_048;
/// Longest template.
pub const TEMPLATE_LEN_MAX: usize = 4_096;
/// Secret length bounds (bytes).
pub const SECRET_LEN_MIN: usize = 16;
pub const SECRET_LEN_MAX: usize = 256;
/// Most channels and event kinds one rule names; longest selector text (a prefix, a group).
pub const RULE_CHANNELS_MAX: usize = 16;
pub const SELECTOR_LEN_MAX: usize = 128;
/// Longest error text kept per outbox entry and channel.
pub const DELIVERY_ERROR_LEN_MAX: usize = 512;
/// A repeated `slot_missed` or `slot_skipped` of one task within this time of the last one is
/// suppressed (a skip-mode task that overlaps every second would otherwise alert every second).
pub const SLOT_REPEAT_MS: i64 = 60_000;

/// How a channel's receiver expects its alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ChannelKind {
    /// A JSON body with the event's fields and the rendered text; HMAC-signed with a secret.
    Webhook,
    /// Slack or Mattermost incoming webhook: `{"text": ...}`.
    Slack,
    /// Alertmanager's `POST /api/v2/alerts`: a JSON array of alerts.
    Alertmanager,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Alertmanager => "alertmanager",
        }
    }
}

/// What an admin gives for a channel. `secret` is write-only: stored for signing, never shown
/// (its `Debug` says only whether there is one, so no log line can carry it).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSpec {
    pub name: String,
    pub kind: ChannelKind,
    pub url: String,
    pub secret: Option<String>,
    /// `None`: the default text ([`DEFAULT_TEMPLATE`]).
    pub template: Option<String>,
}

impl std::fmt::Debug for ChannelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &"<hidden>")
            .field("secret", &self.secret.as_ref().map(|_| "<hidden>"))
            .field("template", &self.template)
            .finish()
    }
}

/// A change to a channel; `None` keeps a field. `secret: Some(None)` removes the secret.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPatch {
    pub kind: Option<ChannelKind>,
    pub url: Option<String>,
    pub secret: Option<Option<String>>,
    pub template: Option<Option<String>>,
}

impl std::fmt::Debug for ChannelPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelPatch")
            .field("kind", &self.kind)
            .field("url", &self.url.as_ref().map(|_| "<hidden>"))
            .field("secret", &self.secret.as_ref().map(|s| s.as_ref().map(|_| "<hidden>")))
            .field("template", &self.template)
            .finish()
    }
}

impl ChannelPatch {
    pub fn is_empty(&self) -> bool {
        self.kind.is_none() && self.url.is_none() && self.secret.is_none() && self.template.is_none()
    }

    pub fn merged_into(&self, spec: &ChannelSpec) -> ChannelSpec {
        ChannelSpec {
            name: spec.name.clone(),
            kind: self.kind.unwrap_or(spec.kind),
            url: self.url.clone().unwrap_or_else(|| spec.url.clone()),
            secret: self.secret.clone().unwrap_or_else(|| spec.secret.clone()),
            template: self.template.clone().unwrap_or_else(|| spec.template.clone()),
        }
    }
}

/// A stored channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub spec: ChannelSpec,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// What happened. Variants are only appended (their index is the stored encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventKind {
    /// A run ended `failed` after its retries (the task is now "failing").
    RunFailed,
    /// A run ended `timeout` after its retries (the task is now "failing").
    RunTimeout,
    /// A `missed` record: slots that did not run (misfire, cut off).
    SlotMissed,
    /// A `skipped` record: the execution mode refused a slot (overlap, full queue).
    SlotSkipped,
    /// A run succeeded after the task was failing.
    Recovered,
    ExecutorUnhealthy,
    ExecutorHealthy,
    /// A run found no online, healthy executor in its group.
    NoHealthyExecutor,
    /// The leader could not replicate to a node.
    NodeUnreachable,
    /// The leader replicates to a node that was unreachable.
    NodeReachable,
    /// A node took office as leader.
    LeaderChange,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::RunFailed,
        EventKind::RunTimeout,
        EventKind::SlotMissed,
        EventKind::SlotSkipped,
        EventKind::Recovered,
        EventKind::ExecutorUnhealthy,
        EventKind::ExecutorHealthy,
        EventKind::NoHealthyExecutor,
        EventKind::NodeUnreachable,
        EventKind::NodeReachable,
        EventKind::LeaderChange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RunFailed => "run_failed",
            EventKind::RunTimeout => "run_timeout",
            EventKind::SlotMissed => "slot_missed",
            EventKind::SlotSkipped => "slot_skipped",
            EventKind::Recovered => "recovered",
            EventKind::ExecutorUnhealthy => "executor_unhealthy",
            EventKind::ExecutorHealthy => "executor_healthy",
            EventKind::NoHealthyExecutor => "no_healthy_executor",
            EventKind::NodeUnreachable => "node_unreachable",
            EventKind::NodeReachable => "node_reachable",
            EventKind::LeaderChange => "leader_change",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the event ends an alert that an earlier event raised (Alertmanager `endsAt`).
    pub fn is_resolution(self) -> bool {
        matches!(self, EventKind::Recovered | EventKind::ExecutorHealthy | EventKind::NodeReachable)
    }

    /// The Alertmanager `severity` label.
    pub fn severity(self) -> &'static str {
        match self {
            EventKind::RunFailed
            | EventKind::RunTimeout
            | EventKind::ExecutorUnhealthy
            | EventKind::NoHealthyExecutor
            | EventKind::NodeUnreachable => "critical",
            EventKind::SlotMissed | EventKind::SlotSkipped => "warning",
            _ => "info",
        }
    }

    /// The Alertmanager `alertname`: an event and its resolution share one, so the resolution
    /// ends the alert the event started.
    pub fn alert_name(self) -> &'static str {
        match self {
            EventKind::RunFailed | EventKind::RunTimeout | EventKind::Recovered => "CronraftTaskFailing",
            EventKind::ExecutorUnhealthy | EventKind::ExecutorHealthy => "CronraftExecutorUnhealthy",
            EventKind::NodeUnreachable | EventKind::NodeReachable => "CronraftNodeUnreachable",
            EventKind::SlotMissed => "CronraftSlotMissed",
            EventKind::SlotSkipped => "CronraftSlotSkipped",
            EventKind::NoHealthyExecutor => "CronraftNoHealthyExecutor",
            EventKind::LeaderChange => "CronraftLeaderChange",
        }
    }
}

/// Which events a rule is about. `Default` is the cluster-wide default: it applies to an event
/// only when no task, prefix or group rule takes that event's kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selector {
    Default,
    Task(u64),
    TaskPrefix(String),
    Group(String),
}

/// What an admin gives for a rule. `events` empty = every kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    pub selector: Selector,
    pub events: Vec<EventKind>,
    pub channels: Vec<String>,
}

impl RuleSpec {
    pub fn takes(&self, kind: EventKind) -> bool {
        self.events.is_empty() || self.events.contains(&kind)
    }
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: u64,
    pub spec: RuleSpec,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// One event, as generated in apply (or proposed by the leader) and kept in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// From a replicated counter: the same on every node, and the same on every redelivery.
    pub id: u64,
    pub kind: EventKind,
    /// The time of the entry that caused it (its proposer's clock).
    pub at_ms: i64,
    pub task_id: Option<u64>,
    pub task_name: String,
    pub group: String,
    /// The executor's `instance_id`.
    pub executor: String,
    pub node_id: Option<u64>,
    pub execution_id: Option<u64>,
    /// Why (an execution's reason, a leader's observation), snake_case where it is a code.
    pub reason: String,
    /// Slots a `missed` record stands for (1 otherwise).
    pub slot_count: u64,
}

/// An event the leader proposes (it sees these outside apply): node reachability, leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderEvent {
    pub kind: EventKind,
    pub node_id: u64,
    pub reason: String,
}

/// One (event, channel) pair waiting for delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The outbox position (the key).
    pub seq: u64,
    pub channel: String,
    pub event: Event,
    /// Failed deliveries reported so far.
    pub attempts: u32,
    pub last_error: String,
    pub last_attempt_ms: Option<i64>,
}

/// Per channel: what delivery achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelState {
    pub delivered: u64,
    pub failures: u64,
    pub last_delivery_ms: Option<i64>,
    pub last_event_id: Option<u64>,
    pub last_error: String,
    pub last_error_ms: Option<i64>,
}

/// What the delivery service reports in one entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// Outbox seqs delivered: removed.
    pub delivered: Vec<u64>,
    /// Outbox seqs that failed once more, with the error.
    pub failed: Vec<(u64, String)>,
}

/// Most items of one [`DeliveryReport`] apply looks at.
pub const REPORT_ITEMS_MAX: usize = 1_000;

/// Bad notification input: the API answers it as a 422, apply refuses it the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NotifyInputError {
    #[error("a channel name is 1 to {CHANNEL_NAME_LEN_MAX} of A-Z a-z 0-9 . _ -")]
    ChannelName,
    #[error("`url` must be an http:// or https:// URL with a host, at most {URL_LEN_MAX} bytes: {0}")]
    Url(String),
    #[error("unknown placeholder {{{{{0}}}}} in `template`; known: {known}", known = PLACEHOLDERS.join(", "))]
    UnknownPlaceholder(String),
    #[error("`template`: {0}")]
    Template(String),
    #[error("`secret` must be {SECRET_LEN_MIN} to {SECRET_LEN_MAX} bytes of printable ASCII")]
    Secret,
    #[error("rule: {0}")]
    Rule(String),
}

/// The text when a channel has no template.
pub const DEFAULT_TEMPLATE: &str = "[cronraft] {{event}} {{subject}}: {{reason}}";

/// Every placeholder a template may use.
pub const PLACEHOLDERS: [&str; 13] = [
    "event",
    "event_id",
    "time",
    "subject",
    "task",
    "task_id",
    "group",
    "executor",
    "node",
    "execution_id",
    "reason",
    "slot_count",
    "severity",
];

/// Checks a channel's fields.
pub fn check_channel(spec: &ChannelSpec) -> Result<(), NotifyInputError> {
    let name_ok = !spec.name.is_empty()
        && spec.name.len() <= CHANNEL_NAME_LEN_MAX
        && spec.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !name_ok {
        return Err(NotifyInputError::ChannelName);
    }
    check_url(&spec.url)?;
    if let Some(secret) = &spec.secret {
        let ok =
            (SECRET_LEN_MIN..=SECRET_LEN_MAX).contains(&secret.len()) && secret.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(NotifyInputError::Secret);
        }
    }
    if let Some(t) = &spec.template {
        check_template(t)?;
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), NotifyInputError> {
    if url.len() > URL_LEN_MAX {
        return Err(NotifyInputError::Url("too long".into()));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| NotifyInputError::Url(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(NotifyInputError::Url(format!("{url:?} is not http(s) with a host")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(NotifyInputError::Url("credentials in the URL would be shown to readers; use `secret`".into()));
    }
    Ok(())
}

/// Checks a template: bounded, every `{{` closed, every placeholder known.
pub fn check_template(template: &str) -> Result<(), NotifyInputError> {
    if template.is_empty() || template.len() > TEMPLATE_LEN_MAX {
        return Err(NotifyInputError::Template(format!("must be 1 to {TEMPLATE_LEN_MAX} bytes")));
    }
    for piece in pieces(template) {
        match piece {
            Piece::Field(name) if !PLACEHOLDERS.contains(&name) => {
                return Err(NotifyInputError::UnknownPlaceholder(name.to_string()))
            }
            Piece::Unclosed => return Err(NotifyInputError::Template("a `{{` is not closed by `}}`".into())),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a rule's fields (whether its channels exist is apply's to say).
pub fn check_rule(spec: &RuleSpec) -> Result<(), NotifyInputError> {
    if spec.channels.is_empty() || spec.channels.len() > RULE_CHANNELS_MAX {
        return Err(NotifyInputError::Rule(format!("`channels` names 1 to {RULE_CHANNELS_MAX} channels")));
    }
    if spec.events.len() > EventKind::ALL.len() {
        return Err(NotifyInputError::Rule("`events` names an event kind twice".into()));
    }
    match &spec.selector {
        Selector::TaskPrefix(s) | Selector::Group(s) if s.is_empty() || s.len() > SELECTOR_LEN_MAX => {
            Err(NotifyInputError::Rule(format!("`task_prefix` and `group` are 1 to {SELECTOR_LEN_MAX} bytes")))
        }
        Selector::TaskPrefix(s) | Selector::Group(s) if s.contains('\0') => {
            Err(NotifyInputError::Rule("`task_prefix` and `group` cannot hold a NUL".into()))
        }
        _ => Ok(()),
    }
}

enum Piece<'a> {
    Text(&'a str),
    Field(&'a str),
    Unclosed,
}

/// Splits a template into text and `{{name}}` fields (the name trimmed of spaces).
fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push(Piece::Text(&rest[..open]));
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                out.push(Piece::Field(after[..close].trim()));
                rest = &after[close + 2..];
            }
            None => {
                out.push(Piece::Unclosed);
                return out;
            }
        }
    }
    out.push(Piece::Text(rest));
    out
}

impl Event {
    /// What the event is about, in a few words: the task, executor, group or node.
    pub fn subject(&self) -> String {
        if !self.task_name.is_empty() {
            format!("task {}", self.task_name)
        } else if !self.executor.is_empty() {
            format!("executor {} (group {})", self.executor, self.group)
        } else if !self.group.is_empty() {
            format!("group {}", self.group)
        } else if let Some(n) = self.node_id {
            format!("node {n}")
        } else {
            "cluster".to_string()
        }
    }

    /// The value of one placeholder (empty when the event lacks it).
    pub fn field(&self, name: &str) -> String {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        match name {
            "event" => self.kind.as_str().to_string(),
            "event_id" => self.id.to_string(),
            "time" => chrono::DateTime::from_timestamp_millis(self.at_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default(),
            "subject" => self.subject(),
            "task" => self.task_name.clone(),
            "task_id" => opt(self.task_id),
            "group" => self.group.clone(),
            "executor" => self.executor.clone(),
            "node" => opt(self.node_id),
            "execution_id" => opt(self.execution_id),
            "reason" => self.reason.clone(),
            "slot_count" => self.slot_count.to_string(),
            "severity" => self.kind.severity().to_string(),
            _ => String::new(),
        }
    }

    /// The text of `template` (or the default) for this event.
    pub fn render(&self, template: Option<&str>) -> String {
        let mut out = String::new();
        for piece in pieces(template.unwrap_or(DEFAULT_TEMPLATE)) {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(name) => out.push_str(&self.field(name)),
                Piece::Unclosed => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            id: 7,
            kind: EventKind::RunFailed,
            at_ms: 0,
            task_id: Some(2),
            task_name: "nightly".into(),
            group: "local".into(),
            executor: String::new(),
            node_id: None,
            execution_id: Some(9),
            reason: "executor_failed".into(),
            slot_count: 1,
        }
    }

    #[test]
    fn templates_render_known_placeholders_and_refuse_unknown_ones() {
        let e = event();
        assert_eq!(
            e.render(Some("{{ task }} #{{execution_id}} {{event}} at {{time}}")),
            "nightly #9 run_failed at 1970-01-01T00:00:00.000Z"
        );
        assert_eq!(e.render(None), "[cronraft] run_failed task nightly: executor_failed");
        assert_eq!(check_template("{{task}} {{nope}}"), Err(NotifyInputError::UnknownPlaceholder("nope".into())));
        assert!(matches!(check_template("{{task"), Err(NotifyInputError::Template(_))));
        assert!(check_template(DEFAULT_TEMPLATE).is_ok());
        assert!(NotifyInputError::UnknownPlaceholder("x".into()).to_string().contains("{{x}}"));
    }

    #[test]
    fn channels_need_a_plain_name_an_http_url_and_a_bounded_secret() {
        let spec = |name: &str, url: &str, secret: Option<&str>| ChannelSpec {
            name: name.into(),
            kind: ChannelKind::Webhook,
            url: url.into(),
            secret: secret.map(Into::into),
            template: None,
        };
        assert!(check_channel(&spec("ops", "http://127.0.0.1:9/hook", Some("0123456789abcdef"))).is_ok());
        assert_eq!(check_channel(&spec("o ps", "http://x/", None)), Err(NotifyInputError::ChannelName));
        assert!(matches!(check_channel(&spec("ops", "ftp://x/", None)), Err(NotifyInputError::Url(_))));
        assert!(matches!(check_channel(&spec("ops", "http://u:p@x/", None)), Err(NotifyInputError::Url(_))));
        assert_eq!(check_channel(&spec("ops", "http://x/", Some("short"))), Err(NotifyInputError::Secret));
        let shown = format!("{:?}", spec("ops", "https://hooks.example/T0/B1/xyz", Some("0123456789abcdef")));
        assert!(!shown.contains("0123456789abcdef") && !shown.contains("xyz"), "{shown}");
    }

    #[test]
    fn every_kind_round_trips_its_name() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
    }
}
