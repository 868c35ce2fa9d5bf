//! API tokens in apply: create and revoke, and the token queries of [`StateView`].
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `a/h/` | blake3 of the secret (32 bytes) | [`StoredToken`] |
//! | `a/n/` | token name | the hash: the name index, for listing and revoking |
//!
//! A token is found by the hash of what a client presents ([`StateView::token_by_hash`]), one
//! point read per request, so checking a token costs no scan and compares no secret.

use serde::{Deserialize, Serialize};

use super::keys::{self, get_u64, put_u64};
use super::{At, StateView};
use crate::codec;
use crate::command::{Rejection, Response};
use crate::error::StoreError;
use crate::model::{Token, TokenSpec};
use crate::txn::WriteSet;

/// Most tokens the cluster holds; creating more is refused (revoke unused ones).
pub const TOKENS_MAX: u64 = 10_000;
/// Longest token name, and most groups or prefixes in a scope (apply refuses more; the API says why
/// before that).
pub const TOKEN_NAME_LEN_MAX: usize = 64;
pub const TOKEN_SCOPE_ITEMS_MAX: usize = 32;

/// On-disk envelope of a token. Variants are appended, never changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StoredToken {
    V1(Token),
}

fn decode(bytes: &[u8]) -> Result<Token, StoreError> {
    let StoredToken::V1(t) = codec::decode(bytes)?;
    Ok(t)
}

/// `POST /tokens` (and the bootstrap admin token).
pub(super) fn create(
    ws: &mut WriteSet<'_>,
    at: At,
    spec: &TokenSpec,
    created_by: &str,
) -> Result<Response, StoreError> {
    let name = &spec.name;
    if name.is_empty()
        || name.len() > TOKEN_NAME_LEN_MAX
        || spec.scope.groups.len() > TOKEN_SCOPE_ITEMS_MAX
        || spec.scope.prefixes.len() > TOKEN_SCOPE_ITEMS_MAX
    {
        return Ok(Response::Rejected(Rejection::InvalidToken { name: name.clone() }));
    }
    if ws.get(&keys::token_name(name))?.is_some() || ws.get(&keys::token(&spec.hash))?.is_some() {
        return Ok(Response::Rejected(Rejection::TokenNameTaken { name: name.clone() }));
    }
    let count = get_u64(ws, keys::TOKEN_COUNT)?;
    if count >= TOKENS_MAX {
        return Ok(Response::Rejected(Rejection::TooManyTokens { max: TOKENS_MAX }));
    }
    let token = Token { spec: spec.clone(), created_at_ms: at.now_ms, created_by: created_by.to_string() };
    ws.insert(keys::token(&spec.hash), codec::encode(&StoredToken::V1(token.clone()))?);
    ws.insert(keys::token_name(name), spec.hash.to_vec());
    put_u64(ws, keys::TOKEN_COUNT, count + 1);
    Ok(Response::Token(token))
}

/// `DELETE /tokens/{name}`: the token stops working on every node once this entry is applied there.
pub(super) fn revoke(ws: &mut WriteSet<'_>, name: &str) -> Result<Response, StoreError> {
    let Some(hash) = ws.get(&keys::token_name(name))? else {
        return Ok(Response::Rejected(Rejection::TokenNotFound { name: name.to_string() }));
    };
    let token = match ws.get(&hash_key(&hash))? {
        Some(bytes) => decode(&bytes)?,
        None => return Ok(Response::Rejected(Rejection::TokenNotFound { name: name.to_string() })),
    };
    ws.remove(hash_key(&hash));
    ws.remove(keys::token_name(name));
    let count = get_u64(ws, keys::TOKEN_COUNT)?;
    put_u64(ws, keys::TOKEN_COUNT, count.saturating_sub(1));
    Ok(Response::Token(token))
}

fn hash_key(hash: &[u8]) -> Vec<u8> {
    let mut fixed = [0u8; 32];
    let n = hash.len().min(32);
    fixed[..n].copy_from_slice(&hash[..n]);
    keys::token(&fixed)
}

impl StateView {
    /// The token whose secret hashes to `hash`, if any.
    pub fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<Token>, StoreError> {
        self.tree.get(keys::token(hash))?.map(|b| decode(&b)).transpose()
    }

    /// Every token, by name (at most [`TOKENS_MAX`]).
    pub fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(keys::TOKEN_NAME) {
            let (_, hash) = kv?;
            if let Some(bytes) = self.tree.get(hash_key(&hash))? {
                out.push(decode(&bytes)?);
            }
        }
        Ok(out)
    }

    /// How many tokens exist (0: nobody can use an authenticated API yet).
    pub fn token_count(&self) -> Result<u64, StoreError> {
        Ok(self.tree.get(keys::TOKEN_COUNT)?.as_deref().and_then(crate::codec::parse_key_u64).unwrap_or(0))
    }
}
