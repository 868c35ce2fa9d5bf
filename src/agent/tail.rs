//! The output of a run, kept as a bounded tail.
//!
//! A node keeps only the last [`LOGS_BYTES_MAX`](cronraft_api::protocol::LOGS_BYTES_MAX) bytes of
//! an execution's logs, so the agent never holds more than that either: a command that prints
//! gigabytes costs a fixed 64 KiB of memory. What falls off the front is counted, and the rendered
//! text starts with a `[… N bytes dropped]` line so a reader knows the beginning is missing. The
//! marker is counted inside the bound, so the node's own truncation never cuts it off.

use std::collections::VecDeque;

/// The last `cap` bytes written, plus how many came before them.
#[derive(Debug)]
pub struct LogTail {
    /// At most `cap` bytes, oldest first.
    buf: VecDeque<u8>,
    cap: usize,
    /// Bytes written and then pushed out of `buf`.
    dropped: u64,
}

impl LogTail {
    pub fn new(cap: usize) -> Self {
        LogTail { buf: VecDeque::with_capacity(cap.min(8 * 1024)), cap, dropped: 0 }
    }

    /// Appends `data`, dropping the oldest bytes beyond the bound.
    pub fn push(&mut self, data: &[u8]) {
        if data.len() >= self.cap {
            self.dropped += (self.buf.len() + data.len() - self.cap) as u64;
            self.buf.clear();
            self.buf.extend(&data[data.len() - self.cap..]);
            return;
        }
        let overflow = (self.buf.len() + data.len()).saturating_sub(self.cap);
        if overflow > 0 {
            self.buf.drain(..overflow);
            self.dropped += overflow as u64;
        }
        self.buf.extend(data);
    }

    /// Appends a line of the agent's own (a kill notice, an error), starting it on a new line.
    pub fn note(&mut self, line: &str) {
        if self.buf.back().is_some_and(|b| *b != b'\n') {
            self.push(b"\n");
        }
        self.push(format!("[cronraft agent: {line}]\n").as_bytes());
    }

    /// The text: at most `cap` bytes in all, with the `[… N bytes dropped]` line when anything was
    /// dropped. Invalid UTF-8 is replaced (U+FFFD); a character cut at the front is left out.
    pub fn into_string(self) -> String {
        let bytes: Vec<u8> = self.buf.into();
        if self.dropped == 0 {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if text.len() <= self.cap {
                return text;
            }
        }
        // The marker's longest form: everything written counted as dropped.
        let total = self.dropped + bytes.len() as u64;
        let room = self.cap.saturating_sub(marker(total).len());
        let first = bytes.len().saturating_sub(room);
        // Skip UTF-8 continuation bytes (at most 3) so the text does not open with a broken character.
        let mut start = first;
        while start < bytes.len() && start < first + 3 && bytes[start] & 0xC0 == 0x80 {
            start += 1;
        }
        let mut text = String::from_utf8_lossy(&bytes[start..]).into_owned();
        let mut dropped = self.dropped + start as u64;
        // Replacement characters may have made the text longer than the bytes: trim again.
        if text.len() > room {
            let mut cut = text.len() - room;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            text.drain(..cut);
            dropped += cut as u64;
        }
        format!("{}{text}", marker(dropped))
    }
}

fn marker(dropped: u64) -> String {
    format!("[… {dropped} bytes dropped]\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut t = LogTail::new(16);
        t.push(b"hello ");
        t.push(b"world");
        assert_eq!(t.into_string(), "hello world");
    }

    #[test]
    fn long_output_keeps_the_tail_within_the_bound() {
        let mut t = LogTail::new(64);
        for i in 0..1000 {
            t.push(format!("line {i}\n").as_bytes());
        }
        let s = t.into_string();
        assert!(s.len() <= 64, "{} bytes", s.len());
        assert!(s.starts_with("[… ") && s.contains(" bytes dropped]\n"), "{s}");
        assert!(s.ends_with("line 999\n"), "{s}");
        let dropped: u64 = s["[… ".len()..].split(' ').next().unwrap().parse().unwrap();
        let total: u64 = (0..1000).map(|i| format!("line {i}\n").len() as u64).sum();
        assert_eq!(dropped + (s.len() - s.find('\n').unwrap() - 1) as u64, total);
    }

    #[test]
    fn one_huge_write_is_cut_to_the_bound() {
        let mut t = LogTail::new(100);
        t.push(&[b'a'; 10_000]);
        t.push(b"END");
        let s = t.into_string();
        assert!(s.len() <= 100 && s.ends_with("aaaEND"), "{s}");
    }

    #[test]
    fn a_character_cut_at_the_front_is_left_out() {
        let mut t = LogTail::new(40);
        t.push("ééééééééééééééééééééééééééééééé".as_bytes());
        let s = t.into_string();
        assert!(s.len() <= 40);
        assert!(!s.contains('\u{FFFD}'), "{s}");
        assert!(s.ends_with("éé"), "{s}");
    }

    #[test]
    fn notes_start_on_their_own_line() {
        let mut t = LogTail::new(1024);
        t.push(b"partial");
        t.note("killed after 1 s");
        assert_eq!(t.into_string(), "partial\n[cronraft agent: killed after 1 s]\n");
    }
}
