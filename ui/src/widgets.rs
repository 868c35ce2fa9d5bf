//! The small pieces every page is built from: times, status badges, pagers, form fields and the
//! hidden fields of a write form.
//!
//! Times are rendered as `<time datetime="…Z">` with UTC text, which `app.js` rewrites into the
//! browser's zone (UTC stays in the `title`, shown on hover); without JavaScript the UTC text is
//! what shows. A status is never a colour alone: every badge has its word.

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use crate::session::{encode, Viewer};

/// A point in time, or "never".
pub fn time(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => {
            let utc = t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
            html! { time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)) title=(utc) { (utc) } }
        }
        None => html! { span.muted { "never" } },
    }
}

/// A duration in ms as people read it ("850 ms", "2.4 s", "3 min 5 s").
pub fn duration_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1_000.0),
        60_000..=3_599_999 => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1_000),
        _ => format!("{} h {} min", ms / 3_600_000, (ms % 3_600_000) / 60_000),
    }
}

/// The time between two points, if both are known.
pub fn between(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => duration_ms((b - a).num_milliseconds().max(0) as u64),
        _ => "—".into(),
    }
}

/// A status word with its icon, coloured by class (`s-success`, `s-failed`, …).
pub fn badge(status: &str) -> Markup {
    let icon = match status {
        "success" | "online" | "active" | "healthy" | "leader" | "voter" => "✓",
        "failed" | "timeout" | "unhealthy" | "unreachable" => "✗",
        "running" => "▶",
        "pending" | "queued" => "…",
        "paused" | "maintenance" | "offline" => "‖",
        "missed" => "!",
        "skipped" | "cancelled" | "deleted" => "–",
        _ => "•",
    };
    html! { span class={"badge s-" (status)} { span aria-hidden="true" { (icon) } " " (status) } }
}

/// The JSON string a serde enum serializes to (`ExecutionStatus::Success` → `success`).
pub fn word<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// Previous/next links and "page 2 of 9 (170)" for a listing at `base` (a path with its
/// query, without `page`).
pub fn pager(base: &str, page: u64, page_size: u64, total: u64) -> Markup {
    let pages = total.div_ceil(page_size.max(1)).max(1);
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        nav.pager aria-label="Pages" {
            @if page > 1 { a rel="prev" href={(base) (sep) "page=" (page - 1)} { "← Previous" } } @else { span.muted { "← Previous" } }
            span { "Page " (page) " of " (pages) " · " (total) " in all" }
            @if page < pages { a rel="next" href={(base) (sep) "page=" (page + 1)} { "Next →" } } @else { span.muted { "Next →" } }
        }
    }
}

/// "Newest" and "Older" links for a newest-first listing paged by cursor (`before` an id): the
/// cost of a page does not grow with its depth. `base` is the path with its filters.
pub fn cursor_pager(
    base: &str,
    before: Option<u64>,
    shown: &[u64],
    page_size: u64,
    total: u64,
    capped: bool,
) -> Markup {
    let sep = if base.contains('?') { '&' } else { '?' };
    let more = shown.len() as u64 >= page_size;
    html! {
        nav.pager aria-label="Pages" {
            @if before.is_some() { a href=(base) { "↑ Newest" } } @else { span.muted { "↑ Newest" } }
            span { (shown.len()) " shown · " (total) @if capped { "+" } @if before.is_some() { " older than " (before.unwrap_or(0)) } @else { " in all" } }
            @match (more, shown.last()) {
                (true, Some(last)) => { a rel="next" href={(base) (sep) "before=" (last)} { "Older →" } }
                _ => { span.muted { "Older →" } }
            }
        }
    }
}

/// Builds `path?k=v&…` from the non-empty pairs.
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let q: Vec<String> =
        pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", encode(v))).collect();
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

/// The hidden fields of every write form: the CSRF token and a fresh request id (the API's
/// `Idempotency-Key`: submitting the same rendered form twice applies it once).
pub fn form_guard(viewer: &Viewer) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(viewer.csrf);
        input type="hidden" name="request_id" value=(request_id());
    }
}

/// A fresh request id for a rendered form.
pub fn request_id() -> String {
    format!("ui-{}", uuid::Uuid::new_v4().simple())
}

/// One labelled form field: label, hint, the control, and its error (linked by
/// `aria-describedby`, with `aria-invalid` set by the control's caller through `invalid`).
pub fn field(id: &str, label: &str, hint: Option<&str>, error: Option<&str>, control: Markup) -> Markup {
    html! {
        div class={"field" @if error.is_some() { " has-error" }} {
            label for=(id) { (label) }
            @if let Some(h) = hint { p.hint id={(id) "-hint"} { (h) } }
            @if let Some(e) = error { p.field-error id={(id) "-error"} { span.visually-hidden { "Error: " } (e) } }
            (control)
        }
    }
}

/// The `aria-describedby` value of a field.
pub fn described_by(id: &str, hint: bool, error: bool) -> Option<String> {
    let mut ids = Vec::new();
    if hint {
        ids.push(format!("{id}-hint"));
    }
    if error {
        ids.push(format!("{id}-error"));
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

/// A `<select>` of `options` (value, label) with `selected` chosen.
pub fn select(id: &str, options: &[(&str, &str)], selected: &str, describedby: Option<String>) -> Markup {
    html! {
        select id=(id) name=(id) aria-describedby=[describedby] {
            @for (value, label) in options {
                option value=(value) selected[*value == selected] { (label) }
            }
        }
    }
}

/// An empty state: a sentence instead of an empty table.
pub fn empty(text: &str) -> Markup {
    html! { p.empty { (text) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_say_them() {
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(2_400), "2.4 s");
        assert_eq!(duration_ms(185_000), "3 min 5 s");
        assert_eq!(duration_ms(7_500_000), "2 h 5 min");
    }

    #[test]
    fn the_pager_keeps_the_filters() {
        let m = pager("/tasks?status=paused", 2, 20, 45).into_string();
        assert!(m.contains("/tasks?status=paused&amp;page=1"), "{m}");
        assert!(m.contains("/tasks?status=paused&amp;page=3"), "{m}");
        assert!(m.contains("Page 2 of 3"), "{m}");
        assert_eq!(with_query("/tasks", &[("name", "a b"), ("status", "")]), "/tasks?name=a%20b");
    }
}
