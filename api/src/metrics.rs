//! `GET /metrics`: the Prometheus text exposition (format 0.0.4), written by the
//! `prometheus-client` crate from one [`Registry`] per scrape: the HTTP request families kept
//! here, and collectors that read their values at scrape time — the Raft gauges from openraft's
//! metrics, the scheduler's families ([`SchedulerReport::encode`]), and what the replicated state
//! says ([`state`]: outcome counters, executors, queued runs, chosen tasks).
//!
//! Every HTTP label comes from a bounded set, so no request can add a series of its own: the
//! method is one of [`METHODS`] (anything else is `other`, since HTTP allows any token as a
//! method), the route is the matched template (`/api/v1/tasks/{task}`, never the raw path) or
//! `unmatched`, and the status is one the handlers produce. The registry is built per scrape
//! (a few boxes) because the collectors hold the context, which owns the HTTP families.

pub mod state;

use std::fmt;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::context::Ctx;
use crate::scheduler_metrics::SchedulerReport;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
pub use state::TaskSeries;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS_S: [f64; 12] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The method labels; the last one stands for every method not listed before it.
pub const METHODS: [&str; 8] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "other"];
/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The index in [`METHODS`] of `method`'s label.
pub fn method_slot(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::PATCH => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS_S)
}

/// Request counters by (method, route, status) and latency histograms by (method, route).
#[derive(Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics { requests: Family::default(), durations: Family::new_with_constructor(latency_histogram) }
    }
}

impl HttpMetrics {
    /// Records one request; `route` is a route template or [`UNMATCHED`].
    pub fn observe(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        let method = METHODS[method_slot(method)];
        let route = route.to_string();
        self.durations.get_or_create(&RouteLabels { method, route: route.clone() }).observe(seconds);
        self.requests.get_or_create(&RequestLabels { method, route, status }).inc();
    }

    /// Adds both HTTP families to `registry` (they share their series with `self`).
    pub fn register(&self, registry: &mut Registry) {
        let help = "HTTP requests by method, route and status";
        registry.register("cronraft_http_requests", help, self.requests.clone());
        let help = "HTTP request latency by method and route";
        registry.register("cronraft_http_request_duration_seconds", help, self.durations.clone());
    }
}

/// Middleware recording every request under its method label and route template.
pub async fn track(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    // `MatchedPath` holds an `Arc<str>`: cloning it does not copy the template.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let resp = next.run(req).await;
    let route = route.as_ref().map(MatchedPath::as_str).unwrap_or(UNMATCHED);
    ctx.metrics.observe(&method, route, resp.status().as_u16(), start.elapsed().as_secs_f64());
    resp
}

/// One unlabelled gauge.
pub fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: i64) -> fmt::Result {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// One unlabelled counter; `name` without `_total`, which the encoder appends.
pub fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    ConstCounter::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// One family of `kind` (a counter's `name` without `_total`) with a sample per label set.
pub fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The node's Raft gauges (openraft's metrics) and the storage layer's fsync count.
struct RaftCollector(Ctx);

impl fmt::Debug for RaftCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RaftCollector")
    }
}

impl Collector for RaftCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let ctx = &self.0;
        let m = ctx.raft.metrics().borrow().clone();
        let index = |l: Option<openraft::LogId<u64>>| l.map(|l| l.index).unwrap_or(0) as i64;
        gauge(&mut e, "cronraft_raft_term", "Current Raft term.", m.current_term as i64)?;
        let leader = m.current_leader.unwrap_or(0) as i64;
        gauge(&mut e, "cronraft_raft_leader_id", "Leader node id as seen by this node (0 = none).", leader)?;
        let is_leader = i64::from(m.current_leader == Some(ctx.node_id));
        gauge(&mut e, "cronraft_raft_is_leader", "1 if this node is the leader.", is_leader)?;
        let last = m.last_log_index.unwrap_or(0) as i64;
        gauge(&mut e, "cronraft_raft_last_log_index", "Last log index on this node.", last)?;
        gauge(&mut e, "cronraft_raft_applied_index", "Last applied log index on this node.", index(m.last_applied))?;
        let help = "Last log index covered by this node's snapshot.";
        gauge(&mut e, "cronraft_raft_snapshot_index", help, index(m.snapshot))?;
        gauge(&mut e, "cronraft_raft_purged_index", "Log entries up to this index are purged here.", index(m.purged))?;
        let voters = m.membership_config.membership().voter_ids().count() as i64;
        let members = m.membership_config.nodes().count() as i64;
        gauge(&mut e, "cronraft_raft_voters", "Voters in the membership config.", voters)?;
        gauge(&mut e, "cronraft_raft_members", "Voters and learners in the membership config.", members)?;
        counter(&mut e, "cronraft_storage_syncs", "fdatasync calls made by the storage layer.", ctx.sm.sync_count())?;
        encode_timings(&mut e, ctx.sm.timings())
    }
}

/// The storage layer's step durations (see `cronraft_raft::store::timings`).
fn encode_timings(e: &mut DescriptorEncoder<'_>, t: &cronraft_raft::store::StorageTimings) -> fmt::Result {
    let families = [
        (&t.log_write, "cronraft_storage_log_write_seconds", "sled's write of one log append's entries."),
        (&t.apply_write, "cronraft_storage_apply_write_seconds", "sled's write of one applied batch."),
        (&t.flush, "cronraft_storage_flush_seconds", "sled's flush at a durability point."),
        (&t.fdatasync, "cronraft_storage_fdatasync_seconds", "The fdatasync after each flush."),
    ];
    for (h, name, help) in families {
        h.encode(e.encode_descriptor(name, help, None, MetricType::Histogram)?)?;
    }
    Ok(())
}

/// The scheduler's families, as the scheduler writes them.
struct SchedulerCollector(std::sync::Arc<dyn SchedulerReport>);

impl fmt::Debug for SchedulerCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SchedulerCollector")
    }
}

impl Collector for SchedulerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        self.0.encode(&mut encoder)
    }
}

/// The exposition of the scheduler's families alone (what its golden file pins).
pub fn scheduler_text(report: std::sync::Arc<dyn SchedulerReport>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SchedulerCollector(report)));
    let mut out = String::new();
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// The whole exposition.
pub fn render(ctx: &Ctx) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(RaftCollector(ctx.clone())));
    ctx.metrics.register(&mut registry);
    registry.register_collector(Box::new(SchedulerCollector(ctx.scheduler.clone())));
    registry.register_collector(Box::new(state::StateCollector::new(ctx.clone())));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        // Writing to a String cannot fail; a collector that failed to read the state logged why.
        tracing::warn!(error = %e, "metrics exposition stopped early");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Series lines of the requests counter.
    fn request_series(m: &HttpMetrics) -> Vec<String> {
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        out.lines().filter(|l| l.starts_with("cronraft_http_requests_total{")).map(String::from).collect()
    }

    #[test]
    fn invented_methods_share_one_label_and_add_no_series() {
        let m = HttpMetrics::default();
        m.observe(&Method::GET, "/health", 200, 0.001);
        m.observe(&Method::from_bytes(b"FOOBAR").unwrap(), UNMATCHED, 404, 0.001);
        let before = request_series(&m);
        for i in 0..100 {
            let invented = Method::from_bytes(format!("X{i}").as_bytes()).unwrap();
            m.observe(&invented, UNMATCHED, 404, 0.001);
        }
        let after = request_series(&m);
        assert_eq!(before.len(), after.len(), "{after:?}");
        assert!(after.iter().any(|l| l.contains("method=\"other\",route=\"unmatched\",status=\"404\"} 101")));
        assert!(!after.iter().any(|l| l.contains("FOOBAR") || l.contains("X1")), "{after:?}");
        assert_eq!(method_slot(&Method::PATCH), 4);
        assert_eq!(METHODS[method_slot(&Method::CONNECT)], "other");
    }

    /// The families keep the names and shapes `/metrics` had before the move to the crate.
    #[test]
    fn http_families_keep_their_names_and_buckets() {
        let m = HttpMetrics::default();
        m.observe(&Method::GET, "/health", 200, 0.003);
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        assert!(out.contains("# TYPE cronraft_http_requests_total counter\n"), "{out}");
        assert!(out.contains("cronraft_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1\n"));
        assert!(out.contains("# TYPE cronraft_http_request_duration_seconds histogram\n"), "{out}");
        let bucket = "cronraft_http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\",le=\"0.005\"} 1\n";
        assert!(out.contains(bucket), "{out}");
        let below = "cronraft_http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\",le=\"0.002\"} 0\n";
        assert!(out.contains(below), "{out}");
    }
}
