//! The harness must be able to fail: each of the node's test-only unsafe switches
//! (`CRONRAFT_UNSAFE`) breaks one guarantee, and a short run with it must report the matching
//! violation. A checker that passes a node built to break it proves nothing, so this runs in
//! `cargo test` next to the smokes that must pass.
//!
//! - `dispatch-before-commit`: `/execute` before the fire is proposed → `committed_delivery`.
//! - `ignore-watermark`: apply fires a slot again when a new leader re-lists it → `one_per_slot`.
//! - `local-reads`: followers answer reads from their own state → `linearizable` (under partitions,
//!   so inside the harness' sandbox; needs root, skipped with a message otherwise).
//!
//! One test function runs the scenarios one after another, so two clusters never share the
//! machine's cores; the sandboxed part re-executes this binary (`net::reexec_in_sandbox`).

use std::path::PathBuf;
use std::time::Duration;

use cronraft_chaos::checker::Verdict;
use cronraft_chaos::nemesis::Fault;
use cronraft_chaos::net;
use cronraft_chaos::run::{run, Results as RunResults, RunConfig};

fn config(dir: &tempfile::TempDir, nemeses: Vec<Fault>, workload: &str, seed: u64, mode: &str) -> RunConfig {
    RunConfig {
        nemeses,
        workloads: vec![workload.into()],
        time_limit: Duration::from_secs(12),
        seed,
        out: dir.path().join(mode),
        unsafe_mode: Some(mode.into()),
        bin: PathBuf::from(env!("CARGO_BIN_EXE_cronraft")),
        nodes: 3,
    }
}

fn run_blocking(cfg: RunConfig) -> RunResults {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(run(cfg)).expect("the run itself works")
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
    if net::in_sandbox() {
        // Phase 3 (inside the sandbox): stale follower reads under partitions.
        // A stale read shows only if a client reads, on the cut-off node, a key that the
        // majority wrote meanwhile, and clients stuck on the cut-off node's writes read less.
        // In 12 s that is likely, not certain (8 of 9 runs of seed 3 here), so a second seed
        // (6, also caught) gets its chance before the test calls the checker blind. Both must
        // miss for the test to fail.
        let dir = tempfile::tempdir().expect("temp dir");
        let mut results = run_blocking(config(&dir, vec![Fault::Partition], "register", 3, "local-reads"));
        if results.verdict == Verdict::Pass {
            eprintln!("local-reads not caught with seed 3; trying seed 6");
            let dir = tempfile::tempdir().expect("temp dir");
            results = run_blocking(config(&dir, vec![Fault::Partition], "register", 6, "local-reads"));
        }
        assert_caught(&results, "linearizable");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");

    // Phase 1: a leader that talks to executors before commit delivers runs no record backs.
    let results = run_blocking(config(&dir, vec![Fault::Kill], "cron", 5, "dispatch-before-commit"));
    assert_caught(&results, "committed_delivery");

    // Phase 2: without the watermark check, the slots a killed leader had fired are fired again
    // by the next one.
    let results = run_blocking(config(&dir, vec![Fault::Kill], "cron", 1, "ignore-watermark"));
    assert_caught(&results, "one_per_slot");

    // Phase 3 needs network namespaces: re-execute this test inside the sandbox.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped local-reads: partitions need root (network namespaces)");
        return;
    }
    net::partitions_supported().expect("root without nft / ip / unshare: install nftables, iproute2, util-linux");
    let status = net::reexec_in_sandbox().expect("start the unshare sandbox");
    assert!(status.success(), "local-reads was not caught inside the sandbox: {status}");
}
