//! Fixtures shared by the storage crate's integration tests: a task spec and a fresh store.
//! (Integration tests cannot reach the crate's unit-test helpers, so they keep their own.)

use cronraft_raft::model::TaskSpec;
use cronraft_raft::store::{self, ApplyOptions, StateMachineStore};

/// A valid spec with the product's defaults: `parallel`, round robin, `fire_once`.
pub fn spec(name: &str, cron: &str) -> TaskSpec {
    TaskSpec::new(name, cron)
}

/// A state machine on a fresh temp dir (keep the dir alive as long as the store).
pub fn open() -> (tempfile::TempDir, StateMachineStore) {
    let dir = tempfile::tempdir().unwrap();
    let (_log, sm) = store::open(dir.path(), 16 * 1024 * 1024, ApplyOptions::default()).unwrap();
    (dir, sm)
}
