//! The node's snapshot file, `<data-dir>/snapshots/current.snap`: the latest snapshot this node
//! built or installed, which openraft sends to a follower that needs one.
//!
//! Kept apart from the state machine because it has its own durability rules. A write is
//! crash-atomic (temp file, syncs, rename, directory sync), an older snapshot never replaces a
//! newer one, and the body goes out in synced chunks: every node writes its file at the same
//! index, and one large write followed by one fsync would queue the whole file ahead of the log's
//! next fdatasync on the same disk.

use std::path::Path;
use std::sync::Mutex;

use openraft::SnapshotMeta;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::StoreError;
use crate::model::NodeInfo;
use crate::NodeId;

const SNAPSHOT_FILE: &str = "current.snap";
/// Bytes written between two syncs.
const WRITE_CHUNK: usize = 8 << 20;

/// A snapshot file: its meta and its body. Variants are appended, never changed.
#[derive(Serialize, Deserialize)]
enum StoredSnapshot {
    V1 { meta: SnapshotMeta<NodeId, NodeInfo>, data: Vec<u8> },
}

/// Serializes snapshot file writes: a build (in its own task) and an install may finish in any
/// order, and the older snapshot must never replace the newer file.
static WRITE_LOCK: Mutex<()> = Mutex::new(());

/// Writes the snapshot file in `dir` crash-atomically, unless the file already holds a snapshot
/// at least as new.
pub(super) fn write(dir: &Path, meta: &SnapshotMeta<NodeId, NodeInfo>, data: Vec<u8>) -> Result<(), StoreError> {
    let _one_writer = WRITE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let path = dir.join(SNAPSHOT_FILE);
    if let Ok(existing) = std::fs::read(&path) {
        if let Ok(StoredSnapshot::V1 { meta: old, .. }) = codec::decode(&existing) {
            if old.last_log_id > meta.last_log_id {
                return Ok(());
            }
        }
    }
    let bytes = codec::encode(&StoredSnapshot::V1 { meta: meta.clone(), data })?;
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.{}.tmp", meta.snapshot_id));
    {
        // In chunks, each synced before the next is written: a follower that cannot append
        // behind one long write makes the others call an election.
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            f.write_all(chunk)?;
            f.sync_data()?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// A snapshot as read back: its meta and its body.
pub(super) type MetaAndData = (SnapshotMeta<NodeId, NodeInfo>, Vec<u8>);

/// The snapshot in `dir`, if there is one.
pub(super) fn read(dir: &Path) -> Result<Option<MetaAndData>, StoreError> {
    let bytes = match std::fs::read(dir.join(SNAPSHOT_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let StoredSnapshot::V1 { meta, data } = codec::decode(&bytes)?;
    Ok(Some((meta, data)))
}

#[cfg(test)]
mod tests {
    use openraft::{LogId, StoredMembership};

    use super::*;

    #[test]
    fn a_snapshot_file_of_several_write_chunks_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(2 * WRITE_CHUNK + 12_345)).map(|i| (i % 251) as u8).collect();
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(2, 0), 7)),
            last_membership: StoredMembership::default(),
            snapshot_id: "2-7-1".into(),
        };
        write(dir.path(), &meta, data.clone()).unwrap();
        let (read_meta, read_data) = read(dir.path()).unwrap().expect("a snapshot file");
        assert_eq!(read_meta, meta);
        assert!(read_data == data, "the data read back differs from the data written");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from(SNAPSHOT_FILE)], "no temp file is left");
    }
}
