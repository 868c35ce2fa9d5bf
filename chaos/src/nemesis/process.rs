//! The process faults: `kill -9` a node then restart it on the same addresses and data
//! directory, or SIGSTOP it past the election timeout then SIGCONT.

use serde_json::Value;

use super::{Fault, Step, Targets};

/// Kills or pauses `node`.
pub(super) async fn begin(targets: &Targets, step: &Step, node: u64) -> Result<Value, String> {
    let mut c = targets.cluster.lock().await;
    match step.fault {
        Fault::Kill => c.kill(node),
        _ => c.pause(node),
    }
    Ok(Value::Null)
}

/// Restarts or resumes `node`.
pub(super) async fn end(targets: &Targets, step: &Step, node: u64) -> Result<(), String> {
    let mut c = targets.cluster.lock().await;
    match step.fault {
        Fault::Kill => c.restart(node).map_err(|e| e.to_string()),
        _ => {
            c.resume(node);
            Ok(())
        }
    }
}
