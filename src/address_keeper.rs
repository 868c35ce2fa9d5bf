//! The leader keeps its own addresses in the membership true.
//!
//! A node's addresses are part of the replicated membership: followers forward writes to the
//! leader's `http_addr` and call elections on each other's `raft_addr`. A node that starts with
//! other addresses than the membership records for it (a restored or recovered node given new
//! ports, a host that changed its address) is unreachable at the recorded ones until someone
//! changes the membership. The one node that can always do that for itself is a leader, so this
//! leader service compares, once per term, the membership's entry for this node with what it
//! advertises now, and replaces the entry (`ChangeMembers::SetNodes`, the same voters) when they
//! differ. A follower with new addresses is not handled: it cannot be reached to be told it
//! changed, and nothing here guesses (docs/operating/recovery.md says to keep addresses).

use std::collections::BTreeMap;
use std::time::Duration;

use cronraft_raft::{NodeId, NodeInfo, Raft};
use openraft::ChangeMembers;
use tokio::sync::watch;

use crate::leadership::run_while_leader;

/// Between attempts when a change is refused (another membership change is in progress).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The service: this node's id and the addresses it advertises.
pub struct AddressKeeper {
    pub node_id: NodeId,
    pub raft: Raft,
    pub info: NodeInfo,
}

impl AddressKeeper {
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let (raft, node_id) = (self.raft.clone(), self.node_id);
        run_while_leader(raft, node_id, stop, "address keeper", |term| self.lead(term)).await
    }

    /// Corrects this node's entry if it differs, then holds until the term ends.
    async fn lead(&self, term: u64) {
        loop {
            let recorded = self.raft.metrics().borrow().membership_config.membership().get_node(&self.node_id).cloned();
            if recorded.as_ref() == Some(&self.info) || recorded.is_none() {
                break;
            }
            let nodes = BTreeMap::from([(self.node_id, self.info.clone())]);
            match self.raft.change_membership(ChangeMembers::SetNodes(nodes), true).await {
                Ok(_) => {
                    tracing::info!(term, from = ?recorded, to = ?self.info, "this node's addresses in the membership corrected");
                    break;
                }
                Err(e) => {
                    tracing::warn!(term, error = %e, "cannot correct this node's addresses in the membership yet");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
        std::future::pending::<()>().await
    }
}
