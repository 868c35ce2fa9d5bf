//! cronraft-chaos: a Jepsen-style black-box harness for cronraft.
//!
//! It starts the real `cronraft` binary as separate processes, drives them with concurrent
//! clients whose every operation is recorded (`invoke`, then `ok` / `fail` / `info`) in a JSON
//! Lines history, injects real faults (kill -9, SIGSTOP, network partitions of three shapes, clock
//! skew, membership changes, executor faults and churn) on a schedule that is a pure function of
//! the seed, heals everything, reads every node, and then runs offline
//! checkers over the history: linearizability per key (WGL), set-full (no lost acknowledged
//! create) and convergence (same applied index and state digest everywhere).
//!
//! The checkers only ever see the history, so they are unit-tested on hand-made bad histories.
//! Every run also leaves `timeline.html`, a picture of the history (`timeline.rs`).

pub mod checker;
pub mod cluster;
pub mod executor;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod ops;
pub mod rng;
pub mod run;
pub mod sampler;
pub mod skew;
pub mod timeline;
pub mod workload;
