//! Workloads: logical client processes that issue REST operations against random nodes and record
//! each one as `invoke` + completion. A process whose write ended `info` is retired and continues
//! under a fresh process id (its old operation may still take effect at any time).

pub mod cron;
pub mod cron_embedded;
pub mod register;
pub mod set;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::history::{Kind, Process, Recorder};
use crate::ops;

/// A task schedule that never fires during a run (midnight on January 1st): workload tasks are
/// data, not jobs, so the scheduler adds no log entries of its own.
pub const YEARLY: &str = "0 0 0 1 1 *";

/// What every worker shares.
pub struct Ctx {
    /// `(node id, base URL)`; addresses survive restarts.
    pub nodes: Vec<(u64, String)>,
    pub rec: Recorder,
    pub seed: u64,
    next_pid: AtomicU64,
}

/// One request of a workload, as recorded.
pub struct Request<'a> {
    pub f: &'a str,
    pub key: &'a str,
    /// Recorded as the invoke's value (e.g. the value written).
    pub value: Value,
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    pub idempotency_key: Option<String>,
    pub timeout: Duration,
    /// Reads have no effect: anything but `ok` is recorded as `fail`.
    pub read_only: bool,
}

impl Ctx {
    pub fn new(nodes: Vec<(u64, String)>, rec: Recorder, seed: u64) -> Ctx {
        Ctx { nodes, rec, seed, next_pid: AtomicU64::new(0) }
    }

    /// A fresh logical process id.
    pub fn new_pid(&self) -> u64 {
        self.next_pid.fetch_add(1, Ordering::Relaxed)
    }

    /// Records the invoke, sends the request to `node`, records and returns the completion.
    pub async fn op(
        &self,
        pid: u64,
        node: u64,
        req: Request<'_>,
        result_value: impl Fn(&Value) -> Value,
    ) -> ops::Outcome {
        let url = self.nodes.iter().find(|(id, _)| *id == node).map(|(_, u)| u.clone()).expect("known node");
        let p = Process::Client(pid);
        self.rec.record(p.clone(), Kind::Invoke, req.f, Some(req.key), req.value, Some(node), None);
        let mut out =
            ops::send(&url, req.timeout, req.method, &req.path, req.body.as_ref(), req.idempotency_key.as_deref())
                .await;
        if req.read_only && out.kind == Kind::Info {
            out.kind = Kind::Fail;
        }
        let v = if out.kind == Kind::Ok { result_value(&out.body) } else { Value::Null };
        self.rec.record(p, out.kind, req.f, Some(req.key), v, Some(node), out.error.clone());
        out
    }
}
