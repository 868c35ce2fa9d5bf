//! The cluster's identity (`m/cluster_id`): a random name given once to a cluster, so that its
//! nodes refuse Raft RPCs from the nodes of another one (`crate::network`).
//!
//! Why it is needed: a restore seeds a *new* cluster from a backup (issue 19). Its nodes and the
//! old cluster's may share addresses, node ids and the cluster secret; without an identity an old
//! node that comes back (a vote in a higher term) could disrupt the new cluster, or be taken for
//! one of its members. etcd refuses peers of another cluster id for the same reason.
//!
//! Why replicated, set by a command: every node must agree on it, including nodes that join
//! later (they learn it from the log or a snapshot, like any state). The first leader that finds
//! none proposes one (`SetClusterId`, the random value chosen by the proposer, never in apply);
//! apply keeps the first and ignores later ones, so two leaders proposing in turn agree. A
//! restore writes a fresh one offline (`crate::store::offline`); a recover keeps the survivor's.

use crate::command::{Rejection, Response};
use crate::error::StoreError;
use crate::spec::SpecError;
use crate::txn::WriteSet;

use super::keys;

/// The longest identity accepted: a UUID is 36 characters.
pub const CLUSTER_ID_CHARS_MAX: usize = 64;

/// Whether `id` is a well-formed cluster identity: 1 to 64 of `0-9 a-z -`. It travels in an HTTP
/// header, so nothing else is allowed in.
pub fn is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= CLUSTER_ID_CHARS_MAX
        && id.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-')
}

/// `SetClusterId`: the first well-formed identity stays; later ones change nothing.
pub fn set(ws: &mut WriteSet<'_>, id: &str) -> Result<Response, StoreError> {
    if !is_valid(id) {
        return Ok(Response::Rejected(Rejection::InvalidSpec(SpecError {
            code: "invalid_field".into(),
            message: format!("`cluster_id` must be 1 to {CLUSTER_ID_CHARS_MAX} characters of 0-9, a-z and -"),
        })));
    }
    if ws.get(keys::CLUSTER_ID)?.is_none() {
        ws.insert(keys::CLUSTER_ID, id.as_bytes().to_vec());
    }
    Ok(Response::Empty)
}

/// The identity in a state, if it has one yet.
pub fn read(tree: &sled::Tree) -> Result<Option<String>, StoreError> {
    Ok(tree.get(keys::CLUSTER_ID)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
}
