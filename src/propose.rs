//! How the leader's services propose an entry: one helper that builds the request, bounds the
//! wait for its commit, and sorts what can go wrong into the four cases a service acts on.
//!
//! The scheduler, the dispatcher, the health checker and retention each used to build their
//! `Request` and call openraft themselves, two of them with no bound on the wait. Here:
//!
//! - [`Proposer::propose`] hands the entry to Raft and waits, at most its timeout, for the
//!   state machine's answer.
//! - [`Proposer::propose_ff`] only hands the entry to RaftCore and returns an [`InFlight`] to be
//!   awaited later, elsewhere: the scheduler keeps up to 80 fire entries in flight, and the log
//!   must hold them in the order they were handed over (RaftCore reads its channel in order; see
//!   `Scheduler::enqueue`).
//!
//! Leader entries carry no request id: they are not deduplicated by request, and proposing one
//! again is harmless by apply's own rules (the fire watermark, attempt numbers, health streaks
//! re-seeded from the state). A [`ProposeError::TimedOut`] entry may still commit later; every
//! service answers it by rebuilding from the replicated state rather than by trusting memory.

use std::time::{Duration, Instant};

use cronraft_raft::command::{Command, Request, Response};
use cronraft_raft::model::NodeInfo;
use cronraft_raft::{NodeId, Raft, TypeConfig};
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;

/// How long a leader service waits for one entry by default. Generous: a deposed leader learns
/// it at once (`ForwardToLeader`); what takes long is applying a large burst, and giving up then
/// only adds work (the service rebuilds from the state).
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an entry was not (known to be) applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This node does not lead (any more): the entry was not appended here. The term is over for
    /// the service; `leader` is who leads now, if known.
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// No answer within the timeout. The outcome is unknown: the entry may still commit.
    #[error("not committed within {0:?}: the outcome is unknown")]
    TimedOut(Duration),
    /// The entry was refused: apply answered `Rejected` (committed, nothing changed), or Raft
    /// refused the write itself.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Raft has stopped on this node (shutdown or a storage failure).
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// This node's storage is full (see `crate::storage_guard`): nothing was proposed.
    #[error("storage full: {0}")]
    StorageFull(String),
}

/// An applied entry: the state machine's answer and the entry's log index.
#[derive(Debug, Clone)]
pub struct Committed {
    pub data: Response,
    pub log_index: u64,
}

/// Proposes entries on this node's Raft, each wait bounded by `timeout`.
#[derive(Clone)]
pub struct Proposer {
    raft: Raft,
    /// When set, nothing is proposed while the node's storage is full (purges excepted: they
    /// make room).
    space: Option<std::sync::Arc<cronraft_raft::store::Space>>,
    /// The longest wait for one entry's answer (from [`Proposer::propose`], or from
    /// [`InFlight::committed`] for a fire-and-forget entry).
    timeout: Duration,
}

/// What `Raft::client_write_ff` answers on: openraft's default one-shot responder.
type ResponseReceiver =
    tokio::sync::oneshot::Receiver<Result<ClientWriteResponse<TypeConfig>, ClientWriteError<NodeId, NodeInfo>>>;

/// A fire-and-forget entry on RaftCore's channel, not yet answered.
pub struct InFlight {
    receiver: ResponseReceiver,
    /// When it was handed over (for the commit time in the log).
    handed_over: Instant,
    timeout: Duration,
}

/// The request of a leader entry stamped `now_ms` (no request id: see the module doc).
pub fn request(command: Command, now_ms: i64) -> Request {
    Request { request_id: String::new(), now_ms, command }
}

impl Proposer {
    pub fn new(raft: Raft, timeout: Duration) -> Proposer {
        Proposer { raft, timeout, space: None }
    }

    /// The same, refusing while `space` is full.
    pub fn guarded(mut self, space: std::sync::Arc<cronraft_raft::store::Space>) -> Proposer {
        self.space = Some(space);
        self
    }

    fn refusal(&self, command: &Command) -> Option<ProposeError> {
        if matches!(command, Command::Purge(_)) {
            return None;
        }
        self.space.as_ref().and_then(|s| s.refusal()).map(ProposeError::StorageFull)
    }

    /// Proposes `command` stamped `now_ms` and waits for its answer, at most the timeout.
    pub async fn propose(&self, command: Command, now_ms: i64) -> Result<Committed, ProposeError> {
        if let Some(e) = self.refusal(&command) {
            return Err(e);
        }
        match tokio::time::timeout(self.timeout, self.raft.client_write(request(command, now_ms))).await {
            Err(_) => Err(ProposeError::TimedOut(self.timeout)),
            Ok(Err(RaftError::APIError(e))) => Err(write_error(e)),
            Ok(Err(RaftError::Fatal(f))) => Err(ProposeError::Fatal(f.to_string())),
            Ok(Ok(resp)) => answered(resp),
        }
    }

    /// Hands `command` stamped `now_ms` to RaftCore without waiting for its commit. When this
    /// returns, the entry is on RaftCore's channel, so entries handed over one after the other
    /// from one task reach the log in that order. The only error is [`ProposeError::Fatal`].
    pub async fn propose_ff(&self, command: Command, now_ms: i64) -> Result<InFlight, ProposeError> {
        if let Some(e) = self.refusal(&command) {
            return Err(e);
        }
        let handed_over = Instant::now();
        match self.raft.client_write_ff(request(command, now_ms)).await {
            Ok(receiver) => Ok(InFlight { receiver, handed_over, timeout: self.timeout }),
            Err(f) => Err(ProposeError::Fatal(f.to_string())),
        }
    }
}

impl InFlight {
    /// When the entry was handed to RaftCore.
    pub fn handed_over(&self) -> Instant {
        self.handed_over
    }

    /// Waits for the entry's answer, at most the proposer's timeout from now.
    pub async fn committed(self) -> Result<Committed, ProposeError> {
        match tokio::time::timeout(self.timeout, self.receiver).await {
            Err(_) => Err(ProposeError::TimedOut(self.timeout)),
            Ok(Err(_)) => Err(ProposeError::Fatal("RaftCore dropped the entry's responder".into())),
            Ok(Ok(Err(e))) => Err(write_error(e)),
            Ok(Ok(Ok(resp))) => answered(resp),
        }
    }
}

fn answered(resp: ClientWriteResponse<TypeConfig>) -> Result<Committed, ProposeError> {
    match resp.data {
        Response::Rejected(r) => Err(ProposeError::Rejected(r.to_string())),
        data => Ok(Committed { data, log_index: resp.log_id.index }),
    }
}

fn write_error(e: ClientWriteError<NodeId, NodeInfo>) -> ProposeError {
    match e {
        ClientWriteError::ForwardToLeader(f) => ProposeError::NotLeader { leader: f.leader_id },
        ClientWriteError::ChangeMembershipError(e) => ProposeError::Rejected(e.to_string()),
    }
}

#[cfg(test)]
mod tests {

    use cronraft_raft::model::TaskSpec;

    use super::*;
    use crate::clock::now_ms;

    async fn one_node(dir: &std::path::Path, lead: bool) -> Raft {
        let (raft, _, _) = crate::test_raft::pristine(dir, 16 << 20).await;
        if lead {
            crate::test_raft::lead_alone(&raft).await;
        }
        raft
    }

    /// The four outcomes a leader service acts on, each from a real Raft: applied, rejected by
    /// apply, not the leader, and Raft stopped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn proposals_are_applied_rejected_refused_by_a_follower_or_fatal_after_shutdown() {
        // Phase 1: on a leader, a create is applied (both ways of proposing); its twin is
        // rejected by apply (the name is taken), which is a committed refusal, not a success.
        let dir = tempfile::tempdir().unwrap();
        let raft = one_node(dir.path(), true).await;
        let proposer = Proposer::new(raft.clone(), PROPOSE_TIMEOUT);
        let create = |name: &str| Command::CreateTask { spec: TaskSpec::new(name, "* * * * * *") };
        let done = proposer.propose(create("a"), now_ms()).await.unwrap();
        assert!(matches!(done.data, Response::Task(_)) && done.log_index > 0, "{done:?}");
        let in_flight = proposer.propose_ff(create("b"), now_ms()).await.unwrap();
        let done_ff = in_flight.committed().await.unwrap();
        assert!(done_ff.log_index > done.log_index, "appended after the first");
        let twin = proposer.propose(create("a"), now_ms()).await.unwrap_err();
        assert!(matches!(twin, ProposeError::Rejected(ref r) if r.contains("already exists")), "{twin:?}");
        // An answer that cannot arrive in time is a timeout with an unknown outcome (the entry
        // is handed over on the first poll; its apply takes longer than no time at all).
        // (Regression: asserted on one try, it failed when the entry was committed within the
        // first poll, which a fast disk and an idle second core allow; one timeout in 100 tries
        // shows the mapping.)
        let hasty = Proposer::new(raft.clone(), Duration::ZERO);
        let mut timed_out = false;
        for i in 0..100 {
            match hasty.propose(create(&format!("e{i}")), now_ms()).await {
                Err(e) => {
                    assert_eq!(e, ProposeError::TimedOut(Duration::ZERO));
                    timed_out = true;
                    break;
                }
                Ok(done) => assert!(matches!(done.data, Response::Task(_))),
            }
        }
        assert!(timed_out, "no proposal timed out with a zero timeout in 100 tries");

        // Phase 2: Raft stopped: both ways answer Fatal, never hang.
        raft.shutdown().await.unwrap();
        assert!(matches!(proposer.propose(create("c"), now_ms()).await, Err(ProposeError::Fatal(_))));
        assert!(matches!(proposer.propose_ff(create("c"), now_ms()).await, Err(ProposeError::Fatal(_))));

        // Phase 3: a node that never became leader refuses with NotLeader (no leader known).
        let dir = tempfile::tempdir().unwrap();
        let follower = one_node(dir.path(), false).await;
        let err = Proposer::new(follower.clone(), PROPOSE_TIMEOUT).propose(create("d"), now_ms()).await.unwrap_err();
        assert_eq!(err, ProposeError::NotLeader { leader: None });
        follower.shutdown().await.unwrap();
    }
}
