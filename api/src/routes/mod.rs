//! The REST routes, one module per resource.

pub mod cluster;
pub mod executions;
pub mod ops;
pub mod tasks;
