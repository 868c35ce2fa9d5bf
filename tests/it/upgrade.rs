//! Upgrades (issue 19, point 5): a rolling restart of every node onto another binary while tasks
//! fire, with no slot missed or recorded twice; and a node that refuses, with an error naming
//! both versions, a data directory written in a format it does not know. (The wire version's
//! refusal is in `wire::an_rpc_in_an_unknown_wire_version_is_refused…`.)
//!
//! The "new build" of the rolling test is this build's binary copied to another path: the test
//! shows the procedure (graceful stop, a swapped binary, followers first and the leader last)
//! keeps the scheduling promise; that two different releases read each other's data and wire is
//! what the format versions guard.

use crate::common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::slots::{every_second, records, run_for};
use common::{task, wait_for, Cluster};
use cronraft_api::context::Consistency;
use cronraft_api::types::TaskView;
use cronraft_raft::model::{ExecutionStatus, Trigger};

const SECOND: i64 = 1_000;

/// The path a node's process runs from.
fn exe_of(c: &Cluster, id: u64) -> std::path::PathBuf {
    let pid = c.nodes[&id].pid().expect("running");
    std::fs::read_link(format!("/proc/{pid}/exe")).expect("the node's executable")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_onto_a_new_binary_misses_and_repeats_no_slot() {
    let mut c = Cluster::start(3, "").await;
    let client = c.any_client();
    let mut tasks: Vec<TaskView> = Vec::new();
    for name in ["roll-a", "roll-b"] {
        tasks.push(client.create_task(&every_second(name), None).await.unwrap());
    }
    run_for(&c, Duration::from_secs(3)).await;

    // Phase 1: the "new build" beside the old one.
    let next = c.root().join("cronraft-next");
    std::fs::copy(&c.bin, &next).unwrap();
    c.bin = next.clone();

    // Phase 2: followers first, the leader last; each stopped gracefully, started on the new
    // binary, and back with the others before the next one goes.
    let leader = c.wait_leader().await;
    let mut order: Vec<u64> = c.nodes.keys().copied().filter(|id| *id != leader).collect();
    order.push(leader);
    for id in order {
        let status = c.stop(id);
        assert!(status.success(), "node {id} stopped gracefully: {status:?}");
        c.restart(id);
        assert_eq!(exe_of(&c, id), next, "node {id} runs the new binary");
        c.wait_voters(3).await;
        wait_for(&format!("node {id} caught up"), Duration::from_secs(30), || async {
            let view = c.view(id).await?;
            let applied = |n: u64| view.nodes.iter().find(|v| v.id == n).and_then(|v| v.applied_index);
            let (mine, max) = (applied(id)?, view.nodes.iter().filter_map(|v| v.applied_index).max()?);
            (max.saturating_sub(mine) <= 5).then_some(())
        })
        .await;
        run_for(&c, Duration::from_secs(1)).await;
    }

    // Phase 3: every slot since creation recorded once, none missed: a restart's failover is well
    // inside the misfire threshold.
    run_for(&c, Duration::from_secs(2)).await;
    let client = c.any_client();
    for t in &tasks {
        client.pause_task(&t.id.to_string(), None).await.unwrap();
    }
    for t in &tasks {
        let mut by_slot: BTreeMap<i64, u32> = BTreeMap::new();
        for e in records(&client, t.id).await.values().filter(|e| e.trigger != Trigger::Manual) {
            assert_ne!(e.status, ExecutionStatus::Missed, "task {}: {e:?}", t.name);
            *by_slot.entry(e.scheduled_time.timestamp_millis()).or_default() += 1;
        }
        assert!(by_slot.values().all(|n| *n == 1), "task {}: a slot recorded twice: {by_slot:?}", t.name);
        let slots: Vec<i64> = by_slot.keys().copied().collect();
        let first = (t.created_at.timestamp_millis() / SECOND + 1) * SECOND;
        assert_eq!(slots.first(), Some(&first), "task {}", t.name);
        assert!(slots.windows(2).all(|w| w[1] - w[0] == SECOND), "task {}: a slot is missing: {slots:?}", t.name);
        assert!(slots.len() >= 8, "task {}: {} slots", t.name, slots.len());
    }
    c.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_directory_in_an_unknown_format_is_refused_naming_both_versions() {
    let mut c = Cluster::start(1, "").await;
    c.client(1).create_task(&task("kept"), None).await.unwrap();
    assert!(c.stop(1).success());
    let data = c.root().join("node1").join("data");

    // Phase 1: marked as written by a newer build, the directory is refused at start with an
    // error that names both versions and what to do; nothing is changed.
    cronraft_raft::store::set_format_version(&data, 2).unwrap();
    let out = Command::new(&c.bin)
        .args(["serve", "--node-id", "1", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--no-agent"])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("format version 2") && err.contains("up to version 1"), "{err}");
    assert!(err.contains("run a newer cronraft"), "{err}");

    // Phase 2: back at this build's version, the node starts with its data.
    cronraft_raft::store::set_format_version(&data, 1).unwrap();
    c.restart(1);
    c.wait_leader().await;
    c.client(1).get_task("kept", Consistency::Linearizable).await.unwrap();
}
