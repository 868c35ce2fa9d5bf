//! Raft RPC over HTTP with bincode bodies: the client side (openraft's network factory) and the
//! server side (an axum router for the node's raft listener), kept together so the two ends of
//! the wire format live in one file.
//!
//! One pooled `reqwest::Client` serves every peer: openraft asks the factory for a new client per
//! replication stream, vote round and linearizable-read heartbeat, so creating one must be cheap.
//! Per-RPC timeouts come from openraft (`RPCOption::hard_ttl`), which sizes them from the config.
//!
//! Bad bytes are bounded at both ends (issue 15): every body is decoded with a claim limit from
//! its length ([`codec::decode`]); each endpoint has its own body limit ([`BodyLimits`]); at most
//! [`RPCS_CONCURRENT_MAX`] RPCs are handled at once and the next one is answered 503 at once; a
//! snapshot is received in order, capped and dropped when it stalls ([`snapshot`]); and a peer's
//! answer is read up to [`RESPONSE_BYTES_MAX`] only.
//!
//! With a cluster secret (issue 17), every RPC carries the node credential
//! ([`ClusterSecret::authorization`]) and the listener answers 401 to any request without it
//! before its body is read, let alone decoded: a forged leader needs the secret first.

pub mod snapshot;

use std::sync::Arc;

use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
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

use self::snapshot::{Rejected, SnapshotReceiver};
use crate::cluster_identity::{ClusterIdentity, CLUSTER_HEADER};
use crate::cluster_secret::ClusterSecret;
use crate::codec;
use crate::model::NodeInfo;
use crate::outbound::{BuildError, ClientTls};
use crate::{NodeId, Raft, TypeConfig};

/// The Raft wire format this build speaks: the bodies' bincode layout of openraft's messages and
/// our envelopes. Sent on every RPC ([`WIRE_HEADER`]); a node refuses an RPC in a version it does
/// not know before reading its body, naming both versions, instead of misreading it. An RPC
/// without the header is version 1 (what every build before the header spoke).
pub const WIRE_VERSION: u32 = 1;
/// The header that carries [`WIRE_VERSION`].
pub const WIRE_HEADER: &str = "x-cronraft-wire";

/// The largest append body accepted, whatever the config says (see [`BodyLimits`]).
pub const APPEND_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
/// The largest log entry we expect on the wire: sled keeps every value below about 2 MiB
/// (`docs/internals/storage.md`, "Segment size"). Sizes the append limit from the config.
pub const ENTRY_BYTES_MAX: usize = 2 * 1024 * 1024;
/// The largest vote body: a vote and a log id are a few dozen bytes.
pub const VOTE_BODY_BYTES_MAX: usize = 4 * 1024;
/// Room for a snapshot chunk's framing: the vote, offset and the meta with its membership.
pub const SNAPSHOT_FRAMING_BYTES: usize = 64 * 1024;
/// Raft RPCs handled at once by one node; the next is answered 503 at once instead of queueing.
/// A healthy cluster has a handful in flight (one replication stream per peer, a vote round).
pub const RPCS_CONCURRENT_MAX: usize = 64;
/// The largest answer read from a peer: answers are a vote, a log id or an error, well under
/// this; a longer one is cut off and counts as a network error.
pub const RESPONSE_BYTES_MAX: usize = 1024 * 1024;
const OCTET_STREAM: &str = "application/octet-stream";

/// Per-endpoint body limits of the Raft listener, from openraft's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// `max_payload_entries` entries of up to [`ENTRY_BYTES_MAX`], at most
    /// [`APPEND_BODY_BYTES_MAX`] (openraft batches by count, not bytes; a batch of ordinary
    /// entries is far below the cap).
    pub append: usize,
    /// [`VOTE_BODY_BYTES_MAX`].
    pub vote: usize,
    /// `snapshot_max_chunk_size` plus [`SNAPSHOT_FRAMING_BYTES`].
    pub snapshot: usize,
}

impl BodyLimits {
    /// The limits for a node running with `config`.
    pub fn from_config(config: &openraft::Config) -> Self {
        let entries = usize::try_from(config.max_payload_entries).unwrap_or(usize::MAX);
        let chunk = usize::try_from(config.snapshot_max_chunk_size).unwrap_or(usize::MAX);
        BodyLimits {
            append: entries.saturating_mul(ENTRY_BYTES_MAX).clamp(VOTE_BODY_BYTES_MAX, APPEND_BODY_BYTES_MAX),
            vote: VOTE_BODY_BYTES_MAX,
            snapshot: chunk.saturating_add(SNAPSHOT_FRAMING_BYTES),
        }
    }
}

/// The client side: hands openraft one [`PeerClient`] per target, all sharing one pool.
#[derive(Clone)]
pub struct HttpNetwork {
    client: reqwest::Client,
    /// Makes a peer's URL from its advertised `raft_addr` (`https://` when the cluster has TLS).
    tls: ClientTls,
    /// The node credential every RPC carries, when the cluster has a secret.
    authorization: Option<Arc<str>>,
    /// The cluster identity every RPC carries once the node knows it ([`CLUSTER_HEADER`]).
    identity: Arc<ClusterIdentity>,
}

impl HttpNetwork {
    pub fn new(
        tls: &ClientTls,
        secret: Option<&ClusterSecret>,
        identity: Arc<ClusterIdentity>,
    ) -> Result<Self, BuildError> {
        let client = crate::outbound::raft_peers(tls)?;
        let authorization = secret.map(|s| Arc::from(s.authorization()));
        Ok(HttpNetwork { client, tls: tls.clone(), authorization, identity })
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        PeerClient {
            client: self.client.clone(),
            target,
            base: format!("{}/raft", self.tls.node_url(&node.raft_addr)),
            authorization: self.authorization.clone(),
            identity: self.identity.clone(),
        }
    }
}

/// RPCs to one peer.
pub struct PeerClient {
    client: reqwest::Client,
    target: NodeId,
    authorization: Option<Arc<str>>,
    identity: Arc<ClusterIdentity>,
    /// `http(s)://<raft_addr>/raft`
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
        let mut out = self
            .client
            .post(format!("{}/{path}", self.base))
            .timeout(option.hard_ttl())
            .header(header::CONTENT_TYPE, OCTET_STREAM)
            .header(WIRE_HEADER, WIRE_VERSION);
        if let Some(a) = &self.authorization {
            out = out.header(header::AUTHORIZATION, a.as_ref());
        }
        if let Some(id) = self.identity.get() {
            out = out.header(CLUSTER_HEADER, id.as_ref());
        }
        let sent = out.body(body).send().await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => return Err(RPCError::Network(NetworkError::new(&e))),
        };
        if !resp.status().is_success() {
            let status = resp.status();
            // A refusal's reason (a wire version, a credential) is a short text worth showing.
            let why = match status.is_client_error() {
                true => {
                    read_capped(resp, 512).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
                }
                false => String::new(),
            };
            let msg = format!("raft rpc {path} to node {}: HTTP {status} {why}", self.target);
            return Err(RPCError::Network(NetworkError::new(&std::io::Error::other(msg))));
        }
        let bytes =
            read_capped(resp, RESPONSE_BYTES_MAX).await.map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let result: Result<Resp, E> = codec::decode(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// A peer's answer was longer than the cap, or its body failed midway.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The body went past `max` bytes; reading stopped there.
    #[error("answer longer than {max} bytes")]
    TooLong {
        /// The cap.
        max: usize,
    },
    /// The connection failed while the body was read.
    #[error("read the answer: {0}")]
    Body(#[from] reqwest::Error),
}

/// Reads a response body chunk by chunk, stopping as soon as it passes `max` bytes (a declared
/// longer length is refused before reading).
pub async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, ReadError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(ReadError::TooLong { max });
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > max {
            return Err(ReadError::TooLong { max });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
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

/// What the Raft handlers share.
#[derive(Clone)]
struct RpcState {
    raft: Raft,
    snapshots: Arc<SnapshotReceiver>,
}

/// The server side: `POST /raft/{append,vote,snapshot}` on the raft listener, with the limits in
/// the module docs. A snapshot receive starts its watchdog with `tokio::spawn`, so the router is
/// served inside a tokio runtime (as axum always is). With `secret`, a request without the node
/// credential is answered 401 before its body is read; one from a node of another cluster
/// ([`ClusterIdentity`]) 409.
pub fn router(raft: Raft, secret: Option<ClusterSecret>, identity: Arc<ClusterIdentity>) -> Router {
    let limits = BodyLimits::from_config(raft.config());
    let snapshots = SnapshotReceiver::new(snapshot::stall_after(raft.config()));
    // Load shedding in front of the concurrency limit: a request beyond the limit fails at once
    // (`Overloaded`) instead of waiting for a slot, and becomes a 503 here.
    let shed = tower::ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|e: tower::BoxError| async move {
            (StatusCode::SERVICE_UNAVAILABLE, format!("raft listener busy ({RPCS_CONCURRENT_MAX} RPCs in flight): {e}"))
        }))
        .load_shed()
        .concurrency_limit(RPCS_CONCURRENT_MAX);
    let routes = Router::new()
        .route("/raft/append", post(append).layer(DefaultBodyLimit::max(limits.append)))
        .route("/raft/vote", post(vote).layer(DefaultBodyLimit::max(limits.vote)))
        .route("/raft/snapshot", post(snapshot).layer(DefaultBodyLimit::max(limits.snapshot)));
    let routes = routes
        .route_layer(axum::middleware::from_fn_with_state(identity, ClusterIdentity::refuse_other_clusters))
        .route_layer(axum::middleware::from_fn(refuse_unknown_wire));
    let routes = match secret {
        Some(secret) => routes.route_layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
            let ok = secret.accepts_header(req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes()));
            async move {
                if ok {
                    next.run(req).await
                } else {
                    (StatusCode::UNAUTHORIZED, "raft rpc refused: no valid cluster credential (the nodes' --cluster-secret-file must match)")
                        .into_response()
                }
            }
        })),
        None => routes,
    };
    routes.layer(shed).with_state(RpcState { raft, snapshots })
}

/// Answers 400, naming both versions, an RPC whose [`WIRE_HEADER`] is not [`WIRE_VERSION`],
/// before its body is read.
async fn refuse_unknown_wire(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let version = match req.headers().get(WIRE_HEADER) {
        None => Some(1),
        Some(v) => v.to_str().ok().and_then(|v| v.trim().parse::<u32>().ok()),
    };
    if version == Some(WIRE_VERSION) {
        return next.run(req).await;
    }
    let found = req.headers().get(WIRE_HEADER).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let msg = format!(
        "raft rpc refused: wire format version {} is not known to this node (it speaks version {WIRE_VERSION}); \
         run the same cronraft release on every node, or upgrade this one",
        found.unwrap_or_default()
    );
    log_refusal(&msg);
    (StatusCode::BAD_REQUEST, msg).into_response()
}

/// One warning per 10 s for refused wire versions: a peer of another release retries every few
/// milliseconds.
pub(crate) fn log_refusal(msg: &str) {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST_S: AtomicI64 = AtomicI64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let last = LAST_S.load(Ordering::Relaxed);
    if now - last >= 10 && LAST_S.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        tracing::warn!("{msg}");
    }
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

async fn append(State(rpc): State<RpcState>, body: Bytes) -> Response {
    match codec::decode::<AppendEntriesRequest<TypeConfig>>(&body) {
        Ok(req) => {
            drop(body);
            reply(&rpc.raft.append_entries(req).await)
        }
        Err(e) => bad_body(e),
    }
}

async fn vote(State(rpc): State<RpcState>, body: Bytes) -> Response {
    match codec::decode::<VoteRequest<NodeId>>(&body) {
        Ok(req) => reply(&rpc.raft.vote(req).await),
        Err(e) => bad_body(e),
    }
}

async fn snapshot(State(rpc): State<RpcState>, body: Bytes) -> Response {
    let req = match codec::decode::<InstallSnapshotRequest<TypeConfig>>(&body) {
        Ok(req) => req,
        Err(e) => return bad_body(e),
    };
    // The chunk's data is a copy now; the body need not wait for the install.
    drop(body);
    match rpc.snapshots.receive(&rpc.raft, req).await {
        Ok(resp) => reply(&Ok::<_, RaftError<NodeId, InstallSnapshotError>>(resp)),
        Err(Rejected::Raft(e)) => reply(&Err::<InstallSnapshotResponse<NodeId>, _>(e)),
        Err(e @ Rejected::TooLarge { .. }) => (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response(),
    }
}
