//! Operations on a stopped node's data directory: seeding one from a backup (`cronraft restore`)
//! and turning a survivor of a lost majority into a one-node cluster (`cronraft recover
//! --force-new-cluster`).
//!
//! Both leave a directory that `cronraft serve` starts as it starts any restarted node: openraft
//! reads the vote, the log and the state machine's applied position and membership, and a node
//! that is the only voter of its membership elects itself. Neither writes anything openraft
//! would not have written itself; what they choose is the membership and a term.
//!
//! **The term.** The restored or recovered node must win an election whose term is above every
//! term in its log and state (a leader's entries must carry the highest term so far, and
//! executors compare the fencing term of their attempts). Both write an uncommitted vote for the
//! node itself in such a term, so its first election is in the next one.
//!
//! **Restore** writes the backup's pairs into an empty directory's state machine, then replaces
//! the pairs that name the old cluster (`m/membership`, `m/cluster_id`) by a membership of this
//! node alone, at the backup's applied log id, and a new cluster identity. The log is empty: openraft purges up to the
//! applied position at start, so the position (term, index) stays the backup's and log ids keep
//! rising across the restore. Everything else (tasks with their ids and watermarks, executions,
//! executors, tokens, the dedupe table) is as it was at the backup's point.
//!
//! **Recover** keeps the whole log, committed or not (unlike etcd, which drops what its survivor
//! did not know to be committed: a follower learns the commit index a heartbeat late, so its
//! uncommitted tail can hold writes the lost leader had acknowledged), and appends one
//! membership entry that makes this node the only voter. On start the node elects itself and
//! its first entry commits the whole log, that membership included.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use openraft::storage::RaftLogStorage;
use openraft::RaftLogReader;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, StoredMembership, Vote};
use serde::Serialize;

use super::backup::{self, BackupError, BackupSummary};
use crate::error::StoreError;
use crate::state::{encode_membership, keys, ApplyOptions};
use crate::{NodeId, NodeInfo};

/// Keys per sled batch while a restore writes pairs.
const RESTORE_BATCH: usize = 10_000;
/// The page cache of the store while an offline operation runs.
const OFFLINE_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Why an offline operation refused or failed. Nothing is left half-done: a failed restore
/// removes what it wrote, and a recovery writes its two records only after every check passed.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("raft storage: {0}")]
    Raft(String),
    /// A restore into a directory that already holds a node's data.
    #[error("{0} is not empty: restore seeds a new node and never overwrites one (give an empty or new directory)")]
    NotEmpty(String),
    /// A recovery of a directory with no node's data.
    #[error("{0} holds no cronraft data (no sled database): nothing to recover")]
    NoData(String),
    /// The backup holds no applied position (not a state written by a node).
    #[error("the backup holds no applied log position (m/applied): not a node's state")]
    NoPosition,
    /// The node to recover is not in its own membership.
    #[error("node {node} is not a member of the cluster recorded in {dir} (members: {members:?}); recover the node whose data this is")]
    NotAMember { node: NodeId, dir: String, members: Vec<NodeId> },
}

impl From<openraft::StorageError<NodeId>> for OfflineError {
    fn from(e: openraft::StorageError<NodeId>) -> Self {
        OfflineError::Raft(e.to_string())
    }
}

/// What a restore wrote.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreSummary {
    pub backup: BackupSummary,
    pub node_id: NodeId,
    /// The new cluster's identity: a fresh one, so the nodes of the backup's cluster and of this
    /// one refuse each other's Raft RPCs ([`crate::cluster_identity`]).
    pub cluster_id: String,
    /// The data digest of the restored state, read back from disk: equal to the backup's.
    pub data_digest: String,
}

/// What a recovery changed.
#[derive(Debug, Clone, Serialize)]
pub struct RecoverSummary {
    pub node_id: NodeId,
    /// The voters before.
    pub old_voters: Vec<NodeId>,
    /// The log index of the membership entry that makes this node the only voter.
    pub membership_index: u64,
    /// The term of that entry; the node's first election is in the next one.
    pub term: u64,
    /// Entries in the log after the state machine's applied position: applied once the node
    /// leads.
    pub unapplied_entries: u64,
}

/// Seeds `dir` (absent or empty) from the backup read from `input`, as node `node_id` at
/// `info`'s addresses (a leader corrects its own addresses once it runs, see the node's
/// address keeper). Verifies the whole backup; on any failure removes what it wrote.
pub async fn restore(
    input: impl Read,
    dir: &Path,
    node_id: NodeId,
    info: NodeInfo,
) -> Result<RestoreSummary, OfflineError> {
    let existed = match std::fs::read_dir(dir) {
        Ok(entries) => {
            if entries.into_iter().next().is_some() {
                return Err(OfflineError::NotEmpty(dir.display().to_string()));
            }
            true
        }
        Err(_) => false,
    };
    let result = restore_into(input, dir, node_id, info).await;
    if result.is_err() {
        // Only what this restore wrote: the directory was empty (keep it: it may be a mount
        // point) or absent.
        match existed {
            true => {
                for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    let _ = std::fs::remove_dir_all(entry.path()).or_else(|_| std::fs::remove_file(entry.path()));
                }
            }
            false => {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
    result
}

async fn restore_into(
    input: impl Read,
    dir: &Path,
    node_id: NodeId,
    info: NodeInfo,
) -> Result<RestoreSummary, OfflineError> {
    let (mut log, sm) = super::open(dir, OFFLINE_CACHE_BYTES, ApplyOptions::default())?;
    let tree = sm.tree();
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    let summary = backup::read_backup(input, |k, v| {
        batch.insert(k, v);
        in_batch += 1;
        if in_batch == RESTORE_BATCH {
            tree.apply_batch(std::mem::take(&mut batch)).map_err(StoreError::from)?;
            in_batch = 0;
        }
        Ok(())
    })?;
    tree.apply_batch(batch).map_err(StoreError::from)?;

    let (applied, _) = sm.view().applied_state()?;
    let applied = applied.ok_or(OfflineError::NoPosition)?;
    let membership = only_voter(node_id, info, Some(applied));
    tree.insert(keys::MEMBERSHIP, encode_membership(&membership).map_err(StoreError::from)?)
        .map_err(StoreError::from)?;
    let cluster_id = uuid::Uuid::new_v4().to_string();
    tree.insert(keys::CLUSTER_ID, cluster_id.as_bytes()).map_err(StoreError::from)?;
    log.save_vote(&Vote::new(applied.leader_id.term, node_id)).await?;
    sm.sync()?;

    let data_digest = backup::data_digest_of(&tree)?;
    if data_digest != summary.trailer.data_digest {
        return Err(OfflineError::Backup(BackupError::Corrupt(format!(
            "the restored state's data digest {data_digest} differs from the backup's {}",
            summary.trailer.data_digest
        ))));
    }
    Ok(RestoreSummary { backup: summary, node_id, cluster_id, data_digest })
}

/// Makes node `node_id` of the stopped node's data in `dir` the only voter of a new one-node
/// cluster with all its state and its whole log (see the module docs).
pub async fn force_new_cluster(dir: &Path, node_id: NodeId) -> Result<RecoverSummary, OfflineError> {
    if !dir.join("sled").exists() {
        return Err(OfflineError::NoData(dir.display().to_string()));
    }
    let (mut log, sm) = super::open(dir, OFFLINE_CACHE_BYTES, ApplyOptions::default())?;
    let (applied, sm_membership) = sm.view().applied_state()?;
    let state = log.log_state()?;
    let last = state.last_log_id;
    // The effective membership: the last one in the log after the applied position, else the
    // state machine's.
    let mut membership = sm_membership.membership().clone();
    let from = applied.map_or(0, |id| id.index + 1);
    let tail = match last {
        Some(last) if last.index >= from => log.try_get_log_entries(from..=last.index).await?,
        _ => Vec::new(),
    };
    for entry in &tail {
        if let EntryPayload::Membership(m) = &entry.payload {
            membership = m.clone();
        }
    }
    let old_voters: Vec<NodeId> = membership.voter_ids().collect();
    let members: Vec<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
    let info = membership.get_node(&node_id).cloned().ok_or_else(|| OfflineError::NotAMember {
        node: node_id,
        dir: dir.display().to_string(),
        members,
    })?;

    let vote = log.read_vote().await?.unwrap_or_default();
    let term = vote.leader_id.term.max(last.map_or(0, |id| id.leader_id.term)) + 1;
    let index = last.map_or(0, |id| id.index + 1);
    let log_id = LogId::new(CommittedLeaderId::new(term, node_id), index);
    let only = only_voter(node_id, info, Some(log_id));
    let entry = Entry::<crate::TypeConfig> { log_id, payload: EntryPayload::Membership(only.membership().clone()) };
    log.write_entries([entry])?;
    // The vote in the same term; `save_vote` syncs, which makes the entry durable too.
    log.save_vote(&Vote::new(term, node_id)).await?;
    Ok(RecoverSummary { node_id, old_voters, membership_index: index, term, unapplied_entries: tail.len() as u64 })
}

/// A membership of `node_id` alone, at `log_id`.
fn only_voter(node_id: NodeId, info: NodeInfo, log_id: Option<LogId<NodeId>>) -> StoredMembership<NodeId, NodeInfo> {
    let voters = BTreeSet::from([node_id]);
    let nodes = BTreeMap::from([(node_id, info)]);
    StoredMembership::new(log_id, Membership::new(vec![voters], nodes))
}
