//! Group commit for client writes: requests that arrive while earlier entries are in flight go
//! out together as one `Batch` entry.
//!
//! openraft 0.9 appends one log entry per `client_write` and waits for its fsync before the next
//! append, so without batching the leader does one fsync per write however many clients wait.
//! Here, [`Batcher::submit`] queues the request; one task takes the first queued request, waits
//! for an in-flight slot (at most [`INFLIGHT_MAX`] entries), then takes everything else already
//! queued (up to [`BATCH_REQUESTS_MAX`] requests and [`BATCH_BYTES_MAX`] bytes) into one entry.
//! A lone request goes out as itself. Each request keeps its own request id, so deduplication and
//! retries work exactly as for single writes.

use std::sync::Arc;
use std::time::Duration;

use cronraft_raft::{codec, Command, Raft, Request, Response};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::{ApiError, ErrorCode};

/// Requests waiting to be batched; `submit` waits (backpressure) when full.
const QUEUE_LEN: usize = 4_096;
/// Entries in flight at once (the next batch fills while they replicate).
pub const INFLIGHT_MAX: usize = 4;
/// Most requests in one entry.
pub const BATCH_REQUESTS_MAX: usize = 256;
/// Most encoded bytes in one entry (far below sled's inline-write limit).
pub const BATCH_BYTES_MAX: usize = 512 * 1024;
/// How long one entry may take before its requests are answered with an unknown outcome.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

type Reply = Result<(Response, u64), ApiError>;

struct Pending {
    req: Request,
    /// Encoded size, for the byte bound.
    bytes: usize,
    reply: oneshot::Sender<Reply>,
}

/// The handle: cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Pending>,
}

impl Batcher {
    /// Starts the batching task for `raft` (it ends when every handle is dropped).
    pub fn start(raft: Raft) -> Batcher {
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        tokio::spawn(run(raft, rx));
        Batcher { tx }
    }

    /// Proposes `req` (on this node, which should lead) and waits for its own response.
    pub async fn submit(&self, req: Request) -> Reply {
        let request_id = req.request_id.clone();
        let bytes = codec::encode(&req).map(|b| b.len()).unwrap_or(BATCH_BYTES_MAX);
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Pending { req, bytes, reply }).await.is_err() {
            return Err(ApiError::internal("the write path has stopped"));
        }
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(unknown_outcome(&request_id)),
        }
    }
}

fn unknown_outcome(request_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Timeout,
        format!(
            "the write was proposed but not confirmed within {WRITE_TIMEOUT:?}; its outcome is unknown: \
             retry with the same Idempotency-Key ({request_id})"
        ),
    )
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Pending>) {
    let inflight = Arc::new(Semaphore::new(INFLIGHT_MAX));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = inflight.clone().acquire_owned().await else { return };
        let mut bytes = first.bytes;
        let mut batch = vec![first];
        while batch.len() < BATCH_REQUESTS_MAX && bytes < BATCH_BYTES_MAX {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.bytes;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            write(&raft, batch).await;
            drop(permit);
        });
    }
}

/// Proposes one entry for `batch` and answers every request in it.
async fn write(raft: &Raft, batch: Vec<Pending>) {
    // Requests move into the entry; what stays behind answers them.
    let mut replies = Vec::with_capacity(batch.len());
    let mut requests = Vec::with_capacity(batch.len());
    for p in batch {
        replies.push((p.req.request_id.clone(), p.reply));
        requests.push(p.req);
    }
    let single = requests.len() == 1;
    let req = if single {
        requests.pop().expect("one request")
    } else {
        let now_ms = requests.iter().map(|r| r.now_ms).max().unwrap_or(0);
        Request { request_id: String::new(), now_ms, command: Command::Batch(requests) }
    };
    let result = tokio::time::timeout(WRITE_TIMEOUT, raft.client_write(req)).await;
    let failure = match result {
        Ok(Ok(resp)) => {
            let index = resp.log_id.index;
            match (single, resp.data) {
                (true, data) => {
                    if let Some((_, reply)) = replies.into_iter().next() {
                        let _ = reply.send(Ok((data, index)));
                    }
                }
                (false, Response::Batch(answers)) if answers.len() == replies.len() => {
                    for ((_, reply), answer) in replies.into_iter().zip(answers) {
                        let _ = reply.send(Ok((answer, index)));
                    }
                }
                (false, other) => {
                    let msg = format!("a batch entry was answered with {other:?}");
                    for (_, reply) in replies {
                        let _ = reply.send(Err(ApiError::internal(msg.clone())));
                    }
                }
            }
            return;
        }
        Err(_) => None,
        // Not proof of no effect: the dedupe table makes the forwarded retry safe.
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Some(ApiError::leadership_lost()),
        Ok(Err(RaftError::APIError(e))) => Some(ApiError::internal(e.to_string())),
        Ok(Err(RaftError::Fatal(f))) => Some(ApiError::internal(format!("raft stopped: {f}"))),
    };
    for (request_id, reply) in replies {
        let err = failure.clone().unwrap_or_else(|| unknown_outcome(&request_id));
        let _ = reply.send(Err(err));
    }
}
