//! Execution evidence for the `cron-embedded` workload, whose tasks run on the nodes' own embedded
//! agents rather than on the harness' recording executor, and the check that the runs really
//! landed on every host.
//!
//! Without a recording executor the history has no `deliver` / `run_end` events, so the schedule
//! checkers read the cluster's own account instead: the final execution records (read
//! linearizably after the heal and quiesce) with every attempt's instance, status and span.
//! [`derive`] turns them into the same [`Delivery`] and [`RunSpan`] values the checkers use:
//!
//! - a *delivery* is an attempt that reached its agent and ran or runs (`success`, `running`):
//!   liveness, the pause cut-off, on-schedule slots and one-per-slot read these;
//! - a *run* is every attempt sent to an instance, from its dispatch to its end (an agent's
//!   report, or the leader's timeout when the agent died with its node): no-overlap reads these.
//!
//! This evidence is weaker than the recording executor's in one way, said here so nobody reads
//! more into a pass: `committed_delivery` holds by construction (an attempt is part of its record)
//! and an orphaned command whose node was killed is not seen. It is stronger in another: what it
//! checks is what an operator would see, on the product's own agents across three hosts.
//! [`agents`] adds what only this workload can show: each node's agent ran attempts, and every
//! attempt went to its agent's own host address (a loopback address there is issue 15's bug).

use super::cron_model::{CronHistory, Delivery, RunSpan};
use super::CheckResult;

/// Attempt statuses that mean the agent got the run and ran (or still runs) it.
const RAN: [&str; 2] = ["success", "running"];

fn ns(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
}

/// Fills `h.deliveries` and `h.runs` from the final records' attempts (nothing when the records
/// are missing: the checkers then say so).
pub fn derive(h: &mut CronHistory) {
    let Some(records) = &h.records else { return };
    for rec in records.values().flatten() {
        for run in rec.runs.iter().filter(|r| !r.instance_id.is_empty()) {
            h.runs.push(RunSpan {
                task_id: rec.task_id,
                execution_id: rec.id,
                attempt: run.attempt,
                start_ns: ns(run.dispatched_ms),
                end_ns: run.end_ms.map(ns),
            });
            if !RAN.contains(&run.status.as_str()) {
                continue;
            }
            let fencing = rec.attempts.iter().find(|a| a.0 == run.attempt);
            h.deliveries.push(Delivery {
                execution_id: rec.id,
                attempt: run.attempt,
                task_id: rec.task_id,
                scheduled_ms: rec.scheduled_ms,
                term: fencing.map_or(0, |a| a.1),
                log_index: fencing.map_or(0, |a| a.2),
                duplicate: false,
                time_ns: ns(run.dispatched_ms),
                wall_ms: run.dispatched_ms,
            });
        }
    }
}

/// `embedded_agents`: every node's agent instance ran at least one attempt to success, and every
/// attempt sent to an agent went to that agent's own host (not loopback, not another host).
/// Not applicable (pass, nothing counted) outside `cron-embedded` histories.
pub fn agents(h: &CronHistory) -> CheckResult {
    let mut r = CheckResult::new("embedded_agents");
    let Some(agents) = &h.agents else { return r };
    let Some(records) = &h.records else { return super::schedule::unknown(r, "final execution records missing") };
    let runs: Vec<_> = records.values().flatten().flat_map(|rec| &rec.runs).collect();
    for (instance, host) in agents {
        let mine: Vec<_> = runs.iter().filter(|run| run.instance_id == *instance).collect();
        let ok = mine.iter().filter(|run| run.status == "success").count() as u64;
        r.count(&format!("{instance}_successes"), ok);
        if ok == 0 {
            r.violation(format!("{instance}: no successful attempt on the agent of host {host}"));
        }
        let want = format!("http://{host}:");
        for run in mine.iter().filter(|run| !run.base_url.starts_with(&want)).take(5) {
            r.violation(format!("{instance}: attempt {} sent to {}, not to host {host}", run.attempt, run.base_url));
        }
    }
    for run in runs.iter().filter(|run| !run.instance_id.is_empty() && !agents.contains_key(&run.instance_id)).take(5) {
        r.violation(format!(
            "attempt {} sent to {} ({}): not a node's agent",
            run.attempt, run.instance_id, run.base_url
        ));
    }
    r
}

/// One-per-slot's embedded half: no slot ran to success twice (two successful attempts of one
/// execution, or of two executions of the same slot).
pub fn once_per_slot(h: &CronHistory, r: &mut CheckResult) {
    let Some(records) = &h.records else { return };
    let mut ok: std::collections::BTreeMap<(u64, i64), u64> = Default::default();
    for rec in records.values().flatten().filter(|x| x.trigger != "manual") {
        *ok.entry((rec.task_id, rec.scheduled_ms)).or_default() +=
            rec.runs.iter().filter(|run| run.status == "success").count() as u64;
    }
    for ((task, slot), n) in ok.iter().filter(|(_, n)| **n > 1) {
        r.violation(format!("task {task} slot {slot}: {n} successful attempts"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::cron_model::{AttemptRun, Record};
    use crate::checker::Verdict;

    fn record(id: u64, slot: i64, runs: &[(&str, &str, &str, i64, Option<i64>)]) -> Record {
        Record {
            id,
            task_id: 7,
            scheduled_ms: slot,
            trigger: "schedule".into(),
            status: "success".into(),
            reason: None,
            created_ms: None,
            log_index: Some(10),
            slot_count: 1,
            attempt_count: runs.len() as u64,
            attempts: (1..=runs.len() as u64).map(|a| (a, 2, 10 + a)).collect(),
            runs: runs
                .iter()
                .enumerate()
                .map(|(i, (inst, url, status, from, to))| AttemptRun {
                    attempt: i as u64 + 1,
                    instance_id: inst.to_string(),
                    base_url: url.to_string(),
                    status: status.to_string(),
                    dispatched_ms: *from,
                    end_ms: *to,
                })
                .collect(),
        }
    }

    fn history(records: Vec<Record>) -> CronHistory {
        let agents = [("local-node1", "10.77.0.1"), ("local-node2", "10.77.0.2")];
        let mut h = CronHistory {
            agents: Some(agents.iter().map(|(i, a)| (i.to_string(), a.to_string())).collect()),
            records: Some([(7, records)].into_iter().collect()),
            ..CronHistory::default()
        };
        derive(&mut h);
        h
    }

    #[test]
    fn derives_deliveries_from_attempts_that_ran_and_runs_from_every_sent_attempt() {
        // The first slot's agent died with its node (timeout); the retry ran on the other host.
        let h = history(vec![
            record(
                1,
                1_000,
                &[
                    ("local-node1", "http://10.77.0.1:5", "timeout", 1_000, Some(6_000)),
                    ("local-node2", "http://10.77.0.2:5", "success", 6_000, Some(7_000)),
                ],
            ),
            record(2, 2_000, &[("local-node1", "http://10.77.0.1:6", "running", 8_000, None)]),
            record(3, 3_000, &[("local-node1", "http://10.77.0.1:6", "success", 9_000, Some(9_500))]),
        ]);
        assert_eq!(h.runs.len(), 4);
        assert_eq!(h.deliveries.len(), 3);
        assert_eq!(h.runs[2].end_ns, None);
        assert_eq!((h.deliveries[0].attempt, h.deliveries[0].log_index), (2, 12));
        assert_eq!(h.runs[0].end_ns, Some(6_000_000_000));
        assert_eq!(agents(&h).verdict, Verdict::Pass);
    }

    #[test]
    fn an_agent_that_never_ran_or_was_reached_on_loopback_is_a_violation() {
        // Issue 15: every agent advertised 127.0.0.1; only the leader's own ever ran anything.
        let h = history(vec![
            record(1, 1_000, &[("local-node1", "http://10.77.0.1:5", "success", 1_000, Some(2_000))]),
            record(2, 2_000, &[("local-node2", "http://127.0.0.1:5", "failed", 2_000, Some(2_001))]),
        ]);
        let r = agents(&h);
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(r.violations.iter().any(|v| v.contains("no successful attempt")), "{r:?}");
        assert!(r.violations.iter().any(|v| v.contains("127.0.0.1")), "{r:?}");
    }

    #[test]
    fn two_successful_attempts_of_one_slot_break_once_per_slot() {
        let h = history(vec![
            record(1, 1_000, &[("local-node1", "http://10.77.0.1:5", "success", 1_000, Some(2_000))]),
            record(2, 1_000, &[("local-node2", "http://10.77.0.2:5", "success", 1_000, Some(2_000))]),
        ]);
        let mut r = CheckResult::new("one_per_slot");
        once_per_slot(&h, &mut r);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
    }
}
