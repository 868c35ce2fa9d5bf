//! The leader's dispatcher: gives pending executions an attempt on an executor (through Raft),
//! sends committed attempts to their executors, enforces timeouts, and tells executors to stop.
//!
//! The order of events for one attempt is fixed, and it is what makes dispatch safe:
//!
//! 1. The dispatcher proposes a `Dispatch` round; apply picks the instance (the balance
//!    strategy runs in apply, from replicated state) and records the attempt as `running`.
//! 2. Only once that entry is applied here — seen through the state machine's notifications —
//!    is `POST /execute` sent, carrying the entry's term and log index as fencing data. No
//!    executor ever receives an attempt that is not committed.
//! 3. A send that cannot connect proposes `Unreachable` (the instance is ejected and the
//!    execution fails over at once); an error answer proposes `Refused` (a retry per policy).
//! 4. The attempt ends with the executor's callback (applied on any node's request), or with a
//!    `Timeout` proposed here at its deadline, after which `/stop` is sent.
//!
//! Every term starts from the replicated state ([`Book`] is rebuilt) and sends `/execute` again
//! for every running attempt: at-least-once, deduplicated by executors on (execution, attempt).
//! So an execution can never stay `running` forever: whichever leader holds it times it out.

mod book;
mod sender;

use std::sync::Arc;
use std::time::Duration;

use cronraft_raft::command::{AttemptEnd, AttemptEndKind, Command, DispatchBatch, DispatchItem};
use cronraft_raft::model::{Execution, ExecutionStatus};
use cronraft_raft::outbound::ClientTls;
use cronraft_raft::store::StateMachineStore;
use cronraft_raft::{NodeId, Raft, Response};
use tokio::sync::{broadcast, mpsc, watch, Semaphore};

use crate::clock::{now_ms, seed};
use crate::config::ExecutorSettings;
use crate::leadership::run_while_leader;
use crate::propose::{Committed, ProposeError, Proposer, PROPOSE_TIMEOUT};
pub use book::{Book, Clock, Running, StopOrder};
use sender::Sender;

/// Most executions in one dispatch round (one Raft entry).
const ROUND_ITEMS_MAX: usize = 2_048;
/// Dispatch rounds in flight at once; executions that become due meanwhile join the next one.
const ROUNDS_INFLIGHT_MAX: usize = 4;
/// Most attempt ends (failures, timeouts) in one entry.
const ENDS_PER_ENTRY_MAX: usize = 1_024;
/// Most HTTP requests to executors in flight; more wait for the next round.
const SENDS_INFLIGHT_MAX: usize = 512;
/// Queued attempt ends from senders (bounded: a full queue makes senders wait).
const ENDS_QUEUE_LEN: usize = 8_192;
/// How long a run that found every instance at capacity waits before the next round tries it.
const CAPACITY_RECHECK_MS: i64 = 100;
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// What the dispatcher needs from the node.
#[derive(Clone)]
pub struct Dispatcher {
    pub node_id: NodeId,
    pub raft: Raft,
    pub sm: StateMachineStore,
    pub settings: ExecutorSettings,
    /// With auth on: requests to executors are signed with keys derived from it.
    pub secret: Option<cronraft_raft::cluster_secret::ClusterSecret>,
    /// The node's client TLS: for executor URLs, and the scheme of the callback URLs.
    pub tls: ClientTls,
}

/// Something a background task tells the term loop.
enum Note {
    /// An attempt failed on our side; propose it.
    End(AttemptEnd),
    /// A dispatch round did not act on these (stale or not committed): look at them again.
    Recheck(Vec<u64>),
    /// A proposal failed: leadership may be gone, or the state moved; rebuild the book.
    Rebuild,
}

impl Dispatcher {
    /// Runs until `stop` turns true, dispatching whenever this node leads.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let sender = match Sender::new(&self.settings, &self.tls, self.secret.clone()) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!(error = %e, "dispatcher cannot build its HTTP client");
                return;
            }
        };
        let (raft, node_id) = (self.raft.clone(), self.node_id);
        run_while_leader(raft, node_id, stop, "dispatcher", |term| self.clone().lead(term, sender.clone())).await;
    }

    /// One leadership term.
    async fn lead(self, term: u64, sender: Arc<Sender>) {
        let mut events = self.sm.subscribe();
        let (note_tx, mut note_rx) = mpsc::channel::<Note>(ENDS_QUEUE_LEN);
        let rounds = Arc::new(Semaphore::new(ROUNDS_INFLIGHT_MAX));
        let sends = Arc::new(Semaphore::new(SENDS_INFLIGHT_MAX));
        let mut book = self.rebuild().await;
        let mut ends: Vec<AttemptEnd> = Vec::new();
        loop {
            // One reading of both clocks: `now` stamps this pass's entries (an attempt's
            // `dispatched_ms`), and the book remembers the pair with each proposed round.
            let clocks = clock();
            let (now, book_now) = (clocks.wall_ms, clocks.book_ms);
            self.send_new(term, &mut book, &sender, &sends, &note_tx);
            for order in book.take_stops() {
                let sender = sender.clone();
                tokio::spawn(async move { sender.stop(&order).await });
            }
            for (id, attempt) in book.take_expired(book_now) {
                let error = "no final report within timeout_seconds".to_string();
                ends.push(AttemptEnd { execution_id: id, attempt, kind: AttemptEndKind::Timeout, error });
            }
            if !ends.is_empty() {
                let batch: Vec<AttemptEnd> = ends.drain(..ends.len().min(ENDS_PER_ENTRY_MAX)).collect();
                self.spawn_propose(Command::EndAttempts(batch), now, note_tx.clone(), Vec::new());
            }
            while let Ok(permit) = rounds.clone().try_acquire_owned() {
                let due = book.take_due(clocks, ROUND_ITEMS_MAX);
                if due.is_empty() {
                    break;
                }
                let items: Vec<DispatchItem> =
                    due.iter().map(|(id, attempt)| DispatchItem { execution_id: *id, attempt: *attempt }).collect();
                let ids = due.iter().map(|(id, _)| *id).collect();
                let batch = DispatchBatch { seed: seed(), term, items };
                self.spawn_propose_with(Command::Dispatch(batch), now, note_tx.clone(), ids, permit);
            }
            let wait = match book.next_wake_ms() {
                _ if book.has_unsent() => Duration::from_millis(5),
                Some(t) => Duration::from_millis((t - clock().book_ms).clamp(1, IDLE_WAKE.as_millis() as i64) as u64),
                None => IDLE_WAKE,
            };
            tokio::select! {
                event = events.recv() => match event {
                    Ok(applied) => {
                        if applied.reset { book = self.rebuild().await; } else { self.observe(&mut book, &applied.executions); }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => book = self.rebuild().await,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                note = note_rx.recv() => match note {
                    Some(Note::End(end)) => ends.push(end),
                    Some(Note::Recheck(ids)) => self.recheck(&mut book, &ids),
                    Some(Note::Rebuild) => book = self.rebuild().await,
                    None => return,
                },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sends `/execute` for attempts this term has not sent, as far as capacity allows.
    fn send_new(
        &self,
        term: u64,
        book: &mut Book,
        sender: &Arc<Sender>,
        sends: &Arc<Semaphore>,
        notes: &mpsc::Sender<Note>,
    ) {
        let callback_urls = self.callback_urls();
        let view = self.sm.view();
        for (id, running) in book.take_unsent(sends.available_permits()) {
            let Ok(permit) = sends.clone().try_acquire_owned() else {
                book.unsend(id);
                continue;
            };
            let request = match (view.execution(id), running.attempt) {
                (Ok(Some(e)), attempt) => match view.task(e.task_id) {
                    Ok(Some(task)) => sender::execute_request(&e, &task, attempt, &callback_urls),
                    _ => None,
                },
                _ => None,
            };
            let Some(request) = request else { continue };
            let (sender, notes) = (sender.clone(), notes.clone());
            tokio::spawn(async move {
                if let Some(end) = sender.execute(&running, request, term).await {
                    let _ = notes.send(Note::End(end)).await;
                }
                drop(permit);
            });
        }
    }

    /// Every node's API, this (leading) node first: a report sent there needs no forwarding.
    fn callback_urls(&self) -> Vec<String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let mut nodes: Vec<(u64, String)> =
            m.membership_config.membership().nodes().map(|(id, n)| (*id, self.tls.node_url(&n.http_addr))).collect();
        nodes.sort_by_key(|(id, _)| *id != self.node_id);
        nodes.into_iter().map(|(_, url)| url).collect()
    }

    /// The book from the replicated state, once everything committed is applied here.
    async fn rebuild(&self) -> Book {
        let mut delay = Duration::from_millis(50);
        while let Err(e) = self.raft.ensure_linearizable().await {
            tracing::info!(error = %e, "dispatcher waits to confirm leadership");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
        let mut book = Book::default();
        match self.sm.view().active_execution_ids() {
            Ok(ids) => self.observe(&mut book, &ids),
            Err(e) => tracing::error!(error = %e, "dispatcher cannot list active executions"),
        }
        tracing::info!(pending = book.pending_len(), running = book.running_len(), "dispatcher rebuilt from state");
        book
    }

    fn observe(&self, book: &mut Book, ids: &[u64]) {
        let view = self.sm.view();
        for id in ids {
            match view.execution(*id) {
                Ok(Some(e)) => book.observe(&e, clock(), || timeout_ms(&view, &e)),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, execution = id, "dispatcher cannot read an execution"),
            }
        }
    }

    fn recheck(&self, book: &mut Book, ids: &[u64]) {
        let view = self.sm.view();
        let now = clock();
        for id in ids {
            match view.execution(*id) {
                // Due but not acted on: every instance is at capacity. Look again shortly.
                Ok(Some(e)) if e.status == ExecutionStatus::Pending && !e.queued => {
                    book.unpropose(*id, now.at(e.not_before_ms).max(now.book_ms + CAPACITY_RECHECK_MS))
                }
                Ok(Some(e)) => book.observe(&e, now, || timeout_ms(&view, &e)),
                _ => book.unpropose(*id, now.book_ms),
            }
        }
    }

    fn spawn_propose(&self, command: Command, now: i64, notes: mpsc::Sender<Note>, ids: Vec<u64>) {
        let this = self.clone();
        tokio::spawn(async move { this.propose(command, now, notes, ids).await });
    }

    fn spawn_propose_with(
        &self,
        command: Command,
        now: i64,
        notes: mpsc::Sender<Note>,
        ids: Vec<u64>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            this.propose(command, now, notes, ids).await;
            drop(permit);
        });
    }

    /// Proposes one entry. Dispatch items apply did not act on are rechecked; a failed
    /// proposal rebuilds the book (the outcome is unknown).
    async fn propose(&self, command: Command, now: i64, notes: mpsc::Sender<Note>, ids: Vec<u64>) {
        match Proposer::new(self.raft.clone(), PROPOSE_TIMEOUT).guarded(self.sm.space()).propose(command, now).await {
            Ok(Committed { data: Response::Dispatched(done), .. }) => {
                let acted: std::collections::HashSet<u64> = done.iter().map(|e| e.id).collect();
                let missed: Vec<u64> = ids.into_iter().filter(|id| !acted.contains(id)).collect();
                if !missed.is_empty() {
                    let _ = notes.send(Note::Recheck(missed)).await;
                }
            }
            Ok(_) => {}
            Err(e) => {
                match e {
                    ProposeError::TimedOut(_) => tracing::warn!(error = %e, "dispatcher proposal not committed"),
                    _ => tracing::info!(error = %e, "dispatcher proposal not committed"),
                }
                let _ = notes.send(Note::Rebuild).await;
            }
        }
    }
}

fn timeout_ms(view: &cronraft_raft::state::StateView, e: &Execution) -> i64 {
    let seconds = view.task(e.task_id).ok().flatten().map(|t| t.spec.timeout_seconds).unwrap_or(300);
    i64::from(seconds) * 1_000
}

/// The leader's wall clock and book clock now. The book clock is the wall clock at the first call
/// plus monotonic time since, so it never jumps (see [`book`]).
fn clock() -> Clock {
    static START: std::sync::OnceLock<(i64, std::time::Instant)> = std::sync::OnceLock::new();
    let (wall0, start) = *START.get_or_init(|| (now_ms(), std::time::Instant::now()));
    Clock { wall_ms: now_ms(), book_ms: wall0.saturating_add(start.elapsed().as_millis() as i64) }
}
