//! Waiting on a condition: poll a check until it yields a value, with a deadline, never a bare
//! sleep. [`wait_for`] panics naming what it waited for (tests); [`poll_until`] returns
//! [`KitError::Timeout`] (the chaos harness and the benchmark, which report instead of panicking).

use std::future::Future;
use std::time::{Duration, Instant};

use crate::KitError;

/// How long to sleep between two checks.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `check` every `interval` until it returns `Some`, or fails after `limit` naming `what`.
/// The check always runs at least once.
pub async fn poll_until<T, F, Fut>(what: &str, limit: Duration, interval: Duration, mut check: F) -> Result<T, KitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(KitError::Timeout { what: what.into(), limit });
        }
        tokio::time::sleep(interval).await;
    }
}

/// Polls `check` every [`POLL_INTERVAL`] until it returns `Some`, or panics after `limit` naming
/// `what`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll_until(what, limit, POLL_INTERVAL, check).await {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}
