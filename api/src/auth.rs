//! Who may do what: the caller of every request, the permission each route needs, and the
//! middleware that checks one against the other.
//!
//! # How a request is checked
//!
//! [`authorize`] is a route layer of the whole app, outside the forwarding middleware, so it runs
//! on the node that receives a request and, for a write a follower proxies, **again on the
//! leader**: the proxy relays the client's `Authorization` header, never a claimed identity. It
//! removes any [`CALLER_HEADER`] the client sent, finds the caller ([`Caller`]), compares the
//! route's [`Need`] (one table, [`need`]) with what the caller may do, and answers
//! 401 `unauthenticated` or 403 `forbidden` before any body is read. Otherwise it sets
//! [`CALLER_HEADER`] to the caller's name (which [`crate::handler::request`] puts on the write as
//! its author) and the [`Caller`] in the request's extensions, for the handlers that check a
//! token's scope ([`Caller::check_task`], [`Caller::check_group`]).
//!
//! # Callers
//!
//! With auth off (no cluster secret) everyone is [`Caller::Anonymous`] and may do everything, as
//! before issue 17; nodes refuse to listen beyond loopback that way unless `--insecure` is given.
//! With auth on, a request carries `Authorization: Bearer <token>`: the node credential derived
//! from the cluster secret ([`Caller::Cluster`], a node's own calls and the embedded agent), or
//! an API token, found by the hash of what was presented ([`Caller::Token`]).

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use cronraft_raft::cluster_secret::{bearer, ClusterSecret};
use cronraft_raft::model::{token_hash, Role, Token};

use crate::context::Ctx;
use crate::error::{ApiError, ErrorCode};

/// Set by [`authorize`] to the caller's name (a client's value is removed first).
pub const CALLER_HEADER: &str = "x-cronraft-caller";
/// Longest `Authorization` value looked at; anything longer is no token of ours.
pub const AUTHORIZATION_BYTES_MAX: usize = 512;
/// The caller name of a node's own calls.
pub const CLUSTER_CALLER: &str = "cluster";

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone (liveness, readiness, the OpenAPI document).
    Open,
    /// `read`, `operate` or `admin`.
    Read,
    /// `operate` or `admin`.
    Operate,
    /// `executor` or `admin`.
    Executor,
    /// `admin`.
    Admin,
    /// Only another node of the cluster (the node credential).
    Cluster,
}

/// The permission each route needs: one table for the whole API. A route missing here needs
/// `admin` (a new route is closed until someone decides), and a test checks every route of the
/// OpenAPI document is listed.
pub fn need(method: &Method, route: &str) -> Need {
    let Some(path) = route.strip_prefix("/api/v1") else {
        return match route {
            "/health" | "/ready" => Need::Open,
            "/metrics" => Need::Read,
            _ => Need::Admin,
        };
    };
    match (method.as_str(), path) {
        ("GET", "/openapi.json") => Need::Open,
        ("GET", "/cluster/self") | ("POST", "/internal/read-index") => Need::Cluster,
        ("GET", "/cluster/digest") | ("GET", "/backup") | ("GET", "/tokens") | ("GET", "/audit") => Need::Admin,
        ("GET", "/cluster")
        | ("GET", "/schedule/preview")
        | ("GET", "/scheduler/status")
        | ("GET", "/tasks")
        | ("GET", "/tasks/{id}")
        | ("GET", "/tasks/{id}/stats")
        | ("GET", "/stats")
        | ("GET", "/executions")
        | ("GET", "/executions/{id}")
        | ("GET", "/executors")
        | ("GET", "/executors/{id}")
        | ("GET", "/notifications")
        | ("GET", "/notifications/channels")
        | ("GET", "/notifications/channels/{name}")
        | ("GET", "/notifications/rules")
        | ("GET", "/notifications/rules/{id}") => Need::Read,
        ("POST", "/tasks")
        | ("PUT", "/tasks/{id}")
        | ("DELETE", "/tasks/{id}")
        | ("POST", "/tasks/{id}/pause")
        | ("POST", "/tasks/{id}/resume")
        | ("POST", "/tasks/{id}/trigger")
        | ("POST", "/executions/{id}/stop") => Need::Operate,
        ("POST", "/executors/register") | ("POST", "/executions/{id}/callback") => Need::Executor,
        ("POST", "/cluster/nodes")
        | ("POST", "/cluster/nodes/{id}/promote")
        | ("DELETE", "/cluster/nodes/{id}")
        | ("PUT", "/executors/{id}/status")
        | ("DELETE", "/executors/{id}")
        | ("POST", "/tokens")
        | ("DELETE", "/tokens/{name}")
        | ("POST", "/notifications/channels")
        | ("PUT", "/notifications/channels/{name}")
        | ("DELETE", "/notifications/channels/{name}")
        | ("POST", "/notifications/rules")
        | ("PUT", "/notifications/rules/{id}")
        | ("DELETE", "/notifications/rules/{id}") => Need::Admin,
        _ => Need::Admin,
    }
}

/// Who sent a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Auth is off: anyone may do anything.
    Anonymous,
    /// Another node, or this node's embedded agent (the cluster credential).
    Cluster,
    /// An API token.
    Token(Token),
}

impl Caller {
    /// The name writes are attributed to.
    pub fn name(&self) -> &str {
        match self {
            Caller::Anonymous => cronraft_raft::state::ANONYMOUS,
            Caller::Cluster => CLUSTER_CALLER,
            Caller::Token(t) => &t.spec.name,
        }
    }

    /// The caller as the access log names it (never a token's secret).
    pub fn principal(&self) -> crate::access::Principal {
        let role = match self {
            Caller::Anonymous => "anonymous",
            Caller::Cluster => "node",
            Caller::Token(t) => t.spec.role.as_str(),
        };
        crate::access::Principal { name: self.name().to_owned(), role }
    }

    /// Whether the caller may use a route that needs `need`.
    pub fn may(&self, need: Need) -> bool {
        let role = match self {
            Caller::Anonymous | Caller::Cluster => return true,
            Caller::Token(t) => t.spec.role,
        };
        match need {
            Need::Open => true,
            Need::Read => matches!(role, Role::Read | Role::Operate | Role::Admin),
            Need::Operate => matches!(role, Role::Operate | Role::Admin),
            Need::Executor => matches!(role, Role::Executor | Role::Admin),
            Need::Admin => role == Role::Admin,
            Need::Cluster => false,
        }
    }

    /// Whether the caller sees secret task parameters (`operate` and above; not `read`, not `executor`).
    pub fn sees_secrets(&self) -> bool {
        match self {
            Caller::Anonymous | Caller::Cluster => true,
            Caller::Token(t) => matches!(t.spec.role, Role::Operate | Role::Admin),
        }
    }

    /// Refuses a task outside the token's scope (task name prefixes, executor groups).
    pub fn check_task(&self, name: &str, group: &str) -> Result<(), ApiError> {
        match self {
            Caller::Token(t) if !t.spec.scope.covers_task(name, group) => Err(ApiError::new(
                ErrorCode::OutOfScope,
                format!(
                    "token {:?} is limited to {}; task {name:?} (group {group:?}) is outside it",
                    t.spec.name,
                    scope_text(t)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses an executor group outside the token's scope.
    pub fn check_group(&self, group: &str) -> Result<(), ApiError> {
        match self {
            Caller::Token(t) if !t.spec.scope.covers_group(group) => Err(ApiError::new(
                ErrorCode::OutOfScope,
                format!("token {:?} is limited to {}; group {group:?} is outside it", t.spec.name, scope_text(t)),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the caller is a token limited to groups or name prefixes.
    pub fn is_scoped(&self) -> bool {
        matches!(self, Caller::Token(t) if !t.spec.scope.is_unlimited())
    }

    /// Whether the caller is an `executor` token (which may only touch its own group's tasks).
    pub fn is_executor(&self) -> bool {
        matches!(self, Caller::Token(t) if t.spec.role == Role::Executor)
    }
}

fn scope_text(t: &Token) -> String {
    let s = &t.spec.scope;
    let mut parts = Vec::new();
    if !s.groups.is_empty() {
        parts.push(format!("groups {:?}", s.groups));
    }
    if !s.prefixes.is_empty() {
        parts.push(format!("name prefixes {:?}", s.prefixes));
    }
    parts.join(" and ")
}

/// Finds the caller of a request, or says why it has none.
pub fn identify(ctx: &Ctx, authorization: Option<&HeaderValue>) -> Result<Caller, ApiError> {
    let Some(secret) = &ctx.cluster_secret else { return Ok(Caller::Anonymous) };
    identify_with(ctx, secret, authorization)
}

fn identify_with(ctx: &Ctx, secret: &ClusterSecret, authorization: Option<&HeaderValue>) -> Result<Caller, ApiError> {
    let Some(value) = authorization else {
        return Err(unauthenticated("this cluster requires a token: send `Authorization: Bearer <token>`"));
    };
    let presented = match value.to_str().ok().filter(|v| v.len() <= AUTHORIZATION_BYTES_MAX).and_then(bearer) {
        Some(t) => t,
        None => return Err(unauthenticated("the Authorization header is not `Bearer <token>`")),
    };
    if secret.accepts(presented) {
        return Ok(Caller::Cluster);
    }
    match ctx.sm.view().token_by_hash(&token_hash(presented))? {
        Some(token) => Ok(Caller::Token(token)),
        None => Err(unauthenticated("unknown or revoked token")),
    }
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, message)
}

/// The middleware (a route layer of the whole app: it needs the matched route).
pub async fn authorize(Extension(ctx): Extension<Ctx>, mut req: Request, next: Next) -> Response {
    req.headers_mut().remove(CALLER_HEADER);
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
    let need = need(req.method(), &route);
    let caller = if need == Need::Open {
        identify(&ctx, req.headers().get(header::AUTHORIZATION)).unwrap_or(Caller::Anonymous)
    } else {
        match identify(&ctx, req.headers().get(header::AUTHORIZATION)) {
            Ok(c) => c,
            Err(e) => {
                let mut resp = e.into_response();
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return resp;
            }
        }
    };
    if !caller.may(need) {
        let role = match &caller {
            Caller::Token(t) => t.spec.role.as_str(),
            _ => "node",
        };
        let msg = match need {
            Need::Cluster => format!("{} {} is for the cluster's own nodes only", req.method(), route),
            _ => format!(
                "token {:?} has role {role}; {} {} needs {}",
                caller.name(),
                req.method(),
                route,
                need_text(need)
            ),
        };
        let mut resp = ApiError::new(ErrorCode::Forbidden, msg).into_response();
        resp.extensions_mut().insert(caller.principal());
        return resp;
    }
    if let Ok(v) = HeaderValue::from_str(caller.name()) {
        req.headers_mut().insert(CALLER_HEADER, v);
    }
    let principal = caller.principal();
    req.extensions_mut().insert(caller);
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(principal);
    resp
}

fn need_text(need: Need) -> &'static str {
    match need {
        Need::Open => "nothing",
        Need::Read => "read, operate or admin",
        Need::Operate => "operate or admin",
        Need::Executor => "executor or admin",
        Need::Admin | Need::Cluster => "admin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route of the OpenAPI document is in the table on purpose: a route that falls to the
    /// default (`admin`) must be one of the admin routes, not a forgotten one.
    #[test]
    fn every_documented_route_has_a_deliberate_permission() {
        let doc = serde_json::to_value(crate::openapi::openapi()).expect("document");
        let paths = doc["paths"].as_object().expect("paths");
        let admin_on_purpose = [
            ("GET", "/api/v1/cluster/digest"),
            ("GET", "/api/v1/tokens"),
            ("GET", "/api/v1/audit"),
            ("POST", "/api/v1/cluster/nodes"),
            ("POST", "/api/v1/cluster/nodes/{id}/promote"),
            ("DELETE", "/api/v1/cluster/nodes/{id}"),
            ("PUT", "/api/v1/executors/{id}/status"),
            ("DELETE", "/api/v1/executors/{id}"),
            ("POST", "/api/v1/tokens"),
            ("DELETE", "/api/v1/tokens/{name}"),
            ("GET", "/api/v1/backup"),
            ("POST", "/api/v1/notifications/channels"),
            ("PUT", "/api/v1/notifications/channels/{name}"),
            ("DELETE", "/api/v1/notifications/channels/{name}"),
            ("POST", "/api/v1/notifications/rules"),
            ("PUT", "/api/v1/notifications/rules/{id}"),
            ("DELETE", "/api/v1/notifications/rules/{id}"),
        ];
        for (path, ops) in paths {
            for method in ops.as_object().expect("operations").keys() {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
                if need(&m, path) == Need::Admin {
                    assert!(
                        admin_on_purpose.contains(&(m.as_str(), path.as_str())),
                        "{m} {path} falls to the default (admin): list it in `need`"
                    );
                }
            }
        }
    }

    /// The console's reads need no more than `read`.
    #[test]
    fn the_cluster_statistics_need_read() {
        assert_eq!(need(&Method::GET, "/api/v1/stats"), Need::Read);
    }

    #[test]
    fn roles_grant_what_the_issue_says() {
        let token = |role| {
            Caller::Token(Token {
                spec: cronraft_raft::model::TokenSpec {
                    name: "t".into(),
                    role,
                    scope: Default::default(),
                    hash: [0; 32],
                },
                created_at_ms: 0,
                created_by: String::new(),
            })
        };
        let needs = [Need::Open, Need::Read, Need::Operate, Need::Executor, Need::Admin, Need::Cluster];
        let grid = |c: &Caller| needs.iter().map(|n| c.may(*n)).collect::<Vec<_>>();
        assert_eq!(grid(&token(Role::Read)), [true, true, false, false, false, false]);
        assert_eq!(grid(&token(Role::Operate)), [true, true, true, false, false, false]);
        assert_eq!(grid(&token(Role::Executor)), [true, false, false, true, false, false]);
        assert_eq!(grid(&token(Role::Admin)), [true, true, true, true, true, false]);
        assert_eq!(grid(&Caller::Cluster), [true; 6]);
    }
}
