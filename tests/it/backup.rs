//! Backup, restore and disaster recovery with real processes and the real commands (issue 19,
//! points 3 and 4): `cronraft backup` from a running cluster, `cronraft restore` into a new
//! three-node cluster, and `cronraft recover --force-new-cluster` after two of three nodes are
//! gone for good. What they must keep is the scheduling promise: every slot of every task is
//! recorded once (fired, missed or skipped), before and after.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::slots::{self, records, run_for};
use common::{wait_for, Cluster};
use cronraft_api::client::Client;
use cronraft_api::types::{ExecutionView, TaskInput, TaskView};
use cronraft_raft::model::Trigger;
use serde_json::Value;

const SECOND: i64 = 1_000;

/// [`slots::every_second`] with a catch-up window of an hour.
fn every_second(name: &str) -> TaskInput {
    let mut t = slots::every_second(name);
    t.catchup_window_seconds = Some(3600);
    t
}

/// Runs the `cronraft` binary; panics with its output unless it succeeds.
fn cronraft(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_cronraft")).args(args).output().expect("run cronraft");
    assert!(
        out.status.success(),
        "cronraft {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `cronraft backup --json` from `url` into `file`; the summary.
fn backup(url: &str, file: &Path) -> Value {
    let out = cronraft(&["backup", "--node", url, "--out", file.to_str().unwrap(), "--json"]);
    serde_json::from_slice(&out.stdout).expect("backup summary")
}

/// Every whole second after the task's creation up to its last recorded slot is recorded
/// exactly once (any status); none after `cutoff_ms`. Returns the slots.
fn assert_each_slot_once(task: &TaskView, execs: &BTreeMap<u64, ExecutionView>, cutoff_ms: i64) -> Vec<i64> {
    let mut by_slot: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for e in execs.values().filter(|e| e.trigger != Trigger::Manual) {
        by_slot.entry(e.scheduled_time.timestamp_millis()).or_default().push(e.id);
    }
    let dupes: Vec<_> = by_slot.iter().filter(|(_, ids)| ids.len() > 1).collect();
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

/// Pauses every task; the time of the last acknowledgement.
async fn pause_all(client: &Client, tasks: &[TaskView]) -> i64 {
    for t in tasks {
        client.pause_task(&t.id.to_string(), None).await.unwrap();
    }
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restored_into_a_new_cluster_keeps_ids_history_and_watermarks_and_fires_no_slot_twice() {
    let source = Cluster::start(3, "").await;
    let client = source.any_client();
    let mut tasks = Vec::new();
    for name in ["backup-a", "backup-b"] {
        tasks.push(client.create_task(&every_second(name), None).await.unwrap());
    }
    let dir = tempfile::tempdir().unwrap();

    // Phase 1: an online backup from a follower while the tasks fire every second. What the
    // source held just before it is in it (a backup is a linearizable read).
    run_for(&source, Duration::from_secs(4)).await;
    let mut before: BTreeMap<u64, BTreeMap<u64, ExecutionView>> = BTreeMap::new();
    for t in &tasks {
        before.insert(t.id, records(&client, t.id).await);
    }
    let leader = source.wait_leader().await;
    let follower = *source.nodes.keys().find(|id| **id != leader).unwrap();
    let online = dir.path().join("online.backup");
    let summary = backup(&source.nodes[&follower].url(), &online);
    let point = summary["header"]["applied_index"].as_u64().unwrap();
    assert!(point > 0 && summary["trailer"]["pairs"].as_u64().unwrap() > 10, "{summary}");
    assert!(!dir.path().join("online.backup.partial").exists(), "the partial file is renamed");
    let mode = std::fs::metadata(&online).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions())).unwrap();
    assert_eq!(mode & 0o077, 0, "a backup holds token hashes: only its owner may read it");

    // Phase 2: the tasks fire on in the source after the backup.
    run_for(&source, Duration::from_secs(2)).await;

    // Phase 3: quiesced (tasks paused, nothing applying), a backup's state digest is the
    // source's `/cluster/digest` at the same index: a backup is the state, byte for byte.
    pause_all(&client, &tasks).await;
    source.wait_converged().await;
    let quiet = dir.path().join("quiet.backup");
    let (summary2, digest) = wait_for("a backup and a digest at one index", Duration::from_secs(30), || async {
        let s = backup(&source.nodes[&leader].url(), &quiet);
        let d = source.client(leader).digest().await.ok()?;
        (s["header"]["applied_index"].as_u64() == Some(d.applied_index)).then_some((s, d))
    })
    .await;
    assert_eq!(summary2["trailer"]["state_digest"].as_str(), Some(digest.digest.as_str()));
    assert_eq!(summary2["trailer"]["data_digest"].as_str(), Some(digest.data_digest.as_str()));

    // Phase 4: bad input is refused with a clear error and leaves nothing behind: a cut file,
    // and a directory that already holds data.
    let mut restored = Cluster::new("");
    let data_dir = restored.root().join("node1").join("data");
    let cut = dir.path().join("cut.backup");
    let bytes = std::fs::read(&online).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let refused = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_cronraft")).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let (data, cut_path) = (data_dir.to_str().unwrap(), cut.to_str().unwrap());
    let err = refused(&["restore", "--from", cut_path, "--node-id", "1", "--data-dir", data]);
    assert!(err.contains("damaged or incomplete"), "{err}");
    assert!(!data_dir.exists(), "a failed restore leaves nothing");
    let err =
        refused(&["restore", "--from", cut_path, "--node-id", "1", "--data-dir", source.root().to_str().unwrap()]);
    assert!(err.contains("is not empty"), "{err}");

    // Phase 5: restore the online backup into node 1 of a new cluster; it checks the file and
    // reads its data digest back from disk.
    let out = cronraft(&[
        "restore",
        "--from",
        online.to_str().unwrap(),
        "--node-id",
        "1",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--json",
    ]);
    let rs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rs["data_digest"], summary["trailer"]["data_digest"], "{rs}");

    // Phase 6: the restored node starts (on other ports than it was restored with: it corrects
    // its own addresses once it leads), two fresh nodes join it and catch up by snapshot.
    restored.spawn(1, None, None);
    let url1 = restored.nodes[&1].url();
    restored.spawn(2, Some(&url1), None);
    restored.spawn(3, Some(&url1), None);
    restored.wait_voters(3).await;
    let view = restored.view(1).await.unwrap();
    for n in &view.nodes {
        assert_eq!(format!("http://{}", n.http_addr), restored.nodes[&n.id].url(), "node {}'s address", n.id);
    }
    let applied = view.nodes.iter().find(|n| n.id == 1).and_then(|n| n.applied_index).unwrap();
    assert!(applied > point, "the new cluster's log goes on from the backup's index");

    // Phase 7: the tasks run on in the new cluster; then every slot is recorded once, the
    // restored records are the source's (same ids, same slots), and nothing restored fired again.
    run_for(&restored, Duration::from_secs(3)).await;
    let rclient = restored.any_client();
    let cutoff = pause_all(&rclient, &tasks).await;
    for t in &tasks {
        let after = records(&rclient, t.id).await;
        assert_each_slot_once(t, &after, cutoff);
        for (id, old) in &before[&t.id] {
            let e = after.get(id).unwrap_or_else(|| panic!("task {}: execution {id} was not restored", t.name));
            assert_eq!((old.task_id, old.scheduled_time), (e.task_id, e.scheduled_time), "execution {id}");
        }
        assert!(after.len() > before[&t.id].len(), "task {}: runs after the restore", t.name);
    }
    restored.wait_converged().await;

    // Phase 8: the new cluster has a new identity, known to the nodes that joined it, and a
    // node of the source cluster is refused by it (a vote in any term would otherwise count).
    let source_id = source.view(leader).await.unwrap().cluster_id.expect("the source cluster is named");
    let new_id = rs["cluster_id"].as_str().unwrap().to_string();
    assert_ne!(new_id, source_id, "a restore names a new cluster");
    for id in [1, 2, 3] {
        let url = format!("{}/api/v1/cluster/self", restored.nodes[&id].url());
        let known: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        assert_eq!(known["cluster_id"].as_str(), Some(new_id.as_str()), "node {id}: {known}");
    }
    let resp = reqwest::Client::new()
        .post(format!("http://{}/raft/vote", restored.nodes[&2].raft))
        .header(cronraft_raft::cluster_identity::CLUSTER_HEADER, source_id.as_str())
        .body(Vec::<u8>::new())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409, "{}", resp.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn after_losing_two_of_three_nodes_recover_makes_the_survivor_a_cluster_that_new_nodes_join() {
    let mut c = Cluster::start(3, "").await;
    let client = c.any_client();
    let mut tasks = Vec::new();
    for name in ["dr-a", "dr-b"] {
        tasks.push(client.create_task(&every_second(name), None).await.unwrap());
    }

    // Phase 1: the tasks fire; then the leader and one follower die for good.
    run_for(&c, Duration::from_secs(4)).await;
    let leader = c.wait_leader().await;
    let survivor = *c.nodes.keys().find(|id| **id != leader).unwrap();
    let other = *c.nodes.keys().find(|id| **id != leader && **id != survivor).unwrap();
    c.kill(leader);
    c.kill(other);

    // Phase 2: without a majority the survivor cannot write.
    let lone = c.client(survivor);
    let refused = lone.create_task(&every_second("dr-refused"), None).await;
    assert!(refused.is_err(), "a write without a majority: {refused:?}");

    // Phase 3: recover refuses without the flag, then makes the stopped survivor a one-node
    // cluster with its whole log.
    c.stop(survivor);
    let data_dir = c.root().join(format!("node{survivor}")).join("data");
    let (id, dir) = (survivor.to_string(), data_dir.to_str().unwrap().to_string());
    let without = Command::new(env!("CARGO_BIN_EXE_cronraft"))
        .args(["recover", "--node-id", &id, "--data-dir", &dir])
        .output()
        .unwrap();
    assert!(!without.status.success());
    assert!(String::from_utf8_lossy(&without.stderr).contains("--force-new-cluster"));
    let out = cronraft(&["recover", "--force-new-cluster", "--node-id", &id, "--data-dir", &dir, "--json"]);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["old_voters"].as_array().map(Vec::len), Some(3), "{summary}");

    // Phase 4: it starts as the leader of one voter; two fresh nodes (new ids) join it.
    c.restart(survivor);
    c.nodes.remove(&leader);
    c.nodes.remove(&other);
    assert_eq!(c.wait_voters(1).await, survivor);
    let url = c.nodes[&survivor].url();
    c.spawn(4, Some(&url), None);
    c.spawn(5, Some(&url), None);
    c.wait_voters(3).await;

    // Phase 5: writes work again; the tasks run on with every slot accounted for, the outage's
    // slots fired late or recorded missed, none twice.
    let client = c.any_client();
    client.create_task(&every_second("dr-after"), None).await.unwrap();
    run_for(&c, Duration::from_secs(3)).await;
    let cutoff = pause_all(&client, &tasks).await;
    for t in &tasks {
        let execs = records(&client, t.id).await;
        let slots = assert_each_slot_once(t, &execs, cutoff);
        assert!(slots.len() >= 8, "task {}: {} slots", t.name, slots.len());
    }
    c.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_leader_writes_scheduled_backups_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("[backup]\ndir = \"{}\"\ninterval_s = 1\nkeep = 2\n", dir.path().display());
    let c = Cluster::start(3, &config).await;
    let client = c.any_client();

    // Phase 1: the state changes between backups; the leader writes one a second and keeps two.
    let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let files = wait_for("three scheduled backups, two kept", Duration::from_secs(60), || {
        let (client, seen, dir) = (client.clone(), &seen, dir.path().to_path_buf());
        async move {
            let n = seen.lock().unwrap().len();
            let _ = client.create_task(&common::task(&format!("sched-{n}")), None).await;
            let names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".backup"))
                .collect();
            let mut seen = seen.lock().unwrap();
            seen.extend(names.iter().cloned());
            (seen.len() >= 3 && names.len() == 2).then_some(names)
        }
    })
    .await;

    // Phase 2: each kept file is a whole backup, private, with the index in its name.
    for name in &files {
        let path = dir.path().join(name);
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o077, 0, "{name}");
        let summary =
            cronraft_raft::store::backup::read_backup(std::fs::File::open(&path).unwrap(), |_, _| Ok(())).unwrap();
        assert!(name.ends_with(&format!("-{}.backup", summary.header.applied_index)), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_backup_of_one_node_is_refused_while_the_first_streams_and_a_client_that_leaves_frees_it() {
    let c = Cluster::start(1, "").await;
    let client = c.any_client();
    let url = format!("{}/api/v1/backup", c.nodes[&1].url());

    // Phase 1: a state of about 24 MB (400 tasks with 60 KB of parameters each): more than the
    // node's 1 MiB in flight and the sockets' buffers together, so a backup whose client reads
    // nothing stays in progress.
    let filler = "x".repeat(60 * 1024);
    for i in 0..400 {
        let mut t = common::task(&format!("large-{i}"));
        t.parameters = Some(serde_json::json!({ "filler": filler }));
        client.create_task(&t, None).await.unwrap();
    }

    // Phase 2: the first backup starts streaming; its client reads the head only.
    let http = reqwest::Client::new();
    let first = http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);

    // Phase 3: a second one meanwhile is refused with a clear, stable error.
    let second = common::send(&client, reqwest::Method::GET, "/api/v1/backup", None).await;
    common::assert_error(&second, 409, "backup_in_progress", "a second backup while one streams");

    // Phase 4: the first client goes away; the node notices at its next send, releases the
    // point, and takes the next backup.
    drop(first);
    wait_for("a backup after the first client left", Duration::from_secs(30), || async {
        let r = http.get(&url).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
}
