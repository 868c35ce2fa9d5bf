//! The JSON shapes of `GET /api/v1/tasks/{id}/stats` and `GET /api/v1/stats`: windows over the
//! hourly rollups that apply keeps per task and for the cluster, a daily trend, a health score,
//! and for the cluster its last hour.
//!
//! The numbers come from `cronraft_raft::state::stats` (counted in apply, so every replica
//! agrees); this module only names them and derives the rates. The formula of the health score
//! is documented in `docs/reference/api.md`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Counts and derived figures over one window (or one day).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct WindowStatsView {
    /// Executions that reached a final status (a summarized `missed` record counts its slots).
    pub total: u64,
    pub success: u64,
    pub failed: u64,
    pub timeout: u64,
    pub cancelled: u64,
    pub skipped: u64,
    pub missed: u64,
    /// Scheduled slots fired within a second of their time, and those fired later.
    pub on_time: u64,
    pub late: u64,
    /// `success / (success + failed + timeout)`, 0 to 1; null when no run ended that way.
    pub success_rate: Option<f64>,
    /// Mean run time of runs with a start and an end, in whole milliseconds.
    pub avg_duration_ms: Option<u64>,
    /// An upper bound of the 95th percentile run time (histogram buckets doubling from 10 ms).
    pub p95_duration_ms: Option<u64>,
}

/// The three windows, ending now.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct StatsWindows {
    #[serde(rename = "24h")]
    pub last_24h: WindowStatsView,
    #[serde(rename = "7d")]
    pub last_7d: WindowStatsView,
    #[serde(rename = "90d")]
    pub last_90d: WindowStatsView,
}

/// One UTC day of the trend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DailyStatsView {
    /// `2026-11-23` (UTC).
    pub date: NaiveDate,
    #[serde(flatten)]
    pub stats: WindowStatsView,
}

/// `GET /tasks/{id}/stats`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct TaskStatsView {
    pub task_id: u64,
    /// The answering node's clock: the windows end here.
    pub generated_at: DateTime<Utc>,
    pub windows: StatsWindows,
    /// Days of the last 90 that had anything, oldest first.
    pub daily: Vec<DailyStatsView>,
    /// 0 to 100 from the last 7 days' success rate and on-time ratio; null without data.
    pub health_score: Option<u32>,
}

/// `GET /stats`: the shape of a task's report over every task's executions, plus the last hour.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ClusterStatsView {
    /// The answering node's clock: the windows end here.
    pub generated_at: DateTime<Utc>,
    pub windows: StatsWindows,
    /// Days of the last 90 that had anything, oldest first.
    pub daily: Vec<DailyStatsView>,
    /// 0 to 100, as a task's, over every task's last 7 days; null without data.
    pub health_score: Option<u32>,
    /// Slots of the last 60 minutes (by slot time, the current minute included).
    pub last_hour: LastHourView,
}

/// Fires and missed slots of the last 60 minutes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct LastHourView {
    /// Scheduled slots fired (`on_time + late` of a window).
    pub fires: u64,
    /// Slots recorded `missed` (a summarized record counts each slot).
    pub missed: u64,
}
