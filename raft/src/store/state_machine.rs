//! The state machine on sled, and its snapshots.
//!
//! `apply` writes each run of committed entries as atomic sled batches of whole entries (data and
//! `last_applied` together; a long run is cut at entry boundaries, see `apply_run`) without its
//! own fsync: the next log append's sync makes it durable, and until then the durable log holds
//! the entries, which openraft re-applies after a crash.
//!
//! Snapshots. The state machine is itself durable, so a snapshot needs no copy of its own until
//! someone reads it. A [`SnapshotCopy`] fixes its point (the applied log id and membership) under
//! the apply gate, a moment, and from then on `apply` records the pre-image of every key it
//! changes. Only when the snapshot's body is read (openraft sends it to a follower that is too far
//! behind) does the copy run, on a thread of its own: it reads the live tree without blocking
//! applies and puts the pre-images back, which gives the state at the fixed point
//! ([`fixed_point`], [`super::snapshot_body`]). openraft's periodic build therefore costs one fsync (the
//! point must be durable before the log behind it is purged), not a copy of the state on every
//! node at once. Installing a received snapshot is crash-atomic: the data goes into a fresh tree
//! `sm.<generation+1>`, which is synced, and only then does the generation pointer in
//! `raft_meta` flip (one key, synced). A crash before the flip leaves the old state; the leftover
//! tree is dropped on the next start.
//!
//! The digest (`/cluster/digest`) uses the same fixed point: it fixes one under the gate, then
//! hashes the live tree, putting pre-images in as it goes ([`SnapshotCopy::for_each_pair`]). Until issue 15 it held the apply gate for the whole scan, so a
//! client calling it in a loop stalled every apply (and so every fire) for the length of a scan.

mod fixed_point;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::snapshot_body::SnapshotBody;
use super::timings::{timed, StorageTimings};
use super::Durability;
use crate::cluster_identity::ClusterIdentity;
use crate::codec;
use crate::command::Response;
use crate::error::{sm_err, StoreError};
use crate::model::NodeInfo;
use crate::state::{apply_entry, cluster_id, keys, ApplyOptions, StateView};
use crate::txn::WriteSet;
use crate::{NodeId, TypeConfig};
pub use fixed_point::SnapshotCopy;
use fixed_point::{record_preimages, Preimages};

const KEY_GENERATION: &[u8] = b"sm_generation";
/// Keys inserted per sled batch while installing a snapshot.
const INSTALL_BATCH: usize = 10_000;
/// Keys written per sled batch by `apply` before it cuts the run at the next entry boundary (see
/// `apply_run`): about 60 ms of sled's global write lock on this machine.
const APPLY_BATCH_KEYS: usize = 8_192;
/// A run of at least this many entries, or of fire entries with at least this many slots in all,
/// is applied through `block_in_place` (see `is_heavy`): tens of milliseconds or more.
const HEAVY_RUN_ENTRIES: usize = 256;
const HEAVY_RUN_SLOTS: usize = 1_000;
/// Apply notifications buffered per subscriber before it is told it lagged.
const APPLIED_CHANNEL_LEN: usize = 1024;

/// What one written batch of applied entries changed, announced to subscribers (the scheduler,
/// the dispatcher) after it is written: one per apply run, or several for a long run (see
/// `apply_run`). A subscriber that falls behind gets `Lagged` and must re-read the state.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Last log index of the batch.
    pub log_index: u64,
    /// Tasks written by the batch (created, updated, paused, fired…).
    pub tasks: Vec<u64>,
    /// Executions written by the batch.
    pub executions: Vec<u64>,
    /// The whole state was replaced (a snapshot was installed): re-read everything.
    pub reset: bool,
    /// The batch wrote the notification outbox (the delivery service looks again).
    pub outbox: bool,
}

/// The body of a snapshot: every key and value of the state-machine tree, in key order.
#[derive(Serialize, Deserialize)]
enum SnapshotPayload {
    V1 { pairs: Vec<(Vec<u8>, Vec<u8>)> },
}

struct Inner {
    db: sled::Db,
    /// `raft_meta`: holds the active generation.
    meta: sled::Tree,
    /// The active generation and its tree. Swapped (write lock) only by snapshot install.
    current: RwLock<(u64, sled::Tree)>,
    /// Held by `apply` and snapshot install, and for a moment by whoever fixes a point (a
    /// snapshot copy, a digest), so that a point is one applied index.
    apply_gate: Mutex<()>,
    /// One digest at a time per node (the next waits): each one records pre-images and takes a
    /// scan's worth of CPU, so a client calling in a loop from many connections cannot multiply
    /// either.
    digest_gate: Mutex<()>,
    durability: Arc<Durability>,
    /// How `apply` behaves beyond the entries, fixed when the store opens (the unsafe test
    /// switches arrive here, never as environment reads inside apply).
    options: ApplyOptions,
    /// Names each snapshot copy, as its key in `preimages`.
    copy_seq: AtomicU64,
    /// Announces each written batch; bounded per subscriber (see [`Applied`]).
    applied_tx: tokio::sync::broadcast::Sender<Arc<Applied>>,
    /// Per snapshot copy in existence (by its seq): the value each key had at the copy's point
    /// (`None` = absent), recorded by `apply` before it first changes the key. The copy reads the
    /// live tree without blocking applies, then puts these pre-images back: the result is the
    /// state at the copy's point. An entry lives from the point until the copy ran or was
    /// dropped; it is bounded by the keys changed meanwhile.
    preimages: Mutex<BTreeMap<u64, Preimages>>,
    /// The cluster identity in the state (`m/cluster_id`), kept current by `write_batch` and
    /// `install` for the network's two ends (see [`crate::cluster_identity`]).
    identity: Arc<ClusterIdentity>,
    /// Whether the node's storage has room for writes (set by the node's storage guard, read
    /// by every write path before it proposes; see [`super::space`]).
    space: Arc<super::space::Space>,
}

/// The state-machine store. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct StateMachineStore {
    inner: Arc<Inner>,
}

impl StateMachineStore {
    /// Opens the state machine in `db`. `old_snapshot_dir` is where earlier versions kept a
    /// snapshot file; snapshots are no longer stored, so it is removed if it exists. `options`
    /// is kept for every apply.
    pub fn new(
        db: sled::Db,
        durability: Arc<Durability>,
        old_snapshot_dir: &Path,
        options: ApplyOptions,
    ) -> Result<Self, StoreError> {
        match std::fs::remove_dir_all(old_snapshot_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let meta = db.open_tree("raft_meta")?;
        let generation = meta.get(KEY_GENERATION)?.as_deref().and_then(codec::parse_key_u64).unwrap_or(0);
        let tree = db.open_tree(tree_name(generation))?;
        // Leftovers of an install that crashed before its flip, or of old generations.
        for name in db.tree_names() {
            if name.starts_with(b"sm.") && name.as_ref() != tree_name(generation).as_bytes() {
                db.drop_tree(name)?;
            }
        }
        let identity = Arc::new(ClusterIdentity::default());
        identity.set(cluster_id::read(&tree)?);
        let inner = Inner {
            db,
            meta,
            current: RwLock::new((generation, tree)),
            apply_gate: Mutex::new(()),
            digest_gate: Mutex::new(()),
            durability,
            options,
            copy_seq: AtomicU64::new(0),
            applied_tx: tokio::sync::broadcast::channel(APPLIED_CHANNEL_LEN).0,
            preimages: Mutex::new(BTreeMap::new()),
            space: Arc::default(),
            identity,
        };
        Ok(StateMachineStore { inner: Arc::new(inner) })
    }

    /// Subscribes to apply notifications. Subscribe *before* reading the state you build from,
    /// so that no change falls between the read and the first notification.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Applied>> {
        self.inner.applied_tx.subscribe()
    }

    /// The cluster identity this node knows (see [`crate::cluster_identity`]).
    pub fn cluster_identity(&self) -> Arc<ClusterIdentity> {
        self.inner.identity.clone()
    }

    /// The node's storage room (see [`super::space`]).
    pub fn space(&self) -> Arc<super::space::Space> {
        self.inner.space.clone()
    }

    /// Read access to the current state (no gate: point reads may interleave with applies).
    pub fn view(&self) -> StateView {
        StateView::new(self.tree())
    }

    /// The applied log index and a digest of the state at exactly that index (the same value as
    /// [`StateView::digest`] of that state). Fixes the point under the apply gate, a moment, then
    /// scans while applies go on, the hashing below normal priority ([`SnapshotCopy::for_each_pair`]). One digest at a time per node: a second caller waits for the first. Blocks.
    pub fn digest(&self) -> Result<(Option<LogId<NodeId>>, String), StoreError> {
        self.digests().map(|(applied, state, _)| (applied, state))
    }

    /// As [`StateMachineStore::digest`], with the data digest besides (every pair but the
    /// position keys, see [`super::backup::is_position_key`]): what a restored state keeps.
    pub fn digests(&self) -> Result<(Option<LogId<NodeId>>, String, String), StoreError> {
        let _one_at_a_time = self.inner.digest_gate.lock().unwrap_or_else(|p| p.into_inner());
        let copy = self.start_copy()?;
        let applied = copy.meta().last_log_id;
        let (state, data) = copy.digests()?;
        Ok((applied, state, data))
    }

    /// Fixes a point of the state for a backup (see [`super::backup`]): the copy's
    /// [`SnapshotCopy::for_each_pair`] then streams the state at that point while applies go on.
    pub fn fix_point(&self) -> Result<SnapshotCopy, StoreError> {
        self.start_copy()
    }

    /// How many fixed points (snapshot copies not yet run, digests in progress) are recording
    /// pre-images: each costs one read per key an apply changes.
    pub fn recording_points(&self) -> usize {
        self.inner.preimages.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Makes every write so far durable (used at shutdown).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.inner.durability.sync()
    }

    /// How many fsyncs the node has done (log appends, votes, purges, installs).
    pub fn sync_count(&self) -> u64 {
        self.inner.durability.sync_count()
    }

    /// How long this node's storage steps take (log writes, applied batches, syncs).
    pub fn timings(&self) -> &StorageTimings {
        self.inner.durability.timings()
    }

    pub(super) fn tree(&self) -> sled::Tree {
        self.inner.current.read().unwrap_or_else(|p| p.into_inner()).1.clone()
    }

    /// Applies a run of committed entries, writing them in sled batches of about
    /// [`APPLY_BATCH_KEYS`] keys cut at entry boundaries (one entry is never split).
    ///
    /// Why not one batch per run: sled's `apply_batch` holds a process-wide write lock for the
    /// whole batch, and every other sled read and write of the node waits on it, log appends
    /// included. A run of a few large fire entries (hundreds of thousands of keys) held it for
    /// seconds, RaftCore sat in `append` behind it, and heartbeats timed out (the 100,000-slot
    /// burst). Each batch carries its entries' `last_applied`, so a crash between two batches
    /// leaves the state at an entry boundary and openraft re-applies the rest from the log.
    fn apply_run(&self, entries: Vec<Entry<TypeConfig>>) -> Result<Vec<Response>, StoreError> {
        let _gate = self.inner.apply_gate.lock().unwrap_or_else(|p| p.into_inner());
        let tree = self.tree();
        let mut out = Vec::with_capacity(entries.len());
        let mut ws = WriteSet::new(&tree);
        for (i, entry) in entries.iter().enumerate() {
            out.push(apply_entry(&mut ws, entry, self.inner.options)?);
            if i + 1 == entries.len() || ws.pending_len() >= APPLY_BATCH_KEYS {
                self.write_batch(&tree, std::mem::replace(&mut ws, WriteSet::new(&tree)), entry.log_id.index)?;
            }
        }
        Ok(out)
    }

    /// Writes one batch of applied entries (up to `log_index`) and announces it.
    fn write_batch(&self, tree: &sled::Tree, ws: WriteSet<'_>, log_index: u64) -> Result<(), StoreError> {
        let (tasks, executions) = (ws.touched_ids(keys::TASK), ws.touched_ids(keys::EXECUTION));
        let outbox = !ws.touched_ids(keys::OUTBOX).is_empty();
        let names_cluster = ws.touches(keys::CLUSTER_ID);
        let applied = Applied { log_index, tasks, executions, reset: false, outbox };
        timed(&self.inner.durability.timings().apply_write, || -> Result<(), StoreError> {
            record_preimages(&mut self.inner.preimages.lock().unwrap_or_else(|p| p.into_inner()), tree, ws.keys())?;
            Ok(tree.apply_batch(ws.into_batch())?)
        })?;
        if names_cluster {
            self.inner.identity.set(cluster_id::read(tree)?);
        }
        // No subscriber is fine; a send error only means nobody listens.
        let _ = self.inner.applied_tx.send(Arc::new(applied));
        Ok(())
    }

    fn install(&self, meta: &SnapshotMeta<NodeId, NodeInfo>, body: SnapshotBody) -> Result<(), StoreError> {
        let SnapshotPayload::V1 { pairs } = codec::decode(&body.into_bytes()?)?;
        let _gate = self.inner.apply_gate.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.inner.current.read().unwrap_or_else(|p| p.into_inner()).0 + 1;
        let tree = self.inner.db.open_tree(tree_name(generation))?;
        tree.clear()?;
        for chunk in pairs.chunks(INSTALL_BATCH) {
            let mut batch = sled::Batch::default();
            for (k, v) in chunk {
                batch.insert(k.as_slice(), v.as_slice());
            }
            tree.apply_batch(batch)?;
        }
        self.inner.durability.sync()?;
        self.inner.meta.insert(KEY_GENERATION, &codec::key_u64(generation))?;
        self.inner.durability.sync()?;
        self.inner.identity.set(cluster_id::read(&tree)?);
        let old =
            std::mem::replace(&mut *self.inner.current.write().unwrap_or_else(|p| p.into_inner()), (generation, tree));
        self.inner.db.drop_tree(tree_name(old.0))?;
        let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        let _ = self.inner.applied_tx.send(Arc::new(Applied { log_index: index, reset: true, ..Default::default() }));
        Ok(())
    }
}

fn tree_name(generation: u64) -> String {
    format!("sm.{generation}")
}

/// openraft's periodic snapshot: a point behind which the log may be purged. The state machine
/// is durable, so nothing is copied (see the module docs).
pub struct SnapshotBuilder {
    /// Fixed in `get_snapshot_builder`, on the state-machine worker, so the point is the applied
    /// state there; taken by the first `build_snapshot`.
    copy: Option<SnapshotCopy>,
    durability: Arc<Durability>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let err = |e: StoreError| e.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Write);
        let copy =
            self.copy.take().ok_or_else(|| err(std::io::Error::other("a snapshot builder builds once").into()))?;
        // openraft may purge the log up to the point once this returns: the applied state up to
        // it must be on disk first. One fsync per snapshot; the purge would sync as well.
        self.durability.sync_async().await.map_err(err)?;
        Ok(copy.into_snapshot())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, NodeInfo>), StorageError<NodeId>> {
        self.view().applied_state().map_err(sm_err(ErrorVerb::Read))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        if is_heavy(&entries) {
            blocking(|| self.apply_run(entries)).map_err(sm_err(ErrorVerb::Write))
        } else {
            self.apply_run(entries).map_err(sm_err(ErrorVerb::Write))
        }
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Reading the applied state can only fail if the store is broken: panic loudly rather
        // than build a snapshot that claims no applied id.
        let copy = self.start_copy().expect("start a state machine snapshot");
        SnapshotBuilder { copy: Some(copy), durability: self.inner.durability.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotBody>, StorageError<NodeId>> {
        Ok(Box::new(SnapshotBody::empty()))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, NodeInfo>,
        snapshot: Box<SnapshotBody>,
    ) -> Result<(), StorageError<NodeId>> {
        let this = self.clone();
        let meta_owned = meta.clone();
        let installed = tokio::task::spawn_blocking(move || this.install(&meta_owned, *snapshot))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))
            .and_then(|r| r);
        installed.map_err(|e| e.into_raft(ErrorSubject::Snapshot(Some(meta.signature())), ErrorVerb::Write))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        // The snapshot at the current applied state, copied only if its body is read: openraft
        // asks for it at startup (for its meta) and to send it to a follower (then it reads it).
        let copy = self.start_copy().map_err(|e| e.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Read))?;
        Ok(copy.meta().last_log_id.is_some().then(|| copy.into_snapshot()))
    }
}

/// Whether a run is long enough to apply through [`blocking`]: many entries, or fire entries
/// holding many slots (about six keys each). Most runs are a few small entries that apply in well
/// under a millisecond; handing the worker over for each of them cost more than it saved (the
/// sustained benchmark applies hundreds of runs a second on every node).
fn is_heavy(entries: &[Entry<TypeConfig>]) -> bool {
    let slots: usize = entries
        .iter()
        .map(|e| match &e.payload {
            EntryPayload::Normal(request) => request.command.fire_slots(),
            _ => 0,
        })
        .sum();
    entries.len() >= HEAVY_RUN_ENTRIES || slots >= HEAVY_RUN_SLOTS
}

/// Runs a long synchronous storage call from async code: on a multi-threaded runtime the worker
/// hands its other tasks over first (`block_in_place`), so a long apply does not stall them; on
/// a current-thread runtime (some tests) it just runs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorders(sm: &StateMachineStore) -> usize {
        sm.inner.preimages.lock().unwrap().len()
    }

    #[tokio::test]
    async fn snapshots_record_pre_images_only_while_their_copy_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        let (_log, mut sm) = super::super::open(dir.path(), 1 << 20, ApplyOptions::default()).unwrap();
        // Phase 1: openraft asks for the current snapshot at startup only for its meta and drops
        // it: nothing keeps recording (the recording would grow with every apply).
        let snapshot = sm.get_current_snapshot().await.unwrap();
        assert!(snapshot.is_none(), "nothing applied, no snapshot");
        let builder = sm.get_snapshot_builder().await;
        assert_eq!(recorders(&sm), 1);
        drop(builder);
        assert_eq!(recorders(&sm), 0);

        // Phase 2: a built snapshot records until its body is copied, then stops.
        let mut builder = sm.get_snapshot_builder().await;
        let built = builder.build_snapshot().await.unwrap();
        drop(builder);
        assert_eq!(recorders(&sm), 1, "the built snapshot's body is still to be copied");
        let bytes = tokio::task::spawn_blocking(move || built.snapshot.into_bytes()).await.unwrap().unwrap();
        assert!(!bytes.is_empty());
        assert_eq!(recorders(&sm), 0);
    }

    #[test]
    fn an_old_snapshot_directory_is_removed_at_open() {
        // Earlier versions kept `snapshots/current.snap`, as large as the whole state.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("snapshots")).unwrap();
        std::fs::write(dir.path().join("snapshots/current.snap"), b"old").unwrap();
        let _store = super::super::open(dir.path(), 1 << 20, ApplyOptions::default()).unwrap();
        assert!(!dir.path().join("snapshots").exists());
    }
}
