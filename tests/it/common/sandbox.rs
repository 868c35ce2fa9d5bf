//! Tests that need the chaos harness' network sandbox (`unshare --pid --net --mount`, one network
//! namespace per node) re-execute this test binary inside it, running only themselves: the
//! binary holds every integration test, so the child is given the test's exact name.

use std::process::ExitStatus;

use cronraft_chaos::net;

use super::gate;

/// Re-executes test `name` of module `module` (pass `module_path!()`) inside the sandbox and
/// returns its exit status; the machine is held alone meanwhile (see [`gate`]). Panics naming
/// what is missing when the sandbox cannot start here (`supported`: what the test needs).
pub fn reexec(module: &str, name: &str, supported: fn() -> Result<(), net::NetError>) -> ExitStatus {
    if let Err(e) = supported() {
        panic!("{module}::{name} needs the network sandbox and cannot run here: {e}");
    }
    // libtest names a test by its path without the crate (`chaos::partition::name`).
    let path = format!("{}::{name}", module.split_once("::").map_or("", |(_, m)| m));
    let _alone = gate::exclusive();
    net::reexec_in_sandbox_with([path.as_str(), "--exact", "--include-ignored", "--test-threads=1"])
        .expect("start the unshare sandbox")
}
