//! The Raft listener of a live node against bad bytes (issue 15): one 17-byte `POST
//! /raft/append` used to abort any node (`memory allocation of 4611686018427387904 bytes
//! failed`). Random and mutated bodies go to `/raft/append`, `/raft/vote` and `/raft/snapshot`;
//! after each phase the node must still answer `/health` and accept a write.
//!
//! Mutations that still decode into a well-formed RPC with a current vote are not sent: such a
//! request is a forged leader, which only authentication (the next issue) can refuse. Every seed
//! carries vote term 0, which the node refuses before acting on it.
//!
//! Cases: 200 per endpoint, or `CRONRAFT_FUZZ_CASES`.

use crate::common;

use std::time::Duration;

use common::{task, Cluster};
use cronraft_raft::codec;
use cronraft_raft::command::{Command, Request};
use cronraft_raft::{NodeId, TypeConfig};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, SnapshotMeta, StoredMembership, Vote};

/// A deterministic generator (splitmix64): the same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One to four of: flip a byte, cut, insert bytes, write a huge varint length (0xfd + u64).
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(4) {
            0 if !b.is_empty() => {
                let i = at.min(b.len() - 1);
                b[i] ^= 1 + rng.below(255) as u8;
            }
            1 => b.truncate(at),
            2 => {
                let n = 1 + rng.below(8);
                let extra = rng.bytes(n);
                b.splice(at..at, extra);
            }
            _ => {
                let value = [1u64 << 62, u64::MAX, 1 << 40, 70_000][rng.below(4)];
                let varint = [&[0xfd][..], &value.to_le_bytes()].concat();
                let end = (at + varint.len()).min(b.len());
                b.splice(at..end, varint);
            }
        }
    }
    b
}

fn cases() -> usize {
    std::env::var("CRONRAFT_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200)
}

fn old_vote() -> Vote<NodeId> {
    Vote::new_committed(0, 9)
}

fn entry(index: u64) -> Entry<TypeConfig> {
    let command = Command::DeleteTask { id: 1 };
    let request = Request { request_id: format!("fuzz-{index}"), now_ms: 1, command };
    Entry { log_id: LogId::new(CommittedLeaderId::new(0, 9), index), payload: EntryPayload::Normal(request) }
}

fn meta() -> SnapshotMeta<NodeId, cronraft_raft::NodeInfo> {
    SnapshotMeta { last_log_id: None, last_membership: StoredMembership::default(), snapshot_id: "0-0".into() }
}

/// Whether a body is a well-formed RPC whose vote is newer than the seeds' (a forged leader).
fn forged(path: &str, body: &[u8]) -> bool {
    let vote = match path {
        "append" => codec::decode::<AppendEntriesRequest<TypeConfig>>(body).map(|r| r.vote).ok(),
        "vote" => codec::decode::<VoteRequest<NodeId>>(body).map(|r| r.vote).ok(),
        _ => codec::decode::<InstallSnapshotRequest<TypeConfig>>(body).map(|r| r.vote).ok(),
    };
    vote.is_some_and(|v| v.leader_id().term > 0)
}

struct Raw {
    http: reqwest::Client,
    base: String,
}

impl Raw {
    async fn post(&self, path: &str, body: Vec<u8>) -> reqwest::Response {
        let url = format!("{}/raft/{path}", self.base);
        self.http
            .post(url)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /raft/{path}: the node is gone: {e}"))
    }
}

/// The node answers `/health` and commits a new task.
async fn still_serves(c: &Cluster, name: &str) {
    let health = reqwest::get(format!("{}/health", c.nodes[&1].url())).await.expect("the node answers /health");
    assert!(health.status().is_success(), "/health: {}", health.status());
    c.client(1).create_task(&task(name), None).await.expect("the node still accepts a write");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_17_byte_append_with_a_2_pow_62_string_length_does_not_abort_the_node() {
    let c = Cluster::start(1, "").await;
    let raw = Raw { http: reqwest::Client::new(), base: format!("http://{}", c.nodes[&1].raft) };

    // The bytes of the issue, field by field (bincode 2, standard config: varint integers, an
    // enum variant as a varint index, an Option as a 0/1 byte, a length as a varint):
    let body: Vec<u8> = [
        &[0x01][..],                 // vote.leader_id.term = 1
        &[0x01],                     // vote.leader_id.node_id = 1
        &[0x01],                     // vote.committed = true
        &[0x00],                     // prev_log_id = None
        &[0x01],                     // entries: a sequence of 1
        &[0x01],                     // entries[0].log_id.leader_id.term = 1
        &[0x01],                     // entries[0].log_id.index = 1
        &[0x01],                     // entries[0].payload = EntryPayload::Normal (variant 1)
        &[0xfd],                     // Request.request_id: a String whose length is a varint u64 (0xfd)...
        &(1u64 << 62).to_le_bytes(), // ...of 2^62, little endian: the allocation that aborted
    ]
    .concat();
    assert_eq!(body.len(), 17);
    // The first eight bytes are exactly how a real append with one entry begins.
    let entry = Entry::<TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
        payload: EntryPayload::Normal(Request {
            request_id: String::new(),
            now_ms: 0,
            command: Command::DeleteTask { id: 1 },
        }),
    };
    let real = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(1, 1),
        prev_log_id: None,
        entries: vec![entry],
        leader_commit: None,
    };
    assert_eq!(&codec::encode(&real).unwrap()[..8], &body[..8]);

    let resp = raw.post("append", body).await;
    assert_eq!(resp.status(), 400, "an undecodable body is refused");
    still_serves(&c, "after-the-decode-bomb").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn random_and_mutated_raft_bodies_leave_the_node_serving() {
    let c = Cluster::start(1, "").await;
    let raw = Raw {
        http: reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap(),
        base: format!("http://{}", c.nodes[&1].raft),
    };
    let append = AppendEntriesRequest::<TypeConfig> {
        vote: old_vote(),
        prev_log_id: None,
        entries: (1..=3).map(entry).collect(),
        leader_commit: None,
    };
    let vote = VoteRequest { vote: old_vote(), last_log_id: Some(LogId::new(CommittedLeaderId::new(0, 9), 3)) };
    let chunk = InstallSnapshotRequest::<TypeConfig> {
        vote: old_vote(),
        meta: meta(),
        offset: 0,
        data: vec![7; 64],
        done: false,
    };
    let seeds = [
        ("append", codec::encode(&append).unwrap()),
        ("vote", codec::encode(&vote).unwrap()),
        ("snapshot", codec::encode(&chunk).unwrap()),
    ];
    let mut rng = Rng(15);
    for (path, seed) in &seeds {
        // Phase: the endpoint's cases, half random bytes and half mutated seeds.
        let (mut sent, mut refused) = (0, 0);
        for case in 0..cases() {
            let body = if case % 2 == 0 {
                let n = rng.below(300);
                rng.bytes(n)
            } else {
                mutate(&mut rng, seed)
            };
            if forged(path, &body) {
                continue;
            }
            let status = raw.post(path, body).await.status();
            assert!(status.is_success() || status.is_client_error(), "{path}: {status}");
            refused += usize::from(status == 400);
            sent += 1;
        }
        assert!(refused > sent / 3, "{path}: most cases are undecodable ({refused} of {sent})");
        still_serves(&c, &format!("after-{path}-fuzz")).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_chunks_must_arrive_in_order() {
    let c = Cluster::start(1, "").await;
    let raw = Raw { http: reqwest::Client::new(), base: format!("http://{}", c.nodes[&1].raft) };
    let term = c.view(1).await.expect("view").term;
    // A chunk with the node's own vote passes the vote check, so the receiver's rules apply.
    let chunk = |offset: u64, data: Vec<u8>| InstallSnapshotRequest::<TypeConfig> {
        vote: Vote::new_committed(term, 1),
        meta: SnapshotMeta { snapshot_id: "9-999".into(), ..meta() },
        offset,
        data,
        done: false,
    };
    type Answer = Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>;
    let send = |req: InstallSnapshotRequest<TypeConfig>| {
        let raw = &raw;
        async move {
            let resp = raw.post("snapshot", codec::encode(&req).unwrap()).await;
            assert!(resp.status().is_success(), "{}", resp.status());
            codec::decode::<Answer>(&resp.bytes().await.unwrap()).unwrap()
        }
    };
    let expected_offset = |answer: Answer| match answer {
        Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m))) => Some(m.expect.offset),
        _ => None,
    };

    // Phase 1: no receive yet: any offset but 0 is a mismatch expecting 0, a huge one too.
    assert_eq!(expected_offset(send(chunk(4096, vec![1; 16])).await), Some(0));
    assert_eq!(expected_offset(send(chunk(1 << 62, vec![1; 16])).await), Some(0));

    // Phase 2: offset 0 starts a receive; the next chunk must start where the last ended.
    assert!(send(chunk(0, vec![1; 100])).await.is_ok());
    assert_eq!(expected_offset(send(chunk(50, vec![1; 16])).await), Some(100));
    assert_eq!(expected_offset(send(chunk(1 << 62, vec![1; 16])).await), Some(100));
    assert!(send(chunk(100, vec![2; 100])).await.is_ok());
    assert_eq!(expected_offset(send(chunk(150, vec![1; 1])).await), Some(200));
    still_serves(&c, "after-snapshot-chunks").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_rpc_in_an_unknown_wire_version_is_refused_naming_both_versions_before_its_body_is_read() {
    let c = Cluster::start(1, "").await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/raft/vote", c.nodes[&1].raft);
    let vote = codec::encode(&VoteRequest::<NodeId>::new(old_vote(), None)).unwrap();
    let wire = cronraft_raft::network::WIRE_HEADER;

    // Phase 1: a peer speaking a future version is refused with a message naming both; the
    // body (a well-formed vote) is not read, let alone acted on.
    for version in ["2", "99", "garbage"] {
        let resp = http.post(&url).header(wire, version).body(vote.clone()).send().await.unwrap();
        assert_eq!(resp.status(), 400, "version {version}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(&format!("wire format version {version} is not known")), "{text}");
        assert!(text.contains("it speaks version 1"), "{text}");
    }

    // Phase 2: this version, and no header at all (what builds before the header sent), are
    // read as usual: the stale vote gets openraft's answer, not a refusal.
    for header in [Some("1"), None] {
        let mut req = http.post(&url).body(vote.clone());
        if let Some(v) = header {
            req = req.header(wire, v);
        }
        assert_eq!(req.send().await.unwrap().status(), 200, "header {header:?}");
    }
    still_serves(&c, "after-wire-versions").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_rpc_from_a_node_of_another_cluster_is_refused_naming_both_before_its_body_is_read() {
    // Why: a restore seeds a new cluster that may share node ids, addresses and the secret with
    // the one its backup came from; the identity keeps the old nodes out (issue 19).
    let c = Cluster::start(1, "").await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/raft/vote", c.nodes[&1].raft);
    let vote = codec::encode(&VoteRequest::<NodeId>::new(old_vote(), None)).unwrap();
    let header = cronraft_raft::cluster_identity::CLUSTER_HEADER;

    // Phase 1: the first leader names the cluster, and every view shows the name.
    let ours = common::wait_for("the cluster to be named", Duration::from_secs(20), || async {
        c.view(1).await.and_then(|v| v.cluster_id)
    })
    .await;
    assert!(cronraft_raft::state::cluster_id::is_valid(&ours), "{ours}");

    // Phase 2: an RPC naming another cluster is refused with both names; its body (a
    // well-formed vote) is not acted on.
    let resp = http.post(&url).header(header, "another-cluster").body(vote.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 409);
    let text = resp.text().await.unwrap();
    assert!(text.contains("\"another-cluster\"") && text.contains(&format!("{ours:?}")), "{text}");

    // Phase 3: its own name, and no name at all (a node that has not learned it yet), are read
    // as usual: the stale vote gets openraft's answer.
    for name in [Some(ours.as_str()), None] {
        let mut req = http.post(&url).body(vote.clone());
        if let Some(n) = name {
            req = req.header(header, n);
        }
        assert_eq!(req.send().await.unwrap().status(), 200, "name {name:?}");
    }
    still_serves(&c, "after-cluster-names").await;
}
