//! The agent's half of the signed executor protocol: whether requests must be signed, and the key
//! to check them with.
//!
//! An agent with a token (the cluster has auth on) refuses every `/execute` and `/stop` that is
//! not signed with its instance's key, checked on the raw body before it is parsed. It learns the
//! key from its registration's answer (`signing_key`), so until its first registration succeeds it
//! refuses everything; the key depends only on the cluster secret and the instance id, so later
//! registrations bring the same key. While the cluster secret rotates, the answer lists a key per
//! accepted secret and the agent takes a request signed with any of them. An agent without a
//! token (auth off) takes unsigned requests, as before.

use std::sync::{Arc, RwLock};

use axum::http::HeaderMap;
use cronraft_api::error::{ApiError, ErrorCode};
use cronraft_api::signature::{SignatureError, Verifier, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// Whether and how requests are checked.
#[derive(Debug)]
pub struct Signing {
    /// Requests must be signed (the agent has a token).
    required: bool,
    /// The keys from the last registration, as (hex, verifier), the current one first (more than
    /// one while the cluster secret rotates): the hex tells a new key apart, so a verifier and its
    /// memory of seen signatures live as long as its key does.
    current: RwLock<Vec<(String, Arc<Verifier>)>>,
}

impl Signing {
    pub fn new(required: bool) -> Self {
        Signing { required, current: RwLock::new(Vec::new()) }
    }

    /// Takes the keys from a registration's answer (hex); a malformed one is ignored with a
    /// warning. A key seen before keeps its verifier (and its memory of seen signatures).
    pub fn set_keys(&self, hexes: &[String]) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        let mut next = Vec::with_capacity(hexes.len());
        for hex in hexes.iter().take(cronraft_raft::cluster_secret::CLUSTER_SECRETS_MAX) {
            if let Some(kept) = current.iter().find(|(h, _)| h == hex) {
                next.push(kept.clone());
                continue;
            }
            match blake3::Hash::from_hex(hex) {
                Ok(key) => next.push((hex.clone(), Arc::new(Verifier::new(*key.as_bytes())))),
                Err(_) => tracing::warn!("the cluster's registration answer has a malformed signing key; ignored"),
            }
        }
        if !next.is_empty() {
            *current = next;
        }
    }

    /// Checks one request to `path` before its body is parsed.
    pub fn check(&self, path: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
        if !self.required {
            return Ok(());
        }
        let verifiers: Vec<Arc<Verifier>> =
            self.current.read().unwrap_or_else(|p| p.into_inner()).iter().map(|(_, v)| v.clone()).collect();
        if verifiers.is_empty() {
            let msg =
                "this agent has not registered yet, so it cannot check signatures; it takes no request until then";
            return Err(ApiError::new(ErrorCode::Unauthenticated, msg));
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let now = chrono::Utc::now().timestamp_millis();
        // The first key whose signature matches decides (freshness, replay); a mismatch under
        // every key is the answer.
        let mut refusal = SignatureError::Mismatch;
        for v in verifiers {
            match v.verify(path, header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER), body, now) {
                Ok(()) => return Ok(()),
                Err(SignatureError::Mismatch) => {}
                Err(e) => {
                    refusal = e;
                    break;
                }
            }
        }
        Err(ApiError::new(ErrorCode::Unauthenticated, format!("refused: {refusal}")))
    }
}
