//! Clock skew as the history records it: the windows in which the `clock` nemesis had some
//! node's wall clock off, and the two bounds the schedule checkers need to stay exact under skew.
//!
//! The checkers compare slots (wall-clock instants chosen by a node's clock) with the harness'
//! wall clock. Without skew the two are one clock. With skew a node can legitimately
//!
//! * fire slots **early**: a leader whose clock runs `+o` ahead fires at real time `t` every slot
//!   up to `t + o`, and moves the task's watermark there (so after the heal those slots are not
//!   fired again, and the ones between the heal and that watermark never run) — [`Skew::latest`];
//! * stamp a command **late or early**: create, update and resume set a task's watermark to the
//!   leader's clock (writes are proxied to the leader, whose handler builds the command), so a
//!   resume stamped by a clock `-o` behind lets slots up to `o` before the resume's invocation
//!   fire — [`Skew::earliest`].
//!
//! A clock stepping back never re-fires a slot: the replicated watermark refuses every slot at
//! or before it, whatever the clock says, so `one_per_slot` needs no allowance. The windows come
//! from the nemesis' `clock` events: the start is recorded before the clock is changed and the
//! end after it is reset, so a recorded window contains the real one.

use crate::history::{Event, Kind, Process};

/// One interval of real (harness) wall time during which some node's clock was `offset_ms` off
/// (for a strobe: flipping between that offset and none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_wall: i64,
    /// `i64::MAX` when the history never recorded the reset.
    pub end_wall: i64,
    pub offset_ms: i64,
}

/// Every clock-skew window of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skew {
    pub windows: Vec<Window>,
}

impl Skew {
    /// No skew: both bounds are the identity.
    pub fn none() -> Skew {
        Skew::default()
    }

    /// The windows of the nemesis' `clock` start / end events (steps never overlap, so each end
    /// closes the last open start). A start without an end stays open until `heal_all`, which
    /// resets every clock.
    pub fn from_history(events: &[Event]) -> Skew {
        let mut windows: Vec<Window> = Vec::new();
        let mut open: Option<usize> = None;
        for e in events.iter().filter(|e| e.process == Process::nemesis()) {
            match (e.kind, e.f.as_str()) {
                (Kind::Start, "clock") => {
                    let offset_ms = e.value["offset_ms"].as_i64().unwrap_or(0);
                    open = Some(windows.len());
                    windows.push(Window { start_wall: e.wall_ms, end_wall: i64::MAX, offset_ms });
                }
                (Kind::End, "clock") | (Kind::End, "heal_all") => {
                    if let Some(i) = open.take() {
                        windows[i].end_wall = e.wall_ms;
                    }
                }
                _ => {}
            }
        }
        Skew { windows }
    }

    pub fn is_empty(&self) -> bool {
        self.windows.iter().all(|w| w.offset_ms == 0)
    }

    /// The latest instant any node's clock can have shown at or before real time `t`: `t`, or
    /// for a window with a forward offset that began by `t`, its offset added to the later of
    /// its end and `t`. No slot fired by then can lie beyond it.
    pub fn latest(&self, t: i64) -> i64 {
        self.windows
            .iter()
            .filter(|w| w.offset_ms > 0 && w.start_wall <= t)
            .map(|w| w.end_wall.min(t).saturating_add(w.offset_ms))
            .fold(t, i64::max)
    }

    /// The earliest instant any node's clock can have shown at some real time in
    /// `[t, t + span]`: `t`, or less by the backward offset of a window overlapping that span.
    pub fn earliest(&self, t: i64, span: i64) -> i64 {
        self.windows
            .iter()
            .filter(|w| w.offset_ms < 0 && w.start_wall <= t.saturating_add(span) && w.end_wall >= t)
            .map(|w| w.start_wall.max(t).saturating_add(w.offset_ms))
            .fold(t, i64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(kind: Kind, f: &str, wall_ms: i64, offset_ms: i64) -> Event {
        Event {
            index: 0,
            time_ns: 0,
            wall_ms,
            process: Process::nemesis(),
            kind,
            f: f.into(),
            key: None,
            value: json!({"offset_ms": offset_ms}),
            node: Some(1),
            error: None,
        }
    }

    #[test]
    fn windows_from_the_history_and_both_bounds() {
        let h = vec![
            ev(Kind::Start, "clock", 1_000, 60_000),
            ev(Kind::End, "clock", 5_000, 60_000),
            ev(Kind::Start, "kill", 6_000, 0),
            ev(Kind::End, "kill", 7_000, 0),
            ev(Kind::Start, "clock", 10_000, -30_000),
            ev(Kind::End, "heal_all", 20_000, 0),
        ];
        let s = Skew::from_history(&h);
        assert_eq!(
            s.windows,
            vec![
                Window { start_wall: 1_000, end_wall: 5_000, offset_ms: 60_000 },
                Window { start_wall: 10_000, end_wall: 20_000, offset_ms: -30_000 },
            ]
        );
        // Before the forward window: no allowance; inside it: t + 60 s; after it: end + 60 s.
        assert_eq!(s.latest(500), 500);
        assert_eq!(s.latest(3_000), 63_000);
        assert_eq!(s.latest(30_000), 65_000);
        assert_eq!(s.latest(90_000), 90_000);
        // Backward allowance only for spans overlapping the backward window.
        assert_eq!(s.earliest(8_000, 1_000), 8_000);
        assert_eq!(s.earliest(8_000, 5_000), -20_000);
        assert_eq!(s.earliest(15_000, 0), -15_000);
        assert_eq!(s.earliest(21_000, 1_000), 21_000);
        assert!(Skew::none().is_empty() && !s.is_empty());
        assert_eq!(Skew::none().latest(7), 7);
    }
}
