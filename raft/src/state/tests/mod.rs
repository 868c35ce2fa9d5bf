//! Unit tests of `apply`'s decisions: ids, names, status transitions, patches, deduplication.

use super::dedupe::fingerprint;
use super::*;
use crate::command::Rejection;
use crate::model::{Task, TaskSpec};
use crate::spec::TaskPatch;

/// The dedupe table's key for a request id.
fn dedupe_key(request_id: &str) -> Vec<u8> {
    keys::dedupe(request_id.as_bytes())
}

fn spec(name: &str) -> TaskSpec {
    TaskSpec::new(name, "0 * * * * *")
}

/// A state machine tree plus a counter for request ids.
struct Harness {
    _db: sled::Db,
    tree: sled::Tree,
    next: u64,
    /// The store's apply options (the default unless a test turns an unsafe switch on).
    options: ApplyOptions,
}

impl Harness {
    fn new() -> Self {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("sm").unwrap();
        Harness { _db: db, tree, next: 0, options: ApplyOptions::default() }
    }

    /// Applies one request in its own run, as openraft would for a single entry.
    fn apply_with(&mut self, request_id: &str, now_ms: i64, command: Command) -> Response {
        let mut ws = WriteSet::new(&self.tree);
        let req = Request { request_id: request_id.into(), now_ms, command };
        let resp = apply_request(&mut ws, &req, self.next, self.options).unwrap();
        self.tree.apply_batch(ws.into_batch()).unwrap();
        resp
    }

    fn apply(&mut self, command: Command) -> Response {
        self.next += 1;
        let id = format!("r{}", self.next);
        self.apply_with(&id, 1_000 * self.next as i64, command)
    }

    fn view(&self) -> StateView {
        StateView::new(self.tree.clone())
    }
}

fn task(resp: Response) -> Task {
    match resp {
        Response::Task(t) => t,
        other => panic!("expected a task, got {other:?}"),
    }
}

fn rejection(resp: Response) -> Rejection {
    match resp {
        Response::Rejected(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn create_assigns_dense_ids_and_rejects_taken_names() {
    let mut h = Harness::new();
    assert_eq!(task(h.apply(Command::CreateTask { spec: spec("a") })).id, 1);
    assert_eq!(task(h.apply(Command::CreateTask { spec: spec("b") })).id, 2);
    let r = rejection(h.apply(Command::CreateTask { spec: spec("a") }));
    assert_eq!(r, Rejection::NameTaken { name: "a".into(), id: 1 });
    assert_eq!(h.view().count(TaskStatus::Active).unwrap(), 2);
}

#[test]
fn delete_is_soft_and_frees_the_name() {
    let mut h = Harness::new();
    task(h.apply(Command::CreateTask { spec: spec("a") }));
    let deleted = task(h.apply(Command::DeleteTask { id: 1 }));
    assert_eq!(deleted.status, TaskStatus::Deleted);
    // The record stays, the name is free, and nothing brings it back.
    assert_eq!(h.view().task(1).unwrap().unwrap().status, TaskStatus::Deleted);
    assert_eq!(task(h.apply(Command::CreateTask { spec: spec("a") })).id, 2);
    assert_eq!(rejection(h.apply(Command::ResumeTask { id: 1 })), Rejection::TaskDeleted { id: 1 });
    assert_eq!(rejection(h.apply(Command::PauseTask { id: 9 })), Rejection::TaskNotFound { id: 9 });
    let listed = h.view().list_tasks(None, 1, 10).unwrap();
    assert_eq!((listed.total, listed.items.len(), listed.items[0].id), (1, 1, 2));
    assert_eq!(h.view().list_tasks(Some(TaskStatus::Deleted), 1, 10).unwrap().total, 1);
}

#[test]
fn pause_and_resume_move_the_status_index_and_watermark() {
    let mut h = Harness::new();
    let created = task(h.apply(Command::CreateTask { spec: spec("a") }));
    let paused = task(h.apply(Command::PauseTask { id: 1 }));
    assert_eq!((paused.status, paused.version), (TaskStatus::Paused, 2));
    // Pausing again is a no-op that succeeds (no version bump).
    assert_eq!(task(h.apply(Command::PauseTask { id: 1 })).version, 2);
    let resumed = task(h.apply(Command::ResumeTask { id: 1 }));
    assert_eq!(resumed.status, TaskStatus::Active);
    assert!(resumed.fire_watermark_ms > created.fire_watermark_ms, "slots during the pause are not fired");
    assert_eq!(h.view().count(TaskStatus::Paused).unwrap(), 0);
    assert_eq!(h.view().list_tasks(Some(TaskStatus::Active), 1, 10).unwrap().items.len(), 1);
}

#[test]
fn update_merges_patch_checks_version_and_revalidates() {
    let mut h = Harness::new();
    task(h.apply(Command::CreateTask { spec: spec("a") }));
    task(h.apply(Command::CreateTask { spec: spec("b") }));
    let patch = TaskPatch { name: Some("c".into()), max_retry: Some(7), ..Default::default() };
    let updated = task(h.apply(Command::UpdateTask { id: 1, patch, expected_version: Some(1) }));
    assert_eq!((updated.spec.name.as_str(), updated.spec.max_retry, updated.version), ("c", 7, 2));
    assert!(h.view().task_by_name("a").unwrap().is_none());
    assert_eq!(h.view().task_by_name("c").unwrap().unwrap().id, 1);

    let stale = TaskPatch { max_retry: Some(1), ..Default::default() };
    let r = rejection(h.apply(Command::UpdateTask { id: 1, patch: stale, expected_version: Some(1) }));
    assert_eq!(r, Rejection::VersionConflict { id: 1, expected: 1, actual: 2 });

    let taken = TaskPatch { name: Some("b".into()), ..Default::default() };
    assert!(matches!(
        rejection(h.apply(Command::UpdateTask { id: 1, patch: taken, expected_version: None })),
        Rejection::NameTaken { .. }
    ));

    // A patch that makes the merged spec invalid is refused by apply itself.
    let bad_tz = TaskPatch { timezone: Some("Mars/Olympus".into()), ..Default::default() };
    match rejection(h.apply(Command::UpdateTask { id: 1, patch: bad_tz, expected_version: None })) {
        Rejection::InvalidSpec(e) => assert_eq!(e.code, "invalid_timezone"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_retried_request_id_returns_the_first_answer_and_applies_once() {
    let mut h = Harness::new();
    let first = h.apply_with("same", 1_000, Command::CreateTask { spec: spec("a") });
    let again = h.apply_with("same", 2_000, Command::CreateTask { spec: spec("a") });
    assert_eq!(first, again, "the retry gets the stored response, not name_taken");
    assert_eq!(h.view().count(TaskStatus::Active).unwrap(), 1);
    // The same id with another command is a client bug, reported as such.
    let other = h.apply_with("same", 3_000, Command::CreateTask { spec: spec("b") });
    assert!(matches!(rejection(other), Rejection::RequestIdReused { .. }));
}

#[test]
fn a_retried_create_after_a_change_answers_with_the_task_as_it_is_now() {
    // The dedupe table keeps a task answer as the task's id (to keep the table small), so a
    // retry after a later change sees that change; it still does not create a second task.
    let mut h = Harness::new();
    let first = task(h.apply_with("create", 1_000, Command::CreateTask { spec: spec("a") }));
    let patch = TaskPatch { description: Some("changed".into()), ..Default::default() };
    task(h.apply_with("update", 2_000, Command::UpdateTask { id: first.id, patch, expected_version: None }));
    let again = task(h.apply_with("create", 3_000, Command::CreateTask { spec: spec("a") }));
    assert_eq!((again.id, again.version, again.spec.description.as_str()), (first.id, 2, "changed"));
    assert_eq!(h.view().count(TaskStatus::Active).unwrap(), 1);

    // A table written before this change (whole answers, `V1`) still replays its answer.
    let command = Command::CreateTask { spec: spec("b") };
    let stored =
        StoredDedupe::V1 { at_ms: 1_000, fingerprint: fingerprint(&command).unwrap(), response: Response::Empty };
    h.tree.insert(dedupe_key("old"), codec::encode(&stored).unwrap()).unwrap();
    assert_eq!(h.apply_with("old", 4_000, command), Response::Empty);
    assert!(h.view().task_by_name("b").unwrap().is_none(), "a replay applies nothing");
}

#[test]
fn dedupe_entries_expire_by_request_time() {
    let mut h = Harness::new();
    h.apply_with("old", 0, Command::CreateTask { spec: spec("a") });
    // A day later, applying any request evicts the expired id, so it can be reused.
    h.apply_with("new", DEDUPE_TTL_MS + 10, Command::PauseTask { id: 1 });
    assert!(h.tree.get(dedupe_key("old")).unwrap().is_none());
    assert!(h.tree.get(dedupe_key("new")).unwrap().is_some());
}

#[test]
fn an_id_remembered_with_an_older_time_than_expired_ones_still_expires() {
    // Expiry walks the time index from a floor above what it already expired; a request whose
    // clock is behind lands below that floor and must lower it, or it would never expire.
    let mut h = Harness::new();
    h.apply_with("first", 0, Command::CreateTask { spec: spec("a") });
    h.apply_with("second", DEDUPE_TTL_MS + 1_000, Command::PauseTask { id: 1 });
    h.apply_with("third", 2 * DEDUPE_TTL_MS + 2_000, Command::ResumeTask { id: 1 });
    assert!(h.tree.get(dedupe_key("second")).unwrap().is_none(), "expired, the floor moved past it");
    h.apply_with("late", 500, Command::PauseTask { id: 1 });
    assert!(h.tree.get(dedupe_key("late")).unwrap().is_some(), "remembered although below the floor");
    h.apply_with("fourth", 3 * DEDUPE_TTL_MS + 3_000, Command::ResumeTask { id: 1 });
    assert!(h.tree.get(dedupe_key("late")).unwrap().is_none(), "below the old floor, expired anyway");
    assert!(h.tree.get(dedupe_key("third")).unwrap().is_none());
    assert!(h.tree.get(dedupe_key("fourth")).unwrap().is_some());
}

#[test]
fn replicas_applying_the_same_requests_have_the_same_digest() {
    let mut a = Harness::new();
    let mut b = Harness::new();
    for h in [&mut a, &mut b] {
        h.apply(Command::CreateTask { spec: spec("a") });
        h.apply(Command::PauseTask { id: 1 });
        h.apply(Command::CreateTask { spec: spec("b") });
    }
    assert_eq!(a.view().digest().unwrap(), b.view().digest().unwrap());
    a.apply(Command::DeleteTask { id: 2 });
    assert_ne!(a.view().digest().unwrap(), b.view().digest().unwrap());
}

mod dispatch;
mod fire;
mod golden;
mod layering;
mod listing;
mod notify;
mod outcomes;
mod summaries;

#[test]
fn tasks_after_walks_every_task_of_a_status_by_cursor() {
    let mut h = Harness::new();
    for i in 0..7 {
        task(h.apply(Command::CreateTask { spec: spec(&format!("t{i}")) }));
    }
    task(h.apply(Command::PauseTask { id: 3 }));
    let v = h.view();
    let first = v.tasks_after(TaskStatus::Active, 0, 4).unwrap();
    assert_eq!(first.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1, 2, 4, 5]);
    let rest = v.tasks_after(TaskStatus::Active, 5, 4).unwrap();
    assert_eq!(rest.iter().map(|t| t.id).collect::<Vec<_>>(), vec![6, 7]);
    assert_eq!(v.tasks_after(TaskStatus::Paused, 0, 10).unwrap()[0].id, 3);
}

#[test]
fn an_update_reschedules_from_the_next_slot_after_it() {
    let mut h = Harness::new();
    let created = task(h.apply_with("c", 1_000, Command::CreateTask { spec: spec("a") }));
    assert_eq!(created.fire_watermark_ms, 1_000);
    let patch = TaskPatch { cron_expression: Some("*/5 * * * * *".into()), ..Default::default() };
    let updated = task(h.apply_with("u", 90_000, Command::UpdateTask { id: 1, patch, expected_version: None }));
    // Slots at or before the update are never fired under the new schedule.
    assert_eq!(updated.fire_watermark_ms, 90_000);
}

#[test]
fn a_batch_applies_each_request_in_order_with_its_own_dedupe() {
    let mut h = Harness::new();
    let req = |id: &str, command| Request { request_id: id.into(), now_ms: 5, command };
    let batch = Command::Batch(vec![
        req("a", Command::CreateTask { spec: spec("x") }),
        req("b", Command::CreateTask { spec: spec("x") }),
        req("a", Command::CreateTask { spec: spec("x") }),
        req("c", Command::PauseTask { id: 1 }),
    ]);
    let Response::Batch(out) = h.apply_with("", 5, batch) else { panic!("not a batch response") };
    assert_eq!(out.len(), 4);
    assert_eq!(task(out[0].clone()).id, 1);
    assert!(matches!(rejection(out[1].clone()), Rejection::NameTaken { .. }), "sees the first request's write");
    assert_eq!(out[2], out[0], "a repeated request id inside the batch replays");
    assert_eq!(task(out[3].clone()).status, TaskStatus::Paused);
    // A later retry of a batched request outside any batch gets the same answer.
    assert_eq!(h.apply_with("b", 9, Command::CreateTask { spec: spec("x") }), out[1]);
}
