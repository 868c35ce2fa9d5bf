//! Chaos smoke for the schedule: a short Jepsen-style run of the real binary — three nodes, the
//! `kill` nemesis, the `cron` workload (short-interval tasks run by the harness' recording
//! executor) — must pass every schedule checker: one execution per slot, every delivery backed
//! by a committed record, the pause cut-off, no overlapping sequential/skip runs, on-schedule
//! slots, and liveness after the heal. A separate test binary from `chaos_smoke.rs`, so the two
//! clusters never compete for the CI machine's cores.

use std::path::PathBuf;
use std::time::Duration;

use cronraft_chaos::checker::Verdict;
use cronraft_chaos::nemesis::Fault;
use cronraft_chaos::run::{run, RunConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nemesis_with_the_cron_workload_passes_every_schedule_checker() {
    // Phase 1: a run directory of our own and the binary cargo built for this test.
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = RunConfig {
        nemeses: vec![Fault::Kill],
        workloads: vec!["cron".into()],
        time_limit: Duration::from_secs(10),
        seed: 11,
        out: dir.path().join("run"),
        unsafe_mode: None,
        bin: PathBuf::from(env!("CARGO_BIN_EXE_cronraft")),
        nodes: 3,
    };

    // Phase 2: the run (cluster, executor, tasks, kills, heal, quiet period, quiesce, final reads).
    let results = run(cfg).await.expect("the run itself works");

    // Phase 3: every checker passed, faults happened, and the checkers really had work to do.
    let report = serde_json::to_string_pretty(&results).unwrap();
    assert_eq!(results.verdict, Verdict::Pass, "{report}");
    assert!(!results.nemesis_steps.is_empty(), "{report}");
    let count = |checker: &str, name: &str| {
        let c = results.checkers.iter().find(|c| c.checker == checker).unwrap_or_else(|| panic!("{checker} ran"));
        c.counts.get(name).copied().unwrap_or(0)
    };
    assert!(count("committed_delivery", "deliveries") > 20, "{report}");
    assert!(count("no_overlap", "runs_checked") > 5, "{report}");
    assert!(count("pause_cutoff", "pauses_checked") > 0, "{report}");
    assert!(count("liveness", "slots_checked") > 3, "{report}");
}
