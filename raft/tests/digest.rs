//! `/cluster/digest` reads a fixed point without holding the apply path (issue 15: the digest
//! held the apply gate for a whole scan, so a client calling it in a loop stalled every apply,
//! and so every fire, for the length of the scan). The digest must still be the state at the
//! applied index it reports, byte for byte the old whole-scan digest, because the chaos harness's
//! convergence checker compares replicas by it.

mod common;

use std::time::{Duration, Instant};

use cronraft_raft::command::{Command, Request};
use cronraft_raft::spec::TaskPatch;
use cronraft_raft::TypeConfig;
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

use common::{open, spec};

/// Tasks in the large state: enough that a scan takes far longer than one apply.
const TASKS: u64 = 20_000;

fn entry(index: u64, command: Command) -> Entry<TypeConfig> {
    let request = Request { request_id: format!("r{index}"), now_ms: 1_000 * index as i64, command };
    Entry { log_id: LogId::new(CommittedLeaderId::new(1, 0), index), payload: EntryPayload::Normal(request) }
}

fn create(index: u64) -> Entry<TypeConfig> {
    entry(index, Command::CreateTask { spec: spec(&format!("task-{index}"), "0 * * * * *") })
}

/// Waits (bounded) until `cond` holds.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_go_on_while_a_digest_scans_and_the_digest_is_the_state_at_its_point() {
    // Phase 1: a large state, and its old-style digest (a whole scan while nothing applies).
    let (_dir, mut sm) = open();
    let mut index = 0;
    while index < TASKS {
        let batch: Vec<_> = (index + 1..=(index + 1_000).min(TASKS)).map(create).collect();
        index += batch.len() as u64;
        sm.apply(batch).await.unwrap();
    }
    let expected = sm.view().digest().unwrap();

    // Phase 2: a digest starts on another thread; once it has fixed its point, applies that
    // change, delete and create keys (before, inside and after the scan's position) complete
    // while it is still scanning.
    let digester = sm.clone();
    let scan = std::thread::spawn(move || digester.digest());
    wait_until("the digest fixed its point", || sm.recording_points() == 1 || scan.is_finished());
    let patch = TaskPatch { description: Some("changed during the digest".into()), ..Default::default() };
    let started = Instant::now();
    let during = vec![
        entry(TASKS + 1, Command::UpdateTask { id: 1, patch: patch.clone(), expected_version: None }),
        entry(TASKS + 2, Command::DeleteTask { id: TASKS / 2 }),
        entry(TASKS + 3, Command::DeleteTask { id: TASKS }),
        create(TASKS + 4),
        entry(TASKS + 5, Command::UpdateTask { id: TASKS - 1, patch, expected_version: None }),
    ];
    sm.apply(during).await.unwrap();
    let apply_took = started.elapsed();
    assert!(!scan.is_finished(), "the applies waited for the digest ({apply_took:?}): it holds the apply path");
    assert!(apply_took < Duration::from_secs(2), "an apply during a digest took {apply_took:?}");

    // Phase 3: the digest is the state at its point, equal to the old whole-scan digest there.
    let (applied, digest) = scan.join().unwrap().unwrap();
    assert_eq!(applied.map(|l| l.index), Some(TASKS));
    assert_eq!(digest, expected, "the digest must be the state at the index it reports");
    assert_eq!(sm.recording_points(), 0, "a finished digest stops recording pre-images");

    // Phase 4: a digest now is the new state, which differs.
    let (applied, now) = sm.digest().unwrap();
    assert_eq!(applied.map(|l| l.index), Some(TASKS + 5));
    assert_eq!(now, sm.view().digest().unwrap());
    assert_ne!(now, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_run_one_at_a_time() {
    let (_dir, mut sm) = open();
    sm.apply((1..=5_000).map(create).collect::<Vec<_>>()).await.unwrap();
    let expected = sm.view().digest().unwrap();
    // Four callers at once: each gets the same answer, and at most one point records at a time.
    let scans: Vec<_> = (0..4)
        .map(|_| {
            let sm = sm.clone();
            std::thread::spawn(move || sm.digest())
        })
        .collect();
    let mut most = 0;
    while !scans.iter().all(|s| s.is_finished()) {
        most = most.max(sm.recording_points());
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(most <= 1, "{most} digests recorded pre-images at once");
    for scan in scans {
        assert_eq!(scan.join().unwrap().unwrap().1, expected);
    }
}
