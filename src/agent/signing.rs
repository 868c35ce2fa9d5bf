//! The agent's half of the signed executor protocol: whether requests must be signed, and the key
//! to check them with.
//!
//! An agent with a token (the cluster has auth on) refuses every `/execute` and `/stop` that is
//! not signed with its instance's key, checked on the raw body before it is parsed. It learns the
//! key from its registration's answer (`signing_key`), so until its first registration succeeds it
//! refuses everything; the key depends only on the cluster secret and the instance id, so later
//! registrations bring the same key (a new one, after the secret was changed, replaces it). An agent
//! without a token (auth off) takes unsigned requests, as before.

use std::sync::{Arc, RwLock};

use axum::http::HeaderMap;
use cronraft_api::error::{ApiError, ErrorCode};
use cronraft_api::signature::{Verifier, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// Whether and how requests are checked.
#[derive(Debug)]
pub struct Signing {
    /// Requests must be signed (the agent has a token).
    required: bool,
    /// The key from the last registration, as (hex, verifier): the hex tells a new key apart.
    current: RwLock<Option<(String, Arc<Verifier>)>>,
}

impl Signing {
    pub fn new(required: bool) -> Self {
        Signing { required, current: RwLock::new(None) }
    }

    /// Takes the key from a registration's answer (hex); a malformed one is ignored with a warning.
    pub fn set_key(&self, hex: &str) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|(h, _)| h == hex) {
            return;
        }
        match blake3::Hash::from_hex(hex) {
            Ok(key) => *current = Some((hex.to_string(), Arc::new(Verifier::new(*key.as_bytes())))),
            Err(_) => tracing::warn!("the cluster's registration answer has a malformed signing key; ignored"),
        }
    }

    /// Checks one request to `path` before its body is parsed.
    pub fn check(&self, path: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
        if !self.required {
            return Ok(());
        }
        let verifier = self.current.read().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(_, v)| v.clone());
        let Some(verifier) = verifier else {
            let msg =
                "this agent has not registered yet, so it cannot check signatures; it takes no request until then";
            return Err(ApiError::new(ErrorCode::Unauthenticated, msg));
        };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let now = chrono::Utc::now().timestamp_millis();
        verifier
            .verify(path, header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER), body, now)
            .map_err(|e| ApiError::new(ErrorCode::Unauthenticated, format!("refused: {e}")))
    }
}
