//! openraft's storage conformance suite against the sled log store and state machine.

use cronraft_raft::store::{self, ApplyOptions, LogStore, StateMachineStore};
use cronraft_raft::{NodeId, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use tempfile::TempDir;

/// Each suite case gets a fresh store in its own temp dir (the guard keeps the dir alive).
struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for SledBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = store::open(dir.path(), 16 * 1024 * 1024, ApplyOptions::default()).expect("open store");
        Ok((dir, log, sm))
    }
}

#[test]
fn sled_store_passes_openraft_suite() {
    Suite::test_all(SledBuilder).expect("openraft storage suite");
}
