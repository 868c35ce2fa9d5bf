//! Chaos smoke for clock skew: a short Jepsen-style run of the real binary with the `clock`
//! nemesis — every node under libfaketime, one node's wall clock jumping ahead by about 17 s and
//! later back by about 17 s — and the `cron` workload, which must pass every schedule checker: no
//! slot twice (a clock stepping back never re-fires a slot), none off the schedule, none after an
//! acknowledged pause (allowing the slots a clock that ran ahead fired early), and liveness once
//! the clocks are right again.
//!
//! Needs libfaketime, which a fresh machine lacks: ignored by default, with the package in the
//! reason; `.ci/run` installs it and runs it (`cargo test --test it -- --ignored`).

use cronraft_chaos::nemesis::{Detail, Fault};

use super::{assert_run_passes, config};

#[test]
#[ignore = "needs libfaketime (apt-get install libfaketime); .ci/run runs it"]
fn clock_nemesis_with_the_cron_workload_passes_every_schedule_checker() {
    // Phase 1: libfaketime must be there (the run refuses the clock nemesis otherwise).
    assert!(
        cronraft_chaos::cluster::find_libfaketime().is_some(),
        "libfaketime is not installed (apt-get install libfaketime)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    // Seed 9 over 14 s: two bumps, +16.8 s and -16.7 s (executor churn is drawn, never picked).
    let cfg = config(dir.path(), vec![Fault::Clock, Fault::ExecutorChurn], &["cron"], 14, 9);

    // Phase 2: the run, which passes every checker.
    let p = assert_run_passes(cfg);

    // Phase 3: both directions of skew happened, and the checkers had work.
    let report = &p.report;
    let offsets: Vec<i64> = p
        .results
        .nemesis_steps
        .iter()
        .filter_map(|s| match s.detail {
            Some(Detail::Bump { offset_ms } | Detail::Strobe { offset_ms, .. }) => Some(offset_ms),
            _ => None,
        })
        .collect();
    assert!(offsets.iter().any(|o| *o > 0) && offsets.iter().any(|o| *o < 0), "{report}");
    let history = p.history();
    let early = history
        .lines()
        .filter(|l| l.contains(r#""f":"deliver""#))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["value"]["scheduled_ms"].as_i64().unwrap_or(0) > e["wall_ms"].as_i64().unwrap_or(0) + 5_000)
        .count();
    assert!(early > 0, "the forward bump should make the leader fire slots early (if it hit the leader)");
    assert!(p.count("committed_delivery", "deliveries") > 20, "{report}");
    assert!(p.count("liveness", "slots_checked") > 3, "{report}");
}
