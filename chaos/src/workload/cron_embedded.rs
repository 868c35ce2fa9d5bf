//! The `cron-embedded` workload's differences from `cron`: its tasks run on the nodes' own
//! embedded agents (group `local`, one instance per node, each on its node's host) as `sleep`
//! commands, so the schedule guarantees are checked on the product's real executors across the
//! three hosts of the network sandbox, not only on the harness' recording executor.
//!
//! No recording executor sees those runs, so the execution evidence is the cluster's own: the
//! final records' attempts (see `checker::embedded`). Two things are recorded for that here: a
//! `cron_embedded` marker at setup naming every node's agent instance and the host it must be
//! reached on (the checkers switch to the records, and `embedded_agents` checks every host ran
//! attempts), and — while the workload waits for the tasks to catch up after the heal — reads of
//! the newest executions instead of `deliver` events.

use std::time::Duration;

use chrono::DateTime;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::Ctx;
use crate::history::{Kind, Process};

/// The embedded agents' executor group (the product's default group of new tasks).
pub const GROUP: &str = "local";

/// A `command` job that lasts `run_ms`, as `sleep` (which takes fractions of a second).
pub fn parameters(run_ms: u64) -> Value {
    json!({"command": format!("sleep {}.{:03}", run_ms / 1000, run_ms % 1000)})
}

/// The host part of a node's base URL (`http://10.77.0.2:41234` -> `10.77.0.2`).
fn host(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.rsplit_once(':').map_or(rest, |(h, _)| h)
}

/// Records the `cron_embedded` marker: `{"agents": {"local-node1": "10.77.0.1", …}}`, every
/// node's agent instance and the host its node's API listens on.
pub fn record_marker(ctx: &Ctx) {
    let agents: Map<String, Value> =
        ctx.nodes.iter().map(|(id, url)| (format!("{GROUP}-node{id}"), json!(host(url)))).collect();
    let harness = Process::Named("harness".into());
    ctx.rec.record(harness, Kind::Ok, "cron_embedded", None, json!({"agents": agents}), None, None);
}

/// The newest slot of task `task_id` that an agent ran or runs (an attempt `success` or
/// `running`), among its latest executions, read from the first node that answers (local
/// reads: only a progress probe, the checkers use the linearizable final reads).
pub async fn newest_ran_slot(ctx: &Ctx, task_id: u64) -> Option<i64> {
    let path = format!("/api/v1/executions?task_id={task_id}&page_size=10&consistency=local");
    for (_, url) in &ctx.nodes {
        let out = crate::ops::send(url, Duration::from_secs(2), Method::GET, &path, None, None).await;
        if out.kind != Kind::Ok {
            continue;
        }
        let items = out.body["items"].as_array().cloned().unwrap_or_default();
        let ran = |e: &Value| {
            e["attempts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["status"] == "success" || x["status"] == "running"))
        };
        let slot = |e: &Value| e["scheduled_time"].as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok());
        return items.iter().filter(|e| ran(e)).filter_map(slot).map(|t| t.timestamp_millis()).max();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_lasts_the_run_time_and_the_host_is_the_address_without_port() {
        assert_eq!(parameters(1_500), json!({"command": "sleep 1.500"}));
        assert_eq!(parameters(500), json!({"command": "sleep 0.500"}));
        assert_eq!(host("http://10.77.0.2:41234"), "10.77.0.2");
    }
}
