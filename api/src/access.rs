//! The access log: one line per API request, at INFO for writes and DEBUG for reads, saying who
//! did what, how it ended and how long it took.
//!
//! A line names the principal (the token's name and role, `cluster` for the nodes' own calls, or
//! `anonymous`; never the token itself), the method, the route template and the path, the
//! status, the latency in milliseconds and the request id. For a write the request id is the
//! write's `Idempotency-Key` (the client's, or the one [`crate::forward`] made up and echoed):
//! the id the follower relays to the leader and the state machine deduplicates by, so one
//! `grep` finds the write on the node that received it, on the leader and at apply. A read's is
//! its `x-request-id`.
//!
//! It runs inside the request's span (see [`crate::observe`]); the principal comes from
//! [`crate::auth::authorize`], which runs inside it, as a [`Principal`] on the answer.

use std::time::Instant;

use axum::extract::{MatchedPath, OriginalUri, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::observe::REQUEST_ID_HEADER;
use crate::types::IDEMPOTENCY_HEADER;

/// Longest path written to a line; the rest is cut (a path can be as long as the URI limit).
pub const PATH_CHARS_MAX: usize = 256;
/// The log target of access lines, for filtering: `CRONRAFT_LOG=info,cronraft::access=warn`.
pub const TARGET: &str = "cronraft::access";

/// Who a request was from, as the access log shows it: set on the answer by `authorize`.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's name, `cluster` or `anonymous`.
    pub name: String,
    /// The token's role, `node` for the cluster credential, `anonymous` with auth off.
    pub role: &'static str,
}

/// Whether `method` changes something: such requests are logged at INFO.
pub fn is_write(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

/// The middleware (a layer of the whole app, inside the request span).
pub async fn log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let uri = req.extensions().get::<OriginalUri>().map(|OriginalUri(u)| u.clone()).unwrap_or(req.uri().clone());
    let path: String = uri.path().chars().take(PATH_CHARS_MAX).collect();
    let read_id = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let forwarded = req.headers().contains_key(crate::forward::FORWARDED_HEADER);
    let resp = next.run(req).await;
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    let write_id = resp.headers().get(IDEMPOTENCY_HEADER).and_then(|v| v.to_str().ok());
    let request_id = write_id.filter(|_| is_write(&method)).unwrap_or(&read_id);
    let anonymous = Principal { name: cronraft_raft::state::ANONYMOUS.into(), role: "anonymous" };
    let who = resp.extensions().get::<Principal>().unwrap_or(&anonymous);
    let route = route.as_deref().unwrap_or(crate::metrics::UNMATCHED);
    let status = resp.status().as_u16();
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                target: TARGET,
                principal = %who.name,
                role = who.role,
                method = %method,
                route,
                path = %path,
                status,
                latency_ms,
                request_id,
                forwarded,
                "access"
            )
        };
    }
    if is_write(&method) {
        line!(info);
    } else {
        line!(debug);
    }
    resp
}
