//! Chaos smokes: short Jepsen-style runs of the real binary through the chaos harness
//! (`cronraft-chaos`), each a scenario whose every checker must pass, and the unsafe modes whose
//! checkers must fail. The full harness is `cargo run -p cronraft-chaos --release -- run`
//! (docs/internals/chaos.md); these keep `cargo test --workspace` honest in minutes.

mod auth;
mod clock;
mod cron;
mod embedded;
mod kill;
mod membership;
mod partition;
mod unsafe_modes;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cronraft_chaos::checker::Verdict;
use cronraft_chaos::nemesis::Fault;
use cronraft_chaos::run::{run, Results, RunConfig};

use crate::common::gate;

/// A run of three nodes of the binary cargo built for these tests, writing into `dir/run`.
pub fn config(dir: &Path, nemeses: Vec<Fault>, workloads: &[&str], secs: u64, seed: u64) -> RunConfig {
    RunConfig {
        nemeses,
        workloads: workloads.iter().map(|w| w.to_string()).collect(),
        time_limit: Duration::from_secs(secs),
        seed,
        out: dir.join("run"),
        unsafe_mode: None,
        bin: PathBuf::from(env!("CARGO_BIN_EXE_cronraft")),
        nodes: 3,
        auth: false,
        tls: false,
    }
}

/// Runs `cfg` (cluster, workloads, faults, heal, final reads, checkers) with the machine to itself
/// (see [`gate`]), on a runtime of its own with two workers.
pub fn run_alone(cfg: RunConfig) -> Results {
    let _alone = gate::exclusive();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(run(cfg)).expect("the run itself works")
}

/// A run that passed, with what the smokes check beyond the verdict.
pub struct Passed {
    pub results: Results,
    /// The results as JSON, for assertion messages.
    pub report: String,
    out: PathBuf,
}

impl Passed {
    /// A count a checker reported (0 if absent); panics if the checker did not run.
    pub fn count(&self, checker: &str, name: &str) -> u64 {
        let c = self.results.checkers.iter().find(|c| c.checker == checker);
        let c = c.unwrap_or_else(|| panic!("{checker} ran"));
        c.counts.get(name).copied().unwrap_or(0)
    }

    /// The run's history (JSON Lines).
    pub fn history(&self) -> String {
        std::fs::read_to_string(self.out.join("history.jsonl")).unwrap()
    }

    /// The history's nemesis events that carry an error (a fault not applied or not healed).
    pub fn nemesis_errors(&self) -> usize {
        let h = self.history();
        h.lines().filter(|l| l.contains(r#""process":"nemesis""#) && l.contains(r#""error""#)).count()
    }
}

/// Runs `cfg` alone and asserts every checker passed.
pub fn assert_run_passes(cfg: RunConfig) -> Passed {
    let out = cfg.out.clone();
    let results = run_alone(cfg);
    let report = serde_json::to_string_pretty(&results).unwrap();
    assert_eq!(results.verdict, Verdict::Pass, "{report}");
    Passed { results, report, out }
}
