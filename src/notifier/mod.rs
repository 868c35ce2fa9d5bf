//! The leader's notification delivery: sends what the replicated outbox holds to its channels,
//! and reports the results through Raft (delivered entries leave the outbox; failures are
//! counted, with the error, on the entry and its channel).
//!
//! Delivery is at-least-once. An entry leaves the outbox only when a `ReportDeliveries` entry
//! naming it is applied, after its receiver answered 2xx; a leader that dies between the two
//! leaves it there, and the next leader sends it again with the same event id (the receivers'
//! dedupe key). Per entry the term keeps, in memory, a backoff: 500 ms after the first
//! failure, doubling up to `retry_backoff_ms_max`; a new leader starts every entry afresh.
//! Requests go through the executors' client ([`outbound::executors`]): no redirects, no
//! proxy, `[executors]` `allow_cidrs`/`deny_cidrs` checked on the address connected to, a
//! timeout per request, answers read up to a cap.
//!
//! The term loop also announces the leader change (once per term, only if some rule exists)
//! and watches replication for unreachable nodes ([`nodes`]). Cost when no rule exists: the
//! outbox is empty, so a pass reads one counter; passes run on outbox writes and every second.

mod body;
mod nodes;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cronraft_raft::command::Command;
use cronraft_raft::notify::{Channel, DeliveryReport, EventKind, LeaderEvent, OutboxEntry};
use cronraft_raft::outbound::{self, error_chain, read_text_capped, ClientTls, ExecutorClient};
use cronraft_raft::store::StateMachineStore;
use cronraft_raft::{NodeId, Raft};
use tokio::sync::{broadcast, mpsc, watch, Semaphore};

pub use body::{outgoing, signature, Outgoing, EVENT_ID_HEADER, EVENT_KIND_HEADER, SIGNATURE_HEADER};

use crate::clock::now_ms;
use crate::config::{ExecutorSettings, NotificationSettings};
use crate::leadership::run_while_leader;
use crate::propose::{Proposer, PROPOSE_TIMEOUT};

/// First retry delay of a failed delivery.
const BACKOFF_MS_BASE: u64 = 500;
/// Most entries read from the outbox per page while looking for due ones.
const PAGE_ENTRIES: usize = 1_024;
/// Results gathered before a report is proposed, and the longest a result waits for one.
const REPORT_ITEMS: usize = 512;
const REPORT_WAIT: Duration = Duration::from_millis(50);
/// A pass runs at least this often (backoffs ending, a lagged notification).
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// Most bytes of an answer read (for the error message).
const ANSWER_BYTES_MAX: usize = 4 * 1024;

/// What the delivery service needs from the node.
#[derive(Clone)]
pub struct Notifier {
    pub node_id: NodeId,
    pub raft: Raft,
    pub sm: StateMachineStore,
    pub settings: NotificationSettings,
    /// For the address policy (`allow_cidrs`, `deny_cidrs`), which covers every outbound call
    /// the leader makes to an address a user configured.
    pub executors: ExecutorSettings,
    pub tls: ClientTls,
    /// The last term whose leader change was announced (a term loop restarted in the same term
    /// does not announce again).
    pub announced_term: Arc<AtomicU64>,
}

/// The term's memory of one entry.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    next_try: Instant,
}

/// The result of one delivery.
type Outcome = (u64, Result<(), String>);

impl Notifier {
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let timeout = Duration::from_millis(self.settings.delivery_timeout_ms);
        let idle = self.settings.deliveries_inflight_max.min(64);
        let client = match outbound::executors(self.executors.address_policy(), timeout, idle, &self.tls) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "notifier cannot build its HTTP client");
                return;
            }
        };
        let (raft, node_id) = (self.raft.clone(), self.node_id);
        run_while_leader(raft, node_id, stop, "notifier", |term| self.clone().lead(term, client.clone())).await;
    }

    async fn lead(self, term: u64, client: ExecutorClient) {
        let proposer = Proposer::new(self.raft.clone(), PROPOSE_TIMEOUT);
        self.announce(term, &proposer).await;
        let watcher = nodes::Watcher::new(self.node_id, Duration::from_millis(self.settings.node_unreachable_after_ms));
        tokio::join!(self.deliver(client, &proposer), watcher.run(&self.raft, &self.sm, &proposer));
    }

    /// Proposes the leader change once per term, if any rule could take it.
    async fn announce(&self, term: u64, proposer: &Proposer) {
        if self.announced_term.fetch_max(term, Ordering::SeqCst) >= term {
            return;
        }
        if !matches!(self.sm.view().rule_count(), Ok(n) if n > 0) {
            return;
        }
        let reason = format!("node {} leads term {term}", self.node_id);
        let ev = LeaderEvent { kind: EventKind::LeaderChange, node_id: self.node_id, reason };
        if let Err(e) = proposer.propose(Command::RaiseEvents(vec![ev]), now_ms()).await {
            tracing::info!(error = %e, "leader change event not committed");
        }
    }

    /// Sends due entries and reports results, until the term loop is dropped.
    async fn deliver(&self, client: ExecutorClient, proposer: &Proposer) {
        let mut applied = self.sm.subscribe();
        let limit = Arc::new(Semaphore::new(self.settings.deliveries_inflight_max));
        let (results_tx, mut results) = mpsc::channel::<Outcome>(REPORT_ITEMS * 4);
        let mut backoff: HashMap<u64, Backoff> = HashMap::new();
        // Sent and not yet reported as delivered by an applied entry.
        let mut busy: HashSet<u64> = HashSet::new();
        loop {
            self.start_due(&client, &limit, &results_tx, &backoff, &mut busy);
            tokio::select! {
                first = results.recv() => {
                    let Some(first) = first else { return };
                    let report = self.gather(first, &mut results, &mut backoff, &limit).await;
                    let reported: Vec<u64> =
                        report.delivered.iter().copied().chain(report.failed.iter().map(|(s, _)| *s)).collect();
                    if let Err(e) = proposer.propose(Command::ReportDeliveries(report), now_ms()).await {
                        // Not known to be applied: the entries stay in the outbox and are sent again.
                        tracing::info!(error = %e, "delivery report not committed");
                    }
                    for seq in reported {
                        busy.remove(&seq);
                    }
                }
                note = applied.recv() => match note {
                    Err(broadcast::error::RecvError::Closed) => return,
                    Ok(a) if !a.outbox && !a.reset => continue,
                    _ => {}
                },
                _ = tokio::time::sleep(IDLE_WAKE) => {}
            }
        }
    }

    /// Starts a send for every entry that is due, is not in flight, and fits the limit.
    fn start_due(
        &self,
        client: &ExecutorClient,
        limit: &Arc<Semaphore>,
        results: &mpsc::Sender<Outcome>,
        backoff: &HashMap<u64, Backoff>,
        busy: &mut HashSet<u64>,
    ) {
        let view = self.sm.view();
        if limit.available_permits() == 0 || !matches!(view.outbox_stats(), Ok(s) if s.depth > 0) {
            return;
        }
        let channels: HashMap<String, Channel> = match view.channels() {
            Ok(list) => list.into_iter().map(|c| (c.spec.name.clone(), c)).collect(),
            Err(e) => return tracing::warn!(error = %e, "notifier cannot read the channels"),
        };
        let now = Instant::now();
        let mut after = 0;
        loop {
            let page = match view.outbox(after, PAGE_ENTRIES) {
                Ok(p) => p,
                Err(e) => return tracing::warn!(error = %e, "notifier cannot read the outbox"),
            };
            let Some(last) = page.last() else { return };
            after = last.seq;
            for entry in page {
                if busy.contains(&entry.seq) || backoff.get(&entry.seq).is_some_and(|b| b.next_try > now) {
                    continue;
                }
                let Some(channel) = channels.get(&entry.channel).cloned() else { continue };
                let Ok(permit) = limit.clone().try_acquire_owned() else { return };
                busy.insert(entry.seq);
                let (client, results) = (client.clone(), results.clone());
                tokio::spawn(async move {
                    let outcome = send(&client, &channel, &entry).await;
                    drop(permit);
                    let _ = results.send((entry.seq, outcome)).await;
                });
            }
        }
    }

    /// Collects results for a report: `first`, and whatever else arrives within a moment, or
    /// until no send is left in flight (`limit` has every permit back). Waiting out the moment
    /// with nothing on its way cost a pause per round: 32 alerts per 50 ms, about 470 a second.
    async fn gather(
        &self,
        first: Outcome,
        results: &mut mpsc::Receiver<Outcome>,
        backoff: &mut HashMap<u64, Backoff>,
        limit: &Semaphore,
    ) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        let deadline = tokio::time::Instant::now() + REPORT_WAIT;
        let mut next = Some(first);
        while let Some((seq, outcome)) = next.take() {
            match outcome {
                Ok(()) => {
                    backoff.remove(&seq);
                    report.delivered.push(seq);
                }
                Err(error) => {
                    let b = backoff.entry(seq).or_insert(Backoff { failures: 0, next_try: Instant::now() });
                    b.failures += 1;
                    b.next_try = Instant::now() + self.backoff(b.failures);
                    report.failed.push((seq, error));
                }
            }
            if report.delivered.len() + report.failed.len() >= REPORT_ITEMS {
                break;
            }
            // A send hands its permit back just before its result: a result missed here is
            // taken by the next round.
            if limit.available_permits() == self.settings.deliveries_inflight_max && results.is_empty() {
                break;
            }
            next = tokio::time::timeout_at(deadline, results.recv()).await.ok().flatten();
        }
        report
    }

    /// The wait after the `failures`-th failure in a row.
    fn backoff(&self, failures: u32) -> Duration {
        let ms = BACKOFF_MS_BASE.saturating_mul(1 << failures.saturating_sub(1).min(20));
        Duration::from_millis(ms.min(self.settings.retry_backoff_ms_max))
    }
}

/// One delivery: a 2xx answer is success; anything else is an error worth a retry.
async fn send(client: &ExecutorClient, channel: &Channel, entry: &OutboxEntry) -> Result<(), String> {
    let target = client.target(&channel.spec.url).map_err(|e| e.to_string())?;
    let out = outgoing(channel, &entry.event);
    let mut request = client.client.post(target).header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in out.headers {
        request = request.header(name, value);
    }
    match request.body(out.body).send().await {
        Ok(resp) if resp.status().is_success() => {
            // Read (capped) so the connection goes back to the pool.
            let _ = read_text_capped(resp, ANSWER_BYTES_MAX).await;
            Ok(())
        }
        Ok(resp) => {
            let status = resp.status();
            let text = read_text_capped(resp, ANSWER_BYTES_MAX).await;
            Err(format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()))
        }
        // Without the URL: a Slack or Mattermost URL is itself a secret.
        Err(e) => Err(error_chain(&e.without_url())),
    }
}
