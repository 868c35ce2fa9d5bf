//! File permissions of a node's data: the data directory is `0700` and its files `0600`, since
//! they hold every task's parameters (commands, URLs, headers) and the whole execution history.
//!
//! Two mechanisms, because either alone leaves a gap:
//! - [`restrict_umask`], called once by `cronraft serve` before anything is created, makes every
//!   file the process creates later (sled's new segments and snapshots of its own) private. The
//!   embedded agent's jobs get the umask the process started with back
//!   ([`restore_umask_in_child`]), so a job's own files look as they always did.
//! - [`private_data_dir`], called by `Node::start` (so also for nodes started in-process by
//!   tests), creates the directory `0700` and tightens a directory and files left by an earlier
//!   version or created by hand.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// The data directory's mode.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file in it.
pub const FILE_MODE: u32 = 0o600;
/// How deep [`private_data_dir`] looks (sled's layout is two levels: `sled/blobs/…`).
const DEPTH_MAX: usize = 4;
/// Marks "[`restrict_umask`] was not called".
const UMASK_UNSET: u32 = u32::MAX;

/// The umask the process had before [`restrict_umask`]; jobs get it back.
static ORIGINAL_UMASK: AtomicU32 = AtomicU32::new(UMASK_UNSET);

/// Sets the process umask to `077` and remembers the old one. Call before any thread starts
/// creating files (the umask is process-wide).
pub fn restrict_umask() {
    // SAFETY: umask only swaps the process's file mode creation mask; it cannot fail.
    let old = unsafe { libc::umask(0o077) };
    ORIGINAL_UMASK.store(old as u32, Ordering::SeqCst);
}

/// Gives a child process (a job of the embedded agent) the umask the node started with, when the
/// node restricted its own.
pub fn restore_umask_in_child(cmd: &mut tokio::process::Command) {
    let original = ORIGINAL_UMASK.load(Ordering::SeqCst);
    if original == UMASK_UNSET {
        return;
    }
    // SAFETY: the closure runs in the child between fork and exec and only calls umask, which is
    // async-signal-safe, allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(original as libc::mode_t);
            Ok(())
        });
    }
}

/// Creates `dir` (and missing parents) `0700`, then makes `dir` itself `0700` and every file in
/// it `0600`, and every directory below it `0700`. Returns how many entries it had to tighten.
pub fn private_data_dir(dir: &Path) -> std::io::Result<usize> {
    std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
    tighten(dir, DIR_MODE, 0)
}

fn tighten(path: &Path, mode: u32, depth: usize) -> std::io::Result<usize> {
    let meta = std::fs::symlink_metadata(path)?;
    let mut changed = 0;
    if meta.permissions().mode() & 0o777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        changed += 1;
    }
    if !meta.is_dir() || depth >= DEPTH_MAX {
        return Ok(changed);
    }
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            changed += tighten(&entry.path(), DIR_MODE, depth + 1)?;
        } else if kind.is_file() {
            changed += tighten(&entry.path(), FILE_MODE, depth + 1)?;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_directory_is_private_and_a_loose_old_one_is_tightened() {
        let root = tempfile::tempdir().unwrap();
        // Phase 1: a new data directory (with a missing parent) is created 0700.
        let dir = root.path().join("a/data");
        assert_eq!(private_data_dir(&dir).unwrap(), 0);
        assert_eq!(mode(&dir), DIR_MODE);
        // Phase 2: one left world-readable by an earlier version, with files below it.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.join("sled")).unwrap();
        std::fs::write(dir.join("sled/db"), b"x").unwrap();
        std::fs::set_permissions(dir.join("sled/db"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.join("sled"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(private_data_dir(&dir).unwrap(), 3);
        assert_eq!((mode(&dir), mode(&dir.join("sled")), mode(&dir.join("sled/db"))), (0o700, 0o700, 0o600));
    }
}
