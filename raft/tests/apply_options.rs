//! The apply options given to `store::open` reach apply: the unsafe `ignore_watermark` switch
//! is a store option set at start, kept by the state machine (issue 16), not an environment
//! variable read inside apply. A store opened with it fires a replayed slot again; one opened
//! with the defaults ignores the replay.

use cronraft_raft::command::{Command, FireBatch, Request, Response, TaskFire};
use cronraft_raft::store::{self, ApplyOptions};
use cronraft_raft::TypeConfig;
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

const T0: i64 = 1_700_000_000_000;

fn entry(index: u64, now_ms: i64, command: Command) -> Entry<TypeConfig> {
    let request = Request { request_id: String::new(), now_ms, command };
    Entry { log_id: LogId::new(CommittedLeaderId::new(1, 0), index), payload: EntryPayload::Normal(request) }
}

/// Creates a task, fires one slot, then the same slot again; returns the executions the
/// replay created.
async fn replayed_slot_executions(options: ApplyOptions) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) = store::open(dir.path(), 16 * 1024 * 1024, options).unwrap();
    let spec = cronraft_raft::model::TaskSpec::new("a", "* * * * * *");
    sm.apply(vec![entry(1, T0, Command::CreateTask { spec })]).await.unwrap();
    let fire = || {
        let slots = vec![T0 + 1_000];
        Command::Fire(FireBatch { tasks: vec![TaskFire { task_id: 1, task_version: 1, slots, missed_before: None }] })
    };
    let first = sm.apply(vec![entry(2, T0 + 1_000, fire())]).await.unwrap();
    assert!(matches!(&first[0], Response::Fired(o) if o.executions == 1), "{first:?}");
    let replay = sm.apply(vec![entry(3, T0 + 1_500, fire())]).await.unwrap();
    match &replay[0] {
        Response::Fired(o) => o.executions,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_store_option_reaches_apply() {
    // Phase 1: the default store deduplicates the replay by the watermark.
    assert_eq!(replayed_slot_executions(ApplyOptions::default()).await, 0);
    // Phase 2: a store opened with the unsafe switch fires it again.
    assert_eq!(replayed_slot_executions(ApplyOptions { ignore_watermark: true }).await, 1);
}
