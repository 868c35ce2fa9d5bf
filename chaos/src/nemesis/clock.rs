//! The clock fault: one node's wall clock jumps (bump) or flips back and forth (strobe) through
//! its libfaketime offset file, then is reset.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Detail, Step, Targets};

/// Sets `node`'s clock to the step's offset.
pub(super) async fn begin(targets: &Targets, step: &Step, node: u64) -> Result<Value, String> {
    let offset = match step.detail {
        Some(Detail::Bump { offset_ms } | Detail::Strobe { offset_ms, .. }) => offset_ms,
        _ => 0,
    };
    targets.cluster.lock().await.set_clock(node, offset).map_err(|e| e.to_string())?;
    Ok(Value::Null)
}

/// For a strobe, flips `node`'s clock between the offset and none every period until (about)
/// `until`; returns at once for every other step.
pub(super) async fn hold(targets: &Targets, step: &Step, node: u64, until: Instant) {
    if let Some(Detail::Strobe { offset_ms, period_ms }) = step.detail {
        let mut skewed = true;
        while Instant::now() + Duration::from_millis(period_ms) < until {
            tokio::time::sleep(Duration::from_millis(period_ms)).await;
            skewed = !skewed;
            let _ = targets.cluster.lock().await.set_clock(node, if skewed { offset_ms } else { 0 });
        }
    }
}

/// Resets `node`'s clock.
pub(super) async fn end(targets: &Targets, node: u64) -> Result<(), String> {
    targets.cluster.lock().await.set_clock(node, 0).map_err(|e| e.to_string())
}
