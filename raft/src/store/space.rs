//! Whether this node's storage has room for more writes: one flag, set by the node's storage
//! guard (which measures the free space of the data directory's filesystem and the data's size
//! against their limits) and read on every write path before anything is proposed.
//!
//! Why a flag read before proposing, not an error from the write itself: a write that fails in
//! sled with `ENOSPC` fails inside openraft's log append or apply, where it stops Raft on the node
//! for good (issue 19's full-disk trial: `500` with sled's text, openraft's core stopped, a restart
//! needed). Refusing at the door, while some space is left, means nothing is half-written and the
//! node stays a working member that resumes by itself once space is back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// The storage's state, shared by the guard that measures it and every write path.
#[derive(Debug, Default)]
pub struct Space {
    /// Writes are refused while set.
    full: AtomicBool,
    /// Why it is full, naming the setting (for the `storage_full` error and the logs).
    reason: Mutex<String>,
    /// The last measurements, for metrics.
    free_bytes: AtomicU64,
    data_bytes: AtomicU64,
    /// How many times it became full since the node started.
    times_full: AtomicU64,
}

impl Space {
    /// Whether writes are refused now.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    /// Why writes are refused, if they are.
    pub fn refusal(&self) -> Option<String> {
        self.is_full().then(|| self.reason.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Records a measurement and whether the storage is full (`Some(reason)`) or has room.
    /// Returns whether that changed.
    pub fn record(&self, free_bytes: u64, data_bytes: u64, full: Option<String>) -> bool {
        self.free_bytes.store(free_bytes, Ordering::Relaxed);
        self.data_bytes.store(data_bytes, Ordering::Relaxed);
        let now_full = full.is_some();
        if let Some(reason) = full {
            *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = reason;
        }
        let was = self.full.swap(now_full, Ordering::AcqRel);
        if now_full && !was {
            self.times_full.fetch_add(1, Ordering::Relaxed);
        }
        was != now_full
    }

    /// Free bytes of the data directory's filesystem, as last measured.
    pub fn free_bytes(&self) -> u64 {
        self.free_bytes.load(Ordering::Relaxed)
    }

    /// Bytes under the data directory, as last measured.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes.load(Ordering::Relaxed)
    }

    /// How many times the storage became full since the node started.
    pub fn times_full(&self) -> u64 {
        self.times_full.load(Ordering::Relaxed)
    }
}
