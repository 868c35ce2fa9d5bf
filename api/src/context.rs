//! What every handler shares: the node's Raft, its state machine, and the two paths every request
//! takes — [`ApiContext::propose`] for writes on the leader, [`ApiContext::read_barrier`] for reads.

use std::sync::Arc;
use std::time::Duration;

use cronraft_raft::cluster_secret::ClusterSecret;
use cronraft_raft::membership::MembershipAdmin;
use cronraft_raft::outbound::{read_body_capped, BuildError, ClientTls};
use cronraft_raft::store::StateMachineStore;
use cronraft_raft::{NodeId, NodeInfo, Raft, Request, Response};
use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::ServerState;
use serde::{Deserialize, Serialize};

use crate::batcher::Batcher;
use crate::error::{ApiError, ErrorCode};
use crate::metrics::HttpMetrics;
use crate::scheduler_metrics::SchedulerReport;

/// Largest body read from a peer's answer to an internal request (read index, a node's view of
/// itself); those answers are a few hundred bytes.
pub const PEER_ANSWER_BYTES_MAX: usize = 64 * 1024;

/// How long a linearizable read waits for leadership confirmation and local apply.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// Handler state, shared behind an `Arc`.
pub struct ApiContext {
    pub node_id: NodeId,
    pub raft: Raft,
    pub sm: StateMachineStore,
    pub membership: MembershipAdmin,
    /// Client for forwarding writes and read-index requests to the leader's API, and for
    /// gathering `/cluster` views, built by [`cronraft_raft::outbound::peers`]. Its own pool,
    /// separate from Raft RPC (openraft#1716).
    pub peers: reqwest::Client,
    /// The node's client TLS; makes the other nodes' URLs ([`ApiContext::node_url`]).
    pub tls: ClientTls,
    pub metrics: HttpMetrics,
    /// The tasks with `/metrics` series of their own (`[metrics]` in the node's configuration).
    pub task_series: crate::metrics::TaskSeries,
    /// The scheduler's figures (filled while this node leads), for `/metrics` and
    /// `/scheduler/status`.
    pub scheduler: Arc<dyn SchedulerReport>,
    /// Group commit of client writes.
    pub batcher: Batcher,
    /// The cluster secret: auth is on when there is one (`crate::auth`). This node's own calls to
    /// other nodes carry the credential derived from it ([`ApiContext::peer_call`]).
    pub cluster_secret: Option<ClusterSecret>,
    /// One permit: one backup streams from this node at a time (each holds a fixed point whose
    /// pre-images grow with the writes applied while it streams).
    pub backups: Arc<tokio::sync::Semaphore>,
    /// The cluster-wide cap on execution records (`retention.records_max`), for `/metrics`.
    pub records_max: u64,
}

/// Shared handle to the [`ApiContext`].
pub type Ctx = Arc<ApiContext>;

/// `?consistency=` of a read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Confirmed with a quorum (ReadIndex), then served from this node's state machine.
    #[default]
    Linearizable,
    /// This node's state as it is: fastest, possibly stale.
    Local,
}

/// Answer of the leader's internal read-index endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReadIndex {
    pub index: u64,
}

impl ApiContext {
    pub fn new(
        node_id: NodeId,
        raft: Raft,
        sm: StateMachineStore,
        scheduler: Arc<dyn SchedulerReport>,
        tls: &ClientTls,
        cluster_secret: Option<ClusterSecret>,
    ) -> Result<Self, BuildError> {
        let peers = cronraft_raft::outbound::peers(tls)?;
        let membership = MembershipAdmin::new(raft.clone());
        let batcher = Batcher::start(raft.clone());
        let (metrics, tls) = (HttpMetrics::default(), tls.clone());
        let backups = Arc::new(tokio::sync::Semaphore::new(1));
        let task_series = crate::metrics::TaskSeries::default();
        Ok(ApiContext {
            node_id,
            raft,
            sm,
            membership,
            peers,
            tls,
            metrics,
            task_series,
            scheduler,
            batcher,
            cluster_secret,
            backups,
            records_max: 0,
        })
    }

    /// The base URL of another node's API from its advertised `http_addr`.
    pub fn node_url(&self, http_addr: &str) -> String {
        self.tls.node_url(http_addr)
    }

    /// A request of this node's own to another node (read index, `/cluster/self`), carrying the
    /// node credential when the cluster has a secret. Forwarded client writes do not use this:
    /// they carry the client's own `Authorization`.
    pub fn peer_call(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let out = self.peers.request(method, url);
        match &self.cluster_secret {
            Some(s) => out.header(reqwest::header::AUTHORIZATION, s.authorization()),
            None => out,
        }
    }

    /// The leader as this node currently believes it to be, with its addresses.
    pub fn leader(&self) -> Option<(NodeId, NodeInfo)> {
        let m = self.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        let info = m.membership_config.nodes().find(|(n, _)| **n == id).map(|(_, i)| i.clone())?;
        Some((id, info))
    }

    /// Whether this node is the leader right now (by its own metrics; routing only).
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id)
    }

    /// Waits until Raft metrics change (e.g. a leader appears), at most `limit`.
    pub async fn wait_metrics_change(&self, limit: Duration) {
        let mut rx = self.raft.metrics();
        let _ = tokio::time::timeout(limit, rx.changed()).await;
    }

    /// Proposes `req` on this node, which should be the leader, and waits for it to be applied.
    /// Returns the state machine's response and the entry's log index. Concurrent requests share
    /// entries (see [`Batcher`]).
    pub async fn propose(&self, req: Request) -> Result<(Response, u64), ApiError> {
        self.batcher.submit(req).await
    }

    /// Makes a following local read linearizable (or does nothing for `Local`).
    pub async fn read_barrier(&self, consistency: Consistency) -> Result<(), ApiError> {
        if consistency == Consistency::Local || unsafe_local_reads() {
            return Ok(());
        }
        if self.is_leader() {
            match tokio::time::timeout(READ_TIMEOUT, self.raft.ensure_linearizable()).await {
                Err(_) => return Err(ApiError::new(ErrorCode::Timeout, "could not confirm leadership in time")),
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => {
                    return Err(ApiError::new(ErrorCode::NoQuorum, e.to_string()))
                }
                Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => {}
                Ok(Err(RaftError::Fatal(f))) => return Err(ApiError::internal(format!("raft stopped: {f}"))),
            }
        }
        let index = self.read_index_from_leader().await?;
        self.raft
            .wait(Some(READ_TIMEOUT))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|e| ApiError::new(ErrorCode::Timeout, format!("this node did not catch up in time: {e}")))?;
        Ok(())
    }

    /// Asks the leader for a quorum-confirmed read index (ReadIndex on behalf of a follower).
    async fn read_index_from_leader(&self) -> Result<u64, ApiError> {
        let Some((_, leader)) = self.leader() else {
            return Err(ApiError::new(ErrorCode::NoLeader, "no leader is known; retry shortly"));
        };
        let url = format!("{}/api/v1/internal/read-index", self.node_url(&leader.http_addr));
        let resp = self.peer_call(reqwest::Method::POST, url).timeout(READ_TIMEOUT).send().await;
        let resp = resp.map_err(|e| ApiError::new(ErrorCode::LeaderUnreachable, format!("leader unreachable: {e}")))?;
        if !resp.status().is_success() {
            return Err(ApiError::new(ErrorCode::NoLeader, format!("leader refused read index: {}", resp.status())));
        }
        let body = read_body_capped(resp, PEER_ANSWER_BYTES_MAX)
            .await
            .map_err(|e| ApiError::new(ErrorCode::LeaderUnreachable, format!("leader's read index: {e}")))?;
        let ri: ReadIndex = serde_json::from_slice(&body).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(ri.index)
    }

    /// Leader side of [`ApiContext::read_index_from_leader`].
    pub async fn read_index(&self) -> Result<ReadIndex, ApiError> {
        match tokio::time::timeout(READ_TIMEOUT, self.raft.get_read_log_id()).await {
            Err(_) => Err(ApiError::new(ErrorCode::Timeout, "could not confirm leadership in time")),
            Ok(Ok((read_log_id, _))) => Ok(ReadIndex { index: read_log_id.map(|l| l.index).unwrap_or(0) }),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => Err(ApiError::not_leader()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => {
                Err(ApiError::new(ErrorCode::NoQuorum, e.to_string()))
            }
            Ok(Err(RaftError::Fatal(f))) => Err(ApiError::internal(format!("raft stopped: {f}"))),
        }
    }
}

/// UNSAFE, TEST-ONLY: `CRONRAFT_UNSAFE=local-reads` makes every linearizable read a local one (no
/// ReadIndex, no leader check), so stale reads become possible. It exists only so the chaos harness
/// can prove that its linearizability checker catches them (`cronraft-chaos run --unsafe
/// local-reads`); it exists only in a build with the `unsafe-modes` feature
/// ([`cronraft_raft::unsafe_modes`]).
fn unsafe_local_reads() -> bool {
    cronraft_raft::unsafe_modes::enabled("local-reads")
}

/// Wall-clock milliseconds: the time stamped into commands built on this node.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
