//! Registration: telling the cluster where this agent is, and telling it again.
//!
//! The agent may start before the cluster has a leader, or while a node is down, so registration
//! never blocks start-up beyond one quick round: a background task retries with backoff (200 ms
//! doubling to 5 s) until some node answers 2xx, then registers again every
//! [`REREGISTER_EVERY`]. The register endpoint is an upsert keyed by `instance_id`, so repeating
//! it is harmless, and a cluster that lost the record (an operator removed the executor, a
//! restored backup) gets it back within one period.

use std::time::Duration;

use std::sync::Arc;

use cronraft_api::protocol::RegisterRequest;
use cronraft_api::types::RegisteredView;
use tokio::sync::watch;

use cronraft_raft::outbound::{read_body_capped, read_text_capped, ERROR_TEXT_BYTES_MAX};

use super::error_chain;
use super::signing::Signing;

/// Largest registration answer read (the instance and its task ids).
const ANSWER_BYTES_MAX: usize = 1024 * 1024;

/// How often a registered agent registers again.
pub const REREGISTER_EVERY: Duration = Duration::from_secs(30);
/// How long the first round, inside [`Agent::start`](super::Agent::start), may take.
pub const FIRST_TRY_MAX: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What to register and where.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Node API base URLs, tried in order.
    pub cluster: Vec<String>,
    pub body: RegisterRequest,
    pub client: reqwest::Client,
    /// Gets the signing key from each successful registration's answer.
    pub signing: Arc<Signing>,
}

impl Registration {
    /// One round: each node in turn until one answers 2xx. `Ok` names the node, `Err` says what
    /// the last one answered.
    pub async fn try_once(&self) -> Result<String, String> {
        let mut last = String::from("no cluster URL");
        for node in &self.cluster {
            let url = format!("{node}/api/v1/executors/register");
            match self.client.post(&url).json(&self.body).send().await {
                Ok(resp) if resp.status().is_success() => {
                    let answer = read_body_capped(resp, ANSWER_BYTES_MAX).await.ok();
                    let view = answer.and_then(|b| serde_json::from_slice::<RegisteredView>(&b).ok());
                    if let Some(v) = view {
                        let keys = if v.signing_keys.is_empty() {
                            v.signing_key.into_iter().collect()
                        } else {
                            v.signing_keys
                        };
                        if !keys.is_empty() {
                            self.signing.set_keys(&keys);
                        }
                    }
                    return Ok(node.clone());
                }
                Ok(resp) => {
                    let status = resp.status();
                    last = format!("{url}: HTTP {status}: {}", read_text_capped(resp, ERROR_TEXT_BYTES_MAX).await);
                }
                Err(e) => last = format!("{url}: {}", error_chain(&e)),
            }
        }
        Err(last)
    }

    /// Registers until `stop` turns true. `registered`: whether the first round succeeded.
    pub async fn run(self, mut registered: bool, mut stop: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_MIN;
        let mut failures: u32 = 0;
        loop {
            let wait = if registered { REREGISTER_EVERY } else { backoff };
            let round = async {
                tokio::time::sleep(wait).await;
                self.try_once().await
            };
            let outcome = tokio::select! {
                outcome = round => outcome,
                _ = stop.wait_for(|s| *s) => return,
            };
            match outcome {
                Ok(node) => {
                    if !registered {
                        tracing::info!(%node, instance_id = %self.body.instance_id, "registered with the cluster");
                    }
                    (registered, backoff, failures) = (true, BACKOFF_MIN, 0);
                }
                Err(last) => {
                    failures += 1;
                    // The first failure of a streak, then every 12th (about once a minute).
                    if failures % 12 == 1 {
                        tracing::warn!(failures, last, "cannot register with the cluster; retrying");
                    }
                    if !registered {
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                    registered = false;
                }
            }
        }
    }
}
