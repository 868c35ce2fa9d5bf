//! Turning API input into replicated specs and patches (the views are in [`crate::views`]).
//!
//! The rules themselves live in `cronraft_raft::spec` (apply checks them too); this module maps
//! JSON input onto them and their failures onto API errors.

use cronraft_raft::model::TaskSpec;
use cronraft_raft::spec::{check_spec, SpecError, TaskPatch};

use crate::error::{ApiError, ErrorCode};
use crate::types::TaskInput;

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
