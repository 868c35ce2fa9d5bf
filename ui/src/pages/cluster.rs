//! The cluster (`/cluster`): members with their roles, indexes, lag behind the leader and
//! reachability; adding a node (as a learner), promoting a learner, removing a node — with a
//! confirmation page that warns when the removal would leave too few reachable voters for a
//! quorum. Membership changes are the API's admin writes.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Form;
use cronraft_api::types::{ClusterView, MembershipChangeView, NodeView};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

use super::{number, GuardForm, Submit};
use crate::error::UiError;
use crate::layout::{self, error_summary, Nav};
use crate::session::Viewer;
use crate::widgets::{badge, described_by, field, form_guard};
use crate::ConsoleRef;

pub async fn page(State(c): State<ConsoleRef>, v: Viewer) -> Response {
    let result =
        c.backend.get::<ClusterView>(&v, "/cluster").await.map(|cl| render(&v, &cl, &AddForm::default(), None));
    layout::respond(&c, &v, Nav::Cluster, result)
}

fn is_voter(n: &NodeView) -> bool {
    n.role != "learner"
}

fn render(v: &Viewer, c: &ClusterView, add: &AddForm, error: Option<&UiError>) -> layout::Page {
    let leader_last = c.nodes.iter().find(|n| Some(n.id) == c.leader_id).and_then(|n| n.last_log_index);
    let voters = c.nodes.iter().filter(|n| is_voter(n)).count();
    let reachable = c.nodes.iter().filter(|n| is_voter(n) && n.reachable).count();
    let body = html! {
        h1 { "Cluster" }
        @if let Some(e) = error { (error_summary(e)) }
        p {
            "Leader " @match c.leader_id { Some(l) => strong { "node " (l) }, None => strong.bad { "none" } }
            " · term " (c.term) " · " (voters) " voters (" (reachable) " reachable, quorum " (voters / 2 + 1) ")"
            @if let Some(id) = &c.cluster_id { " · cluster " code { (id) } }
        }
        @if reachable < voters / 2 + 1 { p.warning { "Fewer voters are reachable than a quorum needs: writes and linearizable reads wait." } }
        div.table-wrap { table #nodes.stack {
            caption.visually-hidden { "Members" }
            thead { tr {
                th scope="col" { "Node" } th scope="col" { "Role" } th.num scope="col" { "Applied" } th.num scope="col" { "Lag" }
                th scope="col" { "Reachable" } th.hide-narrow scope="col" { "Addresses" } th scope="col" { "" }
            } }
            tbody { @for n in &c.nodes { (row(v, n, leader_last)) } }
        } }
        @if v.may(Method::POST, "/cluster/nodes") { (add_form(v, add, error)) }
    };
    layout::Page::new("Cluster", Nav::Cluster, body).refreshing(10_000)
}

fn row(v: &Viewer, n: &NodeView, leader_last: Option<u64>) -> Markup {
    let lag = match (leader_last, n.applied_index) {
        (Some(l), Some(a)) => l.saturating_sub(a).to_string(),
        _ => "—".into(),
    };
    html! {
        tr data-node-id=(n.id) {
            td data-label="Node" { (n.id) }
            td data-label="Role" { (badge(&n.role)) }
            td.num data-label="Applied" { (n.applied_index.map(|i| i.to_string()).unwrap_or_else(|| "—".into())) }
            td.num data-label="Lag" { (lag) }
            td data-label="Reachable" { @if n.reachable { (badge("healthy")) } @else { (badge("unreachable")) } }
            td.hide-narrow data-label="Addresses" { "API " code { (n.http_addr) } br; "Raft " code { (n.raft_addr) } }
            td {
                @if n.role == "learner" && v.may(Method::POST, "/cluster/nodes/{id}/promote") {
                    form.promote-form.inline method="post" action={"/cluster/nodes/" (n.id) "/promote"} {
                        (form_guard(v)) button.secondary type="submit" { "Promote" }
                    }
                    " "
                }
                @if v.may(Method::DELETE, "/cluster/nodes/{id}") { a.remove-link href={"/cluster/nodes/" (n.id) "/remove"} { "Remove…" } }
            }
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct AddForm {
    csrf: String,
    request_id: String,
    id: String,
    http_addr: String,
    raft_addr: String,
}

fn add_form(v: &Viewer, f: &AddForm, error: Option<&UiError>) -> Markup {
    let at = error.and_then(|e| e.field(&["id", "http_addr", "raft_addr"]));
    let err = |name: &str| (at == Some(name)).then(|| error.map(|e| e.message.as_str())).flatten();
    let input = |id: &'static str, label: &str, hint: &str, value: &str| {
        field(
            id,
            label,
            Some(hint),
            err(id),
            html! {
                input id=(id) name=(id) type="text" value=(value) required aria-invalid=[err(id).map(|_| "true")] aria-describedby=[described_by(id, true, err(id).is_some())];
            },
        )
    };
    html! {
        h2 { "Add a node" }
        p { "Start the new node with " code { "cronraft serve --join <this cluster>" } " and it adds itself; or add a running node here. It joins as a learner: promote it once it has caught up." }
        form #add-node-form method="post" action="/cluster/nodes" {
            (form_guard(v))
            (input("id", "Node id", "A number not used by any member.", &f.id))
            (input("http_addr", "API address", "host:port of its REST API.", &f.http_addr))
            (input("raft_addr", "Raft address", "host:port of its Raft listener.", &f.raft_addr))
            button #add-node type="submit" { "Add as learner" }
        }
    }
}

/// POST `/cluster/nodes`: add a learner.
pub async fn add(State(c): State<ConsoleRef>, v: Viewer, headers: HeaderMap, Form(f): Form<AddForm>) -> Response {
    if let Err(e) = v.check_form(&headers, &f.csrf) {
        return layout::error_page(&c, &v, Nav::Cluster, &e);
    }
    let sent = match number::<u64>("id", &f.id) {
        Ok(id) => {
            let body = json!({ "id": id, "http_addr": f.http_addr.trim(), "raft_addr": f.raft_addr.trim() });
            c.backend.send::<MembershipChangeView>(&v, Method::POST, "/cluster/nodes", Some(body), &f.request_id).await
        }
        Err(e) => Err(e),
    };
    match sent {
        Ok(_) => layout::redirect("/cluster?done=added"),
        Err(e) => match c.backend.get::<ClusterView>(&v, "/cluster").await {
            Ok(cl) => {
                let mut resp = layout::respond(&c, &v, Nav::Cluster, Ok(render(&v, &cl, &f, Some(&e))));
                *resp.status_mut() = e.status;
                resp
            }
            Err(_) => layout::error_page(&c, &v, Nav::Cluster, &e),
        },
    }
}

/// POST `/cluster/nodes/{id}/promote`.
pub async fn promote(
    State(c): State<ConsoleRef>,
    v: Viewer,
    Path(id): Path<u64>,
    headers: HeaderMap,
    Form(f): Form<GuardForm>,
) -> Response {
    let path = format!("/cluster/nodes/{id}/promote");
    let submit =
        Submit { nav: Nav::Cluster, method: Method::POST, path: &path, body: None, then: "/cluster?done=promoted" };
    submit.send(&c, &v, &headers, &f.csrf, &f.request_id).await
}

/// Whether removing `id` leaves fewer reachable voters than the new quorum.
fn loses_quorum(c: &ClusterView, id: u64) -> bool {
    let remaining: Vec<&NodeView> = c.nodes.iter().filter(|n| is_voter(n) && n.id != id).collect();
    let reachable = remaining.iter().filter(|n| n.reachable).count();
    remaining.is_empty() || reachable < remaining.len() / 2 + 1
}

/// GET `/cluster/nodes/{id}/remove`: the confirmation, with the quorum warning.
pub async fn remove_page(State(c): State<ConsoleRef>, v: Viewer, Path(id): Path<u64>) -> Response {
    let result = c.backend.get::<ClusterView>(&v, "/cluster").await.and_then(|cl| {
        let Some(n) = cl.nodes.iter().find(|n| n.id == id) else {
            return Err(UiError::not_found(format!("node {id} is not a member")));
        };
        let voters = cl.nodes.iter().filter(|n| is_voter(n)).count();
        let body = html! {
            h1 { "Remove node " (id) "?" }
            p { "Node " (id) " (" (n.role) ", " code { (n.http_addr) } ") leaves the cluster. Stop its process afterwards; its data directory cannot rejoin as it is." }
            @if loses_quorum(&cl, id) {
                p #quorum-warning.warning role="alert" {
                    strong { "This removal would lose quorum: " }
                    "of the " (voters.saturating_sub(usize::from(is_voter(n)))) " voters that would remain, too few are reachable to form a majority. The cluster would stop accepting writes until they are back."
                }
            } @else if is_voter(n) && voters <= 3 {
                p.warning { "After the removal " (voters - 1) " voter(s) remain: the cluster then tolerates " ((voters - 2) / 2) " failed node(s) instead of " ((voters - 1) / 2) "." }
            }
            form #remove-form method="post" action={"/cluster/nodes/" (id) "/remove"} {
                (form_guard(&v))
                div.actions { button #confirm-remove.danger type="submit" { "Remove node " (id) } a href="/cluster" { "Cancel" } }
            }
        };
        Ok(layout::Page::new(format!("Remove node {id}"), Nav::Cluster, body))
    });
    layout::respond(&c, &v, Nav::Cluster, result)
}

pub async fn remove(
    State(c): State<ConsoleRef>,
    v: Viewer,
    Path(id): Path<u64>,
    headers: HeaderMap,
    Form(f): Form<GuardForm>,
) -> Response {
    let path = format!("/cluster/nodes/{id}");
    let submit =
        Submit { nav: Nav::Cluster, method: Method::DELETE, path: &path, body: None, then: "/cluster?done=removed" };
    submit.send(&c, &v, &headers, &f.csrf, &f.request_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u64, role: &str, reachable: bool) -> NodeView {
        NodeView {
            id,
            http_addr: String::new(),
            raft_addr: String::new(),
            role: role.into(),
            last_log_index: None,
            applied_index: None,
            reachable,
        }
    }

    #[test]
    fn removing_a_voter_warns_when_the_rest_cannot_form_a_majority() {
        let c = ClusterView {
            cluster_id: None,
            leader_id: Some(1),
            term: 2,
            nodes: vec![node(1, "leader", true), node(2, "follower", true), node(3, "follower", false)],
        };
        assert!(!loses_quorum(&c, 3), "1 and 2 remain, both reachable");
        assert!(loses_quorum(&c, 2), "1 and 3 remain, 3 unreachable: 1 of 2 is no majority");
        let c = ClusterView {
            cluster_id: None,
            leader_id: Some(1),
            term: 2,
            nodes: vec![node(1, "leader", true), node(4, "learner", false)],
        };
        assert!(!loses_quorum(&c, 4), "a learner is not a voter");
    }
}
