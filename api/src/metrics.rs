//! Prometheus text exposition for `GET /metrics`: Raft gauges read from openraft's metrics, and
//! HTTP request counts and latency histograms by method and route template.
//!
//! Every HTTP label comes from a bounded set, so no request can add a series of its own: the
//! method is one of [`METHODS`] (anything else is `other`, since HTTP allows any token as a
//! method), the route is the matched template (`/api/v1/tasks/{task}`, never the raw path) or
//! `unmatched`, and the status is one the handlers produce. Recording a request allocates only
//! the first time its series is seen.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::context::Ctx;

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

#[derive(Default, Clone)]
struct Series {
    count: u64,
    sum_s: f64,
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    buckets: [u64; BUCKETS_S.len() + 1],
}

impl Series {
    fn add(&mut self, other: &Series) {
        self.count += other.count;
        self.sum_s += other.sum_s;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
    }
}

/// One route's series: per method slot, per status.
type RouteSeries = [BTreeMap<u16, Series>; METHODS.len()];

/// Request counters and latency histograms keyed by (route, method, status).
#[derive(Default)]
pub struct HttpMetrics {
    series: Mutex<BTreeMap<String, RouteSeries>>,
}

impl HttpMetrics {
    /// Records one request; `route` is a route template or [`UNMATCHED`].
    pub fn observe(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        let mut map = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let by_method = match map.get_mut(route) {
            Some(m) => m,
            None => map.entry(route.to_string()).or_default(),
        };
        let s = by_method[method_slot(method)].entry(status).or_default();
        s.count += 1;
        s.sum_s += seconds;
        let slot = BUCKETS_S.iter().position(|b| seconds <= *b).unwrap_or(BUCKETS_S.len());
        s.buckets[slot] += 1;
    }

    /// Appends both HTTP families to `out`.
    pub fn render(&self, out: &mut String) {
        let map = self.series.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str("# HELP cronraft_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE cronraft_http_requests_total counter\n");
        for (r, by_method) in map.iter() {
            for (m, statuses) in METHODS.iter().zip(by_method.iter()) {
                for (st, s) in statuses {
                    let _ = writeln!(
                        out,
                        "cronraft_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{st}\"}} {}",
                        s.count
                    );
                }
            }
        }
        out.push_str("# HELP cronraft_http_request_duration_seconds HTTP request latency by method and route.\n");
        out.push_str("# TYPE cronraft_http_request_duration_seconds histogram\n");
        for (r, by_method) in map.iter() {
            for (m, statuses) in METHODS.iter().zip(by_method.iter()) {
                if statuses.is_empty() {
                    continue;
                }
                let mut s = Series::default();
                statuses.values().for_each(|x| s.add(x));
                render_histogram(out, m, r, &s);
            }
        }
    }
}

fn render_histogram(out: &mut String, m: &str, r: &str, s: &Series) {
    let labels = format!("method=\"{m}\",route=\"{r}\"");
    let mut cumulative = 0;
    for (i, bound) in BUCKETS_S.iter().enumerate() {
        cumulative += s.buckets[i];
        let _ = writeln!(out, "cronraft_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "cronraft_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
    let _ = writeln!(out, "cronraft_http_request_duration_seconds_sum{{{labels}}} {}", s.sum_s);
    let _ = writeln!(out, "cronraft_http_request_duration_seconds_count{{{labels}}} {}", s.count);
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

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}

/// The whole exposition.
pub fn render(ctx: &Ctx) -> String {
    let m = ctx.raft.metrics().borrow().clone();
    let mut out = String::new();
    gauge(&mut out, "cronraft_raft_term", "Current Raft term.", m.current_term);
    gauge(
        &mut out,
        "cronraft_raft_leader_id",
        "Leader node id as seen by this node (0 = none).",
        m.current_leader.unwrap_or(0),
    );
    let is_leader = u8::from(m.current_leader == Some(ctx.node_id));
    gauge(&mut out, "cronraft_raft_is_leader", "1 if this node is the leader.", is_leader);
    gauge(&mut out, "cronraft_raft_last_log_index", "Last log index on this node.", m.last_log_index.unwrap_or(0));
    let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
    gauge(&mut out, "cronraft_raft_applied_index", "Last applied log index on this node.", applied);
    let snapshot = m.snapshot.map(|l| l.index).unwrap_or(0);
    gauge(&mut out, "cronraft_raft_snapshot_index", "Last log index covered by this node's snapshot.", snapshot);
    let purged = m.purged.map(|l| l.index).unwrap_or(0);
    gauge(&mut out, "cronraft_raft_purged_index", "Log entries up to this index are purged here.", purged);
    let voters = m.membership_config.membership().voter_ids().count();
    let members = m.membership_config.nodes().count();
    gauge(&mut out, "cronraft_raft_voters", "Voters in the membership config.", voters);
    gauge(&mut out, "cronraft_raft_members", "Voters and learners in the membership config.", members);
    let syncs = ctx.sm.sync_count();
    let _ = writeln!(
        out,
        "# HELP cronraft_storage_syncs_total fdatasync calls made by the storage layer.\n# TYPE cronraft_storage_syncs_total counter\ncronraft_storage_syncs_total {syncs}"
    );
    // The replicated outbox (the same on every node that applied as far): notifications not yet
    // delivered, and those dropped because the outbox was full.
    if let Ok(o) = ctx.sm.view().outbox_stats() {
        let help = "Notifications waiting for delivery (replicated outbox).";
        gauge(&mut out, "cronraft_notification_outbox_depth", help, o.depth);
        let _ = writeln!(
            out,
            "# HELP cronraft_notification_dropped_total Notifications dropped because the outbox was full.\n# TYPE cronraft_notification_dropped_total counter\ncronraft_notification_dropped_total {}",
            o.dropped
        );
    }
    ctx.metrics.render(&mut out);
    ctx.scheduler.render(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Series lines of the requests counter.
    fn request_series(m: &HttpMetrics) -> Vec<String> {
        let mut out = String::new();
        m.render(&mut out);
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
}
