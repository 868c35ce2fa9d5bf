//! The first leader names the cluster: a leader service that, when the replicated state has no
//! cluster identity yet (`m/cluster_id`), proposes a fresh random one (`SetClusterId`).
//!
//! The identity is what lets a node refuse the Raft RPCs of another cluster's nodes (a restored
//! cluster and the one its backup came from; see `cronraft_raft::cluster_identity`). It is chosen
//! here, by the proposer, because apply may not draw random numbers; apply keeps the first one
//! committed, so a leader that proposes and loses its term before the entry applies, and the
//! next leader that proposes again, still agree on one. Once the state has an identity this
//! service does nothing for the rest of the term.

use std::time::Duration;

use cronraft_raft::command::Command;
use cronraft_raft::store::StateMachineStore;
use cronraft_raft::{NodeId, Raft};
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::leadership::run_while_leader;
use crate::propose::{Proposer, PROPOSE_TIMEOUT};

/// Between attempts when a proposal fails (a full disk, a quorum not back yet).
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct ClusterNaming {
    pub node_id: NodeId,
    pub raft: Raft,
    pub sm: StateMachineStore,
}

impl ClusterNaming {
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let (raft, node_id) = (self.raft.clone(), self.node_id);
        run_while_leader(raft, node_id, stop, "cluster naming", |term| self.lead(term)).await
    }

    /// Names the cluster if it has no name, then holds until the term ends.
    async fn lead(&self, term: u64) {
        let proposer = Proposer::new(self.raft.clone(), PROPOSE_TIMEOUT).guarded(self.sm.space());
        let identity = self.sm.cluster_identity();
        while identity.get().is_none() {
            let id = uuid::Uuid::new_v4().to_string();
            match proposer.propose(Command::SetClusterId { id }, now_ms()).await {
                // The first one applied stays: log what the state says, which may be another's.
                Ok(_) => tracing::info!(term, cluster_id = ?identity.get(), "the cluster has an identity"),
                Err(e) => {
                    tracing::warn!(term, error = %e, "cannot name the cluster yet");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
        std::future::pending::<()>().await
    }
}
