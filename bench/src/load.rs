//! The closed-loop load generator shared by both systems: `clients` workers on one keep-alive
//! HTTP/1.1 client take request numbers from a shared counter until `requests` are issued or the
//! time limit passes; each request's latency is taken around send + full body read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

/// Longest a single request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an unexpected answer's body is kept for the report.
const SAMPLE_BYTES: usize = 300;

/// Builds the body of request number `i` of the run tagged `tag`.
pub type BodyFn = Arc<dyn Fn(&str, u64) -> String + Send + Sync>;

/// What to send: one URL, one body per request number, and the status that means success.
#[derive(Clone)]
pub struct Workload {
    pub url: String,
    pub ok_status: u16,
    pub body: BodyFn,
}

/// The outcome of one concurrency level.
#[derive(Debug, Default)]
pub struct LevelResult {
    /// Latencies of successful requests, in nanoseconds, sorted.
    pub latencies_ns: Vec<u64>,
    /// Failed requests by kind (`HTTP 503`, `timeout`, `connect`, …).
    pub errors: BTreeMap<String, u64>,
    /// One example of a failed request.
    pub error_sample: Option<String>,
    pub wall: Duration,
    /// True if the time limit stopped the level before every request was issued.
    pub hit_time_limit: bool,
}

impl LevelResult {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The one HTTP client: HTTP/1.1 keep-alive, no proxy, TCP_NODELAY, bounded requests; with
/// `--auth`, every request carries the admin token.
pub fn http_client() -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = crate::cronraft::auth_token() {
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .no_proxy()
        .tcp_nodelay(true)
        .http1_only()
        .pool_max_idle_per_host(1024)
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

/// Runs `requests` requests with `clients` concurrent workers, stopping after `limit`.
pub async fn run_level(
    http: &reqwest::Client,
    work: &Workload,
    tag: &str,
    clients: usize,
    requests: u64,
    limit: Duration,
) -> LevelResult {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + limit;
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (http, work, next, tag) = (http.clone(), work.clone(), next.clone(), tag.to_string());
            tokio::spawn(async move { worker(&http, &work, &tag, &next, requests, deadline).await })
        })
        .collect();
    let mut result = LevelResult::default();
    for w in workers {
        match w.await {
            Ok(part) => merge(&mut result, part),
            Err(e) => *result.errors.entry(format!("worker panicked: {e}")).or_default() += 1,
        }
    }
    result.wall = start.elapsed();
    result.hit_time_limit = next.load(Ordering::Relaxed) < requests;
    result.latencies_ns.sort_unstable();
    result
}

fn merge(into: &mut LevelResult, part: LevelResult) {
    into.latencies_ns.extend(part.latencies_ns);
    for (kind, n) in part.errors {
        *into.errors.entry(kind).or_default() += n;
    }
    if into.error_sample.is_none() {
        into.error_sample = part.error_sample;
    }
}

/// One worker: claim a request number, send it, record the outcome; repeat.
async fn worker(
    http: &reqwest::Client,
    work: &Workload,
    tag: &str,
    next: &AtomicU64,
    requests: u64,
    deadline: Instant,
) -> LevelResult {
    let mut out = LevelResult::default();
    while Instant::now() < deadline {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= requests {
            next.fetch_sub(1, Ordering::Relaxed);
            break;
        }
        let body = (work.body)(tag, i);
        let sent = Instant::now();
        let outcome = send(http, work, body).await;
        let took = sent.elapsed().as_nanos() as u64;
        match outcome {
            Ok(()) => out.latencies_ns.push(took),
            Err((kind, sample)) => {
                *out.errors.entry(kind).or_default() += 1;
                out.error_sample.get_or_insert(sample);
            }
        }
    }
    out
}

/// One request; on failure, its kind and a description.
async fn send(http: &reqwest::Client, work: &Workload, body: String) -> Result<(), (String, String)> {
    let req = http.post(&work.url).header("content-type", "application/json").body(body);
    let resp = req.send().await.map_err(classify)?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(classify)?;
    if status == work.ok_status {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SAMPLE_BYTES)]).into_owned();
    Err((format!("HTTP {status}"), format!("HTTP {status}: {text}")))
}

fn classify(e: reqwest::Error) -> (String, String) {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    (kind.to_string(), format!("{kind}: {e}"))
}
