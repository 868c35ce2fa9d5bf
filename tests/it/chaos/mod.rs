//! Chaos smokes: short Jepsen-style runs of the real binary through the chaos harness
//! (`cronraft-chaos`), each a scenario whose every checker must pass, and the unsafe modes whose
//! checkers must fail. The full harness is `cargo run -p cronraft-chaos --release -- run`
//! (docs/internals/chaos.md); these keep `cargo test --workspace` honest in minutes.

mod clock;
mod cron;
mod embedded;
mod kill;
mod membership;
mod partition;
mod unsafe_modes;
