//! The scheduling promise with real processes: every slot of a task's active life is recorded
//! exactly once (fired, `missed` or `skipped`), across a leader `kill -9`, a paused leader and a
//! full-cluster outage; nothing fires after an acknowledged pause.
//!
//! These tests run for real seconds: a schedule only produces slots as time passes.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{wait_for, Cluster};
use cronraft_api::client::Client;
use cronraft_api::context::Consistency;
use cronraft_api::types::{ExecutionView, TaskInput, TaskView};
use cronraft_raft::model::{ExecutionStatus, Trigger};

const SECOND: i64 = 1_000;
const MISFIRE_THRESHOLD_MS: i64 = cronraft_raft::state::MISFIRE_THRESHOLD_MS;

fn every_second(name: &str, mode: &str, misfire: &str) -> TaskInput {
    let mut t: TaskInput = serde_json::from_value(serde_json::json!({
        "name": name, "cron_expression": "* * * * * *", "execution_mode": mode, "misfire_policy": misfire,
    }))
    .unwrap();
    t.catchup_window_seconds = Some(3600);
    // No executor serves the group: each run waits in `pending` and is retried with a backoff
    // that doubles (1 s, 2 s, 4 s…), so with 12 retries a run stays active for the whole test
    // and the execution modes see it as the run in progress.
    t.executor = Some("nobody".into());
    t.max_retry = Some(12);
    t
}

/// Every record of `task`, oldest slot first.
async fn records(client: &Client, task: u64) -> Vec<ExecutionView> {
    let mut all = Vec::new();
    for page in 1.. {
        let p =
            client.list_executions(Some(&task.to_string()), None, page, 500, Consistency::Linearizable).await.unwrap();
        let n = p.items.len();
        all.extend(p.items);
        if n < 500 {
            break;
        }
    }
    all.sort_by_key(|e| e.scheduled_time);
    all
}

/// The core check: the records cover every whole second after the task's creation up to the
/// last recorded slot, each exactly once, and none lies after `cutoff_ms`. Returns the slots.
fn assert_each_slot_once(task: &TaskView, execs: &[ExecutionView], cutoff_ms: i64) -> Vec<i64> {
    let mut by_slot: BTreeMap<i64, usize> = BTreeMap::new();
    for e in execs.iter().filter(|e| e.trigger != Trigger::Manual) {
        *by_slot.entry(e.scheduled_time.timestamp_millis()).or_default() += 1;
    }
    let dupes: Vec<_> = by_slot.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "task {}: slots recorded twice: {dupes:?}", task.name);
    let slots: Vec<i64> = by_slot.keys().copied().collect();
    let first_expected = (task.created_at.timestamp_millis() / SECOND + 1) * SECOND;
    assert_eq!(slots.first().copied(), Some(first_expected), "task {}: the first slot after creation", task.name);
    for pair in slots.windows(2) {
        assert_eq!(pair[1] - pair[0], SECOND, "task {}: a slot is missing after {}", task.name, pair[0]);
    }
    let last = *slots.last().unwrap();
    assert!(last <= cutoff_ms, "task {}: slot {last} recorded after the pause at {cutoff_ms}", task.name);
    slots
}

async fn create(client: &Client, input: &TaskInput) -> TaskView {
    client.create_task(input, None).await.unwrap()
}

/// Runs the cluster for `secs` seconds of schedule time, polling the cluster meanwhile.
async fn run_for(c: &Cluster, until: Instant) {
    wait_for("schedule time to pass", until.duration_since(Instant::now()) + Duration::from_secs(5), || async {
        let _ = c.any_client().scheduler_status().await;
        (Instant::now() >= until).then_some(())
    })
    .await;
}

/// Pauses every task (the acknowledged cutoff) and returns the time of the last acknowledgement.
async fn pause_all(client: &Client, tasks: &[TaskView]) -> i64 {
    for t in tasks {
        client.pause_task(&t.id.to_string(), None).await.unwrap();
    }
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_slot_once_across_a_leader_kill() {
    let mut c = Cluster::start(3, "").await;
    let client = c.any_client();
    let tasks = vec![
        create(&client, &every_second("par", "parallel", "fire_once")).await,
        create(&client, &every_second("seq", "sequential", "fire_once")).await,
        create(&client, &every_second("skip", "skip", "fire_once")).await,
    ];
    let start = Instant::now();

    // Phase 1: 15 s of normal firing, then kill -9 the leader.
    run_for(&c, start + Duration::from_secs(15)).await;
    let old = c.wait_leader().await;
    c.kill(old);
    let new = c.wait_leader().await;
    assert_ne!(old, new);

    // Phase 2: the new leader fires the slots of the gap and goes on; the old node returns.
    run_for(&c, start + Duration::from_secs(25)).await;
    c.restart(old);
    run_for(&c, start + Duration::from_secs(32)).await;

    // Phase 3: pause everything; check every task's records.
    let client = c.any_client();
    let cutoff = pause_all(&client, &tasks).await;
    for t in &tasks {
        let execs = records(&client, t.id).await;
        let slots = assert_each_slot_once(t, &execs, cutoff);
        assert!(slots.len() >= 28, "task {}: {} slots in 32 s", t.name, slots.len());
        // Slots of the failover gap fired late, but well inside the misfire threshold: none missed.
        for e in &execs {
            assert_ne!(e.status, ExecutionStatus::Missed, "task {}: {e:?}", t.name);
            let lag = e.created_at.timestamp_millis() - e.scheduled_time.timestamp_millis();
            assert!(lag < MISFIRE_THRESHOLD_MS, "task {}: slot fired {lag} ms late", t.name);
        }
    }
    // Modes: `skip` records overlaps as skipped; `sequential` queues (no executor serves them).
    let skip = records(&client, tasks[2].id).await;
    assert_eq!(skip.iter().filter(|e| e.status == ExecutionStatus::Pending).count(), 1);
    let seq = records(&client, tasks[1].id).await;
    assert!(
        seq.iter().filter(|e| e.status == ExecutionStatus::Cancelled).count() >= 20,
        "queued runs cancelled by the pause"
    );

    // Phase 4: nothing fires after the acknowledged pause.
    let counts: Vec<usize> =
        futures::future::join_all(tasks.iter().map(|t| records(&client, t.id))).await.iter().map(Vec::len).collect();
    run_for(&c, Instant::now() + Duration::from_secs(3)).await;
    let later: Vec<usize> =
        futures::future::join_all(tasks.iter().map(|t| records(&client, t.id))).await.iter().map(Vec::len).collect();
    assert_eq!(counts, later);
    c.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_leader_does_not_fire_what_the_new_leader_fired() {
    let c = Cluster::start(3, "").await;
    let task = create(&c.any_client(), &every_second("t", "parallel", "fire_once")).await;
    let start = Instant::now();
    run_for(&c, start + Duration::from_secs(5)).await;

    // Phase 1: SIGSTOP the leader well past the election timeout; the others elect and fire.
    let old = c.wait_leader().await;
    c.nodes[&old].signal(libc::SIGSTOP);
    let others: Vec<u64> = c.running().into_iter().filter(|id| *id != old).collect();
    wait_for("a new leader among the others", Duration::from_secs(30), || async {
        let v = c.view(others[0]).await?;
        v.leader_id.filter(|l| *l != old)
    })
    .await;
    run_for(&c, Instant::now() + Duration::from_secs(3)).await;

    // Phase 2: SIGCONT: the old leader wakes up believing it leads, with fires in its head.
    c.nodes[&old].signal(libc::SIGCONT);
    run_for(&c, Instant::now() + Duration::from_secs(4)).await;

    let client = Client::with_timeout(others.iter().map(|id| c.nodes[id].url()), Duration::from_secs(20));
    let cutoff = pause_all(&client, std::slice::from_ref(&task)).await;
    let execs = records(&client, task.id).await;
    let slots = assert_each_slot_once(&task, &execs, cutoff);
    assert!(slots.len() >= 10, "{} slots", slots.len());
    c.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_cluster_outage_applies_each_misfire_policy() {
    let mut c = Cluster::start(3, "").await;
    let client = c.any_client();
    let tasks = vec![
        create(&client, &every_second("once", "parallel", "fire_once")).await,
        create(&client, &every_second("skip", "parallel", "skip")).await,
        create(&client, &every_second("all", "parallel", "fire_all")).await,
    ];
    run_for(&c, Instant::now() + Duration::from_secs(3)).await;

    // Phase 1: the whole cluster is down for longer than the misfire threshold.
    for id in c.running() {
        c.kill(id);
    }
    let down = Instant::now();
    wait_for("the outage to outlast the misfire threshold", Duration::from_secs(20), || async {
        (down.elapsed() > Duration::from_millis(MISFIRE_THRESHOLD_MS as u64 + 3_000)).then_some(())
    })
    .await;
    for id in [1, 2, 3] {
        c.restart(id);
    }
    c.wait_leader().await;
    run_for(&c, Instant::now() + Duration::from_secs(3)).await;

    // Phase 2: every slot is accounted for exactly once, as its policy says.
    let client = c.any_client();
    let cutoff = pause_all(&client, &tasks).await;
    for t in &tasks {
        let execs = records(&client, t.id).await;
        assert_each_slot_once(t, &execs, cutoff);
        let late = |e: &&ExecutionView| {
            e.created_at.timestamp_millis() - e.scheduled_time.timestamp_millis() > MISFIRE_THRESHOLD_MS
        };
        for e in &execs {
            let misfired = late(&e);
            let as_policy = matches!((e.status, e.trigger), (ExecutionStatus::Missed, _) | (_, Trigger::Catchup));
            assert_eq!(misfired, as_policy, "task {}: {e:?}", t.name);
        }
        let missed = execs.iter().filter(|e| e.status == ExecutionStatus::Missed).count();
        let catchup = execs.iter().filter(|e| e.trigger == Trigger::Catchup).count();
        let misfired = execs.iter().filter(late).count();
        assert!(misfired >= 3, "task {}: the outage produced misfires ({misfired})", t.name);
        match t.name.as_str() {
            "once" => assert_eq!((catchup, missed), (1, misfired - 1), "fire_once: one catch-up, the rest missed"),
            "skip" => assert_eq!((catchup, missed), (0, misfired), "skip: all missed"),
            _ => assert_eq!((catchup, missed), (misfired, 0), "fire_all: all caught up"),
        }
    }
}
