//! UNSAFE, TEST-ONLY switches that break one guarantee on purpose, so the chaos harness can prove
//! its checkers catch the breakage (`CRONRAFT_UNSAFE=local-reads,ignore-watermark,…`).
//!
//! They exist only in a build with the cargo feature `unsafe-modes`, which the chaos crate turns
//! on (so `cargo test --workspace` builds the node with them). A release build of `cronraft`
//! (`cargo build --release`, `cargo run --release`) has no such feature: there [`enabled`] is a
//! constant `false`, the variable is never read for a decision, and [`warn_if_set`] says it is
//! ignored. The variable is read once per process; every node of a chaos run gets the same value,
//! which keeps apply deterministic across replicas.

/// The variable naming the modes, comma-separated.
pub const VARIABLE: &str = "CRONRAFT_UNSAFE";

/// Whether this build has the switches at all.
pub const COMPILED_IN: bool = cfg!(feature = "unsafe-modes");

/// Whether `mode` is on: always `false` without the `unsafe-modes` feature.
pub fn enabled(mode: &str) -> bool {
    COMPILED_IN && modes().iter().any(|m| m == mode)
}

/// Logs once at start what the variable does in this build.
pub fn warn_if_set() {
    let Ok(value) = std::env::var(VARIABLE) else { return };
    if COMPILED_IN {
        tracing::warn!(modes = %value, "{VARIABLE} is set: this node breaks guarantees on purpose (chaos testing only)");
    } else {
        tracing::warn!(modes = %value, "{VARIABLE} is set but ignored: this build has no unsafe modes");
    }
}

/// The modes named by the variable, parsed once per process.
fn modes() -> &'static [String] {
    static MODES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    MODES.get_or_init(|| {
        std::env::var(VARIABLE)
            .map(|v| v.split(',').map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect())
            .unwrap_or_default()
    })
}
