//! The leader's fire-lag history, for the overview's chart: per wall-clock minute of the last
//! hour, the slots fired (in fire entries committed that minute), their fire lag's p50 and p99,
//! and the slots those entries recorded `missed`.
//!
//! Bounded and cheap on the fire path: a ring of 60 minutes allocated once (60 × 336 counters),
//! filled under one lock per committed fire entry; each slot costs a bucket index (from its
//! lag's leading zeros) and an increment. A percentile is read from the buckets: lags below
//! 32 ms exactly, above that within 1/16 (16 buckets per doubling, up to 2^24 ms, about 4.6
//! hours, where larger lags are counted), and never above the minute's largest lag. Exact
//! percentiles would need every lag of the minute, 300,000 of them at 5,000 fires a second.

use cronraft_api::scheduler_metrics::MinuteLag;

const MINUTE_MS: i64 = 60_000;
/// Minutes kept: the chart's hour.
const MINUTES: usize = 60;
/// Lags below this many ms have a bucket each.
const EXACT_MS: u64 = 32;
/// Larger lags are counted as this one.
const LAG_MS_MAX: u64 = (1 << 24) - 1;
/// 32 exact buckets, then 16 for each doubling from 32 ms to 2^24 ms.
const BUCKETS: usize = 32 + 19 * 16;

/// The bucket of a lag.
fn bucket(lag_ms: u64) -> usize {
    let v = lag_ms.min(LAG_MS_MAX);
    if v < EXACT_MS {
        return v as usize;
    }
    let doubling = 63 - u64::from(v.leading_zeros()); // 5 for 32..63
    let sub = (v >> (doubling - 4)) & 15;
    (EXACT_MS + (doubling - 5) * 16 + sub) as usize
}

/// The largest lag in bucket `b`.
fn upper_ms(b: usize) -> u64 {
    let b = b as u64;
    if b < EXACT_MS {
        return b;
    }
    let (doubling, sub) = ((b - EXACT_MS) / 16 + 5, (b - EXACT_MS) % 16);
    ((16 + sub + 1) << (doubling - 4)) - 1
}

/// One minute's fires.
struct Minute {
    /// Minutes since the epoch (`i64::MIN`: never used).
    minute: i64,
    fires: u64,
    missed: u64,
    max_ms: u64,
    counts: Vec<u32>,
}

impl Minute {
    fn reset(&mut self, minute: i64) {
        (self.minute, self.fires, self.missed, self.max_ms) = (minute, 0, 0, 0);
        self.counts.iter_mut().for_each(|c| *c = 0);
    }

    /// The upper end of the bucket holding the `q` quantile, at most the largest lag.
    fn quantile_ms(&self, q: f64) -> u64 {
        let rank = ((self.fires as f64 * q).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (b, n) in self.counts.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                return upper_ms(b).min(self.max_ms);
            }
        }
        self.max_ms
    }
}

/// The last hour of fires, minute by minute.
pub struct History {
    ring: Vec<Minute>,
}

impl Default for History {
    fn default() -> Self {
        let empty = || Minute { minute: i64::MIN, fires: 0, missed: 0, max_ms: 0, counts: vec![0; BUCKETS] };
        History { ring: (0..MINUTES).map(|_| empty()).collect() }
    }
}

impl History {
    /// Counts one committed fire entry: committed at `at_ms` (wall clock), its slots' lags, and
    /// the slots it recorded missed. A minute older than its place holds (the clock stepped back
    /// an hour) is not counted.
    pub fn record(&mut self, at_ms: i64, lags_ms: impl IntoIterator<Item = u64>, missed: u64) {
        let minute = at_ms.div_euclid(MINUTE_MS);
        let m = &mut self.ring[minute.rem_euclid(MINUTES as i64) as usize];
        if m.minute > minute {
            return;
        }
        if m.minute < minute {
            m.reset(minute);
        }
        for lag in lags_ms {
            let c = &mut m.counts[bucket(lag)];
            *c = c.saturating_add(1);
            m.fires += 1;
            m.max_ms = m.max_ms.max(lag);
        }
        m.missed += missed;
    }

    /// The minutes of the hour up to `now_ms` that had fires or missed slots, oldest first.
    pub fn minutes(&self, now_ms: i64) -> Vec<MinuteLag> {
        let now = now_ms.div_euclid(MINUTE_MS);
        let mut out: Vec<MinuteLag> = self
            .ring
            .iter()
            .filter(|m| m.minute > now - MINUTES as i64 && m.minute <= now && (m.fires > 0 || m.missed > 0))
            .map(|m| MinuteLag {
                minute_ms: m.minute * MINUTE_MS,
                fires: m.fires,
                p50_ms: if m.fires > 0 { m.quantile_ms(0.5) } else { 0 },
                p99_ms: if m.fires > 0 { m.quantile_ms(0.99) } else { 0 },
                missed: m.missed,
            })
            .collect();
        out.sort_by_key(|m| m.minute_ms);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE_MS;

    #[test]
    fn buckets_cover_every_lag_and_bound_it_within_a_sixteenth() {
        let mut last = 0;
        for v in (0..100_000u64).chain([LAG_MS_MAX - 1, LAG_MS_MAX, u64::MAX]) {
            let b = bucket(v);
            assert!(b < BUCKETS && b >= last, "{v} in bucket {b}");
            last = b;
            let up = upper_ms(b);
            assert!(v.min(LAG_MS_MAX) <= up && up - v.min(LAG_MS_MAX) <= up / 16, "{v} → ≤ {up}");
        }
        assert_eq!((bucket(31), bucket(32), upper_ms(32), bucket(64), upper_ms(bucket(63))), (31, 32, 33, 48, 63));
    }

    #[test]
    fn each_minute_keeps_its_fires_percentiles_and_missed_slots() {
        let mut h = History::default();
        // Phase 1: minute 0 has 100 fires (98 at 2 ms, one at 700, one at 5,000) and 3 missed;
        // minute 2 only missed slots.
        h.record(T0 + 1_000, std::iter::repeat_n(2, 98).chain([700, 5_000]), 3);
        h.record(T0 + 2 * MINUTE_MS, [], 4);
        let got = h.minutes(T0 + 2 * MINUTE_MS + 5);
        assert_eq!(got.len(), 2, "minute 1 had nothing");
        assert_eq!((got[0].minute_ms, got[0].fires, got[0].p50_ms, got[0].missed), (T0, 100, 2, 3));
        assert!((700..=700 + 700 / 16).contains(&got[0].p99_ms), "{}", got[0].p99_ms);
        assert_eq!((got[1].fires, got[1].p50_ms, got[1].p99_ms, got[1].missed), (0, 0, 0, 4));
        // Phase 2: an hour later minute 0's place is reused; older minutes leave the window.
        h.record(T0 + 60 * MINUTE_MS, [9], 0);
        let got = h.minutes(T0 + 61 * MINUTE_MS);
        assert_eq!(got.iter().map(|m| (m.minute_ms - T0) / MINUTE_MS).collect::<Vec<_>>(), [2, 60]);
        assert_eq!((got[1].fires, got[1].p99_ms), (1, 9));
        // Phase 3: a commit stamped an hour back (the clock stepped) is not counted.
        h.record(T0, [1], 0);
        assert_eq!(h.minutes(T0 + 61 * MINUTE_MS)[1].fires, 1);
    }
}
