//! Joining a cluster: the `--join` flow of a new (or restarted, not yet promoted) node.
//!
//! 1. Until this node appears in the replicated membership, ask a member (any; it forwards to
//!    the leader) to add it as a learner.
//! 2. Wait until it has caught up, then ask for promotion to voter; the leader refuses
//!    (`learner_behind`) while it lags, and the loop retries.
//! 3. Stop once this node is a voter, or when the node shuts down.
//!
//! Every step is idempotent, so a restart in the middle simply runs the flow again.

use std::time::Duration;

use cronraft_api::client::{Client, ClientError};
use cronraft_api::types::AddNodeInput;
use cronraft_raft::outbound::ClientTls;
use cronraft_raft::{NodeInfo, Raft};
use tokio::sync::watch;

/// Pause between attempts.
const RETRY: Duration = Duration::from_millis(300);

/// Runs the flow through the members at `join`, with the node's client TLS (its CA, and its
/// certificate when a member asks for one). `credential`: the node credential of the cluster
/// secret, when auth is on: adding a learner needs it (or an admin token), so a node without the
/// secret cannot join.
pub async fn run(
    raft: Raft,
    node_id: u64,
    info: NodeInfo,
    join: Vec<String>,
    credential: Option<String>,
    mut stop: watch::Receiver<bool>,
    tls: ClientTls,
) {
    let client = match Client::with_tls(&join, Duration::from_secs(15), &tls) {
        Ok(c) => c.with_token(credential.as_deref()),
        Err(e) => {
            tracing::error!(node_id, error = %e, "cannot join: no HTTP client");
            return;
        }
    };
    loop {
        let (is_member, is_voter) = {
            let m = raft.metrics().borrow().clone();
            let membership = m.membership_config.membership().clone();
            let is_member = membership.nodes().any(|(id, _)| *id == node_id);
            let is_voter = membership.voter_ids().any(|v| v == node_id);
            (is_member, is_voter)
        };
        if is_voter {
            tracing::info!(node_id, "joined the cluster as a voter");
            return;
        }
        let step =
            if is_member { client.promote_node(node_id).await.map(|_| ()) } else { add(&client, node_id, &info).await };
        match step {
            Ok(_) => {}
            Err(e) if e.code() == Some("already_voter") => {}
            Err(e) if e.code() == Some("node_id_taken") => {
                tracing::error!(node_id, error = %e, "cannot join: the node id belongs to another member");
                return;
            }
            Err(e) => tracing::info!(node_id, error = %e, "join step not done yet; retrying"),
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

async fn add(client: &Client, node_id: u64, info: &NodeInfo) -> Result<(), ClientError> {
    let input = AddNodeInput { id: node_id, http_addr: info.http_addr.clone(), raft_addr: info.raft_addr.clone() };
    client.add_node(&input).await.map(|_| ())
}
