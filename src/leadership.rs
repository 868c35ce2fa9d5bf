//! Running a service only while this node leads: the one frame of the leader services.
//!
//! The scheduler, the dispatcher, the health checker, retention and the notifier all follow the same shape:
//! wait until this node is the leader, run one "term loop" of the service, and when leadership is
//! lost (or the node stops) drop that loop and wait again. Each term loop starts from the
//! replicated state, so nothing a previous term held in memory is trusted. [`run_while_leader`]
//! is that shape, written once; a service only writes its term loop.
//!
//! Leadership is read from openraft's server metrics (state, leader, vote), which change only on
//! elections and membership changes. A term loop may also end by itself while this node still
//! leads the same term, typically because its first leadership confirmation
//! (`ensure_linearizable`) failed: a quorum member had just been restarted. No metrics change
//! follows then, so waiting for one would leave the service off for the rest of the term (the
//! embedded chaos smoke saw a scheduler fire nothing for 35 s, fixed in 29804e5). The frame
//! starts such a loop again after [`RELEAD_AFTER`].

use std::future::Future;
use std::time::Duration;

use cronraft_raft::{NodeId, Raft};
use openraft::ServerState;
use tokio::sync::watch;

/// How long after a term loop ended by itself, while this node still leads that term, before
/// the frame starts it again: long enough not to spin on a quorum that is not back yet, short
/// against a term that can last hours.
pub const RELEAD_AFTER: Duration = Duration::from_millis(500);

/// The leader's term if this node leads right now.
pub fn leading_term(raft: &Raft, node_id: NodeId) -> Option<u64> {
    let m = raft.server_metrics();
    let m = m.borrow();
    (m.state == ServerState::Leader && m.current_leader == Some(node_id)).then_some(m.vote.leader_id.term)
}

/// Calls `lead(term)` each time this node becomes leader, and drops its future as soon as the
/// node stops leading that term or `stop` turns true. A `lead` future that ends by itself while
/// this node still leads the same term is started again after [`RELEAD_AFTER`]. Returns once
/// `stop` turns true (or Raft is gone).
pub async fn run_while_leader<F, Fut>(
    raft: Raft,
    node_id: NodeId,
    mut stop: watch::Receiver<bool>,
    name: &str,
    mut lead: F,
) where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut server = raft.server_metrics();
    loop {
        server.borrow_and_update();
        let Some(term) = leading_term(&raft, node_id) else {
            // Not leading: wait for an election (or membership change) to say otherwise.
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                changed = server.changed() => if changed.is_err() { return },
            }
            continue;
        };
        tracing::info!(term, service = name, "leader service started");
        let ended_by_itself = tokio::select! {
            _ = lead(term) => true,
            gone = term_over(&raft, node_id, term, &mut server) => if gone { return } else { false },
            _ = stop.wait_for(|s| *s) => {
                tracing::info!(term, service = name, "leader service stopped: the node stops");
                return;
            }
        };
        tracing::info!(term, service = name, ended_by_itself, "leader service stopped");
        if ended_by_itself && leading_term(&raft, node_id) == Some(term) {
            // Still leading the same term: no metrics change will come to wake us. Try again.
            tracing::info!(term, service = name, "leader service restarts in {RELEAD_AFTER:?}: this node still leads");
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(RELEAD_AFTER) => {}
            }
        }
        // Otherwise the top of the loop reads the metrics again: a new term this node leads
        // (a change already seen by `term_over`) starts at once, anything else waits.
    }
}

/// Resolves once this node no longer leads `term`: `false`, or `true` if Raft is gone.
async fn term_over(raft: &Raft, node_id: NodeId, term: u64, server: &mut watch::Receiver<impl Sized>) -> bool {
    loop {
        if leading_term(raft, node_id) != Some(term) {
            return false;
        }
        if server.changed().await.is_err() {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use tokio::sync::mpsc;

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    use crate::test_raft::lead_alone;

    /// A one-node Raft in `dir`, not yet initialized (so not leading).
    async fn pristine(dir: &std::path::Path) -> Raft {
        crate::test_raft::pristine(dir, 16 << 20).await.0
    }

    /// Sets its flag when dropped: shows the frame dropped a term loop that never ended.
    struct Dropped(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Regression (29804e5, chaos smoke `tests/it/chaos/embedded.rs`): a leader whose first
    /// leadership confirmation of a term failed once (a quorum member had just restarted) ended
    /// its term loop and waited for the next change of the server metrics, which in a stable
    /// term never comes: it fired nothing for 35 s. Here the first two term loops end at once, as
    /// a failed confirmation makes them; the frame must start a third in the same term, with no
    /// metrics change, pausing [`RELEAD_AFTER`] before each restart (no spinning).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_term_loop_that_ends_while_this_node_still_leads_is_started_again_after_a_pause() {
        // Phase 1: a leading node and a frame whose term loops fail twice, then keep running.
        let dir = tempfile::tempdir().unwrap();
        let raft = pristine(dir.path()).await;
        lead_alone(&raft).await;
        let (stop_tx, stop) = watch::channel(false);
        let (calls_tx, mut calls) = mpsc::unbounded_channel::<(u64, Instant)>();
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (mut n, flag) = (0, dropped.clone());
        let frame = tokio::spawn(run_while_leader(raft.clone(), 1, stop, "test", move |term| {
            n += 1;
            let _ = calls_tx.send((term, Instant::now()));
            let (fail, guard) = (n <= 2, Dropped(flag.clone()));
            async move {
                if !fail {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                }
            }
        }));

        // Phase 2: three starts in one term, each restart at least the pause after the last.
        let mut starts = Vec::new();
        for _ in 0..3 {
            let call = tokio::time::timeout(WAIT, calls.recv()).await.expect("the term loop is started again");
            starts.push(call.unwrap());
        }
        let term = starts[0].0;
        assert!(starts.iter().all(|(t, _)| *t == term), "all in one term: {starts:?}");
        assert_eq!(leading_term(&raft, 1), Some(term), "no election happened meanwhile");
        for pair in starts.windows(2) {
            assert!(pair[1].1 - pair[0].1 >= RELEAD_AFTER, "restarted without the pause: {starts:?}");
        }
        // The third loop runs: no fourth start while it does.
        assert!(tokio::time::timeout(RELEAD_AFTER * 3, calls.recv()).await.is_err(), "a running loop is left alone");

        // Phase 3: stop drops the running loop and ends the frame.
        stop_tx.send(true).unwrap();
        tokio::time::timeout(WAIT, frame).await.expect("the frame ends on stop").unwrap();
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst), "the running term loop was dropped");
        raft.shutdown().await.unwrap();
    }

    /// A node that does not lead starts nothing; once it leads (here: it bootstraps), its term
    /// loop starts with the leader's term; once Raft is gone, the loop is dropped and the frame
    /// returns by itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_term_loop_starts_when_this_node_leads_and_is_dropped_when_raft_is_gone() {
        // Phase 1: not initialized, not leading: no term loop.
        let dir = tempfile::tempdir().unwrap();
        let raft = pristine(dir.path()).await;
        let (_stop_tx, stop) = watch::channel(false);
        let (calls_tx, mut calls) = mpsc::unbounded_channel::<u64>();
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = dropped.clone();
        let frame = tokio::spawn(run_while_leader(raft.clone(), 1, stop, "test", move |term| {
            let _ = calls_tx.send(term);
            let guard = Dropped(flag.clone());
            async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            }
        }));
        assert!(tokio::time::timeout(RELEAD_AFTER, calls.recv()).await.is_err(), "started without leading");

        // Phase 2: it leads: one term loop, in the term it leads.
        lead_alone(&raft).await;
        let term = tokio::time::timeout(WAIT, calls.recv()).await.expect("started once leading").unwrap();
        assert_eq!(Some(term), leading_term(&raft, 1));

        // Phase 3: Raft shuts down: the loop is dropped and the frame returns without a stop.
        raft.shutdown().await.unwrap();
        tokio::time::timeout(WAIT, frame).await.expect("the frame ends when Raft is gone").unwrap();
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst), "the term loop was dropped");
    }
}
