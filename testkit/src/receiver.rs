//! The recording alert receiver: an HTTP server in the harness process that stands in for a
//! webhook, Slack, Mattermost or Alertmanager endpoint, records every delivery it is sent
//! (headers and body), and can refuse (answer 503) or go down (stop listening) and come back
//! on the same port.
//!
//! It accepts `POST` on any path and answers 200 while accepting. A refused or missed delivery
//! is still recorded in [`Receiver::attempts`], so a test can tell "sent and refused" from
//! "never sent".

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio::sync::oneshot;

use crate::KitError;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct Record {
    accepted: Mutex<Vec<Delivery>>,
    attempts: Mutex<Vec<Delivery>>,
    refusing: AtomicBool,
}

/// A loopback receiver; dropped, it stops.
pub struct Receiver {
    pub url: String,
    addr: SocketAddr,
    record: Arc<Record>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Receiver {
    /// Binds `127.0.0.1:0` and accepts everything.
    pub async fn start() -> Result<Receiver, KitError> {
        let bind = |source| KitError::Bind { addr: "127.0.0.1:0".into(), source };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let record = Arc::new(Record::default());
        let stop = serve(&record, listener);
        Ok(Receiver { url: format!("http://{addr}"), addr, record, stop: Mutex::new(Some(stop)) })
    }

    /// Deliveries answered 200, in arrival order.
    pub fn accepted(&self) -> Vec<Delivery> {
        self.record.accepted.lock().expect("receiver lock").clone()
    }

    /// Every request that arrived, refused ones included.
    pub fn attempts(&self) -> Vec<Delivery> {
        self.record.attempts.lock().expect("receiver lock").clone()
    }

    /// Answer 503 (on) or 200 (off).
    pub fn set_refusing(&self, on: bool) {
        self.record.refusing.store(on, Ordering::SeqCst);
    }

    /// Stops listening: new connections are refused.
    pub fn down(&self) {
        if let Some(tx) = self.stop.lock().expect("receiver lock").take() {
            let _ = tx.send(());
        }
    }

    /// Heals [`Receiver::down`] on the same port (retrying while the old socket closes).
    pub async fn up(&self) -> Result<(), KitError> {
        if self.stop.lock().expect("receiver lock").is_some() {
            return Ok(());
        }
        let mut last = None;
        for _ in 0..50 {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => {
                    *self.stop.lock().expect("receiver lock") = Some(serve(&self.record, l));
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(KitError::Bind { addr: self.addr.to_string(), source: last.expect("an error") })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

fn serve(record: &Arc<Record>, listener: tokio::net::TcpListener) -> oneshot::Sender<()> {
    let app = Router::new().route("/", post(receive)).route("/{*path}", post(receive)).with_state(record.clone());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    tx
}

async fn receive(
    State(record): State<Arc<Record>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let headers = headers
        .iter()
        .map(|(n, v)| (n.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let delivery = Delivery { path: uri.path().to_string(), headers, body: body.to_vec() };
    record.attempts.lock().expect("receiver lock").push(delivery.clone());
    if record.refusing.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    record.accepted.lock().expect("receiver lock").push(delivery);
    StatusCode::OK
}
