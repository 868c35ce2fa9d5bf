//! The OpenAPI 3.1 document of the node's HTTP app, generated from the code and served at
//! `GET /api/v1/openapi.json`.
//!
//! The routes are registered through `utoipa_axum::OpenApiRouter` ([`crate::tree`]), so a route
//! cannot be served without being in the document: each handler's `#[utoipa::path]` gives its
//! method, path, parameters, body and answers, and the request and response types derive
//! `ToSchema`. This module adds what no single handler knows: the error answers every operation
//! may give ([`ErrorResponses`]), the table of every [`ErrorCode`] (the `code` of an error body is
//! an enum of them, and the document's description lists their statuses and meanings), and the
//! shapes of foreign types.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::{self, RefOr, Response, ResponseBuilder, Schema};
use utoipa::{IntoResponses, Modify, PartialSchema, ToSchema};

use crate::error::ErrorCode;
use crate::types::ErrorBody;

/// Path of the document.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// Every error answer an operation may give: any 4xx or 5xx, with the JSON error body.
pub struct ErrorResponses;

impl IntoResponses for ErrorResponses {
    fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(format!("{what}; `error.code` says which (see the `ErrorCode` schema)"))
                .content("application/json", openapi::ContentBuilder::new().schema(Some(ErrorBody::schema())).build())
                .build()
                .into()
        };
        [("4XX".to_string(), error("The request is refused")), ("5XX".to_string(), error("The node cannot answer now"))]
            .into_iter()
            .collect()
    }
}

/// `crate::scheduler_metrics::LagSummary` as JSON (that type lives with the scheduler's metrics).
#[derive(ToSchema)]
#[schema(as = LagSummary)]
#[allow(dead_code)]
pub struct LagSummarySchema {
    /// Recent fires measured.
    samples: u64,
    p50_ms: u64,
    p99_ms: u64,
    max_ms: u64,
}

/// Adds the error-code table and the document's title.
struct Describe;

impl Modify for Describe {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        doc.info.title = "cronraft".into();
        doc.info.version = env!("CARGO_PKG_VERSION").into();
        let mut table = String::from(
            "The REST API of a cronraft node (docs/reference/api.md). Every error answer has the body \
             `{\"error\":{\"code\",\"message\"}}`; the codes:\n\n| code | status | meaning |\n|---|---|---|\n",
        );
        for c in ErrorCode::ALL {
            table.push_str(&format!("| `{}` | {} | {} |\n", c.as_str(), c.status().as_u16(), c.description()));
        }
        doc.info.description = Some(table);
        let mut codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        codes.dedup();
        codes.sort_unstable();
        codes.dedup();
        let code_schema = openapi::ObjectBuilder::new()
            .schema_type(openapi::schema::Type::String)
            .enum_values(Some(codes))
            .description(Some("The stable machine code of an error answer."))
            .build();
        let components = doc.components.get_or_insert_with(Default::default);
        components.schemas.insert("ErrorCode".into(), RefOr::T(Schema::Object(code_schema)));
        // The error body's parts, which [`ErrorResponses`] refers to.
        let mut parts = Vec::new();
        <ErrorBody as ToSchema>::schemas(&mut parts);
        for (name, schema) in parts {
            components.schemas.entry(name).or_insert(schema);
        }
        components.schemas.entry("ErrorBody".into()).or_insert(ErrorBody::schema());
        // Query parameters refer to it, but `IntoParams` does not collect it.
        components.schemas.entry("Consistency".into()).or_insert(crate::context::Consistency::schema());
    }
}

/// The document, built once.
pub fn openapi() -> &'static openapi::OpenApi {
    static DOC: OnceLock<openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = crate::tree().into_openapi();
        Describe.modify(&mut doc);
        doc
    })
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json")))]
pub async fn document() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| openapi().to_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], body.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_summary_schema_has_the_fields_of_the_type() {
        let value = serde_json::to_value(crate::scheduler_metrics::LagSummary::default()).unwrap();
        let mut fields: Vec<&String> = value.as_object().unwrap().keys().collect();
        fields.sort();
        let schema = serde_json::to_value(LagSummarySchema::schema()).unwrap();
        let mut documented: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        documented.sort();
        assert_eq!(fields, documented);
    }
}
