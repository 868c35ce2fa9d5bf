//! Reading a node's `/metrics` (Prometheus text format, as `src/` writes it: one sample per line,
//! `name value` or `name{labels} value`). Only what the harnesses need: a sample's value by its
//! full name and one histogram's cumulative buckets.

use std::time::Duration;

/// A fetched `/metrics` text.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub text: String,
}

/// One histogram: `(upper bound in seconds, cumulative count)` in the order exposed (the last is
/// `+Inf`), and its `_count`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
}

/// Why a `/metrics` text could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("GET {url}/metrics: {source}")]
    Fetch { url: String, source: reqwest::Error },
    #[error("malformed /metrics line: {0}")]
    Malformed(String),
}

impl Metrics {
    pub fn parse(text: impl Into<String>) -> Metrics {
        Metrics { text: text.into() }
    }

    /// `GET {url}/metrics` within `timeout` (any status with a body is read: a node answers 200).
    pub async fn fetch(http: &reqwest::Client, url: &str, timeout: Duration) -> Result<Metrics, MetricsError> {
        let fetch = |source| MetricsError::Fetch { url: url.into(), source };
        let resp = http.get(format!("{url}/metrics")).timeout(timeout).send().await.map_err(fetch)?;
        let resp = resp.error_for_status().map_err(fetch)?;
        Ok(Metrics::parse(resp.text().await.map_err(fetch)?))
    }

    /// The value of the sample named exactly `name` (labels included, if any), if present and
    /// numeric.
    pub fn value(&self, name: &str) -> Option<f64> {
        let line = self.text.lines().find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(' ')))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    }

    /// The histogram `name` (`name_bucket{le="…"}` lines and `name_count`); empty if absent.
    pub fn histogram(&self, name: &str) -> Result<Histogram, MetricsError> {
        let (bucket_prefix, count_prefix) = (format!("{name}_bucket{{le=\""), format!("{name}_count "));
        let bad = |l: &str| MetricsError::Malformed(l.to_string());
        let mut h = Histogram::default();
        for line in self.text.lines() {
            if let Some(rest) = line.strip_prefix(&bucket_prefix) {
                let (le, value) = rest.split_once("\"} ").ok_or_else(|| bad(line))?;
                let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().map_err(|_| bad(line))? };
                h.buckets.push((bound, value.trim().parse().map_err(|_| bad(line))?));
            } else if let Some(v) = line.strip_prefix(&count_prefix) {
                h.count = v.trim().parse().map_err(|_| bad(line))?;
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE cronraft_storage_syncs_total counter\n\
                        cronraft_storage_syncs_total 42\n\
                        cronraft_storage_syncs_total_extra 7\n\
                        cronraft_fire_lag_seconds_bucket{le=\"0.005\"} 3\n\
                        cronraft_fire_lag_seconds_bucket{le=\"+Inf\"} 5\n\
                        cronraft_fire_lag_seconds_count 5\n";

    #[test]
    fn values_match_the_whole_name_only() {
        let m = Metrics::parse(TEXT);
        assert_eq!(m.value("cronraft_storage_syncs_total"), Some(42.0));
        assert_eq!(m.value("cronraft_storage_syncs"), None, "a prefix is not a name");
        assert_eq!(m.value("cronraft_nothing"), None);
    }

    #[test]
    fn histograms_read_bounds_in_seconds_and_the_count() {
        let h = Metrics::parse(TEXT).histogram("cronraft_fire_lag_seconds").unwrap();
        assert_eq!(h, Histogram { buckets: vec![(0.005, 3), (f64::INFINITY, 5)], count: 5 });
        let bad = Metrics::parse("x_bucket{le=\"a\"} 1\n").histogram("x");
        assert!(matches!(bad, Err(MetricsError::Malformed(_))));
    }
}
