//! Chaos smoke for partitions: a short Jepsen-style run of the real binary under the three
//! partition shapes — a node isolated, one-way (a muted node), and the bridge — with the
//! `register` and `cron` workloads, which must pass every checker (linearizability, the six
//! schedule checkers, convergence).
//!
//! Partitions need network namespaces and nftables, so the test re-executes its own binary inside
//! the harness' self-cleaning sandbox (`unshare --pid --net --mount …`, as `cronraft-chaos run`
//! does) and runs the scenario there; namespaces, rules and nodes vanish with it. It needs root and
//! `nft`, `ip`, `unshare` (`.ci/run` installs them); without root it is skipped with a message.

use std::path::PathBuf;
use std::time::Duration;

use cronraft_chaos::checker::Verdict;
use cronraft_chaos::nemesis::Fault;
use cronraft_chaos::net;
use cronraft_chaos::run::{run, RunConfig};

#[test]
fn partition_bridge_and_oneway_nemeses_with_register_and_cron_pass_every_checker() {
    // Phase 1: outside the sandbox, re-execute this test inside it and report its verdict.
    if !net::in_sandbox() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: partitions need root (network namespaces)");
            return;
        }
        net::partitions_supported().expect("root without nft / ip / unshare: install nftables, iproute2, util-linux");
        let status = net::reexec_in_sandbox().expect("start the unshare sandbox");
        assert!(status.success(), "the scenario failed inside the sandbox: {status}");
        return;
    }

    // Phase 2: inside; seed 27 schedules an isolated leader, a muted node and a bridge in 20 s.
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = RunConfig {
        nemeses: vec![Fault::Partition, Fault::PartitionBridge, Fault::PartitionOneway, Fault::Membership],
        workloads: vec!["register".into(), "cron".into()],
        time_limit: Duration::from_secs(20),
        seed: 27,
        out: dir.path().join("run"),
        unsafe_mode: None,
        bin: PathBuf::from(env!("CARGO_BIN_EXE_cronraft")),
        nodes: 3,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let results = rt.block_on(run(cfg)).expect("the run itself works");

    // Phase 3: every checker passed, every shape was applied without error, ops were checked.
    let report = serde_json::to_string_pretty(&results).unwrap();
    assert_eq!(results.verdict, Verdict::Pass, "{report}");
    for f in [Fault::Partition, Fault::PartitionBridge, Fault::PartitionOneway] {
        assert!(results.nemesis_steps.iter().any(|s| s.fault == f), "{f:?} not scheduled: {report}");
    }
    let history = std::fs::read_to_string(dir.path().join("run/history.jsonl")).unwrap();
    let nemesis_errors = history.lines().filter(|l| l.contains(r#""process":"nemesis""#) && l.contains(r#""error""#));
    assert_eq!(nemesis_errors.count(), 0, "a fault could not be applied or healed:\n{history}");
    let count = |checker: &str, name: &str| {
        let c = results.checkers.iter().find(|c| c.checker == checker).unwrap_or_else(|| panic!("{checker} ran"));
        c.counts.get(name).copied().unwrap_or(0)
    };
    assert!(count("linearizable", "ok_reads") > 20, "{report}");
    assert!(count("committed_delivery", "deliveries") > 20, "{report}");
    assert!(count("liveness", "slots_checked") > 3, "{report}");
}
