//! The OpenAPI document against the router, the error-code table and the reference page.
//!
//! The document is generated from the routes (`cronraft_api::tree`), so what can drift is the
//! rest: a route added beside the documented router, a route or an error code missing from
//! `docs/reference/api.md`, or a node serving something else than the generated document. Each
//! test takes one of those in turn.

use std::collections::BTreeSet;

use crate::common::Cluster;
use cronraft_api::error::ErrorCode;
use cronraft_api::types::ErrorBody;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// The generated document, as JSON.
fn document() -> Value {
    serde_json::to_value(cronraft_api::openapi::openapi()).expect("the document is JSON")
}

/// Every (METHOD, path) of the document, paths with `{}` for each parameter.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            out.insert((m.to_uppercase(), generic(path)));
        }
    }
    out
}

/// `/api/v1/tasks/{task}/stats` → `/api/v1/tasks/{}/stats`.
fn generic(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

fn reference() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reference/api.md")).expect("api.md")
}

#[test]
fn every_route_is_registered_through_the_documented_router() {
    // Phase 1: no handler module adds a route with plain axum `.route(`, which would serve it
    // without putting it in the document (`.routes(routes!(..))` is the documented way).
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/api/src");
    let mut plain = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(dir)];
    while let Some(p) = stack.pop() {
        for entry in std::fs::read_dir(&p).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                // Unit tests build their own small routers.
                let text = text.split("#[cfg(test)]").next().unwrap_or("");
                if text.contains(".route(\"") || text.contains(".route_service(") {
                    plain.push(path.display().to_string());
                }
            }
        }
    }
    assert!(plain.is_empty(), "routes outside the OpenAPI router in {plain:?}");

    // Phase 2: the document has the operations the API is known to serve, itself included.
    let ops = operations(&document());
    for (m, p) in
        [("GET", "/api/v1/tasks"), ("POST", "/api/v1/executions/{}/callback"), ("GET", "/api/v1/openapi.json")]
    {
        assert!(ops.contains(&(m.to_string(), p.to_string())), "{m} {p} missing from {ops:?}");
    }
    assert!(ops.len() >= 30, "{} operations", ops.len());
    assert!(document()["openapi"].as_str().unwrap().starts_with("3.1"), "OpenAPI 3.1");
}

#[test]
fn every_route_and_every_error_code_is_in_the_reference_page() {
    let page = reference();
    // Headings like "### `GET /api/v1/tasks/{task}`" (one heading may name two routes).
    let mut documented = BTreeSet::new();
    for line in page.lines().filter(|l| l.starts_with("### ")) {
        for part in line.split('`').skip(1).step_by(2) {
            if let Some((m, p)) = part.split_once(' ') {
                if METHODS.contains(&m.to_lowercase().as_str()) {
                    documented.insert((m.to_string(), generic(p)));
                }
            }
        }
    }
    let missing: Vec<_> = operations(&document()).difference(&documented).cloned().collect();
    assert!(missing.is_empty(), "routes without a section in docs/reference/api.md: {missing:?}");

    // The error-code table: a row per code whose status cell names the code's status.
    for code in ErrorCode::ALL {
        let cell = format!("| `{}` |", code.as_str());
        let status = code.status().as_u16().to_string();
        let rows: Vec<&str> = page.lines().filter(|l| l.starts_with(&cell)).collect();
        assert!(
            rows.iter().any(|r| r.split('|').nth(2).is_some_and(|s| s.contains(&status))),
            "{code:?} ({}, {status}) has no row in the error table: {rows:?}",
            code.as_str()
        );
    }
}

#[test]
fn every_error_code_is_in_the_document() {
    let doc = document();
    let enum_values: BTreeSet<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("an ErrorCode enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let description = doc["info"]["description"].as_str().unwrap();
    for code in ErrorCode::ALL {
        assert!(enum_values.contains(code.as_str()), "{code:?} not in the ErrorCode schema");
        let row = format!("| `{}` | {} |", code.as_str(), code.status().as_u16());
        assert!(description.contains(&row), "{code:?} not in the document's table");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_serves_the_document_and_every_documented_route() {
    let c = Cluster::start(1, "").await;
    let base = c.nodes[&1].url();
    let http = reqwest::Client::new();

    // Phase 1: the node serves the generated document.
    let served: Value = http.get(format!("{base}/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(served, document());

    // Phase 2: every documented operation reaches a handler: with a made-up id and no body it
    // may be refused, but never as an unknown route or method, and always with the JSON error
    // body (nothing below creates anything: every id is unknown and every body is missing).
    for (method, path) in operations(&served) {
        let url = format!("{base}{}", path.replace("{}", "987654"));
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = http.request(m, &url).send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        if status >= 400 && !path.starts_with("/health") && !path.starts_with("/ready") {
            let e: ErrorBody = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{method} {path}: {body}"));
            assert!(!["not_found", "method_not_allowed"].contains(&e.error.code.as_str()), "{method} {path}: {body}");
        }
    }
}
