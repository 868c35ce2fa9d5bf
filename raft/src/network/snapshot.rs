//! Receiving a snapshot in chunks, on the network side, with bounds openraft does not have.
//!
//! openraft 0.9's own chunked receive (`Raft::install_snapshot`, `Chunked::receive_snapshot`)
//! keeps one `Streaming` per node and, for any chunk of the current snapshot id, *seeks to the
//! chunk's `offset`* before writing it into the body that `begin_receiving_snapshot` gave it. Our
//! body is an in-memory cursor, so one chunk with `offset` 2^62 would make it grow to 2^62 bytes;
//! nothing caps the total; and a receive that stops half way keeps its buffer until another
//! snapshot id arrives. Its state is private, so the network layer cannot bound or drop it.
//!
//! So the Raft listener receives chunks itself and hands openraft only whole snapshots
//! (`Raft::install_full_snapshot`, the step openraft's chunked receive ends with):
//!
//! * a chunk at `offset` 0 starts a receive (replacing any other); any other chunk must carry the
//!   current receive's snapshot id and an `offset` equal to the bytes received so far, else it is
//!   answered `SnapshotMismatch` expecting that offset, which makes openraft's sender start over
//!   from 0 (`network::snapshot_transport`);
//! * the total is capped at [`SNAPSHOT_BYTES_MAX`] ([`Rejected::TooLarge`], HTTP 413);
//! * a receive with no chunk for [`stall_after`] is dropped and its bytes freed, by a watchdog
//!   task that the receive's first chunk starts.
//!
//! Votes are checked as openraft checks them: a chunk from an older vote is answered with ours
//! and not kept; the final install checks again inside RaftCore.

use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::raft::{InstallSnapshotRequest, InstallSnapshotResponse};
use openraft::{Snapshot, SnapshotSegmentId, Vote};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::codec::DECODE_BYTES_MAX;
use crate::store::SnapshotBody;
use crate::{NodeId, Raft, TypeConfig};

/// The largest snapshot a node receives: 4 GiB, the most [`crate::codec::decode`] accepts.
/// About 25 million execution records at about 160 bytes each; a larger state cannot be sent to
/// a follower (the leader logs HTTP 413 and retries later).
pub const SNAPSHOT_BYTES_MAX: u64 = DECODE_BYTES_MAX as u64;

/// The shortest stall after which a receive is dropped (see [`stall_after`]).
const STALL_MIN: Duration = Duration::from_secs(30);

/// How long a receive may go without a chunk before it is dropped: 30 s, or three times
/// openraft's `install_snapshot_timeout` (the leader's timeout for one chunk) if that is longer.
pub fn stall_after(config: &openraft::Config) -> Duration {
    STALL_MIN.max(Duration::from_millis(config.install_snapshot_timeout.saturating_mul(3)))
}

/// Why a chunk was not accepted, beyond what openraft's error type can say.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// openraft's answer (a mismatch, or a fatal error from the install).
    #[error("{0}")]
    Raft(#[from] RaftError<NodeId, InstallSnapshotError>),
    /// The snapshot would exceed [`SNAPSHOT_BYTES_MAX`]; the receive is dropped.
    #[error("snapshot {id} would exceed {max} bytes at offset {offset}", max = SNAPSHOT_BYTES_MAX)]
    TooLarge {
        /// The snapshot id.
        id: String,
        /// The chunk's offset.
        offset: u64,
    },
}

/// The snapshot being received, if any (one at a time, like openraft's).
pub struct SnapshotReceiver {
    current: Mutex<Option<Receiving>>,
    /// Names each receive, so a watchdog only drops its own.
    seq: std::sync::atomic::AtomicU64,
    stall: Duration,
}

struct Receiving {
    seq: u64,
    id: String,
    bytes: Vec<u8>,
    last_chunk_at: Instant,
}

impl SnapshotReceiver {
    /// A receiver that drops a receive after `stall` without a chunk.
    pub fn new(stall: Duration) -> Arc<Self> {
        Arc::new(SnapshotReceiver { current: Mutex::new(None), seq: Default::default(), stall })
    }

    /// Whether a receive is in progress (its bytes held).
    pub async fn receiving(&self) -> bool {
        self.current.lock().await.is_some()
    }

    /// Takes one chunk; on the last one, installs the whole snapshot through openraft.
    pub async fn receive(
        self: &Arc<Self>,
        raft: &Raft,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<NodeId>, Rejected> {
        let my_vote: Vote<NodeId> =
            raft.with_raft_state(|s| *s.vote_ref()).await.map_err(|f| Rejected::Raft(RaftError::Fatal(f)))?;
        if req.vote < my_vote {
            return Ok(InstallSnapshotResponse { vote: my_vote });
        }
        let InstallSnapshotRequest { vote, meta, offset, data, done } = req;
        let bytes = {
            let mut current = self.current.lock().await;
            if offset == 0 {
                *current = Some(self.start(meta.snapshot_id.clone()));
            }
            let receiving = match current.as_mut() {
                Some(r) if r.id == meta.snapshot_id && r.bytes.len() as u64 == offset => r,
                other => {
                    let expected = other.filter(|r| r.id == meta.snapshot_id).map_or(0, |r| r.bytes.len() as u64);
                    return Err(mismatch(&meta.snapshot_id, expected, offset));
                }
            };
            let total = offset.saturating_add(data.len() as u64);
            if total > SNAPSHOT_BYTES_MAX {
                *current = None;
                return Err(Rejected::TooLarge { id: meta.snapshot_id, offset });
            }
            grow_within(&mut receiving.bytes, data.len(), SNAPSHOT_BYTES_MAX as usize);
            receiving.bytes.extend_from_slice(&data);
            receiving.last_chunk_at = Instant::now();
            if !done {
                return Ok(InstallSnapshotResponse { vote: my_vote });
            }
            current.take().map(|r| r.bytes).unwrap_or_default()
        };
        let snapshot = Snapshot { meta, snapshot: Box::new(SnapshotBody::from_bytes(bytes)) };
        match raft.install_full_snapshot(vote, snapshot).await {
            Ok(resp) => Ok(resp.into()),
            Err(fatal) => Err(Rejected::Raft(RaftError::Fatal(fatal))),
        }
    }

    /// A new receive, and its watchdog.
    fn start(self: &Arc<Self>, id: String) -> Receiving {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(watch(Arc::downgrade(self), seq, self.stall));
        Receiving { seq, id, bytes: Vec::new(), last_chunk_at: Instant::now() }
    }
}

/// Drops receive `seq` once it has had no chunk for `stall`; ends when the receive ends or the
/// receiver is dropped.
async fn watch(receiver: Weak<SnapshotReceiver>, seq: u64, stall: Duration) {
    let mut deadline = Instant::now() + stall;
    loop {
        tokio::time::sleep_until(deadline).await;
        let Some(receiver) = receiver.upgrade() else { return };
        let mut current = receiver.current.lock().await;
        let Some(r) = current.as_ref().filter(|r| r.seq == seq) else { return };
        if r.last_chunk_at.elapsed() >= stall {
            tracing::warn!(snapshot_id = %r.id, bytes = r.bytes.len(), "dropped a snapshot receive that stalled");
            *current = None;
            return;
        }
        deadline = r.last_chunk_at + stall;
    }
}

/// Reserves room for `more` bytes, doubling as a `Vec` does but never past `max`, so the buffer
/// of a capped receive never reserves twice the cap.
fn grow_within(bytes: &mut Vec<u8>, more: usize, max: usize) {
    let needed = bytes.len() + more;
    if needed > bytes.capacity() {
        let target = needed.max(bytes.capacity().saturating_mul(2)).min(max.max(needed));
        bytes.reserve_exact(target - bytes.len());
    }
}

fn mismatch(id: &str, expected: u64, got: u64) -> Rejected {
    let segment = |offset| SnapshotSegmentId { id: id.to_string(), offset };
    let m = SnapshotMismatch { expect: segment(expected), got: segment(got) };
    Rejected::Raft(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_doubles_but_stops_at_the_cap() {
        let mut v = Vec::new();
        grow_within(&mut v, 10, 1000);
        assert!(v.capacity() >= 10);
        v.extend_from_slice(&[0; 10]);
        grow_within(&mut v, 600, 1000);
        assert!(v.capacity() >= 610 && v.capacity() <= 1000, "{}", v.capacity());
    }

    #[test]
    fn the_stall_is_at_least_30_s_and_follows_a_longer_chunk_timeout() {
        let with = |ms| openraft::Config { install_snapshot_timeout: ms, ..Default::default() };
        assert_eq!(stall_after(&with(200)), Duration::from_secs(30));
        assert_eq!(stall_after(&with(20_000)), Duration::from_secs(60));
    }
}
