//! Membership changes: add a learner, promote it to voter, remove a node — one at a time.
//!
//! These run on the leader (the API forwards them there). openraft already refuses a change while
//! the previous one is uncommitted (`InProgress`); a local lock also refuses a second admin request
//! that arrives while this leader is still driving the first (openraft would queue it), so the
//! operator gets a clear 409 instead of a pile-up.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, LogId};

use crate::model::NodeInfo;
use crate::{NodeId, Raft};

/// How long one membership change may take before the admin call gives up waiting.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// A learner more than this many entries behind the leader is not promoted yet.
pub const PROMOTE_LAG_MAX: u64 = 1_000;

/// Why a membership change did not happen (or may not have finished).
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// This node is not the leader; the caller should ask `leader` (if known).
    #[error("this node is not the leader")]
    NotLeader { leader: Option<(NodeId, NodeInfo)> },
    /// Another membership change has not finished yet.
    #[error("another membership change is in progress; retry when it completes")]
    InProgress,
    /// The node is not in the cluster (or, for promote, not a learner).
    #[error("node {0} is not a member of the cluster")]
    UnknownNode(NodeId),
    /// The node is already a voter.
    #[error("node {0} is already a voter")]
    AlreadyVoter(NodeId),
    /// Removing the node would leave no voter.
    #[error("node {0} is the last voter; a cluster cannot remove its last voter")]
    LastVoter(NodeId),
    /// The node id is already used by a member with other addresses.
    #[error("node id {id} is already a member at {existing}; remove it first to re-add it elsewhere")]
    IdTaken { id: NodeId, existing: NodeInfo },
    /// Another member already has one of these addresses. Adding it would make the leader
    /// replicate to itself (or to another member) under a second id, which trips openraft's
    /// engine (found by Schemathesis: `POST /cluster/nodes` with the leader's own addresses).
    #[error("{addr} is already the address of member {owner}; each member needs its own addresses")]
    AddressTaken { addr: String, owner: NodeId },
    /// The learner has not caught up with the leader's log yet.
    #[error("learner {node} is {lag} entries behind the leader (at most {PROMOTE_LAG_MAX} to promote); retry shortly")]
    LearnerBehind { node: NodeId, lag: u64 },
    /// The change was proposed but did not complete in time; it may still take effect.
    #[error("the membership change did not complete within {CHANGE_TIMEOUT:?}; it may still take effect")]
    Timeout,
    /// openraft failed (fatal error, shutting down).
    #[error("raft: {0}")]
    Raft(String),
}

/// Drives membership changes on this node's Raft.
pub struct MembershipAdmin {
    raft: Raft,
    /// Held for the duration of one change; `try_lock` failure = [`MembershipError::InProgress`].
    busy: tokio::sync::Mutex<()>,
}

impl MembershipAdmin {
    pub fn new(raft: Raft) -> Self {
        MembershipAdmin { raft, busy: tokio::sync::Mutex::new(()) }
    }

    /// Adds `id` as a learner (non-blocking: returns once the membership entry is committed).
    pub async fn add_learner(&self, id: NodeId, info: NodeInfo) -> Result<LogId<NodeId>, MembershipError> {
        let _busy = self.busy.try_lock().map_err(|_| MembershipError::InProgress)?;
        let metrics = self.raft.metrics().borrow().clone();
        if let Some((_, existing)) = metrics.membership_config.nodes().find(|(n, _)| **n == id) {
            if *existing != info {
                return Err(MembershipError::IdTaken { id, existing: existing.clone() });
            }
        }
        for (owner, other) in metrics.membership_config.nodes().filter(|(n, _)| **n != id) {
            for addr in [&info.http_addr, &info.raft_addr] {
                if *addr == other.http_addr || *addr == other.raft_addr {
                    return Err(MembershipError::AddressTaken { addr: addr.clone(), owner: *owner });
                }
            }
        }
        let call = self.raft.add_learner(id, info, false);
        Ok(finish(call).await?.log_id)
    }

    /// Makes learner `id` a voter, if it has caught up.
    pub async fn promote(&self, id: NodeId) -> Result<LogId<NodeId>, MembershipError> {
        let _busy = self.busy.try_lock().map_err(|_| MembershipError::InProgress)?;
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        if membership.voter_ids().any(|v| v == id) {
            return Err(MembershipError::AlreadyVoter(id));
        }
        if !membership.learner_ids().any(|l| l == id) {
            return Err(MembershipError::UnknownNode(id));
        }
        let matched = metrics.replication.as_ref().and_then(|r| r.get(&id).cloned().flatten()).map(|l| l.index);
        let lag = metrics.last_log_index.unwrap_or(0).saturating_sub(matched.unwrap_or(0));
        if matched.is_none() || lag > PROMOTE_LAG_MAX {
            return Err(MembershipError::LearnerBehind { node: id, lag });
        }
        let call = self.raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false);
        Ok(finish(call).await?.log_id)
    }

    /// Removes `id`, voter or learner. Removing the leader itself works: it steps down once the
    /// new configuration is committed.
    pub async fn remove(&self, id: NodeId) -> Result<LogId<NodeId>, MembershipError> {
        let _busy = self.busy.try_lock().map_err(|_| MembershipError::InProgress)?;
        let membership = self.raft.metrics().borrow().membership_config.membership().clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let change = if voters.contains(&id) {
            if voters.len() == 1 {
                return Err(MembershipError::LastVoter(id));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else if membership.learner_ids().any(|l| l == id) {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        } else {
            return Err(MembershipError::UnknownNode(id));
        };
        Ok(finish(self.raft.change_membership(change, false)).await?.log_id)
    }
}

type WriteResult = Result<
    openraft::raft::ClientWriteResponse<crate::TypeConfig>,
    RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>,
>;

async fn finish(
    call: impl std::future::Future<Output = WriteResult>,
) -> Result<openraft::raft::ClientWriteResponse<crate::TypeConfig>, MembershipError> {
    match tokio::time::timeout(CHANGE_TIMEOUT, call).await {
        Err(_) => Err(MembershipError::Timeout),
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            let leader = f.leader_id.zip(f.leader_node);
            Err(MembershipError::NotLeader { leader })
        }
        Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => Err(match e {
            ChangeMembershipError::InProgress(_) => MembershipError::InProgress,
            ChangeMembershipError::EmptyMembership(_) => MembershipError::Raft(e.to_string()),
            ChangeMembershipError::LearnerNotFound(l) => MembershipError::UnknownNode(l.node_id),
        }),
        Ok(Err(RaftError::Fatal(f))) => Err(MembershipError::Raft(f.to_string())),
    }
}
