//! `/api/v1/tokens` (create, list, revoke) and `/api/v1/audit` (who changed what), both `admin`.
//!
//! A token's secret is made here, on the leader (writes are forwarded), from the OS random
//! generator: `crt_` and 64 hex digits (256 bits). Only its hash goes into the log, so the answer
//! to `POST /tokens` is the one time anyone sees it. A retry of the same request (same
//! `Idempotency-Key`) is applied once as always, but the secret of the first attempt is gone: the
//! retry gets 409 `token_name_taken` and the operator revokes and creates again.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use cronraft_raft::model::{token_hash, Token, TokenScope, TokenSpec};
use cronraft_raft::state::{TOKEN_NAME_LEN_MAX, TOKEN_SCOPE_ITEMS_MAX};
use cronraft_raft::Command;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::CALLER_HEADER;
use crate::context::{Consistency, Ctx};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::handler::{pagination, propose_expect, with_log_index, ReadQuery};
use crate::types::{AuditView, CreatedTokenView, Page, TokenInput, TokenView};
use crate::views::at;

/// What every token this API makes starts with (secret scanners can look for it).
pub const TOKEN_PREFIX: &str = "crt_";

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(create, list)).routes(routes!(revoke)).routes(routes!(audit))
}

/// A new token secret: [`TOKEN_PREFIX`] and 256 bits from the OS generator, in hex.
pub fn new_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("OS random generator: {e}")))?;
    Ok(format!("{TOKEN_PREFIX}{}", blake3::Hash::from(bytes).to_hex()))
}

/// The rules of a token name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= TOKEN_NAME_LEN_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidName,
            format!("a token name is 1 to {TOKEN_NAME_LEN_MAX} of A-Z a-z 0-9 . _ -"),
        ))
    }
}

fn check_scope(field: &str, items: &[String]) -> Result<(), ApiError> {
    if items.len() > TOKEN_SCOPE_ITEMS_MAX || items.iter().any(|i| i.is_empty() || i.len() > 256) {
        let msg = format!("`{field}` takes at most {TOKEN_SCOPE_ITEMS_MAX} non-empty entries of up to 256 bytes");
        return Err(ApiError::new(ErrorCode::InvalidField, msg));
    }
    Ok(())
}

/// A token as listed.
pub fn token_view(t: &Token) -> TokenView {
    TokenView {
        name: t.spec.name.clone(),
        role: t.spec.role,
        groups: t.spec.scope.groups.clone(),
        prefixes: t.spec.scope.prefixes.clone(),
        created_at: at(t.created_at_ms),
        created_by: t.created_by.clone(),
    }
}

#[utoipa::path(post, path = "/tokens", tag = "tokens", params(("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")), request_body = TokenInput,
    responses((status = 201, description = "The token, with its secret (shown this once)", body = CreatedTokenView), crate::openapi::ErrorResponses))]
async fn create(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<TokenInput>,
) -> Result<Response, ApiError> {
    if ctx.cluster_secret.is_none() {
        let msg = "auth is off on this node: start every node with --cluster-secret-file to make tokens";
        return Err(ApiError::new(ErrorCode::AuthOff, msg));
    }
    check_name(&input.name)?;
    check_scope("groups", &input.groups)?;
    check_scope("prefixes", &input.prefixes)?;
    let secret = new_secret()?;
    let hash = token_hash(&secret);
    let scope = TokenScope { groups: input.groups, prefixes: input.prefixes };
    let spec = TokenSpec { name: input.name, role: input.role, scope, hash };
    let created_by = headers.get(CALLER_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let pick = |resp| match resp {
        cronraft_raft::Response::Token(t) => Ok(t),
        other => Err(other),
    };
    let (token, log_index) =
        propose_expect(&ctx, &headers, Command::CreateToken { spec, created_by }, "a token", pick).await?;
    if token.spec.hash != hash {
        // A retried request: applied before, with another secret that nobody can show again.
        let msg = format!(
            "this request created token {:?} before, and its secret was shown only then; revoke it and create another",
            token.spec.name
        );
        return Err(ApiError::new(ErrorCode::TokenNameTaken, msg));
    }
    let body = CreatedTokenView { token: secret, view: token_view(&token) };
    Ok(with_log_index(StatusCode::CREATED, Json(body), log_index))
}

#[utoipa::path(get, path = "/tokens", tag = "tokens", params(ReadQuery),
    responses((status = 200, description = "Every token (never a secret)", body = Vec<TokenView>), crate::openapi::ErrorResponses))]
async fn list(State(ctx): State<Ctx>, ApiQuery(q): ApiQuery<ReadQuery>) -> Result<Json<Vec<TokenView>>, ApiError> {
    ctx.read_barrier(q.consistency).await?;
    Ok(Json(ctx.sm.view().tokens()?.iter().map(token_view).collect()))
}

#[utoipa::path(delete, path = "/tokens/{name}", tag = "tokens", params(("name" = String, Path, description = "the token's name"), ("Idempotency-Key" = Option<String>, Header, description = "the request id: a retry with the same key is applied at most once")),
    responses((status = 200, description = "The token, now revoked on every node that applied the change", body = TokenView), crate::openapi::ErrorResponses))]
async fn revoke(
    State(ctx): State<Ctx>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let pick = |resp| match resp {
        cronraft_raft::Response::Token(t) => Ok(t),
        other => Err(other),
    };
    let (token, log_index) = propose_expect(&ctx, &headers, Command::RevokeToken { name }, "a token", pick).await?;
    Ok(with_log_index(StatusCode::OK, Json(token_view(&token)), log_index))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// From 1 (default 1); page 1 is the newest.
    #[param(minimum = 1, maximum = 10_000_000)]
    page: Option<u64>,
    /// 1 to 500 (default 20).
    #[param(minimum = 1, maximum = 500)]
    page_size: Option<u64>,
    #[serde(default)]
    #[param(required = false)]
    consistency: Consistency,
}

#[utoipa::path(get, path = "/audit", tag = "tokens", params(AuditQuery),
    responses((status = 200, description = "Who changed what, newest first (the last 100,000 changes)", body = Page<AuditView>), crate::openapi::ErrorResponses))]
async fn audit(State(ctx): State<Ctx>, ApiQuery(q): ApiQuery<AuditQuery>) -> Result<Json<Page<AuditView>>, ApiError> {
    let (page, page_size) = pagination(q.page, q.page_size)?;
    ctx.read_barrier(q.consistency).await?;
    let (entries, total) = ctx.sm.view().audit(page, page_size)?;
    let items = entries
        .into_iter()
        .map(|e| AuditView {
            id: e.id,
            at: at(e.at_ms),
            log_index: e.log_index,
            by: e.by,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
        })
        .collect();
    Ok(Json(Page { items, total, page, page_size }))
}
