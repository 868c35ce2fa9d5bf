//! The one place where every listener is built: the node's REST API and Raft RPC listeners and
//! the agent's all go through [`serve`], so they share one hardening and one shutdown.
//!
//! A listener is a plain accept loop over hyper's HTTP/1 connection (what `axum::serve` does,
//! plus limits it does not have), each bounded by its [`ListenerLimits`]:
//!
//! - **Connections**: at most `connections_max` at once. One more is accepted and closed at once,
//!   never left queued in the kernel's backlog, so a flood cannot stall the accept loop.
//! - **Header read**: a new connection whose first request head is not complete within
//!   `header_read_timeout_ms` is closed (one that never sends anything, a slow-loris head).
//! - **Keep-alive**: hyper drops a kept-alive connection whose next request head is not complete
//!   within `keepalive_timeout_ms` of the previous answer. Longer than the 90 s for which the
//!   common HTTP clients (reqwest, hyper, Go) keep an idle connection, so the client closes it
//!   first: a server that closes first races the client's next request on that connection,
//!   which then fails with "connection reset" (found by the 600 s benchmark, whose status poll
//!   every 10 s met a 10 s header timeout used for both).
//! - **Stalls**: a connection that moves no byte either way for `idle_timeout_ms` is closed (a
//!   client that stops reading its answer, or stops sending its body). Longer than the request
//!   timeout and the keep-alive, so a handler still working or a connection hyper still
//!   waits on is never cut by it.
//! - **Requests in flight**: at most `requests_inflight_max` handlers run at once per listener;
//!   one more is answered at once with 503 `overloaded` (the API's JSON error), never queued.
//! - **Request time**: a handler that has not answered within `request_timeout_ms` is dropped
//!   and answered 503 `request_timeout`. Above every internal wait (forwarded writes give up at
//!   12 s, membership changes at 10 s, reads at 3 s + 3 s), so it only cuts what is stuck.
//!
//! The limits cost no task hop and no allocation per request: the in-flight cap is a semaphore
//! `try_acquire`, the timeout a timer inside the request's own future, and the stall watch a
//! counter bumped on each read or write, looked at by one timer per connection.
//!
//! Accepted sockets get `TCP_NODELAY`: an answer goes out at once instead of waiting, when it is
//! written in two parts, for the peer's delayed ACK. On the stop signal the loop stops accepting,
//! every connection finishes its in-flight request and closes, and [`serve`]'s task ends when
//! the last one has.
//!
//! **TLS**: a listener given a [`TlsAcceptor`] runs the handshake in [`serve_connection`], over
//! the watched stream (so a stalled handshake is a stalled connection) and inside the same
//! deadline as the first request head: `header_read_timeout_ms` from the accept bounds the
//! handshake and the first head together, and the connection holds its `connections_max` permit
//! throughout. A client that fails the handshake (plain HTTP, no or a wrong client certificate)
//! is closed without an answer; one line per 10 s per listener says why.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use cronraft_api::error::ApiError;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower::Service as _;

/// The limits of one listener. Each kind has its defaults ([`ListenerLimits::API`],
/// [`ListenerLimits::RAFT`], [`ListenerLimits::AGENT`]); `[listeners.api|raft|agent]` in the
/// config file overrides them field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// A new connection's first request head must be complete within this, or the connection
    /// is closed.
    pub header_read_timeout_ms: u64,
    /// A kept-alive connection's next request head must be complete within this of the previous
    /// answer, or the connection is closed. Above clients' own idle limit (90 s), so they close
    /// first.
    pub keepalive_timeout_ms: u64,
    /// A connection moving no byte either way for this long is closed.
    pub idle_timeout_ms: u64,
    /// Most open connections; more are closed as soon as they are accepted.
    pub connections_max: u32,
    /// Most requests being handled at once; more get 503 `overloaded` at once.
    pub requests_inflight_max: u32,
    /// Longest a handler may take before it is dropped and 503 `request_timeout` is answered.
    pub request_timeout_ms: u64,
}

impl ListenerLimits {
    /// The REST API: clients, forwarded writes from other nodes, agents' reports.
    pub const API: ListenerLimits = ListenerLimits {
        header_read_timeout_ms: 10_000,
        keepalive_timeout_ms: 120_000,
        idle_timeout_ms: 150_000,
        connections_max: 2_048,
        requests_inflight_max: 1_024,
        request_timeout_ms: 30_000,
    };
    /// Raft RPC: a few connections per peer; a snapshot install may take long to apply.
    pub const RAFT: ListenerLimits = ListenerLimits {
        header_read_timeout_ms: 10_000,
        keepalive_timeout_ms: 120_000,
        idle_timeout_ms: 180_000,
        connections_max: 256,
        requests_inflight_max: 256,
        request_timeout_ms: 60_000,
    };
    /// An agent: the leader keeps up to 512 `/execute` calls in flight to one executor.
    pub const AGENT: ListenerLimits = ListenerLimits {
        header_read_timeout_ms: 10_000,
        keepalive_timeout_ms: 120_000,
        idle_timeout_ms: 150_000,
        connections_max: 1_024,
        requests_inflight_max: 1_024,
        request_timeout_ms: 30_000,
    };

    /// Explains the first value that cannot work.
    pub fn check(&self) -> Result<(), String> {
        let l = self;
        if l.header_read_timeout_ms == 0 || l.request_timeout_ms == 0 || l.connections_max == 0 {
            return Err("header_read_timeout_ms, request_timeout_ms and connections_max must be above 0".into());
        }
        if l.requests_inflight_max == 0 || l.requests_inflight_max as usize > Semaphore::MAX_PERMITS {
            return Err("requests_inflight_max must be at least 1".into());
        }
        if l.keepalive_timeout_ms < l.header_read_timeout_ms {
            return Err(format!(
                "keepalive_timeout_ms ({}) must be at least header_read_timeout_ms ({})",
                l.keepalive_timeout_ms, l.header_read_timeout_ms
            ));
        }
        // The stall watch must never cut a handler still within its time, nor a connection
        // hyper is still giving its keep-alive time.
        if l.idle_timeout_ms <= l.request_timeout_ms || l.idle_timeout_ms <= l.keepalive_timeout_ms {
            return Err(format!(
                "idle_timeout_ms ({}) must be greater than request_timeout_ms ({}) and keepalive_timeout_ms ({})",
                l.idle_timeout_ms, l.request_timeout_ms, l.keepalive_timeout_ms
            ));
        }
        Ok(())
    }
}

/// What every connection of one listener shares.
struct Shared {
    what: &'static str,
    limits: ListenerLimits,
    http: http1::Builder,
    /// One permit per request being handled.
    inflight: Arc<Semaphore>,
    /// When a refusal was last logged (ms since the Unix epoch): at most one line per 10 s.
    warned_ms: AtomicI64,
    /// Wraps every accepted connection when the listener serves TLS.
    tls: Option<TlsAcceptor>,
    /// When a failed TLS handshake was last logged: at most one line per 10 s.
    tls_warned_ms: AtomicI64,
}

impl Shared {
    /// Logs a refusal, at most once per 10 s per listener (a flood must not flood the log).
    fn warn_refused(&self, reason: &'static str) {
        if once_per_10s(&self.warned_ms) {
            tracing::warn!(server = self.what, reason, limits = ?self.limits, "refusing work beyond the listener's limits");
        }
    }

    /// Logs a failed TLS handshake, at most once per 10 s per listener (scanners and plain-HTTP
    /// clients must not flood the log; the rest go to debug).
    fn note_handshake_failed(&self, error: &str) {
        if once_per_10s(&self.tls_warned_ms) {
            tracing::info!(
                server = self.what,
                error,
                "TLS handshake failed (plain HTTP, or a missing or untrusted certificate?)"
            );
        } else {
            tracing::debug!(server = self.what, error, "TLS handshake failed");
        }
    }
}

/// Whether 10 s have passed since the time in `last_ms`, which it then moves to now.
fn once_per_10s(last_ms: &AtomicI64) -> bool {
    let now = chrono::Utc::now().timestamp_millis();
    let last = last_ms.load(Ordering::Relaxed);
    now - last >= 10_000 && last_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
}

/// Serves `app` on `listener` within `limits` until `signal` turns true, over TLS when `tls` is
/// given; `what` names the server in its log. The task ends once every connection has drained.
pub fn serve(
    listener: TcpListener,
    app: axum::Router,
    signal: watch::Receiver<bool>,
    what: &'static str,
    limits: ListenerLimits,
    tls: Option<TlsAcceptor>,
) -> JoinHandle<()> {
    let mut http = http1::Builder::new();
    // hyper's one head timer covers every head; the first one's shorter limit is ours
    // (`serve_connection`).
    http.timer(TokioTimer::new()).header_read_timeout(Duration::from_millis(limits.keepalive_timeout_ms));
    let inflight = Arc::new(Semaphore::new(limits.requests_inflight_max as usize));
    let (warned_ms, tls_warned_ms) = (AtomicI64::new(0), AtomicI64::new(0));
    let shared = Arc::new(Shared { what, limits, http, inflight, warned_ms, tls, tls_warned_ms });
    tokio::spawn(accept_loop(listener, app, signal, shared))
}

async fn accept_loop(listener: TcpListener, app: axum::Router, mut signal: watch::Receiver<bool>, shared: Arc<Shared>) {
    let connections_max = shared.limits.connections_max;
    let connections = Arc::new(Semaphore::new(connections_max as usize));
    loop {
        let tcp = tokio::select! {
            _ = stopped(&mut signal) => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of descriptors, most likely: give closing connections a moment.
                    tracing::warn!(server = shared.what, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            shared.warn_refused("connections_max");
            drop(tcp);
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
        }
        let service = Guarded { app: app.clone(), shared: shared.clone(), served: Arc::new(AtomicBool::new(false)) };
        tokio::spawn(serve_connection(tcp, service, signal.clone(), permit));
    }
    drop(listener);
    // Every connection holds a permit until it has closed.
    let _ = connections.acquire_many(connections_max).await;
}

/// Resolves once the stop signal is true (or its sender is gone).
async fn stopped(signal: &mut watch::Receiver<bool>) {
    let _ = signal.wait_for(|stop| *stop).await;
}

/// One connection, from the accepted socket to its close. `_permit` counts it against
/// `connections_max` until it ends, TLS handshake included.
async fn serve_connection(
    tcp: TcpStream,
    service: Guarded,
    mut signal: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let shared = service.shared.clone();
    let progress = Arc::new(AtomicU64::new(0));
    // The handshake and the first request head share one deadline, from the accept.
    let first_head = tokio::time::Instant::now() + Duration::from_millis(shared.limits.header_read_timeout_ms);
    let watched = Watched { inner: tcp, progress: progress.clone() };
    let Some(acceptor) = &shared.tls else {
        return drive(TokioIo::new(watched), service, signal, progress, first_head).await;
    };
    let accepted = tokio::select! {
        r = tokio::time::timeout_at(first_head, acceptor.accept(watched)) => r,
        // A handshake still going on at shutdown is dropped: there is no request to finish.
        _ = stopped(&mut signal) => return,
    };
    match accepted {
        Ok(Ok(stream)) => drive(TokioIo::new(stream), service, signal, progress, first_head).await,
        Ok(Err(e)) => shared.note_handshake_failed(&e.to_string()),
        Err(_) => tracing::debug!(server = shared.what, "closing a connection whose TLS handshake is late"),
    }
}

/// Serves HTTP/1 on one (plain or TLS) connection until it ends, closing it when its first
/// request head is not complete by `first_head`, when it stalls, or after draining on the stop
/// signal.
async fn drive<I>(
    io: TokioIo<I>,
    service: Guarded,
    mut signal: watch::Receiver<bool>,
    progress: Arc<AtomicU64>,
    first_head: tokio::time::Instant,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (shared, served) = (service.shared.clone(), service.served.clone());
    let conn = shared.http.serve_connection(io, service);
    tokio::pin!(conn);
    let half_idle = Duration::from_millis(shared.limits.idle_timeout_ms / 2).max(Duration::from_millis(1));
    let mut watch = tokio::time::interval_at(tokio::time::Instant::now() + half_idle, half_idle);
    let (mut seen, mut quiet) = (0, 0);
    let mut draining = false;
    let first_head = tokio::time::sleep_until(first_head);
    tokio::pin!(first_head);
    let mut first_head_checked = false;
    loop {
        tokio::select! {
            // The connection first: the other two branches are rare events.
            biased;
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(server = shared.what, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stopped(&mut signal), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = &mut first_head, if !first_head_checked => {
                first_head_checked = true;
                if !served.load(Ordering::Relaxed) {
                    tracing::debug!(server = shared.what, "closing a connection whose first request head is late");
                    return;
                }
            }
            _ = watch.tick() => {
                let now = progress.load(Ordering::Relaxed);
                quiet = if now == seen { quiet + 1 } else { 0 };
                seen = now;
                // Two quiet ticks: nothing moved for at least `idle_timeout_ms`.
                if quiet >= 2 {
                    tracing::debug!(server = shared.what, "closing a stalled connection");
                    return;
                }
            }
        }
    }
}

/// The app behind the in-flight cap and the request timeout, for one connection.
#[derive(Clone)]
struct Guarded {
    app: axum::Router,
    shared: Arc<Shared>,
    /// Set when the connection's first request head is complete (hyper calls the service):
    /// the first-head deadline in [`serve_connection`] reads it.
    served: Arc<AtomicBool>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Guarded {
    type Response = Response;
    type Error = Infallible;
    type Future = GuardedFuture;

    fn call(&self, req: hyper::Request<Incoming>) -> GuardedFuture {
        self.served.store(true, Ordering::Relaxed);
        let Ok(permit) = self.shared.inflight.clone().try_acquire_owned() else {
            self.shared.warn_refused("requests_inflight_max");
            return GuardedFuture::Rejected { response: Some(ApiError::overloaded().into_response()) };
        };
        let limit_ms = self.shared.limits.request_timeout_ms;
        // `Router` is always ready; cloning it is one reference count, as in `axum::serve`.
        let handler = self.app.clone().call(req.map(axum::body::Body::new));
        let handler = tokio::time::timeout(Duration::from_millis(limit_ms), handler);
        GuardedFuture::Running { handler, _permit: permit, limit_ms }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer: at once when over the cap, else the handler's within the timeout.
    #[project = GuardedProj]
    enum GuardedFuture {
        Rejected { response: Option<Response> },
        Running {
            #[pin]
            handler: tokio::time::Timeout<RouteFuture<Infallible>>,
            // Released when hyper drops this future, once the handler has answered.
            _permit: OwnedSemaphorePermit,
            limit_ms: u64,
        },
    }
}

impl Future for GuardedFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GuardedProj::Rejected { response } => Poll::Ready(Ok(response.take().expect("polled after completion"))),
            GuardedProj::Running { handler, limit_ms, .. } => match ready!(handler.poll(cx)) {
                Ok(answer) => Poll::Ready(answer),
                Err(_elapsed) => Poll::Ready(Ok(ApiError::request_timeout(*limit_ms).into_response())),
            },
        }
    }
}

/// A stream that counts the reads and writes that moved bytes, for the stall watch.
struct Watched<S> {
    inner: S,
    progress: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        if buf.filled().len() > before {
            self.progress.fetch_add(1, Ordering::Relaxed);
        }
        Poll::Ready(res)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let res = ready!(Pin::new(&mut self.inner).poll_write(cx, buf));
        if matches!(res, Ok(n) if n > 0) {
            self.progress.fetch_add(1, Ordering::Relaxed);
        }
        Poll::Ready(res)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs));
        if matches!(res, Ok(n) if n > 0) {
            self.progress.fetch_add(1, Ordering::Relaxed);
        }
        Poll::Ready(res)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_limits_are_explained() {
        for l in [ListenerLimits::API, ListenerLimits::RAFT, ListenerLimits::AGENT] {
            l.check().unwrap();
            assert!(l.request_timeout_ms >= 30_000, "above every internal wait");
            assert!(l.keepalive_timeout_ms > 90_000, "above clients' 90 s idle limit, so they close first");
        }
        let keepalive_short = ListenerLimits { keepalive_timeout_ms: 1_000, ..ListenerLimits::API };
        assert!(keepalive_short.check().unwrap_err().contains("keepalive_timeout_ms"));
        let idle_short = ListenerLimits { idle_timeout_ms: 5_000, ..ListenerLimits::API };
        assert!(idle_short.check().unwrap_err().contains("idle_timeout_ms"));
        let no_requests = ListenerLimits { requests_inflight_max: 0, ..ListenerLimits::API };
        assert!(no_requests.check().unwrap_err().contains("requests_inflight_max"));
    }
}
