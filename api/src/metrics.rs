//! Prometheus text exposition for `GET /metrics`: Raft gauges read from openraft's metrics, and
//! HTTP request counts and latency histograms by route template (not by raw path, so the number
//! of series stays bounded by the number of routes).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::context::Ctx;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS_S: [f64; 12] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Series {
    count: u64,
    sum_s: f64,
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    buckets: [u64; BUCKETS_S.len() + 1],
}

/// Request counters and latency histograms keyed by (method, route, status).
#[derive(Default)]
pub struct HttpMetrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl HttpMetrics {
    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut map = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.entry((method.to_string(), route.to_string(), status)).or_default();
        s.count += 1;
        s.sum_s += seconds;
        let slot = BUCKETS_S.iter().position(|b| seconds <= *b).unwrap_or(BUCKETS_S.len());
        s.buckets[slot] += 1;
    }

    fn render(&self, out: &mut String) {
        let map = self.series.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str("# HELP cronraft_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE cronraft_http_requests_total counter\n");
        for ((m, r, st), s) in map.iter() {
            let _ = writeln!(
                out,
                "cronraft_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{st}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP cronraft_http_request_duration_seconds HTTP request latency by method and route.\n");
        out.push_str("# TYPE cronraft_http_request_duration_seconds histogram\n");
        let mut by_route: BTreeMap<(String, String), Series> = BTreeMap::new();
        for ((m, r, _), s) in map.iter() {
            let agg = by_route.entry((m.clone(), r.clone())).or_default();
            agg.count += s.count;
            agg.sum_s += s.sum_s;
            for (a, b) in agg.buckets.iter_mut().zip(s.buckets.iter()) {
                *a += b;
            }
        }
        for ((m, r), s) in by_route {
            let labels = format!("method=\"{m}\",route=\"{r}\"");
            let mut cumulative = 0;
            for (i, bound) in BUCKETS_S.iter().enumerate() {
                cumulative += s.buckets[i];
                let _ = writeln!(
                    out,
                    "cronraft_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(out, "cronraft_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
            let _ = writeln!(out, "cronraft_http_request_duration_seconds_sum{{{labels}}} {}", s.sum_s);
            let _ = writeln!(out, "cronraft_http_request_duration_seconds_count{{{labels}}} {}", s.count);
        }
    }
}

/// Middleware recording every request under its route template.
pub async fn track(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    ctx.metrics.observe(&method, &route, resp.status().as_u16(), start.elapsed().as_secs_f64());
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
    ctx.metrics.render(&mut out);
    ctx.scheduler.render(&mut out);
    out
}
