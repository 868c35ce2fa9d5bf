//! `cronraft execution list|get|stop` and `cronraft task trigger`: the runs of tasks.
//!
//! The list is a table a person can scan (one line per execution, the first line of its logs);
//! `get` shows the attempts and the whole log tail; `--json` prints the API's shapes unchanged.

use cronraft_api::context::Consistency;
use cronraft_api::types::{ExecutionView, TriggerInput};

use super::{client, opt, print_json, print_table, CommandError};
use crate::cli::{ExecutionCommand, Target};

const HEADERS: [&str; 7] = ["id", "task", "scheduled", "status", "attempts", "duration", "logs"];
/// Characters of the first log line shown in the list.
const LOG_PREVIEW_CHARS: usize = 48;

/// `1.234s`, `350ms`, or `-` for a run without both ends.
fn duration(e: &ExecutionView) -> String {
    match (e.start_time, e.end_time) {
        (Some(s), Some(t)) => {
            let ms = (t - s).num_milliseconds().max(0);
            if ms < 1000 {
                format!("{ms}ms")
            } else {
                format!("{:.3}s", ms as f64 / 1000.0)
            }
        }
        _ => "-".into(),
    }
}

/// The first non-empty line of the logs, cut to [`LOG_PREVIEW_CHARS`].
fn log_preview(logs: &str) -> String {
    let line = logs.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    if line.chars().count() > LOG_PREVIEW_CHARS {
        format!("{}…", line.chars().take(LOG_PREVIEW_CHARS - 1).collect::<String>())
    } else {
        line.to_string()
    }
}

fn status(e: &ExecutionView) -> String {
    match e.reason {
        Some(r) => format!(
            "{} ({})",
            e.status.as_str(),
            serde_json::to_value(r).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
        ),
        None => e.status.as_str().to_string(),
    }
}

fn row(e: &ExecutionView) -> Vec<String> {
    vec![
        e.id.to_string(),
        e.task_id.to_string(),
        e.scheduled_time.to_rfc3339(),
        status(e),
        e.attempt_count.to_string(),
        duration(e),
        log_preview(&e.logs),
    ]
}

/// One execution in full: its fields, its attempts, its result and log tail.
fn show(e: &ExecutionView, json: bool) {
    if json {
        print_json(e);
        return;
    }
    print_table(&HEADERS[..6], vec![row(e)[..6].to_vec()]);
    println!();
    let trigger = serde_json::to_value(e.trigger).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    println!("trigger: {trigger}   requested by: {}", if e.requested_by.is_empty() { "-" } else { &e.requested_by });
    println!("start: {}   end: {}", opt(e.start_time.map(|t| t.to_rfc3339())), opt(e.end_time.map(|t| t.to_rfc3339())));
    if let Some(next) = e.next_attempt_at {
        println!("next attempt not before: {}", next.to_rfc3339());
    }
    if !e.attempts.is_empty() {
        println!();
        let rows = e
            .attempts
            .iter()
            .map(|a| {
                vec![
                    a.attempt.to_string(),
                    if a.executor_id == 0 { "-".into() } else { format!("{} ({})", a.executor_id, a.instance_id) },
                    a.status.as_str().to_string(),
                    a.dispatched_at.to_rfc3339(),
                    opt(a.end_time.map(|t| t.to_rfc3339())),
                    a.error.clone(),
                ]
            })
            .collect();
        print_table(&["attempt", "executor", "status", "dispatched", "ended", "error"], rows);
    }
    if !e.result.is_empty() {
        println!("\nresult: {}", e.result);
    }
    if !e.logs.is_empty() {
        println!("\nlogs:\n{}", e.logs.trim_end());
    }
}

pub async fn run(cmd: ExecutionCommand) -> Result<(), CommandError> {
    match cmd {
        ExecutionCommand::List { task, status, paging, target } => {
            let p = client(&target)?
                .list_executions(
                    task.as_deref(),
                    status.as_deref(),
                    paging.page,
                    paging.page_size,
                    Consistency::Linearizable,
                )
                .await?;
            if target.json {
                print_json(&p);
            } else {
                print_table(&HEADERS, p.items.iter().map(row).collect());
                println!("page {}, {} per page, {} execution(s) in all", p.page, p.page_size, p.total);
            }
        }
        ExecutionCommand::Get { id, target } => {
            show(&client(&target)?.get_execution(id, Consistency::Linearizable).await?, target.json)
        }
        ExecutionCommand::Stop { id, requested_by, target } => {
            let who = requested_by.unwrap_or_else(|| "cli".into());
            show(&client(&target)?.stop_execution(id, Some(&who), None).await?, target.json)
        }
    }
    Ok(())
}

/// `cronraft task trigger`.
pub async fn trigger(
    task: &str,
    parameters: Option<String>,
    requested_by: Option<String>,
    idempotency_key: Option<String>,
    target: &Target,
) -> Result<(), CommandError> {
    let parameters = match parameters {
        None => None,
        Some(p) => Some(
            serde_json::from_str::<serde_json::Value>(&p)
                .map_err(|e| CommandError::Argument(format!("--parameters is not JSON: {e}")))?,
        ),
    };
    let input = TriggerInput { parameters, requested_by: Some(requested_by.unwrap_or_else(|| "cli".into())) };
    let e = client(target)?.trigger_task(task, &input, idempotency_key.as_deref()).await?;
    show(&e, target.json);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_preview_is_the_first_line_cut_short() {
        assert_eq!(log_preview(""), "");
        assert_eq!(log_preview("\n  hello  \nworld"), "hello");
        let long = "x".repeat(100);
        let p = log_preview(&long);
        assert_eq!(p.chars().count(), LOG_PREVIEW_CHARS);
        assert!(p.ends_with('…'));
    }
}
