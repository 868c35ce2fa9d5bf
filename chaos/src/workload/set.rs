//! The set workload: create many tasks with unique names on random nodes (`add`), then, after the
//! heal, list every task from every node (`final_read`). Checked by [`crate::checker::set_full`].

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::{Ctx, Request, YEARLY};
use crate::history::Kind;
use crate::rng::Rng;

const PAGE: u64 = 500;

fn prefix(ctx: &Ctx) -> String {
    format!("set-{}-", ctx.seed)
}

/// One worker: creates uniquely named tasks until `deadline`.
pub async fn worker(ctx: &Ctx, worker: u64, deadline: Instant) {
    let mut rng = Rng::fork(ctx.seed, 2000 + worker);
    let mut pid = ctx.new_pid();
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let name = format!("{}{worker}-{n}", prefix(ctx));
        let node = rng.pick(&ctx.nodes).0;
        let req = Request {
            f: "add",
            key: &name,
            value: Value::Null,
            method: Method::POST,
            path: "/api/v1/tasks".into(),
            body: Some(json!({"name": name, "cron_expression": YEARLY})),
            idempotency_key: Some(format!("add-{name}")),
            timeout: Duration::from_secs(5),
            read_only: false,
        };
        if ctx.op(pid, node, req, |_| Value::Null).await.kind == Kind::Info {
            pid = ctx.new_pid();
        }
        tokio::time::sleep(Duration::from_millis(rng.range(10, 60))).await;
    }
}

/// Lists every set task on every node (linearizable reads, retried until `limit`), recording one
/// `final_read` per attempt; the checker uses the last one per node.
pub async fn final_reads(ctx: &Ctx, limit: Duration) {
    let deadline = Instant::now() + limit;
    for (node, _) in ctx.nodes.clone() {
        let pid = ctx.new_pid();
        loop {
            let ok = read_all(ctx, pid, node).await;
            if ok || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

async fn read_all(ctx: &Ctx, pid: u64, node: u64) -> bool {
    let url = ctx.nodes.iter().find(|(id, _)| *id == node).map(|(_, u)| u.clone()).expect("node");
    let p = crate::history::Process::Client(pid);
    ctx.rec.record(p.clone(), Kind::Invoke, "final_read", None, Value::Null, Some(node), None);
    let mut names = BTreeSet::new();
    let mut page = 1;
    loop {
        let path = format!("/api/v1/tasks?page={page}&page_size={PAGE}&consistency=linearizable");
        let out = crate::ops::send(&url, Duration::from_secs(5), Method::GET, &path, None, None).await;
        if out.kind != Kind::Ok {
            ctx.rec.record(p, Kind::Fail, "final_read", None, Value::Null, Some(node), out.error);
            return false;
        }
        let items = out.body.get("items").and_then(|i| i.as_array()).cloned().unwrap_or_default();
        let pre = prefix(ctx);
        names.extend(
            items.iter().filter_map(|t| t.get("name")?.as_str()).filter(|n| n.starts_with(&pre)).map(String::from),
        );
        if (items.len() as u64) < PAGE {
            break;
        }
        page += 1;
    }
    ctx.rec.record(p, Kind::Ok, "final_read", None, json!(names), Some(node), None);
    true
}
