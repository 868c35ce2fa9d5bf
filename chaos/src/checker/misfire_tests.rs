//! Unit tests of the misfire checker on hand-made histories: one task per policy, every second
//! for 20 s, with a leaderless gap — slots 3–12 s fired by one entry stamped at 13.3 s, so slots
//! 3–8 s misfired (more than 5 s late) and 9–12 s are merely late. The good history records what
//! apply must decide; each bad one changes a record the way a wrong implementation would.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::super::cron_model::extract;
use super::super::{CheckResult, Verdict};
use super::misfire;
use crate::history::{Event, Kind, Process};

const T0: i64 = 2_000_000;
/// The gap's fire entry: stamped 13.3 s, log index 50.
const GAP_NOW: i64 = T0 + 13_300;
const GAP_INDEX: u64 = 50;

#[derive(Default)]
struct B {
    events: Vec<Event>,
    pid: u64,
    next_id: u64,
    records: BTreeMap<String, Vec<Value>>,
    ids: BTreeMap<String, u64>,
}

impl B {
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

    /// An every-second parallel task created just before T0.
    fn task(&mut self, id: u64, name: &str, policy: &str, window: u64) {
        let v = json!({"id": id, "name": name, "cron": "* * * * * *", "mode": "parallel", "pausable": false,
            "misfire_policy": policy, "catchup_window_seconds": window});
        self.op("cron_create", name, Kind::Ok, v, T0 - 100, T0 + 50);
        self.records.insert(name.into(), Vec::new());
        self.ids.insert(name.into(), id);
    }

    /// A record of second `s` of task `name`; a run that is not missed is delivered 10 ms after
    /// the later of its slot and its stamp.
    fn rec(&mut self, name: &str, s: i64, created: i64, index: u64, status: &str, trigger: &str) -> u64 {
        self.next_id += 1;
        let (id, task, slot) = (self.next_id, self.ids[name], T0 + s * 1_000);
        let reason = (status == "missed").then_some("misfire");
        self.records.get_mut(name).unwrap().push(json!({"id": id, "task_id": task, "scheduled_ms": slot,
            "trigger": trigger, "status": status, "reason": reason, "created_ms": created, "log_index": index,
            "slot_count": 1, "attempt_count": 1, "attempts": []}));
        if status != "missed" {
            self.deliver(id, task, slot, created.max(slot) + 10);
        }
        id
    }

    fn deliver(&mut self, id: u64, task: u64, slot: i64, at: i64) {
        let v = json!({"execution_id": id, "attempt": 1, "task_id": task, "scheduled_ms": slot, "term": 2,
            "log_index": 1, "duplicate": false});
        self.ev(Process::Named("executor".into()), Kind::Ok, "deliver", "", v, at);
    }

    /// Second `s` fired on time by its own entry.
    fn on_time(&mut self, name: &str, s: i64) -> u64 {
        self.rec(name, s, T0 + s * 1_000 + 5, 100 + s as u64, "success", "schedule")
    }

    /// Second `s` in the gap's entry.
    fn gap(&mut self, name: &str, s: i64, status: &str, trigger: &str) -> u64 {
        self.rec(name, s, GAP_NOW, GAP_INDEX, status, trigger)
    }

    /// Removes the record of second `s` of `name`.
    fn drop_record(&mut self, name: &str, s: i64) {
        self.records.get_mut(name).unwrap().retain(|r| r["scheduled_ms"] != T0 + s * 1_000);
    }

    /// Changes a field of the record of second `s` of `name`.
    fn set(&mut self, name: &str, s: i64, field: &str, v: Value) {
        let r = self.records.get_mut(name).unwrap().iter_mut().find(|r| r["scheduled_ms"] == T0 + s * 1_000);
        r.unwrap()[field] = v;
    }

    /// The quiesce (every task paused at 21 s), final reads at 25 s, then the checker.
    fn check(mut self) -> CheckResult {
        self.ev(Process::Named("harness".into()), Kind::Ok, "cron_quiesce", "", Value::Null, T0 + 21_000);
        for name in self.records.keys().cloned().collect::<Vec<_>>() {
            self.op("cron_pause", &name, Kind::Ok, Value::Null, T0 + 21_000, T0 + 21_100);
        }
        for (name, recs) in std::mem::take(&mut self.records) {
            self.op("cron_final", &name, Kind::Ok, Value::Array(recs), T0 + 25_000, T0 + 25_001);
        }
        let mut events = self.events;
        events.sort_by_key(|e| e.time_ns);
        misfire(&extract(&events))
    }
}

/// What apply must record for the three policies (fire_all with an 8 s window).
fn good() -> B {
    let mut b = B::default();
    b.task(1, "once", "fire_once", 3_600);
    b.task(2, "all", "fire_all", 8);
    b.task(3, "skip", "skip", 3_600);
    for name in ["once", "all", "skip"] {
        for s in (1..=2).chain(13..=20) {
            b.on_time(name, s);
        }
        // 9–12 s: late by 4.3–1.3 s, below the threshold: fired normally.
        for s in 9..=12 {
            b.gap(name, s, "success", "schedule");
        }
    }
    // 3–8 s misfired (10.3 … 5.3 s late).
    for s in 3..=7 {
        b.gap("once", s, "missed", "schedule");
    }
    b.gap("once", 8, "success", "catchup");
    for s in 3..=5 {
        b.gap("all", s, "missed", "schedule"); // 10.3, 9.3, 8.3 s late: outside the 8 s window
    }
    for s in 6..=8 {
        b.gap("all", s, "success", "catchup");
    }
    for s in 3..=8 {
        b.gap("skip", s, "missed", "schedule");
    }
    b
}

fn assert_fails(r: &CheckResult, needle: &str) {
    assert_eq!(r.verdict, Verdict::Fail, "{r:#?}");
    assert!(r.violations.iter().any(|v| v.contains(needle)), "no violation mentions {needle:?}: {r:#?}");
}

#[test]
fn the_product_s_decisions_pass() {
    let r = good().check();
    assert_eq!(r.verdict, Verdict::Pass, "{r:#?}");
    assert_eq!(r.counts["entries_with_misfires"], 3);
    assert_eq!(r.counts["catchup"], 1 + 3);
    assert_eq!(r.counts["missed_slots"], 5 + 3 + 6);
    assert_eq!(r.counts["on_time"], 3 * 14);
    // 20 slots each; slots 21–23 s fall in the quiesce's grace.
    assert_eq!(r.counts["slots_judged"], 3 * 23);
    assert_eq!(r.counts["slots_after_cutoff"], 3 * 3);
}

#[test]
fn fire_once_with_two_catch_ups_or_the_wrong_one_is_caught() {
    let mut b = good();
    b.set("once", 7, "status", json!("success"));
    b.set("once", 7, "trigger", json!("catchup"));
    b.set("once", 7, "reason", Value::Null);
    assert_fails(&b.check(), "task once (fire_once) slot 2007000: recorded a run with trigger catchup");

    // The oldest missed slot caught up instead of the latest.
    let mut b = good();
    b.set("once", 3, "status", json!("success"));
    b.set("once", 3, "trigger", json!("catchup"));
    b.set("once", 8, "status", json!("missed"));
    b.set("once", 8, "trigger", json!("schedule"));
    b.set("once", 8, "reason", json!("misfire"));
    let r = b.check();
    assert_fails(&r, "slot 2003000: recorded a run with trigger catchup (success), expected missed");
    assert_fails(&r, "slot 2008000: recorded missed (missed), expected a run with trigger catchup");
}

#[test]
fn fire_all_outside_or_inside_the_window_is_caught() {
    let mut b = good();
    b.set("all", 7, "status", json!("missed"));
    b.set("all", 7, "trigger", json!("schedule"));
    b.set("all", 7, "reason", json!("misfire"));
    assert_fails(&b.check(), "task all (fire_all, window 8 s) slot 2007000: recorded missed");

    let mut b = good();
    b.set("all", 4, "status", json!("success"));
    b.set("all", 4, "reason", Value::Null);
    b.set("all", 4, "trigger", json!("catchup"));
    assert_fails(&b.check(), "slot 2004000: recorded a run with trigger catchup (success), expected missed");
}

#[test]
fn skip_that_catches_up_is_caught() {
    let mut b = good();
    b.set("skip", 8, "status", json!("success"));
    b.set("skip", 8, "reason", Value::Null);
    b.set("skip", 8, "trigger", json!("catchup"));
    assert_fails(&b.check(), "task skip (skip) slot 2008000: recorded a run with trigger catchup");
}

#[test]
fn a_slot_on_time_recorded_missed_or_caught_up_is_caught() {
    let mut b = good();
    b.set("skip", 15, "status", json!("missed"));
    b.set("skip", 15, "reason", json!("misfire"));
    assert_fails(&b.check(), "slot 2015000: recorded missed (missed), expected a run with trigger schedule");

    // A merely late slot (4.3 s) is not a misfire.
    let mut b = good();
    b.set("once", 9, "trigger", json!("catchup"));
    assert_fails(&b.check(), "slot 2009000: recorded a run with trigger catchup");

    // A missed record must say why.
    let mut b = good();
    b.set("skip", 4, "reason", json!("overlap"));
    assert_fails(&b.check(), "recorded missed with reason Some(\"overlap\")");
}

#[test]
fn stamps_must_fit_what_the_harness_saw() {
    // A missed slot that the executor nevertheless received (14 s was delivered on time).
    let mut b = good();
    b.set("skip", 14, "status", json!("missed"));
    b.set("skip", 14, "reason", json!("misfire"));
    assert_fails(&b.check(), "recorded missed, yet delivered");

    // An entry stamped after the executor received its execution.
    let mut b = good();
    b.set("once", 16, "created_ms", json!(T0 + 16_500));
    assert_fails(&b.check(), "ms after the executor received it");

    // An entry stamped before its slot.
    let mut b = good();
    b.set("all", 17, "created_ms", json!(T0 + 16_900));
    assert_fails(&b.check(), "stamped 100 ms before the slot");
}

#[test]
fn every_slot_of_the_active_life_has_exactly_one_record() {
    // A slot between two recorded ones with no record, under every policy.
    for name in ["once", "all", "skip"] {
        let mut b = good();
        b.drop_record(name, 16);
        assert_fails(&b.check(), &format!("task {name} slot 2016000: no record, yet the later slot 2017000"));
    }

    // The same hole, explained by a pause and a resume whose command time may lie after 16 s.
    let mut b = good();
    b.drop_record("once", 16);
    b.op("cron_pause", "once", Kind::Ok, Value::Null, T0 + 15_400, T0 + 15_500);
    b.op("cron_resume", "once", Kind::Ok, Value::Null, T0 + 16_300, T0 + 16_400);
    let r = b.check();
    assert_eq!(r.verdict, Verdict::Pass, "{r:#?}");
    assert_eq!(r.counts["slots_skipped_by_resume"], 1);

    // A slot before the first record (after the create was acknowledged).
    let mut b = good();
    b.drop_record("all", 1);
    assert_fails(&b.check(), "task all slot 2001000: no record, yet the later slot 2002000");

    // Slots after the last record, well before the quiesce's pause.
    let mut b = good();
    b.drop_record("skip", 19);
    b.drop_record("skip", 20);
    let r = b.check();
    assert_fails(&r, "task skip slot 2019000: no record, though it was due 2000 ms before the pause");
    assert!(!r.violations.iter().any(|v| v.contains("slot 2020000")), "20 s is within the grace: {r:#?}");

    // Two records for one slot (a missed record and a run).
    let mut b = good();
    b.on_time("skip", 5);
    assert_fails(&b.check(), "task skip slot 2005000: 2 records");
}

/// `skip` loses its records after 10 s, and a delete invoked at 10.5 s fails at `done` with `error`.
fn delete_failing(done: i64, error: &str) -> B {
    let mut b = good();
    for s in 11..=20 {
        b.drop_record("skip", s);
    }
    b.pid += 1;
    let p = Process::Client(b.pid);
    b.ev(p.clone(), Kind::Invoke, "cron_delete", "skip", Value::Null, T0 + 10_500);
    b.ev(p, Kind::Fail, "cron_delete", "skip", Value::Null, done);
    b.events.last_mut().unwrap().error = Some(error.into());
    b
}

#[test]
fn a_delete_answered_task_not_found_ends_the_task_s_life_when_it_was_invoked() {
    // Records stop after 10 s; a delete invoked at 10.5 s is answered 404 `task_not_found` (its
    // first forwarded attempt was applied, the answer lost): the slots after it need no record.
    let r = delete_failing(T0 + 12_000, "HTTP 404 task_not_found").check();
    assert_eq!(r.verdict, Verdict::Pass, "{r:#?}");

    // A delete refused for another reason (never proposed) ends nothing: the slots are owed.
    let b = delete_failing(T0 + 10_600, "http://127.0.0.1:1: error sending request");
    assert_fails(&b.check(), "task skip slot 2011000: no record");
}

#[test]
fn a_summarized_backlog_covers_its_slots() {
    // fire_once: 3–5 s summarized as one missed record (slot_count 3), 6–8 s listed.
    let mut b = good();
    for s in 3..=5 {
        b.drop_record("once", s);
    }
    b.gap("once", 5, "missed", "schedule");
    b.set("once", 5, "slot_count", json!(3));
    let r = b.check();
    assert_eq!(r.verdict, Verdict::Pass, "{r:#?}");

    // A summary that is not `missed` is wrong whatever the policy.
    let mut b = good();
    for s in 3..=5 {
        b.drop_record("all", s);
    }
    b.gap("all", 5, "success", "catchup");
    b.set("all", 5, "slot_count", json!(3));
    assert_fails(&b.check(), "task all (fire_all, window 8 s) slot 2005000: recorded a run with trigger catchup");
}

#[test]
fn records_without_stamps_make_it_unknown() {
    let mut b = good();
    for r in b.records.values_mut().flatten() {
        r.as_object_mut().unwrap().remove("created_ms");
    }
    assert_eq!(b.check().verdict, Verdict::Unknown);
}

#[test]
fn a_clock_nemesis_without_a_skew_skips_only_the_cross_clock_checks() {
    // The hole after the last record can no longer be judged; an interior hole still can.
    let mut b = good();
    b.ev(Process::nemesis(), Kind::Start, "clock-skew", "", json!({"node": 2}), T0 + 500);
    b.drop_record("once", 20);
    let r = b.check();
    assert_eq!(r.verdict, Verdict::Pass, "{r:#?}");
    assert_eq!(r.counts["cross_clock_checks_skipped"], 1);

    let mut b = good();
    b.ev(Process::nemesis(), Kind::Start, "clock-skew", "", json!({"node": 2}), T0 + 500);
    b.drop_record("once", 12);
    assert_fails(&b.check(), "task once slot 2012000: no record, yet the later slot 2013000");

    // With a recorded skew of 3 s, the tail rule widens by it: 19 s is within reach of the cut-off.
    let mut b = good();
    b.ev(Process::nemesis(), Kind::Start, "clock-skew", "", json!({"skew_ms": -3_000}), T0 + 500);
    b.drop_record("skip", 19);
    b.drop_record("skip", 20);
    assert_eq!(b.check().verdict, Verdict::Pass);
}

#[test]
fn slots_cut_off_by_a_pause_are_accounted_for_by_its_record() {
    // Phase 1: slots 19 and 20 were never fired; the quiesce's pause (invoked at 21 s) recorded
    // them as one `cut_off` record stamped 21.05 s. The whole life is covered, and passes.
    let mut b = good();
    b.drop_record("skip", 19);
    b.drop_record("skip", 20);
    b.rec("skip", 20, T0 + 21_050, 400, "missed", "schedule");
    b.set("skip", 20, "reason", json!("cut_off"));
    b.set("skip", 20, "slot_count", json!(2));
    let r = b.check();
    assert_eq!(r.verdict, Verdict::Pass, "{r:#?}");
    assert_eq!(r.counts["cut_off_slots"], 2);

    // Phase 2: the same record stamped at 18 s, when no pause or delete was in flight.
    let mut b = good();
    b.drop_record("skip", 17);
    b.rec("skip", 17, T0 + 18_000, 400, "missed", "schedule");
    b.set("skip", 17, "reason", json!("cut_off"));
    assert_fails(&b.check(), "task skip slot 2017000: recorded cut off at 2018000, but no pause or delete");

    // Phase 3: a cut-off record stamped before its own slot.
    let mut b = good();
    b.drop_record("once", 20);
    b.rec("once", 20, T0 + 19_000, 400, "missed", "schedule");
    b.set("once", 20, "reason", json!("cut_off"));
    assert_fails(&b.check(), "task once slot 2020000: a cut-off record stamped 2019000");
}
