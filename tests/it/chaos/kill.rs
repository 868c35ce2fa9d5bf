//! Chaos smoke: a 15-second Jepsen-style run of the real binary — three nodes, the `kill`
//! nemesis, the `register` and `set` workloads — must pass every checker (linearizability per
//! key, set-full, convergence). The full harness is `cargo run -p cronraft-chaos --release -- run`
//! (see docs/internals/chaos.md); this keeps `cargo test --workspace` honest in under a minute.

use cronraft_chaos::nemesis::Fault;

use super::{assert_run_passes, config};

#[test]
fn kill_nemesis_with_register_and_set_workloads_passes_every_checker() {
    // Phase 1: a run directory of our own and the binary cargo built for this test.
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(dir.path(), vec![Fault::Kill], &["register", "set"], 15, 7);

    // Phase 2: the run (cluster, workloads, kills, heal, final reads, checkers), which passes.
    let p = assert_run_passes(cfg);

    // Phase 3: faults really happened, and ops really were checked.
    let report = &p.report;
    assert!(!p.results.nemesis_steps.is_empty(), "{report}");
    assert!(p.count("linearizable", "ok_reads") > 20, "{report}");
    assert!(p.count("set_full", "ok_adds") > 20, "{report}");
    assert!(dir.path().join("run/history.jsonl").exists() && dir.path().join("run/results.json").exists());
}
