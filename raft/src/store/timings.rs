//! How long the storage layer's steps take on this node: the sled writes of log entries and of
//! applied batches, and the two halves of a durability point (sled's flush, then `fdatasync`).
//!
//! Why: every fire and every write waits for a log append and its sync on a majority, so a slow
//! disk or a stalled sled shows up first as fire lag, with nothing saying which step was slow.
//! etcd exposes the same split (`etcd_disk_wal_fsync_duration_seconds`,
//! `etcd_disk_backend_commit_duration_seconds`) for the same reason. These histograms are the
//! node's own (not replicated state): the API encodes them into `/metrics`.

use std::time::Instant;

use prometheus_client::metrics::histogram::Histogram;

/// Bucket bounds in seconds: 0.5 ms to 5 s, the range between a quiet SSD and a stalled disk.
const BUCKETS_S: [f64; 13] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The storage layer's step durations. Shared by the log store, the state machine and
/// [`super::Durability`]; each histogram takes its own short lock per observation.
pub struct StorageTimings {
    /// sled's write of one append's entries (and the purged entries it deletes).
    pub log_write: Histogram,
    /// sled's write of one applied batch, with its pre-images read first.
    pub apply_write: Histogram,
    /// sled's flush at a durability point: its dirty pages into its file.
    pub flush: Histogram,
    /// The `fdatasync` after the flush: the file on stable storage.
    pub fdatasync: Histogram,
}

impl Default for StorageTimings {
    fn default() -> Self {
        let h = || Histogram::new(BUCKETS_S);
        StorageTimings { log_write: h(), apply_write: h(), flush: h(), fdatasync: h() }
    }
}

/// Runs `f` and records its duration in `into`.
pub fn timed<R>(into: &Histogram, f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let out = f();
    into.observe(start.elapsed().as_secs_f64());
    out
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn a_timed_step_is_counted_in_the_bucket_of_its_duration() {
        let t = StorageTimings::default();
        let v = timed(&t.flush, || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            7
        });
        assert_eq!(v, 7, "timed returns what the step returned");
        let mut registry = Registry::default();
        registry.register("flush_seconds", "test", t.flush.clone());
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains("flush_seconds_count 1"), "{text}");
        assert!(text.contains("flush_seconds_bucket{le=\"0.025\"} 0"), "a 30 ms step is above 25 ms: {text}");
        assert!(text.contains("flush_seconds_bucket{le=\"+Inf\"} 1"), "{text}");
    }
}
