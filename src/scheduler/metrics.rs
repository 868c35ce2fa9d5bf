//! What the leader's scheduler reports, and how: fire lag (commit of the fire − the slot),
//! applied lag (the leader's apply of the fire − the slot), fires, batches, whether it runs, and
//! the last hour minute by minute ([`super::history`]).
//! Updated by the scheduler, read by the API through [`SchedulerReport`] for `/metrics` and
//! `/scheduler/status` (the API crate defines the trait and the [`LagSummary`] view; the data and
//! its Prometheus families live here, with the service that fills them). The histograms are
//! `prometheus-client`'s; the recent lags beside them give `/scheduler/status` its percentiles.
//!
//! Two lags because they part ways under a burst: the commit is when the slot is durable on a
//! majority and accounted for (the issue's definition of fire lag), the apply is when its record
//! exists on the leader and its first attempt can go out. A 100,000-slot burst commits in a few
//! seconds and takes longer to apply on every node.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use cronraft_api::metrics::{counter, gauge};
use cronraft_api::scheduler_metrics::{LagSummary, MinuteLag, SchedulerReport};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;

use super::history::History;

/// Fire-lag histogram bounds, in milliseconds.
const LAG_BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 250, 500, 1_000, 1_500, 5_000];
/// How many recent lags are kept for percentiles.
const RECENT_LAGS_MAX: usize = 10_000;

struct Lags {
    /// In seconds, with [`LAG_BUCKETS_MS`] as its bounds.
    histogram: Histogram,
    /// The most recent lags (ms), oldest first, bounded by [`RECENT_LAGS_MAX`].
    recent: VecDeque<u64>,
}

impl Default for Lags {
    fn default() -> Self {
        let bounds_s = LAG_BUCKETS_MS.iter().map(|ms| *ms as f64 / 1000.0);
        Lags { histogram: Histogram::new(bounds_s), recent: VecDeque::new() }
    }
}

/// Counters and the lag histograms.
#[derive(Default)]
pub struct SchedulerMetrics {
    /// Commit of the fire entry − slot.
    lags: Mutex<Lags>,
    /// The leader's apply of the fire entry − slot.
    applied_lags: Mutex<Lags>,
    /// Fires, fire lag and missed slots per minute of the last hour.
    history: Mutex<History>,
    /// Fire entries committed by this node while leader.
    pub batches: AtomicU64,
    /// 1 while this node's scheduler runs (it leads).
    pub running: AtomicU64,
    /// Tasks in the timer structure.
    pub timers: AtomicU64,
}

impl Lags {
    fn observe(&mut self, lags_ms: impl IntoIterator<Item = u64>) {
        for lag in lags_ms {
            self.histogram.observe(lag as f64 / 1000.0);
            if self.recent.len() == RECENT_LAGS_MAX {
                self.recent.pop_front();
            }
            self.recent.push_back(lag);
        }
    }

    fn summary(&self) -> LagSummary {
        let mut v: Vec<u64> = self.recent.iter().copied().collect();
        if v.is_empty() {
            return LagSummary::default();
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        LagSummary { samples: v.len() as u64, p50_ms: at(0.5), p99_ms: at(0.99), max_ms: *v.last().unwrap_or(&0) }
    }

    fn encode(&self, e: &mut DescriptorEncoder<'_>, name: &str, help: &str) -> std::fmt::Result {
        self.histogram.encode(e.encode_descriptor(name, help, None, MetricType::Histogram)?)
    }
}

impl SchedulerMetrics {
    /// Records the fire lag (commit − slot) of each fired slot.
    pub fn observe(&self, lags_ms: impl IntoIterator<Item = u64>) {
        self.lags.lock().unwrap_or_else(|p| p.into_inner()).observe(lags_ms);
    }

    /// Records the applied lag (the leader's apply − slot) of each fired slot.
    pub fn observe_applied(&self, lags_ms: impl IntoIterator<Item = u64>) {
        self.applied_lags.lock().unwrap_or_else(|p| p.into_inner()).observe(lags_ms);
    }

    /// Counts a committed fire entry into the minute of `committed_ms`: its slots' fire lags and
    /// the slots it recorded missed.
    pub fn observe_minute(&self, committed_ms: i64, lags_ms: impl IntoIterator<Item = u64>, missed: u64) {
        self.history.lock().unwrap_or_else(|p| p.into_inner()).record(committed_ms, lags_ms, missed);
    }

    /// The last hour's minutes that had fires or missed slots, as of `now_ms`.
    pub fn history_at(&self, now_ms: i64) -> Vec<MinuteLag> {
        self.history.lock().unwrap_or_else(|p| p.into_inner()).minutes(now_ms)
    }

    /// p50/p99/max over the recent fire lags.
    pub fn summary(&self) -> LagSummary {
        self.lags.lock().unwrap_or_else(|p| p.into_inner()).summary()
    }

    /// p50/p99/max over the recent applied lags.
    pub fn applied_summary(&self) -> LagSummary {
        self.applied_lags.lock().unwrap_or_else(|p| p.into_inner()).summary()
    }

    /// The scheduler's Prometheus families.
    pub fn encode(&self, e: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let lags = self.lags.lock().unwrap_or_else(|p| p.into_inner());
        lags.encode(e, "cronraft_fire_lag_seconds", "Commit time of a fire minus its slot.")?;
        drop(lags);
        let applied = self.applied_lags.lock().unwrap_or_else(|p| p.into_inner());
        applied.encode(e, "cronraft_fire_applied_lag_seconds", "The leader's apply of a fire minus its slot.")?;
        drop(applied);
        let batches = self.batches.load(Ordering::Relaxed);
        counter(e, "cronraft_fire_batches", "Fire entries committed while leading.", batches)?;
        let running = self.running.load(Ordering::Relaxed) as i64;
        gauge(e, "cronraft_scheduler_running", "1 while this node's scheduler runs.", running)?;
        let timers = self.timers.load(Ordering::Relaxed) as i64;
        gauge(e, "cronraft_scheduler_timers", "Tasks in the scheduler's timer structure.", timers)
    }
}

impl SchedulerReport for SchedulerMetrics {
    fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed) == 1
    }

    fn timers(&self) -> u64 {
        self.timers.load(Ordering::Relaxed)
    }

    fn summary(&self) -> LagSummary {
        SchedulerMetrics::summary(self)
    }

    fn applied_summary(&self) -> LagSummary {
        SchedulerMetrics::applied_summary(self)
    }

    fn history(&self) -> Vec<MinuteLag> {
        if !self.running() {
            return Vec::new();
        }
        self.history_at(crate::clock::now_ms())
    }

    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        SchedulerMetrics::encode(self, encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_and_applied_lags_are_kept_apart_and_both_rendered() {
        let m = SchedulerMetrics::default();
        m.observe([3, 4]);
        m.observe_applied([700, 900]);
        let (fire, applied) = (m.summary(), m.applied_summary());
        assert_eq!((fire.samples, fire.max_ms), (2, 4));
        assert_eq!((applied.samples, applied.max_ms), (2, 900));

        let text = cronraft_api::metrics::scheduler_text(std::sync::Arc::new(m));
        // Both lags of 3 and 4 ms fall in the 5 ms bucket; both applied lags in the 1 s one.
        assert!(text.contains("cronraft_fire_lag_seconds_bucket{le=\"0.005\"} 2\n"), "{text}");
        assert!(text.contains("cronraft_fire_lag_seconds_bucket{le=\"0.002\"} 0\n"), "{text}");
        assert!(text.contains("cronraft_fire_applied_lag_seconds_bucket{le=\"0.5\"} 0\n"), "{text}");
        assert!(text.contains("cronraft_fire_applied_lag_seconds_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("cronraft_fire_applied_lag_seconds_count 2\n"), "{text}");
    }

    /// What the API serves of the scheduler: the Prometheus text (`metrics_golden.prom`, first
    /// written by the API crate's own type before the scheduler's figures moved here, and taken
    /// again when the exposition moved to `prometheus-client`: same names, buckets and counts;
    /// the sums are now summed in seconds) and the `/scheduler/status` lag JSON.
    #[test]
    fn the_api_reads_the_pinned_text_and_json() {
        let m = SchedulerMetrics::default();
        m.observe([3, 4, 1_200, 7_000]);
        m.observe_applied([700, 900]);
        m.batches.store(5, Ordering::Relaxed);
        m.running.store(1, Ordering::Relaxed);
        m.timers.store(7, Ordering::Relaxed);
        // Read as the API reads it: through the trait object.
        let report: std::sync::Arc<dyn SchedulerReport> = std::sync::Arc::new(m);
        let text = cronraft_api::metrics::scheduler_text(report.clone());
        assert_eq!(text, include_str!("metrics_golden.prom"));
        let json = serde_json::to_string(&(report.summary(), report.applied_summary())).unwrap();
        let before = r#"[{"samples":4,"p50_ms":1200,"p99_ms":7000,"max_ms":7000},{"samples":2,"p50_ms":900,"p99_ms":900,"max_ms":900}]"#;
        assert_eq!(json, before);
        assert!(report.running() && report.timers() == 7);
    }

    /// The history is the leader's: a node whose scheduler does not run shows none.
    #[test]
    fn the_history_shows_only_while_the_scheduler_runs() {
        let m = std::sync::Arc::new(SchedulerMetrics::default());
        let now = crate::clock::now_ms();
        m.observe_minute(now, [3, 4, 5], 1);
        let report: std::sync::Arc<dyn SchedulerReport> = m.clone();
        assert!(report.history().is_empty());
        m.running.store(1, Ordering::Relaxed);
        let minutes = report.history();
        assert_eq!(minutes.len(), 1);
        assert_eq!((minutes[0].fires, minutes[0].p50_ms, minutes[0].p99_ms, minutes[0].missed), (3, 4, 5, 1));
    }
}
