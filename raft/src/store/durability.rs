//! The one place that makes writes durable: sled flush, then a real `fdatasync`.
//!
//! sled 0.34's `flush` ends in `sync_file_range`, which writes dirty pages back but neither
//! flushes the device cache nor the file's size metadata, so it is not a durability point. After
//! every flush we `fdatasync` sled's main file ourselves. Counted, so tests and `/metrics` can show
//! one sync per acknowledged batch; each half timed, and the handle carries the node's
//! [`StorageTimings`] for the stores that share it.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::timings::{timed, StorageTimings};
use crate::error::StoreError;

/// Flush + fdatasync of the node's sled database.
pub struct Durability {
    db: sled::Db,
    /// A read-only handle on sled's main file (`<sled dir>/db`); `fdatasync` through any handle
    /// flushes the file's data and size.
    file: File,
    /// Completed syncs since start.
    syncs: AtomicU64,
    /// How long the storage layer's steps take, this one's two halves among them; carried here
    /// because every store holds this handle.
    timings: StorageTimings,
}

impl Durability {
    pub fn new(db: sled::Db, sled_dir: &Path) -> Result<Self, StoreError> {
        let file = File::open(sled_dir.join("db"))?;
        Ok(Durability { db, file, syncs: AtomicU64::new(0), timings: StorageTimings::default() })
    }

    /// Blocks until every write made before the call is on stable storage.
    pub fn sync(&self) -> Result<(), StoreError> {
        timed(&self.timings.flush, || self.db.flush())?;
        timed(&self.timings.fdatasync, || self.file.sync_data())?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// [`Durability::sync`] on the blocking pool, so a runtime worker is not held by the disk.
    pub async fn sync_async(self: &std::sync::Arc<Self>) -> Result<(), StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.sync()).await.map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    /// The storage layer's step durations on this node.
    pub fn timings(&self) -> &StorageTimings {
        &self.timings
    }

    /// How many syncs have completed.
    pub fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}
