//! The integration tests: real `cronraft` processes on free loopback ports, in temp dirs, one
//! module per area. They are one test binary (`autotests = false` in Cargo.toml) because every
//! test binary links the whole workspace: one link instead of fourteen.
//!
//! Tests that need something a fresh machine lacks (root for network namespaces, libfaketime,
//! strace, Chromium and chromedriver) are `#[ignore = "needs …"]` with the reason, so
//! `cargo test --workspace` shows them as ignored; `.ci/run` installs the packages and runs them
//! (`cargo test --test it -- --ignored`).

mod agent;
mod api;
mod auth;
mod backup;
mod chaos;
mod cli;
mod cluster;
mod common;
mod config_check;
mod console;
mod dispatch;
mod durability;
mod executors_api;
mod history_cap;
mod hosts;
mod listeners;
mod listing;
mod logs;
mod metrics;
mod notifications;
mod openapi;
mod schedule;
mod storage_full;
mod tls;
mod ui;
mod upgrade;
mod wire;
