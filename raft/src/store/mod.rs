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
pub mod paced;
pub mod snapshot_body;
pub mod space;
pub mod state_machine;
pub mod timings;

use std::path::Path;
use std::sync::Arc;

pub use commit_clock::CommitClock;
pub use durability::Durability;
pub use log_store::LogStore;
pub use snapshot_body::SnapshotBody;
pub use space::Space;
pub use state_machine::{Applied, SnapshotCopy, StateMachineStore};
pub use timings::StorageTimings;

pub use crate::state::ApplyOptions;

use crate::error::StoreError;

/// sled's segment size. sled writes any value larger than a quarter of a segment to a separate
/// blob file that it never fsyncs; 8 MiB keeps every value we write (log entries are bounded
/// well below 2 MiB) inside the main file that [`Durability`] fsyncs.
const SEGMENT_SIZE: usize = 8 * 1024 * 1024;

/// The data directory's format: what a build writes and the newest it reads. Raised only when
/// this build writes something an older one could not read; every record on disk is also in a
/// versioned envelope of its own (`V1`, …), so a newer build reads an older directory as it is.
pub const DATA_FORMAT_VERSION: u64 = 1;
/// Where the format version is kept, in `raft_meta`.
const KEY_FORMAT_VERSION: &[u8] = b"format_version";

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
    check_format(&db, dir)?;
    let durability = Arc::new(Durability::new(db.clone(), &dir.join("sled"))?);
    let log = LogStore::new(&db, durability.clone())?;
    let sm = StateMachineStore::new(db, durability, &dir.join("snapshots"), apply)?;
    Ok((log, sm))
}

/// Refuses a data directory written in a newer format than this build knows, before anything
/// reads it; records this build's format in a directory that has none (new, or written before
/// versions were recorded, which is format 1).
fn check_format(db: &sled::Db, dir: &Path) -> Result<(), StoreError> {
    let meta = db.open_tree("raft_meta")?;
    match meta.get(KEY_FORMAT_VERSION)? {
        Some(bytes) => {
            let found = crate::codec::parse_key_u64(&bytes).unwrap_or(u64::MAX);
            if found > DATA_FORMAT_VERSION {
                return Err(StoreError::UnknownFormat {
                    dir: dir.display().to_string(),
                    found,
                    known: DATA_FORMAT_VERSION,
                });
            }
        }
        None => {
            meta.insert(KEY_FORMAT_VERSION, &crate::codec::key_u64(DATA_FORMAT_VERSION))?;
        }
    }
    Ok(())
}

/// Marks `dir`'s data as written in format `version` (tests of the refusal; and nothing else
/// should call it).
pub fn set_format_version(dir: &Path, version: u64) -> Result<(), StoreError> {
    let db = sled::Config::new().path(dir.join("sled")).segment_size(SEGMENT_SIZE).open()?;
    db.open_tree("raft_meta")?.insert(KEY_FORMAT_VERSION, &crate::codec::key_u64(version))?;
    db.flush()?;
    Ok(())
}
