//! The node's disk: when to stop taking writes (`[storage]`) and where the leader writes
//! scheduled backups (`[backup]`).
//!
//! Both sections are small, and both are about the data directory's filesystem rather than
//! about Raft or the scheduler, so they live together here; `src/storage_guard.rs` and
//! `src/backup_schedule.rs` are the services that read them.

use std::path::PathBuf;

use serde::Deserialize;

/// `[storage]`: the free-space floor and the data-size quota below which the node refuses
/// writes with `storage_full` (docs/operating/deploy.md, "A full disk").
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Writes are refused while the data directory's filesystem has less free space than this.
    pub free_bytes_min: u64,
    /// Writes are refused while the data directory holds more than this (0: no quota).
    pub data_bytes_max: u64,
    /// How often both are measured.
    pub check_interval_ms: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            free_bytes_min: 256 * 1024 * 1024,
            data_bytes_max: 16 * 1024 * 1024 * 1024,
            check_interval_ms: 1_000,
        }
    }
}

/// `[backup]`: backups the leader writes by itself (off unless `dir` is set).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSettings {
    /// Where the leader writes them; unset: no scheduled backups.
    pub dir: Option<PathBuf>,
    /// Seconds between two backups.
    pub interval_s: u64,
    /// How many of the newest files are kept; older ones are removed after each backup.
    pub keep: u32,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings { dir: None, interval_s: 6 * 3_600, keep: 8 }
    }
}

impl StorageSettings {
    pub fn check(&self) -> Result<(), String> {
        if self.check_interval_ms < 100 {
            return Err("storage.check_interval_ms must be at least 100".into());
        }
        Ok(())
    }
}

impl BackupSettings {
    pub fn check(&self) -> Result<(), String> {
        if self.dir.is_some() && (self.interval_s == 0 || self.keep == 0) {
            return Err("backup.interval_s and backup.keep must be at least 1".into());
        }
        Ok(())
    }
}
