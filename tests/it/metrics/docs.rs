//! The shipped monitoring files: `docs/operating/prometheus-rules.yml` (alert rules) and
//! `docs/operating/grafana-dashboard.json` (an importable dashboard). Always: the YAML parses
//! into Prometheus's rule-file shape with every alert the operations docs promise, the JSON has
//! the shape Grafana imports (a data source variable, panels with queries), and every metric
//! name either uses is one a live node exposes (checked by the workload test in the parent
//! module, which calls [`check_names_exposed`]). With `promtool` (Debian's `prometheus`
//! package, installed by `.ci/run`): `promtool check rules`, which also parses each PromQL
//! expression.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Deserialize;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/operating").join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(path(name)).unwrap_or_else(|e| panic!("read docs/operating/{name}: {e}"))
}

/// Prometheus's rule file, as far as alerting rules go (unknown keys are refused, so a typo such
/// as `anotations` fails here as it would in Prometheus).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn rules() -> RuleFile {
    serde_norway::from_str(&read("prometheus-rules.yml")).expect("prometheus-rules.yml parses as a rule file")
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read("grafana-dashboard.json")).expect("grafana-dashboard.json is JSON")
}

/// The `cronraft_…` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("cronraft_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// Every expression of the dashboard's panels.
fn dashboard_exprs(d: &serde_json::Value) -> Vec<String> {
    let panels = d["panels"].as_array().expect("panels");
    let targets = panels.iter().flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default());
    targets.map(|t| t["expr"].as_str().expect("a target's expr").to_string()).collect()
}

/// Fails naming each series the rules or the dashboard use that `exposition` (a live node's
/// `/metrics` after a workload) does not have.
pub fn check_names_exposed(exposition: &str) {
    let exposed: BTreeSet<&str> = exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let exprs = rules().groups.into_iter().flat_map(|g| g.rules).map(|r| r.expr).chain(dashboard_exprs(&dashboard()));
    let used: BTreeSet<String> = exprs.flat_map(|e| metric_names(&e)).collect();
    assert!(used.len() >= 15, "the files use too few series to be checked: {used:?}");
    let missing: Vec<&String> = used.iter().filter(|n| !exposed.contains(n.as_str())).collect();
    assert!(missing.is_empty(), "the rules or dashboard use series /metrics does not expose: {missing:?}");
}

#[test]
fn the_rules_file_has_every_promised_alert_complete() {
    let file = rules();
    assert_eq!(file.groups.len(), 1);
    let group = &file.groups[0];
    assert_eq!(group.name, "cronraft");
    let mut names = BTreeSet::new();
    for r in &group.rules {
        assert!(names.insert(r.alert.as_str()), "alert {} twice", r.alert);
        assert!(r.alert.starts_with("Cronraft"), "{}", r.alert);
        let severity = r.labels.get("severity").map(String::as_str);
        assert!(matches!(severity, Some("warning" | "critical")), "{}: severity {severity:?}", r.alert);
        for key in ["summary", "description"] {
            assert!(r.annotations.get(key).is_some_and(|s| !s.is_empty()), "{}: no {key}", r.alert);
        }
        assert!(!metric_names(&r.expr).is_empty(), "{}: no cronraft series in {}", r.alert, r.expr);
        let opens = r.expr.matches('(').count();
        assert_eq!(opens, r.expr.matches(')').count(), "{}: unbalanced parentheses", r.alert);
        if let Some(d) = &r.for_ {
            let (n, unit) = d.split_at(d.len() - 1);
            assert!(n.parse::<u32>().is_ok() && matches!(unit, "s" | "m" | "h"), "{}: for {d:?}", r.alert);
        }
    }
    // The issue's list: a failing task, missed slots, no leader, quorum at risk, executor down,
    // fire lag.
    for want in [
        "CronraftTaskFailing",
        "CronraftMissedSlots",
        "CronraftNoLeader",
        "CronraftQuorumAtRisk",
        "CronraftExecutorDown",
        "CronraftFireLagHigh",
    ] {
        assert!(names.contains(want), "no alert {want}: {names:?}");
    }
}

#[test]
fn the_dashboard_is_importable_and_shows_every_promised_panel() {
    let d = dashboard();
    assert!(d["title"].is_string() && d["uid"].is_string() && d["schemaVersion"].as_u64() >= Some(30));
    // A data source variable of type prometheus, which every panel and target uses.
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let ds = vars.iter().find(|v| v["type"] == "datasource").expect("a data source variable");
    assert_eq!(ds["query"], "prometheus");
    let var = format!("${{{}}}", ds["name"].as_str().unwrap());
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("a panel title");
        assert!(ids.insert(p["id"].as_u64().expect("a panel id")), "{title}: id twice");
        assert!(["timeseries", "stat"].contains(&p["type"].as_str().unwrap()), "{title}: type {}", p["type"]);
        for key in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][key].is_u64(), "{title}: gridPos.{key}");
        }
        assert_eq!(p["datasource"]["uid"], var.as_str(), "{title}: data source");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], var.as_str(), "{title}: a target's data source");
            let expr = t["expr"].as_str().unwrap();
            assert!(!metric_names(expr).is_empty(), "{title}: {expr}");
            assert_eq!(expr.matches('(').count(), expr.matches(')').count(), "{title}: {expr}");
        }
    }
    let titles: Vec<&str> = panels.iter().map(|p| p["title"].as_str().unwrap()).collect();
    let all = dashboard_exprs(&d).join("\n");
    // The brief's panels: runs by status, failures, missed slots, fire lag p99, leader and term,
    // executors by health, HTTP errors.
    for series in [
        "cronraft_runs_total",
        "cronraft_slots_missed_total",
        "cronraft_fire_lag_seconds_bucket",
        "cronraft_raft_leader_id",
        "cronraft_raft_term",
        "cronraft_executors",
        "cronraft_http_requests_total",
    ] {
        assert!(all.contains(series), "no panel reads {series}: {titles:?}");
    }
    assert!(all.contains("histogram_quantile(0.99"), "fire lag p99");
    assert!(all.contains(r#"status=~"failed|timeout""#), "failures");
    assert!(all.contains(r#"status=~"5..""#), "HTTP errors");
}

#[test]
#[ignore = "needs promtool (Debian package prometheus), run by .ci/run"]
fn promtool_accepts_the_rules() {
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(path("prometheus-rules.yml"))
        .output()
        .unwrap_or_else(|e| panic!("run promtool ({e}): install Debian's `prometheus` package"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool check rules failed:\n{text}");
    let rules = rules().groups.iter().map(|g| g.rules.len()).sum::<usize>();
    assert!(text.contains(&format!("SUCCESS: {rules} rules found")), "{text}");
}
