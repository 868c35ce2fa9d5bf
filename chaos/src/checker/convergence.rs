//! Convergence: after the heal and the quiet period, every node reports the same applied log
//! index and the same state-machine digest (`GET /api/v1/cluster/digest`).
//!
//! The harness records one `digest` operation per node in the final phase (`ok` value
//! `{"applied_index": N, "digest": "..."}`); the last one per node counts. Different digests at
//! the same index are divergent replicas; a node that cannot be read, or that never caught up to
//! the others' index, is a failure of recovery.

use std::collections::BTreeMap;

use super::{pair, CheckResult, Outcome, Verdict};
use crate::history::Event;

pub fn check(events: &[Event]) -> CheckResult {
    let mut result = CheckResult::new("convergence");
    let mut last: BTreeMap<u64, Option<(u64, String)>> = BTreeMap::new();
    for op in pair(events).into_iter().filter(|o| o.f == "digest") {
        let v = (op.outcome == Outcome::Ok)
            .then(|| Some((op.output.get("applied_index")?.as_u64()?, op.output.get("digest")?.as_str()?.to_string())))
            .flatten();
        last.insert(op.node.unwrap_or(0), v);
    }
    result.count("nodes", last.len() as u64);
    if last.is_empty() {
        result.verdict = Verdict::Unknown;
        result.violations.push("no digest was recorded".into());
        return result;
    }
    let mut seen: BTreeMap<(u64, String), Vec<u64>> = BTreeMap::new();
    for (node, v) in &last {
        match v {
            None => result.violation(format!("n{node} did not report its digest")),
            Some(k) => seen.entry(k.clone()).or_default().push(*node),
        }
    }
    if seen.len() > 1 {
        let groups: Vec<String> = seen
            .iter()
            .map(|((i, d), nodes)| format!("{nodes:?} at index {i} digest {}", &d[..d.len().min(12)]))
            .collect();
        result.violation(format!("replicas differ: {}", groups.join(" vs ")));
    }
    if let Some(((i, _), _)) = seen.iter().next() {
        result.count("applied_index", *i);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testutil::hist;
    use crate::history::Kind::{Info, Invoke, Ok as Okk};
    use serde_json::json;

    fn digests(vals: &[(u64, serde_json::Value)]) -> Vec<Event> {
        let mut rows = Vec::new();
        for (i, (node, v)) in vals.iter().enumerate() {
            rows.push((i as u64, Invoke, "digest", "", json!(null), *node, 1));
            rows.push((i as u64, if v.is_null() { Info } else { Okk }, "digest", "", v.clone(), *node, 2));
        }
        hist(&rows)
    }

    #[test]
    fn equal_digests_pass_and_the_last_report_counts() {
        let d = |i: u64, s: &str| json!({"applied_index": i, "digest": s});
        let h = digests(&[(1, d(5, "x")), (1, d(9, "y")), (2, d(9, "y")), (3, d(9, "y"))]);
        assert_eq!(check(&h).verdict, Verdict::Pass);
    }

    #[test]
    fn divergent_or_lagging_or_silent_nodes_fail() {
        let d = |i: u64, s: &str| json!({"applied_index": i, "digest": s});
        assert_eq!(check(&digests(&[(1, d(9, "y")), (2, d(9, "z"))])).verdict, Verdict::Fail);
        assert_eq!(check(&digests(&[(1, d(9, "y")), (2, d(7, "y"))])).verdict, Verdict::Fail);
        assert_eq!(check(&digests(&[(1, d(9, "y")), (2, json!(null))])).verdict, Verdict::Fail);
        assert_eq!(check(&[]).verdict, Verdict::Unknown);
    }
}
