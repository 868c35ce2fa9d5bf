//! Turning a registration body into the replicated `ExecutorSpec` and task upserts.
//!
//! The registry in apply trusts the shape of what it gets (it re-checks only the merged task
//! specs), so every rule about an instance is enforced here, before anything is proposed: names,
//! URLs the dispatcher can actually call (`http://` or `https://`),
//! metadata size and the numbers read out of it. Tasks named in a registration follow the task
//! rules and codes of `POST /tasks`, with the executor group forced to the registering group.

use cronraft_raft::command::TaskUpsert;
use cronraft_raft::model::{ExecutorSpec, TaskSpec};
use cronraft_raft::spec::{check_spec, NAME_LEN_MAX};

use super::{new_spec, patch};
use crate::error::{ApiError, ErrorCode};
use crate::protocol::{RegisterRequest, RegisterTask};
use crate::types::TaskInput;

/// Largest `metadata` object, as compact JSON text.
pub const METADATA_BYTES_MAX: usize = 16 * 1024;
/// Largest `capacity`, `weight` (in metadata) and a task's binding `weight` and `priority`.
pub const EXECUTOR_NUMBER_MAX: u64 = 1_000_000;
/// Most tasks one registration may upsert.
pub const REGISTER_TASKS_MAX: usize = 100;
/// Longest `base_url` or `health_check_url`.
pub const URL_BYTES_MAX: usize = 2048;
/// Longest reason given with a status change.
pub const STATUS_REASON_LEN_MAX: usize = 512;

/// The spec of the registering instance.
pub fn executor_spec(req: &RegisterRequest) -> Result<ExecutorSpec, ApiError> {
    check_label("name", &req.name)?;
    check_label("instance_id", &req.instance_id)?;
    if req.instance_id.chars().all(|c| c.is_ascii_digit()) {
        let msg = "`instance_id` must not be all digits (digits address an executor id in paths)";
        return Err(ApiError::new(ErrorCode::InvalidField, msg));
    }
    let base_url = check_url("base_url", &req.base_url)?.trim_end_matches('/').to_string();
    let health_check_url = match &req.health_check_url {
        Some(u) => check_url("health_check_url", u)?,
        None => format!("{base_url}/health"),
    };
    let metadata = req.metadata.clone().unwrap_or_else(|| serde_json::json!({}));
    let Some(map) = metadata.as_object() else {
        return Err(ApiError::new(ErrorCode::InvalidMetadata, "`metadata` must be a JSON object"));
    };
    let text = metadata.to_string();
    if text.len() > METADATA_BYTES_MAX {
        let msg = format!("`metadata` is {} bytes as JSON; at most {METADATA_BYTES_MAX}", text.len());
        return Err(ApiError::new(ErrorCode::MetadataTooLarge, msg));
    }
    let number = |key: &str, default: u32| -> Result<u32, ApiError> {
        match map.get(key) {
            None | Some(serde_json::Value::Null) => Ok(default),
            Some(v) => match v.as_u64() {
                Some(n) if n <= EXECUTOR_NUMBER_MAX => Ok(n as u32),
                _ => Err(ApiError::new(
                    ErrorCode::InvalidMetadata,
                    format!("`metadata.{key}` must be an integer from 0 to {EXECUTOR_NUMBER_MAX}, not {v}"),
                )),
            },
        }
    };
    let capacity = number("capacity", 0)?;
    let weight = number("weight", 1)?;
    Ok(ExecutorSpec {
        name: req.name.clone(),
        instance_id: req.instance_id.clone(),
        base_url,
        health_check_url,
        metadata: text,
        capacity,
        weight,
    })
}

/// The upserts of the registration's tasks. `existing` finds the live task of a name (a pre-read
/// on the leader: a task that exists need not repeat its cron expression, and a patch that would
/// break it is refused before it takes a log entry; apply checks again).
pub fn task_upserts(
    group: &str,
    tasks: &[RegisterTask],
    existing: impl Fn(&str) -> Result<Option<TaskSpec>, ApiError>,
) -> Result<Vec<TaskUpsert>, ApiError> {
    if tasks.len() > REGISTER_TASKS_MAX {
        let msg = format!("a registration may name at most {REGISTER_TASKS_MAX} tasks, not {}", tasks.len());
        return Err(ApiError::new(ErrorCode::TooManyTasks, msg));
    }
    let mut out: Vec<TaskUpsert> = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.iter().enumerate() {
        let at = |e: ApiError| ApiError { message: format!("tasks[{i}] ({:?}): {}", t.task_name, e.message), ..e };
        if let Some(j) = out.iter().position(|u| u.create.name == t.task_name) {
            return Err(at(ApiError::new(ErrorCode::InvalidField, format!("the same task is named in tasks[{j}]"))));
        }
        let input = TaskInput {
            name: Some(t.task_name.clone()),
            cron_expression: t.cron.clone(),
            timezone: t.timezone.clone(),
            parameters: t.parameters.clone(),
            execution_mode: t.execution_mode,
            load_balance_strategy: t.load_balance_strategy,
            max_retry: t.max_retry,
            timeout_seconds: t.timeout,
            executor: Some(group.to_string()),
            ..Default::default()
        };
        let (task_patch, _) = patch(input.clone()).map_err(at)?;
        let create = match existing(&t.task_name)? {
            Some(current) => {
                // Were the task deleted before the entry applies, it would be re-created as it
                // would have become.
                let merged = task_patch.merged_into(&current);
                check_spec(&merged).map_err(|e| at(e.into()))?;
                merged
            }
            None if t.cron.is_none() => {
                let msg = "`cron` (or `cron_expression`) is required for a task that does not exist yet";
                return Err(at(ApiError::new(ErrorCode::MissingField, msg)));
            }
            None => new_spec(input).map_err(at)?,
        };
        let weight = bounded("weight", t.weight.unwrap_or(0)).map_err(at)?;
        let priority = bounded("priority", t.priority.unwrap_or(0)).map_err(at)?;
        out.push(TaskUpsert { create, patch: task_patch, weight, priority });
    }
    Ok(out)
}

/// A status change's reason.
pub fn status_reason(reason: Option<String>) -> Result<String, ApiError> {
    let reason = reason.unwrap_or_default();
    if reason.chars().count() > STATUS_REASON_LEN_MAX || reason.chars().any(char::is_control) {
        let msg = format!("`reason` must be at most {STATUS_REASON_LEN_MAX} characters, no control characters");
        return Err(ApiError::new(ErrorCode::InvalidField, msg));
    }
    Ok(reason)
}

fn bounded(field: &str, n: u32) -> Result<u32, ApiError> {
    if u64::from(n) > EXECUTOR_NUMBER_MAX {
        let msg = format!("`{field}` must be at most {EXECUTOR_NUMBER_MAX}");
        return Err(ApiError::new(ErrorCode::InvalidField, msg));
    }
    Ok(n)
}

/// `name` and `instance_id`: 1 to 128 bytes (the limit of a task's `executor`, which names the
/// group), no control characters, no surrounding whitespace.
fn check_label(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > NAME_LEN_MAX || value.chars().any(char::is_control) || value.trim() != value {
        let msg = format!(
            "`{field}` must be 1 to {NAME_LEN_MAX} bytes, with no control characters and no surrounding spaces"
        );
        return Err(ApiError::new(ErrorCode::InvalidField, msg));
    }
    Ok(())
}

/// A URL the dispatcher and health checker can call: `http(s)://host[:port]/…`, no query,
/// fragment or credentials. Returns it as given.
fn check_url(field: &str, raw: &str) -> Result<String, ApiError> {
    let bad = |why: String| ApiError::new(ErrorCode::InvalidUrl, format!("`{field}` {why}"));
    if raw.len() > URL_BYTES_MAX {
        return Err(bad(format!("must be at most {URL_BYTES_MAX} bytes")));
    }
    let url = reqwest::Url::parse(raw).map_err(|e| bad(format!("is not a URL ({e}): {raw:?}")))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(bad(format!("must be an http:// or https:// URL, not {other}:// ({raw:?})"))),
    }
    if url.host_str().map(str::is_empty).unwrap_or(true) || url.port_or_known_default().is_none() {
        return Err(bad(format!("must name a host and port: {raw:?}")));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad(format!("must not carry a query, a fragment or credentials: {raw:?}")));
    }
    Ok(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(base_url: &str, metadata: serde_json::Value) -> RegisterRequest {
        RegisterRequest {
            name: "g".into(),
            instance_id: "i-1".into(),
            base_url: base_url.into(),
            metadata: Some(metadata),
            ..Default::default()
        }
    }

    fn code(r: Result<ExecutorSpec, ApiError>) -> &'static str {
        r.expect_err("refused").code.as_str()
    }

    #[test]
    fn urls_are_http_or_https_with_a_host() {
        let spec = executor_spec(&req("http://10.0.0.5:9000/", serde_json::json!({}))).unwrap();
        assert_eq!(spec.base_url, "http://10.0.0.5:9000");
        assert_eq!(spec.health_check_url, "http://10.0.0.5:9000/health");
        assert_eq!((spec.capacity, spec.weight), (0, 1));
        assert_eq!(
            executor_spec(&req("http://agent.local", serde_json::json!({}))).unwrap().base_url,
            "http://agent.local"
        );
        let https = executor_spec(&req("https://agent.lan:7390/", serde_json::json!({}))).unwrap();
        assert_eq!(https.health_check_url, "https://agent.lan:7390/health", "https executors are called over TLS");
        for bad in ["x:1", "ftp://x:1", "http://", "http://x:1?q=1", "http://u:p@x:1", "not a url"] {
            assert_eq!(code(executor_spec(&req(bad, serde_json::json!({})))), "invalid_url", "{bad}");
        }
    }

    #[test]
    fn metadata_numbers_are_bounded_integers() {
        let ok = executor_spec(&req("http://x:1", serde_json::json!({"capacity": 4, "weight": 0, "region": "eu"})));
        assert_eq!(ok.map(|s| (s.capacity, s.weight)).unwrap(), (4, 0));
        for bad in [
            serde_json::json!({"capacity": -1}),
            serde_json::json!({"capacity": 1_000_001}),
            serde_json::json!({"weight": 1.5}),
            serde_json::json!({"weight": "2"}),
            serde_json::json!([1]),
        ] {
            assert_eq!(code(executor_spec(&req("http://x:1", bad.clone()))), "invalid_metadata", "{bad}");
        }
        let big = serde_json::json!({"x": "y".repeat(METADATA_BYTES_MAX)});
        assert_eq!(code(executor_spec(&req("http://x:1", big))), "metadata_too_large");
    }

    #[test]
    fn tasks_get_the_group_and_need_a_cron_only_when_new() {
        let t = |name: &str, cron: Option<&str>| RegisterTask {
            task_name: name.into(),
            cron: cron.map(String::from),
            ..Default::default()
        };
        let none = |_: &str| Ok(None);
        let ups = task_upserts("g", &[t("a", Some("@daily"))], none).unwrap();
        assert_eq!((ups[0].create.executor.as_str(), ups[0].patch.executor.as_deref()), ("g", Some("g")));
        assert_eq!(ups[0].patch.cron_expression.as_deref(), Some("@daily"));
        assert_eq!(task_upserts("g", &[t("a", None)], none).unwrap_err().code.as_str(), "missing_field");
        assert_eq!(
            task_upserts("g", &[t("a", Some("bad"))], none).unwrap_err().code.as_str(),
            "invalid_cron_expression"
        );
        let twice = task_upserts("g", &[t("a", Some("@daily")), t("a", Some("@daily"))], none).unwrap_err();
        assert!(twice.message.contains("tasks[1]"), "{}", twice.message);
        let current = new_spec(TaskInput {
            name: Some("a".into()),
            cron_expression: Some("@hourly".into()),
            ..Default::default()
        })
        .unwrap();
        let ups = task_upserts("g", &[t("a", None)], |_| Ok(Some(current.clone()))).unwrap();
        assert_eq!((ups[0].create.cron_expression.as_str(), ups[0].create.executor.as_str()), ("@hourly", "g"));
        let many: Vec<RegisterTask> = (0..=REGISTER_TASKS_MAX).map(|i| t(&format!("t{i}"), Some("@daily"))).collect();
        assert_eq!(task_upserts("g", &many, none).unwrap_err().code.as_str(), "too_many_tasks");
    }
}
