//! The harness must be able to fail: each of the node's test-only unsafe switches
//! (`CRONRAFT_UNSAFE`) breaks one guarantee, and a short run with it must report the matching
//! violation. A checker that passes a node built to break it proves nothing, so this runs in
//! `cargo test` next to the smokes that must pass.
//!
//! - `dispatch-before-commit`: `/execute` before the fire is proposed → `committed_delivery`.
//! - `ignore-watermark`: apply fires a slot again when a new leader re-lists it → `one_per_slot`.
//! - `local-reads`: followers answer reads from their own state → `linearizable` (under partitions,
//!   so inside the harness' sandbox; needs root: a test of its own, ignored by default with that
//!   reason and run by `.ci/run`).
//!
//! Every run has the machine to itself (`run_alone` holds the tests' gate); the sandboxed test
//! re-executes this binary, running only itself (`common::sandbox`).

use cronraft_chaos::checker::Verdict;
use cronraft_chaos::nemesis::Fault;
use cronraft_chaos::net;
use cronraft_chaos::run::{Results as RunResults, RunConfig};

use super::run_alone;
use crate::common::sandbox;

fn config(dir: &tempfile::TempDir, nemeses: Vec<Fault>, workload: &str, seed: u64, mode: &str) -> RunConfig {
    RunConfig {
        out: dir.path().join(mode),
        unsafe_mode: Some(mode.into()),
        ..super::config(dir.path(), nemeses, &[workload], 12, seed)
    }
}

/// Asserts the run failed and that `checker` is among the failures.
fn assert_caught(results: &RunResults, checker: &str) {
    let report = serde_json::to_string_pretty(results).unwrap();
    assert_eq!(results.verdict, Verdict::Fail, "an unsafe node passed every checker: {report}");
    let c = results.checkers.iter().find(|c| c.checker == checker).unwrap_or_else(|| panic!("{checker} ran: {report}"));
    assert_eq!(c.verdict, Verdict::Fail, "{checker} missed the violation: {report}");
    assert!(!c.violations.is_empty(), "{checker} failed without naming a violation: {report}");
}

#[test]
fn every_unsafe_mode_is_reported_by_its_checker() {
    let dir = tempfile::tempdir().expect("temp dir");

    // Phase 1: a leader that talks to executors before commit delivers runs no record backs.
    let results = run_alone(config(&dir, vec![Fault::Kill], "cron", 5, "dispatch-before-commit"));
    assert_caught(&results, "committed_delivery");

    // Phase 2: without the watermark check, the slots a killed leader had fired are fired again
    // by the next one.
    let results = run_alone(config(&dir, vec![Fault::Kill], "cron", 1, "ignore-watermark"));
    assert_caught(&results, "one_per_slot");
}

#[test]
#[ignore = "needs root for network namespaces, and iproute2 and util-linux; .ci/run runs it"]
fn local_reads_are_reported_by_the_linearizability_checker() {
    // Outside the sandbox: re-execute this test inside it (partitions need network namespaces).
    if !net::in_sandbox() {
        let name = "local_reads_are_reported_by_the_linearizability_checker";
        let status = sandbox::reexec(module_path!(), name, net::partitions_supported);
        assert!(status.success(), "local-reads was not caught inside the sandbox: {status}");
        return;
    }
    // Inside the sandbox: stale follower reads under partitions.
    // A stale read shows only if a client reads, on the cut-off node, a key that the
    // majority wrote meanwhile, and clients stuck on the cut-off node's writes read less.
    // In 12 s that is likely, not certain (8 of 9 runs of seed 3 here), so a second seed
    // (6, also caught) gets its chance before the test calls the checker blind. Both must
    // miss for the test to fail.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut results = run_alone(config(&dir, vec![Fault::Partition], "register", 3, "local-reads"));
    if results.verdict == Verdict::Pass {
        eprintln!("local-reads not caught with seed 3; trying seed 6");
        let dir = tempfile::tempdir().expect("temp dir");
        results = run_alone(config(&dir, vec![Fault::Partition], "register", 6, "local-reads"));
    }
    assert_caught(&results, "linearizable");
}
