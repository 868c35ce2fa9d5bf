//! Extractors that answer bad input in the API's own error format instead of axum's plain text.
//!
//! - [`JsonBody`]: a JSON body. Unparseable JSON → 400 `malformed_json`; JSON of the wrong shape
//!   (unknown field, bad enum value, wrong type) → 422 `invalid_field`; over the body limit → 413
//!   `body_too_large`; a non-JSON content type → 415 `unsupported_media_type`.
//! - [`ApiQuery`]: query parameters → 400 `invalid_query`.
//! - [`ApiPath`]: path parameters → 400 `invalid_path` (e.g. `%FF`, not UTF-8 once decoded).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// Largest request body the REST API accepts.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;

/// A JSON request body, deserialized strictly.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !content_type.is_empty() && !content_type.starts_with("application/json") {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!("expected content-type application/json, got {content_type:?}"),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::BodyTooLarge, format!("request body is larger than {BODY_BYTES_MAX} bytes"))
            } else {
                ApiError::new(ErrorCode::UnreadableBody, rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses `bytes` as JSON `T`, classifying errors as syntax (400) or shape (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::new(ErrorCode::MalformedJson, "request body is empty; expected a JSON object"));
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::new(ErrorCode::InvalidField, e.to_string()),
        _ => ApiError::new(ErrorCode::MalformedJson, format!("request body is not valid JSON: {e}")),
    })
}

/// Query parameters, deserialized strictly.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|rejection| ApiError::new(ErrorCode::InvalidQuery, rejection.body_text()))
    }
}

/// Path parameters, with axum's plain-text rejection turned into the API's error.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| ApiPath(p))
            .map_err(|rejection| ApiError::new(ErrorCode::InvalidPath, rejection.body_text()))
    }
}
