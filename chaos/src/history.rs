//! The history: one JSON object per line for every client operation (`invoke`, then exactly one
//! of `ok` / `fail` / `info`) and every nemesis action (`start` / `end` of a fault).
//!
//! Meaning of the completion types, as in Jepsen: `ok` definitely happened, `fail` definitely did
//! not, `info` is indeterminate (it may take effect at any later time, or never). Checkers read
//! only this file's contents, so a run can be re-checked offline and checkers can be tested on
//! hand-made histories.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who issued an event: a logical client process (retired after an `info`) or the nemesis.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    Client(u64),
    Named(String),
}

impl Process {
    pub fn nemesis() -> Process {
        Process::Named("nemesis".into())
    }
}

/// The type of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
    /// A nemesis fault begins.
    Start,
    /// A nemesis fault is healed.
    End,
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub index: u64,
    /// Nanoseconds since the run started (monotonic clock): the order checkers use.
    pub time_ns: u64,
    /// Wall-clock milliseconds since the Unix epoch (for humans and timelines).
    pub wall_ms: i64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The operation: `write`, `read`, `add`, `final_read`, `digest`, or a nemesis name.
    pub f: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub value: Value,
    /// The node the operation was sent to (or the nemesis' target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why the history could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("history line {line}: {source}")]
    Parse { line: usize, source: serde_json::Error },
}

struct Inner {
    out: Option<std::io::BufWriter<std::fs::File>>,
    events: Vec<Event>,
}

/// A shared, append-only recorder: keeps every event in memory and streams it to the file.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    inner: Arc<Mutex<Inner>>,
}

impl Recorder {
    /// Records to `path` (created or truncated) as well as in memory.
    pub fn to_file(path: &Path) -> Result<Recorder, HistoryError> {
        let io = |source| HistoryError::Io { path: path.display().to_string(), source };
        let file = std::fs::File::create(path).map_err(io)?;
        let inner = Inner { out: Some(std::io::BufWriter::new(file)), events: Vec::new() };
        Ok(Recorder { start: Instant::now(), inner: Arc::new(Mutex::new(inner)) })
    }

    /// Records in memory only.
    pub fn in_memory() -> Recorder {
        Recorder { start: Instant::now(), inner: Arc::new(Mutex::new(Inner { out: None, events: Vec::new() })) }
    }

    /// Appends an event, stamping its index and times; returns it. (One argument per history
    /// field keeps call sites one readable line.)
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        process: Process,
        kind: Kind,
        f: &str,
        key: Option<&str>,
        value: Value,
        node: Option<u64>,
        error: Option<String>,
    ) -> Event {
        let mut inner = self.inner.lock().expect("history lock");
        let event = Event {
            index: inner.events.len() as u64,
            time_ns: self.start.elapsed().as_nanos() as u64,
            wall_ms: wall_ms(),
            process,
            kind,
            f: f.to_string(),
            key: key.map(String::from),
            value,
            node,
            error,
        };
        if let Some(out) = inner.out.as_mut() {
            // A write error must not stop the run; the in-memory copy is what the checkers use.
            let _ = serde_json::to_writer(&mut *out, &event).map(|_| out.write_all(b"\n"));
        }
        inner.events.push(event.clone());
        event
    }

    /// Flushes the file and returns a copy of every event so far.
    pub fn snapshot(&self) -> Vec<Event> {
        let mut inner = self.inner.lock().expect("history lock");
        if let Some(out) = inner.out.as_mut() {
            let _ = out.flush();
        }
        inner.events.clone()
    }
}

/// Reads a `history.jsonl` file.
pub fn read(path: &Path) -> Result<Vec<Event>, HistoryError> {
    let io = |source| HistoryError::Io { path: path.display().to_string(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut events = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        events.push(serde_json::from_str(&line).map_err(|source| HistoryError::Parse { line: i + 1, source })?);
    }
    Ok(events)
}

pub fn wall_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let rec = Recorder::to_file(&path).unwrap();
        rec.record(Process::Client(3), Kind::Invoke, "write", Some("k1"), Value::from(5), Some(2), None);
        rec.record(Process::nemesis(), Kind::Start, "kill", None, Value::Null, Some(1), None);
        let mem = rec.snapshot();
        let disk = read(&path).unwrap();
        assert_eq!(mem, disk);
        assert_eq!(disk[1].process, Process::nemesis());
        assert!(disk[0].time_ns <= disk[1].time_ns);
    }
}
