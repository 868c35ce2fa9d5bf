//! One-shot checks over what the nodes themselves say (`GET /api/v1/cluster`, `/digest`): an
//! agreed leader, the number of voters, convergence, the leader of the highest term. Each returns
//! `None` while the condition does not hold; callers wait on them with [`crate::wait`].

use std::time::Duration;

use cronraft_api::client::Client;
pub use cronraft_api::types::ClusterView;

/// What [`agreed_leader`] asks of the views besides one leader.
#[derive(Debug, Clone, Copy, Default)]
pub struct Agreement {
    /// The membership must have exactly this many voters (leader and followers).
    pub voters: Option<usize>,
    /// The leader must be one of the nodes asked.
    pub leader_among_asked: bool,
}

/// The view of the node at `url`, if it answers within `timeout`.
pub async fn view(url: &str, timeout: Duration) -> Option<ClusterView> {
    Client::with_timeout([url.to_string()], timeout).cluster().await.ok()
}

/// Voters (leader and followers) in a view.
pub fn voters(view: &ClusterView) -> usize {
    view.nodes.iter().filter(|x| x.role == "leader" || x.role == "follower").count()
}

/// The leader every node in `nodes` (`(id, base URL)`) names, if they all answer, all name the
/// same one and every view meets `want`.
pub async fn agreed_leader(nodes: &[(u64, String)], want: Agreement, timeout: Duration) -> Option<u64> {
    let mut leader = None;
    for (_, url) in nodes {
        let v = view(url, timeout).await?;
        let l = v.leader_id?;
        let voters_ok = want.voters.is_none_or(|n| voters(&v) == n);
        let among = !want.leader_among_asked || nodes.iter().any(|(id, _)| *id == l);
        if !voters_ok || !among || leader.is_some_and(|x| x != l) {
            return None;
        }
        leader = Some(l);
    }
    leader
}

/// The state digest, if every node in `nodes` reports the same applied index and digest.
pub async fn converged(nodes: &[(u64, String)], timeout: Duration) -> Option<String> {
    let mut seen = None;
    for (_, url) in nodes {
        let d = Client::with_timeout([url.clone()], timeout).digest().await.ok()?;
        let key = (d.applied_index, d.digest);
        if seen.as_ref().is_some_and(|s| *s != key) {
            return None;
        }
        seen = Some(key);
    }
    seen.map(|(_, d)| d)
}

/// The leader claimed in the highest term among the nodes that answer (a node cut off from the
/// others may still believe in an older leader).
pub async fn leader_by_term(nodes: &[(u64, String)], timeout: Duration) -> Option<u64> {
    let mut best: Option<(u64, u64)> = None;
    for (_, url) in nodes {
        if let Some(v) = view(url, timeout).await {
            if let Some(l) = v.leader_id {
                if best.is_none_or(|(t, _)| v.term > t) {
                    best = Some((v.term, l));
                }
            }
        }
    }
    best.map(|(_, l)| l)
}
