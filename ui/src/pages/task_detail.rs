//! A task's page (`/tasks/{id}`): its definition, statistics for 24 h / 7 d / 90 d, a daily
//! trend chart, the slot timeline (each recent scheduled slot: ran, failed, missed, skipped,
//! queued, with its reason) and its executions; and the task's actions: pause, resume, trigger
//! with a parameter override, delete with a confirmation page.
//!
//! Every figure is the API's: `GET /tasks/{id}`, `/tasks/{id}/stats` (hourly rollups kept in
//! apply) and `/executions?task_id=`. Actions post here and become one API write each.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Form;
use chrono::{Duration, NaiveDate, Utc};
use cronraft_api::types::{ExecutionPageView, ExecutionView, Page, TaskStatsView, TaskView, WindowStatsView};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

use super::{or_error, GuardForm, Submit};
use crate::chart::{self, Bar};
use crate::error::UiError;
use crate::layout::{self, error_summary, Nav};
use crate::session::{encode, Viewer};
use crate::widgets::{badge, between, cursor_pager, duration_ms, empty, form_guard, time, word};
use crate::ConsoleRef;

/// Days the trend chart shows.
const TREND_DAYS: i64 = 30;
/// Slots the timeline shows.
const SLOTS_SHOWN: u64 = 60;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DetailQuery {
    /// The executions table's cursor: executions older than this id.
    before: Option<u64>,
}

pub async fn page(
    State(c): State<ConsoleRef>,
    v: Viewer,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Response {
    let result = render(&c, &v, &id, q.before).await;
    layout::respond(&c, &v, Nav::Tasks, result)
}

async fn render(c: &ConsoleRef, v: &Viewer, raw: &str, before: Option<u64>) -> Result<layout::Page, UiError> {
    let t: TaskView = c.backend.get(v, &format!("/tasks/{}", encode(raw))).await?;
    let paths = [
        format!("/tasks/{}/stats", t.id),
        format!("/executions?task_id={}&page_size={SLOTS_SHOWN}", t.id),
        match before {
            Some(b) => format!("/executions?task_id={}&before={b}&page_size=20", t.id),
            None => format!("/executions?task_id={}&page_size=20", t.id),
        },
    ];
    let (stats, slots, runs) = tokio::join!(
        c.backend.get::<TaskStatsView>(v, &paths[0]),
        c.backend.get::<Page<ExecutionView>>(v, &paths[1]),
        c.backend.get::<ExecutionPageView>(v, &paths[2]),
    );
    let status = word(&t.status);
    let body = html! {
        h1 { (t.name) " " span #task-status { (badge(&status)) } }
        (actions(v, &t))
        div.cards {
            section.card { h2 { "Definition" } (definition(&t)) }
            section.card #stats-card { h2 { "Statistics" } (or_error(stats.as_ref().map(stats_table).map_err(Clone::clone))) }
            section.card.wide-card { h2 { "Runs per day, last " (TREND_DAYS) " days" } (or_error(stats.map(|s| trend(&s)))) }
            section.card.wide-card { h2 { "Slot timeline" } (or_error(slots.map(|p| timeline(&p.items)))) }
        }
        h2 { "Executions" }
        (or_error(runs.map(|p| executions(&p, t.id, before))))
    };
    let refresh = t.status == cronraft_raft::model::TaskStatus::Active;
    let page = layout::Page::new(t.name.clone(), Nav::Tasks, body);
    Ok(if refresh { page.refreshing(5_000) } else { page })
}

fn actions(v: &Viewer, t: &TaskView) -> Markup {
    let live = t.status != cronraft_raft::model::TaskStatus::Deleted;
    let paused = t.status == cronraft_raft::model::TaskStatus::Paused;
    html! {
        div.actions { @if live {
            @if v.may(Method::PUT, "/tasks/{id}") { a #edit-link.button.secondary href={"/tasks/" (t.id) "/edit"} { "Edit" } }
            @if !paused && v.may(Method::POST, "/tasks/{id}/pause") {
                form #pause-form.inline method="post" action={"/tasks/" (t.id) "/pause"} { (form_guard(v)) button.secondary type="submit" { "Pause" } }
            }
            @if paused && v.may(Method::POST, "/tasks/{id}/resume") {
                form #resume-form.inline method="post" action={"/tasks/" (t.id) "/resume"} { (form_guard(v)) button type="submit" { "Resume" } }
            }
            @if v.may(Method::POST, "/tasks/{id}/trigger") { a #trigger-link.button.secondary href={"/tasks/" (t.id) "/trigger"} { "Run now…" } }
            @if v.may(Method::DELETE, "/tasks/{id}") { a #delete-link.button.danger href={"/tasks/" (t.id) "/delete"} { "Delete…" } }
        } }
    }
}

fn definition(t: &TaskView) -> Markup {
    html! {
        dl.props {
            dt { "Id" } dd { (t.id) }
            @if !t.description.is_empty() { dt { "Description" } dd { (t.description) } }
            dt { "Schedule" } dd { code { (t.cron_expression) } " in " (t.timezone) }
            dt { "Next fire" } dd { (time(t.next_fire_time)) }
            dt { "Executor group" } dd { a href={"/executors"} { (t.executor) } }
            dt { "Mode" } dd { (word(&t.execution_mode)) }
            dt { "Load balancing" } dd { (word(&t.load_balance_strategy)) }
            dt { "Retries" } dd { (t.max_retry) }
            dt { "Timeout" } dd { (t.timeout_seconds) " s" }
            dt { "Misfire policy" } dd { (word(&t.misfire_policy)) ", catch-up window " (t.catchup_window_seconds) " s" }
            dt { "DST policy" } dd { (word(&t.dst_policy)) }
            dt { "Parameters" } dd { code { (t.parameters.to_string()) } }
            dt { "Version" } dd { (t.version) }
            dt { "Changed" } dd { (time(Some(t.updated_at))) " by " (t.updated_by) }
            dt { "Created" } dd { (time(Some(t.created_at))) }
        }
    }
}

fn stats_table(s: &TaskStatsView) -> Markup {
    let w = [("24 h", &s.windows.last_24h), ("7 d", &s.windows.last_7d), ("90 d", &s.windows.last_90d)];
    let pct = |x: Option<f64>| x.map(|r| format!("{:.1} %", r * 100.0)).unwrap_or_else(|| "—".into());
    let on_time = |w: &WindowStatsView| {
        let slots = w.on_time + w.late + w.missed;
        (slots > 0).then(|| w.on_time as f64 / slots as f64)
    };
    html! {
        div.table-wrap { table #stats {
            caption.visually-hidden { "Statistics by window" }
            thead { tr { th scope="col" { "" } @for (label, _) in &w { th.num scope="col" { (label) } } } }
            tbody {
                tr { th scope="row" { "Runs" } @for (_, x) in &w { td.num { (x.total) } } }
                tr { th scope="row" { "Success rate" } @for (_, x) in &w { td.num { (pct(x.success_rate)) } } }
                tr { th scope="row" { "p95 duration" } @for (_, x) in &w { td.num { (x.p95_duration_ms.map(duration_ms).unwrap_or_else(|| "—".into())) } } }
                tr { th scope="row" { "On time" } @for (_, x) in &w { td.num { (pct(on_time(x))) } } }
                tr { th scope="row" { "Failed or timed out" } @for (_, x) in &w { td.num { (x.failed + x.timeout) } } }
                tr { th scope="row" { "Missed" } @for (_, x) in &w { td.num { (x.missed) } } }
            }
        } }
        @if let Some(h) = s.health_score { p { "Health score " strong { (h) } " / 100" } }
    }
}

fn trend(s: &TaskStatsView) -> Markup {
    let today = Utc::now().date_naive();
    let days: Vec<NaiveDate> = (0..TREND_DAYS).rev().map(|d| today - Duration::days(d)).collect();
    let bars: Vec<Bar<'_>> = days
        .iter()
        .map(|d| {
            let w = s.daily.iter().find(|x| x.date == *d).map(|x| &x.stats);
            let n = |f: fn(&WindowStatsView) -> u64| w.map(f).unwrap_or(0) as f64;
            Bar {
                label: d.format("%m-%d").to_string(),
                parts: vec![
                    ("ok", "success", n(|w| w.success)),
                    ("bad", "failed or timeout", n(|w| w.failed + w.timeout)),
                    ("miss", "missed or skipped", n(|w| w.missed + w.skipped)),
                ],
            }
        })
        .collect();
    html! {
        figure {
            (layout::raw(chart::bars("trend-chart", "Runs per day by outcome", &bars)))
            figcaption { "Green: success · red: failed or timed out · amber: missed or skipped (UTC days)." }
        }
    }
}

/// The recent scheduled slots, oldest first, each with its outcome and reason.
fn timeline(items: &[ExecutionView]) -> Markup {
    let mut slots: Vec<&ExecutionView> =
        items.iter().filter(|e| matches!(word(&e.trigger).as_str(), "schedule" | "catchup")).collect();
    slots.reverse();
    if slots.is_empty() {
        return empty("No scheduled slot yet.");
    }
    html! {
        div #slots.slots role="list" {
            @for e in &slots {
                @let status = slot_status(e);
                @let reason = e.reason.as_ref().map(word).unwrap_or_default();
                a class={"slot s-" (status)} role="listitem" data-status=(status) href={"/executions/" (e.id)}
                    title={(e.scheduled_time.format("%Y-%m-%d %H:%M:%S UTC")) " — " (status) @if !reason.is_empty() { " (" (reason) ")" }} {
                    span.visually-hidden { (e.scheduled_time.format("%H:%M:%S")) " " (status) " " (reason) }
                }
            }
        }
        p.legend {
            @for s in ["success", "failed", "missed", "skipped", "queued", "running"] { span { span class={"slot s-" (s)} {} " " (s) } }
        }
    }
}

fn slot_status(e: &ExecutionView) -> String {
    let s = word(&e.status);
    if s == "pending" && e.queued {
        "queued".into()
    } else {
        s
    }
}

fn executions(p: &ExecutionPageView, task: u64, before: Option<u64>) -> Markup {
    if p.items.is_empty() {
        return empty("No executions yet.");
    }
    html! {
        div.table-wrap { table #executions-table {
            caption.visually-hidden { "Executions of this task" }
            thead { tr {
                th scope="col" { "Id" } th scope="col" { "Status" } th scope="col" { "Slot" }
                th.hide-narrow scope="col" { "Trigger" } th.hide-narrow scope="col" { "Duration" } th.hide-narrow scope="col" { "Attempts" }
            } }
            tbody { @for e in &p.items {
                tr data-execution-id=(e.id) {
                    td { a href={"/executions/" (e.id)} { (e.id) } }
                    td.status { (super::executions::status_cell(e)) }
                    td { (time(Some(e.scheduled_time))) }
                    td.hide-narrow { (word(&e.trigger)) }
                    td.hide-narrow { (between(e.start_time, e.end_time)) }
                    td.hide-narrow.num { (e.attempt_count) }
                }
            } }
        } }
        @let ids: Vec<u64> = p.items.iter().map(|e| e.id).collect();
        (cursor_pager(&format!("/tasks/{task}"), before, &ids, p.page_size, p.total, p.total_capped))
    }
}

/// POST `/tasks/{id}/pause` and `/resume`: one API write each, then back to the task.
pub async fn pause(
    State(c): State<ConsoleRef>,
    v: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<GuardForm>,
) -> Response {
    simple(&c, &v, &headers, &f, &format!("/tasks/{}/pause", encode(&id)), &id, "paused").await
}

pub async fn resume(
    State(c): State<ConsoleRef>,
    v: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<GuardForm>,
) -> Response {
    simple(&c, &v, &headers, &f, &format!("/tasks/{}/resume", encode(&id)), &id, "resumed").await
}

async fn simple(
    c: &ConsoleRef,
    v: &Viewer,
    headers: &HeaderMap,
    f: &GuardForm,
    path: &str,
    id: &str,
    done: &str,
) -> Response {
    let then = format!("/tasks/{}?done={done}", encode(id));
    let submit = Submit { nav: Nav::Tasks, method: Method::POST, path, body: None, then: &then };
    submit.send(c, v, headers, &f.csrf, &f.request_id).await
}

/// GET `/tasks/{id}/trigger`: the run-now form, with the task's parameters to edit.
pub async fn trigger_page(State(c): State<ConsoleRef>, v: Viewer, Path(id): Path<String>) -> Response {
    let result = c.backend.get::<TaskView>(&v, &format!("/tasks/{}", encode(&id))).await;
    let page =
        result.map(|t| trigger_form(&v, &t, &serde_json::to_string_pretty(&t.parameters).unwrap_or_default(), None));
    layout::respond(&c, &v, Nav::Tasks, page)
}

fn trigger_form(v: &Viewer, t: &TaskView, parameters: &str, error: Option<&UiError>) -> layout::Page {
    let body = html! {
        h1 { "Run " (t.name) " now" }
        @if let Some(e) = error { (error_summary(e)) }
        p { "One manual run, outside the schedule; the task's schedule is not changed." }
        form #trigger-form method="post" action={"/tasks/" (t.id) "/trigger"} {
            (form_guard(v))
            div class={"field" @if error.is_some() { " has-error" }} {
                label for="parameters" { "Parameters for this run (JSON object)" }
                p #parameters-hint.hint { "Override the task's parameters for this run only. Leave as is to use them." }
                @if let Some(e) = error { p #parameters-error.field-error { (e.message) } }
                textarea #parameters name="parameters" rows="8" aria-describedby="parameters-hint" { (parameters) }
            }
            div.actions { button #trigger type="submit" { "Run now" } a href={"/tasks/" (t.id)} { "Cancel" } }
        }
    };
    layout::Page::new(format!("Run {}", t.name), Nav::Tasks, body)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TriggerForm {
    csrf: String,
    request_id: String,
    parameters: String,
}

/// POST `/tasks/{id}/trigger`: a manual run with the parameters of the form.
pub async fn trigger(
    State(c): State<ConsoleRef>,
    v: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<TriggerForm>,
) -> Response {
    if let Err(e) = v.check_form(&headers, &f.csrf) {
        return layout::error_page(&c, &v, Nav::Tasks, &e);
    }
    let body = match f.parameters.trim() {
        "" => Ok(json!({})),
        p => serde_json::from_str::<serde_json::Value>(p)
            .map(|params| json!({ "parameters": params }))
            .map_err(|e| UiError::invalid_form(format!("`parameters` is not JSON: {e}"))),
    };
    let path = format!("/tasks/{}/trigger", encode(&id));
    let sent = match body {
        Ok(b) => c.backend.send::<ExecutionView>(&v, Method::POST, &path, Some(b), &f.request_id).await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(e) => layout::redirect(&format!("/executions/{}?done=triggered", e.id)),
        Err(e) => match c.backend.get::<TaskView>(&v, &format!("/tasks/{}", encode(&id))).await {
            Ok(t) => {
                let status = e.status;
                let mut resp = layout::respond(&c, &v, Nav::Tasks, Ok(trigger_form(&v, &t, &f.parameters, Some(&e))));
                *resp.status_mut() = status;
                resp
            }
            Err(_) => layout::error_page(&c, &v, Nav::Tasks, &e),
        },
    }
}

/// GET `/tasks/{id}/delete`: what deleting does, and the button that does it.
pub async fn delete_page(State(c): State<ConsoleRef>, v: Viewer, Path(id): Path<String>) -> Response {
    let result = c.backend.get::<TaskView>(&v, &format!("/tasks/{}", encode(&id))).await;
    let page = result.map(|t| {
        let body = html! {
            h1 { "Delete " (t.name) "?" }
            p.warning { "No slot of this task fires after the delete. Its running executions are not stopped; its history stays readable. The name becomes free for a new task." }
            form #delete-form method="post" action={"/tasks/" (t.id) "/delete"} {
                (form_guard(&v))
                div.actions { button #confirm-delete.danger type="submit" { "Delete task" } a href={"/tasks/" (t.id)} { "Cancel" } }
            }
        };
        layout::Page::new(format!("Delete {}", t.name), Nav::Tasks, body)
    });
    layout::respond(&c, &v, Nav::Tasks, page)
}

pub async fn delete(
    State(c): State<ConsoleRef>,
    v: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<GuardForm>,
) -> Response {
    let path = format!("/tasks/{}", encode(&id));
    let submit =
        Submit { nav: Nav::Tasks, method: Method::DELETE, path: &path, body: None, then: "/tasks?done=deleted" };
    submit.send(&c, &v, &headers, &f.csrf, &f.request_id).await
}
