//! Executors (`/executors`): every instance by group, with health (last check, failed checks),
//! load (running attempts against capacity), metadata; setting the status (online, offline,
//! maintenance, with a reason) and removing one (with a confirmation page).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Form;
use cronraft_api::types::{ExecutorView, Page};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

use super::{GuardForm, Submit};
use crate::layout::{self, Nav};
use crate::session::{encode, Viewer};
use crate::widgets::{badge, empty, form_guard, time, word};
use crate::ConsoleRef;

/// Most instances listed (the API's page size limit; the registry is small).
const SHOWN_MAX: u64 = 500;

pub async fn list(State(c): State<ConsoleRef>, v: Viewer) -> Response {
    let result = c
        .backend
        .get::<Page<ExecutorView>>(&v, &format!("/executors?page_size={SHOWN_MAX}"))
        .await
        .map(|p| render(&v, &p));
    layout::respond(&c, &v, Nav::Executors, result)
}

fn render(v: &Viewer, p: &Page<ExecutorView>) -> layout::Page {
    let mut groups: BTreeMap<&str, Vec<&ExecutorView>> = BTreeMap::new();
    for e in &p.items {
        groups.entry(e.name.as_str()).or_default().push(e);
    }
    let body = html! {
        h1 { "Executors" }
        @if p.items.is_empty() {
            (empty("No executor has registered. Start one with cronraft agent --group NAME --cluster URL, or run a node with its embedded agent."))
        }
        @if p.total > p.items.len() as u64 { p.warning { "Showing the first " (p.items.len()) " of " (p.total) " instances." } }
        @for (group, members) in &groups {
            @let healthy = members.iter().filter(|e| e.is_healthy && word(&e.status) == "online").count();
            section {
                h2 { "Group " (group) " " span.muted { "· " (healthy) " of " (members.len()) " online and healthy" } }
                @if healthy == 0 { p.warning { "No healthy online executor: runs of this group's tasks wait or are recorded as missed." } }
                div.table-wrap { table.stack {
                    caption.visually-hidden { "Instances of " (group) }
                    thead { tr {
                        th scope="col" { "Instance" } th scope="col" { "Status" } th scope="col" { "Health" } th.num scope="col" { "Load" }
                        th.hide-narrow scope="col" { "Metadata" } @if v.may(Method::PUT, "/executors/{id}/status") { th scope="col" { "Set status" } }
                    } }
                    tbody { @for e in members { (row(v, e)) } }
                } }
            }
        }
    };
    layout::Page::new("Executors", Nav::Executors, body).refreshing(10_000)
}

fn row(v: &Viewer, e: &ExecutorView) -> Markup {
    let status = word(&e.status);
    let capacity = if e.capacity == 0 { "∞".to_string() } else { e.capacity.to_string() };
    html! {
        tr data-executor-id=(e.id) {
            td data-label="Instance" { strong { (e.instance_id) } br; span.muted { (e.base_url) } }
            td data-label="Status" { (badge(&status)) @if !e.status_reason.is_empty() { br; span.muted { (e.status_reason) } } }
            td data-label="Health" {
                @if e.is_healthy { (badge("healthy")) } @else { (badge("unhealthy")) }
                br; span.muted { @match e.last_health_check {
                    Some(t) => { (e.health_check_failures) " failed checks · changed " (time(Some(t))) }
                    None => { "checked, no change since it registered" }
                } }
            }
            td.num data-label="Load" { (e.running_attempts) " / " (capacity) }
            td.hide-narrow data-label="Metadata" { code { (e.metadata.to_string()) } }
            @if v.may(Method::PUT, "/executors/{id}/status") {
                td data-label="Set status" {
                    form.status-form method="post" action={"/executors/" (e.id) "/status"} {
                        (form_guard(v))
                        label.visually-hidden for={"status-" (e.id)} { "Status of " (e.instance_id) }
                        select id={"status-" (e.id)} name="status" {
                            @for s in ["online", "offline", "maintenance"] { option value=(s) selected[s == status] { (s) } }
                        }
                        " "
                        label.visually-hidden for={"reason-" (e.id)} { "Reason" }
                        input id={"reason-" (e.id)} name="reason" type="text" placeholder="Reason" maxlength="512" size="12";
                        " "
                        button.secondary type="submit" { "Set" }
                    }
                    @if v.may(Method::DELETE, "/executors/{id}") { a.remove-link href={"/executors/" (e.id) "/remove"} { "Remove…" } }
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StatusForm {
    csrf: String,
    request_id: String,
    status: String,
    reason: String,
}

/// POST `/executors/{id}/status`.
pub async fn set_status(
    State(c): State<ConsoleRef>,
    v: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<StatusForm>,
) -> Response {
    let mut body = json!({ "status": f.status });
    if !f.reason.trim().is_empty() {
        body["reason"] = json!(f.reason.trim());
    }
    let path = format!("/executors/{}/status", encode(&id));
    let submit = Submit {
        nav: Nav::Executors,
        method: Method::PUT,
        path: &path,
        body: Some(body),
        then: "/executors?done=status",
    };
    submit.send(&c, &v, &headers, &f.csrf, &f.request_id).await
}

/// GET `/executors/{id}/remove`: what removing does.
pub async fn remove_page(State(c): State<ConsoleRef>, v: Viewer, Path(id): Path<String>) -> Response {
    let result = c.backend.get::<ExecutorView>(&v, &format!("/executors/{}", encode(&id))).await.map(|e| {
        let body = html! {
            h1 { "Remove " (e.instance_id) "?" }
            @if e.running_attempts > 0 { p.warning { "It runs " (e.running_attempts) " attempt(s) now: they are not stopped; their results are still accepted." } }
            p.warning { "The instance leaves group " (e.name) ": no new attempt goes to it. An agent that is still running registers again on its next heartbeat; stop it first, or set it to maintenance instead." }
            form #remove-form method="post" action={"/executors/" (e.id) "/remove"} {
                (form_guard(&v))
                div.actions { button #confirm-remove.danger type="submit" { "Remove instance" } a href="/executors" { "Cancel" } }
            }
        };
        layout::Page::new(format!("Remove {}", e.instance_id), Nav::Executors, body)
    });
    layout::respond(&c, &v, Nav::Executors, result)
}

pub async fn remove(
    State(c): State<ConsoleRef>,
    v: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<GuardForm>,
) -> Response {
    let path = format!("/executors/{}", encode(&id));
    let submit = Submit {
        nav: Nav::Executors,
        method: Method::DELETE,
        path: &path,
        body: None,
        then: "/executors?done=removed",
    };
    submit.send(&c, &v, &headers, &f.csrf, &f.request_id).await
}
