//! The Raft log on sled: `raft_log` (u64 BE index → entry) and `raft_meta` (vote, last purged).
//!
//! Durability points: `append` calls openraft's callback only after [`Durability::sync`];
//! `save_vote`, `truncate` and `purge` sync before they return. Every write goes through
//! RaftCore one at a time, which gives the ordering openraft requires.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::Instant;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, Vote};
use serde::{Deserialize, Serialize};

use super::{CommitClock, Durability};
use crate::codec::{self, key_u64};
use crate::error::{log_err, StoreError};
use crate::{NodeId, TypeConfig};

const KEY_VOTE: &[u8] = b"vote";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// On-disk envelope of a log entry.
#[derive(Serialize, Deserialize)]
enum StoredEntry {
    V1(Entry<TypeConfig>),
}

/// The same envelope, borrowing the entry: encodes to the same bytes as [`StoredEntry`] without
/// copying the entry first.
#[derive(Serialize)]
enum StoredEntryRef<'a> {
    V1(&'a Entry<TypeConfig>),
}

/// On-disk envelope of the last purged log id.
#[derive(Serialize, Deserialize)]
enum StoredPurged {
    V1(LogId<NodeId>),
}

/// On-disk envelope of the vote.
#[derive(Serialize, Deserialize)]
enum StoredVote {
    V1(Vote<NodeId>),
}

/// The log store. Cheap to clone: replication tasks read through clones concurrently.
#[derive(Clone)]
pub struct LogStore {
    log: sled::Tree,
    meta: sled::Tree,
    durability: Arc<Durability>,
    /// Fed by `save_committed` (RaftCore, the moment the commit index moves); read by whoever
    /// measures commit latency. Shared with every clone.
    commit_clock: Arc<CommitClock>,
}

impl LogStore {
    pub fn new(db: &sled::Db, durability: Arc<Durability>) -> Result<Self, StoreError> {
        Ok(LogStore {
            log: db.open_tree("raft_log")?,
            meta: db.open_tree("raft_meta")?,
            durability,
            commit_clock: Arc::new(CommitClock::default()),
        })
    }

    /// When each index became committed on this node (see [`CommitClock`]).
    pub fn commit_clock(&self) -> Arc<CommitClock> {
        self.commit_clock.clone()
    }

    fn decode_entry(bytes: &[u8]) -> Result<Entry<TypeConfig>, StoreError> {
        let StoredEntry::V1(entry) = codec::decode(bytes)?;
        Ok(entry)
    }

    fn read_entries<RB: RangeBounds<u64>>(&self, range: RB) -> Result<Vec<Entry<TypeConfig>>, StoreError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        for kv in self.log.range(key_u64(start)..) {
            let (_, v) = kv?;
            let entry = Self::decode_entry(&v)?;
            if !range.contains(&entry.log_id.index) {
                break;
            }
            out.push(entry);
        }
        Ok(out)
    }

    fn last_purged(&self) -> Result<Option<LogId<NodeId>>, StoreError> {
        let Some(bytes) = self.meta.get(KEY_LAST_PURGED)? else { return Ok(None) };
        let StoredPurged::V1(id) = codec::decode(&bytes)?;
        Ok(Some(id))
    }

    fn log_state(&self) -> Result<LogState<TypeConfig>, StoreError> {
        let last_purged_log_id = self.last_purged()?;
        let last = self.log.last()?.map(|(_, v)| Self::decode_entry(&v)).transpose()?;
        let last_log_id = last.map(|e| e.log_id).or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    /// Removes `[from, to]` (inclusive) in one atomic batch.
    fn remove_range(&self, from: u64, to: u64) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for k in self.log.range(key_u64(from)..=key_u64(to)).keys() {
            batch.remove(k?);
        }
        self.log.apply_batch(batch)?;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        self.read_entries(range).map_err(log_err(ErrorVerb::Read))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        self.log_state().map_err(log_err(ErrorVerb::Read))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let write = || -> Result<(), StoreError> {
            self.meta.insert(KEY_VOTE, codec::encode(&StoredVote::V1(*vote))?)?;
            Ok(())
        };
        write().map_err(log_err(ErrorVerb::Write))?;
        self.durability.sync_async().await.map_err(log_err(ErrorVerb::Write))
    }

    /// Not persisted (`read_committed` keeps openraft's default, `None`): the state machine is
    /// recovered from its own `last_applied`. Only the moment is noted, for fire lag.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        if let Some(id) = committed {
            self.commit_clock.record(id.index, Instant::now());
        }
        Ok(())
    }

    /// Returns the stored vote, but never as *committed*.
    ///
    /// openraft 0.9 restores a node whose stored vote is a committed vote for itself as leader
    /// of the same term at once, without appending a new entry. The commit index is not
    /// persisted, so such a leader never re-commits the acknowledged tail of its log: after a
    /// full-cluster `kill -9` the last acknowledged writes stayed unapplied and invisible even
    /// to linearizable reads (test `full_cluster_restart_keeps_every_acknowledged_task`).
    /// Leadership is volatile in Raft: an uncommitted vote for the same term still refuses other
    /// candidates in that term, and the node must win a new term, whose blank entry commits the
    /// whole log.
    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        let read = || -> Result<Option<Vote<NodeId>>, StoreError> {
            let Some(bytes) = self.meta.get(KEY_VOTE)? else { return Ok(None) };
            let StoredVote::V1(vote) = codec::decode(&bytes)?;
            Ok(Some(Vote { committed: false, ..vote }))
        };
        read().map_err(log_err(ErrorVerb::Read))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = codec::encode(&StoredEntryRef::V1(&entry)).map_err(|e| log_err(ErrorVerb::Write)(e.into()))?;
            batch.insert(&key_u64(entry.log_id.index), bytes);
        }
        self.log.apply_batch(batch).map_err(|e| log_err(ErrorVerb::Write)(e.into()))?;
        // Readable now; durable (and acknowledged to openraft) only after the sync.
        let synced = self.durability.sync_async().await;
        callback.log_io_completed(synced.map_err(|e| std::io::Error::other(e.to_string())));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.remove_range(log_id.index, u64::MAX).map_err(log_err(ErrorVerb::Delete))?;
        self.durability.sync_async().await.map_err(log_err(ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // Record the purge point first: a crash between the two steps leaves extra entries, never
        // a log state that claims entries it no longer has.
        let record = || -> Result<(), StoreError> {
            self.meta.insert(KEY_LAST_PURGED, codec::encode(&StoredPurged::V1(log_id))?)?;
            Ok(())
        };
        record().map_err(log_err(ErrorVerb::Write))?;
        self.durability.sync_async().await.map_err(log_err(ErrorVerb::Write))?;
        self.remove_range(0, log_id.index).map_err(log_err(ErrorVerb::Delete))?;
        self.durability.sync_async().await.map_err(log_err(ErrorVerb::Delete))
    }
}
