//! Turning API input into replicated specs and patches, and replicated records into views.
//!
//! The rules themselves live in `cronraft_raft::spec` (apply checks them too); this module maps
//! JSON input onto them and their failures onto API errors.

use chrono::{DateTime, TimeZone, Utc};
use cronraft_raft::model::{Task, TaskSpec, TaskStatus};
use cronraft_raft::spec::{check_spec, parse_schedule, SpecError, TaskPatch};

use crate::error::{ApiError, ErrorCode};
use crate::types::{TaskInput, TaskView};

pub mod executor;
pub use executor::{executor_spec, status_reason, task_upserts};

impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> Self {
        let code = match e.code.as_str() {
            "invalid_name" => ErrorCode::InvalidName,
            "invalid_cron_expression" => ErrorCode::InvalidCronExpression,
            "invalid_timezone" => ErrorCode::InvalidTimezone,
            "invalid_parameters" => ErrorCode::InvalidParameters,
            "parameters_too_large" => ErrorCode::ParametersTooLarge,
            _ => ErrorCode::InvalidField,
        };
        ApiError::new(code, e.message)
    }
}

/// Builds the spec of a new task; `name` and `cron_expression` are required.
pub fn new_spec(input: TaskInput) -> Result<TaskSpec, ApiError> {
    if input.version.is_some() {
        return Err(ApiError::new(ErrorCode::InvalidField, "`version` is only accepted by PUT"));
    }
    let name = input.name.clone().ok_or_else(|| missing("name"))?;
    let cron_expression = input.cron_expression.clone().ok_or_else(|| missing("cron_expression"))?;
    let base = TaskSpec::new(&name, &cron_expression);
    let spec = patch(input)?.0.merged_into(&base);
    check_spec(&spec)?;
    Ok(spec)
}

/// The patch of a `PUT`, and the version it expects.
pub fn patch(input: TaskInput) -> Result<(TaskPatch, Option<u64>), ApiError> {
    let parameters = match input.parameters {
        Some(v) if !v.is_object() => {
            return Err(ApiError::new(ErrorCode::InvalidParameters, "`parameters` must be a JSON object"))
        }
        Some(v) => Some(v.to_string()),
        None => None,
    };
    let p = TaskPatch {
        name: input.name,
        description: input.description,
        cron_expression: input.cron_expression,
        timezone: input.timezone,
        parameters,
        execution_mode: input.execution_mode,
        load_balance_strategy: input.load_balance_strategy,
        max_retry: input.max_retry,
        timeout_seconds: input.timeout_seconds,
        executor: input.executor,
        misfire_policy: input.misfire_policy,
        catchup_window_seconds: input.catchup_window_seconds,
        dst_policy: input.dst_policy,
    };
    if p == TaskPatch::default() {
        return Err(ApiError::new(ErrorCode::EmptyUpdate, "the update names no field to change"));
    }
    Ok((p, input.version))
}

fn missing(field: &str) -> ApiError {
    ApiError::new(ErrorCode::MissingField, format!("`{field}` is required"))
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The view of a task; `now_ms` is this node's clock, used only to show the next slot.
pub fn task_view(task: &Task, now_ms: i64) -> TaskView {
    let s = &task.spec;
    let next_fire_time = match task.status {
        TaskStatus::Active => {
            parse_schedule(s).ok().and_then(|sched| sched.next_after(at(now_ms.max(task.fire_watermark_ms))))
        }
        _ => None,
    };
    TaskView {
        id: task.id,
        name: s.name.clone(),
        description: s.description.clone(),
        cron_expression: s.cron_expression.clone(),
        timezone: s.timezone.clone(),
        parameters: serde_json::from_str(&s.parameters).unwrap_or(serde_json::Value::Null),
        execution_mode: s.execution_mode,
        load_balance_strategy: s.load_balance_strategy,
        max_retry: s.max_retry,
        timeout_seconds: s.timeout_seconds,
        executor: s.executor.clone(),
        misfire_policy: s.misfire_policy,
        catchup_window_seconds: s.catchup_window_seconds,
        dst_policy: s.dst_policy,
        status: task.status,
        version: task.version,
        next_fire_time,
        created_at: at(task.created_at_ms),
        updated_at: at(task.updated_at_ms),
    }
}
