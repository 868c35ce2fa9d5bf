//! A snapshot is the state at the index it names, even though applies go on while it is copied
//! (regression: the copy used to hold the apply gate for the whole copy, stalling every apply —
//! and the scheduler's fires — for hundreds of milliseconds once the state was large).

mod common;

use cronraft_raft::command::{Command, Request};
use cronraft_raft::spec::TaskPatch;
use cronraft_raft::TypeConfig;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

use common::{open, spec};

fn entry(index: u64, command: Command) -> Entry<TypeConfig> {
    let request = Request { request_id: format!("r{index}"), now_ms: 1_000 * index as i64, command };
    Entry { log_id: LogId::new(CommittedLeaderId::new(1, 0), index), payload: EntryPayload::Normal(request) }
}

fn first_three() -> Vec<Entry<TypeConfig>> {
    (1..=3).map(|i| entry(i, Command::CreateTask { spec: spec(&format!("t{i}"), "0 * * * * *") })).collect()
}

fn later_three() -> Vec<Entry<TypeConfig>> {
    let patch = TaskPatch { description: Some("changed after the copy began".into()), ..Default::default() };
    vec![
        entry(4, Command::CreateTask { spec: spec("t4", "0 * * * * *") }),
        entry(5, Command::UpdateTask { id: 1, patch, expected_version: None }),
        entry(6, Command::DeleteTask { id: 2 }),
    ]
}

#[tokio::test]
async fn applies_during_a_copy_do_not_leak_into_the_snapshot() {
    // Phase 1: the reference — a store that applied only the first three entries.
    let (_d1, mut reference) = open();
    reference.apply(first_three()).await.unwrap();
    let (_, expected) = reference.digest().unwrap();

    // Phase 2: start a snapshot after three entries, then apply three more before it is built.
    let (_d2, mut sm) = open();
    sm.apply(first_three()).await.unwrap();
    let mut builder = sm.get_snapshot_builder().await;
    sm.apply(later_three()).await.unwrap();
    let snapshot = builder.build_snapshot().await.unwrap();
    assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(3));

    // Phase 3: installed elsewhere, it is exactly the reference state; the source moved on.
    let (_d3, mut fresh) = open();
    fresh.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
    assert_eq!(fresh.digest().unwrap().1, expected);
    assert_ne!(sm.digest().unwrap().1, expected);

    // Phase 4: a second snapshot, with nothing applied meanwhile, matches the live state.
    let mut builder = sm.get_snapshot_builder().await;
    let snapshot = builder.build_snapshot().await.unwrap();
    let (_d4, mut again) = open();
    again.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
    assert_eq!(again.digest().unwrap().1, sm.digest().unwrap().1);
}
