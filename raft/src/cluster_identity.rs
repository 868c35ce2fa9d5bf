//! What a running node knows of its cluster's identity (`m/cluster_id`, see
//! [`crate::state::cluster_id`]), and the check every Raft RPC goes through with it.
//!
//! The state machine keeps the handle current: it reads the identity when the store opens, after
//! each applied batch that wrote it, and after a snapshot install. The network sends it on every
//! RPC ([`CLUSTER_HEADER`]) and the Raft listener refuses, before reading the body, an RPC whose
//! identity differs from its own: a node of the cluster a backup was restored from cannot call an
//! election in the new one, nor be replicated to by it. Either side not knowing one yet (a new
//! node that has not joined, a cluster whose first leader has not named it) is no refusal: a
//! joining node learns the identity from what it is sent.

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The header carrying the sender's cluster identity on every Raft RPC.
pub const CLUSTER_HEADER: &str = "x-cronraft-cluster";

/// The node's cluster identity, if it has one yet. Shared by the state machine (writer) and the
/// network's two ends (readers); a read is a lock and a pointer copy.
#[derive(Debug, Default)]
pub struct ClusterIdentity {
    id: RwLock<Option<Arc<str>>>,
}

impl ClusterIdentity {
    /// The identity, if known.
    pub fn get(&self) -> Option<Arc<str>> {
        self.id.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records what the state says now (`None` after an install of a state without one).
    pub fn set(&self, id: Option<String>) {
        *self.id.write().unwrap_or_else(|p| p.into_inner()) = id.map(Arc::from);
    }

    /// Axum middleware for the Raft listener: answers 409, naming both identities, an RPC from a
    /// node of another cluster, before its body is read.
    pub async fn refuse_other_clusters(
        State(identity): State<Arc<ClusterIdentity>>,
        req: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> Response {
        let theirs = req.headers().get(CLUSTER_HEADER).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        match (theirs, identity.get()) {
            (Some(theirs), Some(ours)) if *theirs != *ours => {
                let msg = format!(
                    "raft rpc refused: the sender belongs to cluster {theirs:?}, this node to cluster {ours:?} (a node of \
                     another cluster, e.g. the one a backup was restored from: give it an empty data directory to join \
                     this one)"
                );
                crate::network::log_refusal(&msg);
                (StatusCode::CONFLICT, msg).into_response()
            }
            _ => next.run(req).await,
        }
    }
}
