//! The leader's timer structure: when each active task is next due.
//!
//! A min-heap of `(next slot, task id, generation)` plus one small map entry per task. Tens of
//! bytes per task, no tokio task per task, and a tick costs O(due · log N), never a scan of all
//! tasks. Entries are never removed from the middle of the heap: a task that changes gets a new
//! generation, and popped entries whose generation is not the task's current one are dropped
//! (lazy deletion).
//!
//! `fired_through` is the latest slot this leader has *proposed* for the task. It runs ahead of
//! the replicated watermark while a fire is in flight, so a slot is not proposed twice by the
//! same leader; if a proposal fails, the scheduler rebuilds from the replicated state (where
//! re-proposing is harmless: apply ignores slots at or before the watermark).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use cronraft_raft::command::{MissedSpan, TaskFire, FIRE_SLOTS_PER_TASK_MAX};
use cronraft_raft::model::{Task, TaskStatus};
use cronraft_raft::schedule::{DstPolicy, Schedule};
use cronraft_raft::spec::parse_schedule;

/// Most slots enumerated for one task in one tick; a longer backlog continues next tick.
const SCAN_SLOTS_MAX: usize = 1_000_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The task version the timer was computed from.
    version: u64,
    /// Bumped on every change of the entry; heap entries with another generation are stale.
    generation: u32,
    /// Latest slot proposed (or replicated watermark).
    fired_through: i64,
}

/// Distinct parsed schedules kept; the cache is cleared when it would grow past this.
const SCHEDULE_CACHE_MAX: usize = 4_096;

/// Next-due times of every active task.
#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(i64, u64, u32)>>,
    tasks: HashMap<u64, Entry>,
    /// Parsed schedules by (expression, zone, DST policy): tasks often share an expression, and
    /// parsing costs far more than computing a next slot. Bounded by [`SCHEDULE_CACHE_MAX`].
    schedules: HashMap<(String, String, DstPolicy), Arc<Schedule>>,
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

impl Timers {
    /// How many tasks have a timer.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The earliest due time, if any (may be a stale entry; harmless: it only wakes the loop).
    pub fn next_due(&self) -> Option<i64> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Adds, refreshes or removes the task's timer from its replicated record. A task whose
    /// version is unchanged keeps its timer (fires do not change the version).
    pub fn upsert(&mut self, task: &Task) {
        if task.status != TaskStatus::Active {
            self.tasks.remove(&task.id);
            return;
        }
        let entry = self.tasks.get(&task.id).copied();
        if matches!(entry, Some(e) if e.version == task.version) {
            return;
        }
        let generation = entry.map(|e| e.generation.wrapping_add(1)).unwrap_or(0);
        let fired_through = task.fire_watermark_ms;
        self.tasks.insert(task.id, Entry { version: task.version, generation, fired_through });
        self.schedule_next(task, fired_through, generation);
    }

    /// Forgets a task (gone from the state).
    pub fn remove(&mut self, id: u64) {
        self.tasks.remove(&id);
    }

    /// The task's parsed schedule, from the cache when possible.
    fn schedule(&mut self, task: &Task) -> Option<Arc<Schedule>> {
        let s = &task.spec;
        let key = (s.cron_expression.clone(), s.timezone.clone(), s.dst_policy);
        if let Some(found) = self.schedules.get(&key) {
            return Some(found.clone());
        }
        let parsed = Arc::new(parse_schedule(s).ok()?);
        if self.schedules.len() >= SCHEDULE_CACHE_MAX {
            self.schedules.clear();
        }
        self.schedules.insert(key, parsed.clone());
        Some(parsed)
    }

    fn schedule_next(&mut self, task: &Task, after_ms: i64, generation: u32) {
        let next = self.schedule(task).and_then(|s| s.next_after(at(after_ms)));
        match next {
            Some(t) => self.heap.push(Reverse((t.timestamp_millis(), task.id, generation))),
            None => {
                self.tasks.remove(&task.id);
            }
        }
    }

    /// Pops the next task due at `now_ms` (current entries only; stale ones are dropped).
    pub fn pop_due(&mut self, now_ms: i64) -> Option<u64> {
        while let Some(Reverse((t, id, generation))) = self.heap.peek().copied() {
            if t > now_ms {
                return None;
            }
            self.heap.pop();
            if self.tasks.get(&id).map(|e| e.generation) == Some(generation) {
                return Some(id);
            }
        }
        None
    }

    /// The fire for a due task: every slot after what was already fired, up to `now_ms`
    /// (the newest [`FIRE_SLOTS_PER_TASK_MAX`] listed, older ones summarized), and the task's
    /// next timer. `None` if the task changed under us (its timer is rebuilt by `upsert`).
    pub fn fire(&mut self, task: &Task, now_ms: i64) -> Option<TaskFire> {
        let entry = *self.tasks.get(&task.id)?;
        if entry.version != task.version || task.status != TaskStatus::Active {
            return None;
        }
        let schedule = self.schedule(task)?;
        let mut after = entry.fired_through.max(task.fire_watermark_ms);
        let mut listed: VecDeque<i64> = VecDeque::new();
        let mut span: Option<MissedSpan> = None;
        for next in schedule.slots_ms(after, now_ms).take(SCAN_SLOTS_MAX) {
            if listed.len() == FIRE_SLOTS_PER_TASK_MAX {
                let old = listed.pop_front().unwrap_or(next);
                let s = span.get_or_insert(MissedSpan { first_ms: old, last_ms: old, count: 0 });
                (s.last_ms, s.count) = (old, s.count + 1);
            }
            listed.push_back(next);
            after = next;
        }
        let generation = entry.generation.wrapping_add(1);
        self.tasks.insert(task.id, Entry { fired_through: after, generation, ..entry });
        self.schedule_next(task, after, generation);
        if listed.is_empty() {
            return None;
        }
        Some(TaskFire { task_id: task.id, task_version: task.version, slots: listed.into(), missed_before: span })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tests::spec;

    fn task(id: u64, version: u64, cron: &str, watermark_ms: i64) -> Task {
        let spec = spec(&format!("t{id}"), cron);
        Task {
            id,
            spec,
            status: TaskStatus::Active,
            created_at_ms: 0,
            updated_at_ms: 0,
            version,
            fire_watermark_ms: watermark_ms,
        }
    }

    #[test]
    fn due_tasks_pop_in_time_order_and_rearm() {
        let mut t = Timers::default();
        t.upsert(&task(1, 1, "*/10 * * * * *", 0)); // next at 10 s
        t.upsert(&task(2, 1, "*/3 * * * * *", 0)); // next at 3 s
        assert_eq!(t.next_due(), Some(3_000));
        assert_eq!(t.pop_due(2_999), None);
        assert_eq!(t.pop_due(10_000), Some(2));
        let fire = t.fire(&task(2, 1, "*/3 * * * * *", 0), 10_000).unwrap();
        assert_eq!(fire.slots, vec![3_000, 6_000, 9_000], "every slot since the watermark, once");
        assert_eq!(t.pop_due(10_000), Some(1));
        assert_eq!(t.fire(&task(1, 1, "*/10 * * * * *", 0), 10_000).unwrap().slots, vec![10_000]);
        // Re-armed after what was proposed, not after the replicated watermark.
        assert_eq!(t.next_due(), Some(12_000));
        assert_eq!(t.pop_due(12_000), Some(2));
        assert_eq!(t.fire(&task(2, 1, "*/3 * * * * *", 0), 12_000).unwrap().slots, vec![12_000]);
    }

    #[test]
    fn changes_replace_timers_lazily_and_pauses_remove_them() {
        let mut t = Timers::default();
        t.upsert(&task(1, 1, "*/10 * * * * *", 0));
        // A fire does not change the version: the timer is kept as it is.
        t.upsert(&task(1, 1, "*/10 * * * * *", 5_000));
        // An update (new version) re-arms from its watermark; the old heap entry goes stale.
        t.upsert(&task(1, 2, "*/2 * * * * *", 5_000));
        assert_eq!(t.pop_due(6_000), Some(1));
        assert_eq!(t.pop_due(20_000), None, "the stale 10 s entry is dropped");
        let mut paused = task(1, 3, "*/2 * * * * *", 5_000);
        paused.status = TaskStatus::Paused;
        t.upsert(&paused);
        assert!(t.is_empty());
        // A fire computed from an older version than the timer's is not produced.
        t.upsert(&task(1, 4, "*/2 * * * * *", 5_000));
        assert!(t.fire(&task(1, 3, "*/2 * * * * *", 5_000), 9_000).is_none());
    }

    #[test]
    fn a_long_backlog_lists_the_newest_slots_and_summarizes_the_rest() {
        let mut t = Timers::default();
        let every_second = task(1, 1, "* * * * * *", 0);
        t.upsert(&every_second);
        let fire = t.fire(&every_second, 5_000_000).unwrap();
        assert_eq!(fire.slots.len(), FIRE_SLOTS_PER_TASK_MAX);
        assert_eq!(*fire.slots.last().unwrap(), 5_000_000);
        let span = fire.missed_before.unwrap();
        assert_eq!((span.first_ms, span.last_ms, span.count), (1_000, 4_000_000, 4_000));
        assert_eq!(span.count as usize + fire.slots.len(), 5_000, "every slot accounted for");
    }
}
