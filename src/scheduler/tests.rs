//! The scheduler against a real one-node Raft (sled store in a temp dir): what only the loop's
//! use of openraft can show.

use std::sync::Arc;

use cronraft_raft::command::{Command, Request, Response, TaskFire};
use cronraft_raft::model::TaskSpec;
use cronraft_raft::{store, Raft};

use super::{Scheduler, SchedulerMetrics};
use crate::clock::now_ms;

const ENTRIES: i64 = 200;

/// A parallel task in a group nobody serves, with no retry (shared with the timers' tests).
pub(super) fn spec(name: &str, cron: &str) -> TaskSpec {
    TaskSpec {
        max_retry: 0,
        timeout_seconds: 60,
        executor: "nobody".into(),
        catchup_window_seconds: 60,
        ..TaskSpec::new(name, cron)
    }
}

async fn one_node_leader(dir: &std::path::Path) -> (Raft, store::StateMachineStore, Arc<store::CommitClock>) {
    let (raft, sm, commit_clock) = crate::test_raft::pristine(dir, 64 << 20).await;
    crate::test_raft::lead_alone(&raft).await;
    (raft, sm, commit_clock)
}

/// Regression: each fire entry used to be proposed from its own spawned task, so the runtime
/// could append the entry with a task's slot n+1 before the one with slot n; apply then dropped
/// slot n as already fired (it is at or before the watermark), and no record stood for it. Here
/// the waits for the commits run in reverse order, the worst the runtime could do: every slot
/// must still get its own record. What this guards is `enqueue`'s contract (the entry is on
/// RaftCore's channel when it returns); `fire_due` keeps its side by calling it inline, never
/// from a spawned task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_entries_reach_the_log_in_collection_order_whatever_order_their_commits_are_awaited() {
    // Phase 1: a one-node cluster with one task that fires every second.
    let dir = tempfile::tempdir().unwrap();
    let (raft, sm, commit_clock) = one_node_leader(dir.path()).await;
    let created_ms = now_ms();
    let create = Request {
        request_id: "create".into(),
        now_ms: created_ms,
        command: Command::CreateTask { spec: spec("every-second", "* * * * * *") },
    };
    let created = raft.client_write(create).await.unwrap();
    // The log store saw the create's commit before openraft answered (the moment fire lag uses).
    assert!(commit_clock.committed_at(created.log_id.index).is_some(), "the commit moment was recorded");
    let Response::Task(task) = created.data else { panic!("not created") };
    let metrics = Arc::new(SchedulerMetrics::default());
    let scheduler =
        Scheduler { node_id: 1, raft: raft.clone(), sm: sm.clone(), metrics: metrics.clone(), commit_clock };

    // Phase 2: one entry per slot, handed over in slot order, all in flight together.
    let first_slot = (created_ms / 1_000 + 1) * 1_000;
    let mut pending = Vec::new();
    for k in 0..ENTRIES {
        let fire = TaskFire {
            task_id: task.id,
            task_version: task.version,
            slots: vec![first_slot + k * 1_000],
            missed_before: None,
        };
        let fires = vec![fire];
        let commit = scheduler.enqueue(1, &fires, now_ms()).await.expect("RaftCore is running");
        pending.push((commit, fires));
    }

    // Phase 3: their commits awaited from spawned tasks, started newest first.
    let mut waits = Vec::new();
    for (commit, fires) in pending.into_iter().rev() {
        let s = scheduler.clone();
        waits.push(tokio::spawn(async move { s.await_commit(commit, fires).await }));
    }
    for w in waits {
        assert!(w.await.unwrap(), "every entry commits");
    }

    // Phase 4: one record per slot, none dropped as a duplicate.
    let page = sm.view().list_executions(Some(task.id), None, 1, 1_000).unwrap();
    let mut slots: Vec<i64> = page.items.iter().map(|e| e.scheduled_ms).collect();
    slots.sort_unstable();
    let expected: Vec<i64> = (0..ENTRIES).map(|k| first_slot + k * 1_000).collect();
    assert_eq!(slots, expected, "every slot has exactly one record");
    // Both lags were measured for every slot, and no slot was committed after it was applied.
    let (fire, applied) = (metrics.summary(), metrics.applied_summary());
    assert_eq!((fire.samples, applied.samples), (ENTRIES as u64, ENTRIES as u64));
    assert!(fire.max_ms <= applied.max_ms, "commit lag {fire:?} is not above applied lag {applied:?}");
    raft.shutdown().await.unwrap();
}
