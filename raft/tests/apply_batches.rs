//! A long apply run is written in several sled batches, each ending on an entry boundary, and
//! the result is the same state as applying the entries one at a time.
//!
//! Regression: a run was one sled batch however long. sled's `apply_batch` holds a process-wide
//! write lock, so a run of a few large fire entries (a 100,000-slot burst) blocked every log
//! append of the node for seconds and heartbeats timed out.

mod common;

use cronraft_raft::command::{Command, Request};
use cronraft_raft::TypeConfig;
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

use common::{open, spec};

/// Creates in the run: each writes at least five keys (task, name, status, dedupe answer and
/// expiry), so the run is well over one batch's 8,192 keys.
const CREATES: u64 = 2_000;

fn creates() -> Vec<Entry<TypeConfig>> {
    (1..=CREATES)
        .map(|i| {
            let command = Command::CreateTask { spec: spec(&format!("t{i}"), "0 0 0 1 1 *") };
            let request = Request { request_id: format!("r{i}"), now_ms: 1_000 * i as i64, command };
            Entry { log_id: LogId::new(CommittedLeaderId::new(1, 0), i), payload: EntryPayload::Normal(request) }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_is_written_in_batches_that_end_on_entry_boundaries() {
    // Phase 1: the reference — the same entries applied one per run.
    let (_d1, mut reference) = open();
    for entry in creates() {
        reference.apply(vec![entry]).await.unwrap();
    }
    let (_, expected) = reference.digest().unwrap();

    // Phase 2: all of them as one run; each written batch is announced with its last index.
    let (_d2, mut sm) = open();
    let mut announced = sm.subscribe();
    let responses = sm.apply(creates()).await.unwrap();
    assert_eq!(responses.len() as u64, CREATES, "one response per entry");
    let mut batch_ends = Vec::new();
    while let Ok(applied) = announced.try_recv() {
        batch_ends.push(applied.log_index);
    }

    // Phase 3: more than one batch, each ending on an entry, in order, the last at the run's end.
    assert!(batch_ends.len() >= 2, "a run of {CREATES} creates was written as {batch_ends:?}");
    assert!(batch_ends.windows(2).all(|w| w[0] < w[1]), "batches in log order: {batch_ends:?}");
    assert_eq!(batch_ends.last(), Some(&CREATES));

    // Phase 4: the same state, at the same applied index, as applying one entry at a time.
    let (applied, digest) = sm.digest().unwrap();
    assert_eq!(applied.map(|l| l.index), Some(CREATES));
    assert_eq!(digest, expected);
}
