//! `cronraft-ui`: the web console every node serves on its API port, at `/` (the REST API stays
//! under `/api/v1`).
//!
//! # Why it looks this way
//!
//! The console has no business logic of its own. Every page reads, and every form writes,
//! through the node's own REST router called in-process ([`backend::Backend`]), with the
//! signed-in token as its `Authorization` header: the same permission table, validation,
//! forwarding to the leader, consistency levels and error codes as `curl` gets. What the console
//! adds is HTML (maud, server-rendered, readable without JavaScript), a session cookie holding
//! the token ([`session`]), CSRF protection on every form, and small SVG charts drawn here
//! ([`chart`]).
//!
//! # Layout
//!
//! - [`session`]: who is looking ([`session::Viewer`]), the cookie, login and logout, CSRF.
//! - [`backend`]: the in-process REST client; [`error`]: what a page shows when a call fails.
//! - [`layout`]: the page shell (header, navigation, the rendering node's banner);
//!   [`widgets`]: times, status badges, pagers, field rows; [`chart`]: SVG charts.
//! - `pages`: one module per page group (overview, tasks, task form, task detail, executions,
//!   executors, notifications, cluster).
//! - `static/`: `app.css` and `app.js`, compiled into the binary (no CDN, no npm step).

pub mod backend;
pub mod chart;
pub mod error;
pub mod layout;
pub mod session;
pub mod widgets;

mod assets;
mod pages;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use cronraft_api::Ctx;

use backend::Backend;

/// Largest form body the console reads (a task form with its parameters is a few KiB; the API's
/// own parameter limit is checked by the API).
pub const FORM_BYTES_MAX: usize = 256 * 1024;

/// What every page handler shares.
pub struct Console {
    /// The node's API context: the caller lookup (`auth::identify`) and this node's Raft
    /// metrics for the banner. Never used to read or write state directly.
    pub ctx: Ctx,
    /// The REST router, called in-process.
    pub backend: Backend,
    /// Whether the API listener serves TLS: session cookies are then `Secure`.
    pub tls: bool,
}

/// Shared console state for the handlers.
pub type ConsoleRef = Arc<Console>;

/// The console's routes, to be merged with the API router (which keeps its own fallback).
pub fn router(ctx: Ctx, api: Router, tls: bool) -> Router {
    let console = Arc::new(Console { ctx, backend: Backend::new(api), tls });
    Router::new()
        .route("/", get(pages::overview::page))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/tasks", get(pages::tasks::list))
        .route("/tasks/new", get(pages::task_form::new_page).post(pages::task_form::create))
        .route("/tasks/{id}", get(pages::task_detail::page))
        .route("/tasks/{id}/edit", get(pages::task_form::edit_page).post(pages::task_form::update))
        .route("/tasks/{id}/pause", post(pages::task_detail::pause))
        .route("/tasks/{id}/resume", post(pages::task_detail::resume))
        .route("/tasks/{id}/trigger", get(pages::task_detail::trigger_page).post(pages::task_detail::trigger))
        .route("/tasks/{id}/delete", get(pages::task_detail::delete_page).post(pages::task_detail::delete))
        .route("/ui/preview", get(pages::task_form::preview))
        .route("/executions", get(pages::executions::list))
        .route("/executions/{id}", get(pages::executions::page))
        .route("/executions/{id}/stop", post(pages::executions::stop))
        .route("/executors", get(pages::executors::list))
        .route("/executors/{id}/status", post(pages::executors::set_status))
        .route("/executors/{id}/remove", get(pages::executors::remove_page).post(pages::executors::remove))
        .route("/notifications", get(pages::notifications::page))
        .route("/notifications/channels", post(pages::notifications::create_channel))
        .route("/notifications/channels/{name}/delete", post(pages::notifications::delete_channel))
        .route("/notifications/rules", post(pages::notifications::create_rule))
        .route("/notifications/rules/{id}/delete", post(pages::notifications::delete_rule))
        .route("/cluster", get(pages::cluster::page))
        .route("/cluster/nodes", post(pages::cluster::add))
        .route("/cluster/nodes/{id}/promote", post(pages::cluster::promote))
        .route("/cluster/nodes/{id}/remove", get(pages::cluster::remove_page).post(pages::cluster::remove))
        .route("/static/app.css", get(assets::css))
        .route("/static/app.js", get(assets::js))
        .layer(DefaultBodyLimit::max(FORM_BYTES_MAX))
        .layer(axum::middleware::from_fn(server_timing))
        .with_state(console)
}

/// Adds `Server-Timing: render;dur=<ms>` to every answer: the handler's whole time on this node
/// (the render benchmark reads it).
async fn server_timing(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let mut resp = next.run(req).await;
    let ms = started.elapsed().as_secs_f64() * 1_000.0;
    if let Ok(v) = HeaderValue::from_str(&format!("render;dur={ms:.2}")) {
        resp.headers_mut().insert("server-timing", v);
    }
    resp
}
