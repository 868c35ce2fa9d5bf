//! The console's stylesheet and script, compiled into the binary: no CDN, no font download, no
//! npm step (the console works on an air-gapped LAN). Cached for an hour; the files are small.

use axum::http::header;
use axum::response::IntoResponse;

const CSS: &str = include_str!("../static/app.css");
const JS: &str = include_str!("../static/app.js");

pub async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], CSS)
}

pub async fn js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], JS)
}
