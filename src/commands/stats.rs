//! `cronraft task stats`: one task's report as two tables (the windows, then the daily trend).

use cronraft_api::context::Consistency;
use cronraft_api::types::{TaskStatsView, WindowStatsView};

use super::{client, opt, print_json, print_table, CommandError};
use crate::cli::Target;

const HEADERS: [&str; 12] = [
    "window",
    "total",
    "success",
    "failed",
    "timeout",
    "cancelled",
    "skipped",
    "missed",
    "on time",
    "late",
    "rate",
    "avg/p95 ms",
];
/// Days of the trend shown in the table (`--json` has all 90).
const DAYS_SHOWN: usize = 14;

fn row(label: String, w: &WindowStatsView) -> Vec<String> {
    vec![
        label,
        w.total.to_string(),
        w.success.to_string(),
        w.failed.to_string(),
        w.timeout.to_string(),
        w.cancelled.to_string(),
        w.skipped.to_string(),
        w.missed.to_string(),
        w.on_time.to_string(),
        w.late.to_string(),
        opt(w.success_rate.map(|r| format!("{:.1}%", r * 100.0))),
        format!("{}/{}", opt(w.avg_duration_ms), opt(w.p95_duration_ms)),
    ]
}

fn print(s: &TaskStatsView) {
    println!("task {}   health score: {}   as of {}", s.task_id, opt(s.health_score), s.generated_at.to_rfc3339());
    let w = &s.windows;
    print_table(
        &HEADERS,
        vec![row("24h".into(), &w.last_24h), row("7d".into(), &w.last_7d), row("90d".into(), &w.last_90d)],
    );
    if !s.daily.is_empty() {
        println!();
        let start = s.daily.len().saturating_sub(DAYS_SHOWN);
        let rows = s.daily[start..].iter().map(|d| row(d.date.to_string(), &d.stats)).collect();
        let mut headers = HEADERS;
        headers[0] = "day";
        print_table(&headers, rows);
    }
}

pub async fn show(task: &str, target: &Target) -> Result<(), CommandError> {
    let s = client(target)?.task_stats(task, Consistency::Linearizable).await?;
    if target.json {
        print_json(&s);
    } else {
        print(&s);
    }
    Ok(())
}
