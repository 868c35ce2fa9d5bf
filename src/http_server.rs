//! Serving an axum router on a bound listener until a stop signal: one function for the node's
//! two listeners (REST and Raft RPC) and the agent's, so they shut down and set their sockets
//! up the same way.

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Serves `app` on `listener` until `signal` turns true; `what` names the server in its log.
///
/// Accepted connections get `TCP_NODELAY`: an answer goes out at once instead of waiting, when
/// it is written in two parts, for the peer's delayed ACK.
pub fn serve(
    listener: TcpListener,
    app: axum::Router,
    mut signal: watch::Receiver<bool>,
    what: &'static str,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let stop = async move {
            let _ = signal.wait_for(|stop| *stop).await;
        };
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::warn!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
            }
        });
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
            tracing::error!(error = %e, server = what, "http server failed");
        }
    })
}
