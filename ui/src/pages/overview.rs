//! The overview (`/`): cluster health, the scheduler (fires, fire lag chart, missed slots), runs
//! of the last 24 hours by status, failing tasks, unhealthy executors and the next fires.
//!
//! Each card is its own API read, run concurrently; a card whose read fails shows its error in
//! place (a follower without a leader still shows the cluster card). The scheduler's figures
//! live in the leader's memory, so a follower asks the leader's API for them with the viewer's
//! own token. Every count links to the filtered list it counts. The page refreshes every 10 s.

use axum::extract::State;
use axum::response::Response;
use cronraft_api::types::{
    ClusterStatsView, ClusterView, ExecutorView, LastHourView, MinuteLagView, Page, SchedulerStatusView, TaskView,
    WindowStatsView,
};
use maud::{html, Markup};

use super::or_error;
use crate::chart::{self, Series};
use crate::error::UiError;
use crate::layout::{self, Nav};
use crate::session::Viewer;
use crate::widgets::{badge, empty, time, word};
use crate::{Console, ConsoleRef};

pub async fn page(State(c): State<ConsoleRef>, v: Viewer) -> Response {
    let (cluster, sched, stats, failing, executors, next) = tokio::join!(
        c.backend.get::<ClusterView>(&v, "/cluster"),
        scheduler_status(&c, &v),
        c.backend.get::<ClusterStatsView>(&v, "/stats"),
        c.backend.get::<Page<TaskView>>(&v, "/tasks?last_result=failed,timeout&sort=-updated&page_size=10"),
        c.backend.get::<Page<ExecutorView>>(&v, "/executors?page_size=500"),
        c.backend.get::<Page<TaskView>>(&v, "/tasks?status=active&sort=next_fire&page_size=10"),
    );
    let body = html! {
        h1 { "Overview" }
        div.cards {
            section.card #cluster-health { h2 { "Cluster" } (or_error(cluster.map(|c| cluster_card(&c)))) }
            section.card #scheduler { h2 { "Scheduler" } (or_error(sched.map(|s| scheduler_card(&s, stats.as_ref().map(|s| &s.last_hour).ok())))) }
            section.card #runs-24h { h2 { "Runs, last 24 hours" } (or_error(stats.as_ref().map(|s| runs_card(&s.windows.last_24h)).map_err(Clone::clone))) }
            section.card #failing-tasks { h2 { "Failing tasks" } (or_error(failing.map(|p| failing_card(&p)))) }
            section.card #unhealthy-executors { h2 { "Unhealthy executors" } (or_error(executors.map(|p| executors_card(&p)))) }
            section.card #next-fires { h2 { "Next fires" } (or_error(next.map(|p| next_card(&p)))) }
        }
    };
    layout::respond(&c, &v, Nav::Overview, Ok(layout::Page::new("Overview", Nav::Overview, body).refreshing(10_000)))
}

/// The leader's scheduler status: in-process when this node leads, else from the leader's API
/// with the viewer's own token.
async fn scheduler_status(c: &Console, v: &Viewer) -> Result<SchedulerStatusView, UiError> {
    if c.ctx.is_leader() {
        return c.backend.get(v, "/scheduler/status").await;
    }
    let Some((id, info)) = c.ctx.leader() else {
        return Err(UiError::api(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "no_leader".into(),
            "no leader is known to this node".into(),
        ));
    };
    let url = format!("{}/api/v1/scheduler/status", c.ctx.node_url(&info.http_addr));
    let mut req = c.ctx.peers.get(url).timeout(std::time::Duration::from_secs(3));
    if let Some(t) = v.token() {
        req = req.bearer_auth(t);
    }
    let unreachable = |e: reqwest::Error| {
        UiError::api(
            axum::http::StatusCode::BAD_GATEWAY,
            "leader_unreachable".into(),
            format!("the leader (node {id}) did not answer: {e}"),
        )
    };
    let resp = req.send().await.map_err(unreachable)?;
    if !resp.status().is_success() {
        let status = resp.status();
        return Err(UiError::api(
            status,
            "leader_unreachable".into(),
            format!("the leader (node {id}) answered {status}"),
        ));
    }
    resp.json().await.map_err(unreachable)
}

fn cluster_card(c: &ClusterView) -> Markup {
    html! {
        p { "Leader " @match c.leader_id { Some(l) => strong { "node " (l) }, None => strong.bad { "none" } } " · term " (c.term) }
        div.table-wrap { table {
            caption.visually-hidden { "Nodes" }
            thead { tr { th scope="col" { "Node" } th scope="col" { "Role" } th.num scope="col" { "Applied" } th scope="col" { "Reachable" } } }
            tbody { @for n in &c.nodes {
                tr data-node-id=(n.id) {
                    td { (n.id) }
                    td { (badge(&n.role)) }
                    td.num { (n.applied_index.map(|i| i.to_string()).unwrap_or_else(|| "—".into())) }
                    td { @if n.reachable { (badge("healthy")) } @else { (badge("unreachable")) } }
                }
            } }
        } }
        p { a href="/cluster" { "Cluster details" } }
    }
}

fn scheduler_card(s: &SchedulerStatusView, last_hour: Option<&LastHourView>) -> Markup {
    // Fires in the current minute (the history lists only minutes that had any).
    let now = chrono::Utc::now();
    let last_minute: u64 = s.history.iter().filter(|m| (now - m.minute).num_seconds() < 60).map(|m| m.fires).sum();
    let series = |class, label, pick: fn(&MinuteLagView) -> u64| Series {
        class,
        label,
        points: s.history.iter().map(|m| (m.minute.format("%H:%M UTC").to_string(), pick(m) as f64)).collect(),
    };
    html! {
        dl.props {
            dt { "Runs on" } dd { "node " (s.node_id) @if !s.scheduler_running { " (not running)" } }
            dt { "Tasks with timers" } dd { (s.timers) }
            dt { "Fires, last minute" } dd { (last_minute) }
            @if let Some(w) = last_hour {
                dt { "Fires, last hour" } dd { (w.fires) }
                dt { "Missed slots, last hour" } dd { a href="/executions?status=missed" { (w.missed) } }
            }
            dt { "Fire lag p50 / p99" } dd { (s.fire_lag.p50_ms) " / " (s.fire_lag.p99_ms) " ms (" (s.fire_lag.samples) " fires)" }
            dt { "Running / pending" } dd { a href="/executions?status=running" { (s.running_executions) } " / " a href="/executions?status=pending" { (s.pending_executions) } }
        }
        @if s.history.is_empty() {
            (empty("No fire-lag history yet: the chart fills as the leader fires slots."))
        } @else {
            figure {
                (layout::raw(chart::lines("lag-chart", "Fire lag per minute, last hour (p50 solid, p99 dashed)", "ms", &[
                    series("p50", "p50", |m| m.p50_ms),
                    series("p99", "p99", |m| m.p99_ms),
                ])))
                figcaption { "Fire lag per minute on the leader: p50 (solid) and p99 (dashed), in ms." }
            }
        }
    }
}

fn runs_card(w: &WindowStatsView) -> Markup {
    let rows = [
        ("success", w.success),
        ("failed", w.failed),
        ("timeout", w.timeout),
        ("cancelled", w.cancelled),
        ("skipped", w.skipped),
        ("missed", w.missed),
    ];
    html! {
        p.stat { (w.total) }
        div.table-wrap { table {
            caption.visually-hidden { "Runs by status" }
            tbody { @for (status, n) in rows {
                tr { td { a href={"/executions?status=" (status)} { (badge(status)) } } td.num { (n) } }
            } }
        } }
    }
}

fn failing_card(p: &Page<TaskView>) -> Markup {
    if p.items.is_empty() {
        return empty("No task's latest run failed.");
    }
    html! {
        ul { @for t in &p.items { li { a href={"/tasks/" (t.id)} { (t.name) } } } }
        @if p.total > p.items.len() as u64 { p { a href="/tasks?last_result=failed,timeout" { "All " (p.total) " failing tasks" } } }
    }
}

fn executors_card(p: &Page<ExecutorView>) -> Markup {
    let bad: Vec<&ExecutorView> = p.items.iter().filter(|e| !e.is_healthy).collect();
    if bad.is_empty() {
        return html! { (empty(&format!("All {} executors are healthy.", p.items.len()))) };
    }
    html! {
        ul { @for e in bad { li {
            a href="/executors" { (e.name) " / " (e.instance_id) } " " (badge("unhealthy")) " "
            (badge(&word(&e.status))) " · " (e.health_check_failures) " failed checks · since " (time(e.last_health_check))
        } } }
    }
}

fn next_card(p: &Page<TaskView>) -> Markup {
    let due: Vec<&TaskView> = p.items.iter().filter(|t| t.next_fire_time.is_some()).collect();
    if due.is_empty() {
        return empty("No active task has a next fire.");
    }
    html! {
        ol { @for t in due { li { (time(t.next_fire_time)) " · " a href={"/tasks/" (t.id)} { (t.name) } } } }
    }
}
