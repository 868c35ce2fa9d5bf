//! Who is looking at a page: the session cookie, sign-in and sign-out, and CSRF protection.
//!
//! # The session
//!
//! With auth on, signing in checks an API token with the API's own lookup
//! (`auth::identify`) and keeps **the token itself** in the `cronraft_session` cookie:
//! `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends it), `Secure`
//! under TLS, 12 hours. Tokens are replicated, so the same cookie works on every node, and a
//! revoked token ends every session that holds it at the next page. There is no server-side
//! session table to replicate or lose.
//!
//! With auth off (a loopback-only node, or `--insecure`) everyone may do everything and there is
//! nothing to sign in with; a random `cronraft_browser` cookie then only seeds the CSRF token.
//!
//! # CSRF
//!
//! Every form carries a hidden `csrf` field: a keyed BLAKE3 derivation of the session's secret
//! (the token, or the browser cookie), so it verifies on any node and a page on another site,
//! which cannot read the cookie, cannot compute it. A POST must carry it, and must not come
//! from another site by the browser's own account (`Sec-Fetch-Site`, `Origin`). Both checks run
//! before any form field is used. A forged post gets 403 `csrf`; even a correct one still goes
//! through the API's permission table, so a `read` token's valid form cannot write.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use cronraft_api::auth::{self, Caller};
use maud::html;
use serde::Deserialize;

use crate::error::UiError;
use crate::layout;
use crate::{Console, ConsoleRef};

/// The session cookie (the API token).
pub const SESSION_COOKIE: &str = "cronraft_session";
/// With auth off: the random seed of this browser's CSRF token.
pub const BROWSER_COOKIE: &str = "cronraft_browser";
/// How long a session lasts.
const SESSION_SECONDS: u64 = 12 * 3600;
/// Longest token accepted on the sign-in form.
const TOKEN_BYTES_MAX: usize = 512;
/// The BLAKE3 context of CSRF tokens.
const CSRF_CONTEXT: &str = "cronraft console 2026-12 csrf token";

/// The person looking at a page.
pub struct Viewer {
    pub caller: Caller,
    /// The API token of the session (none with auth off).
    token: Option<String>,
    /// The hidden `csrf` field every form of this session carries.
    pub csrf: String,
    pub auth_on: bool,
    /// A fresh `cronraft_browser` cookie to set with the answer (auth off, first visit).
    pub set_cookie: Option<String>,
    /// The `done` query value: what the previous form did (shown as a flash line).
    pub done: Option<String>,
}

impl Viewer {
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether the viewer may use API route `route` (as in the API's table, without `/api/v1`)
    /// with `method`: the console hides what the API would refuse.
    pub fn may(&self, method: Method, route: &str) -> bool {
        self.caller.may(auth::need(&method, &format!("/api/v1{route}")))
    }

    /// The name and role shown in the header.
    pub fn who(&self) -> String {
        match &self.caller {
            Caller::Anonymous => "auth off".into(),
            Caller::Cluster => "cluster credential".into(),
            Caller::Token(t) => format!("{} ({})", t.spec.name, t.spec.role.as_str()),
        }
    }

    /// Refuses a POST that is not from this session's own page: checked before any field is used.
    pub fn check_form(&self, headers: &HeaderMap, csrf: &str) -> Result<(), UiError> {
        check_origin(headers)?;
        if !constant_time_eq(csrf.as_bytes(), self.csrf.as_bytes()) {
            return Err(UiError::csrf("the form's csrf token is missing or is not this session's"));
        }
        Ok(())
    }
}

impl FromRequestParts<ConsoleRef> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &ConsoleRef) -> Result<Self, Response> {
        let done = parts.uri.query().and_then(|q| query_value(q, "done")).filter(|d| d.len() <= 32);
        if console.ctx.cluster_secret.is_none() {
            let (seed, set_cookie) = match cookie(&parts.headers, BROWSER_COOKIE) {
                Some(s) if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) => (s.to_string(), None),
                _ => {
                    let seed = random_hex();
                    let c = format!("{BROWSER_COOKIE}={seed}; Path=/; HttpOnly; SameSite=Strict{}", secure(console));
                    (seed, Some(c))
                }
            };
            let csrf = csrf_of(&seed);
            return Ok(Viewer { caller: Caller::Anonymous, token: None, csrf, auth_on: false, set_cookie, done });
        }
        let here = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login(here, false, console));
        };
        let value = HeaderValue::from_str(&format!("Bearer {token}")).ok();
        match auth::identify(&console.ctx, value.as_ref()) {
            Ok(caller @ (Caller::Token(_) | Caller::Cluster)) => Ok(Viewer {
                caller,
                csrf: csrf_of(token),
                token: Some(token.to_string()),
                auth_on: true,
                set_cookie: None,
                done,
            }),
            _ => Err(to_login(here, true, console)),
        }
    }
}

/// 303 to the sign-in page, back to `here` afterwards; `expired` clears the cookie and says so.
fn to_login(here: &str, expired: bool, console: &Console) -> Response {
    let mut to = format!("/login?next={}", encode(here));
    if expired {
        to.push_str("&expired=1");
    }
    let mut resp = layout::redirect(&to);
    if expired {
        set_cookie(&mut resp, &clear_session(console));
    }
    resp
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    expired: Option<String>,
}

/// `GET /login`.
pub async fn login_page(
    State(console): State<ConsoleRef>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let note =
        q.expired.is_some().then_some("Your session ended (the token was revoked or is unknown). Sign in again.");
    login_form(&console, &next, note, StatusCode::OK)
}

fn login_form(console: &Console, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let body = if console.ctx.cluster_secret.is_none() {
        html! {
            p { "Authentication is off on this cluster: everyone who can reach it may do everything, so there is nothing to sign in with." }
            p { a href="/" { "Go to the overview" } }
        }
    } else {
        html! {
            @if let Some(e) = error {
                div #error-summary.error-summary role="alert" tabindex="-1" { p { (e) } }
            }
            form #login-form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                div.field {
                    label for="token" { "API token" }
                    p #token-hint.hint { "An admin makes one with " code { "cronraft token create" } "; the first admin token is in the bootstrap node's " code { "admin.token" } "." }
                    input #token type="password" name="token" autocomplete="off" required aria-describedby="token-hint" autofocus;
                }
                button #login type="submit" { "Sign in" }
            }
        }
    };
    let mut resp = (status, layout::bare("Sign in", body)).into_response();
    no_store(&mut resp);
    resp
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /login`: checks the token with the API's own lookup and keeps it in the cookie.
pub async fn login(State(console): State<ConsoleRef>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let next = safe_next(form.next.as_deref());
    if let Err(e) = check_origin(&headers) {
        return login_form(&console, &next, Some(&e.message), e.status);
    }
    if console.ctx.cluster_secret.is_none() {
        return layout::redirect("/");
    }
    let token = form.token.trim();
    let well_formed = !token.is_empty()
        && token.len() <= TOKEN_BYTES_MAX
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    let value = well_formed.then(|| HeaderValue::from_str(&format!("Bearer {token}")).ok()).flatten();
    match value.map(|v| auth::identify(&console.ctx, Some(&v))) {
        Some(Ok(Caller::Token(_) | Caller::Cluster)) => {
            let mut resp = layout::redirect(&next);
            let c = format!(
                "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}{}",
                secure(&console)
            );
            set_cookie(&mut resp, &c);
            tracing::info!(target: "cronraft::ui", "console sign-in");
            resp
        }
        _ => login_form(
            &console,
            &next,
            Some("That token is not valid here (unknown, revoked, or mistyped)."),
            StatusCode::UNAUTHORIZED,
        ),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: clears the cookie (the token itself stays valid until revoked).
pub async fn logout(
    viewer: Viewer,
    State(console): State<ConsoleRef>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(e) = viewer.check_form(&headers, &f.csrf) {
        return layout::error_page(&console, &viewer, layout::Nav::None, &e);
    }
    let mut resp = layout::redirect("/login");
    set_cookie(&mut resp, &clear_session(&console));
    resp
}

fn clear_session(console: &Console) -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}", secure(console))
}

fn secure(console: &Console) -> &'static str {
    if console.tls {
        "; Secure"
    } else {
        ""
    }
}

pub fn set_cookie(resp: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Pages that show a session's data are not kept by the browser or a proxy.
pub fn no_store(resp: &mut Response) {
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Refuses a request the browser says comes from another site.
fn check_origin(headers: &HeaderMap) -> Result<(), UiError> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return Err(UiError::csrf("the browser says this form came from another site"));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let origin_host = origin.split("://").nth(1).unwrap_or(origin);
        if origin == "null" || !origin_host.eq_ignore_ascii_case(host) {
            return Err(UiError::csrf("the form's Origin is not this console"));
        }
    }
    Ok(())
}

/// Only a path on this console: never another origin (`//host`, `https://…`).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && n.len() <= 2048 => n.to_string(),
        _ => "/".into(),
    }
}

fn csrf_of(seed: &str) -> String {
    let key = blake3::derive_key(CSRF_CONTEXT, seed.as_bytes());
    key[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The decoded value of `key` in a query string.
pub fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| decode(v))
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 3 <= b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
            .flatten();
        match (b[i], hex) {
            (_, Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_console() {
        assert_eq!(safe_next(Some("/tasks?page=2")), "/tasks?page=2");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn a_session_s_csrf_token_depends_on_its_secret_only() {
        assert_eq!(csrf_of("crt_a"), csrf_of("crt_a"));
        assert_ne!(csrf_of("crt_a"), csrf_of("crt_b"));
        assert_eq!(csrf_of("x").len(), 32);
    }

    #[test]
    fn query_values_round_trip_through_the_encoder() {
        let raw = "/tasks?name=a b&x=%";
        assert_eq!(query_value(&format!("next={}", encode(raw)), "next").as_deref(), Some(raw));
        assert_eq!(query_value("a=1&done=paused", "done").as_deref(), Some("paused"));
        assert_eq!(query_value("a=%zz%4", "a").as_deref(), Some("%zz%4"));
    }

    #[test]
    fn cross_site_posts_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7340"));
        assert!(check_origin(&h).is_ok(), "no headers: a CLI or an old browser");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:7340"));
        assert!(check_origin(&h).is_ok());
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check_origin(&h).is_err());
        h.remove("sec-fetch-site");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(check_origin(&h).is_err());
    }
}
