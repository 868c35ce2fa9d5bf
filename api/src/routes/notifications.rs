//! `/api/v1/notifications`: channels and rules (written by `admin`, read by `read`), and the
//! delivery state (`GET /notifications`: the outbox and what each channel's deliveries did).
//!
//! Input is checked here with the replicated model's own functions
//! (`cronraft_raft::notify::check_channel`, `check_rule`), which apply runs again. A channel's
//! secret goes into the log (the leader needs it to sign) but never into an answer: views only
//! say `has_secret`.

// The pickers give apply's answer back, moved once per write (as in `crate::handler`).
#![allow(clippy::result_large_err)]

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use cronraft_raft::notify::{
    check_channel, check_rule, Channel, ChannelPatch, ChannelSpec, OutboxEntry, Rule, RuleSpec, Selector, OUTBOX_MAX,
};
use cronraft_raft::state::StateView;
use cronraft_raft::Command;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{Caller, Need};
use crate::context::Ctx;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::handler::{propose_expect, with_log_index, ReadQuery};
use crate::types::{ChannelInput, ChannelView, NotificationsView, PendingView, RuleInput, RuleView};
use crate::views::at;

/// Most pending entries `GET /notifications` lists.
pub const PENDING_SHOWN_MAX: usize = 100;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(create_channel, list_channels))
        .routes(routes!(get_channel, update_channel, delete_channel))
        .routes(routes!(create_rule, list_rules))
        .routes(routes!(get_rule, update_rule, delete_rule))
}

/// The URL as a caller below `admin` sees it: a Slack or Mattermost webhook URL is a secret in
/// its path, so only the origin is shown (`https://hooks.slack.com/…`).
pub fn shown_url(url: &str, full: bool) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) if !full && (u.path() != "/" || u.query().is_some()) => format!("{}/…", u.origin().ascii_serialization()),
        _ => url.to_string(),
    }
}

/// A channel as shown, with its delivery state (never the secret; the whole URL only to `admin`).
pub fn channel_view(view: &StateView, c: &Channel, full_url: bool) -> Result<ChannelView, ApiError> {
    let s = view.channel_state(&c.spec.name)?;
    Ok(ChannelView {
        name: c.spec.name.clone(),
        kind: c.spec.kind,
        url: shown_url(&c.spec.url, full_url),
        has_secret: c.spec.secret.is_some(),
        template: c.spec.template.clone(),
        created_at: at(c.created_ms),
        updated_at: at(c.updated_ms),
        delivered: s.delivered,
        failures: s.failures,
        last_delivery_at: s.last_delivery_ms.map(at),
        last_event_id: s.last_event_id,
        last_error: s.last_error,
        last_error_at: s.last_error_ms.map(at),
    })
}

pub fn rule_view(r: &Rule) -> RuleView {
    let (selector, task_id, task_prefix, group) = match &r.spec.selector {
        Selector::Default => ("default", None, None, None),
        Selector::Task(id) => ("task", Some(*id), None, None),
        Selector::TaskPrefix(p) => ("task_prefix", None, Some(p.clone()), None),
        Selector::Group(g) => ("group", None, None, Some(g.clone())),
    };
    RuleView {
        id: r.id,
        selector: selector.into(),
        task_id,
        task_prefix,
        group,
        events: r.spec.events.clone(),
        channels: r.spec.channels.clone(),
        created_at: at(r.created_ms),
        updated_at: at(r.updated_ms),
    }
}

pub fn pending_view(e: &OutboxEntry) -> PendingView {
    PendingView {
        seq: e.seq,
        event_id: e.event.id,
        kind: e.event.kind,
        channel: e.channel.clone(),
        at: at(e.event.at_ms),
        subject: e.event.subject(),
        attempts: e.attempts,
        last_error: e.last_error.clone(),
        last_attempt_at: e.last_attempt_ms.map(at),
    }
}

fn missing(field: &str) -> ApiError {
    ApiError::new(ErrorCode::MissingField, format!("`{field}` is required"))
}

/// `""` in a `PUT` means "remove" (secret) or "the default" (template).
fn optional(value: String) -> Option<String> {
    Some(value).filter(|v| !v.is_empty())
}

fn channel(resp: cronraft_raft::Response) -> Result<Channel, cronraft_raft::Response> {
    match resp {
        cronraft_raft::Response::Channel(c) => Ok(c),
        other => Err(other),
    }
}

fn rule(resp: cronraft_raft::Response) -> Result<Rule, cronraft_raft::Response> {
    match resp {
        cronraft_raft::Response::Rule(r) => Ok(r),
        other => Err(other),
    }
}

fn rule_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>().map_err(|_| {
        ApiError::new(ErrorCode::InvalidRuleId, format!("a rule id is a non-negative integer, not {raw:?}"))
    })
}

#[utoipa::path(get, path = "/notifications", tag = "notifications", params(ReadQuery),
    responses((status = 200, description = "The outbox and every channel's delivery state", body = NotificationsView), crate::openapi::ErrorResponses))]
async fn status(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<NotificationsView>, ApiError> {
    ctx.read_barrier(q.consistency).await?;
    let view = ctx.sm.view();
    let stats = view.outbox_stats()?;
    let full = caller.may(Need::Admin);
    let channels = view.channels()?.iter().map(|c| channel_view(&view, c, full)).collect::<Result<_, _>>()?;
    let pending = view.outbox(0, PENDING_SHOWN_MAX)?.iter().map(pending_view).collect();
    Ok(Json(NotificationsView {
        outbox_depth: stats.depth,
        outbox_max: OUTBOX_MAX,
        dropped: stats.dropped,
        events: stats.events,
        channels,
        pending,
    }))
}

#[utoipa::path(post, path = "/notifications/channels", tag = "notifications", params(("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")), request_body = ChannelInput,
    responses((status = 201, description = "The channel created", body = ChannelView), crate::openapi::ErrorResponses))]
async fn create_channel(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<ChannelInput>,
) -> Result<Response, ApiError> {
    let spec = ChannelSpec {
        name: input.name.ok_or_else(|| missing("name"))?,
        kind: input.kind.ok_or_else(|| missing("kind"))?,
        url: input.url.ok_or_else(|| missing("url"))?,
        secret: input.secret,
        template: input.template,
    };
    check_channel(&spec)?;
    let (c, log_index) = propose_expect(&ctx, &headers, Command::CreateChannel { spec }, "a channel", channel).await?;
    Ok(with_log_index(StatusCode::CREATED, Json(channel_view(&ctx.sm.view(), &c, true)?), log_index))
}

#[utoipa::path(get, path = "/notifications/channels", tag = "notifications", params(ReadQuery),
    responses((status = 200, description = "Every channel (never a secret)", body = Vec<ChannelView>), crate::openapi::ErrorResponses))]
async fn list_channels(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<Vec<ChannelView>>, ApiError> {
    ctx.read_barrier(q.consistency).await?;
    let (view, full) = (ctx.sm.view(), caller.may(Need::Admin));
    Ok(Json(view.channels()?.iter().map(|c| channel_view(&view, c, full)).collect::<Result<_, _>>()?))
}

#[utoipa::path(get, path = "/notifications/channels/{name}", tag = "notifications", params(("name" = String, Path, description = "the channel's name"), ReadQuery),
    responses((status = 200, description = "The channel", body = ChannelView), crate::openapi::ErrorResponses))]
async fn get_channel(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<ChannelView>, ApiError> {
    ctx.read_barrier(q.consistency).await?;
    let view = ctx.sm.view();
    match view.channel(&name)? {
        Some(c) => Ok(Json(channel_view(&view, &c, caller.may(Need::Admin))?)),
        None => Err(ApiError::new(ErrorCode::ChannelNotFound, format!("no notification channel is named {name:?}"))),
    }
}

#[utoipa::path(put, path = "/notifications/channels/{name}", tag = "notifications", params(("name" = String, Path, description = "the channel's name"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")), request_body = ChannelInput,
    responses((status = 200, description = "The channel, changed", body = ChannelView), crate::openapi::ErrorResponses))]
async fn update_channel(
    State(ctx): State<Ctx>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<ChannelInput>,
) -> Result<Response, ApiError> {
    if input.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "a channel cannot be renamed: delete it and create another",
        ));
    }
    let patch = ChannelPatch {
        kind: input.kind,
        url: input.url,
        secret: input.secret.map(optional),
        template: input.template.map(optional),
    };
    if patch.is_empty() {
        return Err(ApiError::new(ErrorCode::EmptyUpdate, "name at least one of `kind`, `url`, `secret`, `template`"));
    }
    if let Some(current) = ctx.sm.view().channel(&name)? {
        // Said here with its precise code; apply checks the merged channel again.
        check_channel(&patch.merged_into(&current.spec))?;
    }
    let cmd = Command::UpdateChannel { name, patch };
    let (c, log_index) = propose_expect(&ctx, &headers, cmd, "a channel", channel).await?;
    Ok(with_log_index(StatusCode::OK, Json(channel_view(&ctx.sm.view(), &c, true)?), log_index))
}

#[utoipa::path(delete, path = "/notifications/channels/{name}", tag = "notifications", params(("name" = String, Path, description = "the channel's name"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")),
    responses((status = 200, description = "The channel, deleted with its undelivered entries", body = ChannelView), crate::openapi::ErrorResponses))]
async fn delete_channel(
    State(ctx): State<Ctx>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (c, log_index) = propose_expect(&ctx, &headers, Command::DeleteChannel { name }, "a channel", channel).await?;
    Ok(with_log_index(StatusCode::OK, Json(channel_view(&ctx.sm.view(), &c, true)?), log_index))
}

/// A rule's input as the replicated spec (a task named by name becomes its id).
fn rule_spec(ctx: &Ctx, input: RuleInput) -> Result<RuleSpec, ApiError> {
    let selector = match (input.task, input.task_prefix, input.group) {
        (None, None, None) => Selector::Default,
        (Some(t), None, None) => Selector::Task(super::tasks::resolve(ctx, &t)?),
        (None, Some(p), None) => Selector::TaskPrefix(p),
        (None, None, Some(g)) => Selector::Group(g),
        _ => return Err(ApiError::new(ErrorCode::InvalidRule, "give at most one of `task`, `task_prefix`, `group`")),
    };
    let mut events = input.events;
    events.sort_unstable();
    events.dedup();
    let spec = RuleSpec { selector, events, channels: input.channels };
    check_rule(&spec)?;
    Ok(spec)
}

#[utoipa::path(post, path = "/notifications/rules", tag = "notifications", params(("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")), request_body = RuleInput,
    responses((status = 201, description = "The rule created", body = RuleView), crate::openapi::ErrorResponses))]
async fn create_rule(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<RuleInput>,
) -> Result<Response, ApiError> {
    let spec = rule_spec(&ctx, input)?;
    let (r, log_index) = propose_expect(&ctx, &headers, Command::CreateRule { spec }, "a rule", rule).await?;
    Ok(with_log_index(StatusCode::CREATED, Json(rule_view(&r)), log_index))
}

#[utoipa::path(get, path = "/notifications/rules", tag = "notifications", params(ReadQuery),
    responses((status = 200, description = "Every rule, by id", body = Vec<RuleView>), crate::openapi::ErrorResponses))]
async fn list_rules(State(ctx): State<Ctx>, ApiQuery(q): ApiQuery<ReadQuery>) -> Result<Json<Vec<RuleView>>, ApiError> {
    ctx.read_barrier(q.consistency).await?;
    Ok(Json(ctx.sm.view().rules()?.iter().map(rule_view).collect()))
}

#[utoipa::path(get, path = "/notifications/rules/{id}", tag = "notifications", params(("id" = u64, Path, description = "the rule's id"), ReadQuery),
    responses((status = 200, description = "The rule", body = RuleView), crate::openapi::ErrorResponses))]
async fn get_rule(
    State(ctx): State<Ctx>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<RuleView>, ApiError> {
    let id = rule_id(&raw)?;
    ctx.read_barrier(q.consistency).await?;
    match ctx.sm.view().rule(id)? {
        Some(r) => Ok(Json(rule_view(&r))),
        None => Err(ApiError::new(ErrorCode::RuleNotFound, format!("notification rule {id} does not exist"))),
    }
}

#[utoipa::path(put, path = "/notifications/rules/{id}", tag = "notifications", params(("id" = u64, Path, description = "the rule's id"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")), request_body = RuleInput,
    responses((status = 200, description = "The rule, replaced", body = RuleView), crate::openapi::ErrorResponses))]
async fn update_rule(
    State(ctx): State<Ctx>,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<RuleInput>,
) -> Result<Response, ApiError> {
    let id = rule_id(&raw)?;
    let spec = rule_spec(&ctx, input)?;
    let (r, log_index) = propose_expect(&ctx, &headers, Command::UpdateRule { id, spec }, "a rule", rule).await?;
    Ok(with_log_index(StatusCode::OK, Json(rule_view(&r)), log_index))
}

#[utoipa::path(delete, path = "/notifications/rules/{id}", tag = "notifications", params(("id" = u64, Path, description = "the rule's id"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")),
    responses((status = 200, description = "The rule, deleted", body = RuleView), crate::openapi::ErrorResponses))]
async fn delete_rule(
    State(ctx): State<Ctx>,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = rule_id(&raw)?;
    let (r, log_index) = propose_expect(&ctx, &headers, Command::DeleteRule { id }, "a rule", rule).await?;
    Ok(with_log_index(StatusCode::OK, Json(rule_view(&r)), log_index))
}
