//! The layers every request of the REST app passes: a request id, a tracing span, one log line per
//! internal error, a JSON answer for a panic and for a too-long URI.
//!
//! From the outside in ([`layer`]):
//!
//! 1. `x-request-id`: the client's, or a new UUID ([`SetRequestIdLayer`]); echoed on the answer
//!    ([`PropagateRequestIdLayer`]). A follower proxying a write sends the header on, so the
//!    leader's log line and the client's answer carry the same id.
//! 2. A span per request ([`TraceLayer`]) with method, route (the matched pattern, so ids do not
//!    explode the cardinality), request id; the answer's status and latency are logged at DEBUG,
//!    so the hot path stays quiet at the default INFO level. A write the forwarding middleware
//!    routes gets its span's `request_id` from there: its `Idempotency-Key`, the id it carries
//!    to the leader and into the log entry, rather than the hop's `x-request-id`.
//! 3. The access log ([`crate::access`]): a line per request, INFO for writes.
//! 4. [`log_internal`]: a 500 carries its text in [`InternalDetail`]; this logs it once at ERROR
//!    with the request id and rewrites the message to name the id (the body never has the text).
//! 5. A panicking handler becomes a 500 `internal` ([`CatchPanicLayer`]) instead of a closed
//!    connection.
//! 6. [`limit_uri`]: a target over [`URI_BYTES_MAX`] is a JSON 414 `uri_too_long`. (Past 65,534
//!    bytes hyper's parser answers an empty 414 itself before any of this runs: hyper 1.x has no
//!    hook to shape the answers to its own parse errors.)

use std::any::Any;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, OriginalUri, Request};
use axum::http::{header, HeaderName, Response};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::{Level, Span};

use crate::error::{ApiError, ErrorCode, InternalDetail};
use crate::types::{ErrorBody, ErrorDetail};

/// The request id header (set on every request, echoed on every answer).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest request target (path and query) the router serves; the limit common proxies use.
pub const URI_BYTES_MAX: usize = 8 * 1024;

/// Wraps `app` in the layers above.
pub fn layer(app: Router) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request| {
            let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
            let id = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            let path = req.extensions().get::<OriginalUri>().map_or(req.uri().path(), |u| u.0.path());
            let span = tracing::info_span!(
                "request",
                method = %req.method(),
                route = route.as_deref().unwrap_or("(unmatched)"),
                request_id = tracing::field::Empty,
            );
            if !crate::forward::routes_write(req.method(), path) {
                span.record("request_id", id);
            }
            span
        })
        .on_request(())
        .on_response(|resp: &Response<Body>, latency: Duration, _span: &Span| {
            tracing::debug!(status = resp.status().as_u16(), latency_us = latency.as_micros() as u64, "answered");
        })
        .on_failure(tower_http::trace::DefaultOnFailure::new().level(Level::DEBUG));
    app.layer(axum::middleware::from_fn(limit_uri)).layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(request_id))
            .layer(trace)
            .layer(axum::middleware::from_fn(crate::access::log))
            .layer(axum::middleware::from_fn(log_internal))
            .layer(CatchPanicLayer::custom(panic_answer)),
    )
}

/// Answers a target longer than [`URI_BYTES_MAX`] with 414 before any handler runs.
async fn limit_uri(req: Request, next: Next) -> axum::response::Response {
    let len = req.uri().path_and_query().map(|p| p.as_str().len()).unwrap_or(0);
    if len > URI_BYTES_MAX {
        let msg = format!("the request target is {len} bytes; at most {URI_BYTES_MAX}");
        return ApiError::new(ErrorCode::UriTooLong, msg).into_response();
    }
    next.run(req).await
}

/// Logs an internal error once, with the request id, and names the id in the answer.
pub async fn log_internal(req: Request, next: Next) -> axum::response::Response {
    let id = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let mut resp = next.run(req).await;
    let Some(InternalDetail(detail)) = resp.extensions_mut().remove::<InternalDetail>() else {
        return resp;
    };
    tracing::error!(request_id = %id, %method, %path, error = %detail, "internal error");
    let message = format!("internal error (request id {id})");
    let body = ErrorBody { error: ErrorDetail { code: ErrorCode::Internal.as_str().into(), message } };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    *resp.body_mut() = Body::from(bytes);
    resp
}

/// The answer to a panicking handler: a 500 whose text (the panic's message) is logged by
/// [`log_internal`].
fn panic_answer(panic: Box<dyn Any + Send + 'static>) -> axum::response::Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    ApiError::internal(format!("handler panicked: {what}")).into_response()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// Collects what the logging layer writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn call(app: Router, path: &str, request_id: &str) -> (u16, String, String) {
        let req = Request::builder().uri(path).header(REQUEST_ID_HEADER, request_id).body(Body::empty()).unwrap();
        let resp = layer(app).oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let id = resp.headers().get(REQUEST_ID_HEADER).unwrap().to_str().unwrap().to_owned();
        let body = axum::body::to_bytes(resp.into_body(), 64 * 1024).await.unwrap();
        (status, id, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn an_internal_error_is_logged_once_with_the_request_id_and_never_answered() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = Router::new()
            .route("/broken", get(|| async { ApiError::internal("storage: /var/lib/secret corrupt") }))
            .route("/panics", get(|| async { panic!("unreachable state 7") as &'static str }));

        let (status, id, body) = call(app.clone(), "/broken", "req-1").await;
        assert_eq!((status, id.as_str()), (500, "req-1"));
        let parsed: ErrorBody = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed.error.code, "internal");
        assert_eq!(parsed.error.message, "internal error (request id req-1)");
        assert!(!body.contains("secret"), "the internal text stays out of the answer: {body}");

        let (status, _, body) = call(app, "/panics", "req-2").await;
        assert_eq!(status, 500);
        assert!(body.contains("\"internal\"") && body.contains("req-2") && !body.contains("state 7"), "{body}");

        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(log.matches("/var/lib/secret").count(), 1, "logged once: {log}");
        assert!(log.lines().any(|l| l.contains("req-1") && l.contains("secret")), "{log}");
        assert!(log.lines().any(|l| l.contains("req-2") && l.contains("unreachable state 7")), "{log}");
    }

    #[tokio::test]
    async fn a_target_over_the_limit_is_a_json_414() {
        let app = Router::new().route("/x", get(|| async { "ok" }));
        let (status, _, body) = call(app.clone(), &format!("/x?q={}", "a".repeat(URI_BYTES_MAX)), "r").await;
        assert_eq!(status, 414);
        assert!(body.contains("uri_too_long"), "{body}");
        assert_eq!(call(app, "/x?q=short", "r").await.0, 200);
    }
}
