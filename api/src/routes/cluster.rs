//! `/api/v1/cluster`: membership view and admin (add, promote, remove), and the state digest.
//!
//! Admin writes reach the leader through the forwarding middleware and run through
//! `MembershipAdmin`, which allows one change at a time. `GET /cluster` asks every member for its
//! own indexes (in parallel, briefly); a member that does not answer is shown `reachable: false`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use cronraft_raft::address::HostPort;
use cronraft_raft::NodeInfo;
use openraft::ServerState;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::context::Ctx;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiPath, JsonBody};
use crate::types::{AddNodeInput, ClusterView, DigestView, MembershipChangeView, NodeView, SelfView};

/// How long `GET /cluster` waits for each member's own view.
const PEER_VIEW_TIMEOUT: Duration = Duration::from_millis(500);
const ADDR_LEN_MAX: usize = 255;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(cluster))
        .routes(routes!(self_view))
        .routes(routes!(digest))
        .routes(routes!(add_node))
        .routes(routes!(promote))
        .routes(routes!(remove))
}

fn state_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

/// This node's own view (what `GET /cluster` collects from every member).
pub fn local_view(ctx: &Ctx) -> SelfView {
    let m = ctx.raft.metrics().borrow().clone();
    SelfView {
        id: ctx.node_id,
        state: state_name(m.state).to_string(),
        term: m.current_term,
        leader_id: m.current_leader,
        last_log_index: m.last_log_index,
        applied_index: m.last_applied.map(|l| l.index),
        cluster_id: ctx.sm.cluster_identity().get().map(|id| id.to_string()),
    }
}

#[utoipa::path(get, path = "/cluster/self", tag = "cluster",
    responses((status = 200, description = "This node's own view", body = SelfView), crate::openapi::ErrorResponses))]
async fn self_view(State(ctx): State<Ctx>) -> Json<SelfView> {
    Json(local_view(&ctx))
}

async fn fetch_view(ctx: &Ctx, id: u64, info: &NodeInfo) -> Option<SelfView> {
    if id == ctx.node_id {
        return Some(local_view(ctx));
    }
    let url = format!("{}/api/v1/cluster/self", ctx.node_url(&info.http_addr));
    let resp = ctx.peer_call(reqwest::Method::GET, url).timeout(PEER_VIEW_TIMEOUT).send().await.ok()?;
    let body = cronraft_raft::outbound::read_body_capped(resp, crate::context::PEER_ANSWER_BYTES_MAX).await.ok()?;
    serde_json::from_slice::<SelfView>(&body).ok()
}

#[utoipa::path(get, path = "/cluster", tag = "cluster",
    responses((status = 200, description = "The members and what each says of itself", body = ClusterView), crate::openapi::ErrorResponses))]
async fn cluster(State(ctx): State<Ctx>) -> Json<ClusterView> {
    let m = ctx.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let members: Vec<(u64, NodeInfo)> = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
    let views = futures::future::join_all(members.iter().map(|(id, info)| fetch_view(&ctx, *id, info))).await;
    let nodes = members
        .iter()
        .zip(views)
        .map(|((id, info), view)| {
            let configured = if Some(*id) == m.current_leader {
                "leader"
            } else if voters.contains(id) {
                "follower"
            } else {
                "learner"
            };
            let role = match &view {
                Some(v) if v.state != "shutdown" => v.state.clone(),
                _ => configured.to_string(),
            };
            NodeView {
                id: *id,
                http_addr: info.http_addr.clone(),
                raft_addr: info.raft_addr.clone(),
                role,
                last_log_index: view.as_ref().and_then(|v| v.last_log_index),
                applied_index: view.as_ref().and_then(|v| v.applied_index),
                reachable: view.is_some(),
            }
        })
        .collect();
    let cluster_id = ctx.sm.cluster_identity().get().map(|id| id.to_string());
    Json(ClusterView { cluster_id, leader_id: m.current_leader, term: m.current_term, nodes })
}

#[utoipa::path(get, path = "/cluster/digest", tag = "cluster",
    responses((status = 200, description = "This node's state digest", body = DigestView), crate::openapi::ErrorResponses))]
async fn digest(State(ctx): State<Ctx>) -> Result<Json<DigestView>, ApiError> {
    let sm = ctx.sm.clone();
    let (applied, digest, data_digest) =
        tokio::task::spawn_blocking(move || sm.digests()).await.map_err(|e| ApiError::internal(e.to_string()))??;
    let applied_index = applied.map(|l| l.index).unwrap_or(0);
    Ok(Json(DigestView { node_id: ctx.node_id, applied_index, digest, data_digest }))
}

/// A member's address: host:port with an IP or a host name (resolved by each peer at connect
/// time), connectable (no wildcard, no port 0), at most [`ADDR_LEN_MAX`] bytes.
fn check_addr(field: &str, addr: &str) -> Result<(), ApiError> {
    let parsed = (addr.len() <= ADDR_LEN_MAX).then(|| HostPort::parse(addr).ok()).flatten();
    match parsed {
        Some(hp) if !hp.is_wildcard() && hp.port != 0 => Ok(()),
        _ => Err(ApiError::new(
            ErrorCode::InvalidAddress,
            format!(
                "`{field}` must be host:port with an IP address or a host name that other nodes can connect to \
                 (no 0.0.0.0, no port 0), got {addr:?}"
            ),
        )),
    }
}

fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>().map_err(|_| {
        ApiError::new(ErrorCode::InvalidNodeId, format!("node id must be a non-negative integer, got {raw:?}"))
    })
}

#[utoipa::path(post, path = "/cluster/nodes", tag = "cluster", params(("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")), request_body = AddNodeInput, responses((status = 200, description = "The change, committed", body = MembershipChangeView), crate::openapi::ErrorResponses))]
async fn add_node(
    State(ctx): State<Ctx>,
    JsonBody(input): JsonBody<AddNodeInput>,
) -> Result<(StatusCode, Json<MembershipChangeView>), ApiError> {
    check_addr("http_addr", &input.http_addr)?;
    check_addr("raft_addr", &input.raft_addr)?;
    let info = NodeInfo { http_addr: input.http_addr, raft_addr: input.raft_addr };
    let log_id = ctx.membership.add_learner(input.id, info).await?;
    Ok((StatusCode::OK, Json(MembershipChangeView { node_id: input.id, log_index: log_id.index })))
}

#[utoipa::path(post, path = "/cluster/nodes/{id}/promote", tag = "cluster", params(("id" = u64, Path, description = "a node id"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")), responses((status = 200, description = "The change, committed", body = MembershipChangeView), crate::openapi::ErrorResponses))]
async fn promote(
    State(ctx): State<Ctx>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<MembershipChangeView>, ApiError> {
    let id = parse_id(&raw)?;
    let log_id = ctx.membership.promote(id).await?;
    Ok(Json(MembershipChangeView { node_id: id, log_index: log_id.index }))
}

#[utoipa::path(delete, path = "/cluster/nodes/{id}", tag = "cluster", params(("id" = u64, Path, description = "a node id"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")), responses((status = 200, description = "The change, committed", body = MembershipChangeView), crate::openapi::ErrorResponses))]
async fn remove(State(ctx): State<Ctx>, ApiPath(raw): ApiPath<String>) -> Result<Json<MembershipChangeView>, ApiError> {
    let id = parse_id(&raw)?;
    let log_id = ctx.membership.remove(id).await?;
    Ok(Json(MembershipChangeView { node_id: id, log_index: log_id.index }))
}
