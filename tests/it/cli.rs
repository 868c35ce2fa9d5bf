//! The `cronraft` client commands against a real node: tables for people, JSON for scripts, and
//! errors that name the problem with a non-zero exit.

use crate::common;

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

    // Phase 4: executors, executions and stats. Executors register themselves (here through the
    // client); people list them, change their status, trigger and stop runs, read stats.
    let reg = cronraft_api::protocol::RegisterRequest {
        name: "workers".into(),
        instance_id: "w-1".into(),
        base_url: "http://127.0.0.1:1".into(),
        ..Default::default()
    };
    c.client(1).register_executor(&reg, None).await.unwrap();
    let list: serde_json::Value = serde_json::from_str(&stdout(&cli(&node, &["executor", "list", "--json"]))).unwrap();
    assert_eq!((list["total"].as_u64(), list["items"][0]["instance_id"].as_str()), (Some(1), Some("w-1")));
    let table = stdout(&cli(&node, &["executor", "list"]));
    assert!(table.starts_with("ID") && table.contains("w-1") && table.contains("online"), "{table}");
    let status = stdout(&cli(&node, &["executor", "status", "w-1", "maintenance", "--reason", "disk swap", "--json"]));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!((status["status"].as_str(), status["status_reason"].as_str()), (Some("maintenance"), Some("disk swap")));
    let bad = cli(&node, &["executor", "status", "w-1", "asleep"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("online, offline or maintenance"));

    let args = ["task", "create", "--name", "ping", "--cron", "0 0 0 1 1 *", "--http-url", "http://127.0.0.1:1/p"];
    let created: serde_json::Value =
        serde_json::from_str(&stdout(&cli(&node, &[&args[..], &["--json"]].concat()))).unwrap();
    assert_eq!(created["parameters"]["http"]["url"], "http://127.0.0.1:1/p");
    let both = cli(
        &node,
        &["task", "create", "--name", "x", "--cron", "@daily", "--command", "a", "--params", r#"{"command":"b"}"#],
    );
    assert!(!both.status.success() && String::from_utf8_lossy(&both.stderr).contains("--command"));
    let run = stdout(&cli(&node, &["task", "trigger", "ping", "--parameters", r#"{"dry":true}"#, "--json"]));
    let run: serde_json::Value = serde_json::from_str(&run).unwrap();
    assert_eq!((run["status"].as_str(), run["requested_by"].as_str()), (Some("pending"), Some("cli")));
    let id = run["id"].as_u64().unwrap().to_string();
    let stopped = stdout(&cli(&node, &["execution", "stop", &id]));
    assert!(stopped.contains("cancelled (stopped)"), "{stopped}");
    let list = stdout(&cli(&node, &["execution", "list", "--task", "ping", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!((list["total"].as_u64(), list["items"][0]["status"].as_str()), (Some(1), Some("cancelled")));
    let table = stdout(&cli(&node, &["execution", "list", "--status", "cancelled"]));
    assert!(table.starts_with("ID") && table.contains("ATTEMPTS") && table.contains(&id), "{table}");
    let stats = stdout(&cli(&node, &["task", "stats", "ping"]));
    assert!(stats.contains("health score: -") && stats.lines().any(|l| l.starts_with("24h")), "{stats}");
    let stats: serde_json::Value =
        serde_json::from_str(&stdout(&cli(&node, &["task", "stats", "ping", "--json"]))).unwrap();
    assert_eq!(stats["windows"]["7d"]["cancelled"], 1);
    assert_eq!(stdout(&cli(&node, &["executor", "remove", "w-1"])).trim(), "executor 1 (w-1) removed");
}

/// A failing command prints one line, `error: ` and the causes joined with `: `, and exits 1 —
/// not `anyhow`'s multi-line report with a backtrace, which `RUST_BACKTRACE=1` used to add.
#[test]
fn a_failing_command_prints_one_error_line_even_with_rust_backtrace_set() {
    // Phase 1: a client command against an address nothing listens on (a port just released).
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_cronraft"))
            .args(args)
            .env("CRONRAFT_NODE", format!("http://{free}"))
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("run cli");
        (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (status, stderr) = run(&["task", "list"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("no node reachable"), "{stderr}");
    assert!(!stderr.contains("backtrace") && !stderr.contains("Caused by"), "{stderr}");

    // Phase 2: a chain of causes (serve's configuration context, then the file error) on one line.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let (status, stderr) =
        run(&["serve", "--config", missing.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: configuration: ") && stderr.contains("missing.toml"), "{stderr}");
    assert!(!stderr.contains("backtrace") && !stderr.contains("Caused by"), "{stderr}");
}
