//! A full disk (issue 19, point 8), on a real small filesystem: a node's data directory on a
//! 48 MB tmpfs, filled with tasks through the API until the node says `507 storage_full`.
//!
//! Before this, the write that hit `ENOSPC` was answered `500` with sled's text (and had been
//! applied), openraft's core stopped, `/health` said `failed` and only a restart helped. Now the
//! node refuses writes while some space is left (`[storage] free_bytes_min`), so nothing is
//! half-written; it serves reads meanwhile, says so in `/metrics`, a full leader hands over to a
//! node with room, and it takes writes again by itself once space is freed.
//!
//! Root is needed to mount the tmpfs: the tests are ignored in a plain `cargo test` and run by
//! `.ci/run` (as root).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{wait_for, Cluster};
use cronraft_api::client::Client;
use cronraft_api::context::Consistency;
use cronraft_api::types::TaskInput;

/// The floor: writes are refused with less free space than this on the node's filesystem.
const FLOOR: u64 = 8 * 1024 * 1024;
const CONFIG: &str = "[storage]\nfree_bytes_min = 8388608\ncheck_interval_ms = 100\n";

/// A tmpfs mounted for the test's life, unmounted on drop.
struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at).output();
        let out = out.expect("run mount");
        assert!(
            out.status.success(),
            "this test needs root to mount a tmpfs (run it as root, as .ci/run does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { at: at.to_path_buf() }
    }

    /// Takes `bytes` of the disk, to be given back with [`SmallDisk::free`].
    fn fill(&self, bytes: usize) {
        std::fs::write(self.at.join("filler"), vec![1u8; bytes]).unwrap();
    }

    fn free(&self) {
        std::fs::remove_file(self.at.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// A task with 60 KiB of parameters: a few dozen fill the disk.
fn big_task(name: &str) -> TaskInput {
    let mut t = common::task(name);
    t.parameters = Some(serde_json::json!({ "pad": "x".repeat(60 * 1024) }));
    t
}

/// Creates tasks through `client` until a write is refused; returns the names acknowledged and
/// the refused one.
async fn fill_until_refused(client: &Client, prefix: &str) -> (Vec<String>, String) {
    let mut acknowledged = Vec::new();
    for i in 0..2_000 {
        let name = format!("{prefix}-{i}");
        match client.create_task(&big_task(&name), None).await {
            Ok(_) => acknowledged.push(name),
            Err(e) => {
                assert_eq!(e.code(), Some("storage_full"), "the write after {i} tasks: {e}");
                assert!(e.to_string().contains("storage.free_bytes_min"), "{e}");
                return (acknowledged, name);
            }
        }
    }
    panic!("2,000 tasks and no storage_full");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs root: mounts a 48 MB tmpfs (run by .ci/run)"]
async fn a_full_disk_refuses_writes_keeps_reads_and_resumes_by_itself_without_a_restart() {
    let mut c = Cluster::new(CONFIG);
    let disk = SmallDisk::mount(&c.root().join("node1").join("data"), "48m");
    disk.fill(FLOOR as usize);
    c.spawn(1, None, None);
    c.wait_leader().await;
    let client = c.client(1);
    let pid = c.nodes[&1].pid();

    // Phase 1: tasks until the node refuses: 507 storage_full naming the setting.
    let (acknowledged, refused) = fill_until_refused(&client, "fill").await;
    assert!(acknowledged.len() > 20, "only {} tasks before the refusal", acknowledged.len());

    // Phase 2: nothing of the refused write exists; every acknowledged one does; reads,
    // /health and /metrics work.
    let err = client.get_task(&refused, Consistency::Linearizable).await.unwrap_err();
    assert_eq!(err.code(), Some("task_not_found"));
    let page = client.list_tasks(None, 1, 500, Consistency::Linearizable).await.unwrap();
    assert_eq!(page.total as usize, acknowledged.len());
    let health = reqwest::get(format!("{}/health", c.nodes[&1].url())).await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(c.metric(1, "cronraft_storage_full").await, Some(1.0));
    assert!(c.log(1).contains("STORAGE FULL"), "an error line says why");

    // Phase 3: space comes back; the same process takes writes again by itself.
    disk.free();
    wait_for("writes taken again", Duration::from_secs(30), || async {
        client.create_task(&common::task("after-space"), None).await.ok()
    })
    .await;
    assert_eq!(c.nodes[&1].pid(), pid, "no restart");
    assert_eq!(c.metric(1, "cronraft_storage_full").await, Some(0.0));
    for name in acknowledged.iter().step_by(7) {
        client.get_task(name, Consistency::Linearizable).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs root: mounts a 48 MB tmpfs (run by .ci/run)"]
async fn a_full_leader_steps_down_and_a_node_with_room_leads() {
    let mut c = Cluster::new(CONFIG);
    let disk = SmallDisk::mount(&c.root().join("node1").join("data"), "48m");
    disk.fill(FLOOR as usize);
    c.spawn(1, None, None);
    let join = c.nodes[&1].url();
    c.spawn(2, Some(&join), None);
    c.spawn(3, Some(&join), None);
    assert_eq!(c.wait_voters(3).await, 1, "node 1 bootstrapped and leads");

    // Phase 1: node 1 (the leader, on the small disk) fills up and refuses writes.
    let (acknowledged, _) = fill_until_refused(&c.client(1), "lead").await;

    // Phase 2: it steps down; a node with room leads and takes writes.
    let leader = wait_for("another leader", Duration::from_secs(30), || async {
        let l = c.view(2).await?.leader_id?;
        (l != 1 && c.view(3).await?.leader_id == Some(l)).then_some(l)
    })
    .await;
    c.client(leader).create_task(&common::task("on-the-new-leader"), None).await.unwrap();
    let n = c.client(leader).list_tasks(None, 1, 1, Consistency::Linearizable).await.unwrap().total as usize;
    assert_eq!(n, acknowledged.len() + 1);

    // Phase 3: space back on node 1, it takes writes again (forwarded to the leader).
    disk.free();
    wait_for("node 1 takes writes again", Duration::from_secs(30), || async {
        c.client(1).create_task(&common::task("node1-again"), None).await.ok()
    })
    .await;
    c.wait_converged().await;
}
