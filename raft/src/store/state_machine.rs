//! The state machine on sled, and its snapshots.
//!
//! `apply` writes each run of committed entries as atomic sled batches of whole entries (data and
//! `last_applied` together; a long run is cut at entry boundaries, see `apply_run`) without its
//! own fsync: the next log append's sync makes it durable, and until then the durable log holds
//! the entries, which openraft re-applies after a crash.
//!
//! Snapshots. openraft calls `get_snapshot_builder` on the state-machine worker (serialized with
//! `apply`) and then builds in a separate task while applies go on. So the builder fixes its
//! index while it still has the worker and starts recording pre-images; the build then reads the
//! live tree and puts the pre-images back (`copy_pairs`). It runs on a thread of its own at a
//! lower CPU priority and writes its file in synced chunks ([`super::snapshot_file`]), because
//! every node builds at the same index and a large build must not stall appends into an
//! election. Installing a received snapshot is crash-atomic: the data goes into a fresh tree
//! `sm.<generation+1>`, which is synced, and only then does the generation pointer in `raft_meta`
//! flip (one key, synced). A crash before the flip leaves the old state; the leftover tree is
//! dropped on the next start.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::{snapshot_file, Durability};
use crate::codec;
use crate::command::Response;
use crate::error::{sm_err, StoreError};
use crate::model::NodeInfo;
use crate::state::{apply_entry, StateView};
use crate::txn::WriteSet;
use crate::{NodeId, TypeConfig};

const KEY_GENERATION: &[u8] = b"sm_generation";
/// Keys inserted per sled batch while installing a snapshot.
const INSTALL_BATCH: usize = 10_000;
/// The `nice` value of the thread that builds a snapshot (see `build_snapshot`).
const SNAPSHOT_THREAD_NICE: libc::c_int = 10;
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
    /// Held by `apply`, snapshot copy/install and digest, so a digest sees one applied index.
    apply_gate: Mutex<()>,
    durability: Arc<Durability>,
    snapshot_dir: PathBuf,
    /// Makes snapshot ids unique within a process run.
    snapshot_seq: AtomicU64,
    /// Announces each written batch; bounded per subscriber (see [`Applied`]).
    applied_tx: tokio::sync::broadcast::Sender<Arc<Applied>>,
    /// While a snapshot copy runs: the value each key had when the copy began (`None` = absent),
    /// recorded by `apply` before it first changes the key. The copy reads the live tree without
    /// blocking applies, then puts these pre-images back: the result is the state at the copy's
    /// applied index. Bounded by the keys changed during one copy.
    preimages: Mutex<Option<Preimages>>,
}

/// The state-machine store. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct StateMachineStore {
    inner: Arc<Inner>,
}

impl StateMachineStore {
    pub fn new(db: sled::Db, durability: Arc<Durability>, snapshot_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(snapshot_dir)?;
        let meta = db.open_tree("raft_meta")?;
        let generation = meta.get(KEY_GENERATION)?.as_deref().and_then(codec::parse_key_u64).unwrap_or(0);
        let tree = db.open_tree(tree_name(generation))?;
        // Leftovers of an install that crashed before its flip, or of old generations.
        for name in db.tree_names() {
            if name.starts_with(b"sm.") && name.as_ref() != tree_name(generation).as_bytes() {
                db.drop_tree(name)?;
            }
        }
        let inner = Inner {
            db,
            meta,
            current: RwLock::new((generation, tree)),
            apply_gate: Mutex::new(()),
            durability,
            snapshot_dir: snapshot_dir.to_path_buf(),
            snapshot_seq: AtomicU64::new(0),
            applied_tx: tokio::sync::broadcast::channel(APPLIED_CHANNEL_LEN).0,
            preimages: Mutex::new(None),
        };
        Ok(StateMachineStore { inner: Arc::new(inner) })
    }

    /// Subscribes to apply notifications. Subscribe *before* reading the state you build from,
    /// so that no change falls between the read and the first notification.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Applied>> {
        self.inner.applied_tx.subscribe()
    }

    /// Read access to the current state (no gate: point reads may interleave with applies).
    pub fn view(&self) -> StateView {
        StateView::new(self.tree())
    }

    /// The applied log index and a digest of the state at exactly that index.
    pub fn digest(&self) -> Result<(Option<LogId<NodeId>>, String), StoreError> {
        let _gate = self.inner.apply_gate.lock().unwrap_or_else(|p| p.into_inner());
        let view = self.view();
        Ok((view.applied_state()?.0, view.digest()?))
    }

    /// Makes every write so far durable (used at shutdown).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.inner.durability.sync()
    }

    /// How many fsyncs the node has done (log appends, votes, purges, installs).
    pub fn sync_count(&self) -> u64 {
        self.inner.durability.sync_count()
    }

    fn tree(&self) -> sled::Tree {
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
            out.push(apply_entry(&mut ws, entry)?);
            if i + 1 == entries.len() || ws.pending_len() >= APPLY_BATCH_KEYS {
                self.write_batch(&tree, std::mem::replace(&mut ws, WriteSet::new(&tree)), entry.log_id.index)?;
            }
        }
        Ok(out)
    }

    /// Writes one batch of applied entries (up to `log_index`) and announces it.
    fn write_batch(&self, tree: &sled::Tree, ws: WriteSet<'_>, log_index: u64) -> Result<(), StoreError> {
        let applied =
            Applied { log_index, tasks: ws.touched_ids(b"t/"), executions: ws.touched_ids(b"x/"), reset: false };
        if let Some(pre) = self.inner.preimages.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            for key in ws.keys() {
                if !pre.contains_key(key) {
                    pre.insert(key.clone(), tree.get(key)?.map(|v| v.to_vec()));
                }
            }
        }
        tree.apply_batch(ws.into_batch())?;
        // No subscriber is fine; a send error only means nobody listens.
        let _ = self.inner.applied_tx.send(Arc::new(applied));
        Ok(())
    }

    /// Starts a snapshot copy: notes the applied state and starts recording pre-images, under
    /// the gate (a moment); the copy itself runs later, in [`SnapshotBuilder::build`].
    fn start_snapshot(&self) -> Result<SnapshotBuilder, StoreError> {
        let _gate = self.inner.apply_gate.lock().unwrap_or_else(|p| p.into_inner());
        let (generation, tree) = self.inner.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        let (applied, membership) = StateView::new(tree.clone()).applied_state()?;
        let mut pre = self.inner.preimages.lock().unwrap_or_else(|p| p.into_inner());
        let live = pre.is_none();
        if live {
            *pre = Some(BTreeMap::new());
        }
        let seq = self.inner.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let store = self.clone();
        Ok(SnapshotBuilder {
            store,
            generation,
            tree,
            live,
            applied,
            membership,
            seq,
            dir: self.inner.snapshot_dir.clone(),
        })
    }

    /// Every key and value of the state at the builder's applied index, in key order.
    fn copy_pairs(&self, b: &mut SnapshotBuilder) -> Result<Pairs, StoreError> {
        if b.live {
            let mut pairs = Vec::new();
            let read = b.tree.iter().try_for_each(|kv| kv.map(|(k, v)| pairs.push((k.to_vec(), v.to_vec()))));
            let _gate = self.inner.apply_gate.lock().unwrap_or_else(|p| p.into_inner());
            let pre = self.inner.preimages.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default();
            let same = self.inner.current.read().unwrap_or_else(|p| p.into_inner()).0 == b.generation;
            if read.is_ok() && same {
                return Ok(merge_preimages(pairs, pre));
            }
        }
        // A snapshot was installed meanwhile (or another copy was running): copy under the gate.
        let _gate = self.inner.apply_gate.lock().unwrap_or_else(|p| p.into_inner());
        let tree = self.tree();
        (b.applied, b.membership) = StateView::new(tree.clone()).applied_state()?;
        let mut pairs = Vec::new();
        for kv in tree.iter() {
            let (k, v) = kv?;
            pairs.push((k.to_vec(), v.to_vec()));
        }
        Ok(pairs)
    }

    fn install(&self, meta: &SnapshotMeta<NodeId, NodeInfo>, data: Vec<u8>) -> Result<(), StoreError> {
        let SnapshotPayload::V1 { pairs } = codec::decode(&data)?;
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
        let old =
            std::mem::replace(&mut *self.inner.current.write().unwrap_or_else(|p| p.into_inner()), (generation, tree));
        self.inner.db.drop_tree(tree_name(old.0))?;
        let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        let _ = self.inner.applied_tx.send(Arc::new(Applied { log_index: index, reset: true, ..Default::default() }));
        snapshot_file::write(&self.inner.snapshot_dir, meta, data)
    }

    fn read_snapshot_file(&self) -> Result<Option<Snapshot<TypeConfig>>, StoreError> {
        let read = snapshot_file::read(&self.inner.snapshot_dir)?;
        Ok(read.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

fn tree_name(generation: u64) -> String {
    format!("sm.{generation}")
}

/// Lowers the calling thread's CPU priority to `SNAPSHOT_THREAD_NICE`. On Linux a `nice` value
/// belongs to a thread, so the rest of the process keeps its priority. Best effort: a failure
/// leaves the thread at normal priority, which is only slower for the others.
fn lower_this_threads_priority() {
    // SAFETY: gettid takes no arguments; setpriority only reads its integer arguments.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, SNAPSHOT_THREAD_NICE);
    }
}

/// Every key and value of a state, in key order.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;
/// Keys changed since a copy began, with their values then (`None` = absent).
type Preimages = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Replaces the values of keys changed during a copy by their values when it began.
fn merge_preimages(pairs: Pairs, pre: Preimages) -> Pairs {
    let mut out = Vec::with_capacity(pairs.len());
    let mut pre = pre.into_iter().peekable();
    for (k, v) in pairs {
        while let Some((pk, _)) = pre.peek() {
            if *pk >= k {
                break;
            }
            // Changed, and absent from the copy: deleted after the copy began.
            if let Some((pk, Some(pv))) = pre.next() {
                out.push((pk, pv));
            }
        }
        match pre.peek() {
            Some((pk, _)) if *pk == k => {
                if let Some((pk, Some(pv))) = pre.next() {
                    out.push((pk, pv));
                }
            }
            _ => out.push((k, v)),
        }
    }
    out.extend(pre.filter_map(|(k, v)| v.map(|v| (k, v))));
    out
}

/// A snapshot in the making: the copy of the state runs in `build`, off the apply path, and is
/// made consistent with the recorded pre-images (see `Inner::preimages`).
pub struct SnapshotBuilder {
    store: StateMachineStore,
    generation: u64,
    tree: sled::Tree,
    /// Whether pre-images are recorded for this copy (else it copies under the gate).
    live: bool,
    applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, NodeInfo>,
    seq: u64,
    dir: PathBuf,
}

impl Drop for SnapshotBuilder {
    /// A builder dropped before its copy ran stops the recording of pre-images.
    fn drop(&mut self) {
        if self.live {
            *self.store.inner.preimages.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

impl SnapshotBuilder {
    fn build(mut self) -> Result<Snapshot<TypeConfig>, StoreError> {
        let store = self.store.clone();
        let pairs = store.copy_pairs(&mut self);
        self.live = false; // the copy took the pre-images (or never had them)
        let pairs = pairs?;
        let data = codec::encode(&SnapshotPayload::V1 { pairs })?;
        let snapshot_id = match self.applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, self.seq),
            None => format!("0-0-{}", self.seq),
        };
        let meta = SnapshotMeta { last_log_id: self.applied, last_membership: self.membership.clone(), snapshot_id };
        snapshot_file::write(&self.dir, &meta, data.clone())?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let this = SnapshotBuilder {
            store: self.store.clone(),
            generation: self.generation,
            tree: self.tree.clone(),
            live: std::mem::replace(&mut self.live, false),
            applied: self.applied,
            membership: self.membership.clone(),
            seq: self.seq,
            dir: self.dir.clone(),
        };
        // Its own thread at a lower CPU priority, not the blocking pool: a copy of a large state
        // takes seconds of CPU on every node at once (they all cross the snapshot threshold at the
        // same index), and it must not starve the threads that append, replicate and heartbeat.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new().name("snapshot".into()).spawn(move || {
            lower_this_threads_priority();
            let _ = done_tx.send(this.build());
        });
        let built = match spawned {
            Ok(_) => done_rx.await.map_err(|e| StoreError::Io(std::io::Error::other(e))).and_then(|r| r),
            Err(e) => Err(StoreError::Io(e)),
        };
        built.map_err(|e| e.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Write))
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
        self.start_snapshot().expect("start a state machine snapshot")
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, NodeInfo>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let this = self.clone();
        let meta_owned = meta.clone();
        let data = snapshot.into_inner();
        let installed = tokio::task::spawn_blocking(move || this.install(&meta_owned, data))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))
            .and_then(|r| r);
        installed.map_err(|e| e.into_raft(ErrorSubject::Snapshot(Some(meta.signature())), ErrorVerb::Write))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        self.read_snapshot_file().map_err(|e| e.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Read))
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

    /// The `nice` value of the calling thread, field 19 of `/proc/thread-self/stat`.
    fn this_threads_nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The command name (field 2) may hold spaces; the fields after it are plain.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn the_snapshot_thread_runs_below_normal_priority_and_the_rest_of_the_process_does_not() {
        let before = this_threads_nice();
        let inside = std::thread::spawn(|| {
            lower_this_threads_priority();
            this_threads_nice()
        })
        .join()
        .unwrap();
        assert_eq!(inside, SNAPSHOT_THREAD_NICE as i64);
        assert_eq!(this_threads_nice(), before, "only the snapshot thread is lowered");
    }
}
