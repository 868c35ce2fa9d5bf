//! Offline checkers over a recorded history, and the pairing of `invoke` events with their
//! completions that they share.
//!
//! Every checker returns a [`CheckResult`]: a verdict, counts, and human-readable violations.
//! `Unknown` means the checker could not decide (search budget exhausted, missing final reads):
//! it never counts as a pass.

pub mod convergence;
pub mod cron_model;
pub mod embedded;
pub mod linearizable;
pub mod misfire;
pub mod schedule;
pub mod set_full;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::history::{Event, Kind, Process};

/// A checker's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Unknown,
}

/// What a checker found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    pub checker: String,
    pub verdict: Verdict,
    pub counts: BTreeMap<String, u64>,
    /// At most a few dozen, most important first.
    pub violations: Vec<String>,
}

impl CheckResult {
    pub fn new(checker: &str) -> CheckResult {
        CheckResult { checker: checker.into(), verdict: Verdict::Pass, counts: BTreeMap::new(), violations: Vec::new() }
    }

    pub fn violation(&mut self, msg: String) {
        self.verdict = Verdict::Fail;
        if self.violations.len() < 50 {
            self.violations.push(msg);
        }
    }

    pub fn count(&mut self, name: &str, n: u64) {
        *self.counts.entry(name.into()).or_default() += n;
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail,
    /// Indeterminate, including an invoke that never completed.
    Info,
}

/// An invoke joined with its completion.
#[derive(Debug, Clone)]
pub struct Op {
    pub process: Process,
    pub f: String,
    pub key: Option<String>,
    pub node: Option<u64>,
    /// The invoke's value (e.g. the value written).
    pub input: Value,
    /// The completion's value (e.g. the value read).
    pub output: Value,
    pub outcome: Outcome,
    pub call_ns: u64,
    /// `None` for indeterminate operations: they may take effect at any time after the call.
    pub ret_ns: Option<u64>,
}

/// Joins each client `invoke` with the next completion of the same process. Nemesis events are
/// skipped. An invoke with no completion is `Info`.
pub fn pair(events: &[Event]) -> Vec<Op> {
    let mut open: HashMap<Process, usize> = HashMap::new();
    let mut ops: Vec<Op> = Vec::new();
    for e in events {
        if !matches!(e.process, Process::Client(_)) {
            continue;
        }
        match e.kind {
            Kind::Invoke => {
                open.insert(e.process.clone(), ops.len());
                ops.push(Op {
                    process: e.process.clone(),
                    f: e.f.clone(),
                    key: e.key.clone(),
                    node: e.node,
                    input: e.value.clone(),
                    output: Value::Null,
                    outcome: Outcome::Info,
                    call_ns: e.time_ns,
                    ret_ns: None,
                });
            }
            Kind::Ok | Kind::Fail | Kind::Info => {
                let Some(i) = open.remove(&e.process) else { continue };
                let op = &mut ops[i];
                op.output = e.value.clone();
                op.outcome = match e.kind {
                    Kind::Ok => Outcome::Ok,
                    Kind::Fail => Outcome::Fail,
                    _ => Outcome::Info,
                };
                op.ret_ns = (op.outcome != Outcome::Info).then_some(e.time_ns);
            }
            Kind::Start | Kind::End => {}
        }
    }
    ops
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Builders for hand-made histories.
    use super::*;

    /// Builds events from `(process, kind, f, key, value, node, time)` tuples.
    pub fn hist(rows: &[(u64, Kind, &str, &str, Value, u64, u64)]) -> Vec<Event> {
        rows.iter()
            .enumerate()
            .map(|(i, (p, kind, f, key, value, node, t))| Event {
                index: i as u64,
                time_ns: *t,
                wall_ms: 0,
                process: Process::Client(*p),
                kind: *kind,
                f: f.to_string(),
                key: (!key.is_empty()).then(|| key.to_string()),
                value: value.clone(),
                node: Some(*node),
                error: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::hist;
    use super::*;
    use serde_json::json;

    #[test]
    fn pairs_by_process_and_treats_unfinished_as_info() {
        let h = hist(&[
            (1, Kind::Invoke, "write", "k", json!("a"), 1, 10),
            (2, Kind::Invoke, "read", "k", json!(null), 2, 11),
            (1, Kind::Ok, "write", "k", json!(null), 1, 20),
            (2, Kind::Fail, "read", "k", json!(null), 2, 21),
            (3, Kind::Invoke, "write", "k", json!("b"), 3, 30),
        ]);
        let ops = pair(&h);
        assert_eq!(ops.len(), 3);
        assert_eq!((ops[0].outcome, ops[0].ret_ns), (Outcome::Ok, Some(20)));
        assert_eq!(ops[1].outcome, Outcome::Fail);
        assert_eq!((ops[2].outcome, ops[2].ret_ns), (Outcome::Info, None));
    }
}
