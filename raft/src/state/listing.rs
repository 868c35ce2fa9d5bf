//! Filtered listings, for people looking for something (the web console): tasks by name, group,
//! mode and latest result, in several orders; executions by trigger and slot time.
//!
//! Both are reads of [`StateView`] with costs bounded whatever the state holds:
//!
//! - **Tasks**: one pass over the task table (`t/`), joined in key order with the runtime records
//!   (`r/`) when the query needs them (the latest result, the effective watermark for the next
//!   fire). The latest result comes from the runtime record, which apply keeps
//!   ([`super::executions::LastFinal`]): no execution record is read. Sorting by next fire
//!   computes each distinct schedule's next slot once per listing, from parses kept across
//!   listings (parsing is most of that cost). The total is exact.
//! - **Executions**: a newest-first walk over the narrowest index (the task's `y/`, a status'
//!   `z/`, or the records `x/` themselves), reading only each record's head. It starts below the
//!   records created more than [`CREATED_MARGIN_MS`] after `to` (found by a binary search over
//!   ids, since ids follow creation), stops at the first record created more than that margin
//!   before `from`, and reads at most [`WALK_RECORDS_MAX`] records; it stops counting at
//!   [`COUNT_MAX`] matches once the page is full. When a limit cut it short the total is a lower
//!   bound and says so (`total_capped`).
//!
//! A query that asks for nothing beyond the older listings' parameters takes their path
//! ([`StateView::list_tasks`], [`StateView::list_executions`]), unchanged.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use super::executions::{decode_head, decode_runtime, ExecutionHead, TaskRuntime};
use super::keys;
use super::tasks::TaskPage;
use super::StateView;
use crate::codec::parse_key_u64;
use crate::error::StoreError;
use crate::model::{Execution, ExecutionMode, ExecutionStatus, Task, TaskStatus, Trigger};
use crate::schedule::Schedule;
use crate::spec::parse_schedule;

/// A record's creation time is never before its slot by more than clock skew, and creation
/// times follow ids up to skew: the walk's margin around `from` and `to`.
pub const CREATED_MARGIN_MS: i64 = 3_600_000;
/// Most execution records one filtered listing reads.
pub const WALK_RECORDS_MAX: usize = 10_000;
/// A filtered execution listing stops counting here once its page is full.
pub const COUNT_MAX: u64 = 1_000;

/// The order of a task listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TaskSort {
    /// By id, ascending (the listing's natural order).
    #[default]
    Id,
    IdDesc,
    /// By name, case-insensitive; ties by id.
    Name,
    NameDesc,
    /// Soonest next fire first; tasks without one (paused, deleted, no slot left) last.
    NextFire,
    /// Most recently updated first; ties by id.
    UpdatedDesc,
}

/// Which latest results a task listing keeps: the final statuses, and `none` (no execution of
/// the task has ended yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastResultFilter {
    pub statuses: Vec<ExecutionStatus>,
    pub none: bool,
}

/// A task listing's filters and order. `status: None` means active and paused.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    pub status: Option<TaskStatus>,
    /// Already lowercased: a task matches when its lowercased name contains it.
    pub name: Option<String>,
    /// The executor group, exactly.
    pub group: Option<String>,
    pub mode: Option<ExecutionMode>,
    pub last_result: Option<LastResultFilter>,
    pub sort: TaskSort,
}

impl TaskQuery {
    /// Whether it asks only what the plain listing answers.
    pub fn is_plain(&self) -> bool {
        let filtered = self.name.is_some() || self.group.is_some() || self.mode.is_some();
        !filtered && self.last_result.is_none() && self.sort == TaskSort::Id
    }

    fn needs_runtime(&self) -> bool {
        self.last_result.is_some() || self.sort == TaskSort::NextFire
    }

    fn keeps(&self, task: &Task, rt: &TaskRuntime) -> bool {
        let status_ok = match self.status {
            Some(s) => task.status == s,
            None => task.status != TaskStatus::Deleted,
        };
        let name_ok = self.name.as_ref().is_none_or(|n| task.spec.name.to_lowercase().contains(n.as_str()));
        let group_ok = self.group.as_ref().is_none_or(|g| task.spec.executor == *g);
        let mode_ok = self.mode.is_none_or(|m| task.spec.execution_mode == m);
        let result_ok = self.last_result.as_ref().is_none_or(|f| match rt.last_final {
            Some(last) => f.statuses.contains(&last.status),
            None => f.none,
        });
        status_ok && name_ok && group_ok && mode_ok && result_ok
    }
}

/// The first slot of an active task after `now_ms` or its watermark, whichever is later (what
/// a task's `next_fire_time` shows); `None` for a paused or deleted task.
fn next_of(schedule: &Schedule, task: &Task, now_ms: i64) -> Option<i64> {
    if task.status != TaskStatus::Active {
        return None;
    }
    let after = chrono::DateTime::from_timestamp_millis(now_ms.max(task.fire_watermark_ms))?;
    schedule.next_after(after).map(|t| t.timestamp_millis())
}

/// Most schedules kept between listings ([`SCHEDULES`]); the cache is emptied when full.
const SCHEDULES_CACHED_MAX: usize = 20_000;

/// A parsed schedule and the last next slot computed from it: `next_ms` is the first slot after
/// `after_ms`, so it is also the first slot after any instant from `after_ms` up to before it.
struct Known {
    schedule: Option<Arc<Schedule>>,
    after_ms: i64,
    next_ms: Option<i64>,
}

/// Schedules by their text (expression, zone, DST policy), shared by listings: parsing and
/// stepping a calendar are most of the cost of a next fire, and depend on nothing else.
static SCHEDULES: LazyLock<Mutex<HashMap<String, Known>>> = LazyLock::new(Default::default);

/// The schedule with text `key` (parsed from `spec` the first time), and its first slot after
/// `now_ms` (reused while `now_ms` has not reached it).
fn next_after_now(key: &str, spec: &crate::model::TaskSpec, now_ms: i64) -> (Option<Arc<Schedule>>, Option<i64>) {
    let mut cache = SCHEDULES.lock().unwrap_or_else(|p| p.into_inner());
    if !cache.contains_key(key) {
        if cache.len() >= SCHEDULES_CACHED_MAX {
            cache.clear();
        }
        let schedule = parse_schedule(spec).ok().map(Arc::new);
        cache.insert(key.to_string(), Known { schedule, after_ms: i64::MAX, next_ms: None });
    }
    let known = cache.get_mut(key).expect("inserted");
    let fresh = known.after_ms <= now_ms && known.next_ms.is_some_and(|n| now_ms < n);
    if !fresh {
        let after = chrono::DateTime::from_timestamp_millis(now_ms);
        known.next_ms = after.and_then(|t| known.schedule.as_ref()?.next_after(t)).map(|t| t.timestamp_millis());
        known.after_ms = now_ms;
    }
    (known.schedule.clone(), known.next_ms)
}

/// Next fires of one listing, each distinct schedule looked up once (a task whose watermark is
/// past now gets its own next slot).
struct NextFires {
    now_ms: i64,
    known: HashMap<String, (Option<Arc<Schedule>>, Option<i64>)>,
}

impl NextFires {
    fn of(&mut self, task: &Task) -> Option<i64> {
        if task.status != TaskStatus::Active {
            return None;
        }
        let s = &task.spec;
        let key = format!("{}\u{0}{}\u{0}{:?}", s.cron_expression, s.timezone, s.dst_policy);
        let now_ms = self.now_ms;
        let (schedule, after_now) = self.known.entry(key).or_insert_with_key(|key| next_after_now(key, s, now_ms));
        if task.fire_watermark_ms <= now_ms {
            return *after_now;
        }
        next_of(schedule.as_ref()?, task, now_ms)
    }
}

/// The runtime records, read in task id order alongside the task table.
struct RuntimeCursor(std::iter::Peekable<sled::Iter>);

impl RuntimeCursor {
    /// The runtime record of `task` (zeroes if it has none); ids must come in increasing order.
    fn at(&mut self, task: u64) -> Result<TaskRuntime, StoreError> {
        loop {
            let id = match self.0.peek() {
                None => return Ok(TaskRuntime::default()),
                Some(Err(_)) => return Err(self.0.next().and_then(|r| r.err()).expect("peeked an error").into()),
                Some(Ok((k, _))) => keys::parse_runtime(k).unwrap_or(0),
            };
            if id > task {
                return Ok(TaskRuntime::default());
            }
            let (_, v) = self.0.next().expect("peeked")?;
            if id == task {
                return decode_runtime(&v);
            }
        }
    }
}

/// The sort key of a task in a listing (ties broken by id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    None,
    Text(String),
    Time(i64),
}

/// One page of a filtered execution listing, and how many matched.
#[derive(Debug, Clone)]
pub struct ExecutionQueryPage {
    pub items: Vec<Execution>,
    /// Exact, unless `total_capped`: then a lower bound.
    pub total: u64,
    /// The walk stopped at one of its limits, so more records may match.
    pub total_capped: bool,
}

/// An execution listing's filters. `from_ms` is inclusive, `to_ms` exclusive (slot times).
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecutionQuery {
    pub task: Option<u64>,
    pub status: Option<ExecutionStatus>,
    pub trigger: Option<Trigger>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// A cursor: only executions with a smaller id (the next page of a newest-first walk,
    /// whose cost does not grow with how deep it is, unlike `page`).
    pub before_id: Option<u64>,
}

impl ExecutionQuery {
    /// Whether it asks only what the plain listing answers (with an exact total).
    pub fn is_plain(&self) -> bool {
        self.trigger.is_none() && self.from_ms.is_none() && self.to_ms.is_none() && self.before_id.is_none()
    }

    fn keeps(&self, h: &ExecutionHead) -> bool {
        self.task.is_none_or(|t| h.task_id == t)
            && self.status.is_none_or(|s| h.status == s)
            && self.trigger.is_none_or(|t| h.trigger == t)
            && self.from_ms.is_none_or(|f| h.scheduled_ms >= f)
            && self.to_ms.is_none_or(|t| h.scheduled_ms < t)
    }

    /// Whether the walk, newest first, has passed every record that could match `from`.
    fn past_from(&self, h: &ExecutionHead) -> bool {
        self.from_ms.is_some_and(|f| h.created_ms < f.saturating_sub(CREATED_MARGIN_MS))
    }
}

impl StateView {
    /// Tasks matching `q`, in its order, `page` counted from 1; `now_ms` (this node's clock)
    /// places the next fires. Without filters or a sort, the plain listing.
    pub fn query_tasks(&self, q: &TaskQuery, now_ms: i64, page: u64, page_size: u64) -> Result<TaskPage, StoreError> {
        if q.is_plain() {
            return self.list_tasks(q.status, page, page_size);
        }
        let mut keyed = self.matching_tasks(q, now_ms)?;
        keyed.sort_unstable();
        if matches!(q.sort, TaskSort::IdDesc | TaskSort::NameDesc) {
            keyed.reverse();
        }
        let total = keyed.len() as u64;
        let skip = page.saturating_sub(1).saturating_mul(page_size).min(total) as usize;
        let mut items = Vec::new();
        for (_, id) in keyed.iter().skip(skip).take(page_size as usize) {
            items.extend(self.task(*id)?);
        }
        Ok(TaskPage { items, total })
    }

    /// One pass over the task table: the matching tasks' sort keys and ids.
    fn matching_tasks(&self, q: &TaskQuery, now_ms: i64) -> Result<Vec<(SortKey, u64)>, StoreError> {
        let mut runtimes = RuntimeCursor(self.tree.scan_prefix(keys::RUNTIME).peekable());
        let mut next_fires = NextFires { now_ms, known: HashMap::new() };
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(keys::TASK) {
            let (_, v) = kv?;
            let mut task = super::tasks::decode(&v)?;
            let mut rt = TaskRuntime::default();
            if q.needs_runtime() {
                rt = runtimes.at(task.id)?;
                task.fire_watermark_ms = task.fire_watermark_ms.max(rt.watermark_ms);
            }
            if !q.keeps(&task, &rt) {
                continue;
            }
            let key = match q.sort {
                TaskSort::Id | TaskSort::IdDesc => SortKey::None,
                TaskSort::Name | TaskSort::NameDesc => SortKey::Text(task.spec.name.to_lowercase()),
                TaskSort::NextFire => SortKey::Time(next_fires.of(&task).unwrap_or(i64::MAX)),
                TaskSort::UpdatedDesc => SortKey::Time(task.updated_at_ms.saturating_neg()),
            };
            out.push((key, task.id));
        }
        Ok(out)
    }

    /// Executions matching `q`, newest first, `page` counted from 1, by a bounded walk (see the
    /// module docs). Without trigger or time filters, the plain listing with its exact total.
    pub fn query_executions(
        &self,
        q: &ExecutionQuery,
        page: u64,
        page_size: u64,
    ) -> Result<ExecutionQueryPage, StoreError> {
        if q.is_plain() {
            let found = self.list_executions(q.task, q.status, page, page_size)?;
            return Ok(ExecutionQueryPage { items: found.items, total: found.total, total_capped: false });
        }
        let skip = page.saturating_sub(1).saturating_mul(page_size);
        let enough = skip.saturating_add(page_size).max(COUNT_MAX);
        let (prefix, direct) = match (q.task, q.status) {
            (Some(t), _) => (keys::execution_by_task_prefix(t), false),
            (None, Some(s)) => (keys::execution_by_status_prefix(s), false),
            (None, None) => (keys::EXECUTION.to_vec(), true),
        };
        let below = match q.to_ms {
            Some(to) => self.first_id_created_after(to.saturating_add(CREATED_MARGIN_MS))?,
            None => u64::MAX,
        };
        let below = below.min(q.before_id.unwrap_or(u64::MAX));
        let end = [prefix.as_slice(), &crate::codec::key_u64(below)].concat();
        let mut out = ExecutionQueryPage { items: Vec::new(), total: 0, total_capped: false };
        for (read, kv) in self.tree.range(prefix.clone()..end).rev().enumerate() {
            if read == WALK_RECORDS_MAX || out.total >= enough {
                out.total_capped = true;
                break;
            }
            let (k, v) = kv?;
            let bytes = if direct {
                v
            } else {
                let id = parse_key_u64(&k[prefix.len()..]).unwrap_or(0);
                match self.tree.get(keys::execution(id))? {
                    Some(b) => b,
                    None => continue,
                }
            };
            let head = decode_head(&bytes)?;
            if q.past_from(&head) {
                break;
            }
            if q.keeps(&head) {
                out.total += 1;
                if out.total > skip && out.items.len() < page_size as usize {
                    out.items.push(super::executions::decode_execution(&bytes)?);
                }
            }
        }
        Ok(out)
    }

    /// The smallest execution id such that every record from it on was created after `bound_ms`,
    /// as far as a binary search over ids can tell (creation times follow ids up to clock skew).
    fn first_id_created_after(&self, bound_ms: i64) -> Result<u64, StoreError> {
        let Some(last) = self.tree.scan_prefix(keys::EXECUTION).keys().next_back().transpose()? else { return Ok(0) };
        let (mut lo, mut hi) = (0u64, parse_key_u64(&last[keys::EXECUTION.len()..]).unwrap_or(0).saturating_add(1));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            // The first record at or after `mid` (ids purged by retention leave gaps).
            let found = self.tree.range(keys::execution(mid)..).next().transpose()?;
            match found.filter(|(k, _)| k.starts_with(keys::EXECUTION)) {
                Some((_, v)) => {
                    let head = decode_head(&v)?;
                    if head.created_ms <= bound_ms {
                        lo = head.id.saturating_add(1).min(hi);
                    } else {
                        hi = mid;
                    }
                }
                None => hi = mid,
            }
        }
        Ok(lo)
    }
}
