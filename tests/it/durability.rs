//! Durability is a syscall, not a promise: every acknowledged write is preceded by an
//! `fdatasync` (sled's own flush only calls `sync_file_range`, which is not one).
//!
//! The node runs under `strace -f -c`, which counts the sync calls of all its threads. A fresh
//! machine may lack strace, so that test is ignored by default with the package in the reason;
//! `.ci/run` installs strace and runs it.

use crate::common;

use common::{task, Cluster};

/// Parses the `calls` column of `strace -c` output for `syscall`.
fn calls(summary: &str, syscall: &str) -> u64 {
    summary
        .lines()
        .find(|l| l.split_whitespace().last() == Some(syscall))
        .and_then(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            // % time, seconds, usecs/call, calls, [errors], syscall
            cols.get(3)?.parse().ok()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs strace (apt-get install strace); .ci/run runs it"]
async fn every_acknowledged_write_is_fdatasynced() {
    assert!(
        std::process::Command::new("strace").arg("-V").output().is_ok(),
        "this test needs strace (apt-get install strace; .ci/run installs it)"
    );
    let mut c = Cluster::new("");
    let out = c.root().join("strace.txt");
    let out_arg = out.to_str().unwrap().to_string();
    c.spawn_wrapped(
        1,
        None,
        None,
        &["strace", "-f", "-c", "-e", "trace=fdatasync,fsync,sync_file_range", "-o", &out_arg, "--"],
    );
    c.wait_leader().await;

    // Phase 1: sequential writes: each is acknowledged only after its own log batch is synced.
    let writes = 50u64;
    let syncs_before = c.metric(1, "cronraft_storage_syncs_total").await.unwrap();
    for i in 0..writes {
        c.client(1).create_task(&task(&format!("d{i}")), None).await.unwrap();
    }
    let syncs_after = c.metric(1, "cronraft_storage_syncs_total").await.unwrap();
    assert!(syncs_after - syncs_before >= writes as f64, "{syncs_before} → {syncs_after} for {writes} writes");

    // Phase 2: the kernel agrees: at least one fdatasync per acknowledged write.
    let status = c.stop_wrapped(1);
    assert!(status.success(), "strace exit {status:?}");
    let summary = std::fs::read_to_string(&out).expect("strace summary");
    let fdatasyncs = calls(&summary, "fdatasync");
    assert!(fdatasyncs >= writes, "{fdatasyncs} fdatasync calls for {writes} acknowledged writes:\n{summary}");
}

#[test]
fn strace_summary_parsing() {
    let s = "% time     seconds  usecs/call     calls    errors syscall\n\
             ------ ----------- ----------- --------- --------- ----------------\n\
              80.00    0.010000         100       102           fdatasync\n\
              20.00    0.002000          10       200           sync_file_range\n";
    assert_eq!(calls(s, "fdatasync"), 102);
    assert_eq!(calls(s, "sync_file_range"), 200);
    assert_eq!(calls(s, "fsync"), 0);
}

/// Group commit: concurrent writes share log entries (and so fsyncs), each still applied once.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writes_share_log_entries() {
    let c = common::Cluster::start(3, "").await;
    let leader = c.wait_leader().await;
    let before = c.metric(leader, "cronraft_raft_last_log_index").await.unwrap();
    let syncs_before = c.metric(leader, "cronraft_storage_syncs_total").await.unwrap();
    let writes = 64;
    let all = (0..writes).map(|i| {
        let client = c.client(leader);
        async move { client.create_task(&task(&format!("g{i}")), None).await }
    });
    let results = futures::future::join_all(all).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let after = c.metric(leader, "cronraft_raft_last_log_index").await.unwrap();
    let syncs = c.metric(leader, "cronraft_storage_syncs_total").await.unwrap() - syncs_before;
    assert!(after - before < writes as f64, "{writes} writes took {} entries", after - before);
    assert!(syncs < writes as f64, "{writes} writes took {syncs} leader fsyncs");
    let page =
        c.client(leader).list_tasks(None, 1, 500, cronraft_api::context::Consistency::Linearizable).await.unwrap();
    assert_eq!(page.total, writes);
    eprintln!("{writes} concurrent writes: {} entries, {syncs} leader fsyncs", after - before);
}
