//! Storage: the Raft log and the state machine, both in one sled database per node.
//!
//! One database (not two) because sled's flush is database-wide and ordered: the fsync that makes
//! a log append durable also makes every earlier state-machine write durable, which is what lets
//! `apply` skip its own fsync (see `docs/internals/storage.md`).
//!
//! Trees: `raft_log` (index → entry), `raft_meta` (vote, last purged id, active state-machine
//! generation), `sm.<generation>` (the state machine, see [`crate::state`]). Snapshots are not
//! stored: one is copied from the state machine when it is sent ([`snapshot_body`]).

pub mod backup;
pub mod commit_clock;
pub mod durability;
pub mod log_store;
pub mod offline;
pub mod snapshot_body;
pub mod state_machine;

use std::path::Path;
use std::sync::Arc;

pub use commit_clock::CommitClock;
pub use durability::Durability;
pub use log_store::LogStore;
pub use snapshot_body::SnapshotBody;
pub use state_machine::{lower_this_threads_priority, Applied, SnapshotCopy, StateMachineStore};

pub use crate::state::ApplyOptions;

use crate::error::StoreError;

/// sled's segment size. sled writes any value larger than a quarter of a segment to a separate
/// blob file that it never fsyncs; 8 MiB keeps every value we write (log entries are bounded
/// well below 2 MiB) inside the main file that [`Durability`] fsyncs.
const SEGMENT_SIZE: usize = 8 * 1024 * 1024;

/// Opens (or creates) the node's storage under `dir`. `apply` is how the state machine applies
/// entries for as long as it is open (the same on every node of a cluster, see
/// [`ApplyOptions`]).
pub fn open(dir: &Path, cache_bytes: u64, apply: ApplyOptions) -> Result<(LogStore, StateMachineStore), StoreError> {
    std::fs::create_dir_all(dir)?;
    let db = sled::Config::new()
        .path(dir.join("sled"))
        .cache_capacity(cache_bytes)
        .segment_size(SEGMENT_SIZE)
        .mode(sled::Mode::HighThroughput)
        // Every durability point flushes and fdatasyncs explicitly (`Durability`); sled's own
        // periodic flush would only add whole-file syncs that compete with ours.
        .flush_every_ms(None)
        .open()?;
    let durability = Arc::new(Durability::new(db.clone(), &dir.join("sled"))?);
    let log = LogStore::new(&db, durability.clone())?;
    let sm = StateMachineStore::new(db, durability, &dir.join("snapshots"), apply)?;
    Ok((log, sm))
}
