//! Scheduled backups: while this node leads, it writes a backup of the state into `[backup] dir`
//! every `interval_s`, keeping the newest `keep` files.
//!
//! The leader, because one node should write each backup and the leader is the node everyone
//! agrees on; its own state, because a leader's applied state is as fresh as any (what it has
//! committed it applies at once). A backup is written as `cronraft-<unix s>-<index>.backup.partial`
//! and renamed once whole and synced, so the directory only ever holds complete backups under
//! their final names; then files beyond `keep` go, oldest first. The next one is due `interval_s`
//! after the newest file in the directory, so a new leader does not write one at once when its
//! predecessor just did (and a node restarted after a week writes one at once).

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cronraft_raft::store::backup::{write_backup, BackupHeader, BackupSummary};
use cronraft_raft::store::paced::PacedFile;
use cronraft_raft::store::StateMachineStore;
use cronraft_raft::{NodeId, Raft};
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::config::disk::BackupSettings;
use crate::leadership::run_while_leader;

const PREFIX: &str = "cronraft-";
const SUFFIX: &str = ".backup";
/// After a failed backup, the next try.
const RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct BackupSchedule {
    pub node_id: NodeId,
    pub raft: Raft,
    pub sm: StateMachineStore,
    pub dir: PathBuf,
    pub settings: BackupSettings,
}

impl BackupSchedule {
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let (raft, node_id) = (self.raft.clone(), self.node_id);
        run_while_leader(raft, node_id, stop, "backup schedule", |_term| self.clone().lead()).await
    }

    async fn lead(self) {
        let interval_ms = self.settings.interval_s.saturating_mul(1_000) as i64;
        loop {
            let newest_ms = backups(&self.dir).last().map_or(0, |(s, _)| s.saturating_mul(1_000));
            let wait_ms = (newest_ms + interval_ms - now_ms()).max(0) as u64;
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            let this = self.clone();
            match tokio::task::spawn_blocking(move || this.write_one()).await {
                Ok(Ok((path, s))) => {
                    tracing::info!(file = %path.display(), applied_index = s.header.applied_index, pairs = s.trailer.pairs,
                        bytes = s.bytes, "scheduled backup written");
                    self.prune();
                }
                Ok(Err(e)) => {
                    tracing::error!(dir = %self.dir.display(), error = %e, "scheduled backup failed");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
                Err(e) => tracing::error!(error = %e, "scheduled backup panicked"),
            }
        }
    }

    /// Writes one backup of this node's state; blocks.
    fn write_one(&self) -> Result<(PathBuf, BackupSummary), String> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir).map_err(|e| e.to_string())?;
        let copy = self.sm.fix_point().map_err(|e| e.to_string())?;
        let now = now_ms();
        let header = BackupHeader::of(&copy, self.node_id, now);
        let name = format!("{PREFIX}{}-{}{SUFFIX}", now / 1_000, header.applied_index);
        let (path, partial) = (self.dir.join(&name), self.dir.join(format!("{name}.partial")));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| format!("{}: {e}", partial.display()))?;
        let out = BufWriter::with_capacity(1 << 20, PacedFile::new(file));
        let written = write_backup(copy, header, out).and_then(|s| {
            File::open(&partial)?.sync_all()?;
            Ok((s, ()))
        });
        match written {
            Ok((summary, ())) => {
                std::fs::rename(&partial, &path).map_err(|e| e.to_string())?;
                sync_dir(&self.dir);
                Ok((path, summary))
            }
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                Err(e.to_string())
            }
        }
    }

    /// Removes the oldest backups beyond `keep`, and partial files a crash left behind.
    fn prune(&self) {
        let all = backups(&self.dir);
        let extra = all.len().saturating_sub(self.settings.keep as usize);
        for (_, path) in all.into_iter().take(extra) {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(file = %path.display(), error = %e, "cannot remove an old backup");
            }
        }
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(PREFIX) && name.ends_with(".partial") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// The backups in `dir`, oldest first, by the seconds in their names.
fn backups(dir: &Path) -> Vec<(i64, PathBuf)> {
    let mut out: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let secs = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.split('-').next()?.parse().ok()?;
            Some((secs, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Makes a rename in `dir` durable (best effort).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
