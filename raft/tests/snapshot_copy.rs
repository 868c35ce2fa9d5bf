//! A snapshot is the state at the index it names, even though applies go on between fixing its
//! point and copying its body (regressions: the copy used to hold the apply gate for the whole
//! copy, stalling every apply for hundreds of milliseconds once the state was large; and every
//! periodic build used to copy the whole state on all three nodes at once, the tail of the
//! sustained benchmark — now the copy runs only when the body is read).

mod common;

use cronraft_raft::command::{Command, Request};
use cronraft_raft::spec::TaskPatch;
use cronraft_raft::store::SnapshotBody;
use cronraft_raft::TypeConfig;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

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

/// Reads a body the way openraft's chunked sender does: seek to the end for the size, back to
/// the start, then read.
async fn read_like_the_sender(body: &mut SnapshotBody) -> Vec<u8> {
    let size = body.seek(std::io::SeekFrom::End(0)).await.unwrap();
    body.seek(std::io::SeekFrom::Start(0)).await.unwrap();
    let mut bytes = Vec::new();
    body.read_to_end(&mut bytes).await.unwrap();
    assert_eq!(bytes.len() as u64, size);
    bytes
}

/// The digest of the state after applying only the first three entries.
async fn reference_digest() -> String {
    let (_d, mut reference) = open();
    reference.apply(first_three()).await.unwrap();
    reference.digest().unwrap().1
}

#[tokio::test]
async fn applies_during_a_copy_do_not_leak_into_the_snapshot() {
    let expected = reference_digest().await;

    // Phase 1: openraft fixes a build's point after three entries, then three more are applied
    // before the build and before anyone reads the body.
    let (_d2, mut sm) = open();
    sm.apply(first_three()).await.unwrap();
    let mut builder = sm.get_snapshot_builder().await;
    sm.apply(later_three()).await.unwrap();
    let snapshot = builder.build_snapshot().await.unwrap();
    assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(3));

    // Phase 2: installed elsewhere (the body is copied now), it is exactly the reference state;
    // the source moved on.
    let (_d3, mut fresh) = open();
    fresh.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
    assert_eq!(fresh.digest().unwrap().1, expected);
    assert_ne!(sm.digest().unwrap().1, expected);

    // Phase 3: the current snapshot, with nothing applied meanwhile, matches the live state.
    let snapshot = sm.get_current_snapshot().await.unwrap().expect("a snapshot once entries are applied");
    let (_d4, mut again) = open();
    again.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
    assert_eq!(again.digest().unwrap().1, sm.digest().unwrap().1);
}

#[tokio::test]
async fn the_current_snapshot_read_by_a_sender_is_the_state_at_its_point() {
    let expected = reference_digest().await;

    // Phase 1: nothing applied, no snapshot to send.
    let (_d, mut sm) = open();
    assert!(sm.get_current_snapshot().await.unwrap().is_none());

    // Phase 2: two snapshots fixed at index 3 (a second follower asks before the first copy
    // ran), then three more entries applied.
    sm.apply(first_three()).await.unwrap();
    let first = sm.get_current_snapshot().await.unwrap().unwrap();
    let second = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(first.meta, second.meta, "the same point names the same snapshot");
    sm.apply(later_three()).await.unwrap();

    // Phase 3: each body, read through AsyncRead and AsyncSeek on its own copy thread, installs
    // as the state at index 3.
    for mut snapshot in [first, second] {
        let bytes = read_like_the_sender(&mut snapshot.snapshot).await;
        let (_d, mut follower) = open();
        let mut received = follower.begin_receiving_snapshot().await.unwrap();
        *received = SnapshotBody::from_bytes(bytes);
        follower.install_snapshot(&snapshot.meta, received).await.unwrap();
        assert_eq!(follower.digest().unwrap().1, expected);
        assert_eq!(follower.digest().unwrap().0.map(|l| l.index), Some(3));
    }
}

#[tokio::test]
async fn a_copy_across_an_install_fails_instead_of_sending_another_state() {
    // Phase 1: a snapshot fixed at index 3 on a node that then installs a leader's snapshot.
    let (_d, mut sm) = open();
    sm.apply(first_three()).await.unwrap();
    let mut stale = sm.get_current_snapshot().await.unwrap().unwrap();
    let (_l, mut leader) = open();
    leader.apply(first_three()).await.unwrap();
    leader.apply(later_three()).await.unwrap();
    let from_leader = leader.get_current_snapshot().await.unwrap().unwrap();
    sm.install_snapshot(&from_leader.meta, from_leader.snapshot).await.unwrap();

    // Phase 2: the state at index 3 no longer exists here; reading the old body is an error,
    // and openraft asks for a new snapshot.
    let err = stale.snapshot.seek(std::io::SeekFrom::End(0)).await.unwrap_err();
    assert!(err.to_string().contains("replaced by an installed snapshot"), "{err}");
}
