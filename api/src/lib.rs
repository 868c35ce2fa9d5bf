//! `cronraft-api`: the REST surface of a cronraft node, and a typed client for it.
//!
//! # Layout
//!
//! - [`router`]: the whole axum app (REST under `/api/v1`, plus `/health`, `/ready`, `/metrics`).
//! - [`context`]: what handlers share; the write path (`propose`) and the read path
//!   (`read_barrier`, ReadIndex for followers).
//! - [`auth`]: who may do what — the caller of a request, the permission table, the check.
//! - [`batcher`]: group commit — concurrent writes share one Raft entry.
//! - [`forward`]: the middleware that sends every write to the leader, with request ids.
//! - [`routes`]: handlers, one module per resource; [`handler`]: what they share (propose and
//!   expect an answer, pagination, the read query); [`views`]: records as the API shows them.
//! - [`validate`], [`extract`], [`error`]: input rules, strict extractors, JSON errors with codes.
//! - [`types`]: the JSON shapes, shared with [`client`].
//! - [`protocol`]: the executor protocol (execute, stop, callback, register); [`signature`]: how
//!   the leader signs `/execute` and `/stop` and an executor checks them.
//! - [`openapi`]: the OpenAPI 3.1 document, generated from the routes, served at
//!   `/api/v1/openapi.json`.
//! - [`secrets`]: secret values in task parameters: hidden from views below `operate`,
//!   unwrapped for executors.
//! - [`metrics`], [`scheduler_metrics`]: Prometheus text; what the API reads of the scheduler.
//! - [`observe`]: request ids, tracing spans, the one log line of an internal error;
//!   [`access`]: the access log.

pub mod access;
pub mod auth;
pub mod batcher;
pub mod client;
pub mod context;
pub mod error;
pub mod extract;
pub mod forward;
pub mod handler;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod protocol;
pub mod routes;
pub mod scheduler_metrics;
pub mod secrets;
pub mod signature;
pub mod types;
pub mod validate;
pub mod views;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;

pub use context::{ApiContext, Ctx};
use error::{ApiError, ErrorCode};

/// Every route of the app with its OpenAPI description (the document is built from this too).
pub fn tree() -> OpenApiRouter<Ctx> {
    let api = OpenApiRouter::new()
        .merge(routes::tasks::router())
        .merge(routes::cluster::router())
        .merge(routes::executions::router())
        .merge(routes::executors::router())
        .merge(routes::callbacks::router())
        .merge(routes::stats::router())
        .merge(routes::ops::api_router())
        .merge(routes::backup::router())
        .merge(routes::tokens::router())
        .merge(routes::notifications::router());
    // Forwarding only on a route and method that exist: anything else is answered 404 or 405
    // here, before its checks (Schemathesis: a POST to a PUT route got 400 for its key).
    let api = api.route_layer(axum::middleware::from_fn(forward::route_writes));
    // Permissions outside forwarding: checked on the node that receives a request, and again on
    // the leader when a follower proxies it there (`auth`).
    OpenApiRouter::new()
        .nest("/api/v1", api)
        .merge(routes::ops::root_router())
        .route_layer(axum::middleware::from_fn(auth::authorize))
}

/// The node's HTTP app.
pub fn router(ctx: Ctx) -> Router {
    let (app, _) = tree().split_for_parts();
    let app = app
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The forwarding middleware (a route layer of the API, see `tree`) finds the context here.
        .layer(axum::Extension(ctx.clone()))
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(extract::BODY_BYTES_MAX))
        .with_state(ctx);
    observe::layer(app)
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint; see docs/reference/api.md")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "this endpoint does not accept that method")
}
