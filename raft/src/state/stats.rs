//! Per-task statistics: hourly rollups maintained in apply, and the report built from them.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `k/` | task id + hour (i64 BE, hours since the epoch of the slot) | [`Rollup`] |
//!
//! Every execution counts once, in the hour of its slot: at creation (on time or late) and when
//! it reaches a final status (the status, and the duration of a run). Reports read at most
//! 90 × 24 rollups of one task, never the execution history, so they cost the same for a task
//! with a million records; retention drops records but keeps rollups for [`ROLLUP_HOURS_KEPT`].
//! Hourly rather than daily buckets make "the last 24 hours" exact; the daily trend sums them.

use serde::{Deserialize, Serialize};

use super::keys;
use super::StateView;
use crate::codec;
use crate::error::StoreError;
use crate::model::{Execution, ExecutionStatus, Trigger};
use crate::txn::WriteSet;

const HOUR_MS: i64 = 3_600_000;
/// A scheduled run that started (was fired) at most this late counts as on time.
pub const ON_TIME_MS: i64 = 1_000;
/// Rollups older than this are purged by retention (the longest report window, plus a margin).
pub const ROLLUP_HOURS_KEPT: i64 = 91 * 24;
/// Duration histogram buckets: bucket `i` holds durations below `10 ms × 2^i`; the last is open.
const BUCKETS: usize = 24;

/// What happened to a task's executions whose slot fell in one hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollup {
    /// Final executions per status, indexed by `ExecutionStatus::code() - 1`.
    pub counts: [u64; 8],
    /// Scheduled runs fired within [`ON_TIME_MS`] of their slot, and those fired later.
    pub on_time: u64,
    pub late: u64,
    pub duration_ms_sum: u64,
    pub duration_n: u64,
    pub duration_hist: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum StoredRollup {
    V1(Rollup),
}

fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS)
}

fn decode(bytes: &[u8]) -> Result<Rollup, StoreError> {
    let StoredRollup::V1(r) = codec::decode(bytes)?;
    Ok(r)
}

fn bucket_of(duration_ms: u64) -> usize {
    let mut limit = 10u64;
    for i in 0..BUCKETS - 1 {
        if duration_ms < limit {
            return i;
        }
        limit = limit.saturating_mul(2);
    }
    BUCKETS - 1
}

/// Counts what changed about `exec` (from `old`, if it existed) into its hour's rollup.
pub(super) fn record_transition(
    ws: &mut WriteSet<'_>,
    exec: &Execution,
    old: Option<&Execution>,
) -> Result<(), StoreError> {
    let created = old.is_none();
    let ended = !exec.status.is_active() && old.map(|o| o.status.is_active()).unwrap_or(true);
    let scheduled = matches!(exec.trigger, Trigger::Schedule | Trigger::Catchup);
    let fired = created && scheduled && !matches!(exec.status, ExecutionStatus::Missed | ExecutionStatus::Skipped);
    if !fired && !ended {
        return Ok(());
    }
    let key = keys::rollup(exec.task_id, hour_of(exec.scheduled_ms));
    let mut r = match ws.get(&key)? {
        Some(b) => decode(&b)?,
        None => Rollup::default(),
    };
    if fired {
        if exec.trigger == Trigger::Schedule && exec.created_ms - exec.scheduled_ms <= ON_TIME_MS {
            r.on_time += 1;
        } else {
            r.late += 1;
        }
    }
    if ended {
        r.counts[exec.status.code() as usize - 1] += exec.slot_count.max(1);
        if let (Some(start), Some(end)) = (exec.start_ms, exec.end_ms) {
            let d = end.saturating_sub(start).max(0) as u64;
            r.duration_ms_sum = r.duration_ms_sum.saturating_add(d);
            r.duration_n += 1;
            r.duration_hist.resize(BUCKETS, 0);
            r.duration_hist[bucket_of(d)] += 1;
        }
    }
    ws.insert(key, codec::encode(&StoredRollup::V1(r))?);
    Ok(())
}

/// Totals over a window of hours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowStats {
    pub total: u64,
    pub success: u64,
    pub failed: u64,
    pub timeout: u64,
    pub cancelled: u64,
    pub skipped: u64,
    pub missed: u64,
    pub on_time: u64,
    pub late: u64,
    pub duration_ms_sum: u64,
    pub duration_n: u64,
    pub duration_hist: Vec<u64>,
}

impl WindowStats {
    fn add(&mut self, r: &Rollup) {
        let c = |s: ExecutionStatus| r.counts[s.code() as usize - 1];
        self.success += c(ExecutionStatus::Success);
        self.failed += c(ExecutionStatus::Failed);
        self.timeout += c(ExecutionStatus::Timeout);
        self.cancelled += c(ExecutionStatus::Cancelled);
        self.skipped += c(ExecutionStatus::Skipped);
        self.missed += c(ExecutionStatus::Missed);
        self.total = self.success + self.failed + self.timeout + self.cancelled + self.skipped + self.missed;
        self.on_time += r.on_time;
        self.late += r.late;
        self.duration_ms_sum += r.duration_ms_sum;
        self.duration_n += r.duration_n;
        self.duration_hist.resize(BUCKETS, 0);
        for (i, n) in r.duration_hist.iter().enumerate().take(BUCKETS) {
            self.duration_hist[i] += n;
        }
    }

    /// Successes over runs that ended success, failed or timeout; `None` without any.
    pub fn success_rate(&self) -> Option<f64> {
        let runs = self.success + self.failed + self.timeout;
        (runs > 0).then(|| self.success as f64 / runs as f64)
    }

    pub fn avg_duration_ms(&self) -> Option<f64> {
        (self.duration_n > 0).then(|| self.duration_ms_sum as f64 / self.duration_n as f64)
    }

    /// The upper bound of the histogram bucket holding the 95th percentile.
    pub fn p95_duration_ms(&self) -> Option<u64> {
        if self.duration_n == 0 {
            return None;
        }
        let rank = (self.duration_n * 95).div_ceil(100);
        let mut seen = 0;
        for (i, n) in self.duration_hist.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(10u64.saturating_mul(1 << i));
            }
        }
        None
    }
}

/// A task's report: windows ending at `now_ms`, and one entry per UTC day of the last 90 days
/// that had anything.
#[derive(Debug, Clone, Default)]
pub struct TaskStats {
    pub last_24h: WindowStats,
    pub last_7d: WindowStats,
    pub last_90d: WindowStats,
    /// (day start in UTC ms, that day's totals), oldest first.
    pub daily: Vec<(i64, WindowStats)>,
}

impl StateView {
    /// The task's statistics as of `now_ms` (the caller's clock; reads are not replicated).
    pub fn task_stats(&self, task: u64, now_ms: i64) -> Result<TaskStats, StoreError> {
        let now_hour = hour_of(now_ms);
        let first = now_hour - 90 * 24 + 1;
        let mut out = TaskStats::default();
        let start = keys::rollup(task, first);
        let end = keys::rollup(task, now_hour + 1);
        for kv in self.tree.range(start..end) {
            let (k, v) = kv?;
            let hour = keys::parse_rollup_hour(&k);
            let r = decode(&v)?;
            let age = now_hour - hour;
            if age < 24 {
                out.last_24h.add(&r);
            }
            if age < 7 * 24 {
                out.last_7d.add(&r);
            }
            out.last_90d.add(&r);
            let day = hour.div_euclid(24) * 24 * HOUR_MS;
            match out.daily.last_mut() {
                Some((d, w)) if *d == day => w.add(&r),
                _ => {
                    let mut w = WindowStats::default();
                    w.add(&r);
                    out.daily.push((day, w));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p95_lands_in_the_bucket_holding_the_95th_run() {
        let mut w = WindowStats::default();
        let mut r = Rollup { duration_hist: vec![0; BUCKETS], ..Default::default() };
        r.duration_hist[bucket_of(5)] = 90; // < 10 ms
        r.duration_hist[bucket_of(1_500)] = 10; // < 2,560 ms
        r.duration_n = 100;
        w.add(&r);
        assert_eq!(w.p95_duration_ms(), Some(2_560));
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }
}
