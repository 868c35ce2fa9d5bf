//! Test support: a one-node Raft over a real sled store in a temp directory, for the unit tests
//! of the leader services (leadership frame, proposals, scheduler), with short election timings.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cronraft_raft::network::HttpNetwork;
use cronraft_raft::store::{self, CommitClock, StateMachineStore};
use cronraft_raft::{NodeInfo, Raft};

/// A one-node Raft in `dir`, not yet initialized (so not leading), with its state machine and
/// commit clock.
pub async fn pristine(dir: &std::path::Path, cache_bytes: u64) -> (Raft, StateMachineStore, Arc<CommitClock>) {
    let (log, sm) = store::open(dir, cache_bytes, store::ApplyOptions::default()).unwrap();
    let commit_clock = log.commit_clock();
    let config = openraft::Config {
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        ..Default::default()
    };
    let raft = Raft::new(
        1,
        Arc::new(config.validate().unwrap()),
        HttpNetwork::new(&Default::default(), None, sm.cluster_identity()).unwrap(),
        log,
        sm.clone(),
    )
    .await
    .unwrap();
    (raft, sm, commit_clock)
}

/// Bootstraps `raft` as a one-node cluster and waits until it leads.
pub async fn lead_alone(raft: &Raft) {
    let info = NodeInfo { http_addr: "127.0.0.1:1".into(), raft_addr: "127.0.0.1:1".into() };
    raft.initialize(BTreeMap::from([(1, info)])).await.unwrap();
    raft.wait(Some(Duration::from_secs(10))).current_leader(1, "one-node leader").await.unwrap();
}
