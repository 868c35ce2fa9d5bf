//! The Raft log on sled: `raft_log` (u64 BE index → entry) and `raft_meta` (vote, last purged).
//!
//! Durability points: `append` calls openraft's callback only after [`Durability::sync`];
//! `save_vote`, `truncate` and `purge` sync before they return. Every write goes through
//! RaftCore one at a time, which gives the ordering openraft requires.
//!
//! Purging is recorded at once and carried out a little at a time. `purge` makes the new purge
//! point durable and from then on the entries behind it are invisible to every read; the entries
//! themselves are deleted [`PURGE_PER_APPEND_MAX`] at a time inside later appends' batches. One
//! purge removes about `snapshot_logs_since_last` entries (100,000 by default), and removing them
//! in one batch held sled's write lock and RaftCore, which awaits `purge`, for long enough that
//! heartbeats stopped and the followers called an election (the sustained benchmark, at the
//! snapshot point).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, Vote};
use serde::{Deserialize, Serialize};

use super::timings::timed;
use super::{CommitClock, Durability};
use crate::codec::{self, key_u64};
use crate::error::{log_err, StoreError};
use crate::{NodeId, TypeConfig};

const KEY_VOTE: &[u8] = b"vote";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
/// Purged entries deleted inside one append's batch, at most (see the module docs). About as many
/// removals as the entries a busy append writes; a backlog of 100,000 is gone after about 800
/// appends.
const PURGE_PER_APPEND_MAX: usize = 128;

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
    /// Where the purged entries end, and how far their deletion got. Shared with every clone.
    purge: Arc<PurgeProgress>,
}

/// The purge point and the deletion behind it (see the module docs). Written only by RaftCore's
/// `purge` and `append`, one at a time; read by every reader.
#[derive(Default)]
struct PurgeProgress {
    /// Entries below this index are purged: no read returns them. Last purged index + 1, or 0.
    visible_from: AtomicU64,
    /// No entry below this index is left on disk. At most `visible_from`.
    deleted_below: AtomicU64,
}

impl LogStore {
    pub fn new(db: &sled::Db, durability: Arc<Durability>) -> Result<Self, StoreError> {
        let store = LogStore {
            log: db.open_tree("raft_log")?,
            meta: db.open_tree("raft_meta")?,
            durability,
            commit_clock: Arc::new(CommitClock::default()),
            purge: Arc::default(),
        };
        // A purge's deletion may have been cut short by a stop: the leftovers go with later appends.
        let visible_from = store.last_purged()?.map_or(0, |id| id.index + 1);
        let first = store.log.first()?.map(|(k, _)| codec::parse_key_u64(&k).unwrap_or(0));
        store.purge.visible_from.store(visible_from, Ordering::Relaxed);
        store.purge.deleted_below.store(first.unwrap_or(visible_from).min(visible_from), Ordering::Relaxed);
        Ok(store)
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
        let start = start.max(self.purge.visible_from.load(Ordering::Relaxed));
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

    pub(super) fn log_state(&self) -> Result<LogState<TypeConfig>, StoreError> {
        let last_purged_log_id = self.last_purged()?;
        let last = self.log.last()?.map(|(_, v)| Self::decode_entry(&v)).transpose()?;
        // A purged entry not yet deleted is not the last entry.
        let last = last.filter(|e| e.log_id.index >= self.purge.visible_from.load(Ordering::Relaxed));
        let last_log_id = last.map(|e| e.log_id).or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    /// Adds to `batch` the removal of up to [`PURGE_PER_APPEND_MAX`] purged entries not yet
    /// deleted. Returns the index below which none is left once the batch is written.
    fn delete_some_purged(&self, batch: &mut sled::Batch) -> Result<Option<u64>, StoreError> {
        let visible_from = self.purge.visible_from.load(Ordering::Relaxed);
        let deleted_below = self.purge.deleted_below.load(Ordering::Relaxed);
        if deleted_below >= visible_from {
            return Ok(None);
        }
        // From where the deleting stopped, not from the start of the tree: sled never merges the
        // leaves a deletion empties at a tree's left edge, so a range from the start walked every
        // leaf emptied so far (each a page read back from disk when evicted) in every append.
        let mut keys = self.log.range(key_u64(deleted_below)..key_u64(visible_from)).keys();
        let mut last = None;
        for key in keys.by_ref().take(PURGE_PER_APPEND_MAX) {
            let key = key?;
            last = codec::parse_key_u64(&key);
            batch.remove(key);
        }
        // All gone, or gone up to the last one removed.
        let done = keys.next().is_none();
        Ok(Some(if done { visible_from } else { last.map_or(visible_from, |i| i + 1) }))
    }

    /// Writes entries, and deletes some purged ones, in one batch; not synced.
    pub(super) fn write_entries(&self, entries: impl IntoIterator<Item = Entry<TypeConfig>>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for entry in entries {
            batch.insert(&key_u64(entry.log_id.index), codec::encode(&StoredEntryRef::V1(&entry))?);
        }
        let timings = self.durability.timings();
        let deleted_below = timed(&timings.log_write, || -> Result<_, StoreError> {
            let deleted_below = self.delete_some_purged(&mut batch)?;
            self.log.apply_batch(batch)?;
            Ok(deleted_below)
        })?;
        if let Some(below) = deleted_below {
            self.purge.deleted_below.store(below, Ordering::Relaxed);
        }
        Ok(())
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
        self.write_entries(entries).map_err(log_err(ErrorVerb::Write))?;
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
        // Invisible from now on; deleted by the next appends (see the module docs).
        self.purge.visible_from.fetch_max(log_id.index + 1, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn entries(indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry<TypeConfig>> {
        indexes.map(|i| Entry { log_id: id(i), payload: EntryPayload::Blank }).collect()
    }

    /// Opens the store in `dir`. A reopen in the same process can find sled's file lock still
    /// held for a moment by the dropped instance (one failed open in a loaded `cargo test`,
    /// session 10), so a lock error is tried again for up to 10 s; any other error fails at once.
    fn open(dir: &std::path::Path) -> LogStore {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match super::super::open(dir, 1 << 20, super::super::ApplyOptions::default()) {
                Ok((log, _sm)) => return log,
                Err(e) if e.to_string().contains("lock") && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => panic!("cannot open the store in {}: {e}", dir.display()),
            }
        }
    }

    /// Indexes physically in the tree, purged or not.
    fn on_disk(log: &LogStore) -> Vec<u64> {
        log.log.iter().keys().map(|k| codec::parse_key_u64(&k.unwrap()).unwrap()).collect()
    }

    fn id(index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(1, 0), index)
    }

    #[tokio::test]
    async fn a_purge_hides_entries_at_once_and_later_appends_delete_them_a_few_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        log.write_entries(entries(1..=1_000)).unwrap();

        // Phase 1: the purge is durable and every read skips the purged entries at once; they
        // are still on disk (removing them all in one batch stalled RaftCore).
        log.purge(id(600)).await.unwrap();
        assert_eq!(log.read_entries(0..).unwrap().first().map(|e| e.log_id.index), Some(601));
        let state = log.log_state().unwrap();
        assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(id(600)), Some(id(1_000))));
        assert_eq!(on_disk(&log).first(), Some(&1));

        // Phase 2: each append deletes at most PURGE_PER_APPEND_MAX of them, oldest first.
        log.write_entries(entries(1_001..=1_001)).unwrap();
        assert_eq!(on_disk(&log).first(), Some(&(PURGE_PER_APPEND_MAX as u64 + 1)));

        // Phase 3: a restart in the middle keeps them hidden, and appends finish the deletion.
        drop(log);
        let log = open(dir.path());
        assert_eq!(log.read_entries(..=700).unwrap().first().map(|e| e.log_id.index), Some(601));
        for i in 1_002..=1_010 {
            log.write_entries(entries(i..=i)).unwrap();
        }
        assert_eq!(on_disk(&log).first(), Some(&601), "every purged entry is deleted");
        assert_eq!(on_disk(&log).len(), 410);
    }

    #[tokio::test]
    async fn a_log_purged_to_its_end_reports_the_purge_point_as_its_last_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        log.write_entries(entries(1..=10)).unwrap();
        log.purge(id(10)).await.unwrap();
        let state = log.log_state().unwrap();
        assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(id(10)), Some(id(10))));
        assert!(log.read_entries(0..).unwrap().is_empty());
    }
}
