//! The storage guard: measures the data directory's room every `storage.check_interval_ms` and
//! sets the node's [`Space`] flag, which every write path reads before it proposes.
//!
//! Full means: the filesystem's free space is under `storage.free_bytes_min`, or the data
//! directory holds more than `storage.data_bytes_max`. While full:
//!
//! - the API refuses writes with `507 storage_full` (naming the setting) and the leader's own
//!   services propose nothing but purges, so nothing is half-written: the refusal comes before
//!   the proposal, while the floor still leaves room for what is in flight;
//! - reads go on as usual, and `/metrics` says so (`cronraft_storage_full`);
//! - a leader of a cluster with other voters steps down: it stops its heartbeats and stands for
//!   no election, so one of the others (with room, one hopes) is elected and the cluster keeps
//!   taking writes. A lone voter stays leader, for reads;
//! - a node with room again (the floor plus an eighth, the quota less a sixteenth: a little
//!   margin so that it does not flap at the line) takes writes and stands for elections again,
//!   by itself, with no restart.
//!
//! What it cannot do: stop replication. A full follower still appends what the leader sends,
//! into the margin the floor leaves; a floor too small for the write rate still ends in `ENOSPC`
//! (docs/operating/deploy.md, "A full disk", says how to size it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cronraft_raft::store::Space;
use cronraft_raft::{NodeId, Raft};
use tokio::sync::watch;

use crate::config::disk::StorageSettings;

/// Directory levels walked to size the data directory (sled keeps its files one or two deep).
const WALK_DEPTH_MAX: usize = 4;
/// Entries looked at per measurement, at most (sled has a handful of files).
const WALK_ENTRIES_MAX: usize = 10_000;

/// The service.
pub struct StorageGuard {
    pub node_id: NodeId,
    pub raft: Raft,
    pub space: Arc<Space>,
    pub data_dir: PathBuf,
    pub settings: StorageSettings,
}

impl StorageGuard {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.settings.check_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tick.tick() => {}
            }
            let (dir, settings, full) = (self.data_dir.clone(), self.settings.clone(), self.space.is_full());
            let measured = tokio::task::spawn_blocking(move || measure(&dir, &settings, full)).await;
            match measured {
                Ok(Ok(m)) => self.record(m),
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot measure the data directory's room"),
                Err(e) => tracing::warn!(error = %e, "the storage measurement panicked"),
            }
        }
    }

    fn record(&self, m: Measurement) {
        let changed = self.space.record(m.free_bytes, m.data_bytes, m.full.clone());
        match (&m.full, changed) {
            (Some(reason), true) => tracing::error!(
                free_bytes = m.free_bytes,
                data_bytes = m.data_bytes,
                "STORAGE FULL: refusing writes until there is room again: {reason}"
            ),
            (None, true) => tracing::info!(
                free_bytes = m.free_bytes,
                data_bytes = m.data_bytes,
                "storage has room again: taking writes"
            ),
            _ => {}
        }
        self.hold_leadership(m.full.is_some());
    }

    /// A full node stands for no election, and a full leader with other voters stops its
    /// heartbeats so that one of them takes over; a node with room does both again.
    fn hold_leadership(&self, full: bool) {
        let config = self.raft.runtime_config();
        let others = {
            let m = self.raft.metrics();
            let m = m.borrow();
            m.membership_config.membership().voter_ids().any(|id| id != self.node_id)
        };
        let step_down = full && others;
        config.elect(!step_down);
        config.heartbeat(!step_down);
    }
}

/// One measurement, and whether the storage counts as full after it.
struct Measurement {
    free_bytes: u64,
    data_bytes: u64,
    full: Option<String>,
}

/// Measures `dir`; `was_full` picks the threshold (a full node needs a margin to count as having
/// room again).
fn measure(dir: &Path, settings: &StorageSettings, was_full: bool) -> std::io::Result<Measurement> {
    let free_bytes = free_bytes(dir)?;
    let data_bytes = dir_bytes(dir);
    let (floor, quota) = match was_full {
        false => (settings.free_bytes_min, settings.data_bytes_max),
        true => (
            settings.free_bytes_min.saturating_add(settings.free_bytes_min / 8),
            settings.data_bytes_max.saturating_sub(settings.data_bytes_max / 16),
        ),
    };
    let full = if free_bytes < floor {
        Some(format!(
            "{free_bytes} bytes free on the data directory's filesystem, under storage.free_bytes_min ({})",
            settings.free_bytes_min
        ))
    } else if settings.data_bytes_max > 0 && data_bytes > quota {
        Some(format!(
            "the data directory holds {data_bytes} bytes, over storage.data_bytes_max ({})",
            settings.data_bytes_max
        ))
    } else {
        None
    };
    Ok(Measurement { free_bytes, data_bytes, full })
}

/// Bytes available to an unprivileged writer on the filesystem of `dir`.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` a writable statvfs for the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Bytes of the files under `dir` (bounded walk; a file that vanishes meanwhile counts 0).
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut seen = 0usize;
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            seen += 1;
            if seen > WALK_ENTRIES_MAX {
                return total;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() && depth < WALK_DEPTH_MAX {
                stack.push((entry.path(), depth + 1));
            } else if meta.is_file() {
                total = total.saturating_add(meta.len());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_and_the_quota_each_make_it_full_and_it_needs_a_margin_to_have_room_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data"), vec![0u8; 10_000]).unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        let settings = |free_bytes_min, data_bytes_max| StorageSettings {
            free_bytes_min,
            data_bytes_max,
            check_interval_ms: 1_000,
        };
        // Phase 1: the quota. 10,000 bytes are over a quota of 9,000, not over one of 20,000.
        let m = measure(dir.path(), &settings(0, 9_000), false).unwrap();
        assert!(m.data_bytes >= 10_000);
        assert!(m.full.as_deref().unwrap().contains("storage.data_bytes_max"), "{:?}", m.full);
        assert!(measure(dir.path(), &settings(0, 20_000), false).unwrap().full.is_none());
        // Phase 2: the floor. More than is free is full; far less is not.
        let m = measure(dir.path(), &settings(u64::MAX / 2, 0), false).unwrap();
        assert!(m.full.as_deref().unwrap().contains("storage.free_bytes_min"));
        assert!(measure(dir.path(), &settings(1, 0), false).unwrap().full.is_none());
        // Phase 3: once full, 10,200 bytes against a quota of 10,500 still count as full (the
        // quota less a sixteenth is 9,844); not full before, they have room.
        std::fs::write(dir.path().join("data"), vec![0u8; 10_200]).unwrap();
        assert!(measure(dir.path(), &settings(0, 10_500), false).unwrap().full.is_none());
        assert!(measure(dir.path(), &settings(0, 10_500), true).unwrap().full.is_some());
    }
}
