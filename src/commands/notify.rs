//! `cronraft notify channel|rule|status`: notification channels and rules (admin) and the
//! delivery state (read). The subcommands' arguments are defined here, next to what runs them,
//! to keep `cli.rs` about the command tree.
//!
//! A channel secret is read from a file (`--secret-file`), never from a flag: flags show in `ps`.

use std::path::PathBuf;

use clap::Subcommand;
use cronraft_api::types::{ChannelInput, ChannelView, NotificationsView, RuleInput, RuleView};
use cronraft_raft::notify::{ChannelKind, EventKind};

use super::{client, print_json, print_table, CommandError};
use crate::cli::Target;

/// Most bytes of a secret file read.
const SECRET_FILE_BYTES_MAX: u64 = 4_096;

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Channels: where alerts go (webhook, slack, alertmanager).
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Rules: which events go to which channels.
    #[command(subcommand)]
    Rule(RuleCommand),
    /// The outbox and each channel's deliveries.
    Status {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Create a channel.
    Create {
        /// Unique name (A-Z a-z 0-9 . _ -).
        #[arg(long)]
        name: String,
        /// webhook, slack (Slack or Mattermost) or alertmanager.
        #[arg(long)]
        kind: String,
        /// Where alerts are POSTed (for Alertmanager: its /api/v2/alerts).
        #[arg(long)]
        url: String,
        /// File holding the webhook's HMAC secret (16 to 256 printable ASCII bytes).
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// Alert text with {{placeholder}} fields ({{task}}, {{event}}, {{reason}}, ...).
        #[arg(long)]
        template: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// List channels (never their secrets).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete a channel (refused while a rule names it).
    Delete {
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Create a rule; with no --task, --task-prefix or --group it is the cluster-wide default.
    Create {
        /// A task id or name.
        #[arg(long, conflicts_with_all = ["task_prefix", "group"])]
        task: Option<String>,
        /// Tasks whose name starts with this.
        #[arg(long, conflicts_with = "group")]
        task_prefix: Option<String>,
        /// An executor group.
        #[arg(long)]
        group: Option<String>,
        /// Event kinds (repeat or comma-separate); none = every kind.
        #[arg(long = "event", value_delimiter = ',')]
        events: Vec<String>,
        /// Channel names (repeat or comma-separate).
        #[arg(long = "channel", value_delimiter = ',', required = true)]
        channels: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// List rules.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete a rule.
    Delete {
        id: u64,
        #[command(flatten)]
        target: Target,
    },
}

fn kind(s: &str) -> Result<ChannelKind, CommandError> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| CommandError::Argument(format!("kind {s:?}: expected webhook, slack or alertmanager")))
}

fn event(s: &str) -> Result<EventKind, CommandError> {
    EventKind::parse(s).ok_or_else(|| {
        let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        CommandError::Argument(format!("event {s:?}: expected one of {}", known.join(", ")))
    })
}

fn read_secret(path: &std::path::Path) -> Result<String, CommandError> {
    let shown = path.display();
    let len = std::fs::metadata(path).map_err(|e| CommandError::Io(format!("cannot read {shown}: {e}")))?.len();
    if len > SECRET_FILE_BYTES_MAX {
        return Err(CommandError::Argument(format!("secret file {shown} is {len} bytes; a secret is at most 256")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| CommandError::Io(format!("cannot read {shown}: {e}")))?;
    Ok(text.trim().to_string())
}

fn channel_row(c: &ChannelView) -> Vec<String> {
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into());
    vec![
        c.name.clone(),
        c.kind.as_str().into(),
        c.url.clone(),
        if c.has_secret { "yes" } else { "no" }.into(),
        c.delivered.to_string(),
        c.failures.to_string(),
        at(c.last_delivery_at),
        if c.last_error.is_empty() { "-".into() } else { c.last_error.clone() },
    ]
}

const CHANNEL_HEADERS: [&str; 8] =
    ["name", "kind", "url", "signed", "delivered", "failures", "last delivery", "last error"];

fn rule_row(r: &RuleView) -> Vec<String> {
    let selector = match r.selector.as_str() {
        "task" => format!("task {}", r.task_id.unwrap_or_default()),
        "task_prefix" => format!("prefix {}", r.task_prefix.clone().unwrap_or_default()),
        "group" => format!("group {}", r.group.clone().unwrap_or_default()),
        other => other.to_string(),
    };
    let events = if r.events.is_empty() {
        "all".to_string()
    } else {
        r.events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",")
    };
    vec![r.id.to_string(), selector, events, r.channels.join(",")]
}

fn print_status(s: &NotificationsView) {
    println!(
        "outbox: {} of {} entries waiting, {} dropped, {} events so far",
        s.outbox_depth, s.outbox_max, s.dropped, s.events
    );
    print_table(&CHANNEL_HEADERS, s.channels.iter().map(channel_row).collect());
    if s.pending.is_empty() {
        return;
    }
    println!();
    let rows = s
        .pending
        .iter()
        .map(|p| {
            vec![
                p.event_id.to_string(),
                p.kind.as_str().into(),
                p.channel.clone(),
                p.subject.clone(),
                p.attempts.to_string(),
                if p.last_error.is_empty() { "-".into() } else { p.last_error.clone() },
            ]
        })
        .collect();
    print_table(&["event", "kind", "channel", "subject", "attempts", "last error"], rows);
}

pub async fn run(cmd: NotifyCommand) -> Result<(), CommandError> {
    match cmd {
        NotifyCommand::Channel(c) => channel(c).await,
        NotifyCommand::Rule(r) => rule(r).await,
        NotifyCommand::Status { target } => {
            let s = client(&target)?.notifications().await?;
            if target.json {
                print_json(&s);
            } else {
                print_status(&s);
            }
            Ok(())
        }
    }
}

async fn channel(cmd: ChannelCommand) -> Result<(), CommandError> {
    let (c, target) = match cmd {
        ChannelCommand::Create { name, kind: k, url, secret_file, template, target } => {
            let secret = secret_file.as_deref().map(read_secret).transpose()?;
            let input = ChannelInput { name: Some(name), kind: Some(kind(&k)?), url: Some(url), secret, template };
            (client(&target)?.create_channel(&input).await?, target)
        }
        ChannelCommand::List { target } => {
            let list = client(&target)?.list_channels().await?;
            if target.json {
                print_json(&list);
            } else {
                print_table(&CHANNEL_HEADERS, list.iter().map(channel_row).collect());
            }
            return Ok(());
        }
        ChannelCommand::Delete { name, target } => (client(&target)?.delete_channel(&name).await?, target),
    };
    if target.json {
        print_json(&c);
    } else {
        print_table(&CHANNEL_HEADERS, vec![channel_row(&c)]);
    }
    Ok(())
}

async fn rule(cmd: RuleCommand) -> Result<(), CommandError> {
    let (r, target) = match cmd {
        RuleCommand::Create { task, task_prefix, group, events, channels, target } => {
            let events = events.iter().map(|e| event(e)).collect::<Result<_, _>>()?;
            let input = RuleInput { task, task_prefix, group, events, channels };
            (client(&target)?.create_rule(&input).await?, target)
        }
        RuleCommand::List { target } => {
            let list = client(&target)?.list_rules().await?;
            if target.json {
                print_json(&list);
            } else {
                print_table(&RULE_HEADERS, list.iter().map(rule_row).collect());
            }
            return Ok(());
        }
        RuleCommand::Delete { id, target } => (client(&target)?.delete_rule(id).await?, target),
    };
    if target.json {
        print_json(&r);
    } else {
        print_table(&RULE_HEADERS, vec![rule_row(&r)]);
    }
    Ok(())
}

const RULE_HEADERS: [&str; 4] = ["id", "selects", "events", "channels"];
