//! The rules a task spec must satisfy, and partial updates of a spec.
//!
//! The API checks these before proposing (to answer with a precise error at once); `apply` checks
//! them again after merging a [`TaskPatch`] into the current spec, because only then is the whole
//! spec known. Both use this one function, so they cannot disagree.

use serde::{Deserialize, Serialize};

use crate::model::{BalanceStrategy, ExecutionMode, MisfirePolicy, TaskSpec};
use crate::schedule::{DstPolicy, Schedule, ScheduleError};

pub const NAME_LEN_MAX: usize = 128;
pub const DESCRIPTION_LEN_MAX: usize = 1024;
/// Largest `parameters` object, as JSON text.
pub const PARAMETERS_BYTES_MAX: usize = 64 * 1024;
pub const MAX_RETRY_MAX: u32 = 100;
pub const TIMEOUT_SECONDS_MAX: u32 = 7 * 24 * 3600;
pub const CATCHUP_WINDOW_SECONDS_MAX: u64 = 30 * 24 * 3600;

/// A rule a spec breaks: a stable machine code and a sentence saying what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    /// `invalid_name`, `invalid_cron_expression`, `invalid_timezone`, `invalid_parameters`,
    /// `parameters_too_large` or `invalid_field`.
    pub code: String,
    pub message: String,
}

fn err(code: &str, message: impl Into<String>) -> SpecError {
    SpecError { code: code.into(), message: message.into() }
}

fn invalid(field: &str, rule: String) -> SpecError {
    err("invalid_field", format!("`{field}` must be {rule}"))
}

/// The fields a `PUT` may change; `None` keeps the current value. `parameters` is JSON text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub cron_expression: Option<String>,
    pub timezone: Option<String>,
    pub parameters: Option<String>,
    pub execution_mode: Option<ExecutionMode>,
    pub load_balance_strategy: Option<BalanceStrategy>,
    pub max_retry: Option<u32>,
    pub timeout_seconds: Option<u32>,
    pub executor: Option<String>,
    pub misfire_policy: Option<MisfirePolicy>,
    pub catchup_window_seconds: Option<u64>,
    pub dst_policy: Option<DstPolicy>,
}

impl TaskPatch {
    /// `base` with every given field replaced.
    pub fn merged_into(&self, base: &TaskSpec) -> TaskSpec {
        let mut s = base.clone();
        let p = self.clone();
        s.name = p.name.unwrap_or(s.name);
        s.description = p.description.unwrap_or(s.description);
        s.cron_expression = p.cron_expression.unwrap_or(s.cron_expression);
        s.timezone = p.timezone.unwrap_or(s.timezone);
        s.parameters = p.parameters.unwrap_or(s.parameters);
        s.execution_mode = p.execution_mode.unwrap_or(s.execution_mode);
        s.load_balance_strategy = p.load_balance_strategy.unwrap_or(s.load_balance_strategy);
        s.max_retry = p.max_retry.unwrap_or(s.max_retry);
        s.timeout_seconds = p.timeout_seconds.unwrap_or(s.timeout_seconds);
        s.executor = p.executor.unwrap_or(s.executor);
        s.misfire_policy = p.misfire_policy.unwrap_or(s.misfire_policy);
        s.catchup_window_seconds = p.catchup_window_seconds.unwrap_or(s.catchup_window_seconds);
        s.dst_policy = p.dst_policy.unwrap_or(s.dst_policy);
        s
    }
}

/// Every rule a spec must satisfy.
pub fn check_spec(spec: &TaskSpec) -> Result<(), SpecError> {
    check_name(&spec.name)?;
    if spec.description.chars().count() > DESCRIPTION_LEN_MAX {
        return Err(invalid("description", format!("at most {DESCRIPTION_LEN_MAX} characters")));
    }
    parse_schedule(spec)?;
    check_parameters(&spec.parameters)?;
    if spec.max_retry > MAX_RETRY_MAX {
        return Err(invalid("max_retry", format!("at most {MAX_RETRY_MAX}")));
    }
    if spec.timeout_seconds == 0 || spec.timeout_seconds > TIMEOUT_SECONDS_MAX {
        return Err(invalid("timeout_seconds", format!("between 1 and {TIMEOUT_SECONDS_MAX}")));
    }
    let executor_ok = !spec.executor.is_empty() && spec.executor.len() <= NAME_LEN_MAX;
    if !executor_ok || spec.executor.chars().any(char::is_control) {
        return Err(invalid("executor", format!("1 to {NAME_LEN_MAX} characters, no control characters")));
    }
    if spec.catchup_window_seconds > CATCHUP_WINDOW_SECONDS_MAX {
        return Err(invalid("catchup_window_seconds", format!("at most {CATCHUP_WINDOW_SECONDS_MAX}")));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), SpecError> {
    let len = name.chars().count();
    if len == 0 || len > NAME_LEN_MAX {
        return Err(err("invalid_name", format!("`name` must be 1 to {NAME_LEN_MAX} characters")));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(err("invalid_name", "`name` must not be all digits (digits address a task id)"));
    }
    if name.chars().any(|c| c.is_control() || c == '/') || name.trim() != name {
        return Err(err(
            "invalid_name",
            "`name` must not contain '/' or control characters, nor start or end with spaces",
        ));
    }
    Ok(())
}

fn check_parameters(text: &str) -> Result<(), SpecError> {
    if text.len() > PARAMETERS_BYTES_MAX {
        let msg = format!("`parameters` is {} bytes as JSON; at most {PARAMETERS_BYTES_MAX}", text.len());
        return Err(err("parameters_too_large", msg));
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) if v.is_object() => Ok(()),
        _ => Err(err("invalid_parameters", "`parameters` must be a JSON object")),
    }
}

/// Parses the spec's schedule, mapping failures to spec errors.
pub fn parse_schedule(spec: &TaskSpec) -> Result<Schedule, SpecError> {
    Schedule::parse_with_policy(&spec.cron_expression, &spec.timezone, spec.dst_policy).map_err(schedule_error)
}

/// The spec error for a schedule that does not parse.
pub fn schedule_error(e: ScheduleError) -> SpecError {
    match e {
        ScheduleError::UnknownTimezone(_) => err("invalid_timezone", e.to_string()),
        _ => err("invalid_cron_expression", e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    /// Cost of parsing a schedule (run with `--ignored --nocapture`, in release).
    #[test]
    #[ignore]
    fn parse_cost() {
        let n = 20_000;
        for expr in ["0 0 0 1 1 *", "*/5 * * * * *", "@every 1s offset 250ms", "0 30 2 * * 1-5"] {
            let started = std::time::Instant::now();
            for _ in 0..n {
                crate::schedule::Schedule::parse(expr, "Europe/Berlin").unwrap();
            }
            println!("parse {expr:?}: {:?} per call", started.elapsed() / n);
        }
    }
}
