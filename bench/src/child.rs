//! Child processes of the benchmark (cronraft nodes, etcd members): spawned with their output in
//! files, killed and reaped when dropped (also on error and panic), and metered for CPU time.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Linux `USER_HZ`: the unit of `utime`/`stime` in `/proc/<pid>/stat` (100 on every mainstream
/// architecture; the kernel ABI fixes it independently of `CONFIG_HZ`).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// A running child. Dropping it sends SIGKILL and waits for it, so nothing outlives the benchmark.
pub struct Proc {
    pub name: String,
    pub pid: u32,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    child: Child,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr going to `<log_dir>/<name>.out` and `.err`.
    pub fn spawn(name: &str, cmd: &mut Command, log_dir: &Path) -> Result<Proc> {
        let stdout = log_dir.join(format!("{name}.out"));
        let stderr = log_dir.join(format!("{name}.err"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(File::create(&stdout)?)
            .stderr(File::create(&stderr)?)
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        Ok(Proc { name: name.to_string(), pid: child.id(), stdout, stderr, child })
    }

    /// Fails (with the tail of its stderr) if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); stderr tail:\n{}", self.name, tail(&self.stderr, 2000));
        }
        Ok(())
    }

    /// Polls stdout until a line satisfies `pick`, for at most `limit`.
    pub fn wait_for_line(&mut self, limit: Duration, pick: impl Fn(&str) -> Option<String>) -> Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let text = std::fs::read_to_string(&self.stdout).unwrap_or_default();
            if let Some(found) = text.lines().find_map(&pick) {
                return Ok(found);
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "{} printed no expected line within {limit:?}; stdout tail:\n{}",
                    self.name,
                    tail(&self.stdout, 2000)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `max` bytes of a file, for error messages.
pub fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
    text[start..].to_string()
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_comm = stat.rsplit_once(')').map(|(_, rest)| rest).context("malformed /proc stat")?;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: u64 =
        fields.get(11).context("no utime")?.parse::<u64>()? + fields.get(12).context("no stime")?.parse::<u64>()?;
    Ok(ticks as f64 / CLOCK_TICKS_PER_SECOND)
}

/// Summed CPU seconds of several processes.
pub fn total_cpu_seconds(pids: &[u32]) -> Result<f64> {
    pids.iter().map(|p| cpu_seconds(*p)).sum()
}

/// CPU seconds the whole machine has spent busy (not idle or iowait) since boot, all cores.
pub fn machine_busy_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let cpu = stat.lines().next().context("empty /proc/stat")?;
    let ticks: Vec<u64> = cpu.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    let busy: u64 = ticks.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    Ok(busy as f64 / CLOCK_TICKS_PER_SECOND)
}

/// `count` distinct free loopback ports: bound to port 0 together, then released.
pub fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<Vec<_>, _>>()?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}
