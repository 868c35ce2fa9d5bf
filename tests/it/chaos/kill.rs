//! Chaos smoke: a 15-second Jepsen-style run of the real binary — three nodes, the `kill`
//! nemesis, the `register` and `set` workloads — must pass every checker (linearizability per
//! key, set-full, convergence). The full harness is `cargo run -p cronraft-chaos --release -- run`
//! (see docs/internals/chaos.md); this keeps `cargo test --workspace` honest in under a minute.

use std::path::PathBuf;
use std::time::Duration;

use cronraft_chaos::checker::Verdict;
use cronraft_chaos::nemesis::Fault;
use cronraft_chaos::run::{run, RunConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nemesis_with_register_and_set_workloads_passes_every_checker() {
    // Phase 1: a run directory of our own and the binary cargo built for this test.
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = RunConfig {
        nemeses: vec![Fault::Kill],
        workloads: vec!["register".into(), "set".into()],
        time_limit: Duration::from_secs(15),
        seed: 7,
        out: dir.path().join("run"),
        unsafe_mode: None,
        bin: PathBuf::from(env!("CARGO_BIN_EXE_cronraft")),
        nodes: 3,
    };

    // Phase 2: the run (cluster, workloads, kills, heal, final reads, checkers).
    let results = run(cfg).await.expect("the run itself works");

    // Phase 3: every checker passed, faults really happened, and ops really were checked.
    let report = serde_json::to_string_pretty(&results).unwrap();
    assert_eq!(results.verdict, Verdict::Pass, "{report}");
    assert!(!results.nemesis_steps.is_empty(), "{report}");
    let lin = results.checkers.iter().find(|c| c.checker == "linearizable").expect("linearizable checker");
    assert!(lin.counts.get("ok_reads").copied().unwrap_or(0) > 20, "{report}");
    let set = results.checkers.iter().find(|c| c.checker == "set_full").expect("set checker");
    assert!(set.counts.get("ok_adds").copied().unwrap_or(0) > 20, "{report}");
    assert!(dir.path().join("run/history.jsonl").exists() && dir.path().join("run/results.json").exists());
}
