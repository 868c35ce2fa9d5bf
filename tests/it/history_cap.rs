//! The cluster-wide bound on execution history (issue 19, point 7): past `retention.records_max`
//! the leader has the oldest final records dropped whatever their age, statistics stay, `/metrics`
//! shows the count against the cap, and a warning comes first.

use crate::common;

use std::time::Duration;

use common::{wait_for, Cluster};
use cronraft_api::context::Consistency;
use cronraft_api::types::{TaskInput, TriggerInput};

#[tokio::test(flavor = "multi_thread")]
async fn past_the_cluster_cap_the_oldest_final_records_go_and_the_statistics_stay() {
    let config = "[retention]\nrecords_max = 1000\ninterval_ms = 200\n";
    let c = Cluster::start(1, config).await;
    let client = c.client(1);
    // No executor serves `nobody` and there is no retry: each run fails at once, final.
    let mut input: TaskInput = common::task("capped");
    input.executor = Some("nobody".into());
    input.max_retry = Some(0);
    let task = client.create_task(&input, None).await.unwrap();

    // Phase 1: 1,300 manual runs, 50 at a time.
    let trigger = TriggerInput::default();
    for _ in 0..26 {
        let runs = (0..50).map(|_| client.trigger_task("capped", &trigger, None));
        for run in futures::future::join_all(runs).await {
            run.unwrap();
        }
    }

    // Phase 2: the history comes down to the cap, the oldest records first.
    wait_for("the history at the cap", Duration::from_secs(60), || async {
        let n = c.metric(1, "cronraft_execution_records").await?;
        (n <= 1000.0).then_some(())
    })
    .await;
    assert_eq!(c.metric(1, "cronraft_execution_records_max").await, Some(1000.0));
    let page = client.list_executions(Some("capped"), None, 1, 1, Consistency::Linearizable).await.unwrap();
    assert!(page.total <= 1000 && page.total >= 900, "{} records kept", page.total);
    let newest = page.items[0].id;
    assert!(client.get_execution(newest, Consistency::Linearizable).await.is_ok());
    let oldest_kept = newest + 1 - page.total;
    assert!(oldest_kept > 300, "the oldest go first: {oldest_kept}");
    let first = client.get_execution(oldest_kept - 1, Consistency::Linearizable).await;
    assert_eq!(first.unwrap_err().code(), Some("execution_not_found"));

    // Phase 3: the statistics still count all 1,300 runs; the warning came before.
    let stats = client.task_stats(&task.id.to_string(), Consistency::Linearizable).await.unwrap();
    assert_eq!(stats.windows.last_24h.total, 1300);
    let log = c.log(1);
    assert!(log.contains("% of retention.records_max"), "no warning before the cut");
}
