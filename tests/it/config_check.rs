//! `cronraft config check` as an operator runs it: the configuration `serve` would load (file,
//! then `CRONRAFT_*` variables, then flags) printed as TOML with exit 0, or every problem named
//! with its key and exit 1. The process gets a clean environment, so the test's own variables
//! cannot leak in.

use std::path::Path;
use std::process::{Command, Output};

fn check(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cronraft"));
    cmd.arg("config").arg("check").args(args).env_clear().envs(env.iter().copied());
    cmd.output().expect("run cronraft config check")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_good_configuration_is_printed_with_file_then_variables_then_flags_applied() {
    // Phase 1: a file, a variable over it and a flag over the variable.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("not-yet/data");
    let file = "node_id = 4\n[raft]\nheartbeat_ms = 120\n[executors]\nfailure_threshold = 2\n";
    let file = format!("{file}[agent]\nenabled = false\n");
    let config = write(&dir.path().join("node.toml"), &format!("data_dir = {:?}\n{file}", data.display().to_string()));
    let env = [("CRONRAFT_HEARTBEAT_MS", "150"), ("CRONRAFT_FAILURE_THRESHOLD", "4")];
    let out = check(&["--config", &config, "--failure-threshold", "5", "--log-format", "json"], &env);
    assert!(out.status.success(), "exit {:?}: {}", out.status, text(&out.stderr));
    assert!(text(&out.stderr).contains("configuration ok"), "{}", text(&out.stderr));

    // Phase 2: the output is the effective configuration, as TOML.
    let shown: toml::Value = toml::from_str(&text(&out.stdout)).expect("TOML on stdout");
    assert_eq!(shown["node_id"].as_integer(), Some(4), "from the file");
    assert_eq!(shown["raft"]["heartbeat_ms"].as_integer(), Some(150), "the variable wins over the file");
    assert_eq!(shown["executors"]["failure_threshold"].as_integer(), Some(5), "the flag wins over the variable");
    assert_eq!(shown["log_format"].as_str(), Some("json"));
    assert_eq!(shown["listeners"]["raft"]["connections_max"].as_integer(), Some(256), "effective limits");
    assert!(!data.exists(), "the check creates nothing: the data dir would be created by serve");

    // Phase 3: what it printed is itself a configuration file that checks clean.
    let again = write(&dir.path().join("printed.toml"), &text(&out.stdout));
    let out = check(&["--config", &again], &[]);
    assert!(out.status.success(), "the printed file loads: {}", text(&out.stderr));
}

#[test]
fn every_problem_is_named_with_its_key_and_the_exit_is_1() {
    // Phase 1: a configuration with something wrong in each group of keys: a refused variable,
    // Raft timing, a certificate without its key, a missing secret file and a short bootstrap
    // token, a data directory under a file.
    let dir = tempfile::tempdir().unwrap();
    let blocker = write(&dir.path().join("plain-file"), "x");
    let short_token = write(&dir.path().join("token"), "short\n");
    let file = format!(
        "data_dir = \"{blocker}/data\"\n[raft]\nheartbeat_ms = 400\n[tls]\ncert_file = \"/nonexistent/cert.pem\"\n\
         [auth]\ncluster_secret_file = \"{}/missing-secret\"\nbootstrap_token_file = \"{short_token}\"\n",
        dir.path().display()
    );
    let config = write(&dir.path().join("bad.toml"), &file);
    let out = check(&["--config", &config], &[("CRONRAFT_RETENTION_MAX_AGE_DAYS", "ninety")]);

    // Phase 2: exit 1, one `problem:` line per problem, each naming its key.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let problems: Vec<&str> = stderr.lines().filter(|l| l.starts_with("problem: ")).collect();
    let expected = [
        "CRONRAFT_RETENTION_MAX_AGE_DAYS",
        "raft.election_timeout_min_ms",
        "tls.key_file",
        "auth.cluster_secret_file",
        "auth.bootstrap_token_file",
        "data_dir",
    ];
    for key in expected {
        assert!(problems.iter().any(|p| p.contains(key)), "no problem names {key}: {stderr}");
    }
    assert_eq!(problems.len(), expected.len(), "one line each: {stderr}");
    assert!(stderr.contains("6 problem(s)"), "{stderr}");

    // Phase 3: a file that cannot be parsed is one problem, naming the file.
    let broken = write(&dir.path().join("broken.toml"), "[raft\n");
    let out = check(&["--config", &broken], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("broken.toml"), "{}", text(&out.stderr));
}
