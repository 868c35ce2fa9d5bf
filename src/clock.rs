//! The leader services' clock and randomness: wall-clock milliseconds and fresh entry seeds.
//!
//! Every entry a leader service proposes is stamped with this node's wall clock ([`now_ms`]):
//! apply reads time only from the entry, never from its own clock, so every replica computes the
//! same thing. Entries that dispatch carry a [`seed`] for the same reason (apply draws nothing
//! itself). The scheduler, the dispatcher, the health checker and retention all take both from
//! here, so there is one place that says what "now" and "random" mean on the leader.
//!
//! The dispatcher's monotonic *book clock* (deadlines that must not jump with the wall clock) is
//! its own business and lives with its book (`dispatcher::book::Clock`).

/// Wall-clock milliseconds since the Unix epoch: the leader's clock stamps fires and every other
/// entry its services propose.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A fresh random seed for an entry that dispatches (fire entries and dispatch rounds): it drives
/// the `random` balance strategy and the callback tokens, which must not be guessable. Taken from
/// a v4 UUID (the operating system's random source).
pub fn seed() -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u64::from_be_bytes(bytes[..8].try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_and_the_clock_is_the_wall_clock() {
        // Two seeds in a row are equal with probability 2^-64: a repeat means a constant source.
        assert_ne!(seed(), seed());
        let system_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        assert!((now_ms() - system_ms).abs() < 1_000, "now_ms is the wall clock in ms");
    }
}
