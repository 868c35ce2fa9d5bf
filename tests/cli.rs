//! The `cronraft` client commands against a real node: tables for people, JSON for scripts, and
//! errors that name the problem with a non-zero exit.

mod common;

use std::process::{Command, Output};

use common::Cluster;

fn cli(node: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cronraft")).args(args).env("CRONRAFT_NODE", node).output().expect("run cli")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}", o.status, String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn task_and_cluster_commands_print_tables_and_json() {
    let c = Cluster::start(1, "").await;
    let node = c.nodes[&1].url();

    // Phase 1: create with --json; the answer is the task.
    let created = stdout(&cli(
        &node,
        &["task", "create", "--name", "hello", "--cron", "*/5 * * * * *", "--command", "echo hello", "--json"],
    ));
    let task: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert_eq!(task["name"], "hello");
    assert_eq!(task["parameters"]["command"], "echo hello");

    // Phase 2: tables for people.
    let list = stdout(&cli(&node, &["task", "list"]));
    assert!(list.starts_with("ID") && list.contains("hello") && list.contains("active"), "{list}");
    let paused = stdout(&cli(&node, &["task", "pause", "hello"]));
    assert!(paused.contains("paused"), "{paused}");
    let updated = stdout(&cli(&node, &["task", "update", "hello", "--timezone", "Europe/Paris", "--json"]));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&updated).unwrap()["timezone"], "Europe/Paris");
    let status = stdout(&cli(&node, &["cluster", "status"]));
    assert!(status.contains("leader: 1") && status.contains("leader"), "{status}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&cli(&node, &["cluster", "status", "--json"]))).unwrap();
    assert_eq!(json["leader_id"], 1);
    let deleted = stdout(&cli(&node, &["task", "delete", "hello"]));
    assert!(deleted.contains("deleted"), "{deleted}");

    // Phase 3: bad input fails with the server's code or a named flag.
    let bad = cli(&node, &["task", "create", "--name", "123", "--cron", "@daily"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid_name"), "{}", String::from_utf8_lossy(&bad.stderr));
    let bad = cli(&node, &["task", "create", "--name", "x", "--cron", "@daily", "--mode", "sometimes"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--mode"), "{}", String::from_utf8_lossy(&bad.stderr));
    let unreachable = cli("http://127.0.0.1:1", &["task", "list"]);
    assert!(!unreachable.status.success());
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("no node reachable"));
}
