//! Statistics: hourly rollups maintained in apply, per task and for the whole cluster, and the
//! reports built from them.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `k/` | task id + hour (i64 BE, hours since the epoch of the slot) | [`Rollup`] |
//! | `k/` | [`CLUSTER`] (task id 0) + hour | [`Rollup`]: every task's executions together |
//! | `c/minutes` | (one key) | [`Minutes`]: fires and missed slots of the last 64 minutes |
//!
//! Every execution counts once, in the hour of its slot: at creation (on time or late) and when
//! it reaches a final status (the status, and the duration of a run). Reports read at most
//! 90 × 24 rollups of one task, never the execution history, so they cost the same for a task
//! with a million records; retention drops records but keeps rollups for [`ROLLUP_HOURS_KEPT`].
//! Hourly rather than daily buckets make "the last 24 hours" exact; the daily trend sums them.
//!
//! The cluster's rollups are the same records under task id 0, which no task ever has (ids start
//! at 1), so the cluster report is the per-task report's code and costs the same whatever the
//! number of tasks. Its "last hour" needs minutes: one small ring of 64 per-minute counters, keyed
//! by the minute of the slot, one key that retention never has to visit.

use serde::{Deserialize, Serialize};

use super::keys;
use super::StateView;
use crate::codec;
use crate::error::StoreError;
use crate::model::{Execution, ExecutionStatus, Trigger};
use crate::txn::WriteSet;

const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;
/// The reserved task id of the cluster-wide rollups (task ids start at 1).
pub const CLUSTER: u64 = 0;
/// Minutes in the cluster's minute ring: the last hour and a few minutes of clock skew.
const RING_MINUTES: usize = 64;
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

/// Fires and missed slots of one minute (of the slots' time), for the cluster's last hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteCount {
    /// Minutes since the epoch.
    pub minute: i64,
    /// Scheduled slots fired (on time or late), as `on_time + late` of a rollup.
    pub fires: u64,
    /// Slots recorded `missed` (a summarized record counts each slot).
    pub missed: u64,
}

/// The ring of the cluster's recent minutes: minute `m` lives at `m mod 64`, so a minute's
/// counters are overwritten only by a minute 64 later.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Minutes {
    pub slots: Vec<MinuteCount>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum StoredMinutes {
    V1(Minutes),
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

/// Counts what changed about `exec` (from `old`, if it existed) into its hour's rollup, the
/// cluster's rollup of that hour, and the cluster's minute ring.
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
    let hour = hour_of(exec.scheduled_ms);
    for key in [keys::rollup(exec.task_id, hour), keys::rollup(CLUSTER, hour)] {
        count_into(ws, key, exec, fired, ended)?;
    }
    let missed = if ended && exec.status == ExecutionStatus::Missed { exec.slot_count.max(1) } else { 0 };
    if fired || missed > 0 {
        count_minute(ws, exec.scheduled_ms.div_euclid(MINUTE_MS), u64::from(fired), missed)?;
    }
    Ok(())
}

/// Adds one transition of `exec` to the rollup under `key`.
fn count_into(
    ws: &mut WriteSet<'_>,
    key: Vec<u8>,
    exec: &Execution,
    fired: bool,
    ended: bool,
) -> Result<(), StoreError> {
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

fn decode_minutes(bytes: &[u8]) -> Result<Minutes, StoreError> {
    let StoredMinutes::V1(m) = codec::decode(bytes)?;
    Ok(m)
}

/// Adds fires and missed slots to `minute` in the ring. A minute older than the one its place
/// holds is past the ring's reach (a slot recorded long after its time): it is not counted.
fn count_minute(ws: &mut WriteSet<'_>, minute: i64, fires: u64, missed: u64) -> Result<(), StoreError> {
    let mut ring = ws.get(keys::CLUSTER_MINUTES)?.map(|b| decode_minutes(&b)).transpose()?.unwrap_or_default();
    ring.slots.resize(RING_MINUTES, MinuteCount { minute: i64::MIN, fires: 0, missed: 0 });
    let slot = &mut ring.slots[minute.rem_euclid(RING_MINUTES as i64) as usize];
    if slot.minute > minute {
        return Ok(());
    }
    if slot.minute < minute {
        *slot = MinuteCount { minute, fires: 0, missed: 0 };
    }
    slot.fires += fires;
    slot.missed += missed;
    ws.insert(keys::CLUSTER_MINUTES.to_vec(), codec::encode(&StoredMinutes::V1(ring))?);
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

/// Fires and missed slots whose slot fell in the last 60 minutes (the current one included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LastHour {
    pub fires: u64,
    pub missed: u64,
}

impl StateView {
    /// The whole cluster's statistics as of `now_ms`: every task's executions together, from the
    /// cluster's rollups (at most 90 × 24 reads, whatever the number of tasks).
    pub fn cluster_stats(&self, now_ms: i64) -> Result<TaskStats, StoreError> {
        self.task_stats(CLUSTER, now_ms)
    }

    /// Fires and missed slots of the last 60 minutes as of `now_ms`, from the minute ring.
    pub fn cluster_last_hour(&self, now_ms: i64) -> Result<LastHour, StoreError> {
        let now = now_ms.div_euclid(MINUTE_MS);
        let ring = self.tree.get(keys::CLUSTER_MINUTES)?.map(|b| decode_minutes(&b)).transpose()?.unwrap_or_default();
        let recent = ring.slots.iter().filter(|m| m.minute > now - 60 && m.minute <= now);
        Ok(recent
            .fold(LastHour::default(), |acc, m| LastHour { fires: acc.fires + m.fires, missed: acc.missed + m.missed }))
    }

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
