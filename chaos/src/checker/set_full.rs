//! Set-full: no acknowledged create is lost, and nothing appears that was never (possibly)
//! created.
//!
//! Inputs from the history: `add` operations (key = the element) and, after the heal, one
//! `final_read` per node whose `ok` value is the array of elements that node lists. An element
//! whose `add` was `ok` must be on every node; one whose `add` was `fail` must be on none; an
//! `info` add may or may not be there (counted as recovered or not). A node whose final read did
//! not succeed makes the verdict `Unknown`: absence of evidence is not a pass.

use std::collections::{BTreeMap, BTreeSet};

use super::{pair, CheckResult, Outcome, Verdict};
use crate::history::Event;

pub fn check(events: &[Event]) -> CheckResult {
    let mut result = CheckResult::new("set_full");
    let mut added: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut reads: BTreeMap<u64, Option<BTreeSet<String>>> = BTreeMap::new();
    for op in pair(events) {
        match op.f.as_str() {
            "add" => {
                if let Some(k) = op.key {
                    added.insert(k, op.outcome);
                }
            }
            "final_read" => {
                let node = op.node.unwrap_or(0);
                let set = (op.outcome == Outcome::Ok).then(|| {
                    op.output.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect()
                });
                reads.insert(node, set);
            }
            _ => {}
        }
    }
    let count = |o: Outcome| added.values().filter(|x| **x == o).count() as u64;
    result.count("ok_adds", count(Outcome::Ok));
    result.count("failed_adds", count(Outcome::Fail));
    result.count("indeterminate_adds", count(Outcome::Info));
    result.count("nodes_read", reads.values().filter(|r| r.is_some()).count() as u64);
    if reads.is_empty() {
        result.verdict = Verdict::Unknown;
        result.violations.push("no final read was recorded".into());
        return result;
    }
    let mut recovered = BTreeSet::new();
    for (node, set) in &reads {
        let Some(set) = set else {
            result.violations.push(format!("final read on n{node} did not succeed"));
            if result.verdict == Verdict::Pass {
                result.verdict = Verdict::Unknown;
            }
            continue;
        };
        let lost: Vec<&String> =
            added.iter().filter(|(k, o)| **o == Outcome::Ok && !set.contains(*k)).map(|(k, _)| k).collect();
        if !lost.is_empty() {
            result.count("lost", lost.len() as u64);
            result.violation(format!(
                "n{node} lost {} acknowledged adds, e.g. {:?}",
                lost.len(),
                &lost[..lost.len().min(5)]
            ));
        }
        for k in set {
            match added.get(k) {
                None => result.violation(format!("n{node} lists {k}, which was never added")),
                Some(Outcome::Fail) => result.violation(format!("n{node} lists {k}, whose add definitely failed")),
                Some(Outcome::Info) => {
                    recovered.insert(k.clone());
                }
                Some(Outcome::Ok) => {}
            }
        }
    }
    result.count("recovered_indeterminate", recovered.len() as u64);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testutil::hist;
    use crate::history::Kind::{Fail, Info, Invoke, Ok as Okk};
    use serde_json::json;

    fn adds() -> Vec<(u64, crate::history::Kind, &'static str, &'static str, serde_json::Value, u64, u64)> {
        vec![
            (1, Invoke, "add", "a", json!(null), 1, 0),
            (1, Okk, "add", "a", json!(null), 1, 1),
            (2, Invoke, "add", "b", json!(null), 2, 0),
            (2, Info, "add", "b", json!(null), 2, 1),
            (3, Invoke, "add", "c", json!(null), 3, 0),
            (3, Fail, "add", "c", json!(null), 3, 1),
        ]
    }

    fn with_reads(reads: &[(u64, serde_json::Value)]) -> Vec<Event> {
        let mut rows = adds();
        for (i, (node, v)) in reads.iter().enumerate() {
            rows.push((100 + i as u64, Invoke, "final_read", "", json!(null), *node, 10));
            rows.push((100 + i as u64, if v.is_null() { Info } else { Okk }, "final_read", "", v.clone(), *node, 11));
        }
        hist(&rows)
    }

    #[test]
    fn acknowledged_adds_everywhere_pass_and_info_may_be_present() {
        let res = check(&with_reads(&[(1, json!(["a", "b"])), (2, json!(["a"]))]));
        assert_eq!(res.verdict, Verdict::Pass, "{:?}", res.violations);
        assert_eq!(res.counts["recovered_indeterminate"], 1);
    }

    #[test]
    fn an_acknowledged_add_missing_on_one_node_is_lost() {
        let res = check(&with_reads(&[(1, json!(["a"])), (2, json!([]))]));
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(res.counts["lost"], 1);
        assert!(res.violations[0].contains("n2 lost 1"));
    }

    #[test]
    fn failed_or_unknown_elements_must_not_appear() {
        let res = check(&with_reads(&[(1, json!(["a", "c", "zz"]))]));
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(res.violations.len(), 2, "{:?}", res.violations);
    }

    #[test]
    fn a_missing_final_read_is_unknown_not_pass() {
        assert_eq!(check(&with_reads(&[(1, json!(["a"])), (2, json!(null))])).verdict, Verdict::Unknown);
        assert_eq!(check(&hist(&adds())).verdict, Verdict::Unknown);
    }
}
