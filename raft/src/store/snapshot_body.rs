//! The body of a snapshot (openraft's `SnapshotData`): bytes that are copied out of the state
//! machine only when someone reads them.
//!
//! Why deferred. The state machine is durable in sled, so openraft's periodic "build a snapshot"
//! needs no copy: it only marks a point behind which the log may be purged. A copy of the whole
//! state is needed only when the leader sends a snapshot to a follower that is too far behind, or
//! when a test installs one elsewhere. Copying at every build cost seconds of CPU, memory and disk
//! on all three nodes at once, and that was the tail of the sustained benchmark (see
//! `docs/decisions.md`, "Snapshots are copied only when sent").
//!
//! So a body starts as a [`SnapshotCopy`] that has fixed its point and records pre-images, and
//! the first read or seek runs the copy on a thread of its own. Openraft's chunked sender begins
//! with a seek to the end (to learn the size), so a send waits for the copy in its own task, not
//! on the state-machine worker. A received body is plain bytes from the start.

use std::future::Future;
use std::io::{Cursor, SeekFrom};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use super::state_machine::SnapshotCopy;
use crate::error::StoreError;

/// A snapshot's bytes, copied on first use (see the module docs).
pub struct SnapshotBody {
    state: BodyState,
    /// A seek asked for before the bytes existed; applied once they do.
    seek: Option<SeekFrom>,
}

enum BodyState {
    /// The point is fixed and pre-images are recorded; nothing is copied yet.
    Deferred(SnapshotCopy),
    /// The copy runs on its own thread and answers here.
    Copying(oneshot::Receiver<Result<Vec<u8>, StoreError>>),
    /// The bytes: copied, or received from a leader.
    Ready(Cursor<Vec<u8>>),
    /// The copy failed; every later read fails the same way.
    Failed(String),
}

impl SnapshotBody {
    /// An empty body for a snapshot that is about to be received.
    pub fn empty() -> Self {
        Self::from_bytes(Vec::new())
    }

    /// A body holding these bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        SnapshotBody { state: BodyState::Ready(Cursor::new(bytes)), seek: None }
    }

    /// A body whose bytes are `copy`, made on first use.
    pub(super) fn deferred(copy: SnapshotCopy) -> Self {
        SnapshotBody { state: BodyState::Deferred(copy), seek: None }
    }

    /// The whole body, copying it on this thread if that has not happened yet. Blocks: call it
    /// from a blocking context (snapshot install runs on the blocking pool).
    pub fn into_bytes(self) -> Result<Vec<u8>, StoreError> {
        match self.state {
            BodyState::Deferred(copy) => copy.run(),
            BodyState::Copying(rx) => rx.blocking_recv().map_err(|_| copy_thread_died())?,
            BodyState::Ready(cursor) => Ok(cursor.into_inner()),
            BodyState::Failed(why) => Err(StoreError::Io(std::io::Error::other(why))),
        }
    }

    /// Drives the copy until the bytes exist.
    fn poll_bytes(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<&mut Cursor<Vec<u8>>>> {
        loop {
            match &mut self.state {
                BodyState::Deferred(_) => {
                    let BodyState::Deferred(copy) =
                        std::mem::replace(&mut self.state, BodyState::Failed(String::new()))
                    else {
                        unreachable!("matched Deferred above")
                    };
                    self.state = match copy.spawn() {
                        Ok(rx) => BodyState::Copying(rx),
                        Err(e) => BodyState::Failed(format!("start the snapshot copy: {e}")),
                    };
                }
                BodyState::Copying(rx) => {
                    self.state = match ready!(Pin::new(rx).poll(cx)) {
                        Ok(Ok(bytes)) => BodyState::Ready(Cursor::new(bytes)),
                        Ok(Err(e)) => BodyState::Failed(format!("snapshot copy: {e}")),
                        Err(_) => BodyState::Failed(copy_thread_died().to_string()),
                    };
                }
                BodyState::Ready(_) => break,
                BodyState::Failed(why) => return Poll::Ready(Err(std::io::Error::other(why.clone()))),
            }
        }
        let BodyState::Ready(cursor) = &mut self.state else { unreachable!("the loop breaks only on Ready") };
        if let Some(pos) = self.seek.take() {
            Pin::new(&mut *cursor).start_seek(pos)?;
        }
        Poll::Ready(Ok(cursor))
    }
}

fn copy_thread_died() -> StoreError {
    StoreError::Io(std::io::Error::other("the snapshot copy thread ended without an answer"))
}

impl AsyncRead for SnapshotBody {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let cursor = ready!(self.poll_bytes(cx))?;
        Pin::new(cursor).poll_read(cx, buf)
    }
}

impl AsyncSeek for SnapshotBody {
    fn start_seek(mut self: Pin<&mut Self>, position: SeekFrom) -> std::io::Result<()> {
        match &mut self.state {
            BodyState::Ready(cursor) => Pin::new(cursor).start_seek(position),
            _ => {
                self.seek = Some(position);
                Ok(())
            }
        }
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        let cursor = ready!(self.poll_bytes(cx))?;
        Pin::new(cursor).poll_complete(cx)
    }
}

impl AsyncWrite for SnapshotBody {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let cursor = ready!(self.poll_bytes(cx))?;
        Pin::new(cursor).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
