//! The page shell: the document head, the header with navigation and the viewer, the banner
//! naming the node that rendered the page and its Raft view, the flash line of the previous
//! form, and the error page.
//!
//! Every page answer goes through [`page`] or [`error_page`], so each one carries the same
//! `Cache-Control: no-store` (pages show a session's data) and, with auth off on a first visit,
//! the browser cookie that seeds its CSRF token.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use openraft::ServerState;

use crate::error::UiError;
use crate::session::{self, Viewer};
use crate::Console;

/// The section a page belongs to (highlighted in the navigation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Tasks,
    Executions,
    Executors,
    Notifications,
    Cluster,
    None,
}

const SECTIONS: [(Nav, &str, &str, &str); 6] = [
    (Nav::Overview, "nav-overview", "/", "Overview"),
    (Nav::Tasks, "nav-tasks", "/tasks", "Tasks"),
    (Nav::Executions, "nav-executions", "/executions", "Executions"),
    (Nav::Executors, "nav-executors", "/executors", "Executors"),
    (Nav::Notifications, "nav-notifications", "/notifications", "Notifications"),
    (Nav::Cluster, "nav-cluster", "/cluster", "Cluster"),
];

/// What a page handler returns: its title, section, body, and whether it refreshes itself.
pub struct Page {
    pub title: String,
    pub nav: Nav,
    pub body: Markup,
    /// `main[data-refresh-ms]`: `app.js` reloads the page's main part this often while it is
    /// visible (a running execution, the overview). Absent: the page stays as rendered.
    pub refresh_ms: Option<u64>,
}

impl Page {
    pub fn new(title: impl Into<String>, nav: Nav, body: Markup) -> Self {
        Page { title: title.into(), nav, body, refresh_ms: None }
    }

    pub fn refreshing(mut self, every_ms: u64) -> Self {
        self.refresh_ms = Some(every_ms);
        self
    }
}

/// Renders a handler's outcome: the page, or the error page in the same section.
pub fn respond(console: &Console, viewer: &Viewer, nav: Nav, result: Result<Page, UiError>) -> Response {
    match result {
        Ok(page) => render(console, viewer, page, StatusCode::OK),
        Err(e) => error_page(console, viewer, nav, &e),
    }
}

/// The error page: status, code, message and advice.
pub fn error_page(console: &Console, viewer: &Viewer, nav: Nav, e: &UiError) -> Response {
    if e.code == "unauthenticated" && viewer.auth_on {
        return redirect("/login?expired=1");
    }
    let body = html! {
        h1 { "Error: " (e.status.canonical_reason().unwrap_or("error")) }
        (error_summary(e))
    };
    render(console, viewer, Page::new(format!("Error: {}", e.code), nav, body), e.status)
}

/// A card's error, in place (several may show on one page, so no id and no focus).
pub fn error_box(e: &UiError) -> Markup {
    html! {
        div.error-summary role="status" data-code=(e.code) {
            p { strong { (e.message) } }
            @if let Some(advice) = e.advice() { p { (advice) } }
            p.code { "Code " code { (e.code) } " · HTTP " (e.status.as_u16()) }
        }
    }
}

/// The box at the top of a page saying what went wrong (it takes focus: `app.js`).
pub fn error_summary(e: &UiError) -> Markup {
    html! {
        div #error-summary.error-summary role="alert" tabindex="-1" data-code=(e.code) {
            p { strong { (e.message) } }
            @if let Some(advice) = e.advice() { p { (advice) } }
            p.code { "Code " code { (e.code) } " · HTTP " (e.status.as_u16()) }
        }
    }
}

fn render(console: &Console, viewer: &Viewer, page: Page, status: StatusCode) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(&page.title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "cronraft" }
                    nav aria-label="Sections" {
                        ul {
                            @for (nav, id, href, label) in SECTIONS {
                                li { a id=(id) href=(href) aria-current=[(nav == page.nav).then_some("page")] { (label) } }
                            }
                        }
                    }
                    div.who {
                        span #whoami { (viewer.who()) }
                        @if viewer.auth_on {
                            form #logout-form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                (banner(console))
                main #main data-refresh-ms=[page.refresh_ms] {
                    @if let Some(done) = viewer.done.as_deref().and_then(flash_text) {
                        p #flash.flash role="status" { (done) }
                    }
                    (page.body)
                }
                footer { "Times in your browser's zone; hover a time for UTC. " a href="/api/v1/openapi.json" { "REST API" } }
            }
        }
    };
    let mut resp = (status, markup).into_response();
    session::no_store(&mut resp);
    if let Some(c) = &viewer.set_cookie {
        session::set_cookie(&mut resp, c);
    }
    resp
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · cronraft" }
            link rel="stylesheet" href="/static/app.css";
            script src="/static/app.js" defer {}
        }
    }
}

/// A page without navigation (sign-in).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main #main {
                    p.brand { "cronraft" }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// "Node 2 · follower · leader 1 · term 3 · applied 1234": which node rendered the page, from
/// its own Raft metrics.
fn banner(console: &Console) -> Markup {
    let m = console.ctx.raft.metrics().borrow().clone();
    let role = match m.state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "stopped",
    };
    let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
    html! {
        p #node-banner.banner {
            "Node " (m.id) " · " (role)
            @match m.current_leader {
                Some(l) => { " · leader " (l) }
                None => { " · " strong.bad { "no leader" } }
            }
            " · term " (m.current_term) " · applied " (applied)
        }
    }
}

fn flash_text(done: &str) -> Option<&'static str> {
    Some(match done {
        "created" => "Task created.",
        "saved" => "Task saved.",
        "paused" => "Task paused: no new slots fire until it is resumed.",
        "resumed" => "Task resumed.",
        "triggered" => "Run requested.",
        "deleted" => "Task deleted.",
        "stopped" => "Stop requested.",
        "status" => "Executor status set.",
        "removed" => "Removed.",
        "added" => "Node added as a learner.",
        "promoted" => "Node promoted to voter.",
        _ => return None,
    })
}

/// 303 See Other to `to` (after a form: the browser then GETs it).
pub fn redirect(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Inline SVG or other markup built as a string.
pub fn raw(s: String) -> Markup {
    PreEscaped(s)
}
