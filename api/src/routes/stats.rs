//! `GET /api/v1/tasks/{id}/stats`: success rates, durations and schedule conformance of one task
//! over the last 24 hours, 7 days and 90 days, a daily trend, and a health score; and
//! `GET /api/v1/stats`: the same over every task, plus the fires and missed slots of the last
//! hour.
//!
//! Apply keeps hourly rollups per task and for the cluster (`cronraft_raft::state::stats`), so a
//! report reads at most 90 × 24 small records whatever the history or the number of tasks (and
//! the cluster's one ring of minutes). The windows end at this node's clock (reads are not
//! replicated); the read passes the same consistency barrier as the other reads.

use axum::extract::State;
use axum::Json;
use cronraft_raft::state::{LastHour, TaskStats, WindowStats};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::context::{now_ms, Ctx};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiPath, ApiQuery};
use crate::handler::ReadQuery;
use crate::routes::tasks::resolve;
use crate::types::{ClusterStatsView, DailyStatsView, LastHourView, StatsWindows, TaskStatsView, WindowStatsView};
use crate::views::at;

/// Weight of the 7-day success rate in the health score; the on-time ratio has the rest.
pub const HEALTH_SUCCESS_WEIGHT: f64 = 0.7;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(stats)).routes(routes!(cluster_stats))
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn window_view(w: &WindowStats) -> WindowStatsView {
    WindowStatsView {
        total: w.total,
        success: w.success,
        failed: w.failed,
        timeout: w.timeout,
        cancelled: w.cancelled,
        skipped: w.skipped,
        missed: w.missed,
        on_time: w.on_time,
        late: w.late,
        success_rate: w.success_rate().map(round4),
        avg_duration_ms: w.avg_duration_ms().map(|d| d.round() as u64),
        p95_duration_ms: w.p95_duration_ms(),
    }
}

/// `on_time / (on_time + late + missed)`: how many scheduled slots ran when they should have.
fn on_time_ratio(w: &WindowStats) -> Option<f64> {
    let slots = w.on_time + w.late + w.missed;
    (slots > 0).then(|| w.on_time as f64 / slots as f64)
}

/// `round(100 × (0.7 × success_rate + 0.3 × on_time_ratio))` over the last 7 days. When only one
/// of the two has data, it alone makes the score; with neither, there is no score.
pub fn health_score(last_7d: &WindowStats) -> Option<u32> {
    let score = match (last_7d.success_rate(), on_time_ratio(last_7d)) {
        (Some(s), Some(o)) => HEALTH_SUCCESS_WEIGHT * s + (1.0 - HEALTH_SUCCESS_WEIGHT) * o,
        (Some(s), None) => s,
        (None, Some(o)) => o,
        (None, None) => return None,
    };
    Some((100.0 * score).round().clamp(0.0, 100.0) as u32)
}

fn windows_view(s: &TaskStats) -> StatsWindows {
    StatsWindows {
        last_24h: window_view(&s.last_24h),
        last_7d: window_view(&s.last_7d),
        last_90d: window_view(&s.last_90d),
    }
}

fn daily_view(s: &TaskStats) -> Vec<DailyStatsView> {
    s.daily.iter().map(|(day, w)| DailyStatsView { date: at(*day).date_naive(), stats: window_view(w) }).collect()
}

/// The report of task `task_id` as of `now_ms`.
pub fn stats_view(task_id: u64, s: &TaskStats, now_ms: i64) -> TaskStatsView {
    TaskStatsView {
        task_id,
        generated_at: at(now_ms),
        windows: windows_view(s),
        daily: daily_view(s),
        health_score: health_score(&s.last_7d),
    }
}

/// The cluster's report as of `now_ms`.
pub fn cluster_stats_view(s: &TaskStats, last_hour: LastHour, now_ms: i64) -> ClusterStatsView {
    ClusterStatsView {
        generated_at: at(now_ms),
        windows: windows_view(s),
        daily: daily_view(s),
        health_score: health_score(&s.last_7d),
        last_hour: LastHourView { fires: last_hour.fires, missed: last_hour.missed },
    }
}

#[utoipa::path(get, path = "/tasks/{id}/stats", tag = "tasks", params(("id" = String, Path, description = "a task id, or a live task's name"), ReadQuery),
    responses((status = 200, description = "The task's statistics", body = TaskStatsView), crate::openapi::ErrorResponses))]
async fn stats(
    State(ctx): State<Ctx>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<TaskStatsView>, ApiError> {
    ctx.read_barrier(q.consistency).await?;
    let id = resolve(&ctx, &raw)?;
    let state = ctx.sm.view();
    if state.task(id)?.is_none() {
        return Err(ApiError::new(ErrorCode::TaskNotFound, format!("task {id} does not exist")));
    }
    let now = now_ms();
    Ok(Json(stats_view(id, &state.task_stats(id, now)?, now)))
}

#[utoipa::path(get, path = "/stats", tag = "executions", params(ReadQuery),
    responses((status = 200, description = "Every task's statistics together, and the last hour", body = ClusterStatsView), crate::openapi::ErrorResponses))]
async fn cluster_stats(
    State(ctx): State<Ctx>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<ClusterStatsView>, ApiError> {
    ctx.read_barrier(q.consistency).await?;
    let state = ctx.sm.view();
    let now = now_ms();
    Ok(Json(cluster_stats_view(&state.cluster_stats(now)?, state.cluster_last_hour(now)?, now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_score_weighs_success_and_punctuality() {
        let w = |success, failed, on_time, late, missed| WindowStats {
            success,
            failed,
            on_time,
            late,
            missed,
            ..Default::default()
        };
        assert_eq!(health_score(&WindowStats::default()), None);
        assert_eq!(health_score(&w(10, 0, 10, 0, 0)), Some(100));
        // 0.7 × 0.5 + 0.3 × 0.5
        assert_eq!(health_score(&w(1, 1, 1, 0, 1)), Some(50));
        // 0.7 × 0.75 + 0.3 × (2 / 4) = 0.675
        assert_eq!(health_score(&w(3, 1, 2, 1, 1)), Some(68));
        assert_eq!(health_score(&w(0, 0, 0, 0, 4)), Some(0), "only missed slots");
        assert_eq!(health_score(&w(3, 1, 0, 0, 0)), Some(75), "manual runs only: success alone");
    }
}
