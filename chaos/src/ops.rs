//! Sends one REST request to one node and classifies its outcome for the history.
//!
//! `ok` = 2xx. `fail` only for definite non-effects: 4xx refusals (validation, 404, 409, 422
//! `idempotency_key_reused`), a refused or timed-out *connect* (nothing was sent), and 503 with code
//! `no_leader` / `not_leader` (the forwarding layer guarantees nothing was proposed; see
//! `api/src/forward.rs`). Everything else — client timeouts after sending, resets, other 5xx such
//! as `unavailable` or `timeout` — is `info`: it may still take effect.

use std::time::Duration;

use cronraft_api::client::{Client, ClientError};
use reqwest::Method;
use serde_json::Value;

use crate::history::Kind;

/// The classified result of one request.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: Kind,
    /// The parsed body of a 2xx answer.
    pub body: Value,
    /// Why it was not `ok` (HTTP status and code, or the transport error).
    pub error: Option<String>,
}

/// Codes that promise the write was never proposed.
const UNPROPOSED: &[&str] = &["no_leader", "not_leader"];

/// Sends `method path` with an optional JSON body and `Idempotency-Key` to `node`.
pub async fn send(
    node_url: &str,
    timeout: Duration,
    method: Method,
    path: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> Outcome {
    let client = Client::with_timeout([node_url], timeout);
    let bytes = body.map(|b| serde_json::to_vec(b).expect("serialize"));
    classify(client.raw(method, path, bytes, key).await)
}

/// The classification rules, separate from I/O so they can be tested.
pub fn classify(res: Result<cronraft_api::client::RawResponse, ClientError>) -> Outcome {
    match res {
        Ok(raw) if (200..300).contains(&raw.status) => {
            Outcome { kind: Kind::Ok, body: serde_json::from_str(&raw.body).unwrap_or(Value::Null), error: None }
        }
        Ok(raw) => {
            let code = serde_json::from_str::<Value>(&raw.body)
                .ok()
                .and_then(|v| v.pointer("/error/code").and_then(|c| c.as_str()).map(String::from))
                .unwrap_or_default();
            let definite = (400..500).contains(&raw.status) || (raw.status == 503 && UNPROPOSED.contains(&&*code));
            let kind = if definite { Kind::Fail } else { Kind::Info };
            Outcome { kind, body: Value::Null, error: Some(format!("HTTP {} {code}", raw.status)) }
        }
        Err(ClientError::Unreachable(e)) => Outcome { kind: Kind::Fail, body: Value::Null, error: Some(e) },
        Err(e) => Outcome { kind: Kind::Info, body: Value::Null, error: Some(e.to_string()) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cronraft_api::client::RawResponse;

    fn raw(status: u16, body: &str) -> Result<RawResponse, ClientError> {
        Ok(RawResponse { status, idempotency_key: None, body: body.into() })
    }

    #[test]
    fn only_definite_non_effects_are_fail() {
        assert_eq!(classify(raw(200, r#"{"id":1}"#)).kind, Kind::Ok);
        assert_eq!(classify(raw(409, r#"{"error":{"code":"task_name_taken","message":""}}"#)).kind, Kind::Fail);
        assert_eq!(classify(raw(503, r#"{"error":{"code":"no_leader","message":""}}"#)).kind, Kind::Fail);
        assert_eq!(classify(raw(503, r#"{"error":{"code":"unavailable","message":""}}"#)).kind, Kind::Info);
        assert_eq!(classify(raw(503, r#"{"error":{"code":"timeout","message":""}}"#)).kind, Kind::Info);
        assert_eq!(classify(raw(500, "oops")).kind, Kind::Info);
        assert_eq!(classify(Err(ClientError::Unreachable("refused".into()))).kind, Kind::Fail);
        assert_eq!(classify(Err(ClientError::Transport("timed out".into()))).kind, Kind::Info);
    }
}
