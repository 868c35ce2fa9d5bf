//! [`StateView`]: read-only queries over one generation of the state-machine tree, and the
//! state digest.
//!
//! The view is the read side of every concept: this file holds the type, the applied position
//! (log id and membership, written by [`super::apply_entry`]) and the digest; each concept adds
//! its queries in its own module, next to the writes that keep them true (tasks in
//! [`super::tasks`], executions in [`super::executions`], executors in [`super::registry`],
//! reports in [`super::stats`]). Reads go straight to the tree, without the apply gate: a point
//! read may interleave with applies, which is what the API's reads want.

use openraft::{LogId, StoredMembership};
use serde::{Deserialize, Serialize};

use super::keys;
use crate::codec;
use crate::error::StoreError;
use crate::model::NodeInfo;
use crate::NodeId;

/// On-disk envelope of the last applied log id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum StoredApplied {
    V1(LogId<NodeId>),
}

/// On-disk envelope of the last applied membership.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum StoredMembershipConfig {
    V1(StoredMembership<NodeId, NodeInfo>),
}

/// The stored form of a membership under `m/membership`: what a restore or a recovery writes
/// when it gives a state a new membership (see `store::offline`).
pub fn encode_membership(m: &StoredMembership<NodeId, NodeInfo>) -> Result<Vec<u8>, codec::CodecError> {
    codec::encode(&StoredMembershipConfig::V1(m.clone()))
}

/// Read-only queries over one generation of the state-machine tree. Cheap to clone.
#[derive(Clone)]
pub struct StateView {
    /// The generation's tree (`sm.<generation>`); the concepts' modules read it directly.
    pub(super) tree: sled::Tree,
}

impl StateView {
    pub fn new(tree: sled::Tree) -> Self {
        StateView { tree }
    }

    /// The last applied log id and membership, as stored with the data they describe.
    pub fn applied_state(&self) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, NodeInfo>), StoreError> {
        let applied = match self.tree.get(keys::APPLIED)? {
            Some(b) => match codec::decode(&b)? {
                StoredApplied::V1(id) => Some(id),
            },
            None => None,
        };
        let membership = match self.tree.get(keys::MEMBERSHIP)? {
            Some(b) => match codec::decode(&b)? {
                StoredMembershipConfig::V1(m) => m,
            },
            None => StoredMembership::default(),
        };
        Ok((applied, membership))
    }

    /// A digest of every replicated key and value, read from the live tree. Replicas that applied
    /// the same log index produce the same digest if nothing applies meanwhile; the node's
    /// `/cluster/digest` uses `StateMachineStore::digest`, which gives this value at a fixed point
    /// while applies go on.
    pub fn digest(&self) -> Result<String, StoreError> {
        let mut digest = StateDigest::new();
        for kv in self.tree.iter() {
            let (k, v) = kv?;
            digest.add(&k, &v);
        }
        Ok(digest.finish())
    }
}

/// The state digest: blake3 over every key and value in key order, each prefixed by its length
/// (so no two states share a byte stream). The one definition of the digest's bytes.
///
/// The bytes are gathered into blocks of [`DIGEST_BLOCK`] before they are hashed: blake3 costs
/// far less per byte on a large update than on four small ones per pair (a backup of four million
/// pairs spent a good part of its time in them). The hash of a stream does not depend on how it
/// is cut, so the digest is the same.
pub struct StateDigest {
    hasher: blake3::Hasher,
    block: Vec<u8>,
}

/// Bytes gathered before one hash update.
const DIGEST_BLOCK: usize = 64 * 1024;

impl StateDigest {
    /// An empty digest.
    pub fn new() -> Self {
        StateDigest { hasher: blake3::Hasher::new(), block: Vec::with_capacity(DIGEST_BLOCK) }
    }

    /// Adds the next key (in key order) and its value.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        self.block.extend_from_slice(&(key.len() as u64).to_be_bytes());
        self.block.extend_from_slice(key);
        self.block.extend_from_slice(&(value.len() as u64).to_be_bytes());
        self.block.extend_from_slice(value);
        if self.block.len() >= DIGEST_BLOCK {
            self.hasher.update(&self.block);
            self.block.clear();
        }
    }

    /// The digest in hex.
    pub fn finish(&self) -> String {
        let mut hasher = self.hasher.clone();
        hasher.update(&self.block);
        hasher.finalize().to_hex().to_string()
    }
}

impl Default for StateDigest {
    fn default() -> Self {
        Self::new()
    }
}
