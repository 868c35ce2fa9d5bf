//! Chaos smoke for membership changes and executor churn: a short Jepsen-style run of the real
//! binary in which the leader is removed from the cluster through the admin API and comes back as
//! a wiped, fresh joiner, and the recording executor's primary instance is deregistered while a
//! second instance takes over — with the `register` and `cron` workloads, which must pass every
//! checker, and every node a voter again at the end.

use cronraft_chaos::nemesis::{Churn, Detail, Fault};

use super::{assert_run_passes, config};

#[test]
fn membership_and_executor_churn_with_register_and_cron_pass_every_checker() {
    // Phase 1: seed 8 over 16 s: remove the leader (wipe, rejoin), then deregister the primary.
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(dir.path(), vec![Fault::Membership, Fault::ExecutorChurn], &["register", "cron"], 16, 8);

    // Phase 2: the run, which passes every checker.
    let p = assert_run_passes(cfg);

    // Phase 3: the removal and the churn were applied and healed without error; the spare
    // instance really received work; the checkers had work to do.
    let report = &p.report;
    let steps: Vec<_> = p.results.nemesis_steps.iter().map(|s| (s.fault, s.detail)).collect();
    assert!(steps.contains(&(Fault::Membership, Some(Detail::Rejoin { wipe: true }))), "{report}");
    assert!(steps.contains(&(Fault::ExecutorChurn, Some(Detail::Churn { action: Churn::Deregister }))), "{report}");
    let history = p.history();
    let events: Vec<serde_json::Value> = history.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let nemesis_errors: Vec<_> = events.iter().filter(|e| e["process"] == "nemesis" && !e["error"].is_null()).collect();
    assert!(nemesis_errors.is_empty(), "a fault could not be applied or healed: {nemesis_errors:?}");
    let instances: std::collections::BTreeSet<&str> =
        events.iter().filter(|e| e["f"] == "deliver").filter_map(|e| e["value"]["at"].as_str()).collect();
    assert!(instances.len() >= 2, "deliveries reached only {instances:?}");
    assert!(p.count("linearizable", "ok_reads") > 20, "{report}");
    assert!(p.count("committed_delivery", "deliveries") > 20, "{report}");
    assert!(p.count("liveness", "slots_checked") > 3, "{report}");
}
