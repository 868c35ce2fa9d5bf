//! The task form (`/tasks/new`, `/tasks/{id}/edit`) and its live schedule preview
//! (`/ui/preview`).
//!
//! The form posts every task field; the handler turns it into the API's `TaskInput` JSON and
//! sends it (`POST /api/v1/tasks` or `PUT /api/v1/tasks/{id}` with the version the form was
//! rendered from, so an edit made meanwhile is a `version_conflict`, not a silent overwrite).
//! The API validates; its error comes back next to the field it names (`UiError::field`) with an
//! error summary on top, and the form keeps what was typed.
//!
//! The preview asks the API's own `GET /schedule/preview` (the scheduler's iterator), and shows
//! the next 10 fires in the task's zone and in UTC, flagging a change of UTC offset (DST).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Form;
use chrono::{DateTime, Offset, TimeZone, Utc};
use cronraft_api::types::{PreviewView, TaskView};
use cronraft_raft::model::{BalanceStrategy, ExecutionMode, MisfirePolicy};
use cronraft_raft::schedule::DstPolicy;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::number;
use crate::error::UiError;
use crate::layout::{self, error_summary, Nav};
use crate::session::{encode, Viewer};
use crate::widgets::{described_by, field, form_guard, select, word};
use crate::{Console, ConsoleRef};

/// Every field of the form, as typed.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct TaskForm {
    csrf: String,
    request_id: String,
    version: String,
    name: String,
    description: String,
    cron_expression: String,
    timezone: String,
    parameters: String,
    execution_mode: String,
    load_balance_strategy: String,
    max_retry: String,
    timeout_seconds: String,
    executor: String,
    misfire_policy: String,
    catchup_window_seconds: String,
    dst_policy: String,
}

/// The form's fields, for errors that name one.
const FIELDS: &[&str] = &[
    "name",
    "description",
    "cron_expression",
    "timezone",
    "parameters",
    "execution_mode",
    "load_balance_strategy",
    "max_retry",
    "timeout_seconds",
    "executor",
    "misfire_policy",
    "catchup_window_seconds",
    "dst_policy",
];

impl TaskForm {
    fn blank() -> Self {
        TaskForm {
            timezone: "UTC".into(),
            parameters: "{}".into(),
            execution_mode: word(&ExecutionMode::default()),
            load_balance_strategy: word(&BalanceStrategy::default()),
            misfire_policy: word(&MisfirePolicy::default()),
            dst_policy: word(&DstPolicy::default()),
            ..Default::default()
        }
    }

    fn from_task(t: &TaskView) -> Self {
        TaskForm {
            version: t.version.to_string(),
            name: t.name.clone(),
            description: t.description.clone(),
            cron_expression: t.cron_expression.clone(),
            timezone: t.timezone.clone(),
            parameters: serde_json::to_string_pretty(&t.parameters).unwrap_or_default(),
            execution_mode: word(&t.execution_mode),
            load_balance_strategy: word(&t.load_balance_strategy),
            max_retry: t.max_retry.to_string(),
            timeout_seconds: t.timeout_seconds.to_string(),
            executor: t.executor.clone(),
            misfire_policy: word(&t.misfire_policy),
            catchup_window_seconds: t.catchup_window_seconds.to_string(),
            dst_policy: word(&t.dst_policy),
            ..Default::default()
        }
    }

    /// The API's `TaskInput` as JSON; a field the console cannot read is an `invalid_form` error.
    fn input(&self) -> Result<Value, UiError> {
        let mut m = Map::new();
        // Text fields are sent as typed (an empty one is the API's to refuse); a choice left
        // out of the post takes the API's default.
        for (k, v) in [
            ("name", &self.name),
            ("description", &self.description),
            ("cron_expression", &self.cron_expression),
            ("timezone", &self.timezone),
            ("executor", &self.executor),
        ] {
            m.insert(k.into(), json!(v.trim()));
        }
        for (k, v) in [
            ("execution_mode", &self.execution_mode),
            ("load_balance_strategy", &self.load_balance_strategy),
            ("misfire_policy", &self.misfire_policy),
            ("dst_policy", &self.dst_policy),
        ] {
            if !v.trim().is_empty() {
                m.insert(k.into(), json!(v.trim()));
            }
        }
        if let Some(n) = number::<u32>("max_retry", &self.max_retry)? {
            m.insert("max_retry".into(), json!(n));
        }
        if let Some(n) = number::<u32>("timeout_seconds", &self.timeout_seconds)? {
            m.insert("timeout_seconds".into(), json!(n));
        }
        if let Some(n) = number::<u64>("catchup_window_seconds", &self.catchup_window_seconds)? {
            m.insert("catchup_window_seconds".into(), json!(n));
        }
        if let Some(n) = number::<u64>("version", &self.version)? {
            m.insert("version".into(), json!(n));
        }
        let params = self.parameters.trim();
        if !params.is_empty() {
            let v: Value = serde_json::from_str(params)
                .map_err(|e| UiError::invalid_form(format!("`parameters` is not JSON: {e}")))?;
            m.insert("parameters".into(), v);
        }
        Ok(Value::Object(m))
    }
}

pub async fn new_page(State(c): State<ConsoleRef>, v: Viewer) -> Response {
    let page = form_page(&v, None, &TaskForm::blank(), None);
    layout::respond(&c, &v, Nav::Tasks, Ok(page))
}

pub async fn edit_page(State(c): State<ConsoleRef>, v: Viewer, Path(id): Path<String>) -> Response {
    let result = c.backend.get::<TaskView>(&v, &format!("/tasks/{}", encode(&id))).await;
    let page = result.map(|t| form_page(&v, Some(&t), &TaskForm::from_task(&t), None));
    layout::respond(&c, &v, Nav::Tasks, page)
}

pub async fn create(State(c): State<ConsoleRef>, v: Viewer, headers: HeaderMap, Form(f): Form<TaskForm>) -> Response {
    if let Err(e) = v.check_form(&headers, &f.csrf) {
        return layout::error_page(&c, &v, Nav::Tasks, &e);
    }
    let sent = match f.input() {
        Ok(body) => c.backend.send::<TaskView>(&v, Method::POST, "/tasks", Some(body), &f.request_id).await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(t) => layout::redirect(&format!("/tasks/{}?done=created", t.id)),
        Err(e) => refill(&c, &v, None, &f, e),
    }
}

pub async fn update(
    State(c): State<ConsoleRef>,
    v: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<TaskForm>,
) -> Response {
    if let Err(e) = v.check_form(&headers, &f.csrf) {
        return layout::error_page(&c, &v, Nav::Tasks, &e);
    }
    let path = format!("/tasks/{}", encode(&id));
    let sent = match f.input() {
        Ok(body) => c.backend.send::<TaskView>(&v, Method::PUT, &path, Some(body), &f.request_id).await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(t) => layout::redirect(&format!("/tasks/{}?done=saved", t.id)),
        Err(e) => match c.backend.get::<TaskView>(&v, &path).await {
            Ok(t) => refill(&c, &v, Some(&t), &f, e),
            Err(_) => layout::error_page(&c, &v, Nav::Tasks, &e),
        },
    }
}

/// The form again, as typed, with the error next to its field (422 or the API's status).
fn refill(c: &Console, v: &Viewer, task: Option<&TaskView>, f: &TaskForm, e: UiError) -> Response {
    let status = e.status;
    let page = form_page(v, task, f, Some(&e));
    let mut resp = layout::respond(c, v, Nav::Tasks, Ok(page));
    *resp.status_mut() = status;
    resp.into_response()
}

fn form_page(v: &Viewer, task: Option<&TaskView>, f: &TaskForm, error: Option<&UiError>) -> layout::Page {
    let (title, action) = match task {
        Some(t) => (format!("Edit {}", t.name), format!("/tasks/{}/edit", t.id)),
        None => ("New task".to_string(), "/tasks/new".to_string()),
    };
    let at = error.and_then(|e| e.field(FIELDS));
    let err = |name: &str| (at == Some(name)).then(|| error.map(|e| e.message.as_str())).flatten();
    let text = |id: &'static str, label: &str, hint: Option<&str>, value: &str, required: bool| {
        let invalid = err(id).is_some();
        field(
            id,
            label,
            hint,
            err(id),
            html! {
                input id=(id) name=(id) type="text" value=(value) required[required]
                    aria-invalid=[invalid.then_some("true")] aria-describedby=[described_by(id, hint.is_some(), invalid)];
            },
        )
    };
    let choice = |id: &'static str, label: &str, hint: &str, options: &[(&str, &str)], value: &str| {
        let invalid = err(id).is_some();
        field(id, label, Some(hint), err(id), select(id, options, value, described_by(id, true, invalid)))
    };
    let body = html! {
        h1 { (title) }
        @if let Some(e) = error { (error_summary(e)) }
        form #task-form method="post" action=(action) novalidate {
            (form_guard(v))
            input type="hidden" name="version" value=(f.version);
            div.form-grid {
                div {
                    fieldset { legend { "Task" }
                        (text("name", "Name", Some("1 to 128 characters; unique among live tasks."), &f.name, true))
                        (text("description", "Description", None, &f.description, false))
                        (text("executor", "Executor group", Some("The group of executors that run it (an agent's --group)."), &f.executor, true))
                    }
                    fieldset { legend { "Schedule" }
                        (text("cron_expression", "Cron expression", Some("Six fields with seconds (0 */5 * * * *), five without, or @hourly, @daily …"), &f.cron_expression, true))
                        (text("timezone", "Time zone", Some("An IANA zone such as Europe/Berlin or America/New_York."), &f.timezone, true))
                        (choice("dst_policy", "When a DST change skips or repeats a time", "shift: run once at the next valid time; skip: do not run; twice: run at both.", &[("shift", "shift"), ("skip", "skip"), ("twice", "twice")], &f.dst_policy))
                        (choice("misfire_policy", "Slots missed while no leader could fire", "fire_once: one catch-up run; fire_all: every missed slot; skip: none.", &[("fire_once", "fire_once"), ("fire_all", "fire_all"), ("skip", "skip")], &f.misfire_policy))
                        (text("catchup_window_seconds", "Catch-up window (seconds)", Some("Missed slots older than this are recorded as missed, not run. Empty: the default."), &f.catchup_window_seconds, false))
                    }
                }
                div {
                    section.preview aria-live="polite" aria-labelledby="preview-title" {
                        h2 #preview-title { "Next 10 fires" }
                        div #preview { p.muted { "Type a cron expression to see its next fires." } }
                    }
                    fieldset { legend { "Execution" }
                        (choice("execution_mode", "When a run is still active at the next slot", "parallel: start another; sequential: queue it; skip: record it skipped; replace: stop the old run.", &[("parallel", "parallel"), ("sequential", "sequential"), ("skip", "skip"), ("replace", "replace")], &f.execution_mode))
                        (choice("load_balance_strategy", "Load balancing", "How an executor of the group is chosen for each run.", &[("round_robin", "round_robin"), ("weighted_round_robin", "weighted_round_robin"), ("random", "random"), ("sticky", "sticky"), ("least_loaded", "least_loaded")], &f.load_balance_strategy))
                        (text("max_retry", "Retries after a failure", Some("0 to 100. Empty: the default."), &f.max_retry, false))
                        (text("timeout_seconds", "Timeout (seconds)", Some("A run that takes longer is stopped and marked timeout. Empty: the default."), &f.timeout_seconds, false))
                    }
                    fieldset { legend { "Parameters" }
                        @let invalid = err("parameters").is_some();
                        (field("parameters", "Parameters (JSON object)", Some("Sent to the executor with every run. {\"secret\": \"…\"} values are hidden from read-only viewers."), err("parameters"), html! {
                            textarea #parameters name="parameters" rows="6" aria-invalid=[invalid.then_some("true")] aria-describedby=[described_by("parameters", true, invalid)] { (f.parameters) }
                        }))
                    }
                }
            }
            div.actions {
                button #save type="submit" { @if task.is_some() { "Save" } @else { "Create task" } }
                a href=(task.map(|t| format!("/tasks/{}", t.id)).unwrap_or_else(|| "/tasks".into())) { "Cancel" }
            }
        }
    };
    layout::Page::new(title, Nav::Tasks, body)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PreviewQuery {
    cron_expression: String,
    timezone: String,
    dst_policy: String,
}

/// `GET /ui/preview`: the preview fragment (the form's script swaps it in as you type).
pub async fn preview(State(c): State<ConsoleRef>, v: Viewer, Query(q): Query<PreviewQuery>) -> Response {
    let markup = preview_fragment(&c, &v, &q).await;
    let mut resp = markup.into_response();
    crate::session::no_store(&mut resp);
    resp
}

async fn preview_fragment(c: &Console, v: &Viewer, q: &PreviewQuery) -> Markup {
    if q.cron_expression.trim().is_empty() {
        return html! { p.muted { "Type a cron expression to see its next fires." } };
    }
    let zone = if q.timezone.trim().is_empty() { "UTC" } else { q.timezone.trim() };
    let dst = if q.dst_policy.is_empty() { "shift" } else { q.dst_policy.as_str() };
    let path = format!(
        "/schedule/preview?cron_expression={}&timezone={}&dst_policy={}&count=10",
        encode(q.cron_expression.trim()),
        encode(zone),
        encode(dst)
    );
    match c.backend.get::<PreviewView>(v, &path).await {
        Ok(p) => preview_list(&p.times, zone, Utc::now()),
        Err(e) => html! { p.field-error role="alert" data-code=(e.code) { (e.message) } },
    }
}

/// The next fires in the task's zone and in UTC; a fire after a change of the zone's UTC offset
/// (from `now`'s) is flagged (`li.dst`).
fn preview_list(times: &[DateTime<Utc>], zone: &str, now: DateTime<Utc>) -> Markup {
    let Ok(tz) = zone.parse::<chrono_tz::Tz>() else {
        return html! { p.field-error { "Unknown time zone " (zone) } };
    };
    if times.is_empty() {
        return html! { p.muted { "This expression never fires again." } };
    }
    let offset = |t: &DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc();
    let mut previous = offset(&now);
    let flagged: Vec<(DateTime<Utc>, Option<OffsetChange>)> = times
        .iter()
        .map(|t| {
            let here = offset(t);
            let change = (here != previous).then_some((previous, here));
            previous = here;
            (*t, change)
        })
        .collect();
    html! {
        p.muted { "In " (zone) ", then UTC." }
        ol { @for (t, change) in &flagged {
            li class=[change.map(|_| "dst")] {
                (t.with_timezone(&tz).format("%a %Y-%m-%d %H:%M:%S %Z")) " · " (t.format("%H:%M:%S UTC"))
                @if let Some((before, after)) = change { " — DST change: UTC" (fmt_offset(*before)) " → UTC" (fmt_offset(*after)) }
            }
        } }
    }
}

/// A change of UTC offset (seconds before, after) between two fires.
type OffsetChange = (i32, i32);

fn fmt_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '−' } else { '+' };
    let s = seconds.abs();
    format!("{sign}{:02}:{:02}", s / 3600, (s % 3600) / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fire_after_the_spring_change_is_flagged() {
        let times: Vec<DateTime<Utc>> = ["2026-03-07T14:00:00Z", "2026-03-08T13:00:00Z", "2026-03-09T13:00:00Z"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let html = preview_list(&times, "America/New_York", "2026-03-01T00:00:00Z".parse().unwrap()).into_string();
        assert_eq!(html.matches("class=\"dst\"").count(), 1, "{html}");
        assert!(html.contains("UTC−05:00 → UTC−04:00"), "{html}");
    }

    #[test]
    fn a_number_field_that_is_not_one_is_named() {
        let f = TaskForm { max_retry: "three".into(), ..TaskForm::blank() };
        let e = f.input().unwrap_err();
        assert_eq!(e.field(FIELDS), Some("max_retry"));
        let f = TaskForm { parameters: "{".into(), ..TaskForm::blank() };
        assert_eq!(f.input().unwrap_err().field(FIELDS), Some("parameters"));
    }
}
