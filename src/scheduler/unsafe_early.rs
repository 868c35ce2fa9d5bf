//! UNSAFE, TEST-ONLY: `CRONRAFT_UNSAFE=dispatch-before-commit`. The leader's scheduler sends
//! `POST /execute` for every slot of a fire *before* proposing the fire entry — an "optimistic"
//! dispatch with a made-up attempt: an execution id no record has (it is derived from the task
//! and slot, since the real id is only assigned when the entry is applied), attempt 1, this
//! term, and the leader's last log index as fencing data (the entry that will create the record
//! is not even appended yet). The fire is then proposed as usual, so the slot usually runs a
//! second time under its real execution.
//!
//! It exists only so the chaos harness can prove its `committed_delivery` checker (every
//! delivery backed by a committed record) catches a node that talks to executors before commit
//! (`cronraft-chaos run --unsafe dispatch-before-commit --workload cron`). Ignored unless the
//! variable names the mode; read once per process.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use cronraft_api::protocol::ExecuteRequest;
use cronraft_raft::command::TaskFire;
use cronraft_raft::state::StateView;

/// Whether `CRONRAFT_UNSAFE` names `dispatch-before-commit`.
/// Only in a build with the `unsafe-modes` feature ([`cronraft_raft::unsafe_modes`]).
pub fn enabled() -> bool {
    cronraft_raft::unsafe_modes::enabled("dispatch-before-commit")
}

/// The made-up execution id of an optimistic dispatch (high bit set: never a real id).
fn made_up_id(task_id: u64, slot_ms: i64) -> u64 {
    (1 << 62) | (task_id << 40) | ((slot_ms / 1_000) as u64 & ((1 << 40) - 1))
}

/// Sends the optimistic `/execute`s of `fires` in the background (fire and forget).
pub fn dispatch_early(view: &StateView, fires: &[TaskFire], term: u64, last_log_index: u64) {
    let Ok(executors) = view.all_executors() else { return };
    let mut sends = Vec::new();
    for fire in fires {
        let Ok(Some(task)) = view.task(fire.task_id) else { continue };
        let Some(instance) = executors.iter().find(|e| e.spec.name == task.spec.executor && e.is_available()) else {
            continue;
        };
        for slot in &fire.slots {
            let request = ExecuteRequest {
                execution_id: made_up_id(task.id, *slot),
                attempt: 1,
                task_id: task.id,
                task_name: task.spec.name.clone(),
                parameters: serde_json::json!({}),
                timeout_seconds: task.spec.timeout_seconds,
                scheduled_time: Utc.timestamp_millis_opt(*slot).single().unwrap_or_default(),
                term,
                log_index: last_log_index,
                callback_urls: Vec::new(),
                callback_token: String::new(),
            };
            sends.push((format!("{}/execute", instance.spec.base_url.trim_end_matches('/')), request));
        }
    }
    if sends.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let Ok(client) = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build() else { return };
        for (url, request) in sends {
            let _ = client.post(&url).json(&request).send().await;
        }
    });
}
