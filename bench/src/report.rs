//! Turning level results into rows (percentiles, throughput, CPU per op) and rows into Markdown
//! tables: the results, the cronraft/etcd ratios, and per-level notes.

use std::fmt::Write;

use crate::load::LevelResult;

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    pub system: String,
    pub clients: usize,
    pub ok: usize,
    pub errors: u64,
    pub req_per_s: f64,
    /// p50, p90, p99, p99.9 and max, in milliseconds.
    pub latency_ms: [f64; 5],
    pub server_cpu_ms_per_op: f64,
    pub client_cpu_ms_per_op: f64,
    pub wall_s: f64,
    /// Leader changes, fsync counts, error kinds, time limit.
    pub notes: Vec<String>,
}

/// CPU seconds spent during a level, by the servers and by this process.
pub struct Cpu {
    pub server_s: f64,
    pub client_s: f64,
}

/// Nearest-rank percentile of sorted nanoseconds, in milliseconds (NaN when empty).
fn percentile_ms(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted_ns.len() as f64).ceil() as usize;
    sorted_ns[rank.clamp(1, sorted_ns.len()) - 1] as f64 / 1e6
}

pub fn row(system: &str, clients: usize, r: &LevelResult, cpu: Cpu, mut notes: Vec<String>) -> Row {
    let ok = r.latencies_ns.len();
    let per_op = |s: f64| if ok == 0 { f64::NAN } else { s * 1e3 / ok as f64 };
    let lat = |p| percentile_ms(&r.latencies_ns, p);
    if r.error_count() > 0 {
        notes.push(format!("errors {:?}; e.g. {}", r.errors, r.error_sample.as_deref().unwrap_or("?")));
    }
    if r.hit_time_limit {
        notes.push("stopped by --max-seconds before all requests were issued".into());
    }
    Row {
        system: system.to_string(),
        clients,
        ok,
        errors: r.error_count(),
        req_per_s: ok as f64 / r.wall.as_secs_f64(),
        latency_ms: [lat(50.0), lat(90.0), lat(99.0), lat(99.9), lat(100.0)],
        server_cpu_ms_per_op: per_op(cpu.server_s),
        client_cpu_ms_per_op: per_op(cpu.client_s),
        wall_s: r.wall.as_secs_f64(),
        notes,
    }
}

/// Renders `rows` as a Markdown table with aligned columns (readable as plain text too).
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].len()).chain([header[c].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:>w$}")).collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push_str(&line(widths.iter().map(|w| format!("{:->w$}", ":")).collect()));
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The main results table.
pub fn results_table(rows: &[Row]) -> String {
    let header = [
        "system",
        "clients",
        "ok",
        "errors",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "server CPU ms/op",
        "client CPU ms/op",
        "wall s",
    ];
    let cells = rows
        .iter()
        .map(|r| {
            let mut c = vec![r.system.clone(), r.clients.to_string(), r.ok.to_string(), r.errors.to_string()];
            c.push(format!("{:.0}", r.req_per_s));
            c.extend(r.latency_ms.iter().map(|v| ms(*v)));
            c.push(format!("{:.3}", r.server_cpu_ms_per_op));
            c.push(format!("{:.3}", r.client_cpu_ms_per_op));
            c.push(format!("{:.2}", r.wall_s));
            c
        })
        .collect::<Vec<_>>();
    table(&header, &cells)
}

/// cronraft/etcd for p50, p99 and throughput at every concurrency both ran (None if etcd did not).
pub fn ratio_table(rows: &[Row], ours: &str, theirs: &str) -> Option<String> {
    let pairs: Vec<(&Row, &Row)> = rows
        .iter()
        .filter(|r| r.system == ours)
        .filter_map(|a| rows.iter().find(|b| b.system == theirs && b.clients == a.clients).map(|b| (a, b)))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let cells = pairs
        .iter()
        .map(|(a, b)| {
            vec![
                a.clients.to_string(),
                format!("{:.2}", a.latency_ms[0] / b.latency_ms[0]),
                format!("{:.2}", a.latency_ms[2] / b.latency_ms[2]),
                format!("{:.2}", a.req_per_s / b.req_per_s),
            ]
        })
        .collect::<Vec<_>>();
    Some(table(&["clients", "p50 ratio", "p99 ratio", "throughput ratio"], &cells))
}

/// One bullet per level that has notes.
pub fn notes(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows.iter().filter(|r| !r.notes.is_empty()) {
        let _ = writeln!(out, "- {} c={}: {}", r.system, r.clients, r.notes.join("; "));
    }
    out
}
