//! Fuzzing every decoder of network and disk bytes, on the stable toolchain (issue 15): random
//! bytes and mutated valid encodings (flipped, cut and inserted bytes, length prefixes
//! overwritten by huge varints) must decode to a value or an error, never panic, overflow the
//! stack or abort, and never make one allocation larger than the codec's documented bound
//! (`codec::claim_limit` of the input length, or serde's 1 MiB sequence preallocation).
//!
//! A counting global allocator records the largest single allocation of the decoding thread, so
//! a regression shows as a failed assertion, not only as an aborted test process.
//!
//! Cases per property: 256, or `CRONRAFT_FUZZ_CASES` for a longer run.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use cronraft_raft::codec::{self, claim_limit};
use cronraft_raft::command::{Command, Request, Response};
use cronraft_raft::spec::TaskPatch;
use cronraft_raft::state::{StoredDedupe, StoredExecution, StoredExecutor, StoredTask};
use cronraft_raft::store::SnapshotBody;
use cronraft_raft::{NodeId, NodeInfo, TypeConfig};
use openraft::error::{Fatal, InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::storage::RaftStateMachine;
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta, SnapshotSegmentId, StoredMembership, Vote,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

// ---- the largest allocation on this thread -------------------------------------------------

struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are noted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// serde's largest preallocation for one sequence (`size_hint::cautious`), plus slack for the
/// vector growing past it while elements are actually read.
const SERDE_PREALLOC_BYTES: usize = 2 << 20;

/// Decodes `bytes` as `T` and checks the largest allocation against the documented bound.
fn decode_checked<T: DeserializeOwned>(bytes: &[u8]) -> Result<(), TestCaseError> {
    LARGEST.with(|c| c.set(0));
    let decoded = codec::decode::<T>(bytes);
    let largest = LARGEST.with(|c| c.get());
    drop(decoded);
    let bound = claim_limit(bytes.len()).unwrap_or(0).max(SERDE_PREALLOC_BYTES);
    prop_assert!(largest <= bound, "{} bytes made one allocation of {largest} (bound {bound})", bytes.len());
    Ok(())
}

// ---- mutations ----------------------------------------------------------------------------

/// One change to a valid encoding. Positions are taken modulo the length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        mask: u8,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    /// A varint (bincode: 0xfb u16, 0xfc u32, 0xfd u64, 0xfe u128) written over or into the
    /// bytes at `at`, as a length prefix would be.
    HugeVarint {
        at: usize,
        value: u64,
        over: bool,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let huge = prop_oneof![
        Just(1u64 << 62),
        Just(u64::MAX),
        Just(u32::MAX as u64),
        Just(1u64 << 40),
        Just(70_000u64),
        any::<u64>(),
    ];
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), huge, any::<bool>()).prop_map(|(at, value, over)| Mutation::HugeVarint { at, value, over }),
    ]
}

fn apply_mutations(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in mutations {
        let at = |n: usize, len: usize| if len == 0 { 0 } else { n % (len + 1) };
        match m {
            Mutation::Flip { at: n, mask } if !b.is_empty() => {
                let i = n % b.len();
                b[i] ^= mask;
            }
            Mutation::Flip { .. } => {}
            Mutation::Truncate { at: n } => b.truncate(at(*n, b.len())),
            Mutation::Insert { at: n, bytes } => {
                let i = at(*n, b.len());
                b.splice(i..i, bytes.iter().copied());
            }
            Mutation::HugeVarint { at: n, value, over } => {
                let i = at(*n, b.len());
                let varint = [&[0xfd][..], &value.to_le_bytes()].concat();
                let end = if *over { (i + varint.len()).min(b.len()) } else { i };
                b.splice(i..end, varint);
            }
        }
    }
    b
}

/// Random bytes, or one of `seeds` with one to four mutations.
fn input(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512),
        4 => (0..n, prop::collection::vec(mutation(), 1..5)).prop_map(move |(i, ms)| apply_mutations(&seeds[i], &ms)),
    ]
}

fn config() -> Config {
    let cases = std::env::var("CRONRAFT_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// Runs `check` on `seeds` and on inputs built from them.
fn fuzz(seeds: Vec<Vec<u8>>, check: impl Fn(&[u8]) -> Result<(), TestCaseError>) {
    for seed in &seeds {
        check(seed).unwrap();
    }
    TestRunner::new(config()).run(&input(seeds), |bytes| check(&bytes)).unwrap();
}

fn enc<T: Serialize>(value: &T) -> Vec<u8> {
    codec::encode(value).unwrap()
}

// ---- valid values to mutate ---------------------------------------------------------------

/// The single-variant on-disk envelopes whose types are private to the store (`StoredEntry`,
/// `StoredVote`, `StoredPurged`, `StoredApplied`, `StoredMembershipConfig`): an enum with one
/// variant `V1(T)` encodes exactly as this one does.
#[derive(Serialize, Deserialize)]
enum Envelope<T> {
    V1(T),
}

fn log_id(index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(3, 1), index)
}

fn vote() -> Vote<NodeId> {
    Vote::new_committed(3, 1)
}

fn membership() -> Membership<NodeId, NodeInfo> {
    let node = |n: u64| NodeInfo { http_addr: format!("10.88.0.{n}:7340"), raft_addr: format!("10.88.0.{n}:7341") };
    let nodes = (1..=3).map(|n| (n, node(n))).collect::<std::collections::BTreeMap<_, _>>();
    Membership::new(vec![[1, 2, 3].into_iter().collect()], nodes)
}

fn commands() -> Vec<Command> {
    let patch = TaskPatch {
        description: Some("fuzz".into()),
        cron_expression: Some("*/5 * * * * *".into()),
        ..Default::default()
    };
    let create = Command::CreateTask { spec: common::spec("fuzz-task", "0 * * * * *") };
    let update = Command::UpdateTask { id: 1, patch, expected_version: Some(1) };
    let request = |command| Request { request_id: "req-1".into(), now_ms: 1_700_000_000_000, command };
    vec![
        create.clone(),
        update.clone(),
        Command::DeleteTask { id: 9 },
        Command::TriggerTask { id: 1, parameters: Some("{\"a\":1}".into()), requested_by: "fuzz".into() },
        Command::Batch(vec![request(create), request(update)]),
    ]
}

fn entries() -> Vec<Entry<TypeConfig>> {
    let mut out = vec![
        Entry { log_id: log_id(1), payload: EntryPayload::Blank },
        Entry { log_id: log_id(2), payload: EntryPayload::Membership(membership()) },
    ];
    for (i, command) in commands().into_iter().enumerate() {
        let request = Request { request_id: format!("r{i}"), now_ms: 1_700_000_000_000 + i as i64, command };
        out.push(Entry { log_id: log_id(3 + i as u64), payload: EntryPayload::Normal(request) });
    }
    out
}

fn snapshot_meta() -> SnapshotMeta<NodeId, NodeInfo> {
    SnapshotMeta {
        last_log_id: Some(log_id(7)),
        last_membership: StoredMembership::new(Some(log_id(2)), membership()),
        snapshot_id: "3-7".into(),
    }
}

/// Responses, tasks and executions as apply makes them.
fn applied() -> Vec<Response> {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (_dir, mut sm) = common::open();
    let normal = entries().into_iter().filter(|e| matches!(e.payload, EntryPayload::Normal(_)));
    rt.block_on(sm.apply(normal.collect::<Vec<_>>())).unwrap()
}

// ---- the properties -----------------------------------------------------------------------

#[test]
fn raft_requests_decode_or_fail_cleanly() {
    let append = AppendEntriesRequest {
        vote: vote(),
        prev_log_id: Some(log_id(2)),
        entries: entries(),
        leader_commit: Some(log_id(5)),
    };
    let heartbeat = AppendEntriesRequest::<TypeConfig> { entries: vec![], ..append.clone() };
    fuzz(vec![enc(&append), enc(&heartbeat)], decode_checked::<AppendEntriesRequest<TypeConfig>>);
    let vote_req = VoteRequest { vote: vote(), last_log_id: Some(log_id(9)) };
    fuzz(vec![enc(&vote_req)], decode_checked::<VoteRequest<NodeId>>);
    let chunk = InstallSnapshotRequest::<TypeConfig> {
        vote: vote(),
        meta: snapshot_meta(),
        offset: 4096,
        data: (0..200u8).collect(),
        done: false,
    };
    fuzz(vec![enc(&chunk)], decode_checked::<InstallSnapshotRequest<TypeConfig>>);
}

#[test]
fn raft_responses_decode_or_fail_cleanly() {
    type AppendResult = Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>;
    type VoteResult = Result<VoteResponse<NodeId>, RaftError<NodeId>>;
    type SnapshotResult = Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>;
    let appends: Vec<AppendResult> = vec![
        Ok(AppendEntriesResponse::Success),
        Ok(AppendEntriesResponse::PartialSuccess(Some(log_id(4)))),
        Ok(AppendEntriesResponse::Conflict),
        Ok(AppendEntriesResponse::HigherVote(vote())),
        Err(RaftError::Fatal(Fatal::Stopped)),
    ];
    fuzz(appends.iter().map(enc).collect(), decode_checked::<AppendResult>);
    let votes: Vec<VoteResult> =
        vec![Ok(VoteResponse::new(vote(), Some(log_id(3)), true)), Err(RaftError::Fatal(Fatal::Panicked))];
    fuzz(votes.iter().map(enc).collect(), decode_checked::<VoteResult>);
    let segment = |offset| SnapshotSegmentId { id: "3-7".into(), offset };
    let mismatch = SnapshotMismatch { expect: segment(0), got: segment(4096) };
    let snapshots: Vec<SnapshotResult> = vec![
        Ok(InstallSnapshotResponse { vote: vote() }),
        Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(mismatch))),
    ];
    fuzz(snapshots.iter().map(enc).collect(), decode_checked::<SnapshotResult>);
}

#[test]
fn log_entries_and_log_metadata_decode_or_fail_cleanly() {
    fuzz(entries().iter().map(|e| enc(&Envelope::V1(e))).collect(), decode_checked::<Envelope<Entry<TypeConfig>>>);
    fuzz(vec![enc(&Envelope::V1(vote()))], decode_checked::<Envelope<Vote<NodeId>>>);
    fuzz(vec![enc(&Envelope::V1(log_id(5)))], decode_checked::<Envelope<LogId<NodeId>>>);
    let stored = StoredMembership::new(Some(log_id(2)), membership());
    fuzz(vec![enc(&Envelope::V1(stored))], decode_checked::<Envelope<StoredMembership<NodeId, NodeInfo>>>);
}

#[test]
fn the_command_vocabulary_decodes_or_fails_cleanly() {
    let commands = commands();
    fuzz(commands.iter().map(enc).collect(), decode_checked::<Command>);
    let requests: Vec<Request> =
        commands.into_iter().map(|command| Request { request_id: "x".into(), now_ms: 5, command }).collect();
    fuzz(requests.iter().map(enc).collect(), decode_checked::<Request>);
    fuzz(applied().iter().map(enc).collect(), decode_checked::<Response>);
}

#[test]
fn stored_state_values_decode_or_fail_cleanly() {
    let responses = applied();
    let tasks: Vec<_> =
        responses.iter().filter_map(|r| if let Response::Task(t) = r { Some(t.clone()) } else { None }).collect();
    let executions: Vec<_> =
        responses.iter().filter_map(|r| if let Response::Execution(e) = r { Some(e.clone()) } else { None }).collect();
    assert!(!tasks.is_empty() && !executions.is_empty(), "apply made a task and an execution");
    fuzz(tasks.iter().map(|t| enc(&StoredTask::V1(t.clone()))).collect(), decode_checked::<StoredTask>);
    fuzz(executions.iter().map(|e| enc(&StoredExecution::V2(e.clone()))).collect(), decode_checked::<StoredExecution>);
    let dedupe: Vec<_> = responses
        .iter()
        .map(|r| enc(&StoredDedupe::V1 { at_ms: 9, fingerprint: [7; 16], response: r.clone() }))
        .collect();
    fuzz(dedupe, decode_checked::<StoredDedupe>);
    // An executor record is not made by these commands: random bytes and mutations of a task's
    // encoding (same variant, other fields) still exercise its decoder.
    fuzz(tasks.iter().map(|t| enc(&StoredTask::V1(t.clone()))).collect(), decode_checked::<StoredExecutor>);
}

#[test]
fn a_snapshot_body_installs_or_fails_cleanly() {
    // The real decoder: the state machine's install of a received body.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (_dir, mut sm) = common::open();
    let _ = rt.block_on(sm.apply(entries().into_iter().skip(2).collect::<Vec<_>>())).unwrap();
    let snapshot = rt.block_on(sm.get_current_snapshot()).unwrap().unwrap();
    let body = snapshot.snapshot.into_bytes().unwrap();
    let meta = snapshot.meta;
    let (_dir2, target) = common::open();
    fuzz(vec![body], |bytes| {
        let mut target = target.clone();
        let installed = rt.block_on(target.install_snapshot(&meta, Box::new(SnapshotBody::from_bytes(bytes.to_vec()))));
        // Refused, or installed (a mutation that still decodes as key/value pairs). An installed
        // state may hold garbage values: reading them back is then a decode error, not a panic.
        let _ = installed;
        let _ = target.view().applied_state();
        Ok(())
    });
}

#[test]
fn the_allocation_counter_sees_what_a_length_prefix_asks_for() {
    // A string claiming 60,000 bytes in 9 bytes of input: under the 64 KiB limit, so bincode
    // allocates it before finding the input short. The counter must see that allocation, or the
    // bound checked above would prove nothing.
    let bytes = [&[0xfd][..], &60_000u64.to_le_bytes()].concat();
    LARGEST.with(|c| c.set(0));
    assert!(codec::decode::<String>(&bytes).is_err());
    assert!(LARGEST.with(|c| c.get()) >= 60_000);
}
