//! `command` jobs: `sh -c LINE` in a process group of its own, with its output kept as a tail.
//!
//! The shell is started with `process_group(0)`, so it and everything it starts (pipelines,
//! `&` jobs, subshells) share one process group whose id is the shell's pid. A timeout, a stop
//! request or the agent's shutdown kills the whole group with `kill(-pgid, SIGKILL)`; killing only
//! the shell would leave `sleep 30 & sleep 30` running. When the shell exits on its own, whatever
//! it left behind in its group is killed too: a run ends with its shell, and a process meant to
//! outlive it must leave the group (`setsid`).
//!
//! stdout and stderr are read concurrently with the wait, chunk by chunk in arrival order, into
//! one [`LogTail`], so memory stays bounded and a chatty command never blocks on a full pipe.

use std::os::unix::process::ExitStatusExt;
use std::pin::pin;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use cronraft_api::protocol::{CallbackStatus, LOGS_BYTES_MAX};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStderr, ChildStdout, Command};

use super::job::CommandJob;
use super::run::{stop_status, stopped, Outcome, Stop, StopSignal};
use super::tail::LogTail;

/// How long to keep reading output after the group is gone: a process that escaped the group
/// (`setsid`) may hold the pipes open forever.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// How the process ended, as far as the agent is concerned.
enum End {
    Exited(std::io::Result<ExitStatus>),
    Timeout(Duration),
    Stopped(Stop),
}

/// Runs `job` to its end, its timeout or its stop signal.
/// The process starts with `base_env` (the agent's allowlisted variables) and the job's `env`,
/// nothing else of the agent's environment.
pub async fn run(
    job: &CommandJob,
    base_env: &[(String, String)],
    timeout: Option<Duration>,
    mut stop: StopSignal,
) -> Outcome {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&job.command)
        .env_clear()
        .envs(base_env.iter().map(|(k, v)| (k, v)))
        .envs(&job.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &job.cwd {
        cmd.current_dir(dir);
    }
    crate::fsperm::restore_umask_in_child(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::failed(spawn_error(job, &e)),
    };
    // Armed until the explicit kill below, so a run dropped half-way (runtime teardown) still
    // takes its group down.
    let mut group = GroupGuard(child.id().map(|pid| pid as i32));
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        unreachable!("both pipes were asked for")
    };

    let mut tail = LogTail::new(LOGS_BYTES_MAX);
    let end = {
        let mut pump = pin!(pump(out, err, &mut tail));
        let mut pumped = false;
        let mut deadline = pin!(async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        });
        let end = loop {
            tokio::select! {
                _ = &mut pump, if !pumped => pumped = true,
                status = child.wait() => break End::Exited(status),
                _ = &mut deadline => break End::Timeout(timeout.unwrap_or_default()),
                stop = stopped(&mut stop) => break End::Stopped(stop),
            }
        };
        // Kill the group before reaping the shell (when it is still alive), so its pid, which is
        // the group's id, cannot have been reused; after a normal exit this sweeps up leftovers.
        group.kill();
        if !matches!(end, End::Exited(_)) {
            let _ = child.wait().await;
        }
        if !pumped {
            let _ = tokio::time::timeout(DRAIN_GRACE, &mut pump).await;
        }
        end
    };
    outcome(end, tail)
}

/// The report's fields from how the process ended: `{"exit_code": N}` or `{"signal": N}`.
fn outcome(end: End, mut tail: LogTail) -> Outcome {
    let killed = Some(json!({ "signal": libc::SIGKILL }));
    let (status, result, exit_code) = match end {
        End::Exited(Ok(s)) => match (s.code(), s.signal()) {
            (Some(0), _) => (CallbackStatus::Success, Some(json!({ "exit_code": 0 })), Some(0)),
            (Some(code), _) => (CallbackStatus::Failed, Some(json!({ "exit_code": code })), Some(code)),
            (None, signal) => {
                let signal = signal.unwrap_or_default();
                tail.note(&format!("the shell was killed by signal {signal}"));
                (CallbackStatus::Failed, Some(json!({ "signal": signal })), None)
            }
        },
        End::Exited(Err(e)) => {
            tail.note(&format!("cannot wait for the shell: {e}"));
            (CallbackStatus::Failed, None, None)
        }
        End::Timeout(t) => {
            tail.note(&format!("killed after the timeout of {} s", t.as_secs()));
            (CallbackStatus::Timeout, killed, None)
        }
        End::Stopped(stop) => {
            let (status, why) = stop_status(&stop);
            tail.note(&format!("killed: {why}"));
            (status, killed, None)
        }
    };
    Outcome { status, result, logs: tail.into_string(), exit_code }
}

/// Reads both pipes until both are closed, appending each chunk as it arrives.
async fn pump(mut out: ChildStdout, mut err: ChildStderr, tail: &mut LogTail) {
    let (mut a, mut b) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        tokio::select! {
            r = out.read(&mut a), if out_open => match r {
                Ok(n) if n > 0 => tail.push(&a[..n]),
                _ => out_open = false,
            },
            r = err.read(&mut b), if err_open => match r {
                Ok(n) if n > 0 => tail.push(&b[..n]),
                _ => err_open = false,
            },
        }
    }
}

/// Kills its process group once: when told to, or when dropped before that.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            kill_group(pgid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `SIGKILL` to every process in group `pgid`. A group that is already gone is fine.
pub fn kill_group(pgid: i32) {
    if pgid <= 1 {
        return; // never signal "every process" (-1) or our own group (0)
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(-pgid, libc::SIGKILL) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pgid, error = %e, "cannot kill the run's process group");
        }
    }
}

fn spawn_error(job: &CommandJob, e: &std::io::Error) -> String {
    match &job.cwd {
        Some(dir) => format!("cannot start `sh -c` in {dir:?}: {e}"),
        None => format!("cannot start `sh -c`: {e}"),
    }
}
