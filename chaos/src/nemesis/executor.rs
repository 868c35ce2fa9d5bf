//! The executor faults of the `cron` workload: the recording executor refusing connections
//! (`executor-kill`), answering past the dispatch timeout (`executor-slow`), and instances of its
//! group joining, leaving and going offline through the REST API (`executor-churn`).

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::admin::{admin, urls};
use super::{Churn, Detail, Fault, Step, Targets};
use crate::executor::Executor;

/// Starts an executor fault: the recording executor down or slow, or one churn step.
pub(super) async fn begin(targets: &Targets, step: &Step, index: usize) -> Result<Value, String> {
    match step.fault {
        Fault::ExecutorKill => {
            executor(targets)?.down();
            Ok(Value::Null)
        }
        Fault::ExecutorSlow => {
            executor(targets)?.set_slow(true);
            Ok(Value::Null)
        }
        _ => churn_begin(targets, step, index).await,
    }
}

/// Heals an executor fault.
pub(super) async fn end(targets: &Targets, step: &Step, index: usize) -> Result<(), String> {
    match step.fault {
        Fault::ExecutorKill => executor(targets)?.up().await.map_err(|e| e.to_string()),
        Fault::ExecutorSlow => {
            executor(targets)?.set_slow(false);
            Ok(())
        }
        _ => churn_end(targets, step, index).await,
    }
}

fn executor(targets: &Targets) -> Result<&Executor, String> {
    targets.executor.as_deref().ok_or_else(|| "no recording executor (needs --workload cron)".into())
}

/// The instance id of the spare registered by churn step `index`.
fn spare_id(primary: &str, index: usize) -> String {
    format!("{primary}-churn{index}")
}

pub(super) fn status_body(status: &str) -> Value {
    json!({"status": status, "reason": "chaos executor-churn"})
}

async fn churn_begin(targets: &Targets, step: &Step, index: usize) -> Result<Value, String> {
    let ex = executor(targets)?;
    let Some((group, primary)) = &targets.executor_ids else { return Err("no executor registration".into()) };
    let Some(Detail::Churn { action }) = step.detail else { return Err("no churn action".into()) };
    let urls = urls(targets, None).await;
    let limit = Duration::from_secs(5);
    let mut done = json!({"action": action});
    if action != Churn::OfflineAlone {
        let url = ex.add_instance().await.map_err(|e| e.to_string())?;
        let spare = spare_id(primary, index);
        let body = crate::executor::registration(&url, group, &spare);
        admin(&urls, Method::POST, "/api/v1/executors/register", Some(body), &[], limit).await?;
        done["spare"] = json!(spare);
    }
    let primary_path = format!("/api/v1/executors/{primary}");
    match action {
        Churn::Join => {}
        Churn::Offline | Churn::OfflineAlone => {
            let path = format!("{primary_path}/status");
            admin(&urls, Method::PUT, &path, Some(status_body("offline")), &[], limit).await?;
        }
        Churn::Deregister => {
            admin(&urls, Method::DELETE, &primary_path, None, &[404], limit).await?;
        }
    }
    Ok(done)
}

/// Heals a churn step: the primary registered and online, the step's spare deregistered.
async fn churn_end(targets: &Targets, step: &Step, index: usize) -> Result<(), String> {
    let ex = executor(targets)?;
    let Some((group, primary)) = &targets.executor_ids else { return Err("no executor registration".into()) };
    let urls = urls(targets, None).await;
    let limit = Duration::from_secs(20);
    admin(&urls, Method::POST, "/api/v1/executors/register", Some(ex.registration(group, primary)), &[], limit).await?;
    let path = format!("/api/v1/executors/{primary}/status");
    admin(&urls, Method::PUT, &path, Some(status_body("online")), &[], limit).await?;
    if !matches!(step.detail, Some(Detail::Churn { action: Churn::OfflineAlone })) {
        let path = format!("/api/v1/executors/{}", spare_id(primary, index));
        admin(&urls, Method::DELETE, &path, None, &[404], limit).await?;
    }
    Ok(())
}
