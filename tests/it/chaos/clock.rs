//! Chaos smoke for clock skew: a short Jepsen-style run of the real binary with the `clock`
//! nemesis — every node under libfaketime, one node's wall clock jumping ahead by about 17 s and
//! later back by about 17 s — and the `cron` workload, which must pass every schedule checker: no
//! slot twice (a clock stepping back never re-fires a slot), none off the schedule, none after an
//! acknowledged pause (allowing the slots a clock that ran ahead fired early), and liveness once
//! the clocks are right again. Needs libfaketime (`.ci/run` installs it).

use std::path::PathBuf;
use std::time::Duration;

use cronraft_chaos::checker::Verdict;
use cronraft_chaos::nemesis::{Detail, Fault};
use cronraft_chaos::run::{run, RunConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_nemesis_with_the_cron_workload_passes_every_schedule_checker() {
    // Phase 1: libfaketime must be there (the run refuses the clock nemesis otherwise).
    assert!(
        cronraft_chaos::cluster::find_libfaketime().is_some(),
        "libfaketime is not installed (apt-get install libfaketime)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = RunConfig {
        // Seed 9 over 14 s: two bumps, +16.8 s and -16.7 s (executor churn is drawn, never picked).
        nemeses: vec![Fault::Clock, Fault::ExecutorChurn],
        workloads: vec!["cron".into()],
        time_limit: Duration::from_secs(14),
        seed: 9,
        out: dir.path().join("run"),
        unsafe_mode: None,
        bin: PathBuf::from(env!("CARGO_BIN_EXE_cronraft")),
        nodes: 3,
    };

    // Phase 2: the run.
    let results = run(cfg).await.expect("the run itself works");

    // Phase 3: every checker passed, both directions of skew happened, and the checkers had work.
    let report = serde_json::to_string_pretty(&results).unwrap();
    assert_eq!(results.verdict, Verdict::Pass, "{report}");
    let offsets: Vec<i64> = results
        .nemesis_steps
        .iter()
        .filter_map(|s| match s.detail {
            Some(Detail::Bump { offset_ms } | Detail::Strobe { offset_ms, .. }) => Some(offset_ms),
            _ => None,
        })
        .collect();
    assert!(offsets.iter().any(|o| *o > 0) && offsets.iter().any(|o| *o < 0), "{report}");
    let history = std::fs::read_to_string(dir.path().join("run/history.jsonl")).unwrap();
    let early = history
        .lines()
        .filter(|l| l.contains(r#""f":"deliver""#))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["value"]["scheduled_ms"].as_i64().unwrap_or(0) > e["wall_ms"].as_i64().unwrap_or(0) + 5_000)
        .count();
    assert!(early > 0, "the forward bump should make the leader fire slots early (if it hit the leader)");
    let count = |checker: &str, name: &str| {
        let c = results.checkers.iter().find(|c| c.checker == checker).unwrap_or_else(|| panic!("{checker} ran"));
        c.counts.get(name).copied().unwrap_or(0)
    };
    assert!(count("committed_delivery", "deliveries") > 20, "{report}");
    assert!(count("liveness", "slots_checked") > 3, "{report}");
}
