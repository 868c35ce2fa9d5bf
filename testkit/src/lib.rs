//! cronraft-testkit: the one kit every harness of this repository uses to drive real nodes.
//!
//! The integration tests (`tests/it`), the chaos harness (`chaos/`) and the benchmark (`bench/`)
//! all start real `cronraft serve` processes on port 0, read the one `listening` line the node
//! prints, kill, pause and restart them, wait on cluster conditions, run an executor that records
//! what it is sent, and read `/metrics`. Each of them used to carry its own copy of those; this
//! crate is the single copy (docs/decisions.md says why it is a crate of its own).
//!
//! - [`node`]: one node process (spawn, listening line, kill / pause / resume / terminate).
//! - [`views`]: one-shot checks over the nodes' own views (agreed leader, voters, convergence).
//! - [`wait`]: polling a check with a deadline (`wait_for` panics, `poll_until` returns `Err`).
//! - [`executor`]: the recording executor (the executor protocol, in the test process).
//! - [`metrics`]: the Prometheus text reader.
//! - [`browser`]: headless Chromium through chromedriver, for the console's tests and screenshots.
//!
//! Errors are typed ([`KitError`]); the panicking forms live only where tests want them.

pub mod browser;
pub mod executor;
pub mod metrics;
pub mod node;
pub mod receiver;
pub mod views;
pub mod wait;

pub use node::{Launch, Node};
pub use wait::{poll_until, wait_for};

/// Why the kit could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("cannot start node {id} ({bin}): {source}")]
    Spawn { id: u64, bin: String, source: std::io::Error },
    #[error("node {id} did not announce its addresses within {secs} s (see {log})")]
    NoListenLine { id: u64, secs: u64, log: String },
    #[error("timed out after {limit:?} waiting for {what}")]
    Timeout { what: String, limit: std::time::Duration },
    #[error("executor cannot bind {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
