//! The console's REST client: requests to the node's own API router, in-process.
//!
//! A page never touches the state machine: it asks the REST API exactly as a remote client
//! would, with the viewer's token as `Authorization`. So the permission table, validation,
//! forwarding of writes to the leader (with the form's request id as `Idempotency-Key`, so a
//! resubmitted form is applied once) and read consistency are the API's own. The only cost over
//! a direct read is JSON encoding, measured by the render benchmark.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use cronraft_api::types::{ErrorBody, IDEMPOTENCY_HEADER};
use serde::de::DeserializeOwned;
use tower::ServiceExt as _;

use crate::error::UiError;
use crate::session::Viewer;

/// Largest API answer a page reads (a page of 500 executions with their log tails).
const ANSWER_BYTES_MAX: usize = 32 * 1024 * 1024;

/// The REST router, called in-process.
#[derive(Clone)]
pub struct Backend {
    api: Router,
}

impl Backend {
    pub fn new(api: Router) -> Self {
        Backend { api }
    }

    /// `GET /api/v1{path}` as the viewer.
    pub async fn get<T: DeserializeOwned>(&self, viewer: &Viewer, path: &str) -> Result<T, UiError> {
        self.call(viewer, Method::GET, path, None, None).await
    }

    /// A write as the viewer, with the form's request id.
    pub async fn send<T: DeserializeOwned>(
        &self,
        viewer: &Viewer,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        request_id: &str,
    ) -> Result<T, UiError> {
        self.call(viewer, method, path, body, Some(request_id)).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        viewer: &Viewer,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        request_id: Option<&str>,
    ) -> Result<T, UiError> {
        let mut req = Request::builder().method(method).uri(format!("/api/v1{path}"));
        if let Some(token) = viewer.token() {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(id) = request_id.filter(|id| !id.is_empty()) {
            req = req.header(IDEMPOTENCY_HEADER, id);
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let req = req.body(body).map_err(|e| UiError::internal(format!("building a request for {path}: {e}")))?;
        let resp = match self.api.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), ANSWER_BYTES_MAX)
            .await
            .map_err(|e| UiError::internal(format!("reading the answer of {path}: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| UiError::internal(format!("the answer of {path} did not decode: {e}")));
        }
        Err(api_error(status, &bytes))
    }
}

fn api_error(status: StatusCode, bytes: &[u8]) -> UiError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(b) => UiError::api(status, b.error.code, b.error.message),
        Err(_) => UiError::api(status, "internal".into(), String::from_utf8_lossy(bytes).chars().take(300).collect()),
    }
}
