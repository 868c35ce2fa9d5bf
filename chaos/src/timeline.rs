//! The timeline picture: `timeline.html` in the run directory, written at the end of every `run`
//! and by `check`. One self-contained HTML file with one inline SVG — no script, no external
//! style sheet or font — so it opens anywhere, can be attached to an issue, and still renders in
//! ten years. Hovering an element shows its details (SVG `<title>`).
//!
//! The x axis is time since the run started (the history's monotonic `time_ns`). Lanes, top to
//! bottom:
//!
//! * **faults** — each nemesis fault (paired `start` / `end` of one kind and node) as a bar
//!   labelled with its kind and node, also shaded as a band across every lane below, so any
//!   operation can be read against the faults; `heal_all`, `healthy`, `cron_quiesce` and a failed
//!   `recovery` are vertical lines;
//! * **leader seen by nN** — one lane per node, from the leader sampler (`sampler.rs`): who the
//!   node believed led (colour per leader, the term in the tooltip), hatched while it did not
//!   answer;
//! * **task …** — for the `cron` workload, one lane per task: the final execution records at
//!   their slot (upper half; green on time, orange catch-up, red `missed`, grey `skipped`) and the
//!   recording executor's deliveries when they arrived (lower half; black for a repeated one);
//! * **p N** — one lane per client process: each operation a bar from invoke to completion,
//!   green `ok`, red `fail`, orange `info` (an `info` without completion runs to the end).
//!
//! Its size is bounded ([`Limits`]): at most so many client lanes, operations per lane and in
//! all, and record / delivery ticks. When a lane has more operations than it may draw, every
//! `fail` and `info` is kept and `ok` ones are thinned evenly; everything left out is counted in
//! the note above the picture.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::checker::{pair, Op, Outcome};
use crate::history::{Event, Kind, Process};

/// The file name in the run directory.
pub const FILE: &str = "timeline.html";

/// Bounds on what is drawn.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub client_lanes: usize,
    pub ops_per_lane: usize,
    pub ops_total: usize,
    pub ticks: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { client_lanes: 150, ops_per_lane: 1_500, ops_total: 15_000, ticks: 10_000 }
    }
}

const LEFT: f64 = 180.0;
const PLOT_W: f64 = 1_600.0;
const RIGHT: f64 = 20.0;
const AXIS_H: f64 = 28.0;
const LANE_H: f64 = 14.0;
const TASK_LANE_H: f64 = 22.0;
const OK: &str = "#2e9d4f";
const FAIL: &str = "#d64545";
const INFO: &str = "#f0a020";
const LEADER_COLORS: [&str; 6] = ["#1f77b4", "#9467bd", "#17becf", "#bcbd22", "#e377c2", "#8c564b"];

/// Writes `timeline.html` into `dir`; returns its path.
pub fn write(dir: &Path, events: &[Event]) -> std::io::Result<PathBuf> {
    let path = dir.join(FILE);
    std::fs::write(&path, render(events, Limits::default()))?;
    Ok(path)
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn fault_color(kind: &str) -> &'static str {
    match kind {
        "kill" => "#d64545",
        "pause" => "#6a5acd",
        "partition" => "#1f77b4",
        k if k.starts_with("executor") => "#8c564b",
        k if k.contains("clock") || k.contains("skew") => "#e377c2",
        _ => "#777777",
    }
}

/// A fault as drawn: kind, node, from, to (seconds), whether the start recorded an error.
struct Fault {
    kind: String,
    node: Option<u64>,
    from: f64,
    to: f64,
    error: Option<String>,
}

/// The x axis: seconds since the run started, mapped onto the plot's width.
struct Scale {
    /// The last event's time (at least 1 s): the right edge of the plot.
    end: f64,
    /// The wall clock (ms) at time 0, from the first event's two clocks.
    wall0: f64,
}

impl Scale {
    fn of(events: &[Event]) -> Scale {
        let end = events.iter().map(|e| secs(e.time_ns)).fold(1.0_f64, f64::max);
        let wall0 = events.first().map(|e| e.wall_ms as f64 - e.time_ns as f64 / 1e6).unwrap_or(0.0);
        Scale { end, wall0 }
    }

    /// The x coordinate of `t` seconds (clamped to the plot).
    fn x(&self, t: f64) -> f64 {
        LEFT + (t / self.end).clamp(0.0, 1.0) * PLOT_W
    }

    /// Wall-clock ms → seconds since the start.
    fn wall_secs(&self, ms: i64) -> f64 {
        (ms as f64 - self.wall0) / 1e3
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The top of each group of lanes and the picture's size.
struct Layout {
    faults_y: f64,
    leaders_y: f64,
    tasks_y: f64,
    clients_y: f64,
    width: f64,
    height: f64,
}

impl Layout {
    fn new(leader_lanes: usize, task_lanes: usize, client_lanes: usize) -> Layout {
        let faults_y = AXIS_H;
        let leaders_y = faults_y + LANE_H * 1.5;
        let tasks_y = leaders_y + LANE_H * leader_lanes as f64;
        let clients_y = tasks_y + TASK_LANE_H * task_lanes as f64;
        let height = clients_y + LANE_H * client_lanes as f64 + 10.0;
        Layout { faults_y, leaders_y, tasks_y, clients_y, width: LEFT + PLOT_W + RIGHT, height }
    }
}

/// The `cron` workload's tasks: id → name, each task's final records by name, and the recording
/// executor's deliveries.
struct CronTasks<'a> {
    names: BTreeMap<u64, String>,
    finals: HashMap<String, Vec<Value>>,
    deliveries: Vec<&'a Event>,
}

/// The client lanes drawn (process → indices into the paired operations) and how many there were.
struct ClientLanes {
    drawn: Vec<(u64, Vec<usize>)>,
    total: usize,
}

/// Renders the page for `events` within `limits`: read the history into faults, leader views,
/// cron tasks and client lanes, then draw each group of lanes in turn and wrap the picture.
pub fn render(events: &[Event], limits: Limits) -> String {
    let scale = Scale::of(events);
    let mut notes: Vec<String> = Vec::new();
    let (faults, markers) = faults_and_markers(events, scale.end);
    let leaders = leader_views(events);
    if leaders.is_empty() {
        notes.push("no leader observations in this history (recorded by an older harness)".into());
    }
    let ops = pair(events);
    let tasks = cron_tasks(events, &ops);
    let clients = client_lanes(&ops, limits, &mut notes);
    let layout = Layout::new(leaders.len(), tasks.names.len(), clients.drawn.len());

    let mut s = String::new();
    draw_axis(&mut s, &scale, &layout);
    draw_faults(&mut s, &scale, &layout, &faults);
    draw_leaders(&mut s, &scale, &layout, &leaders);
    let ticks_omitted = draw_tasks(&mut s, &scale, &layout, &tasks, limits.ticks);
    if ticks_omitted > 0 {
        notes.push(format!("{ticks_omitted} record and delivery ticks not drawn (at most {} in all)", limits.ticks));
    }
    draw_clients(&mut s, &scale, &layout, events, &ops, &clients);
    draw_markers(&mut s, &scale, &layout, &markers);
    s.push_str("</svg>\n");
    page(events.len(), scale.end, faults.len(), clients.total, &notes, &s)
}

/// The nemesis' faults (paired `start` / `end` of one kind and node; one never ended lasts until
/// `heal_all`, or the end) and the vertical markers (`heal_all`, `healthy`, `cron_quiesce`, a
/// failed `recovery`).
fn faults_and_markers(events: &[Event], end: f64) -> (Vec<Fault>, Vec<(f64, String)>) {
    let mut faults: Vec<Fault> = Vec::new();
    let mut open: HashMap<(String, Option<u64>), usize> = HashMap::new();
    let mut markers: Vec<(f64, String)> = Vec::new();
    for e in events {
        let t = secs(e.time_ns);
        match (&e.process, e.kind, e.f.as_str()) {
            (_, _, "heal_all" | "healthy" | "cron_quiesce") => markers.push((t, e.f.clone())),
            (Process::Named(p), _, "recovery") if p == "nemesis" => markers.push((t, "recovery failed".into())),
            (Process::Named(p), Kind::Start, f) if p == "nemesis" => {
                open.insert((f.to_string(), e.node), faults.len());
                faults.push(Fault { kind: f.into(), node: e.node, from: t, to: end, error: e.error.clone() });
            }
            (Process::Named(p), Kind::End, f) if p == "nemesis" => {
                if let Some(i) = open.remove(&(f.to_string(), e.node)) {
                    faults[i].to = t;
                }
            }
            _ => {}
        }
    }
    let heal = markers.iter().find(|m| m.1 == "heal_all").map(|m| m.0);
    for i in open.into_values() {
        faults[i].to = heal.unwrap_or(end);
    }
    (faults, markers)
}

/// The leader sampler's observations, per node, in time order.
fn leader_views(events: &[Event]) -> BTreeMap<u64, Vec<(f64, &Event)>> {
    let mut leaders: BTreeMap<u64, Vec<(f64, &Event)>> = BTreeMap::new();
    for e in events.iter().filter(|e| matches!(&e.process, Process::Named(p) if p == "sampler") && e.f == "leader") {
        leaders.entry(e.node.unwrap_or(0)).or_default().push((secs(e.time_ns), e));
    }
    leaders
}

/// The cron tasks created, their final records and the executor's deliveries.
fn cron_tasks<'a>(events: &'a [Event], ops: &[Op]) -> CronTasks<'a> {
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    let mut finals: HashMap<String, Vec<Value>> = HashMap::new();
    for op in ops {
        match (op.f.as_str(), op.outcome) {
            ("cron_create", Outcome::Ok) => {
                if let Some(id) = op.output["id"].as_u64() {
                    names.insert(id, op.key.clone().unwrap_or_default());
                }
            }
            ("cron_final", Outcome::Ok) => {
                finals.insert(op.key.clone().unwrap_or_default(), op.output.as_array().cloned().unwrap_or_default());
            }
            _ => {}
        }
    }
    let deliveries = events
        .iter()
        .filter(|e| matches!(&e.process, Process::Named(p) if p == "executor") && e.f == "deliver")
        .collect();
    CronTasks { names, finals, deliveries }
}

/// One lane per client process, within `limits`: the first `client_lanes` processes, each
/// thinned to its share of the operation budget (every `fail` and `info` kept first). What is
/// left out is said in `notes`.
fn client_lanes(ops: &[Op], limits: Limits, notes: &mut Vec<String>) -> ClientLanes {
    let mut lanes: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Process::Client(p) = op.process {
            lanes.entry(p).or_default().push(i);
        }
    }
    let total = lanes.len();
    if total > limits.client_lanes {
        let left_out: usize = lanes.values().skip(limits.client_lanes).map(Vec::len).sum();
        notes.push(format!(
            "{} of {total} client processes drawn; the other {} ({left_out} operations) are left out",
            limits.client_lanes,
            total - limits.client_lanes
        ));
    }
    let mut budget = limits.ops_total;
    let mut thinned = 0usize;
    let mut drawn: Vec<(u64, Vec<usize>)> = Vec::new();
    for (p, idx) in lanes.into_iter().take(limits.client_lanes) {
        let cap = limits.ops_per_lane.min(budget);
        let keep = thin(&idx, cap, |i| ops[i].outcome != Outcome::Ok);
        thinned += idx.len() - keep.len();
        budget -= keep.len();
        drawn.push((p, keep));
    }
    if thinned > 0 {
        notes.push(format!(
            "{thinned} ok operations not drawn (at most {} per lane and {} in all; every fail and info is kept)",
            limits.ops_per_lane, limits.ops_total
        ));
    }
    ClientLanes { drawn, total }
}

/// The `<svg>` element's opening, its hatch pattern, and the time axis with its grid lines.
fn draw_axis(s: &mut String, scale: &Scale, layout: &Layout) {
    let (width, height, end) = (layout.width, layout.height, scale.end);
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width} {height:.0}\" font-family=\"sans-serif\" font-size=\"10\">\n\
         <defs><pattern id=\"hatch\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\">\
         <path d=\"M0,4 L4,0\" stroke=\"#999\" stroke-width=\"1\"/></pattern></defs>\n"
    );
    let step = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0]
        .into_iter()
        .find(|st| end / st <= 30.0)
        .unwrap_or(600.0);
    let _ = writeln!(s, "<g class=\"axis\">");
    let mut t = 0.0;
    while t <= end + 1e-9 {
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{height:.0}\" stroke=\"#eee\"/>\
             <text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{t} s</text>",
            scale.x(t),
            AXIS_H - 6.0,
            AXIS_H - 10.0
        );
        t += step;
    }
    let _ = writeln!(s, "</g>");
}

/// The fault lane: each fault a labelled bar, and a band across every lane below it.
fn draw_faults(s: &mut String, scale: &Scale, layout: &Layout, faults: &[Fault]) {
    let faults_y = layout.faults_y;
    label(s, faults_y, LANE_H * 1.5, "faults");
    for f in faults {
        let (x0, x1) = (scale.x(f.from), scale.x(f.to).max(scale.x(f.from) + 1.0));
        let who = f.node.map(|n| format!(" n{n}")).unwrap_or_default();
        let err = f.error.as_ref().map(|e| format!(" (error: {e})")).unwrap_or_default();
        let tip = esc(&format!("{}{who}: {:.2}–{:.2} s{err}", f.kind, f.from, f.to));
        let c = fault_color(&f.kind);
        let _ = writeln!(
            s,
            "<g class=\"fault\"><title>{tip}</title>\
             <rect class=\"band\" x=\"{x0:.1}\" y=\"{faults_y}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{c}\" fill-opacity=\"0.10\"/>\
             <rect x=\"{x0:.1}\" y=\"{faults_y}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{c}\" fill-opacity=\"0.7\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#fff\" font-size=\"9\">{}</text></g>",
            x1 - x0,
            layout.height - faults_y,
            x1 - x0,
            LANE_H * 1.5 - 2.0,
            x0 + 2.0,
            faults_y + LANE_H,
            esc(&format!("{}{who}", f.kind)),
        );
    }
}

/// One lane per node: whom it believed led, segment by segment (hatched while it did not answer).
fn draw_leaders(s: &mut String, scale: &Scale, layout: &Layout, leaders: &BTreeMap<u64, Vec<(f64, &Event)>>) {
    for (row, (node, seen)) in leaders.iter().enumerate() {
        let y = layout.leaders_y + row as f64 * LANE_H;
        label(s, y, LANE_H, &format!("leader seen by n{node}"));
        let _ = writeln!(s, "<g class=\"leader\">");
        for (i, (t0, e)) in seen.iter().enumerate() {
            let t1 = seen.get(i + 1).map(|n| n.0).unwrap_or(scale.end);
            let (x0, w) = (scale.x(*t0), (scale.x(t1) - scale.x(*t0)).max(1.0));
            let v = &e.value;
            let (fill, text) = match v["leader"].as_u64() {
                _ if v["state"] == "unreachable" => ("url(#hatch)".to_string(), "no answer".to_string()),
                Some(l) => (LEADER_COLORS[(l as usize) % LEADER_COLORS.len()].to_string(), format!("n{l}")),
                None => ("#dddddd".to_string(), "no leader".to_string()),
            };
            let tip = esc(&format!(
                "n{node} at {t0:.2}–{t1:.2} s: leader {text}, term {}, state {}{}",
                v["term"],
                v["state"].as_str().unwrap_or("?"),
                e.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
            ));
            let _ = writeln!(
                s,
                "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{fill}\"><title>{tip}</title></rect>{}",
                y + 1.0,
                LANE_H - 2.0,
                if w > 18.0 {
                    format!("<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#fff\" font-size=\"9\">{}</text>", x0 + 2.0, y + LANE_H - 3.0, esc(&text))
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(s, "</g>");
    }
}

/// One lane per cron task: its final records at their slot (upper half) and the deliveries when
/// they arrived (lower half), at most `ticks` in all; returns how many were left out.
fn draw_tasks(s: &mut String, scale: &Scale, layout: &Layout, tasks: &CronTasks, ticks: usize) -> usize {
    let mut ticks_left = ticks;
    let mut ticks_omitted = 0usize;
    let mut take_tick = || match ticks_left {
        0 => {
            ticks_omitted += 1;
            false
        }
        _ => {
            ticks_left -= 1;
            true
        }
    };
    for (row, (id, name)) in tasks.names.iter().enumerate() {
        let y = layout.tasks_y + row as f64 * TASK_LANE_H;
        label(s, y, TASK_LANE_H, &format!("task {name}"));
        let _ = writeln!(s, "<g class=\"task\">");
        for r in tasks.finals.get(name).into_iter().flatten() {
            let Some(slot) = r["scheduled_ms"].as_i64() else { continue };
            if take_tick() {
                draw_record(s, scale, y, r, slot);
            }
        }
        for d in tasks.deliveries.iter().filter(|d| d.value["task_id"].as_u64() == Some(*id)) {
            if take_tick() {
                draw_delivery(s, scale, y, d);
            }
        }
        let _ = writeln!(s, "</g>");
    }
    ticks_omitted
}

/// One execution record at its slot: green on time, orange catch-up, red missed, grey skipped.
fn draw_record(s: &mut String, scale: &Scale, y: f64, r: &Value, slot: i64) {
    let (status, trigger) = (r["status"].as_str().unwrap_or("?"), r["trigger"].as_str().unwrap_or("?"));
    let color = match (status, trigger) {
        ("missed", _) => FAIL,
        ("skipped", _) => "#999999",
        (_, "catchup") => INFO,
        _ => OK,
    };
    let late = r["created_ms"].as_i64().map(|c| format!(", fired {} ms after", c - slot)).unwrap_or_default();
    let tip = esc(&format!("record {} slot {slot}{late}: {status} ({trigger})", r["id"]));
    let _ = writeln!(
        s,
        "<rect class=\"record {status}\" x=\"{:.1}\" y=\"{:.1}\" width=\"1.5\" height=\"{:.1}\" fill=\"{color}\"><title>{tip}</title></rect>",
        scale.x(scale.wall_secs(slot)),
        y + 1.0,
        TASK_LANE_H / 2.0 - 1.0
    );
}

/// One delivery when it arrived: blue, black for a repeated one.
fn draw_delivery(s: &mut String, scale: &Scale, y: f64, d: &Event) {
    let dup = d.value["duplicate"].as_bool().unwrap_or(false);
    let tip = esc(&format!(
        "delivery of execution {} attempt {} (slot {}){} at {:.2} s",
        d.value["execution_id"],
        d.value["attempt"],
        d.value["scheduled_ms"],
        if dup { ", repeated" } else { "" },
        secs(d.time_ns)
    ));
    let _ = writeln!(
        s,
        "<rect class=\"delivery\" x=\"{:.1}\" y=\"{:.1}\" width=\"1.5\" height=\"{:.1}\" fill=\"{}\"><title>{tip}</title></rect>",
        scale.x(secs(d.time_ns)),
        y + TASK_LANE_H / 2.0,
        TASK_LANE_H / 2.0 - 2.0,
        if dup { "#000000" } else { "#1f77b4" }
    );
}

/// One lane per drawn client process: each operation a bar from invoke to completion.
fn draw_clients(s: &mut String, scale: &Scale, layout: &Layout, events: &[Event], ops: &[Op], clients: &ClientLanes) {
    for (row, (p, idx)) in clients.drawn.iter().enumerate() {
        let y = layout.clients_y + row as f64 * LANE_H;
        label(s, y, LANE_H, &format!("p {p}"));
        let _ = writeln!(s, "<g class=\"process\">");
        for &i in idx {
            let op = &ops[i];
            let t0 = secs(op.call_ns);
            let done = completion_ns(events, op).map(secs);
            let t1 = done.unwrap_or(scale.end);
            let (class, color) = match op.outcome {
                Outcome::Ok => ("ok", OK),
                Outcome::Fail => ("fail", FAIL),
                Outcome::Info => ("info", INFO),
            };
            let tip = esc(&format!(
                "{} {} on n{}: {class} {:.3}–{} s",
                op.f,
                op.key.as_deref().unwrap_or(""),
                op.node.unwrap_or(0),
                t0,
                done.map(|d| format!("{d:.3}")).unwrap_or_else(|| "never completed".into()),
            ));
            let _ = writeln!(
                s,
                "<rect class=\"op {class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{tip}</title></rect>",
                scale.x(t0),
                y + 2.0,
                (scale.x(t1) - scale.x(t0)).max(1.0),
                LANE_H - 4.0
            );
        }
        let _ = writeln!(s, "</g>");
    }
}

/// The markers, on top of everything; a label close to the previous one goes one line lower.
fn draw_markers(s: &mut String, scale: &Scale, layout: &Layout, markers: &[(f64, String)]) {
    let height = layout.height;
    let mut last_label: Option<(f64, f64)> = None;
    for (t, what) in markers {
        let lx = scale.x(*t) + 2.0;
        let ly = match last_label {
            Some((px, py)) if lx - px < 60.0 => py + 9.0,
            _ => AXIS_H + 8.0,
        };
        last_label = Some((lx, ly));
        let _ = writeln!(
            s,
            "<g class=\"marker\"><title>{4} at {5:.2} s</title><line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" \
             y2=\"{height:.0}\" stroke=\"#000\" stroke-dasharray=\"4,3\"/><text x=\"{2:.1}\" y=\"{3}\" \
             font-size=\"9\">{4}</text></g>",
            scale.x(*t),
            AXIS_H,
            lx,
            ly,
            esc(what),
            t
        );
    }
}

/// The HTML page around the picture: a title, a summary line, the colour key and the notes.
fn page(event_count: usize, end: f64, fault_count: usize, client_count: usize, notes: &[String], svg: &str) -> String {
    let mut page = String::from(
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><meta charset=\"utf-8\"/>\
         <title>cronraft-chaos timeline</title>\
         <style>body{font-family:sans-serif;margin:1em} p{margin:.3em 0;font-size:13px} .key span{padding:0 .4em;color:#fff}</style>\
         </head><body>\n<h3>cronraft-chaos timeline</h3>\n",
    );
    let _ = writeln!(
        page,
        "<p>{event_count} events over {end:.1} s; {fault_count} faults; {client_count} client processes. Hover for details.</p>",
    );
    let _ = writeln!(
        page,
        "<p class=\"key\">operations: <span style=\"background:{OK}\">ok</span> <span style=\"background:{FAIL}\">fail</span> \
         <span style=\"background:{INFO}\">info</span> · records: <span style=\"background:{OK}\">on time</span> \
         <span style=\"background:{INFO}\">catch-up</span> <span style=\"background:{FAIL}\">missed</span> \
         <span style=\"background:#999\">skipped</span> · <span style=\"background:#1f77b4\">delivery</span></p>"
    );
    for n in notes {
        let _ = writeln!(page, "<p class=\"note\">Note: {}</p>", esc(n));
    }
    page.push_str(svg);
    page.push_str("</body></html>\n");
    page
}

/// The lane's name on the left and a separator line.
fn label(s: &mut String, y: f64, h: f64, text: &str) {
    let _ = writeln!(
        s,
        "<g class=\"lane\"><line x1=\"0\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#f4f4f4\"/>\
         <text x=\"4\" y=\"{2:.1}\">{3}</text></g>",
        y + h,
        LEFT + PLOT_W,
        y + h - 3.0,
        esc(text)
    );
}

/// When an operation completed: the `ret_ns` of a definite one; for an `info` completion, the
/// time of that completion event (pairing forgets it on purpose: for checkers it never ends).
fn completion_ns(events: &[Event], op: &Op) -> Option<u64> {
    if let Some(t) = op.ret_ns {
        return Some(t);
    }
    events
        .iter()
        .skip_while(|e| e.time_ns < op.call_ns)
        .find(|e| e.process == op.process && e.kind == Kind::Info && e.f == op.f)
        .map(|e| e.time_ns)
}

/// At most `cap` of `idx`, keeping every `keep_always` one first and thinning the rest evenly.
fn thin(idx: &[usize], cap: usize, keep_always: impl Fn(usize) -> bool) -> Vec<usize> {
    if idx.len() <= cap {
        return idx.to_vec();
    }
    let (must, rest): (Vec<usize>, Vec<usize>) = idx.iter().partition(|i| keep_always(**i));
    let mut out: Vec<usize> = must.into_iter().take(cap).collect();
    let room = cap - out.len();
    if room > 0 {
        let stride = rest.len() as f64 / room as f64;
        out.extend((0..room).map(|k| rest[((k as f64 * stride) as usize).min(rest.len() - 1)]));
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[allow(clippy::too_many_arguments)]
    fn ev(
        i: usize,
        t_ms: u64,
        process: Process,
        kind: Kind,
        f: &str,
        key: Option<&str>,
        value: Value,
        node: Option<u64>,
    ) -> Event {
        Event {
            index: i as u64,
            time_ns: t_ms * 1_000_000,
            wall_ms: 1_000_000 + t_ms as i64,
            process,
            kind,
            f: f.into(),
            key: key.map(String::from),
            value,
            node,
            error: None,
        }
    }

    fn small() -> Vec<Event> {
        let c = Process::Client;
        let nem = Process::nemesis;
        let rows = vec![
            (
                0,
                Process::Named("sampler".into()),
                Kind::Info,
                "leader",
                None,
                json!({"leader": 1, "term": 2, "state": "leader"}),
                Some(1),
            ),
            (
                0,
                Process::Named("sampler".into()),
                Kind::Info,
                "leader",
                None,
                json!({"leader": 1, "term": 2, "state": "follower"}),
                Some(2),
            ),
            (100, c(1), Kind::Invoke, "cron_create", Some("t"), Value::Null, Some(1)),
            (150, c(1), Kind::Ok, "cron_create", Some("t"), json!({"id": 7}), Some(1)),
            (1_000, c(2), Kind::Invoke, "write", Some("k"), json!(1), Some(1)),
            (1_050, c(2), Kind::Ok, "write", Some("k"), Value::Null, Some(1)),
            (1_100, c(2), Kind::Invoke, "read", Some("k"), Value::Null, Some(2)),
            (1_300, c(2), Kind::Fail, "read", Some("k"), Value::Null, Some(2)),
            (2_000, nem(), Kind::Start, "kill", None, json!({"fault": "kill"}), Some(1)),
            (
                2_100,
                Process::Named("sampler".into()),
                Kind::Info,
                "leader",
                None,
                json!({"leader": null, "state": "unreachable"}),
                Some(1),
            ),
            (2_200, c(3), Kind::Invoke, "write", Some("k"), json!(2), Some(1)),
            (2_700, c(3), Kind::Info, "write", Some("k"), Value::Null, Some(1)),
            (
                3_000,
                Process::Named("executor".into()),
                Kind::Ok,
                "deliver",
                Some("7"),
                json!({"execution_id": 9, "attempt": 1, "task_id": 7, "scheduled_ms": 1_003_000, "duplicate": false}),
                None,
            ),
            (4_000, nem(), Kind::End, "kill", None, json!({"fault": "kill"}), Some(1)),
            (4_500, nem(), Kind::End, "heal_all", None, Value::Null, None),
            (5_000, c(4), Kind::Invoke, "cron_final", Some("t"), Value::Null, Some(2)),
            (
                5_010,
                c(4),
                Kind::Ok,
                "cron_final",
                Some("t"),
                json!([
                {"id": 9, "scheduled_ms": 1_003_000, "created_ms": 1_003_005, "status": "success", "trigger": "schedule"},
                {"id": 10, "scheduled_ms": 1_002_000, "created_ms": 1_009_000, "status": "missed", "trigger": "schedule"}]),
                Some(2),
            ),
        ];
        rows.into_iter().enumerate().map(|(i, (t, p, k, f, key, v, n))| ev(i, t, p, k, f, key, v, n)).collect()
    }

    #[test]
    fn a_small_history_draws_lanes_a_fault_band_and_op_bars() {
        let page = render(&small(), Limits::default());
        assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
        assert_eq!(page.matches("<svg").count(), 1);
        assert!(!page.contains("<script") && !page.contains("href=\"http"), "self-contained");
        // Lanes: faults, one per node's leader view, the task, every client process.
        for lane in ["faults", "leader seen by n1", "leader seen by n2", "task t", "p 1", "p 2", "p 3", "p 4"] {
            assert!(page.contains(&format!(">{lane}</text>")), "lane {lane} missing");
        }
        // The fault: a band and a labelled bar.
        assert_eq!(page.matches("<g class=\"fault\">").count(), 1);
        assert!(page.contains("class=\"band\"") && page.contains(">kill n1</text>"));
        assert!(page.contains("kill n1: 2.00–4.00 s"));
        // Operations by outcome.
        assert_eq!(page.matches("class=\"op ok\"").count(), 3);
        assert_eq!(page.matches("class=\"op fail\"").count(), 1);
        assert_eq!(page.matches("class=\"op info\"").count(), 1);
        assert!(page.contains("write k on n1: info 2.200–2.700 s"), "an info op ends at its completion");
        // Leader segments, records and the delivery, the heal marker.
        assert!(page.contains("leader n1, term 2"));
        assert!(page.contains("url(#hatch)"), "the unreachable node is hatched");
        assert!(page.contains("class=\"record success\"") && page.contains("class=\"record missed\""));
        assert!(page.contains("slot 1002000, fired 7000 ms after: missed"));
        assert_eq!(page.matches("class=\"delivery\"").count(), 1);
        assert!(page.contains(">heal_all</text>"));
        assert!(!page.contains("class=\"note\""), "nothing was left out");
    }

    #[test]
    fn the_picture_is_bounded_and_says_what_it_left_out() {
        let mut events = small();
        let mut t = 6_000;
        for p in 10..16u64 {
            for k in 0..50 {
                let (kind, n) = if k == 7 { (Kind::Fail, events.len()) } else { (Kind::Ok, events.len()) };
                events.push(ev(n, t, Process::Client(p), Kind::Invoke, "read", Some("k"), Value::Null, Some(1)));
                events.push(ev(n + 1, t + 5, Process::Client(p), kind, "read", Some("k"), Value::Null, Some(1)));
                t += 10;
            }
        }
        let limits = Limits { client_lanes: 7, ops_per_lane: 20, ops_total: 1_000, ticks: 1 };
        let page = render(&events, limits);
        assert!(page.contains("7 of 10 client processes drawn"), "{page}");
        assert!(!page.contains(">p 15</text>") && page.contains(">p 12</text>"));
        // Lanes 10–12 drew 20 each, keeping their fail.
        assert_eq!(page.matches("class=\"op fail\"").count(), 1 + 3);
        assert!(page.contains("90 ok operations not drawn"));
        assert!(page.contains("2 record and delivery ticks not drawn"));
    }
}
