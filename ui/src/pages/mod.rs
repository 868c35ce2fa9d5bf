//! The console's pages, one module per page group. Each handler takes the [`Viewer`], asks the
//! REST API for what it shows (`Console::backend`), and renders through `layout`. Write
//! handlers check the form's CSRF token first, send one API write with the form's request id,
//! and answer 303 to the page that shows the result (or the form again with the API's error).
//!
//! [`Viewer`]: crate::session::Viewer

pub mod cluster;
pub mod executions;
pub mod executors;
pub mod notifications;
pub mod overview;
pub mod task_detail;
pub mod task_form;
pub mod tasks;

use std::collections::{BTreeSet, HashMap};

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use cronraft_api::types::TaskView;
use maud::Markup;
use serde::Deserialize;

use crate::error::UiError;
use crate::layout::error_box;
use crate::layout::{self, Nav};
use crate::session::Viewer;
use crate::Console;

/// A form that only carries the guard fields (pause, resume, stop, remove …).
#[derive(Debug, Deserialize)]
pub struct GuardForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub request_id: String,
}

/// One API write from a form, the common case: the CSRF check, the write with the form's
/// request id, then 303 to `then`, or the error page in `nav`'s section.
pub struct Submit<'a> {
    pub nav: Nav,
    pub method: Method,
    pub path: &'a str,
    pub body: Option<serde_json::Value>,
    pub then: &'a str,
}

impl Submit<'_> {
    pub async fn send(self, c: &Console, v: &Viewer, headers: &HeaderMap, csrf: &str, request_id: &str) -> Response {
        if let Err(e) = v.check_form(headers, csrf) {
            return layout::error_page(c, v, self.nav, &e);
        }
        match c.backend.send::<serde_json::Value>(v, self.method, self.path, self.body, request_id).await {
            Ok(_) => layout::redirect(self.then),
            Err(e) => layout::error_page(c, v, self.nav, &e),
        }
    }
}

/// A card's content, or its error in place (one failed read does not blank the whole page).
pub fn or_error(result: Result<Markup, UiError>) -> Markup {
    match result {
        Ok(m) => m,
        Err(e) => error_box(&e),
    }
}

/// The names of the tasks `ids` (a page's worth), for showing records by name: local reads,
/// after the page's own records were read at its consistency level; a task that cannot be
/// read is left out (shown by id).
pub async fn task_names(c: &Console, v: &Viewer, ids: impl IntoIterator<Item = u64>) -> HashMap<u64, String> {
    let ids: BTreeSet<u64> = ids.into_iter().collect();
    let paths: Vec<(u64, String)> = ids.into_iter().map(|id| (id, format!("/tasks/{id}?consistency=local"))).collect();
    let reads = paths.iter().map(|(id, path)| async move { (*id, c.backend.get::<TaskView>(v, path).await) });
    futures::future::join_all(reads).await.into_iter().filter_map(|(id, r)| r.ok().map(|t| (id, t.name))).collect()
}

/// Reads a number from a form or query field, or says which field was not one.
pub fn number<T: std::str::FromStr>(field: &str, raw: &str) -> Result<Option<T>, UiError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(|_| UiError::invalid_form(format!("`{field}` must be a whole number, not {raw:?}")))
}
