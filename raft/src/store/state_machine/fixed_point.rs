//! A fixed point of the state: [`SnapshotCopy`], its pre-images, and the scan that reads the
//! state at that point while applies go on (a snapshot's body, a digest, a backup).
//!
//! A point is fixed under the apply gate, a moment; from then on `apply` records the pre-image of
//! every key it changes (`record_preimages`, before it writes the batch), and a scan of the live
//! tree that puts the pre-images back gives the state at the point.
//!
//! Why the scan is two threads. A scan of a large state takes seconds of CPU, so its work runs
//! below normal priority. But reading sled takes sled's process-wide concurrency lock: once any
//! batch has been applied, every `Iter::next` holds its read side, and `apply_batch` (every
//! apply, every log append behind it) waits for the write side. A reader below normal priority,
//! preempted while it holds the read side on a busy machine, kept the node's applies and appends
//! waiting for as long as the scheduler left it off the CPU: priority inversion, and the fires
//! behind it late (issue 19's backup benchmark: 1–4 % of fires above 50 ms while a backup ran).
//! So the tree is read on the *calling* thread at its normal priority, in batches of
//! [`SCAN_BATCH_PAIRS`], each put at the point under one take of the pre-image lock; the caller's
//! work on each pair (hashing, encoding, writing) runs on a thread of its own below normal
//! priority, which holds no lock the node needs. The bounded channel between them paces the
//! reader by the worker.
//!
//! Why the reader rests. Even so, a scan read as fast as it could on the leader, with the other
//! two nodes on the same two cores, left bursts of fires above 50 ms (1–3 % of a backup's fires
//! in one backup of two), and none of the storage steps was slow meanwhile
//! (`cronraft_storage_*_seconds` all under 25 ms): the CPU was the queue. After each batch the
//! reader sleeps as long as the batch took ([`SCAN_REST_PER_BUSY`]), so a scan never takes more
//! than about half of a CPU, and less when the batches come slowly because the machine is busy.
//! A backup of 1 M records then takes 21–27 s instead of 9–15 s (the bound is 30 s),
//! and 14 backups of 14 met the fire-lag bound, two with a snapshot point inside
//! (`docs/performance.md`, session 15).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, SyncSender};

use openraft::storage::Snapshot;
use openraft::SnapshotMeta;

use super::{SnapshotPayload, StateMachineStore};
use crate::codec;
use crate::error::StoreError;
use crate::model::NodeInfo;
use crate::state::{StateDigest, StateView};
use crate::store::snapshot_body::SnapshotBody;
use crate::{NodeId, TypeConfig};

/// The `nice` value of the threads that work on a scan's pairs (see the module docs).
const SCAN_WORKER_NICE: libc::c_int = 10;
/// Pairs read from the tree per batch, handed from the reader to the worker.
const SCAN_BATCH_PAIRS: usize = 1_024;
/// Batches between the reader and the worker, at most: the rest of the state stays in sled.
const SCAN_BATCHES_IN_FLIGHT: usize = 2;
/// How long the reader rests after each batch, per unit of time it took to read it: 1.0 gives
/// the scan at most half of a CPU's time, less when the machine is busy (a batch read on a busy
/// machine takes longer, and so does the rest after it). See the module docs.
const SCAN_REST_PER_BUSY: f64 = 1.0;

/// How long a scan's reader read (and put batches at the point) and how long it rested.
#[derive(Debug, Default, Clone, Copy)]
struct ScanPace {
    busy: std::time::Duration,
    rested: std::time::Duration,
}

/// Lowers the calling thread's CPU priority to [`SCAN_WORKER_NICE`]. On Linux a `nice` value
/// belongs to a thread, so the rest of the process keeps its priority; threads it spawns later
/// inherit it. Best effort: a failure leaves the thread at normal priority, which is only slower
/// for the others.
fn lower_this_threads_priority() {
    // SAFETY: gettid takes no arguments; setpriority only reads its integer arguments.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, SCAN_WORKER_NICE);
    }
}

/// A snapshot's body: every pair of the state, encoded.
fn encode_body(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<u8>, StoreError> {
    Ok(codec::encode(&SnapshotPayload::V1 { pairs })?)
}

/// Keys and values, in key order.
type Pairs = Vec<(sled::IVec, sled::IVec)>;
/// Keys changed since a point was fixed, with their values then (`None` = absent).
pub(super) type Preimages = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Records, for every fixed point in existence, the value each key of a batch has before the
/// batch changes it, unless the point already holds an older one. One read per key at most.
pub(super) fn record_preimages<'k>(
    points: &mut BTreeMap<u64, Preimages>,
    tree: &sled::Tree,
    keys: impl Iterator<Item = &'k Vec<u8>>,
) -> Result<(), StoreError> {
    if points.is_empty() {
        return Ok(());
    }
    for key in keys {
        let mut before: Option<Option<Vec<u8>>> = None;
        for pre in points.values_mut() {
            if !pre.contains_key(key) {
                let value = match &before {
                    Some(v) => v.clone(),
                    None => before.insert(tree.get(key)?.map(|v| v.to_vec())).clone(),
                };
                pre.insert(key.clone(), value);
            }
        }
    }
    Ok(())
}

/// Adds to `out`, in key order, the keys between `from` and `to` that existed at the point and
/// were deleted since (a pre-image with a value, absent from the live tree's scan).
fn collect_deleted(out: &mut Pairs, pre: &Preimages, from: Bound<&[u8]>, to: Bound<&[u8]>) {
    for (k, v) in pre.range::<[u8], _>((from, to)) {
        if let Some(v) = v {
            out.push((k.as_slice().into(), v.as_slice().into()));
        }
    }
}

impl StateMachineStore {
    /// Fixes a point at the applied state and starts recording pre-images for it, under the
    /// gate (a moment). The state at the point is read only if someone scans it.
    pub(super) fn start_copy(&self) -> Result<SnapshotCopy, StoreError> {
        let _gate = self.inner.apply_gate.lock().unwrap_or_else(|p| p.into_inner());
        let (generation, tree) = self.inner.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        let (applied, membership) = StateView::new(tree.clone()).applied_state()?;
        let seq = self.inner.copy_seq.fetch_add(1, Ordering::Relaxed);
        self.inner.preimages.lock().unwrap_or_else(|p| p.into_inner()).insert(seq, Preimages::new());
        // The state at a log id is the same on every node and every time (apply is deterministic),
        // so the log id names it: a snapshot built and one read later at the same point are equal.
        let snapshot_id = applied.map_or("0-0".to_string(), |id| format!("{}-{}", id.leader_id.term, id.index));
        let meta = SnapshotMeta { last_log_id: applied, last_membership: membership, snapshot_id };
        Ok(SnapshotCopy { store: self.clone(), seq, generation, tree, meta })
    }
}

/// A fixed point of the state (a snapshot whose body has not been read, a digest, a backup).
/// Dropping it stops the recording of its pre-images.
pub struct SnapshotCopy {
    store: StateMachineStore,
    /// Its key in `Inner::preimages`.
    seq: u64,
    /// The generation and tree at the point; a scan across an install fails.
    generation: u64,
    tree: sled::Tree,
    meta: SnapshotMeta<NodeId, NodeInfo>,
}

impl Drop for SnapshotCopy {
    fn drop(&mut self) {
        self.store.inner.preimages.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.seq);
    }
}

impl SnapshotCopy {
    /// The snapshot with this point as its (deferred) body.
    pub(super) fn into_snapshot(self) -> Snapshot<TypeConfig> {
        Snapshot { meta: self.meta.clone(), snapshot: Box::new(SnapshotBody::deferred(self)) }
    }

    /// The state at the point, encoded as a snapshot's body, on the calling thread.
    pub(in crate::store) fn run(self) -> Result<Vec<u8>, StoreError> {
        encode_body(self.pairs()?)
    }

    /// Runs the copy on a thread of its own, not the blocking pool (a copy of a large state takes
    /// seconds, and the pool's threads serve the node's other blocking calls); the encoding, once
    /// the pairs are read and no lock is needed any more, below normal priority.
    pub(in crate::store) fn spawn(
        self,
    ) -> std::io::Result<tokio::sync::oneshot::Receiver<Result<Vec<u8>, StoreError>>> {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new().name("snapshot".into()).spawn(move || {
            let body = self.pairs().and_then(|pairs| {
                lower_this_threads_priority();
                encode_body(pairs)
            });
            let _ = done_tx.send(body);
        })?;
        Ok(done_rx)
    }

    /// Every key and value of the state at the point, in memory (a snapshot's body).
    fn pairs(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let mut pairs = Vec::new();
        self.for_each_pair(|k, v| {
            pairs.push((k.to_vec(), v.to_vec()));
            Ok(())
        })?;
        Ok(pairs)
    }

    /// The state and data digests of the state at the point ([`SnapshotCopy::for_each_pair`]).
    pub(super) fn digests(&self) -> Result<(String, String), StoreError> {
        let (mut state, mut data) = (StateDigest::new(), StateDigest::new());
        self.for_each_pair(|k, v| {
            state.add(k, v);
            if !crate::store::backup::is_position_key(k) {
                data.add(k, v);
            }
            Ok(())
        })?;
        Ok((state.finish(), data.finish()))
    }

    /// Calls `f` with every key and value of the state at the point, in key order, streamed:
    /// the live tree in key order, where a key an apply changed since the point counts with its
    /// pre-image instead, and a key deleted since then is put back from its pre-image in order.
    ///
    /// The tree is read on the calling thread, at its priority; `f` runs on a thread of its own
    /// below normal priority, with no lock held, so it may block (a backup waiting for a slow
    /// client) without stalling applies (see the module docs). The pre-images recorded meanwhile
    /// are bounded by the keys changed. Blocks until the scan ends or `f` fails.
    pub fn for_each_pair(
        &self,
        f: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError> + Send,
    ) -> Result<(), StoreError> {
        self.paced_for_each_pair(f).map(|_| ())
    }

    /// [`SnapshotCopy::for_each_pair`], saying how long the reader read and rested.
    fn paced_for_each_pair(
        &self,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError> + Send,
    ) -> Result<ScanPace, StoreError> {
        let (tx, rx) = sync_channel::<Result<Pairs, StoreError>>(SCAN_BATCHES_IN_FLIGHT);
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("scan-worker".into())
                .spawn_scoped(scope, move || {
                    lower_this_threads_priority();
                    // On an early return `rx` is dropped, and the reader's next send fails.
                    for batch in rx {
                        for (k, v) in batch? {
                            f(&k, &v)?;
                        }
                    }
                    Ok::<(), StoreError>(())
                })
                .map_err(StoreError::Io)?;
            let pace = self.read_batches(tx);
            worker.join().map_err(|_| StoreError::Io(std::io::Error::other("the scan's worker thread panicked")))??;
            Ok(pace)
        })
    }

    /// The reader's half of [`SnapshotCopy::for_each_pair`]: sends the state at the point in
    /// batches, or the error that stopped it, resting after each batch (see [`SCAN_REST_PER_BUSY`]).
    /// Returns, with how long it read and rested, when done, failed, or the worker is gone.
    fn read_batches(&self, tx: SyncSender<Result<Pairs, StoreError>>) -> ScanPace {
        let mut pace = ScanPace::default();
        let mut last: Option<sled::IVec> = None;
        let mut iter = self.tree.iter();
        loop {
            let began = std::time::Instant::now();
            let mut read: Pairs = Vec::with_capacity(SCAN_BATCH_PAIRS);
            let mut failed = None;
            while read.len() < SCAN_BATCH_PAIRS {
                match iter.next() {
                    Some(Ok(kv)) => read.push(kv),
                    Some(Err(e)) => {
                        failed = Some(self.replaced_or(e.into()));
                        break;
                    }
                    None => break,
                }
            }
            let end = failed.is_none() && read.len() < SCAN_BATCH_PAIRS;
            let batch = match failed {
                Some(e) => Err(e),
                None => self.at_point(&mut last, read, end),
            };
            let busy = began.elapsed();
            let rest = busy.mul_f64(SCAN_REST_PER_BUSY);
            std::thread::sleep(rest);
            pace.busy += busy;
            pace.rested += rest;
            let stop = end || batch.is_err();
            if tx.send(batch).is_err() || stop {
                return pace;
            }
        }
    }

    /// Puts one batch read from the live tree at the point, under one take of the pre-image
    /// lock: a key with a pre-image counts with it (it was changed since the point), a key
    /// without one was not written since the point (`apply` records a pre-image *before* it
    /// writes; a pre-image, once there, is the value at the point and never changes), and a key
    /// with a value at the point that the scan did not see in a gap was deleted since: it is
    /// put back in order. At the `end`, the keys deleted after the last one read, under the gate
    /// (no install is half done).
    fn at_point(&self, last: &mut Option<sled::IVec>, read: Pairs, end: bool) -> Result<Pairs, StoreError> {
        let replaced = || StoreError::SnapshotReplaced;
        let mut out = Vec::with_capacity(read.len());
        {
            let preimages = self.store.inner.preimages.lock().unwrap_or_else(|p| p.into_inner());
            let mine = preimages.get(&self.seq).ok_or_else(replaced)?;
            for (k, v) in read {
                if last.as_ref().is_some_and(|l| *l >= k) {
                    return Err(StoreError::Io(std::io::Error::other("the state tree went backwards during a scan")));
                }
                let from = last.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                collect_deleted(&mut out, mine, from, Bound::Excluded(&k));
                match mine.get(k.as_ref()) {
                    Some(Some(before)) => out.push((k.clone(), before.as_slice().into())),
                    Some(None) => {} // created since the point
                    None => out.push((k.clone(), v)),
                }
                *last = Some(k);
            }
        }
        if end {
            let _gate = self.store.inner.apply_gate.lock().unwrap_or_else(|p| p.into_inner());
            if self.store.inner.current.read().unwrap_or_else(|p| p.into_inner()).0 != self.generation {
                return Err(replaced());
            }
            let preimages = self.store.inner.preimages.lock().unwrap_or_else(|p| p.into_inner());
            let mine = preimages.get(&self.seq).ok_or_else(replaced)?;
            let from = last.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            collect_deleted(&mut out, mine, from, Bound::Unbounded);
        }
        Ok(out)
    }

    /// The point's metadata: the applied log id and membership.
    pub fn meta(&self) -> &SnapshotMeta<NodeId, NodeInfo> {
        &self.meta
    }

    /// A failed tree read during a scan: the tree was dropped by an install, or sled failed.
    fn replaced_or(&self, e: StoreError) -> StoreError {
        let generation = self.store.inner.current.read().unwrap_or_else(|p| p.into_inner()).0;
        if generation != self.generation {
            StoreError::SnapshotReplaced
        } else {
            e
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// The `nice` value of the calling thread, field 19 of `/proc/thread-self/stat`.
    fn this_threads_nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The command name (field 2) may hold spaces; the fields after it are plain.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    fn store_with(keys: u64) -> (tempfile::TempDir, StateMachineStore) {
        let dir = tempfile::tempdir().unwrap();
        let (_log, sm) = crate::store::open(dir.path(), 1 << 20, crate::state::ApplyOptions::default()).unwrap();
        let tree = sm.tree();
        for i in 0..keys {
            tree.insert(format!("k/{i:06}"), format!("v{i}").as_bytes()).unwrap();
        }
        (dir, sm)
    }

    #[test]
    fn the_scan_works_below_normal_priority_and_reads_at_the_callers() {
        // Regression (issue 19, the backup benchmark's late fires): the whole scan ran below
        // normal priority, sled's lock held inside `Iter::next` included, so applies waited for a
        // reader the scheduler kept off the CPU. Now only `f` runs lowered.
        let (_dir, sm) = store_with(3 * SCAN_BATCH_PAIRS as u64 + 5);
        let copy = sm.start_copy().unwrap();
        let caller = this_threads_nice();
        let seen = Arc::new(Mutex::new((Vec::new(), 0usize)));
        let inside = seen.clone();
        copy.for_each_pair(move |_, _| {
            let mut s = inside.lock().unwrap();
            if s.0.is_empty() {
                s.0.push(this_threads_nice());
            }
            s.1 += 1;
            Ok(())
        })
        .unwrap();
        let (nice, pairs) = seen.lock().unwrap().clone();
        assert_eq!(nice, vec![SCAN_WORKER_NICE as i64], "f runs lowered");
        assert_eq!(this_threads_nice(), caller, "the calling thread keeps its priority");
        assert_eq!(pairs, 3 * SCAN_BATCH_PAIRS + 5, "every pair, across batches");
    }

    #[test]
    fn a_scan_gives_the_state_at_its_point_while_keys_change_across_batches() {
        // Phase 1: a point over keys spanning several batches.
        let (_dir, sm) = store_with(4 * SCAN_BATCH_PAIRS as u64);
        let at_point: Vec<(Vec<u8>, Vec<u8>)> =
            sm.tree().iter().map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap()).collect();
        let copy = sm.start_copy().unwrap();

        // Phase 2: while the scan is in its first batch, change keys before and after it the way
        // `write_batch` does (pre-images first): update, delete, create.
        let tree = sm.tree();
        let changed = Mutex::new(false);
        let mut got = Vec::new();
        copy.for_each_pair(|k, v| {
            if !std::mem::replace(&mut *changed.lock().unwrap(), true) {
                let keys: Vec<Vec<u8>> = ["k/000000", "k/002000", "k/003000", "k/003001", "k/003000a"]
                    .iter()
                    .map(|k| k.as_bytes().to_vec())
                    .collect();
                let mut points = sm.inner.preimages.lock().unwrap();
                record_preimages(&mut points, &tree, keys.iter()).unwrap();
                tree.insert("k/000000", b"new".as_slice()).unwrap();
                tree.insert("k/002000", b"new".as_slice()).unwrap();
                tree.remove("k/003000").unwrap();
                tree.remove("k/003001").unwrap();
                tree.insert("k/003000a", b"created".as_slice()).unwrap();
            }
            got.push((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();

        // Phase 3: the scan saw the point, not the changes.
        assert_eq!(got.len(), at_point.len());
        assert!(got == at_point, "the scan differs from the state at its point");
    }

    #[test]
    fn the_reader_rests_after_each_batch_as_long_as_it_read() {
        // Regression (issue 19, the backup benchmark, session 15): a reader going flat out on the
        // leader's machine left bursts of late fires with every storage step fast. It must give
        // the CPU back: at least as long resting as reading.
        let (_dir, sm) = store_with(8 * SCAN_BATCH_PAIRS as u64);
        let copy = sm.start_copy().unwrap();
        let mut pairs = 0;
        let pace = copy
            .paced_for_each_pair(|_, _| {
                pairs += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(pairs, 8 * SCAN_BATCH_PAIRS);
        assert!(pace.busy > std::time::Duration::ZERO, "{pace:?}");
        assert!(pace.rested >= pace.busy.mul_f64(SCAN_REST_PER_BUSY), "the reader did not rest: {pace:?}");
    }

    #[test]
    fn a_failing_f_stops_the_scan_and_frees_the_reader() {
        let (_dir, sm) = store_with(10 * SCAN_BATCH_PAIRS as u64);
        let copy = sm.start_copy().unwrap();
        let mut calls = 0;
        let result = copy.for_each_pair(|_, _| {
            calls += 1;
            if calls == 10 {
                return Err(StoreError::Io(std::io::Error::other("the client went away")));
            }
            Ok(())
        });
        assert!(result.unwrap_err().to_string().contains("went away"));
        assert_eq!(calls, 10, "f is not called after it failed");
    }
}
