//! Task schedules: when does a task fire next?
//!
//! The leader calls [`Schedule::next_after`] for every task after every fire,
//! and the REST preview endpoint calls [`Schedule::preview`]; both must agree
//! on every replica. So this module is a pure function of
//! (expression, time zone, DST policy, instant): it never reads the clock, it
//! allocates nothing per call, and each call does a bounded amount of work
//! (one or two `cron` lookups, plus a short binary search near DST changes).
//! Slots are UTC instants (whole seconds, except `@every … offset` in ms), strictly increasing, and none is
//! later than 2100-12-31T23:59:59Z.
//!
//! # Dialect
//! * `sec min hour dom month dow` (6 fields), crontab `min hour dom month dow`
//!   (5 fields, seconds = 0), or the 6 fields plus `year` (7 fields, 1970-2100).
//! * Items: `*`, `?` (day fields only), `v`, `a-b`, `*/n`, `a-b/n`, `a/n`, lists.
//!   Month names `jan`..`dec` and day names `sun`..`sat` (any case, full or 3 letters).
//! * Day of week uses crontab numbering: 0 and 7 are Sunday, 1 is Monday, 6 is
//!   Saturday; `5-7` is Fri-Sun, `fri-sun` too; `*/2` is Sun, Tue, Thu, Sat.
//! * When day-of-month and day-of-week are both restricted (neither is exactly
//!   `*` or `?`), a day matching EITHER fires (crontab's OR rule).
//! * Macros `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`,
//!   `@hourly`, and `@every <d h m s> [offset <ms s m h d>]` (1s to 366d, e.g. `@every 1h30m`,
//!   `@every 1s offset 250ms`), whose
//!   slots are the multiples of the interval since the Unix epoch (plus the offset,
//!   which may be in milliseconds), in UTC, whatever the time zone.
//! * `L`, `W`, `#`, out-of-range values and inputs over 256 bytes are rejected.
//!
//! # Daylight saving time
//! Calendar schedules are evaluated on the task's local wall clock. A schedule
//! is *fixed-time* when its hour field does not cover all 24 hours (`0 30 2 * * *`,
//! `@daily`, `0 0 9-17 * * *`, `0 0 */2 * * *`) and *wildcard-hour* otherwise
//! (`0 */15 * * * *`, `@hourly`). A local time in a spring-forward *gap* does not
//! exist; one in an autumn *fold* exists twice. The rule (Vixie-cron-like):
//!
//! | policy           | gap slot, fixed-time | gap slot, wildcard-hour | fold slot, fixed-time | fold slot, wildcard-hour |
//! |------------------|----------------------|-------------------------|-----------------------|--------------------------|
//! | `Shift` (default)| once, at gap end     | none                    | once, first occurrence| both occurrences         |
//! | `Skip`           | none                 | none                    | once, first occurrence| once, first occurrence   |
//! | `Twice`          | once, at gap end     | none                    | both occurrences      | both occurrences         |
//!
//! "Gap end" is the first instant after the jump (02:30 on 2025-03-09 in
//! `America/New_York` fires at 07:00:00Z = 03:00 EDT); gap slots that shift onto
//! the same instant fire once. Wildcard-hour schedules thus follow real elapsed
//! time: `0 */15 * * * *` fires every 15 minutes of UTC straight through both
//! changes. Whatever the policy, `next_after(t) > t`, so repeated calls yield a
//! strictly increasing sequence.

mod dialect;
mod dst;

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

use dialect::Rule;

/// No slot is later than this instant (2100-12-31T23:59:59Z).
const LAST_SLOT_SECS: i64 = 4_133_980_799;
/// No calendar slot is earlier than this (local 1970-01-01 in any zone).
const FIRST_SLOT_SECS: i64 = -2 * 86_400;

/// What to do with slots that fall in a daylight-saving gap or fold; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DstPolicy {
    /// Vixie-cron-like: fixed-time slots shift out of gaps and fire once in folds;
    /// wildcard-hour schedules follow elapsed time.
    #[default]
    Shift,
    /// Gap slots never fire; fold slots fire once, at their first occurrence.
    Skip,
    /// Gap slots shift as with `Shift`; fold slots fire at both occurrences.
    Twice,
}

/// Why an expression or time zone was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The expression is malformed or uses unsupported syntax; `reason` says
    /// what to fix. `expression` is the input (cut to 64 bytes if very long).
    #[error("invalid schedule expression '{expression}': {reason}")]
    InvalidExpression {
        /// The rejected expression.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The time zone is not an IANA name known to this build.
    #[error(
        "unknown time zone '{0}': use an IANA name such as 'UTC', \
         'America/New_York' or 'Europe/Berlin'"
    )]
    UnknownTimezone(String),
}

/// A parsed schedule: expression, time zone and DST policy.
#[derive(Clone, Debug)]
pub struct Schedule {
    expression: String,
    timezone: Tz,
    dst: DstPolicy,
    engine: Engine,
}

#[derive(Clone, Debug)]
enum Engine {
    Every { interval_ms: i64, offset_ms: i64 },
    Calendar(Box<dst::Calendar>),
}

impl Schedule {
    /// Parses `expression` for the IANA `timezone`, with [`DstPolicy::Shift`].
    ///
    /// # Errors
    /// [`ScheduleError::InvalidExpression`] or [`ScheduleError::UnknownTimezone`].
    pub fn parse(expression: &str, timezone: &str) -> Result<Schedule, ScheduleError> {
        Self::parse_with_policy(expression, timezone, DstPolicy::Shift)
    }

    /// Parses `expression` for the IANA `timezone` with an explicit DST policy.
    ///
    /// # Errors
    /// [`ScheduleError::InvalidExpression`] (with a `reason` saying what to fix)
    /// or [`ScheduleError::UnknownTimezone`].
    pub fn parse_with_policy(expression: &str, timezone: &str, dst: DstPolicy) -> Result<Schedule, ScheduleError> {
        let rule = dialect::translate(expression).map_err(|reason| invalid(expression, reason))?;
        let tz = Tz::from_str(timezone).map_err(|_| ScheduleError::UnknownTimezone(timezone.to_string()))?;
        let engine = match rule {
            Rule::Every { interval_s, offset_ms } => Engine::Every { interval_ms: interval_s * 1000, offset_ms },
            Rule::Calendar(c) => Engine::Calendar(Box::new(dst::Calendar {
                tz,
                primary: c.primary,
                secondary: c.secondary,
                shift_gaps: c.fixed_time && dst != DstPolicy::Skip,
                both_folds: dst == DstPolicy::Twice || (dst == DstPolicy::Shift && !c.fixed_time),
            })),
        };
        let expression = expression.to_string();
        Ok(Schedule { expression, timezone: tz, dst, engine })
    }

    /// The first slot strictly after `after`; None when the schedule has no more
    /// slots (e.g. year > 2100).
    #[must_use]
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let last = DateTime::from_timestamp(LAST_SLOT_SECS, 0)?;
        if after >= last {
            return None;
        }
        let next = match &self.engine {
            Engine::Every { interval_ms, offset_ms } => every_next(*interval_ms, *offset_ms, after),
            Engine::Calendar(cal) => {
                let first = DateTime::from_timestamp(FIRST_SLOT_SECS, 0)?;
                cal.next_after(after.max(first))
            }
        }?;
        (next > after && next <= last).then_some(next)
    }

    /// The slots strictly after `after_ms` and at or before `through_ms` (UTC milliseconds), in
    /// increasing order: how the leader lists a task's due slots and how apply counts what is
    /// left of a partly fired span. Callers bound it (`take`) when the range may be long.
    pub fn slots_ms(&self, after_ms: i64, through_ms: i64) -> impl Iterator<Item = i64> + '_ {
        let mut cursor = after_ms;
        std::iter::from_fn(move || {
            let after = Utc.timestamp_millis_opt(cursor).single().unwrap_or_default();
            let next = self.next_after(after)?.timestamp_millis();
            (next <= through_ms).then(|| {
                cursor = next;
                next
            })
        })
    }

    /// Up to `count` consecutive slots strictly after `after`, in increasing order.
    /// Callers exposing this (REST) should bound `count`.
    #[must_use]
    pub fn preview(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut slots = Vec::with_capacity(count.min(1024));
        let mut cursor = after;
        while slots.len() < count {
            let Some(next) = self.next_after(cursor) else {
                break;
            };
            slots.push(next);
            cursor = next;
        }
        slots
    }

    /// The expression exactly as given to `parse`.
    #[must_use]
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The canonical IANA name of the schedule's time zone.
    #[must_use]
    pub fn timezone(&self) -> &str {
        self.timezone.name()
    }

    /// The DST policy the schedule was parsed with.
    #[must_use]
    pub fn dst_policy(&self) -> DstPolicy {
        self.dst
    }
}

/// The first `offset_ms + k·interval_ms` (ms since the epoch) strictly after `after`.
fn every_next(interval_ms: i64, offset_ms: i64, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let k = (after.timestamp_millis() - offset_ms).div_euclid(interval_ms) + 1;
    DateTime::from_timestamp_millis(k.checked_mul(interval_ms)?.checked_add(offset_ms)?)
}

fn invalid(expression: &str, reason: String) -> ScheduleError {
    let mut expression = expression.to_string();
    if expression.len() > 64 {
        let cut = (0..=64).rev().find(|&i| expression.is_char_boundary(i)).unwrap_or(0);
        expression.truncate(cut);
        expression.push('…');
    }
    ScheduleError::InvalidExpression { expression, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_ms_walks_strictly_after_and_up_to_the_bounds() {
        let every_second = Schedule::parse("* * * * * *", "UTC").unwrap();
        let slots: Vec<i64> = every_second.slots_ms(10_000, 13_000).collect();
        assert_eq!(slots, vec![11_000, 12_000, 13_000], "after is excluded, through is included");
        let from_mid_second: Vec<i64> = every_second.slots_ms(10_500, 12_999).collect();
        assert_eq!(from_mid_second, vec![11_000, 12_000]);
        assert_eq!(every_second.slots_ms(13_000, 13_000).count(), 0, "an empty range has no slot");
        // Unbounded ranges are bounded by the caller.
        assert_eq!(every_second.slots_ms(0, i64::MAX).take(5).count(), 5);
    }
}
