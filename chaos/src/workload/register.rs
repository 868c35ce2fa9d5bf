//! The register workload: one task per key; writes are `PUT /api/v1/tasks/{key}` with a
//! `description` carrying a unique value (and a unique `Idempotency-Key`), reads are linearizable
//! `GET`s of that description, each sent to a random node. The task's create is the register's
//! first write. Checked per key by [`crate::checker::linearizable`].

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::{Ctx, Request, YEARLY};
use crate::history::Kind;
use crate::rng::Rng;

const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// Creates the register tasks; returns the keys whose create succeeded.
pub async fn setup(ctx: &Ctx, keys: usize, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut ready = Vec::new();
    for k in 0..keys {
        let key = format!("reg-{}-{k}", ctx.seed);
        let pid = ctx.new_pid();
        loop {
            let req = Request {
                f: "create",
                key: &key,
                value: json!("init"),
                method: Method::POST,
                path: "/api/v1/tasks".into(),
                body: Some(json!({"name": key, "cron_expression": YEARLY, "description": "init"})),
                idempotency_key: Some(format!("create-{key}")),
                timeout: WRITE_TIMEOUT,
                read_only: false,
            };
            let out = ctx.op(pid, ctx.nodes[0].0, req, |_| Value::Null).await;
            if out.kind == Kind::Ok {
                ready.push(key);
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    ready
}

/// One worker: random reads and writes on random keys and nodes until `deadline`.
pub async fn worker(ctx: &Ctx, worker: u64, keys: &[String], deadline: Instant) {
    let mut rng = Rng::fork(ctx.seed, 1000 + worker);
    let mut pid = ctx.new_pid();
    let mut n = 0u64;
    while Instant::now() < deadline && !keys.is_empty() {
        let key = rng.pick(keys).clone();
        let node = rng.pick(&ctx.nodes).0;
        n += 1;
        if rng.chance(50) {
            let value = format!("{pid}-{n}");
            let req = Request {
                f: "write",
                key: &key,
                value: json!(value),
                method: Method::PUT,
                path: format!("/api/v1/tasks/{key}"),
                body: Some(json!({"description": value})),
                idempotency_key: Some(format!("w-{}-{pid}-{n}", ctx.seed)),
                timeout: WRITE_TIMEOUT,
                read_only: false,
            };
            if ctx.op(pid, node, req, |_| Value::Null).await.kind == Kind::Info {
                pid = ctx.new_pid();
            }
        } else {
            let req = Request {
                f: "read",
                key: &key,
                value: Value::Null,
                method: Method::GET,
                path: format!("/api/v1/tasks/{key}?consistency=linearizable"),
                body: None,
                idempotency_key: None,
                timeout: READ_TIMEOUT,
                read_only: true,
            };
            ctx.op(pid, node, req, |b| b.get("description").cloned().unwrap_or(Value::Null)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.range(5, 40))).await;
    }
}
