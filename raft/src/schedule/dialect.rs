//! The cronraft expression dialect, translated into what the `cron` crate runs.
//!
//! Every field is parsed and validated here, expanded into an explicit set of
//! values, and re-emitted as a canonical 7-field `cron` expression (numbers,
//! and day names for the day of week). The `cron` crate therefore never sees
//! user text: its 1-based day-of-week numbering, its `L`/`W`/`#` extensions and
//! its terse error messages cannot leak through. Errors are plain `String`
//! reasons that `mod.rs` wraps into `ScheduleError::InvalidExpression`.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::DateTime;

/// Longest expression accepted, in bytes.
pub(super) const MAX_EXPRESSION_LEN: usize = 256;
/// Longest `@every` interval accepted, in seconds (366 days).
const MAX_EVERY_SECS: i64 = 366 * 86_400;

/// What an expression means once translated.
#[derive(Clone, Debug)]
pub(super) enum Rule {
    /// `@every`: `offset_ms` plus multiples of `interval_s` seconds since the Unix epoch, in UTC.
    Every { interval_s: i64, offset_ms: i64 },
    /// A calendar schedule evaluated on local wall-clock time.
    Calendar(Box<CalendarRule>),
}

/// A calendar schedule: one `cron` schedule, or two when the day-of-month /
/// day-of-week OR rule applies (a day matching either one fires).
#[derive(Clone, Debug)]
pub(super) struct CalendarRule {
    pub primary: cron::Schedule,
    pub secondary: Option<cron::Schedule>,
    /// The hour field is restricted (does not cover all 24 hours).
    pub fixed_time: bool,
}

/// Static description of one cron field.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Largest value `*` expands to (6 for day of week: 7 is an alias of 0).
    star_max: u32,
    /// Full names; a name matches in full or by its first three letters.
    names: &'static [&'static str],
    /// Value of `names[0]`.
    name_base: u32,
    note: &'static str,
}

const SECOND: Field = plain("second", 0, 59);
const MINUTE: Field = plain("minute", 0, 59);
const HOUR: Field = plain("hour", 0, 23);
const DAY_OF_MONTH: Field = plain("day-of-month", 1, 31);
const YEAR: Field = plain("year", 1970, 2100);
const MONTH: Field = Field {
    names: &[
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ],
    name_base: 1,
    ..plain("month", 1, 12)
};
const DAY_OF_WEEK: Field = Field {
    star_max: 6,
    names: &["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"],
    note: " (0 and 7 are Sunday)",
    ..plain("day-of-week", 0, 7)
};
/// Day names as the `cron` crate spells them, indexed by crontab number 0-6.
const CRON_DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const fn plain(name: &'static str, min: u32, max: u32) -> Field {
    Field { name, min, max, star_max: max, names: &[], name_base: 0, note: "" }
}

fn is_dow(field: &Field) -> bool {
    field.name == DAY_OF_WEEK.name
}

/// Translates a full expression (fields, `@macro` or `@every`) into a [`Rule`].
pub(super) fn translate(expression: &str) -> Result<Rule, String> {
    let text = expression.trim();
    if text.is_empty() {
        return Err("the expression is empty".into());
    }
    if expression.len() > MAX_EXPRESSION_LEN {
        return Err(format!("the expression is {} bytes long; the maximum is {MAX_EXPRESSION_LEN}", expression.len()));
    }
    if text.starts_with('@') {
        return translate_macro(text);
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.len() {
        5 => translate_fields("0", &fields, None),
        6 => translate_fields(fields[0], &fields[1..], None),
        7 => translate_fields(fields[0], &fields[1..6], Some(fields[6])),
        n => Err(format!(
            "expected 5, 6 or 7 fields, got {n} (5: min hour dom month dow; \
             6: sec min hour dom month dow; 7: the 6 fields plus year)"
        )),
    }
}

fn translate_macro(text: &str) -> Result<Rule, String> {
    let mut words = text.split_whitespace();
    let name = words.next().unwrap_or_default().to_ascii_lowercase();
    let rest: Vec<&str> = words.collect();
    if name == "@every" {
        return match rest.as_slice() {
            [duration] => parse_every(duration).map(|interval_s| Rule::Every { interval_s, offset_ms: 0 }),
            [duration, kw, offset] if kw.eq_ignore_ascii_case("offset") => {
                let interval_s = parse_every(duration)?;
                let offset_ms = parse_offset_ms(offset)?;
                if offset_ms >= interval_s * 1000 {
                    return Err(format!(
                        "'@every {duration} offset {offset}': the offset must be shorter than the interval"
                    ));
                }
                Ok(Rule::Every { interval_s, offset_ms })
            }
            [] => Err("'@every' needs a duration such as 30s, 5m or 1h30m".into()),
            _ => {
                Err("'@every' takes one duration without spaces, e.g. 1h30m, optionally followed by 'offset 250ms'"
                    .into())
            }
        };
    }
    let expansion = match name.as_str() {
        "@yearly" | "@annually" => "0 0 0 1 1 *",
        "@monthly" => "0 0 0 1 * *",
        "@weekly" => "0 0 0 * * 0",
        "@daily" | "@midnight" => "0 0 0 * * *",
        "@hourly" => "0 0 * * * *",
        _ => {
            return Err(format!(
                "unknown macro '{name}'; supported: @yearly, @annually, @monthly, \
                 @weekly, @daily, @midnight, @hourly, @every <duration>"
            ));
        }
    };
    if !rest.is_empty() {
        return Err(format!("'{name}' takes no arguments"));
    }
    translate(expansion)
}

/// Parses `1h30m`-style durations (units d, h, m, s; whole numbers) into seconds.
fn parse_every(text: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "'{text}' is not a duration; use whole numbers with units d, h, m, s, \
             such as 30s, 5m or 1h30m"
        )
    };
    let (mut total, mut digits, mut seen) = (0i64, String::new(), String::new());
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch.to_ascii_lowercase() {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let ch = ch.to_ascii_lowercase();
        if digits.is_empty() || digits.len() > 9 || seen.contains(ch) {
            return Err(bad());
        }
        seen.push(ch);
        total += digits.parse::<i64>().map_err(|_| bad())? * unit;
        digits.clear();
    }
    if !digits.is_empty() || seen.is_empty() {
        return Err(bad());
    }
    check_every_bounds(text, total)
}

/// Parses an `@every … offset` duration: whole numbers with units ms, s, m, h, d (`1s250ms`).
fn parse_offset_ms(text: &str) -> Result<i64, String> {
    let bad =
        || format!("offset '{text}' is not a duration; use whole numbers with units ms, s, m, h, d, such as 250ms");
    let lower = text.to_ascii_lowercase();
    let (mut total, mut rest) = (0i64, lower.as_str());
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.chars().next() {
                Some('s') => (1_000, 1),
                Some('m') => (60_000, 1),
                Some('h') => (3_600_000, 1),
                Some('d') => (86_400_000, 1),
                _ => return Err(bad()),
            }
        };
        total += n * unit;
        rest = &rest[len..];
    }
    Ok(total)
}

fn check_every_bounds(text: &str, secs: i64) -> Result<i64, String> {
    if secs < 1 {
        return Err(format!("'@every {text}': the interval must be at least 1s"));
    }
    if secs > MAX_EVERY_SECS {
        return Err(format!("'@every {text}': the interval must be at most 366d"));
    }
    Ok(secs)
}

/// `second` plus the five crontab fields `[min, hour, dom, month, dow]`, plus an optional year.
fn translate_fields(second: &str, f: &[&str], year: Option<&str>) -> Result<Rule, String> {
    let sec = expand(second, &SECOND)?;
    let min = expand(f[0], &MINUTE)?;
    let hour = expand(f[1], &HOUR)?;
    let dom = expand(f[2], &DAY_OF_MONTH)?;
    let month = expand(f[3], &MONTH)?;
    let dow = expand(f[4], &DAY_OF_WEEK)?;
    let year = year.map(|y| expand(y, &YEAR)).transpose()?;
    let head = [render(&sec, &SECOND), render(&min, &MINUTE), render(&hour, &HOUR)].join(" ");
    let month = render(&month, &MONTH);
    let year = year.as_ref().map_or("*".into(), |y| render(y, &YEAR));
    let build = |dom: &str, dow: &str| build_cron(&format!("{head} {dom} {month} {dow} {year}"));
    let (month_days, week_days) = (render(&dom, &DAY_OF_MONTH), render_dow(&dow));
    let (primary, secondary) = if is_unrestricted(f[2]) || is_unrestricted(f[4]) {
        (build(&month_days, &week_days)?, None)
    } else {
        // crontab OR rule: the union of a dom-only and a dow-only schedule
        (build(&month_days, "*")?, Some(build("*", &week_days)?))
    };
    ensure_fires(&primary, secondary.as_ref())?;
    let fixed_time = hour.len() < 24;
    Ok(Rule::Calendar(Box::new(CalendarRule { primary, secondary, fixed_time })))
}

/// A day field is unrestricted only when it is literally `*` or `?`.
fn is_unrestricted(field: &str) -> bool {
    field == "*" || field == "?"
}

/// Builds a `cron` schedule from a canonical `sec min hour dom month dow year` string.
fn build_cron(canonical: &str) -> Result<cron::Schedule, String> {
    cron::Schedule::from_str(canonical)
        .map_err(|e| format!("the cron engine rejected the translation '{canonical}': {e}"))
}

/// Rejects expressions that match no date at all (e.g. February 30).
fn ensure_fires(primary: &cron::Schedule, secondary: Option<&cron::Schedule>) -> Result<(), String> {
    let start = DateTime::from_timestamp(-86_400, 0).unwrap_or_default();
    let fires = |s: &cron::Schedule| s.after(&start).next().is_some();
    if fires(primary) || secondary.is_some_and(fires) {
        Ok(())
    } else {
        Err("the expression matches no date between 1970 and 2100 (e.g. February 30)".into())
    }
}

fn render(set: &BTreeSet<u32>, field: &Field) -> String {
    if set.len() == (field.min..=field.max).count() {
        return "*".into();
    }
    let items: Vec<String> = set.iter().map(u32::to_string).collect();
    items.join(",")
}

fn render_dow(set: &BTreeSet<u32>) -> String {
    if set.len() == 7 {
        return "*".into();
    }
    let items: Vec<&str> = set.iter().map(|&d| CRON_DAY_NAMES[d as usize]).collect();
    items.join(",")
}

/// Expands one field (a comma list) into its set of values. Day of week 7 becomes 0.
fn expand(text: &str, field: &Field) -> Result<BTreeSet<u32>, String> {
    let mut set = BTreeSet::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("the {} field '{text}' has an empty list item", field.name));
        }
        let (lo, hi, step) = parse_item(item, field)?;
        for v in (lo..=hi).step_by(step as usize) {
            set.insert(if is_dow(field) { v % 7 } else { v });
        }
    }
    Ok(set)
}

/// Parses `*`, `?`, `v`, `a-b`, each optionally followed by `/step`.
fn parse_item(item: &str, field: &Field) -> Result<(u32, u32, u32), String> {
    if item.contains('#') {
        return Err(format!(
            "'#' (nth weekday of the month) in '{item}' is not supported; \
             list the days of the month instead"
        ));
    }
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(parse_step(step, item, field)?)),
        None => (item, None),
    };
    let (lo, hi) = parse_range(range, item, field, step.is_some())?;
    Ok((lo, hi, step.unwrap_or(1)))
}

fn parse_range(range: &str, item: &str, field: &Field, stepped: bool) -> Result<(u32, u32), String> {
    if range == "*" || range == "?" {
        if range == "?" && !is_dow(field) && field.name != DAY_OF_MONTH.name {
            return Err(format!("'?' in the {} field: it is only allowed in day-of-month and day-of-week", field.name));
        }
        return Ok((field.min, field.star_max));
    }
    let Some((a, b)) = range.split_once('-') else {
        let v = parse_value(range, item, field)?;
        return Ok((v, if stepped { field.star_max } else { v }));
    };
    let lo = parse_value(a, item, field)?;
    let mut hi = parse_value(b, item, field)?;
    if is_dow(field) && hi == 0 && lo > 0 {
        hi = 7; // `fri-sun` means Friday to Sunday
    }
    if lo > hi {
        return Err(format!("the {} range '{range}' is reversed ({lo} > {hi}); write it low-high", field.name));
    }
    Ok((lo, hi))
}

fn parse_step(step: &str, item: &str, field: &Field) -> Result<u32, String> {
    let span = field.star_max - field.min + 1;
    match step.parse::<u32>() {
        Ok(n) if (1..=span).contains(&n) && step.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        Ok(0) => Err(format!("step in '{item}' must be at least 1")),
        Ok(n) if n > span => {
            Err(format!("step {n} in '{item}' is larger than the {} range {}-{}", field.name, field.min, field.max))
        }
        _ => Err(format!("step '{step}' in '{item}' is not a positive whole number")),
    }
}

/// Parses a number or a name and checks it against the field's range.
fn parse_value(token: &str, item: &str, field: &Field) -> Result<u32, String> {
    if token.is_empty() {
        return Err(format!("the {} item '{item}' is missing a value", field.name));
    }
    if token.bytes().all(|b| b.is_ascii_digit()) {
        let value = token.parse::<u32>().unwrap_or(u32::MAX);
        if value < field.min || value > field.max {
            return Err(format!(
                "{} value {token} is out of range {}-{}{}",
                field.name, field.min, field.max, field.note
            ));
        }
        return Ok(value);
    }
    lookup_name(token, field).ok_or_else(|| unknown_token(token, item, field))
}

fn lookup_name(token: &str, field: &Field) -> Option<u32> {
    let lower = token.to_ascii_lowercase();
    let matches = |name: &&str| **name == lower || (lower.len() == 3 && name.starts_with(&lower));
    let index = field.names.iter().position(matches)?;
    Some(field.name_base + u32::try_from(index).ok()?)
}

fn unknown_token(token: &str, item: &str, field: &Field) -> String {
    let upper = token.to_ascii_uppercase();
    let digits_then =
        |suffix: char| upper.strip_suffix(suffix).is_some_and(|head| head.bytes().all(|b| b.is_ascii_digit()));
    if upper == "LW" || digits_then('L') {
        return format!("'L' (last day) in '{item}' is not supported; list the days explicitly");
    }
    if digits_then('W') {
        return format!("'W' (nearest weekday) in '{item}' is not supported");
    }
    match field.names.len() {
        7 => format!(
            "'{token}' is not a valid day-of-week; use 0-7 (0 and 7 are Sunday) \
             or sun, mon, tue, wed, thu, fri, sat"
        ),
        12 => format!("'{token}' is not a valid month; use 1-12 or jan, feb, ..., dec"),
        _ => format!("'{token}' in the {} field is not a number in {}-{}", field.name, field.min, field.max),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DstPolicy, Schedule, ScheduleError};
    use chrono::{DateTime, Datelike, Utc, Weekday};
    use serde::de::IntoDeserializer;
    use serde::Deserialize;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("test timestamp")
    }

    fn slots(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
        let s = Schedule::parse(expr, tz).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string();
        s.preview(utc(after), n).into_iter().map(fmt).collect()
    }

    #[test]
    fn valid_expressions_produce_expected_slots() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, &str, &[&str])] = &[
            // 6 fields with seconds
            ("0 */5 * * * *", "UTC", "2025-01-01T00:02:00Z", &["2025-01-01T00:05:00Z", "2025-01-01T00:10:00Z"]),
            ("30 15 10 * * *", "UTC", "2025-01-01T00:00:00Z", &["2025-01-01T10:15:30Z", "2025-01-02T10:15:30Z"]),
            // 5-field crontab (seconds = 0)
            ("*/20 9 * * *", "UTC", "2025-01-01T09:30:00Z", &["2025-01-01T09:40:00Z", "2025-01-02T09:00:00Z"]),
            ("0 9 * * 1", "UTC", "2025-01-01T00:00:00Z", &["2025-01-06T09:00:00Z", "2025-01-13T09:00:00Z"]),
            // 7 fields with a year: fires in 2030 only
            ("0 0 12 1 1 * 2030", "UTC", "2025-01-01T00:00:00Z", &["2030-01-01T12:00:00Z"]),
            ("0 0 12 1 1 * 2029-2030", "UTC", "2029-06-01T00:00:00Z", &["2030-01-01T12:00:00Z"]),
            // macros
            ("@yearly", "UTC", "2025-03-01T00:00:00Z", &["2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"]),
            ("@annually", "UTC", "2025-03-01T00:00:00Z", &["2026-01-01T00:00:00Z"]),
            ("@monthly", "UTC", "2025-03-01T00:00:00Z", &["2025-04-01T00:00:00Z", "2025-05-01T00:00:00Z"]),
            ("@weekly", "UTC", "2025-01-01T00:00:00Z", &["2025-01-05T00:00:00Z", "2025-01-12T00:00:00Z"]),
            ("@daily", "UTC", "2025-01-01T00:00:00Z", &["2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z"]),
            ("@midnight", "Europe/Berlin", "2025-01-01T00:00:00Z", &["2025-01-01T23:00:00Z"]),
            ("@HOURLY", "UTC", "2025-01-01T00:00:00Z", &["2025-01-01T01:00:00Z", "2025-01-01T02:00:00Z"]),
            // @every: multiples of the interval since the epoch, zone irrelevant
            ("@every 30s", "UTC", "2025-01-01T00:00:10Z", &["2025-01-01T00:00:30Z", "2025-01-01T00:01:00Z"]),
            ("@every 5m", "Asia/Kolkata", "2025-01-01T00:00:00Z", &["2025-01-01T00:05:00Z", "2025-01-01T00:10:00Z"]),
            ("@every 1h30m", "America/New_York", "2025-01-01T00:00:00Z", &["2025-01-01T01:30:00Z", "2025-01-01T03:00:00Z"]),
            ("@every 2h", "UTC", "2025-01-01T01:00:00Z", &["2025-01-01T02:00:00Z", "2025-01-01T04:00:00Z"]),
            ("@every 1d", "UTC", "2025-01-01T00:00:00Z", &["2025-01-02T00:00:00Z"]),
            ("@every 7s", "UTC", "1970-01-01T00:00:00Z", &["1970-01-01T00:00:07Z", "1970-01-01T00:00:14Z"]),
            // @every with an offset: a phase within the interval (spreads tasks over a second)
            ("@every 1s offset 250ms", "UTC", "2025-01-01T00:00:00Z", &["2025-01-01T00:00:00.250Z", "2025-01-01T00:00:01.250Z"]),
            ("@every 1m offset 1s500ms", "UTC", "2025-01-01T00:00:01.500Z", &["2025-01-01T00:01:01.500Z"]),
            // crontab day-of-week numbering: 2025-01-05 is a Sunday, 2025-01-03 a Friday
            ("0 0 0 * * 0", "UTC", "2025-01-01T00:00:00Z", &["2025-01-05T00:00:00Z", "2025-01-12T00:00:00Z"]),
            ("0 0 0 * * 7", "UTC", "2025-01-01T00:00:00Z", &["2025-01-05T00:00:00Z", "2025-01-12T00:00:00Z"]),
            ("0 0 0 * * SUN", "UTC", "2025-01-01T00:00:00Z", &["2025-01-05T00:00:00Z"]),
            ("0 0 0 * * Sunday", "UTC", "2025-01-01T00:00:00Z", &["2025-01-05T00:00:00Z"]),
            ("0 0 0 * * 1-5", "UTC", "2025-01-03T12:00:00Z", &["2025-01-06T00:00:00Z", "2025-01-07T00:00:00Z", "2025-01-08T00:00:00Z", "2025-01-09T00:00:00Z", "2025-01-10T00:00:00Z", "2025-01-13T00:00:00Z"]),
            ("0 0 0 * * mon-fri", "UTC", "2025-01-03T12:00:00Z", &["2025-01-06T00:00:00Z", "2025-01-07T00:00:00Z"]),
            ("0 0 0 * * 5-7", "UTC", "2025-01-01T00:00:00Z", &["2025-01-03T00:00:00Z", "2025-01-04T00:00:00Z", "2025-01-05T00:00:00Z", "2025-01-10T00:00:00Z"]),
            ("0 0 0 * * fri-sun", "UTC", "2025-01-01T00:00:00Z", &["2025-01-03T00:00:00Z", "2025-01-04T00:00:00Z", "2025-01-05T00:00:00Z", "2025-01-10T00:00:00Z"]),
            ("0 0 0 * * */2", "UTC", "2025-01-04T12:00:00Z", &["2025-01-05T00:00:00Z", "2025-01-07T00:00:00Z", "2025-01-09T00:00:00Z", "2025-01-11T00:00:00Z", "2025-01-12T00:00:00Z"]),
            ("0 0 0 * * 1-5/2", "UTC", "2025-01-04T12:00:00Z", &["2025-01-06T00:00:00Z", "2025-01-08T00:00:00Z", "2025-01-10T00:00:00Z", "2025-01-13T00:00:00Z"]),
            ("0 0 0 * * 0-6", "UTC", "2025-01-01T00:00:00Z", &["2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z"]),
            ("0 0 0 * * sat,0", "UTC", "2025-01-01T00:00:00Z", &["2025-01-04T00:00:00Z", "2025-01-05T00:00:00Z", "2025-01-11T00:00:00Z"]),
            // months by name
            ("0 0 0 1 jan,Jul *", "UTC", "2025-02-01T00:00:00Z", &["2025-07-01T00:00:00Z", "2026-01-01T00:00:00Z"]),
            ("0 0 0 1 mar-may/2 *", "UTC", "2025-01-01T00:00:00Z", &["2025-03-01T00:00:00Z", "2025-05-01T00:00:00Z", "2026-03-01T00:00:00Z"]),
            // OR rule: every 13th AND every Friday (2025-06-13 is a Friday, 2025-07-13 a Sunday)
            ("0 0 0 13 * 5", "UTC", "2025-06-01T00:00:00Z", &["2025-06-06T00:00:00Z", "2025-06-13T00:00:00Z", "2025-06-20T00:00:00Z", "2025-06-27T00:00:00Z", "2025-07-04T00:00:00Z", "2025-07-11T00:00:00Z", "2025-07-13T00:00:00Z", "2025-07-18T00:00:00Z"]),
            ("0 0 13 * 5", "UTC", "2025-07-05T00:00:00Z", &["2025-07-11T00:00:00Z", "2025-07-13T00:00:00Z", "2025-07-18T00:00:00Z"]),
            // only one day field restricted: no OR
            ("0 0 0 13 * *", "UTC", "2025-06-01T00:00:00Z", &["2025-06-13T00:00:00Z", "2025-07-13T00:00:00Z"]),
            ("0 0 0 ? * fri", "UTC", "2025-06-01T00:00:00Z", &["2025-06-06T00:00:00Z", "2025-06-13T00:00:00Z"]),
            ("0 0 0 29 2 *", "UTC", "2025-01-01T00:00:00Z", &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]),
            ("10/20 0 0 * * *", "UTC", "2025-01-01T00:00:00Z", &["2025-01-01T00:00:10Z", "2025-01-01T00:00:30Z", "2025-01-01T00:00:50Z", "2025-01-02T00:00:10Z"]),
        ];
        for (expr, tz, after, want) in cases {
            assert_eq!(slots(expr, tz, after, want.len()), *want, "{expr} in {tz} after {after}");
        }
    }

    #[test]
    fn weekdays_range_only_hits_monday_to_friday() {
        let s = Schedule::parse("0 0 * * 1-5", "UTC").expect("valid");
        let all = s.preview(utc("2025-01-01T00:00:00Z"), 260);
        assert!(all.iter().all(|t| !matches!(t.weekday(), Weekday::Sat | Weekday::Sun)));
        assert_eq!(all[259].date_naive().to_string(), "2025-12-31"); // 2025 has 261 weekdays; Jan 1 is excluded
    }

    #[test]
    fn no_slots_after_2100() {
        let cases: &[(&str, &str)] = &[("@yearly", "UTC"), ("@every 366d", "UTC"), ("0 0 0 1 1 * 2100", "Asia/Tokyo")];
        for (expr, tz) in cases {
            let s = Schedule::parse(expr, tz).expect("valid");
            let last = s.preview(utc("2099-06-01T00:00:00Z"), 10);
            assert!(!last.is_empty() && last.len() < 10, "{expr}: {last:?}");
            assert!(last.iter().all(|t| t.year() <= 2100));
            assert_eq!(s.next_after(utc("2101-01-01T00:00:00Z")), None);
        }
        let s = Schedule::parse("0 0 12 1 1 * 2030", "UTC").expect("valid");
        assert_eq!(s.next_after(utc("2030-01-01T12:00:00Z")), None);
        assert_eq!(s.next_after(utc("1900-01-01T00:00:00Z")), Some(utc("2030-01-01T12:00:00Z")));
    }

    #[test]
    fn invalid_expressions_say_what_is_wrong() {
        let long = "1".repeat(300);
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("", "the expression is empty"),
            ("   ", "the expression is empty"),
            ("* * * *", "expected 5, 6 or 7 fields, got 4"),
            ("0 0 0 * * * * *", "expected 5, 6 or 7 fields, got 8"),
            ("0 0 0 * * 8", "day-of-week value 8 is out of range 0-7 (0 and 7 are Sunday)"),
            ("0 0 * * 9", "day-of-week value 9 is out of range 0-7 (0 and 7 are Sunday)"),
            ("60 * * * * *", "second value 60 is out of range 0-59"),
            ("60 * * * *", "minute value 60 is out of range 0-59"),
            ("* 60 * * *", "hour value 60 is out of range 0-23"),
            ("0 0 24 * * *", "hour value 24 is out of range 0-23"),
            ("0 0 0 0 * *", "day-of-month value 0 is out of range 1-31"),
            ("0 0 0 32 * *", "day-of-month value 32 is out of range 1-31"),
            ("0 0 0 * 13 *", "month value 13 is out of range 1-12"),
            ("0 0 0 1 1 * 2101", "year value 2101 is out of range 1970-2100"),
            ("0 0 0 1 1 * 99999999999", "year value 99999999999 is out of range"),
            ("0 0 0 L * *", "'L' (last day) in 'L' is not supported"),
            ("0 0 0 * * 5L", "'L' (last day) in '5L' is not supported"),
            ("0 0 0 LW * *", "'L' (last day)"),
            ("0 0 0 15W * *", "'W' (nearest weekday) in '15W' is not supported"),
            ("0 0 0 * * 5#3", "'#' (nth weekday of the month) in '5#3' is not supported"),
            ("0 0 0 * * funday", "'funday' is not a valid day-of-week"),
            ("0 0 0 * foo *", "'foo' is not a valid month"),
            ("0 x * * * *", "'x' in the minute field is not a number in 0-59"),
            ("0 */0 * * * *", "step in '*/0' must be at least 1"),
            ("0 */61 * * * *", "step 61 in '*/61' is larger than the minute range 0-59"),
            ("0 */x * * * *", "step 'x' in '*/x' is not a positive whole number"),
            ("0 5-2 * * * *", "the minute range '5-2' is reversed"),
            ("0 1,,2 * * * *", "the minute field '1,,2' has an empty list item"),
            ("0 -5 * * * *", "the minute item '-5' is missing a value"),
            ("? * * * * *", "'?' in the second field"),
            ("0 0 0 30 2 *", "matches no date between 1970 and 2100"),
            ("0 0 0 29 2 * 2025", "matches no date"),
            ("@every 0s", "the interval must be at least 1s"),
            ("@every 1s offset 1s", "the offset must be shorter than the interval"),
            ("@every 1s offset x", "offset 'x' is not a duration"),
            ("@every 1s after 5ms", "optionally followed by 'offset 250ms'"),
            ("@every x", "'x' is not a duration"),
            ("@every", "'@every' needs a duration"),
            ("@every 5", "'5' is not a duration"),
            ("@every 1.5h", "'1.5h' is not a duration"),
            ("@every 5m5m", "'5m5m' is not a duration"),
            ("@every 5M5m", "'5M5m' is not a duration"),
            ("@every -5m", "'-5m' is not a duration"),
            ("@every 400d", "the interval must be at most 366d"),
            ("@every 1h 30m", "'@every' takes one duration"),
            ("@reboot", "unknown macro '@reboot'"),
            ("@daily 3", "'@daily' takes no arguments"),
            (&long, "300 bytes long; the maximum is 256"),
        ];
        for (expr, want) in cases {
            match Schedule::parse(expr, "UTC") {
                Err(ScheduleError::InvalidExpression { reason, .. }) => {
                    assert!(reason.contains(want), "{expr}: got reason {reason:?}, want {want:?}");
                }
                other => panic!("{expr}: expected InvalidExpression, got {other:?}"),
            }
        }
    }

    #[test]
    fn error_messages_quote_the_input_and_cut_long_ones() {
        let err = Schedule::parse("0 0 0 * * 8", "UTC").expect_err("invalid");
        assert!(err.to_string().starts_with("invalid schedule expression '0 0 0 * * 8': day-of-week"));
        let long = "é".repeat(200);
        let Err(ScheduleError::InvalidExpression { expression, .. }) = Schedule::parse(&long, "UTC") else {
            panic!("expected InvalidExpression");
        };
        assert!(expression.len() <= 64 + '…'.len_utf8() && expression.ends_with('…'));
    }

    #[test]
    fn unknown_time_zones_are_named() {
        for tz in ["Mars/Olympus", "", "utc ", "EST5EDT6"] {
            let err = Schedule::parse("@daily", tz).expect_err("unknown zone");
            assert_eq!(err, ScheduleError::UnknownTimezone(tz.to_string()));
            assert!(err.to_string().contains("IANA"));
        }
    }

    #[test]
    fn accessors_and_policy_serde() {
        let s = Schedule::parse_with_policy(" @every 5m", "Europe/Berlin", DstPolicy::Twice).expect("valid");
        assert_eq!((s.expression(), s.timezone(), s.dst_policy()), (" @every 5m", "Europe/Berlin", DstPolicy::Twice));
        assert_eq!(Schedule::parse("@daily", "UTC").expect("valid").dst_policy(), DstPolicy::Shift);
        for (text, policy) in [("shift", DstPolicy::Shift), ("skip", DstPolicy::Skip), ("twice", DstPolicy::Twice)] {
            let de = IntoDeserializer::<serde::de::value::Error>::into_deserializer(text);
            assert_eq!(DstPolicy::deserialize(de), Ok(policy));
        }
        assert_eq!(DstPolicy::default(), DstPolicy::Shift);
    }
}
