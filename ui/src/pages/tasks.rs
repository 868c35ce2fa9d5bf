//! The task list (`/tasks`): search by name, filters (status, executor group, execution mode,
//! last result), sorting and paging, all in the query string so a link or a refresh keeps
//! them. The filtering is the API's (`GET /api/v1/tasks` with the same parameters).

use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::Response;
use cronraft_api::types::{Page, TaskView};
use cronraft_raft::model::TaskStatus;
use maud::{html, Markup};
use serde::Deserialize;

use crate::error::UiError;
use crate::layout::{self, Nav};
use crate::session::Viewer;
use crate::widgets::{badge, empty, pager, select, time, with_query, word};
use crate::ConsoleRef;

/// The list's query string (every field optional, passed on to the API as it is).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Filters {
    name: String,
    status: String,
    group: String,
    mode: String,
    last_result: String,
    sort: String,
    page: String,
}

impl Filters {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("name", self.name.as_str()),
            ("status", self.status.as_str()),
            ("group", self.group.as_str()),
            ("mode", self.mode.as_str()),
            ("last_result", self.last_result.as_str()),
            ("sort", self.sort.as_str()),
        ]
    }
}

pub async fn list(State(c): State<ConsoleRef>, v: Viewer, Query(f): Query<Filters>) -> Response {
    let result = render(&c, &v, &f).await;
    layout::respond(&c, &v, Nav::Tasks, result)
}

async fn render(c: &ConsoleRef, v: &Viewer, f: &Filters) -> Result<layout::Page, UiError> {
    let mut pairs = f.pairs();
    pairs.push(("page", f.page.as_str()));
    let page: Page<TaskView> = c.backend.get(v, &with_query("/tasks", &pairs)).await?;
    let base = with_query("/tasks", &f.pairs());
    let body = html! {
        h1 { "Tasks" }
        div.actions {
            @if v.may(Method::POST, "/tasks") { a #new-task.button href="/tasks/new" { "New task" } }
        }
        (filters(f))
        @if page.items.is_empty() {
            (empty(if page.total == 0 && base == "/tasks" { "No tasks yet. Create one with “New task”, or with cronraft task create." } else { "No task matches these filters." }))
        } @else {
            div.table-wrap { table #tasks-table {
                caption { (page.total) " tasks" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Status" } th scope="col" { "Next fire" }
                    th scope="col" { "Last result" } th.hide-narrow scope="col" { "Schedule" }
                    th.hide-narrow scope="col" { "Group" } th.hide-narrow scope="col" { "Mode" }
                } }
                tbody { @for r in &page.items { (row(r)) } }
            } }
            (pager(&base, page.page, page.page_size, page.total))
        }
    };
    Ok(layout::Page::new("Tasks", Nav::Tasks, body))
}

fn row(t: &TaskView) -> Markup {
    html! {
        tr data-task-id=(t.id) {
            td { a href={"/tasks/" (t.id)} { (t.name) } }
            td { (badge(&word(&t.status))) }
            td { @if t.next_fire_time.is_none() && t.status != TaskStatus::Active { span.muted { "— (" (word(&t.status)) ")" } } @else { (time(t.next_fire_time)) } }
            td { @match &t.last_result {
                Some(l) => { a href={"/executions/" (l.execution_id)} { (badge(l.status.as_str())) } }
                None => { span.muted { "none yet" } }
            } }
            td.hide-narrow { code { (t.cron_expression) } " " span.muted { (t.timezone) } }
            td.hide-narrow { (t.executor) }
            td.hide-narrow { (word(&t.execution_mode)) }
        }
    }
}

fn filters(f: &Filters) -> Markup {
    let statuses = [("", "Active and paused"), ("active", "Active"), ("paused", "Paused"), ("deleted", "Deleted")];
    let modes =
        [("", "Any"), ("parallel", "parallel"), ("sequential", "sequential"), ("skip", "skip"), ("replace", "replace")];
    let results = [
        ("", "Any"),
        ("success", "success"),
        ("failed,timeout", "failed or timeout"),
        ("missed", "missed"),
        ("skipped", "skipped"),
        ("cancelled", "cancelled"),
        ("none", "never ran"),
    ];
    let sorts = [
        ("", "Id"),
        ("name", "Name A–Z"),
        ("-name", "Name Z–A"),
        ("next_fire", "Next fire"),
        ("-updated", "Recently changed"),
    ];
    html! {
        form #task-filters.filters method="get" action="/tasks" role="search" {
            div.field { label for="name" { "Name contains" } input #name type="search" name="name" value=(f.name) maxlength="128"; }
            div.field { label for="status" { "Status" } (select("status", &statuses, &f.status, None)) }
            div.field { label for="group" { "Executor group" } input #group type="text" name="group" value=(f.group) maxlength="128"; }
            div.field { label for="mode" { "Mode" } (select("mode", &modes, &f.mode, None)) }
            div.field { label for="last_result" { "Last result" } (select("last_result", &results, &f.last_result, None)) }
            div.field { label for="sort" { "Sort" } (select("sort", &sorts, &f.sort, None)) }
            button type="submit" { "Filter" }
            a href="/tasks" { "Clear" }
        }
    }
}
