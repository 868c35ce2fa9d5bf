//! Executions: the list (`/executions`, filters task, status, trigger and a slot time range, in
//! the query string, paged) and one execution's page (`/executions/{id}`: every attempt with
//! its executor, term and log index, times and error; the log tail; the result; stop). A page
//! of an execution that has not ended refreshes itself every 2 s until it has.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Form;
use cronraft_api::types::{ExecutionPageView, ExecutionView};
use cronraft_raft::model::ExecutionStatus;
use maud::{html, Markup};
use serde::Deserialize;

use super::{GuardForm, Submit};
use crate::error::UiError;
use crate::layout::{self, Nav};
use crate::session::{encode, Viewer};
use crate::widgets::{badge, between, cursor_pager, empty, form_guard, select, time, with_query, word};
use crate::ConsoleRef;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Filters {
    task: String,
    status: String,
    trigger: String,
    from: String,
    to: String,
    /// The cursor: executions older than this id.
    before: String,
    page: String,
}

impl Filters {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("task", self.task.as_str()),
            ("status", self.status.as_str()),
            ("trigger", self.trigger.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
        ]
    }

    /// The API's query: `task` is `task_id` there; times typed as `YYYY-MM-DDTHH:MM` (the
    /// browser's datetime-local) are taken as UTC.
    fn api_path(&self) -> String {
        let (from, to) = (rfc3339(&self.from), rfc3339(&self.to));
        with_query(
            "/executions",
            &[
                ("task_id", self.task.trim()),
                ("status", self.status.as_str()),
                ("trigger", self.trigger.as_str()),
                ("from", from.as_str()),
                ("to", to.as_str()),
                ("before", self.before.trim()),
                ("page", self.page.as_str()),
            ],
        )
    }
}

fn self_before(f: &Filters) -> Option<u64> {
    f.before.trim().parse().ok()
}

fn rfc3339(raw: &str) -> String {
    let raw = raw.trim();
    match raw.len() {
        16 if raw.as_bytes()[10] == b'T' => format!("{raw}:00Z"),
        19 if raw.as_bytes()[10] == b'T' => format!("{raw}Z"),
        _ => raw.to_string(),
    }
}

pub async fn list(State(c): State<ConsoleRef>, v: Viewer, Query(f): Query<Filters>) -> Response {
    let result = render_list(&c, &v, &f).await;
    layout::respond(&c, &v, Nav::Executions, result)
}

async fn render_list(c: &ConsoleRef, v: &Viewer, f: &Filters) -> Result<layout::Page, UiError> {
    let page: Result<ExecutionPageView, UiError> = c.backend.get(v, &f.api_path()).await;
    let names = match &page {
        Ok(p) => super::task_names(c, v, p.items.iter().map(|e| e.task_id)).await,
        Err(_) => Default::default(),
    };
    let base = with_query("/executions", &f.pairs());
    let body = html! {
        h1 { "Executions" }
        (filters(f))
        @match &page {
            Err(e) => { (layout::error_summary(e)) }
            Ok(p) if p.items.is_empty() => { (empty(if base == "/executions" { "No executions yet." } else { "No execution matches these filters." })) }
            Ok(p) => {
                div.table-wrap { table #executions-table {
                    caption { (p.total) " executions" }
                    thead { tr {
                        th scope="col" { "Id" } th scope="col" { "Task" } th scope="col" { "Status" } th scope="col" { "Slot" }
                        th.hide-narrow scope="col" { "Trigger" } th.hide-narrow scope="col" { "Started" } th.hide-narrow scope="col" { "Duration" }
                    } }
                    tbody { @for e in &p.items { (row(e, names.get(&e.task_id))) } }
                } }
                @let ids: Vec<u64> = p.items.iter().map(|e| e.id).collect();
                (cursor_pager(&base, self_before(f), &ids, p.page_size, p.total, p.total_capped))
            }
        }
    };
    Ok(layout::Page::new("Executions", Nav::Executions, body))
}

fn row(e: &ExecutionView, task: Option<&String>) -> Markup {
    html! {
        tr data-execution-id=(e.id) {
            td { a href={"/executions/" (e.id)} { (e.id) } }
            td { a href={"/tasks/" (e.task_id)} { @match task { Some(n) => { (n) }, None => { "task " (e.task_id) } } } }
            td.status { (status_cell(e)) }
            td { (time(Some(e.scheduled_time))) }
            td.hide-narrow { (word(&e.trigger)) }
            td.hide-narrow { (time(e.start_time)) }
            td.hide-narrow { (between(e.start_time, e.end_time)) }
        }
    }
}

/// The status badge and its reason; a pending run with a reason is waiting for a retry.
pub fn status_cell(e: &ExecutionView) -> Markup {
    let waiting = e.status == ExecutionStatus::Pending && !e.queued && e.reason.is_some();
    html! {
        (badge(&status_word(e)))
        @if let Some(r) = &e.reason {
            " " span.muted { @if waiting { "retry after " } (word(r)) }
        }
    }
}

fn status_word(e: &ExecutionView) -> String {
    let s = word(&e.status);
    if s == "pending" && e.queued {
        "queued".into()
    } else {
        s
    }
}

fn filters(f: &Filters) -> Markup {
    let mut statuses = vec![("", "Any")];
    statuses.extend(ExecutionStatus::ALL.iter().map(|s| (s.as_str(), s.as_str())));
    let triggers =
        [("", "Any"), ("schedule", "schedule"), ("manual", "manual"), ("retry", "retry"), ("catchup", "catchup")];
    html! {
        form #execution-filters.filters method="get" action="/executions" role="search" {
            div.field { label for="task" { "Task id" } input #task type="text" inputmode="numeric" name="task" value=(f.task) size="8"; }
            div.field { label for="status" { "Status" } (select("status", &statuses, &f.status, None)) }
            div.field { label for="trigger" { "Trigger" } (select("trigger", &triggers, &f.trigger, None)) }
            div.field { label for="from" { "Slot from (UTC)" } input #from type="datetime-local" name="from" value=(f.from); }
            div.field { label for="to" { "Slot to (UTC)" } input #to type="datetime-local" name="to" value=(f.to); }
            button type="submit" { "Filter" }
            a href="/executions" { "Clear" }
        }
    }
}

pub async fn page(State(c): State<ConsoleRef>, v: Viewer, Path(id): Path<String>) -> Response {
    let result = match super::number::<u64>("id", &id) {
        Ok(Some(n)) => match c.backend.get::<ExecutionView>(&v, &format!("/executions/{n}")).await {
            Ok(e) => {
                let names = super::task_names(&c, &v, [e.task_id]).await;
                Ok(detail(&v, &e, names.get(&e.task_id)))
            }
            Err(e) => Err(e),
        },
        _ => Err(UiError::not_found(format!("{id:?} is not an execution id"))),
    };
    layout::respond(&c, &v, Nav::Executions, result)
}

fn detail(v: &Viewer, e: &ExecutionView, task: Option<&String>) -> layout::Page {
    let status = status_word(e);
    let ended = !matches!(e.status, ExecutionStatus::Pending | ExecutionStatus::Running);
    let body = html! {
        h1 { "Execution " (e.id) " " span #execution-status { (badge(&status)) } }
        div.actions {
            a href={"/tasks/" (e.task_id)} { "← " @match task { Some(n) => { (n) }, None => { "Task " (e.task_id) } } }
            @if !ended && v.may(Method::POST, "/executions/{id}/stop") {
                form #stop-form.inline method="post" action={"/executions/" (e.id) "/stop"} {
                    (form_guard(v)) button #stop.danger type="submit" { "Stop" }
                }
            }
            @if !ended { span.muted role="status" { "Refreshing every 2 s until it ends." } }
        }
        div.cards {
            section.card { h2 { "Run" } dl.props {
                dt { "Task" } dd { a href={"/tasks/" (e.task_id)} { @match task { Some(n) => { (n) }, None => { (e.task_id) } } } }
                dt { "Status" } dd { (status_cell(e)) }
                dt { "Trigger" } dd { (word(&e.trigger)) @if !e.requested_by.is_empty() { " by " (e.requested_by) } }
                dt { "Slot" } dd { (time(Some(e.scheduled_time))) }
                dt { "Recorded" } dd { (time(Some(e.created_at))) " (log index " (e.log_index) ")" }
                dt { "Started" } dd { (time(e.start_time)) }
                dt { "Ended" } dd { (time(e.end_time)) }
                dt { "Duration" } dd { (between(e.start_time, e.end_time)) }
                dt { "Attempts" } dd { (e.attempt_count) @if e.retry_count > 0 { " (" (e.retry_count) " retries)" } }
                @if let Some(n) = e.next_attempt_at { dt { "Next attempt" } dd { (time(Some(n))) } }
                @if e.slot_count > 1 { dt { "Slots covered" } dd { (e.slot_count) } }
                @if let Some(p) = &e.parameters { dt { "Parameters" } dd { code { (p.to_string()) } } }
            } }
            section.card { h2 { "Result" }
                @if e.result.is_empty() { p #result.muted { "No result yet." } } @else { pre #result { (e.result) } }
            }
        }
        h2 { "Attempts" }
        @if e.attempts.is_empty() { (empty("Not dispatched yet.")) } @else {
            div.table-wrap { table #attempts.stack {
                caption.visually-hidden { "Attempts" }
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "Executor" } th scope="col" { "Status" } th scope="col" { "Dispatched" }
                    th.hide-narrow scope="col" { "Ended" } th.hide-narrow scope="col" { "Term / log index" } th scope="col" { "Error" }
                } }
                tbody { @for a in &e.attempts { tr {
                    td data-label="Attempt" { (a.attempt) }
                    td data-label="Executor" { a href="/executors" { (a.instance_id) } br; span.muted { (a.base_url) } }
                    td data-label="Status" { (badge(&word(&a.status))) }
                    td data-label="Dispatched" { (time(Some(a.dispatched_at))) }
                    td data-label="Ended" { (time(a.end_time)) }
                    td data-label="Term / log index" { (a.term) " / " (a.log_index) }
                    td data-label="Error" { (a.error) }
                } } }
            } }
        }
        h2 { "Log (tail)" }
        @if e.logs.is_empty() { p.muted { "No log lines." } } @else { pre #log { (e.logs) } }
    };
    let page = layout::Page::new(format!("Execution {}", e.id), Nav::Executions, body);
    if ended {
        page
    } else {
        page.refreshing(2_000)
    }
}

/// POST `/executions/{id}/stop`.
pub async fn stop(
    State(c): State<ConsoleRef>,
    v: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<GuardForm>,
) -> Response {
    let (path, then) =
        (format!("/executions/{}/stop", encode(&id)), format!("/executions/{}?done=stopped", encode(&id)));
    let submit = Submit {
        nav: Nav::Executions,
        method: Method::POST,
        path: &path,
        body: Some(serde_json::json!({})),
        then: &then,
    };
    submit.send(&c, &v, &headers, &f.csrf, &f.request_id).await
}
