//! The admin API calls the membership and executor-churn faults make: one request retried across
//! the nodes until one answers, since the leader may be anywhere (or nowhere for a moment).

use std::time::{Duration, Instant};

use cronraft_api::client::Client;
use reqwest::Method;
use serde_json::Value;

use super::Targets;

/// How long one admin call of a nemesis may take (membership changes wait up to 10 s).
pub(super) const ADMIN_TIMEOUT: Duration = Duration::from_secs(12);

/// Sends one admin request, trying the nodes in turn (starting at `first`) until one answers 2xx
/// (or one of `accept`'s statuses) or `limit` passes. Returns the body, or the last error.
pub(super) async fn admin(
    urls: &[String],
    method: Method,
    path: &str,
    body: Option<Value>,
    accept: &[u16],
    limit: Duration,
) -> Result<Value, String> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no node answered");
    for i in 0.. {
        let url = &urls[i % urls.len().max(1)];
        let client = Client::with_timeout([url], ADMIN_TIMEOUT);
        let bytes = body.as_ref().map(|b| serde_json::to_vec(b).expect("serialize"));
        match client.raw(method.clone(), path, bytes, None).await {
            Ok(r) if (200..300).contains(&r.status) || accept.contains(&r.status) => {
                return Ok(serde_json::from_str(&r.body).unwrap_or(Value::Null))
            }
            Ok(r) => last = format!("{url}{path}: HTTP {} {}", r.status, r.body),
            Err(e) => last = format!("{url}{path}: {e}"),
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(last)
}

pub(super) async fn urls(targets: &Targets, except: Option<u64>) -> Vec<String> {
    let c = targets.cluster.lock().await;
    c.ids().into_iter().filter(|i| Some(*i) != except).map(|i| c.url(i)).collect()
}
