//! Any node accepts writes: a middleware that sends every write to the leader.
//!
//! For each non-GET request (except internal routes) it buffers the body, fixes the request id
//! (the client's `Idempotency-Key`, or a fresh one echoed back), and then, until a deadline:
//! runs the handler here if this node leads, or proxies the request to the leader's API. A
//! response marked with [`RETRY_HEADER`] means "not applied here, ask the current leader" and the
//! loop goes on after a short backoff; so do refused connections. Because every attempt carries the
//! same request id, the state machine applies the write at most once however often it is retried.
//!
//! When the deadline passes, the answer is 503 `no_leader` only if no attempt could have been
//! proposed; otherwise 503 `unavailable`, telling the client to retry with the same key.

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Request};
use axum::http::{request::Parts, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;

use cronraft_raft::outbound::{read_body_capped, BodyError};

use crate::context::Ctx;
use crate::error::{ApiError, ErrorCode, RETRY_HEADER};
use crate::extract::BODY_BYTES_MAX;
use crate::types::IDEMPOTENCY_HEADER;

/// How long a write may take in all, attempts included. Above the leader's own limits (5 s for a
/// write, 10 s for a membership change), so the leader's answer, not ours, reaches the client.
const FORWARD_DEADLINE: Duration = Duration::from_secs(12);
/// Shortest time an attempt is given.
const ATTEMPT_MIN: Duration = Duration::from_secs(1);
/// Marks a request that was already proxied once; a non-leader receiving it does not proxy again.
pub const FORWARDED_HEADER: &str = "x-cronraft-forwarded";
/// Largest relayed answer of the leader. Answers to writes are one task, execution or executor
/// (a few KiB at most); the cap only bounds what a misbehaving peer can make this node buffer.
pub const LEADER_ANSWER_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Longest accepted `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;

/// The middleware: a route layer of the API routes (`axum::middleware::from_fn`), with the
/// context in an `Extension`.
pub async fn route_writes(Extension(ctx): Extension<Ctx>, req: Request, next: Next) -> Response {
    // A route layer of the nested API sees the path without `/api/v1`: the full one is the
    // original URI.
    let path = original_uri(req.extensions(), req.uri()).path().to_owned();
    if !routes_write(req.method(), &path) {
        return next.run(req).await;
    }
    // A node without room takes no write, before anything is read or proposed (membership
    // changes excepted: they are how an operator replaces a full node).
    if let Some(reason) = ctx.sm.space().refusal().filter(|_| !path.starts_with("/api/v1/cluster/")) {
        let msg = format!("node {} refuses writes while its storage is full: {reason}", ctx.node_id);
        return ApiError::new(ErrorCode::StorageFull, msg).into_response();
    }
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_BYTES_MAX).await {
        Ok(b) => b,
        Err(_) => {
            let msg = format!("request body is larger than {BODY_BYTES_MAX} bytes");
            return ApiError::new(ErrorCode::BodyTooLarge, msg).into_response();
        }
    };
    let key = match request_key(&parts) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    parts.headers.insert(IDEMPOTENCY_HEADER, HeaderValue::from_str(&key).expect("validated key"));
    // The write's id in every line logged for it, here and on the leader (`observe` left the
    // span's field empty for it).
    tracing::Span::current().record("request_id", key.as_str());
    let mut resp = send_to_leader(&ctx, &parts, bytes, next, &key).await;
    resp.headers_mut().insert(IDEMPOTENCY_HEADER, HeaderValue::from_str(&key).expect("validated key"));
    resp
}

/// Whether a request is a write this middleware sends to the leader: POST, PUT or DELETE on the
/// API outside its internal routes. Any other method (TRACE, PATCH, ...) goes straight to the
/// router, which answers 405 (Schemathesis found TRACE answered 400 for its Idempotency-Key).
pub fn routes_write(method: &Method, path: &str) -> bool {
    let is_write = matches!(*method, Method::POST | Method::PUT | Method::DELETE);
    is_write && path.starts_with("/api/") && !path.starts_with("/api/v1/internal/")
}

/// The request id: the client's key if it is acceptable, else a new UUID.
fn request_key(parts: &Parts) -> Result<String, ApiError> {
    let Some(raw) = parts.headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(uuid::Uuid::new_v4().to_string());
    };
    let key = raw.to_str().unwrap_or("");
    let printable = key.bytes().all(|b| b.is_ascii_graphic());
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_LEN_MAX || !printable {
        return Err(ApiError::new(
            ErrorCode::InvalidIdempotencyKey,
            format!("Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} printable ASCII characters"),
        ));
    }
    Ok(key.to_string())
}

async fn send_to_leader(ctx: &Ctx, parts: &Parts, bytes: Bytes, next: Next, key: &str) -> Response {
    let forwarded = parts.headers.contains_key(FORWARDED_HEADER);
    let deadline = Instant::now() + FORWARD_DEADLINE;
    let mut maybe_proposed = false;
    let mut backoff = Duration::from_millis(10);
    loop {
        if ctx.is_leader() {
            let req = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
            let resp = next.clone().run(req).await;
            match resp.headers().get(RETRY_HEADER) {
                None => return resp,
                Some(_) if forwarded => return resp, // the forwarding node decides
                Some(v) => maybe_proposed |= v.as_bytes() == b"proposed",
            }
        } else if forwarded {
            return ApiError::not_leader().into_response();
        } else if let Some((leader_id, leader)) = ctx.leader() {
            tracing::debug!(leader = leader_id, "forwarding the write to the leader");
            let budget = deadline.saturating_duration_since(Instant::now()).max(ATTEMPT_MIN);
            match proxy(ctx, &leader.http_addr, parts, bytes.clone(), budget).await {
                Ok(resp) => match resp.headers().get(RETRY_HEADER) {
                    None => return resp,
                    Some(v) => maybe_proposed |= v.as_bytes() == b"proposed",
                },
                // Refused before anything was sent: no effect.
                Err(ProxyError::Send(e)) if e.is_connect() => {}
                Err(_) => maybe_proposed = true,
            }
        } else {
            ctx.wait_metrics_change(backoff).await;
        }
        if Instant::now() + backoff >= deadline {
            break;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(200));
    }
    if maybe_proposed {
        let msg = format!(
            "no leader confirmed the write within {FORWARD_DEADLINE:?}; it may still take effect: \
             retry with the same Idempotency-Key ({key})"
        );
        ApiError::new(ErrorCode::Unavailable, msg).into_response()
    } else {
        ApiError::new(ErrorCode::NoLeader, "no leader is available; nothing was written, retry later").into_response()
    }
}

/// The request's URI as the client sent it (before `nest` stripped its prefix).
fn original_uri<'a>(extensions: &'a axum::http::Extensions, uri: &'a axum::http::Uri) -> &'a axum::http::Uri {
    extensions.get::<OriginalUri>().map(|OriginalUri(u)| u).unwrap_or(uri)
}

/// Why a proxied attempt gave no answer to relay.
#[derive(Debug, thiserror::Error)]
enum ProxyError {
    #[error("{0}")]
    Send(#[from] reqwest::Error),
    /// The leader answered, but its body could not be read within [`LEADER_ANSWER_BYTES_MAX`].
    #[error("{0}")]
    Body(#[from] BodyError),
}

/// Sends the request to the leader's API and relays its answer (its body read with a cap).
async fn proxy(
    ctx: &Ctx,
    leader_http: &str,
    parts: &Parts,
    bytes: Bytes,
    timeout: Duration,
) -> Result<Response, ProxyError> {
    let uri = original_uri(&parts.extensions, &parts.uri);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut out = ctx.peers.request(method, format!("{}{path}", ctx.node_url(leader_http))).timeout(timeout);
    for (name, value) in parts.headers.iter() {
        if name == "host" || name == "content-length" || name == "connection" {
            continue;
        }
        out = out.header(name.as_str(), value.as_bytes());
    }
    let resp = out.header(FORWARDED_HEADER, "1").body(bytes.to_vec()).send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = read_body_capped(resp, LEADER_ANSWER_BYTES_MAX).await?;
    let mut relayed = Response::new(Body::from(body));
    *relayed.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in headers.iter() {
        if name == "content-length" || name == "transfer-encoding" || name == "connection" {
            continue;
        }
        if let (Ok(n), Ok(v)) =
            (axum::http::HeaderName::from_bytes(name.as_str().as_bytes()), HeaderValue::from_bytes(value.as_bytes()))
        {
            relayed.headers_mut().insert(n, v);
        }
    }
    Ok(relayed)
}
