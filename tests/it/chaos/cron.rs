//! Chaos smoke for the schedule: a short Jepsen-style run of the real binary — three nodes, the
//! `kill` nemesis, the `cron` workload (short-interval tasks run by the harness' recording
//! executor) — must pass every schedule checker: one execution per slot, every delivery backed
//! by a committed record, the pause cut-off, no overlapping sequential/skip runs, on-schedule
//! slots, and liveness after the heal. Like every chaos run it has the machine to itself
//! (`assert_run_passes` holds the tests' gate), so two clusters never compete for the cores.

use cronraft_chaos::nemesis::Fault;

use super::{assert_run_passes, config};

#[test]
fn kill_nemesis_with_the_cron_workload_passes_every_schedule_checker() {
    // Phase 1: a run directory of our own and the binary cargo built for this test.
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(dir.path(), vec![Fault::Kill], &["cron"], 10, 11);

    // Phase 2: the run (cluster, executor, tasks, kills, heal, quiet period, quiesce, final
    // reads), which passes every checker.
    let p = assert_run_passes(cfg);

    // Phase 3: faults happened, and the checkers really had work to do.
    let report = &p.report;
    assert!(!p.results.nemesis_steps.is_empty(), "{report}");
    assert!(p.count("committed_delivery", "deliveries") > 20, "{report}");
    assert!(p.count("no_overlap", "runs_checked") > 5, "{report}");
    assert!(p.count("pause_cutoff", "pauses_checked") > 0, "{report}");
    assert!(p.count("liveness", "slots_checked") > 3, "{report}");
}
