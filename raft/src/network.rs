//! Raft RPC over HTTP with bincode bodies: the client side (openraft's network factory) and the
//! server side (an axum router for the node's raft listener), kept together so the two ends of
//! the wire format live in one file.
//!
//! One pooled `reqwest::Client` serves every peer: openraft asks the factory for a new client per
//! replication stream, vote round and linearizable-read heartbeat, so creating one must be cheap.
//! Per-RPC timeouts come from openraft (`RPCOption::hard_ttl`), which sizes them from the config.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::model::NodeInfo;
use crate::{NodeId, Raft, TypeConfig};

/// Largest Raft RPC body accepted: a snapshot chunk or an append batch plus framing.
pub const RPC_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
const OCTET_STREAM: &str = "application/octet-stream";

/// The client side: hands openraft one [`PeerClient`] per target, all sharing one pool.
#[derive(Clone)]
pub struct HttpNetwork {
    client: reqwest::Client,
}

impl HttpNetwork {
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(HttpNetwork { client })
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        PeerClient { client: self.client.clone(), target, base: format!("http://{}/raft", node.raft_addr) }
    }
}

/// RPCs to one peer.
pub struct PeerClient {
    client: reqwest::Client,
    target: NodeId,
    /// `http://<raft_addr>/raft`
    base: String,
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, NodeInfo, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = codec::encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let sent = self
            .client
            .post(format!("{}/{path}", self.base))
            .timeout(option.hard_ttl())
            .header(header::CONTENT_TYPE, OCTET_STREAM)
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => return Err(RPCError::Network(NetworkError::new(&e))),
        };
        if !resp.status().is_success() {
            let msg = format!("raft rpc {path} to node {}: HTTP {}", self.target, resp.status());
            return Err(RPCError::Network(NetworkError::new(&std::io::Error::other(msg))));
        }
        let bytes = resp.bytes().await.map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let result: Result<Resp, E> = codec::decode(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.call("append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call("snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.call("vote", &rpc, &option).await
    }
}

/// The server side: `POST /raft/{append,vote,snapshot}` on the raft listener.
pub fn router(raft: Raft) -> Router {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .layer(DefaultBodyLimit::max(RPC_BODY_BYTES_MAX))
        .with_state(raft)
}

fn reply<T: Serialize>(value: &T) -> Response {
    match codec::encode(value) {
        Ok(bytes) => ([(header::CONTENT_TYPE, OCTET_STREAM)], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn bad_body(e: codec::CodecError) -> Response {
    (StatusCode::BAD_REQUEST, format!("undecodable raft rpc body: {e}")).into_response()
}

async fn append(State(raft): State<Raft>, body: Bytes) -> Response {
    match codec::decode::<AppendEntriesRequest<TypeConfig>>(&body) {
        Ok(req) => reply(&raft.append_entries(req).await),
        Err(e) => bad_body(e),
    }
}

async fn vote(State(raft): State<Raft>, body: Bytes) -> Response {
    match codec::decode::<VoteRequest<NodeId>>(&body) {
        Ok(req) => reply(&raft.vote(req).await),
        Err(e) => bad_body(e),
    }
}

async fn snapshot(State(raft): State<Raft>, body: Bytes) -> Response {
    match codec::decode::<InstallSnapshotRequest<TypeConfig>>(&body) {
        Ok(req) => reply(&raft.install_snapshot(req).await),
        Err(e) => bad_body(e),
    }
}
