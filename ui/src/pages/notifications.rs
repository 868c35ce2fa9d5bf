//! Notifications (`/notifications`): the outbox (waiting alerts with their failed attempts),
//! every channel with its deliveries and last error, every rule; for `admin`, forms to create
//! channels and rules and buttons to delete them.
//!
//! Everything goes through the REST API (`/api/v1/notifications…`), so the checks, the codes and
//! the permissions are the API's; a channel's secret is a password field, sent once and never
//! shown again (the API only says whether there is one).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Form;
use cronraft_api::types::{ChannelView, NotificationsView, PendingView, RuleView};
use cronraft_raft::notify::{EventKind, PLACEHOLDERS};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

use super::{GuardForm, Submit};
use crate::layout::{self, Nav};
use crate::session::{encode, Viewer};
use crate::widgets::{badge, empty, field, form_guard, select, time};
use crate::ConsoleRef;

pub async fn page(State(c): State<ConsoleRef>, v: Viewer) -> Response {
    let status = c.backend.get::<NotificationsView>(&v, "/notifications").await;
    let rules = c.backend.get::<Vec<RuleView>>(&v, "/notifications/rules").await;
    let result = status.and_then(|s| rules.map(|r| render(&v, &s, &r)));
    layout::respond(&c, &v, Nav::Notifications, result)
}

fn render(v: &Viewer, s: &NotificationsView, rules: &[RuleView]) -> layout::Page {
    let admin = v.may(Method::POST, "/notifications/channels");
    let body = html! {
        h1 { "Notifications" }
        p #outbox-summary {
            strong { (s.outbox_depth) } " of " (s.outbox_max) " alerts waiting for delivery · "
            (s.dropped) " dropped (outbox full) · " (s.events) " events so far"
        }
        @if s.dropped > 0 { p.warning { "Alerts were dropped because the outbox was full: a receiver has been down for long." } }
        section {
            h2 { "Waiting for delivery" }
            @if s.pending.is_empty() { (empty("Nothing is waiting: every alert was delivered.")) }
            @else { (pending_table(&s.pending)) }
        }
        section {
            h2 { "Channels" }
            @if s.channels.is_empty() { (empty("No channel yet: alerts go nowhere.")) }
            @else { (channels_table(v, &s.channels)) }
            @if admin { (channel_form(v)) }
        }
        section {
            h2 { "Rules" }
            @if rules.is_empty() { (empty("No rule: no event becomes an alert.")) }
            @else { (rules_table(v, rules)) }
            @if admin && !s.channels.is_empty() { (rule_form(v, &s.channels)) }
        }
    };
    layout::Page::new("Notifications", Nav::Notifications, body).refreshing(10_000)
}

fn pending_table(pending: &[PendingView]) -> Markup {
    html! {
        div.table-wrap { table.stack #pending {
            caption.visually-hidden { "Alerts waiting for delivery" }
            thead { tr {
                th.num scope="col" { "Event" } th scope="col" { "Kind" } th scope="col" { "Channel" }
                th scope="col" { "About" } th scope="col" { "At" } th.num scope="col" { "Failed attempts" } th scope="col" { "Last error" }
            } }
            tbody { @for p in pending { tr {
                td.num data-label="Event" { (p.event_id) }
                td data-label="Kind" { (p.kind.as_str()) }
                td data-label="Channel" { (p.channel) }
                td data-label="About" { (p.subject) }
                td data-label="At" { (time(Some(p.at))) }
                td.num data-label="Failed attempts" { (p.attempts) }
                td data-label="Last error" { @if p.last_error.is_empty() { "-" } @else { (p.last_error) } }
            } } }
        } }
    }
}

fn channels_table(v: &Viewer, channels: &[ChannelView]) -> Markup {
    let may_delete = v.may(Method::DELETE, "/notifications/channels/{name}");
    html! {
        div.table-wrap { table.stack #channels {
            caption.visually-hidden { "Channels" }
            thead { tr {
                th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "URL" } th.num scope="col" { "Delivered" }
                th.num scope="col" { "Failures" } th scope="col" { "Last delivery" } th scope="col" { "Last error" }
                @if may_delete { th scope="col" { "Delete" } }
            } }
            tbody { @for ch in channels { tr data-channel=(ch.name) {
                td data-label="Name" { strong { (ch.name) } @if ch.has_secret { br; span.muted { "signed" } } }
                td data-label="Kind" { (ch.kind.as_str()) }
                td data-label="URL" { code { (ch.url) } }
                td.num data-label="Delivered" { (ch.delivered) }
                td.num data-label="Failures" { (ch.failures) }
                td data-label="Last delivery" { (time(ch.last_delivery_at)) }
                td data-label="Last error" { @if ch.last_error.is_empty() { "-" } @else { (badge("failed")) " " (ch.last_error) } }
                @if may_delete { td data-label="Delete" {
                    form method="post" action={"/notifications/channels/" (encode(&ch.name)) "/delete"} {
                        (form_guard(v)) button.secondary type="submit" { "Delete" }
                    }
                } }
            } } }
        } }
    }
}

fn selector(r: &RuleView) -> String {
    match r.selector.as_str() {
        "task" => format!("task {}", r.task_id.unwrap_or_default()),
        "task_prefix" => format!("tasks named {}…", r.task_prefix.clone().unwrap_or_default()),
        "group" => format!("group {}", r.group.clone().unwrap_or_default()),
        _ => "default (what no other rule takes)".into(),
    }
}

fn rules_table(v: &Viewer, rules: &[RuleView]) -> Markup {
    let may_delete = v.may(Method::DELETE, "/notifications/rules/{id}");
    html! {
        div.table-wrap { table.stack #rules {
            caption.visually-hidden { "Rules" }
            thead { tr {
                th.num scope="col" { "Id" } th scope="col" { "Selects" } th scope="col" { "Events" } th scope="col" { "Channels" }
                @if may_delete { th scope="col" { "Delete" } }
            } }
            tbody { @for r in rules { tr data-rule-id=(r.id) {
                td.num data-label="Id" { (r.id) }
                td data-label="Selects" { (selector(r)) }
                td data-label="Events" { @if r.events.is_empty() { "all" } @else {
                    (r.events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", "))
                } }
                td data-label="Channels" { (r.channels.join(", ")) }
                @if may_delete { td data-label="Delete" {
                    form method="post" action={"/notifications/rules/" (r.id) "/delete"} {
                        (form_guard(v)) button.secondary type="submit" { "Delete" }
                    }
                } }
            } } }
        } }
    }
}

fn channel_form(v: &Viewer) -> Markup {
    let kinds = [
        ("webhook", "Webhook (JSON, optional HMAC signature)"),
        ("slack", "Slack or Mattermost"),
        ("alertmanager", "Alertmanager"),
    ];
    let placeholders = PLACEHOLDERS.iter().map(|p| format!("{{{{{p}}}}}")).collect::<Vec<_>>().join(" ");
    html! {
        details #new-channel {
            summary { "New channel" }
            form method="post" action="/notifications/channels" {
                (form_guard(v))
                (field("name", "Name", Some("A-Z a-z 0-9 . _ -"), None, html! { input #name name="name" type="text" required maxlength="64"; }))
                (field("kind", "Kind", None, None, select("kind", &kinds, "webhook", None)))
                (field("url", "URL", Some("For Alertmanager: its /api/v2/alerts"), None, html! { input #url name="url" type="url" required maxlength="2048"; }))
                (field("secret", "Secret (webhook)", Some("16 to 256 characters; signs each body; never shown again"), None,
                    html! { input #secret name="secret" type="password" autocomplete="off" maxlength="256"; }))
                (field("template", "Text", Some(&format!("Empty: the default. Fields: {placeholders}")), None,
                    html! { input #template name="template" type="text" maxlength="4096"; }))
                div.actions { button type="submit" { "Create channel" } }
            }
        }
    }
}

fn rule_form(v: &Viewer, channels: &[ChannelView]) -> Markup {
    let selects = [
        ("default", "Default (what no other rule takes)"),
        ("task", "A task (id or name)"),
        ("task_prefix", "Tasks whose name starts with"),
        ("group", "An executor group"),
    ];
    html! {
        details #new-rule {
            summary { "New rule" }
            form method="post" action="/notifications/rules" {
                (form_guard(v))
                (field("selector", "Selects", None, None, select("selector", &selects, "default", None)))
                (field("value", "Task, prefix or group", Some("Empty for the default"), None, html! { input #value name="value" type="text" maxlength="128"; }))
                fieldset {
                    legend { "Events (none checked: all)" }
                    @for k in EventKind::ALL { label.check { input type="checkbox" name="events" value=(k.as_str()); " " (k.as_str()) } }
                }
                fieldset {
                    legend { "Channels" }
                    @for ch in channels { label.check { input type="checkbox" name="channels" value=(ch.name); " " (ch.name) } }
                }
                div.actions { button type="submit" { "Create rule" } }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChannelForm {
    csrf: String,
    request_id: String,
    name: String,
    kind: String,
    url: String,
    secret: String,
    template: String,
}

/// POST `/notifications/channels`.
pub async fn create_channel(
    State(c): State<ConsoleRef>,
    v: Viewer,
    headers: HeaderMap,
    Form(f): Form<ChannelForm>,
) -> Response {
    let mut body = json!({ "name": f.name.trim(), "kind": f.kind, "url": f.url.trim() });
    if !f.secret.is_empty() {
        body["secret"] = json!(f.secret);
    }
    if !f.template.trim().is_empty() {
        body["template"] = json!(f.template);
    }
    let submit = Submit {
        nav: Nav::Notifications,
        method: Method::POST,
        path: "/notifications/channels",
        body: Some(body),
        then: "/notifications?done=channel",
    };
    submit.send(&c, &v, &headers, &f.csrf, &f.request_id).await
}

/// POST `/notifications/channels/{name}/delete`.
pub async fn delete_channel(
    State(c): State<ConsoleRef>,
    v: Viewer,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(f): Form<GuardForm>,
) -> Response {
    let path = format!("/notifications/channels/{}", encode(&name));
    let submit = Submit {
        nav: Nav::Notifications,
        method: Method::DELETE,
        path: &path,
        body: None,
        then: "/notifications?done=deleted",
    };
    submit.send(&c, &v, &headers, &f.csrf, &f.request_id).await
}

/// The rule form as posted: checkboxes repeat their name, so the body is read as pairs.
pub async fn create_rule(
    State(c): State<ConsoleRef>,
    v: Viewer,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let one = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    let all = |key: &str| pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect::<Vec<_>>();
    let mut body = json!({ "events": all("events"), "channels": all("channels") });
    let (selector, value) = (one("selector"), one("value"));
    if selector != "default" {
        body[selector.as_str()] = json!(value);
    }
    let submit = Submit {
        nav: Nav::Notifications,
        method: Method::POST,
        path: "/notifications/rules",
        body: Some(body),
        then: "/notifications?done=rule",
    };
    submit.send(&c, &v, &headers, &one("csrf"), &one("request_id")).await
}

/// POST `/notifications/rules/{id}/delete`.
pub async fn delete_rule(
    State(c): State<ConsoleRef>,
    v: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<GuardForm>,
) -> Response {
    let path = format!("/notifications/rules/{}", encode(&id));
    let submit = Submit {
        nav: Nav::Notifications,
        method: Method::DELETE,
        path: &path,
        body: None,
        then: "/notifications?done=deleted",
    };
    submit.send(&c, &v, &headers, &f.csrf, &f.request_id).await
}
