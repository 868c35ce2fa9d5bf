//! `cronraft executor list|get|status|remove`: the executor registry as an operator sees it.
//!
//! Registration itself is done by executors (the bundled agent or any service speaking the
//! protocol), not by people, so there is no `register` command.

use cronraft_api::context::Consistency;
use cronraft_api::types::ExecutorView;
use cronraft_raft::model::ExecutorStatus;

use super::{client, opt, print_json, print_table, CommandError};
use crate::cli::ExecutorCommand;

const HEADERS: [&str; 8] = ["id", "name", "instance", "base url", "status", "healthy", "running", "capacity"];

fn row(e: &ExecutorView) -> Vec<String> {
    vec![
        e.id.to_string(),
        e.name.clone(),
        e.instance_id.clone(),
        e.base_url.clone(),
        e.status.as_str().to_string(),
        if e.is_healthy { "yes".into() } else { format!("no ({} failed checks)", e.health_check_failures) },
        e.running_attempts.to_string(),
        if e.capacity == 0 { "unlimited".into() } else { e.capacity.to_string() },
    ]
}

/// Every field, one per line, for `get` and the answers to writes.
fn show(e: &ExecutorView, json: bool) {
    if json {
        print_json(e);
        return;
    }
    let lines = [
        ("id", e.id.to_string()),
        ("name", e.name.clone()),
        ("instance_id", e.instance_id.clone()),
        ("base_url", e.base_url.clone()),
        ("health_check_url", e.health_check_url.clone()),
        ("status", e.status.as_str().to_string()),
        ("status_reason", if e.status_reason.is_empty() { "-".into() } else { e.status_reason.clone() }),
        ("healthy", e.is_healthy.to_string()),
        ("health_check_failures", e.health_check_failures.to_string()),
        ("last_health_check", opt(e.last_health_check.map(|t| t.to_rfc3339()))),
        ("running_attempts", e.running_attempts.to_string()),
        ("capacity", if e.capacity == 0 { "0 (unlimited)".into() } else { e.capacity.to_string() }),
        ("weight", e.weight.to_string()),
        ("metadata", e.metadata.to_string()),
        ("registered_at", e.registered_at.to_rfc3339()),
        ("updated_at", e.updated_at.to_rfc3339()),
    ];
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in lines {
        println!("{k:<width$}  {v}");
    }
}

fn parse_status(raw: &str) -> Result<ExecutorStatus, CommandError> {
    match raw {
        "online" => Ok(ExecutorStatus::Online),
        "offline" => Ok(ExecutorStatus::Offline),
        "maintenance" => Ok(ExecutorStatus::Maintenance),
        other => Err(CommandError::Argument(format!("status {other:?}: expected online, offline or maintenance"))),
    }
}

pub async fn run(cmd: ExecutorCommand) -> Result<(), CommandError> {
    match cmd {
        ExecutorCommand::List { name, paging, target } => {
            let p = client(&target)?
                .list_executors(name.as_deref(), paging.page, paging.page_size, Consistency::Linearizable)
                .await?;
            if target.json {
                print_json(&p);
            } else {
                print_table(&HEADERS, p.items.iter().map(row).collect());
                println!("page {}, {} per page, {} executor(s) in all", p.page, p.page_size, p.total);
            }
        }
        ExecutorCommand::Get { executor, target } => {
            show(&client(&target)?.get_executor(&executor, Consistency::Linearizable).await?, target.json)
        }
        ExecutorCommand::Status { executor, status, reason, target } => {
            let status = parse_status(&status)?;
            let e = client(&target)?.set_executor_status(&executor, status, reason.as_deref(), None).await?;
            show(&e, target.json)
        }
        ExecutorCommand::Remove { executor, target } => {
            let e = client(&target)?.remove_executor(&executor, None).await?;
            if target.json {
                print_json(&e);
            } else {
                println!("executor {} ({}) removed", e.id, e.instance_id);
            }
        }
    }
    Ok(())
}
