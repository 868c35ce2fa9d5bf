//! `backup`: how long a whole backup takes at scale, and what it does to the scheduler meanwhile.
//! Issue 19 asks that "a backup of 100,000 tasks and 1,000,000 execution records completes in
//! ≤ 30 s on this machine while 1,000 fires/s go on with fire lag p99 ≤ 50 ms during it" (a
//! benchmark, not a timed test).
//!
//! # What it does
//!
//! 1. Starts a fresh 3-node cluster (`cronraft::start`: the release binary, `--no-agent`) with the
//!    executors of `ui.rs`, and fills it the way `ui.rs` does (`fill.rs`): `--tasks` tasks
//!    created through the API, most of them idle (daily, weekly, monthly, 6-hourly crons; one
//!    in ten paused), and `--fill-tasks` of them firing every second until `--executions`
//!    records are there (nine in ten into a group nobody serves, recorded `failed` in their fire
//!    entry; one in ten into the recording executor, `success` by callback).
//! 2. Pauses every fast task but `--load-tasks` of them (spread over the second, one in ten still
//!    served), so that many fires a second go on; waits `--settle-seconds` for the lag to
//!    settle, then measures 10 s of that load alone as the baseline.
//! 3. Takes a backup from a follower with `Client::backup` (the CLI's path: an unbuffered file,
//!    checked as it arrives, then `fsync`ed), timing the whole of it, with the leader's fire-lag
//!    histogram and missed-slot counters read just before and just after. Then the same from the
//!    leader.
//! 4. Reports per backup: seconds, bytes, pairs, MB/s, the applied index, the fires during it
//!    and their rate, the fire lag p99 bound (the smallest bucket bound under which ≥ 99 % of the
//!    window's fires fall) and the fires above 50 ms, the slots recorded missed, and PASS/FAIL;
//!    in the notes, the fires above 50 ms in each second, and for each node how many of its
//!    storage steps (log writes, applied batches, flushes, `fdatasync`s) took longer than that:
//!    whether late fires waited for a disk or for the CPU.
//!
//! # Why it looks this way
//!
//! - The fill is `ui.rs`'s (`fill.rs`), not a copy: real API, real scheduler, the trees and indexes a node has
//!   after that history, so the backup scans what a real node would hold.
//! - The lag comes from the leader's histogram deltas, not its recent-lag summary: at 1,000 fires
//!   a second its last 10,000 fires are only 10 s, less than a backup may take.
//! - Both sources: the case is a follower (the usual place to take a backup from, and
//!   the scan competes with the leader's scheduler only through the shared machine); the leader
//!   is the case where the scan shares the scheduler's own process.
//! - A backup that does not check out, comes from another node than asked, or leaves a file of
//!   another size than it says is an error, not a figure. A leader change during a backup makes
//!   its lag figures another node's: the row then fails and says why.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cronraft_api::client::Client;
use cronraft_testkit::metrics::Metrics;

use crate::cronraft::{self, Cluster};
use crate::fill::{self, Fill, Plan};
use crate::schedule::{self, bucket_quantile, count_above, leader_url, parse_histogram, run_for, FIRE_LAG};
use crate::ui;

/// The targets: the whole backup, and the fire lag p99 during it.
const BACKUP_TARGET_S: f64 = 30.0;
const LAG_P99_TARGET_MS: f64 = 50.0;
/// Share of the expected fires (`--load-tasks` a second) a window must see for the load to count
/// as going on; one second's fires are allowed on top for the window's two edges.
const LOAD_HELD_SHARE: f64 = 0.95;
/// The load alone, measured before the backups as the baseline.
const BASELINE: Duration = Duration::from_secs(10);
/// Between the two backups: the first one's aftermath (its file's fsync, freed memory) passes.
const BETWEEN: Duration = Duration::from_secs(5);
/// Between two reads of the leader's fire lag during a backup (its timeline in the notes).
const TIMELINE_STEP: Duration = Duration::from_secs(1);
/// Longest one read of `/metrics` may take.
const METRICS_TIMEOUT: Duration = Duration::from_secs(10);
/// The per-series counter of slots recorded `missed` (summed over reason and group).
const MISSED_SERIES: &str = "cronraft_slots_missed_total{";

/// What to build and how long to let it settle.
pub struct Settings {
    pub tasks: u64,
    pub executions: u64,
    pub fill_tasks: u64,
    pub load_tasks: u64,
    pub fill_limit: Duration,
    pub settle: Duration,
    /// Rounds of backups (a follower's, then the leader's) on the one fill.
    pub rounds: u64,
    /// Where the backup files are written (default: the temporary directory, the nodes' disk).
    pub backup_dir: Option<PathBuf>,
}

/// The leader's scheduler figures at one moment: fire-lag buckets (bound in ms, cumulative count)
/// and the slots recorded missed so far.
struct Reading {
    lag: Vec<(f64, u64)>,
    missed: u64,
    at: Instant,
}

/// The fires between two readings.
struct Window {
    seconds: f64,
    fires: u64,
    p99_ms: f64,
    above_target: u64,
    missed: u64,
}

impl Window {
    fn between(a: &Reading, b: &Reading) -> Window {
        let total = |h: &[(f64, u64)]| h.last().map_or(0, |(_, n)| *n);
        Window {
            seconds: b.at.duration_since(a.at).as_secs_f64(),
            fires: total(&b.lag).saturating_sub(total(&a.lag)),
            p99_ms: bucket_quantile(&a.lag, &b.lag, 0.99),
            above_target: count_above(&a.lag, &b.lag, LAG_P99_TARGET_MS),
            missed: b.missed.saturating_sub(a.missed),
        }
    }

    fn rate(&self) -> f64 {
        self.fires as f64 / self.seconds.max(0.001)
    }

    /// Whether `load_tasks` fires a second went on through the window.
    fn load_held(&self, load_tasks: u64) -> bool {
        self.fires + load_tasks >= (LOAD_HELD_SHARE * load_tasks as f64 * self.seconds) as u64
    }
}

/// One backup and the scheduler around it.
struct Taken {
    source: String,
    seconds: f64,
    bytes: u64,
    pairs: u64,
    applied_index: u64,
    window: Window,
    /// Why the lag figures are not this backup's (a leader change), if so.
    leader_moved: Option<String>,
    notes: Vec<String>,
}

impl Taken {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(0.001)
    }

    /// Every reason this backup misses the targets (none: PASS).
    fn failures(&self, load_tasks: u64) -> Vec<String> {
        let mut why = Vec::new();
        if self.seconds > BACKUP_TARGET_S {
            why.push(format!("{:.1} s > {BACKUP_TARGET_S} s", self.seconds));
        }
        if let Some(moved) = &self.leader_moved {
            why.push(moved.clone());
        } else {
            if self.window.p99_ms > LAG_P99_TARGET_MS {
                why.push(format!("fire lag p99 ≤ {} ms > {LAG_P99_TARGET_MS} ms", self.window.p99_ms));
            }
            if !self.window.load_held(load_tasks) {
                why.push(format!("{:.0} fires/s: the load of {load_tasks}/s did not go on", self.window.rate()));
            }
        }
        why
    }

    fn verdict(&self, load_tasks: u64) -> String {
        let why = self.failures(load_tasks);
        if why.is_empty() {
            "**PASS**".into()
        } else {
            format!("**FAIL** ({})", why.join("; "))
        }
    }
}

/// Runs the whole benchmark on a fresh cluster and returns the Markdown report.
pub async fn run(http: &reqwest::Client, bin: &Path, s: &Settings) -> Result<String> {
    let plan = Plan::new(s.tasks, s.fill_tasks, s.load_tasks, s.executions)?;
    let mut c = cronraft::start(bin, 3, &std::env::temp_dir(), http).await?;
    eprintln!("backup: cluster formed, leader {}", c.leader_url);
    let _ok_executor = fill::start_executors(http, &c.leader_url).await?;
    let fill = fill::fill(http, &mut c, &plan, s.executions, s.fill_limit).await?;

    // The load alone: let the pause's writes pass, then a baseline to read the backups against.
    run_for(&mut c, s.settle).await?;
    let leader = leader_url(http, &c).await?;
    let start = read_leader(http, &leader).await?;
    run_for(&mut c, BASELINE).await?;
    let baseline = Window::between(&start, &read_leader(http, &leader).await?);
    eprintln!("backup: baseline {}", window_figures(&baseline));
    let records = fill::total_any(http, &c.urls).await?;

    let dir = match &s.backup_dir {
        Some(d) => tempfile::Builder::new().prefix("cronraft-bench-backup-").tempdir_in(d)?,
        None => tempfile::Builder::new().prefix("cronraft-bench-backup-").tempdir()?,
    };
    let follower = c.urls.iter().find(|u| **u != leader).context("no follower")?.clone();
    let mut taken = Vec::new();
    for round in 1..=s.rounds {
        for source in [&follower, &leader] {
            let file = dir.path().join("one.backup");
            taken.push(take(http, &mut c, &leader, source, file.clone(), round).await?);
            std::fs::remove_file(&file)?;
            run_for(&mut c, BETWEEN).await?;
        }
    }
    Ok(report(s, &plan, &fill, records, &baseline, &taken))
}

/// One backup from `source` into `file`, timed, with the leader's scheduler read around it.
async fn take(
    http: &reqwest::Client,
    c: &mut Cluster,
    leader: &str,
    source: &str,
    file: PathBuf,
    round: u64,
) -> Result<Taken> {
    let position = c.urls.iter().position(|u| u == source).context("the source is not a node")?;
    let (node_id, role) = (position as u64 + 1, if source == leader { "leader" } else { "follower" });
    let client = Client::new([source]).with_token(cronraft::auth_token());
    let pids: Vec<u32> = c.nodes.iter().map(|p| p.pid).collect();
    let term0 = schedule::status(http, leader).await?.term;
    let counters0 = cronraft::counters(http, &c.urls).await;
    let cpu0 = crate::cpu_now(&pids)?;
    let steps0 = read_storage_steps(http, &c.urls).await?;
    let before = read_leader(http, leader).await?;

    // The CLI's path (`cronraft backup`): an unbuffered file, checked as it arrives, fsynced.
    let out = std::fs::File::create(&file).with_context(|| format!("cannot create {}", file.display()))?;
    let out = cronraft_raft::store::paced::PacedFile::new(out);
    let backup = async {
        let (summary, out) = client.backup(out).await.with_context(|| format!("the backup from {source} failed"))?;
        out.finish()?;
        anyhow::Ok(summary)
    };
    tokio::pin!(backup);
    // Meanwhile, the fires above the target in each second: when in a backup the late ones fall.
    let (mut timeline, mut last) = (Vec::new(), before.lag.clone());
    let summary = loop {
        tokio::select! {
            done = &mut backup => break done?,
            _ = tokio::time::sleep(TIMELINE_STEP) => {
                let now = read_leader(http, leader).await?;
                timeline.push(count_above(&last, &now.lag, LAG_P99_TARGET_MS));
                last = now.lag;
            }
        }
    };
    let seconds = before.at.elapsed().as_secs_f64();

    let after = read_leader(http, leader).await?;
    timeline.push(count_above(&last, &after.lag, LAG_P99_TARGET_MS));
    let cpu1 = crate::cpu_now(&pids)?;
    let steps1 = read_storage_steps(http, &c.urls).await?;
    let status1 = schedule::status(http, leader).await?;
    let counters1 = cronraft::counters(http, &c.urls).await;
    for n in c.nodes.iter_mut() {
        n.check_alive()?;
    }
    let on_disk = std::fs::metadata(&file)?.len();
    if summary.header.node_id != node_id || on_disk != summary.bytes {
        bail!(
            "the backup from node {node_id} says node {} and {} bytes; the file has {on_disk}",
            summary.header.node_id,
            summary.bytes
        );
    }
    let leader_moved = (!status1.scheduler_running || status1.term != term0).then(|| {
        format!("the leader changed during the backup (term {term0} → {}): its lag is not all measured", status1.term)
    });
    let mut notes: Vec<String> = cronraft::counter_notes(&counters0, &counters1, 1)
        .into_iter()
        .filter(|n| n.starts_with("snapshot"))
        .map(|n| format!("{role}: {n}"))
        .collect();
    let timeline: Vec<String> = timeline.iter().map(u64::to_string).collect();
    notes.push(format!(
        "{role}: fires above {LAG_P99_TARGET_MS} ms in each second of the backup: {}",
        timeline.join(" ")
    ));
    for (i, (a, b)) in steps0.iter().zip(&steps1).enumerate() {
        notes.push(format!(
            "{role}: node {}'s storage steps above {LAG_P99_TARGET_MS} ms: {}",
            i + 1,
            slow_steps(a, b)
        ));
    }
    let (nodes_s, client_s) = (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]);
    notes.push(format!(
        "{role}: CPU during the backup: the 3 nodes {:.2} cores, this client {:.2}, everything else {:.2}; checksum {}",
        nodes_s / seconds,
        client_s / seconds,
        (cpu1[2] - cpu0[2] - nodes_s - client_s) / seconds,
        summary.checksum
    ));
    let taken = Taken {
        source: format!("{round}: {role} (node {node_id})"),
        seconds,
        bytes: summary.bytes,
        pairs: summary.trailer.pairs,
        applied_index: summary.header.applied_index,
        window: Window::between(&before, &after),
        leader_moved,
        notes,
    };
    eprintln!(
        "backup: from the {}: {:.2} s, {} bytes, {} pairs ({:.1} MB/s), index {}; {}",
        taken.source,
        taken.seconds,
        taken.bytes,
        taken.pairs,
        taken.mb_per_s(),
        taken.applied_index,
        window_figures(&taken.window)
    );
    Ok(taken)
}

/// The leader's fire-lag histogram and missed slots, from one read of its `/metrics`.
async fn read_leader(http: &reqwest::Client, leader: &str) -> Result<Reading> {
    let m = Metrics::fetch(http, leader, METRICS_TIMEOUT).await?;
    let at = Instant::now();
    let (lag, _) = parse_histogram(&m.text, FIRE_LAG)?;
    if lag.is_empty() {
        bail!("{leader}/metrics has no {FIRE_LAG} histogram");
    }
    Ok(Reading { lag, missed: missed_slots(&m), at })
}

/// The storage step histograms each node shows (`cronraft_storage_*_seconds`), in this order.
const STORAGE_STEPS: [&str; 4] = ["log_write", "apply_write", "flush", "fdatasync"];

/// Each node's storage step histograms (per step: bound in ms, cumulative count), in node order.
async fn read_storage_steps(http: &reqwest::Client, urls: &[String]) -> Result<Vec<Vec<Vec<(f64, u64)>>>> {
    let mut nodes = Vec::new();
    for url in urls {
        let m = Metrics::fetch(http, url, METRICS_TIMEOUT).await?;
        let steps =
            STORAGE_STEPS.iter().map(|s| Ok(parse_histogram(&m.text, &format!("cronraft_storage_{s}_seconds"))?.0));
        nodes.push(steps.collect::<Result<Vec<_>>>()?);
    }
    Ok(nodes)
}

/// Per step, how many of one node's steps between two readings took longer than the target, of
/// how many, and the bucket bound the slowest fell under: where a late fire waited.
fn slow_steps(before: &[Vec<(f64, u64)>], after: &[Vec<(f64, u64)>]) -> String {
    let each = STORAGE_STEPS.iter().zip(before.iter().zip(after)).map(|(name, (a, b))| {
        let total = b.last().map_or(0, |x| x.1).saturating_sub(a.last().map_or(0, |x| x.1));
        let slowest = bucket_quantile(a, b, 1.0);
        format!("{name} {} of {total} (slowest ≤ {slowest} ms)", count_above(a, b, LAG_P99_TARGET_MS))
    });
    each.collect::<Vec<_>>().join(", ")
}

/// `cronraft_slots_missed_total`, summed over its series (reason × group; none yet: 0).
fn missed_slots(m: &Metrics) -> u64 {
    let values = m.text.lines().filter_map(|l| l.strip_prefix(MISSED_SERIES)?.rsplit_once(' ')?.1.parse::<f64>().ok());
    values.sum::<f64>() as u64
}

fn window_figures(w: &Window) -> String {
    format!(
        "{} fires in {:.1} s ({:.0}/s), fire lag p99 ≤ {} ms, {} above {LAG_P99_TARGET_MS} ms, {} slots missed",
        w.fires,
        w.seconds,
        w.rate(),
        w.p99_ms,
        w.above_target,
        w.missed
    )
}

/// The whole report: settings, the fill, the baseline, one row per backup, the verdicts, notes.
fn report(s: &Settings, plan: &Plan, fill: &Fill, records: u64, baseline: &Window, taken: &[Taken]) -> String {
    let mut out = format!(
        "## cronraft-bench backup\n\n3 nodes and this client on one machine ({} CPUs). {} tasks; {} of them fired every \
         second to make {} execution records, then {} of them went on firing ({} fires/s expected).\n\n",
        ui::cpus(),
        plan.tasks(),
        plan.fire_tasks(),
        s.executions,
        s.load_tasks,
        s.load_tasks
    );
    out.push_str(&format!(
        "Fill: {} tasks created in {:.1} s, {} idle ones paused; {} records in {:.0} s ({:.0}/s){}; {} fast tasks \
         paused in {:.1} s. {records} records when the backups began.\n\n",
        plan.tasks(),
        fill.created_s,
        fill.idle_paused,
        fill.reached,
        fill.filled_s,
        fill.reached as f64 / fill.filled_s.max(0.001),
        if fill.deadline_hit { " — **the fill deadline passed before the target**" } else { "" },
        fill.fast_paused,
        fill.fast_paused_s
    ));
    out.push_str(&format!(
        "Baseline, the load alone after {} s to settle: {}.\n\n",
        s.settle.as_secs(),
        window_figures(baseline)
    ));
    out.push_str(
        "| round: source | seconds | MB | pairs | MB/s | applied index | fires (/s) | fire lag p99 | fires > 50 ms | missed slots | verdict |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for t in taken {
        out.push_str(&format!(
            "| {} | {:.2} | {:.1} | {} | {:.1} | {} | {} ({:.0}) | ≤ {} ms | {} | {} | {} |\n",
            t.source,
            t.seconds,
            t.bytes as f64 / 1e6,
            t.pairs,
            t.mb_per_s(),
            t.applied_index,
            t.window.fires,
            t.window.rate(),
            t.window.p99_ms,
            t.window.above_target,
            t.window.missed,
            t.verdict(s.load_tasks)
        ));
    }
    let passed = taken.iter().filter(|t| t.failures(s.load_tasks).is_empty()).count();
    out.push_str(&format!("\n{passed} of {} backups pass.\n", taken.len()));
    out.push_str(&format!(
        "\nTargets (issue 19): the whole backup (`GET /api/v1/backup` streamed by `Client::backup`, checked as it \
         arrives, written and fsynced as `cronraft backup` does) ≤ {BACKUP_TARGET_S} s, while {} fires/s go on (≥ {:.0} \
         % of them seen in the window) with fire lag p99 ≤ {LAG_P99_TARGET_MS} ms. Fire lag is the commit of the fire − \
         the slot, from the leader's `{FIRE_LAG}` histogram read just before and just after each backup; p99 is the \
         smallest bucket bound under which ≥ 99 % of the window's fires fall. Missed slots: the growth of \
         `cronraft_slots_missed_total` over the window. The issue's case is the follower; the leader's row is \
         judged the same way.\n",
        s.load_tasks,
        LOAD_HELD_SHARE * 100.0
    ));
    let notes: Vec<&String> = taken.iter().flat_map(|t| &t.notes).collect();
    if !notes.is_empty() {
        out.push_str("\nNotes:\n\n");
        for n in notes {
            out.push_str(&format!("- {n}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(lag: &[(f64, u64)], missed: u64, at: Instant) -> Reading {
        Reading { lag: lag.to_vec(), missed, at }
    }

    #[test]
    fn a_window_is_the_difference_of_two_readings() {
        let t0 = Instant::now();
        let a = reading(&[(10.0, 100), (50.0, 100), (f64::INFINITY, 100)], 2, t0);
        // 10,000 more fires in 10 s: 9,850 within 10 ms, 100 more within 50 ms, 50 above.
        let b = reading(&[(10.0, 9_950), (50.0, 10_050), (f64::INFINITY, 10_100)], 3, t0 + Duration::from_secs(10));
        let w = Window::between(&a, &b);
        assert_eq!((w.fires, w.above_target, w.missed), (10_000, 50, 1));
        assert_eq!(w.p99_ms, 50.0, "9,850 of 10,000 is under 99 % at 10 ms; 9,950 is over at 50 ms");
        assert!(w.load_held(1_000));
        assert!(!w.load_held(2_000), "10,000 fires in 10 s is not a load of 2,000/s");
    }

    #[test]
    fn missed_slots_sum_every_series_and_only_those() {
        let m = Metrics::parse(
            "cronraft_slots_missed_total{reason=\"misfire\",group=\"a\"} 3\n\
             cronraft_slots_missed_total{reason=\"cut_off\",group=\"b\"} 4\n\
             cronraft_slots_skipped_total{reason=\"x\",group=\"a\"} 100\n",
        );
        assert_eq!(missed_slots(&m), 7);
        assert_eq!(missed_slots(&Metrics::parse("")), 0);
    }

    #[test]
    fn a_slow_backup_or_a_late_scheduler_fails() {
        let w = |p99_ms, fires| Window { seconds: 10.0, fires, p99_ms, above_target: 0, missed: 0 };
        let taken = |seconds, window| Taken {
            source: "follower (node 2)".into(),
            seconds,
            bytes: 1,
            pairs: 1,
            applied_index: 1,
            window,
            leader_moved: None,
            notes: Vec::new(),
        };
        assert_eq!(taken(29.0, w(50.0, 10_000)).verdict(1_000), "**PASS**");
        assert!(taken(31.0, w(50.0, 10_000)).verdict(1_000).starts_with("**FAIL**"));
        assert!(taken(10.0, w(100.0, 10_000)).verdict(1_000).contains("p99"));
        assert!(taken(10.0, w(5.0, 5_000)).verdict(1_000).contains("did not go on"));
    }
}
