//! Chaos smoke with auth and TLS on (issue 17): the same kind of run as `kill.rs` and `cron.rs` —
//! three nodes, the `kill` nemesis, the register and cron workloads — with a cluster secret on
//! every node, and TLS on every listener (certificates from `cronraft certs init`, mTLS on Raft). Every request of the harness then passes the nodes' checks (with the cluster credential),
//! forwarded writes carry it to the leader, Raft RPC and restarts carry the secret, and the
//! recording executor reports with the derived callback tokens. It must pass every checker: auth
//! must cost no guarantee.

use cronraft_chaos::nemesis::Fault;

use super::{assert_run_passes, config};

#[test]
fn kill_nemesis_with_auth_and_tls_on_passes_every_checker() {
    // Phase 1: a run directory of our own, auth and TLS on.
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = cronraft_chaos::run::RunConfig {
        auth: true,
        tls: true,
        ..config(dir.path(), vec![Fault::Kill], &["register", "cron"], 10, 17)
    };

    // Phase 2: the run passes every checker.
    let p = assert_run_passes(cfg);

    // Phase 3: faults happened, the checkers had work, and the nodes really had auth and TLS on.
    let report = &p.report;
    assert!(!p.results.nemesis_steps.is_empty(), "{report}");
    assert!(p.count("committed_delivery", "deliveries") > 10, "{report}");
    assert!(dir.path().join("run/cluster.secret").exists(), "the nodes got a cluster secret");
    let token = dir.path().join("run/nodes/n1/data/admin.token");
    assert!(token.exists(), "node 1 bootstrapped with auth on and wrote the first admin token");
    let listing: Vec<_> = std::fs::read_dir(dir.path().join("run")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(dir.path().join("run/certs/ca.pem").exists(), "the nodes got certificates: {listing:?}");
    let log = std::fs::read_to_string(dir.path().join("run/nodes/n1/node.log")).unwrap_or_default();
    assert!(log.contains("tls=true"), "node 1 served TLS: {log}");
}
