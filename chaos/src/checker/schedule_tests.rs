//! Unit tests of the schedule checkers: one hand-made healthy history that passes every check,
//! then one bad variant per guarantee that the matching check must reject. (The misfire checker
//! runs here too — a bad history often breaks "one record per slot" as well; its own tests, with
//! late slots and each policy, are in `misfire_tests.rs`.)

use serde_json::{json, Value};

use super::*;
use crate::history::{Event, Kind, Process};

const T0: i64 = 1_000_000;

/// The log index of the entry that created execution `exec`'s attempt (below the applied 500).
fn idx(exec: u64) -> u64 {
    10 + exec % 400
}

/// A history builder; monotonic time is the wall time (ms) in ns.
#[derive(Default)]
struct H {
    events: Vec<Event>,
    pid: u64,
    records: BTreeMap<String, Vec<Value>>,
}

impl H {
    fn ev(&mut self, process: Process, kind: Kind, f: &str, key: &str, value: Value, wall: i64) {
        self.events.push(Event {
            index: self.events.len() as u64,
            time_ns: (wall as u64) * 1_000_000,
            wall_ms: wall,
            process,
            kind,
            f: f.into(),
            key: (!key.is_empty()).then(|| key.into()),
            value,
            node: Some(1),
            error: None,
        });
    }

    fn op(&mut self, f: &str, key: &str, kind: Kind, value: Value, invoke: i64, done: i64) {
        self.pid += 1;
        let p = Process::Client(self.pid);
        self.ev(p.clone(), Kind::Invoke, f, key, Value::Null, invoke);
        self.ev(p, kind, f, key, value, done);
    }

    fn task(&mut self, id: u64, name: &str, cron: &str, mode: &str, pausable: bool) {
        let v = json!({"id": id, "name": name, "cron": cron, "mode": mode, "pausable": pausable});
        self.op("cron_create", name, Kind::Ok, v, T0 - 100, T0 + 50);
        self.records.insert(name.into(), Vec::new());
    }

    /// A delivery at `slot + 10` lasting 1.5 s, with its final record.
    fn run(&mut self, name: &str, task: u64, exec: u64, slot: i64) {
        self.deliver(task, exec, slot, slot + 10, idx(exec));
        let v = json!({"execution_id": exec, "attempt": 1, "task_id": task});
        self.ev(Process::Named("executor".into()), Kind::Ok, "run_end", "", v, slot + 1_510);
        let rec = json!({"id": exec, "task_id": task, "scheduled_ms": slot, "trigger": "schedule", "attempt_count": 1,
            "status": "success", "created_ms": slot + 5, "log_index": idx(exec),
            "attempts": [{"attempt": 1, "term": 2, "log_index": idx(exec)}]});
        self.records.get_mut(name).expect("task").push(rec);
    }

    fn deliver(&mut self, task: u64, exec: u64, slot: i64, at: i64, log_index: u64) {
        let v = json!({"execution_id": exec, "attempt": 1, "task_id": task, "scheduled_ms": slot, "term": 2,
            "log_index": log_index, "duplicate": false});
        self.ev(Process::Named("executor".into()), Kind::Ok, "deliver", "", v, at);
    }

    fn marker(&mut self, f: &str, wall: i64) {
        self.ev(Process::nemesis(), Kind::End, f, "", Value::Null, wall);
    }

    /// The quiesce (a pause of every task), final reads and the digest, then every check.
    fn check(mut self) -> Vec<CheckResult> {
        self.marker("cron_quiesce", T0 + 21_000);
        for name in self.records.keys().cloned().collect::<Vec<_>>() {
            self.op("cron_pause", &name, Kind::Ok, Value::Null, T0 + 21_000, T0 + 21_100);
        }
        for (name, recs) in std::mem::take(&mut self.records) {
            self.op("cron_final", &name, Kind::Ok, Value::Array(recs), T0 + 25_000, T0 + 25_001);
        }
        self.op("digest", "cluster", Kind::Ok, json!({"applied_index": 500}), T0 + 26_000, T0 + 26_001);
        let mut events = self.events;
        events.sort_by_key(|e| e.time_ns);
        check(&events)
    }
}

/// par (every second, parallel), seq (even seconds, sequential), pp (paused 5.3 s – 9.5 s).
fn healthy() -> H {
    let mut h = H::default();
    h.task(1, "par", "* * * * * *", "parallel", false);
    h.task(2, "seq", "*/2 * * * * *", "sequential", false);
    h.task(3, "pp", "* * * * * *", "parallel", true);
    h.marker("heal_all", T0 + 2_000);
    h.marker("healthy", T0 + 2_500);
    let mut exec = 0;
    for s in 1..=20 {
        exec += 1;
        h.run("par", 1, exec, T0 + s * 1_000);
        if s % 2 == 0 {
            exec += 1;
            h.run("seq", 2, exec, T0 + s * 1_000);
        }
        if s <= 5 || (10..=12).contains(&s) {
            exec += 1;
            h.run("pp", 3, exec, T0 + s * 1_000);
        }
    }
    h.op("cron_pause", "pp", Kind::Ok, Value::Null, T0 + 5_200, T0 + 5_300);
    h.op("cron_resume", "pp", Kind::Ok, Value::Null, T0 + 9_500, T0 + 9_600);
    h.op("cron_pause", "pp", Kind::Ok, Value::Null, T0 + 12_400, T0 + 12_500);
    h
}

fn verdict(results: &[CheckResult], name: &str) -> Verdict {
    let r = results.iter().find(|r| r.checker == name).expect("checker ran");
    r.verdict
}

fn only_failing(results: &[CheckResult]) -> Vec<String> {
    results.iter().filter(|r| r.verdict != Verdict::Pass).map(|r| r.checker.clone()).collect()
}

#[test]
fn a_healthy_history_passes_every_schedule_check() {
    let results = healthy().check();
    assert!(only_failing(&results).is_empty(), "{results:#?}");
    let live = results.iter().find(|r| r.checker == "liveness").unwrap();
    assert_eq!(live.counts["slots_checked"], 12 + 6, "par 8..19 s, seq 8..18 s even");
}

#[test]
fn a_slot_fired_twice_is_one_per_slot_violation() {
    let mut h = healthy();
    h.run("par", 1, 900, T0 + 3_000);
    assert_eq!(only_failing(&h.check()), vec!["one_per_slot", "misfire"]);
}

#[test]
fn a_delivery_without_a_committed_record_is_caught() {
    // Delivered, but no record exists (e.g. dispatched before the fire committed, then lost).
    let mut h = healthy();
    h.deliver(1, 901, T0 + 4_000, T0 + 4_005, 30);
    let results = h.check();
    assert_eq!(verdict(&results, "committed_delivery"), Verdict::Fail);

    // Delivered with fencing data the record does not have, and beyond the applied index.
    let mut h = healthy();
    h.deliver(1, 1, T0 + 1_000, T0 + 1_020, 900);
    let r = h.check();
    let cd = r.iter().find(|r| r.checker == "committed_delivery").unwrap();
    assert_eq!(cd.verdict, Verdict::Fail);
    assert!(cd.violations.iter().any(|v| v.contains("beyond the final applied index")), "{cd:?}");
    assert!(cd.violations.iter().any(|v| v.contains("recorded term 2 index 11")), "{cd:?}");
}

#[test]
fn missing_final_records_make_the_record_checks_unknown() {
    let mut h = healthy();
    h.records.remove("seq");
    let results = h.check();
    assert_eq!(verdict(&results, "one_per_slot"), Verdict::Unknown);
    assert_eq!(verdict(&results, "committed_delivery"), Verdict::Unknown);
}

#[test]
fn a_delivery_after_an_acknowledged_pause_is_caught_unless_a_resume_is_indeterminate() {
    let mut h = healthy();
    h.run("pp", 3, 902, T0 + 7_000);
    // misfire: slot 6 s has no record although 7 s has one and no resume falls between.
    assert_eq!(only_failing(&h.check()), vec!["pause_cutoff", "misfire"]);

    // The same delivery, but an earlier resume ended `info`: it may have taken effect late.
    let mut h = healthy();
    h.run("pp", 3, 902, T0 + 7_000);
    h.op("cron_resume", "pp", Kind::Info, Value::Null, T0 + 1_000, T0 + 4_000);
    let results = h.check();
    assert!(only_failing(&results).is_empty(), "{results:#?}");
}

#[test]
fn overlapping_sequential_runs_are_caught() {
    let mut h = healthy();
    h.deliver(2, 903, T0 + 6_000, T0 + 6_500, 40);
    h.records.get_mut("seq").unwrap().push(json!({"id": 903, "task_id": 2, "scheduled_ms": T0 + 6_000,
        "trigger": "schedule", "attempt_count": 1, "attempts": [{"attempt": 1, "term": 2, "log_index": 40}]}));
    let failing = only_failing(&h.check());
    assert!(failing.contains(&"no_overlap".to_string()), "{failing:?}");
}

#[test]
fn a_slot_off_the_schedule_is_caught() {
    let mut h = healthy();
    h.run("seq", 2, 904, T0 + 7_000);
    assert_eq!(only_failing(&h.check()), vec!["no_overlap", "on_schedule", "misfire"]);
}

#[test]
fn a_slot_never_delivered_after_the_heal_is_a_liveness_violation() {
    let mut h = healthy();
    let drop_slot = T0 + 12_000;
    h.events.retain(|e| !(e.f == "deliver" && e.value["task_id"] == 1 && e.value["scheduled_ms"] == drop_slot));
    let results = h.check();
    assert_eq!(only_failing(&results), vec!["liveness"]);
    assert!(results.iter().any(|r| r.violations.iter().any(|v| v.contains(&drop_slot.to_string()))));
}

#[test]
fn schedule_steps_parse() {
    use super::super::cron_model::step_ms;
    assert_eq!(step_ms("* * * * * *"), Some(1_000));
    assert_eq!(step_ms("*/2 * * * * *"), Some(2_000));
    assert_eq!(step_ms("0 0 0 1 1 *"), None);
}

#[test]
fn a_delivery_after_an_acknowledged_delete_is_caught() {
    // Task 4 runs at 1 s and 2 s, is deleted at 2.5 s, and must never run again.
    let mut h = healthy();
    h.task(4, "del", "* * * * * *", "parallel", true);
    h.run("del", 4, 950, T0 + 1_000);
    h.run("del", 4, 951, T0 + 2_000);
    h.op("cron_delete", "del", Kind::Ok, Value::Null, T0 + 2_400, T0 + 2_500);
    let results = h.check();
    assert!(only_failing(&results).is_empty(), "{results:#?}");

    let mut h = healthy();
    h.task(4, "del", "* * * * * *", "parallel", true);
    h.op("cron_delete", "del", Kind::Ok, Value::Null, T0 + 2_400, T0 + 2_500);
    h.run("del", 4, 952, T0 + 15_000);
    // misfire: slots 1–14 s have no record although 15 s has one.
    assert_eq!(only_failing(&h.check()), vec!["pause_cutoff", "misfire"]);
}
