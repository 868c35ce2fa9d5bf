//! The REST routes, one module per resource.

pub mod backup;
pub mod callbacks;
pub mod cluster;
pub mod executions;
pub mod executors;
pub mod notifications;
pub mod ops;
pub mod stats;
pub mod tasks;
pub mod tokens;
