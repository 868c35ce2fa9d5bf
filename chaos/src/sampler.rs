//! The leader sampler: during a run, asks every node every [`INTERVAL`] who it thinks leads
//! (`GET /api/v1/cluster/self`: its state, term and leader) and records each node's view in the
//! history whenever it changes, as `info` events of process `"sampler"`, `f: "leader"`, `node`
//! = the node asked, value `{"leader", "term", "state"}` (`state: "unreachable"` and an `error`
//! when the node did not answer within [`TIMEOUT`]).
//!
//! Why it exists: the history knows which faults were injected but not what the cluster made of
//! them; the timeline (`timeline.rs`) draws these observations as one lane per node, so a
//! reader sees elections, a paused leader still believing it leads, or a node that stayed
//! unreachable. It is deliberately light — one cheap local read per node per half second, only
//! changes recorded — and no checker depends on it (they ignore non-client processes), so a
//! sample lost to a fault costs nothing.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::history::{Kind, Process, Recorder};

/// How often each node is asked.
pub const INTERVAL: Duration = Duration::from_millis(500);
/// How long one answer may take (a paused or dead node does not answer).
pub const TIMEOUT: Duration = Duration::from_millis(400);

/// Starts sampling `nodes` (`(id, base URL)`) into `rec` until the returned task is aborted.
pub fn spawn(nodes: Vec<(u64, String)>, rec: Recorder) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Vec<Option<Value>> = vec![None; nodes.len()];
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut asks = tokio::task::JoinSet::new();
            for (i, (_, url)) in nodes.iter().enumerate() {
                let url = url.clone();
                asks.spawn(async move {
                    (i, crate::ops::send(&url, TIMEOUT, Method::GET, "/api/v1/cluster/self", None, None).await)
                });
            }
            while let Some(Ok((i, out))) = asks.join_next().await {
                let (seen, error) = match out.kind {
                    Kind::Ok => {
                        let b = &out.body;
                        (json!({"leader": b["leader_id"], "term": b["term"], "state": b["state"]}), None)
                    }
                    _ => (json!({"leader": null, "state": "unreachable"}), out.error),
                };
                if last[i].as_ref() != Some(&seen) {
                    let node = Some(nodes[i].0);
                    rec.record(Process::Named("sampler".into()), Kind::Info, "leader", None, seen.clone(), node, error);
                    last[i] = Some(seen);
                }
            }
        }
    })
}
