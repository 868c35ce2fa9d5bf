//! Running a service only while this node leads.
//!
//! The dispatcher, the health checker and retention all follow the same shape: wait until this
//! node is the leader, run one "term" of the service, and when leadership is lost (or the node
//! stops) end that term and wait again. Each term starts from the replicated state, so nothing a
//! previous term held in memory is trusted.

use std::future::Future;

use cronraft_raft::{NodeId, Raft};
use openraft::ServerState;
use tokio::sync::watch;

/// The leader's term if this node leads right now.
pub fn leading_term(raft: &Raft, node_id: NodeId) -> Option<u64> {
    let m = raft.server_metrics();
    let m = m.borrow();
    (m.state == ServerState::Leader && m.current_leader == Some(node_id)).then_some(m.vote.leader_id.term)
}

/// Calls `lead(term)` each time this node becomes leader, and drops its future as soon as the
/// node stops leading that term or `stop` turns true. Returns once `stop` turns true.
pub async fn run_while_leader<F, Fut>(
    raft: Raft,
    node_id: NodeId,
    mut stop: watch::Receiver<bool>,
    name: &str,
    mut lead: F,
) where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut server = raft.server_metrics();
    loop {
        server.borrow_and_update();
        if let Some(term) = leading_term(&raft, node_id) {
            tracing::info!(term, service = name, "leader service started");
            let lost = async {
                loop {
                    if leading_term(&raft, node_id) != Some(term) {
                        return;
                    }
                    if server.changed().await.is_err() {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = lead(term) => {}
                _ = lost => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            tracing::info!(term, service = name, "leader service stopped");
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            changed = server.changed() => if changed.is_err() { return },
        }
    }
}
