//! The membership fault: remove a node through the admin API, then bring it back as a voter
//! (a wiped fresh joiner, or the running node re-added with its old log).
//!
//! A node is removed only from a healthy cluster whose every member is a voter, so with one node
//! out the others are still a majority (steps never overlap).

use std::time::{Duration, Instant};

use cronraft_api::client::Client;
use reqwest::Method;
use serde_json::{json, Value};

use super::admin::{admin, urls, ADMIN_TIMEOUT};
use super::Targets;

/// Where a node stands in the replicated membership, as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Member {
    Voter,
    /// A learner that is not yet caught up enough to be promoted.
    Learner,
    Absent,
}

/// Asks the leader (through any other node) where `node` stands, with `POST
/// /cluster/nodes/{node}/promote`: `already_voter` — a voter; `node_not_found` — not a member;
/// `learner_behind` — a learner; 200 — it was a learner and is a voter now. The only side effect
/// is promoting a caught-up learner, which every caller wants anyway. (`GET /cluster` cannot
/// tell: it shows each member's own idea of its role, and a removed node that never saw its
/// removal still calls itself a candidate or follower.)
pub(super) async fn membership_of(targets: &Targets, node: u64) -> Option<Member> {
    let path = format!("/api/v1/cluster/nodes/{node}/promote");
    for url in urls(targets, Some(node)).await {
        let client = Client::with_timeout([&url], ADMIN_TIMEOUT);
        let Ok(r) = client.raw(Method::POST, &path, None, None).await else { continue };
        let code =
            serde_json::from_str::<Value>(&r.body).ok().and_then(|v| v["error"]["code"].as_str().map(String::from));
        match (r.status, code.as_deref()) {
            (200..=299, _) | (409, Some("already_voter")) => return Some(Member::Voter),
            (409, Some("learner_behind")) => return Some(Member::Learner),
            (404, Some("node_not_found")) => return Some(Member::Absent),
            _ => {}
        }
    }
    None
}

/// Removes `node` from the membership, but only from a healthy cluster whose every node is a
/// voter: with one node out the others are still a majority, and steps never overlap.
pub(super) async fn begin(targets: &Targets, node: u64) -> Result<Value, String> {
    let healthy = targets.cluster.lock().await.wait_healthy(Duration::from_secs(10)).await;
    if let Err(e) = healthy {
        return Err(format!("removal skipped, the cluster is not fully healthy ({e})"));
    }
    let urls = urls(targets, None).await;
    let path = format!("/api/v1/cluster/nodes/{node}");
    let out = admin(&urls, Method::DELETE, &path, None, &[404], Duration::from_secs(5)).await;
    // A timed-out removal may still take effect: the heal looks at the membership, not at this.
    out.map(|v| json!({"removed": node, "log_index": v["log_index"]}))
}

/// Brings `node` back as a voter if it is not one: `wipe` — kill it, delete its data and start it
/// as a fresh joiner on its old addresses (its own join flow adds and promotes it); otherwise
/// re-add the running node with its old log and promote it. Then waits until it is a voter and
/// the cluster is healthy again (60 s at most in all).
pub(super) async fn end(targets: &Targets, node: u64, wipe: bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let others = urls(targets, Some(node)).await;
    let mut rejoined = false;
    loop {
        match membership_of(targets, node).await {
            Some(Member::Voter) => break,
            Some(Member::Absent) if !rejoined && wipe => {
                targets.cluster.lock().await.rejoin_fresh(node).map_err(|e| e.to_string())?;
                rejoined = true;
            }
            Some(Member::Absent) if !wipe => {
                let (http, raft) = {
                    let c = targets.cluster.lock().await;
                    (c.nodes[&node].http.clone(), c.nodes[&node].raft.clone())
                };
                let body = json!({"id": node, "http_addr": http, "raft_addr": raft});
                let limit = deadline.saturating_duration_since(Instant::now());
                admin(&others, Method::POST, "/api/v1/cluster/nodes", Some(body), &[], limit).await?;
            }
            // A learner catching up (promoted by the next probe), a fresh joiner still joining,
            // or no leader to ask yet.
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(format!("node {node} is not a voter again within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let limit = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(5));
    let healthy = targets.cluster.lock().await.wait_healthy(limit).await;
    healthy.map(|_| ()).map_err(|e| format!("node {node} is a voter again, but {e}"))
}
