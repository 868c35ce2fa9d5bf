//! Chaos smoke for the embedded agents (issue 15): a short Jepsen-style run of the `cron-embedded`
//! workload — the cron workload's tasks run by every node's own embedded agent, each node on a
//! host of its own (a network namespace, 10.77.0.N) — under the `kill` nemesis, which here kills
//! the leader with `kill -9` three times (its agent dies with it). Every checker must pass: one
//! run per slot, the pause cut-off, no overlap, on-schedule slots, liveness after the heal,
//! misfires, convergence, and `embedded_agents` (every host's agent ran attempts, each at its own
//! host's address). The execution evidence is the cluster's final records, as no recording
//! executor sees these runs (`chaos/src/checker/embedded.rs`).
//!
//! One namespace per node needs the harness' self-cleaning sandbox, so the test re-executes its
//! own binary inside it (`unshare --pid --net --mount …`) and runs the scenario there; it needs
//! root, `ip` and `unshare` (`.ci/run` installs them), and fails naming what is missing.

use std::path::PathBuf;
use std::time::Duration;

use cronraft_chaos::checker::Verdict;
use cronraft_chaos::nemesis::{Fault, Target};
use cronraft_chaos::net;
use cronraft_chaos::run::{run, RunConfig};

#[test]
fn leader_kills_with_the_cron_workload_on_the_embedded_agents_of_three_hosts_pass_every_checker() {
    // Phase 1: outside the sandbox, re-execute this test inside it and report its verdict.
    if !net::in_sandbox() {
        if let Err(e) = net::sandbox_supported() {
            panic!("the embedded-agents smoke needs network namespaces and cannot run here: {e}");
        }
        let status = net::reexec_in_sandbox().expect("start the unshare sandbox");
        assert!(status.success(), "the scenario failed inside the sandbox: {status}");
        return;
    }

    // Phase 2: inside; seed 9 kills the leader at 2 s, 7 s and 12 s of a 20 s run.
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = RunConfig {
        nemeses: vec![Fault::Kill],
        workloads: vec!["cron-embedded".into()],
        time_limit: Duration::from_secs(20),
        seed: 9,
        out: dir.path().join("run"),
        unsafe_mode: None,
        bin: PathBuf::from(env!("CARGO_BIN_EXE_cronraft")),
        nodes: 3,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let results = rt.block_on(run(cfg)).expect("the run itself works");

    // Phase 3: every checker passed, the leader was killed, and the checkers had work to do.
    let report = serde_json::to_string_pretty(&results).unwrap();
    assert_eq!(results.verdict, Verdict::Pass, "{report}");
    let leader_kills = results.nemesis_steps.iter().filter(|s| s.fault == Fault::Kill && s.target == Target::Leader);
    assert!(leader_kills.count() >= 1, "no kill -9 of the leader scheduled: {report}");
    let history = std::fs::read_to_string(dir.path().join("run/history.jsonl")).unwrap();
    let nemesis_errors = history.lines().filter(|l| l.contains(r#""process":"nemesis""#) && l.contains(r#""error""#));
    assert_eq!(nemesis_errors.count(), 0, "a fault could not be applied or healed:\n{history}");
    let count = |checker: &str, name: &str| {
        let c = results.checkers.iter().find(|c| c.checker == checker).unwrap_or_else(|| panic!("{checker} ran"));
        c.counts.get(name).copied().unwrap_or(0)
    };
    assert!(count("committed_delivery", "deliveries") > 50, "{report}");
    assert!(count("no_overlap", "runs_checked") > 5, "{report}");
    assert!(count("pause_cutoff", "pauses_checked") > 0, "{report}");
    assert!(count("liveness", "slots_checked") > 3, "{report}");
    for id in 1..=3 {
        assert!(count("embedded_agents", &format!("local-node{id}_successes")) > 5, "{report}");
    }
}
