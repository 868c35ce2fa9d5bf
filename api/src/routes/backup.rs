//! `GET /api/v1/backup`: the whole replicated state at one applied index, streamed as a backup
//! file (`cronraft_raft::store::backup`) while the node goes on applying.
//!
//! The point is fixed after a linearizable read barrier, so a backup taken from any node holds
//! every write acknowledged before it was asked for. The pairs are read on a thread of its own
//! (and encoded and hashed on one below normal priority, see
//! `cronraft_raft::store::SnapshotCopy::for_each_pair`) and cross to the response body through
//! a small bounded channel: a slow client slows the scan, it never makes the node buffer the state. A client that
//! goes away drops the body, the scan's next send fails, and the fixed point with its pre-images
//! is released. One backup per node at a time ([`crate::ApiContext::backups`]).
//!
//! A failure half-way (a storage error, an install that replaced the state) ends the body with
//! an error, which cuts the connection: the file then has no valid checksum and no client can
//! take it for a backup.

use std::io::Write;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use cronraft_raft::store::backup::{write_backup, BackupHeader};
use tokio::sync::mpsc;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::context::{now_ms, Consistency, Ctx};
use crate::error::{ApiError, ErrorCode};

/// Bytes per chunk sent to the body.
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks between the scan and the client, at most: the node buffers at most about 1 MiB.
const CHUNKS_IN_FLIGHT: usize = 4;
/// The header naming the backup's applied index.
pub const HEADER_INDEX: &str = "x-cronraft-backup-index";

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(backup))
}

#[utoipa::path(get, path = "/backup", tag = "operations",
    responses(
        (status = 200, description = "A backup file of the whole state at one applied index (see docs/operating/backup.md); \
            `X-Cronraft-Backup-Index` names the index", content_type = "application/octet-stream", body = Vec<u8>),
        crate::openapi::ErrorResponses))]
async fn backup(State(ctx): State<Ctx>) -> Result<Response, ApiError> {
    let permit = ctx.backups.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(ErrorCode::BackupInProgress, "this node is already streaming a backup; retry when it ends")
    })?;
    ctx.read_barrier(Consistency::Linearizable).await?;
    let sm = ctx.sm.clone();
    let copy =
        tokio::task::spawn_blocking(move || sm.fix_point()).await.map_err(|e| ApiError::internal(e.to_string()))??;
    let header = BackupHeader::of(&copy, ctx.node_id, now_ms());
    let index = header.applied_index;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
    std::thread::Builder::new()
        .name("backup".into())
        .spawn(move || {
            let _one_at_a_time = permit;
            let errors = tx.clone();
            match write_backup(copy, header, ChannelWriter { tx, buf: Vec::with_capacity(CHUNK_BYTES) }) {
                Ok(s) => tracing::info!(
                    applied_index = s.header.applied_index,
                    pairs = s.trailer.pairs,
                    bytes = s.bytes,
                    checksum = %s.checksum,
                    "backup streamed"
                ),
                Err(e) => {
                    tracing::warn!(applied_index = index, error = %e, "backup cut short");
                    let _ = errors.blocking_send(Err(std::io::Error::other(e.to_string())));
                }
            }
        })
        .map_err(|e| ApiError::internal(format!("cannot start the backup thread: {e}")))?;
    let body = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
    let mut resp = Response::new(Body::from_stream(body));
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(HEADER_INDEX, HeaderValue::from(index));
    let name = format!("attachment; filename=\"cronraft-{index}.backup\"");
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&name).expect("ASCII"));
    Ok(resp)
}

/// A [`Write`] into the response body's channel, in chunks of [`CHUNK_BYTES`]. Blocks while the
/// channel is full (the client reads slowly); fails once the body is gone (the client left).
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
