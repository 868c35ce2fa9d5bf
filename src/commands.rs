//! Client commands: turn CLI arguments into API calls and print the answers.
//!
//! This file holds the shared printing helpers and the `cluster` and `task` commands; executors,
//! executions (and a task's manual runs) and task statistics are in the submodules.

pub mod backup;
pub mod execution;
pub mod executor;
pub mod notify;
mod stats;
pub mod token;

use cronraft_api::client::{Client, ClientError};
use cronraft_api::context::Consistency;
use cronraft_api::types::{AddNodeInput, ClusterView, TaskInput, TaskView};
use cronraft_raft::outbound::tls::CaError;
use cronraft_raft::outbound::{BuildError, ClientTls};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cli::{ClusterCommand, Target, TaskCommand, TaskFields};
use crate::config::split_list;

/// A client command failure, printed by `main`.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("invalid argument: {0}")]
    Argument(String),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Offline(#[from] cronraft_raft::store::offline::OfflineError),
    #[error("{0}")]
    Io(String),
}

/// The client for `--node`, trusting `--ca-file` besides the system roots, with `--token`.
pub(crate) fn client(t: &Target) -> Result<Client, CommandError> {
    let tls = match &t.ca_file {
        Some(path) => ClientTls::with_ca_file(path)?,
        None => ClientTls::default(),
    };
    let token = t.token().map_err(CommandError::Argument)?;
    Ok(Client::with_tls(split_list(&t.node), std::time::Duration::from_secs(15), &tls)?.with_token(token.as_deref()))
}

pub(crate) fn print_json<T: Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).expect("serialize"));
}

/// Prints rows under headers, columns padded to their widest cell.
fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        line(row);
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

pub async fn cluster(cmd: ClusterCommand) -> Result<(), CommandError> {
    match cmd {
        ClusterCommand::Status(t) => {
            let view = client(&t)?.cluster().await?;
            if t.json {
                print_json(&view)
            } else {
                print_cluster(&view)
            }
        }
        ClusterCommand::Add { id, http_addr, raft_addr, target } => {
            let out = client(&target)?.add_node(&AddNodeInput { id, http_addr, raft_addr }).await?;
            if target.json {
                print_json(&out)
            } else {
                println!("node {id} added as a learner (log index {})", out.log_index)
            }
        }
        ClusterCommand::Promote { id, target } => {
            let out = client(&target)?.promote_node(id).await?;
            if target.json {
                print_json(&out)
            } else {
                println!("node {id} is now a voter (log index {})", out.log_index)
            }
        }
        ClusterCommand::Remove { id, target } => {
            let out = client(&target)?.remove_node(id).await?;
            if target.json {
                print_json(&out)
            } else {
                println!("node {id} removed (log index {})", out.log_index)
            }
        }
    }
    Ok(())
}

fn print_cluster(view: &ClusterView) {
    let cluster = view.cluster_id.as_deref().unwrap_or("(not named yet)");
    println!("cluster: {cluster}   leader: {}   term: {}", opt(view.leader_id), view.term);
    let rows = view
        .nodes
        .iter()
        .map(|n| {
            let role = if n.reachable { n.role.clone() } else { format!("{} (unreachable)", n.role) };
            vec![
                n.id.to_string(),
                role,
                n.http_addr.clone(),
                n.raft_addr.clone(),
                opt(n.last_log_index),
                opt(n.applied_index),
            ]
        })
        .collect();
    print_table(&["id", "role", "http", "raft", "last log", "applied"], rows);
}

fn parse_enum<T: DeserializeOwned>(flag: &str, value: Option<String>) -> Result<Option<T>, CommandError> {
    match value {
        None => Ok(None),
        Some(v) => serde_json::from_value(serde_json::Value::String(v.clone()))
            .map(Some)
            .map_err(|e| CommandError::Argument(format!("--{flag} {v:?}: {e}"))),
    }
}

fn task_input(f: TaskFields) -> Result<TaskInput, CommandError> {
    let mut parameters = match &f.params {
        None => None,
        Some(p) => Some(
            serde_json::from_str::<serde_json::Value>(p)
                .map_err(|e| CommandError::Argument(format!("--params is not JSON: {e}")))?,
        ),
    };
    if f.command.is_some() && f.http_url.is_some() {
        return Err(CommandError::Argument("--command and --http-url are two kinds of job; give one".into()));
    }
    if let Some(cmd) = &f.command {
        set_job(&mut parameters, "--command", "command", serde_json::Value::String(cmd.clone()))?;
    }
    if let Some(url) = &f.http_url {
        let mut http = serde_json::json!({ "url": url });
        if let Some(m) = &f.http_method {
            http["method"] = serde_json::Value::String(m.to_uppercase());
        }
        set_job(&mut parameters, "--http-url", "http", http)?;
    }
    Ok(TaskInput {
        name: f.name,
        description: f.description,
        cron_expression: f.cron_expression,
        timezone: f.timezone,
        parameters,
        execution_mode: parse_enum("mode", f.mode)?,
        load_balance_strategy: parse_enum("strategy", f.strategy)?,
        max_retry: f.max_retry,
        timeout_seconds: f.timeout_seconds,
        executor: f.executor,
        misfire_policy: parse_enum("misfire", f.misfire)?,
        catchup_window_seconds: None,
        dst_policy: None,
        version: None,
    })
}

/// Adds `key` (the job of a `--command` or `--http-url` shortcut) to the parameters, refusing to
/// overwrite a job `--params` already names.
fn set_job(
    parameters: &mut Option<serde_json::Value>,
    flag: &str,
    key: &str,
    job: serde_json::Value,
) -> Result<(), CommandError> {
    let obj = parameters.get_or_insert_with(|| serde_json::json!({}));
    let Some(map) = obj.as_object_mut() else {
        return Err(CommandError::Argument(format!("--params must be a JSON object to combine with {flag}")));
    };
    for taken in ["command", "http"] {
        if map.contains_key(taken) {
            return Err(CommandError::Argument(format!("--params already has \"{taken}\"; drop it or {flag}")));
        }
    }
    map.insert(key.into(), job);
    Ok(())
}

fn show_task(t: &TaskView, json: bool) {
    if json {
        print_json(t);
        return;
    }
    print_table(&["id", "name", "status", "cron", "timezone", "next fire"], vec![task_row(t)]);
}

fn task_row(t: &TaskView) -> Vec<String> {
    vec![
        t.id.to_string(),
        t.name.clone(),
        t.status.as_str().to_string(),
        t.cron_expression.clone(),
        t.timezone.clone(),
        opt(t.next_fire_time.map(|x| x.to_rfc3339())),
    ]
}

pub async fn task(cmd: TaskCommand) -> Result<(), CommandError> {
    match cmd {
        TaskCommand::Create { fields, target } => {
            let key = fields.idempotency_key.clone();
            let t = client(&target)?.create_task(&task_input(fields)?, key.as_deref()).await?;
            show_task(&t, target.json);
        }
        TaskCommand::List { status, paging, target } => {
            let p = client(&target)?
                .list_tasks(status.as_deref(), paging.page, paging.page_size, Consistency::Linearizable)
                .await?;
            if target.json {
                print_json(&p);
            } else {
                print_table(
                    &["id", "name", "status", "cron", "timezone", "next fire"],
                    p.items.iter().map(task_row).collect(),
                );
                println!("page {}, {} per page, {} task(s) in all", p.page, p.page_size, p.total);
            }
        }
        TaskCommand::Get { task, target } => {
            let t = client(&target)?.get_task(&task, Consistency::Linearizable).await?;
            show_task(&t, target.json);
        }
        TaskCommand::Update { task, fields, version, target } => {
            let key = fields.idempotency_key.clone();
            let mut input = task_input(fields)?;
            input.version = version;
            let t = client(&target)?.update_task(&task, &input, key.as_deref()).await?;
            show_task(&t, target.json);
        }
        TaskCommand::Delete { task, target } => {
            show_task(&client(&target)?.delete_task(&task, None).await?, target.json)
        }
        TaskCommand::Pause { task, target } => show_task(&client(&target)?.pause_task(&task, None).await?, target.json),
        TaskCommand::Resume { task, target } => {
            show_task(&client(&target)?.resume_task(&task, None).await?, target.json)
        }
        TaskCommand::Trigger { task, parameters, requested_by, idempotency_key, target } => {
            execution::trigger(&task, parameters, requested_by, idempotency_key, &target).await?
        }
        TaskCommand::Stats { task, target } => stats::show(&task, &target).await?,
    }
    Ok(())
}
