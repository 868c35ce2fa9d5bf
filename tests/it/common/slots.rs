//! Every-second tasks for tests that follow slots across a disruption (backup and restore,
//! disaster recovery, a rolling upgrade): the task, its records, and letting schedule time pass.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cronraft_api::client::Client;
use cronraft_api::context::Consistency;
use cronraft_api::types::{ExecutionView, TaskInput};

use super::{wait_for, Cluster};

/// A task with a slot every second whose runs wait for an executor that never comes (group
/// `nobody`), retried with backoff for the whole test: every slot leaves a record and nothing
/// outside the cluster is needed.
pub fn every_second(name: &str) -> TaskInput {
    let mut t: TaskInput = serde_json::from_value(serde_json::json!({
        "name": name, "cron_expression": "* * * * * *", "execution_mode": "parallel", "misfire_policy": "fire_once",
    }))
    .unwrap();
    t.executor = Some("nobody".into());
    t.max_retry = Some(12);
    t
}

/// Every record of `task`, by id (linearizable reads, pages of 500).
pub async fn records(client: &Client, task: u64) -> BTreeMap<u64, ExecutionView> {
    let mut all = BTreeMap::new();
    for page in 1.. {
        let p =
            client.list_executions(Some(&task.to_string()), None, page, 500, Consistency::Linearizable).await.unwrap();
        let n = p.items.len();
        all.extend(p.items.into_iter().map(|e| (e.id, e)));
        if n < 500 {
            break;
        }
    }
    all
}

/// Lets schedule time pass while polling the cluster.
pub async fn run_for(c: &Cluster, how_long: Duration) {
    let until = Instant::now() + how_long;
    wait_for("schedule time to pass", how_long + Duration::from_secs(5), || async {
        let _ = c.any_client().scheduler_status().await;
        (Instant::now() >= until).then_some(())
    })
    .await;
}
