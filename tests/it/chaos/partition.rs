//! Chaos smoke for partitions: a short Jepsen-style run of the real binary under the three
//! partition shapes — a node isolated, one-way (a muted node), and the bridge — with the
//! `register` and `cron` workloads, which must pass every checker (linearizability, the six
//! schedule checkers, convergence).
//!
//! Partitions need network namespaces, so the test re-executes this test binary (this one test)
//! inside the harness' self-cleaning sandbox (`unshare --pid --net --mount …`, as `cronraft-chaos
//! run` does) and runs the scenario there; namespaces, rules and nodes vanish with it. It needs
//! root and the tools `net::partitions_supported` names (`.ci/run` installs them), so it is
//! ignored by default with that reason, and fails naming what is missing when run without it.

use cronraft_chaos::nemesis::Fault;
use cronraft_chaos::net;

use super::{assert_run_passes, config};
use crate::common::sandbox;

#[test]
#[ignore = "needs root for network namespaces, and iproute2 and util-linux; .ci/run runs it"]
fn partition_bridge_and_oneway_nemeses_with_register_and_cron_pass_every_checker() {
    // Phase 1: outside the sandbox, re-execute this test inside it and report its verdict.
    if !net::in_sandbox() {
        let name = "partition_bridge_and_oneway_nemeses_with_register_and_cron_pass_every_checker";
        let status = sandbox::reexec(module_path!(), name, net::partitions_supported);
        assert!(status.success(), "the scenario failed inside the sandbox: {status}");
        return;
    }

    // Phase 2: inside; seed 27 schedules an isolated leader, a muted node and a bridge in 20 s.
    let dir = tempfile::tempdir().expect("temp dir");
    let nemeses = vec![Fault::Partition, Fault::PartitionBridge, Fault::PartitionOneway, Fault::Membership];
    let p = assert_run_passes(config(dir.path(), nemeses, &["register", "cron"], 20, 27));

    // Phase 3: every shape was applied without error, ops were checked.
    let report = &p.report;
    for f in [Fault::Partition, Fault::PartitionBridge, Fault::PartitionOneway] {
        assert!(p.results.nemesis_steps.iter().any(|s| s.fault == f), "{f:?} not scheduled: {report}");
    }
    assert_eq!(p.nemesis_errors(), 0, "a fault could not be applied or healed:\n{}", p.history());
    assert!(p.count("linearizable", "ok_reads") > 20, "{report}");
    assert!(p.count("committed_delivery", "deliveries") > 20, "{report}");
    assert!(p.count("liveness", "slots_checked") > 3, "{report}");
}
