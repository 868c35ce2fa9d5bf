//! Mapping local wall-clock slots onto UTC instants under the DST rule.
//!
//! The `cron` crate is run on *naive* local time (a `DateTime<Utc>` whose
//! fields are the local wall clock), so it never sees a gap or a fold. Each
//! naive slot `n` is then resolved in the task's zone:
//!
//! * exists once → that instant;
//! * in a fold (autumn repeat) → `earliest(n)` and, when folds fire twice,
//!   also `latest(n)`;
//! * in a gap (spring forward) → the transition instant when gaps shift,
//!   otherwise nothing.
//!
//! Both `earliest` and `latest` are non-decreasing in `n`, so the first slot
//! after an instant is found by starting the naive search at the right place
//! (computed once, below) rather than by scanning: at most one extra `cron`
//! query, plus a ~12-step binary search for the transition instant when the
//! instant or the slot sits in a gap or fold.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Safety bound on slots examined per query (normally 1 or 2).
const MAX_STEPS: usize = 1024;

/// A calendar schedule bound to its zone and DST behaviour.
#[derive(Clone, Debug)]
pub(super) struct Calendar {
    pub tz: Tz,
    pub primary: cron::Schedule,
    pub secondary: Option<cron::Schedule>,
    /// Slots in a spring-forward gap fire at the end of the gap.
    pub shift_gaps: bool,
    /// Slots in an autumn fold fire at both occurrences.
    pub both_folds: bool,
}

impl Calendar {
    /// The first slot strictly after `after` (no upper year cap applied here).
    pub(super) fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz).naive_local();
        let (start, fold) = match self.tz.from_local_datetime(&local) {
            LocalResult::Ambiguous(a, b) => self.fold_plan(local, &a, &b, after),
            _ => (local, None),
        };
        let main = self.first_slot_after(start, after);
        match (main, fold) {
            (Some(m), Some(f)) => Some(m.min(f)),
            (m, f) => m.or(f),
        }
    }

    /// `after` lies in a fold: where the earliest-occurrence search starts, and
    /// the best second-occurrence candidate inside this fold (if folds fire twice).
    fn fold_plan(
        &self,
        local: NaiveDateTime,
        a: &DateTime<Tz>,
        b: &DateTime<Tz>,
        after: DateTime<Utc>,
    ) -> (NaiveDateTime, Option<DateTime<Utc>>) {
        let (o1, o2) = (offset_of(a), offset_of(b));
        let t = first_with_offset(self.tz, a.timestamp(), b.timestamp(), o2);
        let (fold_start, fold_end) = (naive_at(t + o2), naive_at(t + o1));
        let in_second = after >= b.with_timezone(&Utc);
        // In the second occurrence every earliest(n) inside the fold is already past.
        let start = match (in_second, fold_end) {
            (true, Some(end)) => before(end),
            _ => local,
        };
        let from = if in_second { Some(local) } else { fold_start.map(before) };
        let fold = from.filter(|_| self.both_folds).and_then(|from| self.second_occurrence_after(from));
        (start, fold)
    }

    /// The later occurrence of the first slot after naive `from`, if that slot is in a fold.
    fn second_occurrence_after(&self, from: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.tz.from_local_datetime(&self.next_naive(from)?) {
            LocalResult::Ambiguous(_, b) => Some(b.with_timezone(&Utc)),
            _ => None,
        }
    }

    /// The earliest instant > `after` among slots whose naive time is > `start`.
    fn first_slot_after(&self, start: NaiveDateTime, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut from = start;
        for _ in 0..MAX_STEPS {
            let n = self.next_naive(from)?;
            from = n;
            match self.tz.from_local_datetime(&n) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                    let t = t.with_timezone(&Utc);
                    if t > after {
                        return Some(t);
                    }
                }
                LocalResult::None => {
                    let Some((t, o2)) = gap_transition(self.tz, n) else {
                        continue; // irregular zone history: treat the slot as skipped
                    };
                    let shifted = DateTime::from_timestamp(t, 0)?;
                    if self.shift_gaps && shifted > after {
                        return Some(shifted);
                    }
                    from = naive_at(t + o2).map_or(n, before); // jump past the gap
                }
            }
        }
        None
    }

    /// The next naive local slot strictly after `from` (earlier of the two OR-rule schedules).
    fn next_naive(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let at = from.and_utc();
        let first = self.primary.after(&at).next();
        let second = self.secondary.as_ref().and_then(|s| s.after(&at).next());
        let next = match (first, second) {
            (Some(p), Some(q)) => p.min(q),
            (p, q) => p.or(q)?,
        };
        Some(next.naive_utc())
    }
}

/// One nanosecond before `n`, so that "strictly after" includes `n` itself.
fn before(n: NaiveDateTime) -> NaiveDateTime {
    n - Duration::nanoseconds(1)
}

fn naive_at(secs: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp(secs, 0).map(|d| d.naive_utc())
}

fn offset_of(d: &DateTime<Tz>) -> i64 {
    i64::from(d.offset().fix().local_minus_utc())
}

/// UTC offset (seconds) in force at Unix second `secs`.
fn offset_at(tz: Tz, secs: i64) -> i64 {
    DateTime::from_timestamp(secs, 0)
        .map_or(0, |d| i64::from(tz.offset_from_utc_datetime(&d.naive_utc()).fix().local_minus_utc()))
}

/// The smallest second in `(lo, hi]` whose offset is `target`, given that `hi`
/// has it and `lo` does not (binary search; transitions fall on whole seconds).
fn first_with_offset(tz: Tz, mut lo: i64, mut hi: i64, target: i64) -> i64 {
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_at(tz, mid) == target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// For a naive time `n` inside a gap: the transition instant (Unix seconds) and
/// the offset after it. `None` if the zone history around `n` is irregular.
fn gap_transition(tz: Tz, n: NaiveDateTime) -> Option<(i64, i64)> {
    let u = n.and_utc().timestamp();
    let o1 = offset_at(tz, u - 86_400); // a day earlier: before the jump
    let hi = u - o1; // `n` read with the old offset: at or after the jump
    let o2 = offset_at(tz, hi);
    let lo = u - o2; // `n` read with the new offset: before the jump
    if o2 <= o1 || offset_at(tz, lo) != o1 {
        return None;
    }
    Some((first_with_offset(tz, lo, hi, o2), o2))
}

#[cfg(test)]
mod tests {
    use super::super::{DstPolicy, Engine, Schedule};
    use super::Calendar;
    use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};

    use DstPolicy::{Shift, Skip, Twice};

    const NY: &str = "America/New_York";
    const BERLIN: &str = "Europe/Berlin";
    const LORD_HOWE: &str = "Australia/Lord_Howe"; // 30-minute DST shift

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("test timestamp")
    }

    fn parse(expr: &str, tz: &str, policy: DstPolicy) -> Schedule {
        Schedule::parse_with_policy(expr, tz, policy).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    fn slots(expr: &str, tz: &str, policy: DstPolicy, after: &str, n: usize) -> Vec<String> {
        let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        parse(expr, tz, policy).preview(utc(after), n).into_iter().map(fmt).collect()
    }

    #[test]
    fn dst_transitions_give_exact_utc_instants() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, DstPolicy, &str, &[&str])] = &[
            // New York spring 2025-03-09: 02:00 EST -> 03:00 EDT (07:00Z)
            ("0 30 2 * * *", NY, Shift, "2025-03-08T00:00:00Z", &["2025-03-08T07:30:00Z", "2025-03-09T07:00:00Z", "2025-03-10T06:30:00Z"]),
            ("0 30 2 * * *", NY, Twice, "2025-03-08T00:00:00Z", &["2025-03-08T07:30:00Z", "2025-03-09T07:00:00Z", "2025-03-10T06:30:00Z"]),
            ("0 30 2 * * *", NY, Skip, "2025-03-08T00:00:00Z", &["2025-03-08T07:30:00Z", "2025-03-10T06:30:00Z"]),
            ("0 0,30 2,3 * * *", NY, Shift, "2025-03-09T06:00:00Z", &["2025-03-09T07:00:00Z", "2025-03-09T07:30:00Z", "2025-03-10T06:00:00Z"]),
            ("0 */15 * * * *", NY, Shift, "2025-03-09T06:30:00Z", &["2025-03-09T06:45:00Z", "2025-03-09T07:00:00Z", "2025-03-09T07:15:00Z"]),
            ("0 */15 * * * *", NY, Twice, "2025-03-09T06:30:00Z", &["2025-03-09T06:45:00Z", "2025-03-09T07:00:00Z", "2025-03-09T07:15:00Z"]),
            ("0 30 * * * *", NY, Shift, "2025-03-09T06:00:00Z", &["2025-03-09T06:30:00Z", "2025-03-09T07:30:00Z"]),
            // New York autumn 2025-11-02: 02:00 EDT -> 01:00 EST (06:00Z); 02:30 is not repeated
            ("0 30 2 * * *", NY, Shift, "2025-11-01T00:00:00Z", &["2025-11-01T06:30:00Z", "2025-11-02T07:30:00Z", "2025-11-03T07:30:00Z"]),
            ("0 30 1 * * *", NY, Shift, "2025-11-01T00:00:00Z", &["2025-11-01T05:30:00Z", "2025-11-02T05:30:00Z", "2025-11-03T06:30:00Z"]),
            ("0 30 1 * * *", NY, Skip, "2025-11-01T00:00:00Z", &["2025-11-01T05:30:00Z", "2025-11-02T05:30:00Z", "2025-11-03T06:30:00Z"]),
            ("0 30 1 * * *", NY, Twice, "2025-11-01T00:00:00Z", &["2025-11-01T05:30:00Z", "2025-11-02T05:30:00Z", "2025-11-02T06:30:00Z", "2025-11-03T06:30:00Z"]),
            ("0 */15 * * * *", NY, Shift, "2025-11-02T05:30:00Z", &["2025-11-02T05:45:00Z", "2025-11-02T06:00:00Z", "2025-11-02T06:15:00Z", "2025-11-02T06:30:00Z", "2025-11-02T06:45:00Z", "2025-11-02T07:00:00Z"]),
            ("0 */15 * * * *", NY, Skip, "2025-11-02T05:30:00Z", &["2025-11-02T05:45:00Z", "2025-11-02T07:00:00Z"]),
            ("0 */15 1 * * *", NY, Shift, "2025-11-02T04:00:00Z", &["2025-11-02T05:00:00Z", "2025-11-02T05:15:00Z", "2025-11-02T05:30:00Z", "2025-11-02T05:45:00Z", "2025-11-03T06:00:00Z"]),
            ("0 */30 1 * * *", NY, Twice, "2025-11-02T04:00:00Z", &["2025-11-02T05:00:00Z", "2025-11-02T05:30:00Z", "2025-11-02T06:00:00Z", "2025-11-02T06:30:00Z", "2025-11-03T06:00:00Z"]),
            // starting inside the repeated hour: first occurrence (EDT) and second (EST)
            ("0 */15 * * * *", NY, Shift, "2025-11-02T05:50:00Z", &["2025-11-02T06:00:00Z", "2025-11-02T06:15:00Z"]),
            ("0 */15 * * * *", NY, Shift, "2025-11-02T06:05:00Z", &["2025-11-02T06:15:00Z"]),
            ("0 */15 1 * * *", NY, Shift, "2025-11-02T06:05:00Z", &["2025-11-03T06:00:00Z"]),
            ("0 30 1 * * *", NY, Twice, "2025-11-02T05:40:00Z", &["2025-11-02T06:30:00Z"]),
            // Berlin spring 2025-03-30: 02:00 CET -> 03:00 CEST (01:00Z)
            ("0 30 2 * * *", BERLIN, Shift, "2025-03-29T00:00:00Z", &["2025-03-29T01:30:00Z", "2025-03-30T01:00:00Z", "2025-03-31T00:30:00Z"]),
            ("0 30 2 * * *", BERLIN, Skip, "2025-03-29T00:00:00Z", &["2025-03-29T01:30:00Z", "2025-03-31T00:30:00Z"]),
            ("0 */15 * * * *", BERLIN, Shift, "2025-03-30T00:30:00Z", &["2025-03-30T00:45:00Z", "2025-03-30T01:00:00Z", "2025-03-30T01:15:00Z"]),
            // Berlin autumn 2025-10-26: 03:00 CEST -> 02:00 CET (01:00Z); 02:30 happens twice
            ("0 30 2 * * *", BERLIN, Shift, "2025-10-25T00:00:00Z", &["2025-10-25T00:30:00Z", "2025-10-26T00:30:00Z", "2025-10-27T01:30:00Z"]),
            ("0 30 2 * * *", BERLIN, Skip, "2025-10-25T00:00:00Z", &["2025-10-25T00:30:00Z", "2025-10-26T00:30:00Z", "2025-10-27T01:30:00Z"]),
            ("0 30 2 * * *", BERLIN, Twice, "2025-10-25T00:00:00Z", &["2025-10-25T00:30:00Z", "2025-10-26T00:30:00Z", "2025-10-26T01:30:00Z", "2025-10-27T01:30:00Z"]),
            ("0 */15 * * * *", BERLIN, Shift, "2025-10-26T00:30:00Z", &["2025-10-26T00:45:00Z", "2025-10-26T01:00:00Z", "2025-10-26T01:15:00Z", "2025-10-26T01:30:00Z"]),
            // Lord Howe spring 2025-10-05: 02:00 +10:30 -> 02:30 +11 (2025-10-04T15:30Z)
            ("0 15 2 * * *", LORD_HOWE, Shift, "2025-10-03T00:00:00Z", &["2025-10-03T15:45:00Z", "2025-10-04T15:30:00Z", "2025-10-05T15:15:00Z"]),
            ("0 15 2 * * *", LORD_HOWE, Skip, "2025-10-03T00:00:00Z", &["2025-10-03T15:45:00Z", "2025-10-05T15:15:00Z"]),
        ];
        for (expr, tz, policy, after, want) in cases {
            let got = slots(expr, tz, *policy, after, want.len());
            assert_eq!(got, *want, "{expr} in {tz} ({policy:?}) after {after}");
        }
    }

    #[test]
    fn every_15_minutes_is_strictly_monotonic_through_a_whole_year() {
        let zones = ["UTC", NY, BERLIN, LORD_HOWE, "Australia/Sydney", "Asia/Kolkata"];
        for tz in zones {
            for policy in [Shift, Twice, Skip] {
                let all = parse("0 */15 * * * *", tz, policy).preview(utc("2025-01-01T00:00:00Z"), 36_000);
                assert_eq!(all.len(), 36_000);
                for w in all.windows(2) {
                    let step = (w[1] - w[0]).num_seconds();
                    // Shift/Twice follow elapsed time exactly; Skip drops the repeated hour.
                    let ok = if policy == Skip { step >= 900 } else { step == 900 };
                    assert!(ok, "{tz} {policy:?}: {} -> {}", w[0], w[1]);
                }
            }
        }
    }

    #[test]
    fn sub_minute_wildcard_schedules_follow_elapsed_time() {
        let around = ["2025-03-09T05:00:00Z", "2025-11-02T04:00:00Z", "2025-03-30T00:00:00Z", "2025-10-26T00:00:00Z"];
        for (tz, start) in [NY, NY, BERLIN, BERLIN].into_iter().zip(around) {
            for (expr, step) in [("*/10 * * * * *", 10), ("* * * * * *", 1)] {
                let all = parse(expr, tz, Shift).preview(utc(start), 4 * 3600 / step);
                let ok = all.windows(2).all(|w| (w[1] - w[0]).num_seconds() == i64::try_from(step).unwrap_or(0));
                assert!(ok && all.len() == 4 * 3600 / step, "{expr} in {tz} from {start}");
            }
        }
    }

    #[test]
    fn fixed_time_schedules_are_strictly_monotonic() {
        let exprs = ["0 30 2 * * *", "0 30 1 * * *", "0 0,30 2,3 * * *", "0 */10 1-2 * * *", "@daily"];
        for tz in [NY, BERLIN, LORD_HOWE, "Australia/Sydney", "America/Santiago"] {
            for policy in [Shift, Twice, Skip] {
                for expr in exprs {
                    let all = parse(expr, tz, policy).preview(utc("2024-12-01T00:00:00Z"), 3_000);
                    assert!(all.windows(2).all(|w| w[0] < w[1]), "{expr} {tz} {policy:?}");
                }
            }
        }
    }

    /// Every slot instant in a window of naive local minutes, computed by brute force
    /// from the rule table (independently of the search in `Calendar::next_after`).
    fn reference(cal: &Calendar, from: NaiveDateTime, minutes: i64) -> Vec<DateTime<Utc>> {
        let matches = |n: NaiveDateTime| {
            let at = n.and_utc();
            cal.primary.includes(at) || cal.secondary.as_ref().is_some_and(|s| s.includes(at))
        };
        let mut out = Vec::new();
        for n in (0..minutes).map(|m| from + Duration::minutes(m)).filter(|&n| matches(n)) {
            match cal.tz.from_local_datetime(&n) {
                LocalResult::Single(t) => out.push(t.with_timezone(&Utc)),
                LocalResult::Ambiguous(a, b) => {
                    out.push(a.with_timezone(&Utc));
                    if cal.both_folds {
                        out.push(b.with_timezone(&Utc));
                    }
                }
                LocalResult::None if cal.shift_gaps => {
                    let mut later = (1..).map(|k| n + Duration::minutes(k));
                    let first = later.find_map(|m| cal.tz.from_local_datetime(&m).earliest());
                    out.extend(first.map(|t| t.with_timezone(&Utc)));
                }
                LocalResult::None => {}
            }
        }
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn next_after_matches_brute_force_around_transitions() {
        let exprs = [
            "0 */15 * * * *",
            "0 30 2 * * *",
            "0 30 1 * * *",
            "0 0,30 2,3 * * *",
            "0 */15 1 * * *",
            "0 7 * * * *",
            "0 */20 0-3 * * *",
            "0 45 1,2 * * *",
            "0 15 2 * * *",
            "@daily",
            "0 30 0 * * *",
            "0 30 23 * * *",
            "0 0 13 * 5",
        ];
        let days = [
            (NY, (2025, 3, 9)),
            (NY, (2025, 11, 2)),
            (BERLIN, (2025, 3, 30)),
            (BERLIN, (2025, 10, 26)),
            (LORD_HOWE, (2025, 4, 6)),
            (LORD_HOWE, (2025, 10, 5)),
            ("Australia/Sydney", (2025, 4, 6)),
            ("America/Santiago", (2025, 4, 6)),
            ("America/Santiago", (2025, 9, 7)),
            ("UTC", (2025, 6, 13)),
        ];
        for (tz, (y, m, d)) in days {
            let day = NaiveDate::from_ymd_opt(y, m, d).and_then(|d| d.and_hms_opt(0, 0, 0)).expect("date");
            for policy in [Shift, Twice, Skip] {
                for expr in exprs {
                    let s = parse(expr, tz, policy);
                    let Engine::Calendar(cal) = &s.engine else { unreachable!() };
                    let all = reference(cal, day - Duration::days(3), 6 * 1440);
                    check_against(&s, &all, day.and_utc() - Duration::days(2), day.and_utc() + Duration::days(1));
                }
            }
        }
    }

    /// `next_after(x)` equals the first reference slot > x (or lies beyond the window), for x on a
    /// 7-minute grid and next to every slot.
    fn check_against(s: &Schedule, all: &[DateTime<Utc>], lo: DateTime<Utc>, hi: DateTime<Utc>) {
        let grid = (0..).map(|k| lo + Duration::minutes(7 * k)).take_while(|&x| x < hi);
        let near = all.iter().flat_map(|&r| [-61, -1, 0, 1].map(|d| r + Duration::seconds(d)));
        for x in grid.chain(near).filter(|&x| x >= lo && x < hi) {
            let got = s.next_after(x);
            let msg = || format!("{} in {} ({:?}) after {x}", s.expression(), s.timezone(), s.dst_policy());
            match all.iter().copied().find(|&r| r > x) {
                Some(want) => assert_eq!(got, Some(want), "{}", msg()),
                None => assert!(got.iter().all(|&g| g > hi + Duration::days(1)), "{}", msg()),
            }
        }
    }

    #[test]
    #[ignore = "micro-benchmark: cargo test --release -- --ignored --nocapture"]
    fn bench_next_after() {
        let cases = [
            ("*/1 * * * * *", NY),
            ("0 30 2 * * *", NY),
            ("@daily", NY),
            ("0 */15 * * * *", BERLIN),
            ("@every 5m", NY),
        ];
        let base = utc("2025-01-01T00:00:00Z");
        let n = 200_000u32;
        for (expr, tz) in cases {
            let s = parse(expr, tz, Shift);
            let points: Vec<_> = (0..n).map(|i| base + Duration::seconds(i64::from(i) * 157)).collect(); // ~1 year
            let start = std::time::Instant::now();
            let mut sink = 0i64;
            for &p in &points {
                sink ^= std::hint::black_box(s.next_after(std::hint::black_box(p))).map_or(0, |t| t.timestamp());
            }
            let ns = start.elapsed().as_secs_f64() * 1e9 / f64::from(n);
            println!("{expr:>16} {tz:<18} {ns:>8.0} ns/next_after (sink {sink})");
        }
    }
}
