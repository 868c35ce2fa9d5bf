//! Cluster behaviour with real `cronraft` processes: formation, any-node service, leader loss,
//! catch-up (by log and by snapshot), membership changes, and full restarts.

use crate::common;

use std::time::{Duration, Instant};

use common::{task, wait_for, Cluster, SMALL_SNAPSHOTS};
use cronraft_api::context::Consistency;
use cronraft_api::types::AddNodeInput;

/// Forming by `--join`, then: a write sent to a follower is forwarded and acknowledged, and a
/// linearizable read on the other follower sees it at once.
#[tokio::test(flavor = "multi_thread")]
async fn join_forms_a_cluster_and_any_node_serves() {
    let c = Cluster::start(3, "").await;
    let leader = c.wait_leader().await;
    let followers: Vec<u64> = c.running().into_iter().filter(|id| *id != leader).collect();

    // Phase 1: the view shows one leader and two followers, with indexes from each node.
    let view = c.view(followers[0]).await.expect("cluster view");
    let roles: Vec<&str> = view.nodes.iter().map(|n| n.role.as_str()).collect();
    assert_eq!(roles.iter().filter(|r| **r == "leader").count(), 1, "{roles:?}");
    assert_eq!(roles.iter().filter(|r| **r == "follower").count(), 2, "{roles:?}");
    assert!(view.nodes.iter().all(|n| n.reachable && n.applied_index.is_some()));

    // Phase 2: write on follower A, read linearizably on follower B: no waiting allowed.
    let created = c.client(followers[0]).create_task(&task("written-on-follower"), Some("k-1")).await.unwrap();
    let read = c.client(followers[1]).get_task("written-on-follower", Consistency::Linearizable).await.unwrap();
    assert_eq!(read.id, created.id);

    // Phase 3: the same Idempotency-Key through the third node returns the same task, once.
    let again = c.client(leader).create_task(&task("written-on-follower"), Some("k-1")).await.unwrap();
    assert_eq!(again.id, created.id);
    let listed = c.client(followers[1]).list_tasks(None, 1, 100, Consistency::Linearizable).await.unwrap();
    assert_eq!(listed.total, 1);

    // Phase 4: every replica converges to the same state.
    c.wait_converged().await;
}

/// `kill -9` of the leader: a new leader is elected and writes go through a survivor within a
/// bounded time; the killed node restarts and catches up.
#[tokio::test(flavor = "multi_thread")]
async fn leader_kill_elects_a_new_leader_and_the_old_one_catches_up() {
    let mut c = Cluster::start(3, "").await;
    let old = c.wait_leader().await;
    for i in 0..5 {
        c.any_client().create_task(&task(&format!("before-{i}")), None).await.unwrap();
    }

    // Phase 1: kill the leader; a survivor accepts a write within 10 s (election ~1 s).
    c.kill(old);
    let survivor = c.running()[0];
    let started = Instant::now();
    c.client(survivor).create_task(&task("after-kill"), Some("after-kill")).await.expect("write through a survivor");
    let gap = started.elapsed();
    assert!(gap < Duration::from_secs(10), "write took {gap:?} after the leader died");
    let new = c.wait_leader().await;
    assert_ne!(new, old);

    // Phase 2: writes while the old leader is down, then restart it: it catches up.
    for i in 0..5 {
        c.any_client().create_task(&task(&format!("during-{i}")), None).await.unwrap();
    }
    c.restart(old);
    c.wait_converged().await;
    let there = c.client(old).list_tasks(None, 1, 100, Consistency::Local).await.unwrap();
    assert_eq!(there.total, 11, "the restarted node has every task");
}

/// A fourth node joins after the leader purged its early log: it can only catch up from a
/// snapshot, and it does.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_node_catches_up_from_a_snapshot_after_purge() {
    let mut c = Cluster::start(3, SMALL_SNAPSHOTS).await;
    let leader = c.wait_leader().await;
    let client = c.client(leader);
    for i in 0..120 {
        client.create_task(&task(&format!("t{i}")), None).await.unwrap();
    }
    // Phase 1: the leader has snapshotted and purged the start of its log.
    let purged = wait_for("leader to purge its log", Duration::from_secs(30), || async {
        c.metric(leader, "cronraft_raft_purged_index").await.filter(|p| *p > 10.0)
    })
    .await;

    // Phase 2: node 4 joins; entries up to `purged` no longer exist anywhere as log, so only a
    // snapshot can give it the early tasks.
    let join = c.nodes[&leader].url();
    c.spawn(4, Some(&join), None);
    c.wait_voters(4).await;
    c.wait_converged().await;
    let snap = c.metric(4, "cronraft_raft_snapshot_index").await.unwrap_or(0.0);
    assert!(snap >= purged, "node 4 installed a snapshot ({snap}) covering the purged log ({purged})");
    let there = c.client(4).list_tasks(None, 1, 500, Consistency::Local).await.unwrap();
    assert_eq!(there.total, 120);
}

/// Membership admin: remove a follower, remove the leader, refuse the last voter, and report
/// unknown nodes and concurrent changes clearly.
#[tokio::test(flavor = "multi_thread")]
async fn membership_remove_promote_and_refusals() {
    let mut c = Cluster::start(3, "").await;
    let leader = c.wait_leader().await;
    let followers: Vec<u64> = c.running().into_iter().filter(|id| *id != leader).collect();

    // Phase 1: refusals with codes.
    let any = c.any_client();
    assert_eq!(any.remove_node(42).await.unwrap_err().code(), Some("node_not_found"));
    assert_eq!(any.promote_node(followers[0]).await.unwrap_err().code(), Some("already_voter"));
    assert_eq!(any.promote_node(42).await.unwrap_err().code(), Some("node_not_found"));

    // Phase 2: concurrent changes: one at a time, the rest get a clear 409.
    let adds = (100..108u64).map(|id| {
        let client = c.any_client();
        async move {
            let input = AddNodeInput {
                id,
                http_addr: format!("127.0.0.1:{}", 9 + id),
                raft_addr: format!("127.0.0.1:{}", 10 + id),
            };
            client.add_node(&input).await
        }
    });
    let results = futures::future::join_all(adds).await;
    let busy =
        results.iter().filter(|r| matches!(r, Err(e) if e.code() == Some("membership_change_in_progress"))).count();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert!(busy >= 1 && ok >= 1 && busy + ok == results.len(), "{results:?}");
    // The unreachable learners are not caught up, so promotion is refused.
    let added = (100..108u64).find(|id| results[(*id - 100) as usize].is_ok()).unwrap();
    assert_eq!(any.promote_node(added).await.unwrap_err().code(), Some("learner_behind"));
    for id in 100..108u64 {
        if results[(id - 100) as usize].is_ok() {
            any.remove_node(id).await.expect("remove learner");
        }
    }

    // Phase 3: remove a follower; the cluster keeps working with two voters.
    any.remove_node(followers[1]).await.unwrap();
    c.kill(followers[1]);
    c.wait_voters(2).await;
    c.any_client().create_task(&task("two-voters"), None).await.unwrap();

    // Phase 4: remove the leader itself; the remaining node leads alone.
    c.client(followers[0]).remove_node(leader).await.unwrap();
    let alone = wait_for("the remaining node to lead", Duration::from_secs(30), || async {
        c.view(followers[0]).await.filter(|v| v.leader_id == Some(followers[0]) && v.nodes.len() == 1)
    })
    .await;
    assert_eq!(alone.nodes[0].id, followers[0]);
    c.kill(leader);
    c.client(followers[0]).create_task(&task("one-voter"), None).await.unwrap();

    // Phase 5: the last voter cannot be removed.
    let err = c.client(followers[0]).remove_node(followers[0]).await.unwrap_err();
    assert_eq!(err.code(), Some("last_voter"));
}

/// Every acknowledged write survives `kill -9` of the whole cluster and a restart.
///
/// Regression: the restarted leader resumed its old term without a new entry, so the last
/// acknowledged write stayed uncommitted and invisible (fixed in `LogStore::read_vote`).
#[tokio::test(flavor = "multi_thread")]
async fn full_cluster_restart_keeps_every_acknowledged_task() {
    let mut c = Cluster::start(3, "").await;
    // Phase 1: concurrent writes through all three nodes; remember what was acknowledged.
    let writers = c.running().into_iter().map(|id| {
        let client = c.client(id);
        async move {
            let mut acked = Vec::new();
            for i in 0..15 {
                let name = format!("n{id}-{i}");
                if client.create_task(&task(&name), None).await.is_ok() {
                    acked.push(name);
                }
            }
            acked
        }
    });
    let acked: Vec<String> = futures::future::join_all(writers).await.into_iter().flatten().collect();
    assert_eq!(acked.len(), 45);

    // Phase 2: kill -9 everything at once, then restart everything.
    for id in c.running() {
        c.kill(id);
    }
    for id in [1, 2, 3] {
        c.restart(id);
    }
    c.wait_leader().await;

    // Phase 3: every acknowledged task is there, on every node.
    c.wait_converged().await;
    for id in c.running() {
        let page = c.client(id).list_tasks(None, 1, 500, Consistency::Linearizable).await.unwrap();
        let names: Vec<&str> = page.items.iter().map(|t| t.name.as_str()).collect();
        for name in &acked {
            assert!(names.contains(&name.as_str()), "node {id} lost acknowledged task {name}");
        }
    }
}

/// Graceful stop (SIGTERM) exits 0 and a restarted single node serves its data again.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_gracefully_and_restart_keeps_data() {
    let mut c = Cluster::start(1, "").await;
    c.client(1).create_task(&task("survives"), None).await.unwrap();
    let status = c.stop(1);
    assert!(status.success(), "exit status {status:?}");
    c.restart(1);
    c.wait_leader().await;
    let t = c.client(1).get_task("survives", Consistency::Linearizable).await.unwrap();
    assert_eq!(t.name, "survives");
}

/// Regression (issue "Three real hosts"): every embedded agent registered `127.0.0.1:<port>`,
/// so on three machines only the leader's own agent could be reached. Three nodes on three
/// loopback "hosts" (127.0.0.2, 127.0.0.3, and the host name `localhost`) must each register
/// their agent at their own host, and the leader must find all three healthy.
#[tokio::test(flavor = "multi_thread")]
async fn each_embedded_agent_registers_its_own_host_and_the_leader_reaches_all() {
    let mut c = Cluster::new("[executors]\nhealth_check_interval_ms = 300\nhealth_check_timeout_ms = 500\n");
    c.agent = true;
    c.spawn(1, None, Some(("127.0.0.2:0".into(), "127.0.0.2:0".into())));
    let join = c.nodes[&1].url();
    c.spawn(2, Some(&join), Some(("127.0.0.3:0".into(), "127.0.0.3:0".into())));
    c.spawn(3, Some(&join), Some(("localhost:0".into(), "localhost:0".into())));
    c.wait_voters(3).await;

    // Phase 1: the membership carries each node's own host; a host name stays a name.
    let view = c.view(1).await.expect("cluster view");
    let http_of = |id: u64| view.nodes.iter().find(|n| n.id == id).map(|n| n.http_addr.clone()).unwrap();
    assert!(http_of(1).starts_with("127.0.0.2:") && http_of(2).starts_with("127.0.0.3:"), "{view:?}");
    assert!(http_of(3).starts_with("localhost:"), "a host name is advertised as the name: {view:?}");

    // Phase 2: three agents, each at its node's host, all healthy as seen by the leader.
    let client = c.client(1);
    let executors = wait_for("three healthy embedded agents", Duration::from_secs(30), || async {
        let list = client.list_executors(Some("local"), 1, 10, Consistency::Linearizable).await.ok()?;
        (list.items.len() == 3 && list.items.iter().all(|e| e.is_healthy)).then_some(list.items)
    })
    .await;
    for (id, host) in [(1, "http://127.0.0.2:"), (2, "http://127.0.0.3:"), (3, "http://localhost:")] {
        let e = executors.iter().find(|e| e.instance_id == format!("local-node{id}")).expect("agent of each node");
        assert!(e.base_url.starts_with(host), "node {id}'s agent registered {}", e.base_url);
    }

    // Phase 3: the data directory is private (0700) and so are the files in it (0600).
    use std::os::unix::fs::PermissionsExt;
    let data = c.root().join("node1").join("data");
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
    let db = data.join("sled").join("db");
    assert_eq!(std::fs::metadata(&db).unwrap().permissions().mode() & 0o777, 0o600, "{}", db.display());
}
