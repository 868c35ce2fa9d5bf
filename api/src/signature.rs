//! The signed executor protocol: how the leader proves to an executor that `/execute` and `/stop`
//! come from the cluster, and how the executor refuses anything else.
//!
//! Each executor instance has its own key, derived from the cluster secret and the instance's
//! `instance_id` ([`cronraft_raft::cluster_secret::ClusterSecret::executor_key`]): every node can
//! compute it, nothing is stored, and the registration answer hands it to the instance that
//! registered. A request carries [`TIMESTAMP_HEADER`] (Unix ms) and [`SIGNATURE_HEADER`]
//! (`v1=` and the hex of blake3's keyed hash, a MAC, over a context string, the path, the
//! timestamp and the body). The executor ([`Verifier`]) refuses a request without them, with a
//! wrong signature, with a timestamp more than [`WINDOW_MS`] away from its own clock, or whose
//! signature it has already seen within the window (a replay). Seen signatures are bounded
//! ([`SEEN_MAX`]): when full, the oldest are forgotten and the window's floor rises past them,
//! so a forgotten signature is refused as stale instead of accepted again.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Header with the signing time, Unix milliseconds.
pub const TIMESTAMP_HEADER: &str = "x-cronraft-timestamp";
/// Header with `v1=<hex MAC>`.
pub const SIGNATURE_HEADER: &str = "x-cronraft-signature";
/// How far a request's timestamp may be from the executor's clock, either way. Above the clock
/// skew the chaos harness injects (33 s) on both sides.
pub const WINDOW_MS: i64 = 120_000;
/// Most signatures remembered against replays.
pub const SEEN_MAX: usize = 200_000;
const CONTEXT: &[u8] = b"cronraft executor request v1\n";

/// The MAC of one request.
fn mac(key: &[u8; 32], path: &str, timestamp_ms: i64, body: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(CONTEXT);
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(timestamp_ms.to_string().as_bytes());
    h.update(b"\n");
    h.update(body);
    h.finalize()
}

/// The two header values for a request to `path` with `body`, signed at `timestamp_ms`.
pub fn sign(key: &[u8; 32], path: &str, timestamp_ms: i64, body: &[u8]) -> (String, String) {
    (timestamp_ms.to_string(), format!("v1={}", mac(key, path, timestamp_ms, body).to_hex()))
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request is not signed ({TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required)")]
    Missing,
    #[error("the signature does not match")]
    Mismatch,
    #[error("the timestamp is {skew_ms} ms away from this executor's clock (at most {WINDOW_MS} ms)")]
    Stale { skew_ms: i64 },
    #[error("this signed request was already received")]
    Replayed,
}

/// The executor's side: checks requests against its key and remembers what it has seen.
pub struct Verifier {
    key: [u8; 32],
    seen: Mutex<Seen>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(..)")
    }
}

#[derive(Default)]
struct Seen {
    set: HashSet<[u8; 32]>,
    /// (timestamp, MAC) in arrival order.
    order: VecDeque<(i64, [u8; 32])>,
    /// Requests signed before this are refused: their signatures may have been forgotten.
    floor_ms: i64,
}

impl Verifier {
    pub fn new(key: [u8; 32]) -> Self {
        Verifier { key, seen: Mutex::new(Seen { floor_ms: i64::MIN, ..Seen::default() }) }
    }

    /// Checks a request to `path`; `now_ms` is the executor's clock.
    pub fn verify(
        &self,
        path: &str,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_ms: i64,
    ) -> Result<(), SignatureError> {
        let (Some(ts), Some(sig)) = (timestamp, signature) else { return Err(SignatureError::Missing) };
        let ts: i64 = ts.trim().parse().map_err(|_| SignatureError::Missing)?;
        let presented = sig.trim().strip_prefix("v1=").and_then(|h| blake3::Hash::from_hex(h).ok());
        let Some(presented) = presented else { return Err(SignatureError::Mismatch) };
        // Constant time: `blake3::Hash`'s equality does not stop at the first differing byte.
        if presented != mac(&self.key, path, ts, body) {
            return Err(SignatureError::Mismatch);
        }
        let skew_ms = now_ms.saturating_sub(ts);
        if skew_ms.abs() > WINDOW_MS {
            return Err(SignatureError::Stale { skew_ms });
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if ts < seen.floor_ms {
            return Err(SignatureError::Stale { skew_ms });
        }
        let bytes = *presented.as_bytes();
        if !seen.set.insert(bytes) {
            return Err(SignatureError::Replayed);
        }
        seen.order.push_back((ts, bytes));
        // Forget what is out of the window anyway, then the oldest beyond the bound.
        while let Some(&(old_ts, old)) = seen.order.front() {
            let expired = old_ts < now_ms.saturating_sub(WINDOW_MS);
            if !expired && seen.order.len() <= SEEN_MAX {
                break;
            }
            seen.order.pop_front();
            seen.set.remove(&old);
            if !expired {
                seen.floor_ms = seen.floor_ms.max(old_ts + 1);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const NOW: i64 = 1_800_000_000_000;

    fn check(v: &Verifier, path: &str, ts: i64, sig: &str, body: &[u8]) -> Result<(), SignatureError> {
        v.verify(path, Some(&ts.to_string()), Some(sig), body, NOW)
    }

    #[test]
    fn only_a_fresh_unseen_request_signed_with_the_key_for_this_path_and_body_passes() {
        let v = Verifier::new(KEY);
        let (ts, sig) = sign(&KEY, "/execute", NOW, b"{}");
        let ts: i64 = ts.parse().unwrap();
        // Phase 1: unsigned, or signed with another key, path or body: refused.
        assert_eq!(v.verify("/execute", None, None, b"{}", NOW), Err(SignatureError::Missing));
        let (_, other_key) = sign(&[8; 32], "/execute", NOW, b"{}");
        assert_eq!(check(&v, "/execute", ts, &other_key, b"{}"), Err(SignatureError::Mismatch));
        assert_eq!(check(&v, "/stop", ts, &sig, b"{}"), Err(SignatureError::Mismatch));
        assert_eq!(check(&v, "/execute", ts, &sig, b"{ }"), Err(SignatureError::Mismatch));
        assert_eq!(check(&v, "/execute", ts + 1, &sig, b"{}"), Err(SignatureError::Mismatch));
        // Phase 2: the right one passes once; the same again is a replay.
        assert_eq!(check(&v, "/execute", ts, &sig, b"{}"), Ok(()));
        assert_eq!(check(&v, "/execute", ts, &sig, b"{}"), Err(SignatureError::Replayed));
        // Phase 3: a correctly signed but old (or future) request is stale.
        let old = NOW - WINDOW_MS - 1;
        let (_, sig_old) = sign(&KEY, "/execute", old, b"{}");
        assert!(matches!(check(&v, "/execute", old, &sig_old, b"{}"), Err(SignatureError::Stale { .. })));
        let future = NOW + WINDOW_MS + 1;
        let (_, sig_future) = sign(&KEY, "/execute", future, b"{}");
        assert!(matches!(check(&v, "/execute", future, &sig_future, b"{}"), Err(SignatureError::Stale { .. })));
    }

    #[test]
    fn a_full_memory_of_signatures_raises_the_floor_instead_of_forgetting_a_replay() {
        let v = Verifier::new(KEY);
        let first = NOW - 1000;
        let (_, sig_first) = sign(&KEY, "/stop", first, b"0");
        assert_eq!(check(&v, "/stop", first, &sig_first, b"0"), Ok(()));
        for i in 0..SEEN_MAX as i64 {
            let body = i.to_string();
            let (_, sig) = sign(&KEY, "/stop", NOW, body.as_bytes());
            assert_eq!(check(&v, "/stop", NOW, &sig, body.as_bytes()), Ok(()));
        }
        // The first signature was forgotten to stay within the bound: replaying it is stale, not new.
        assert!(matches!(check(&v, "/stop", first, &sig_first, b"0"), Err(SignatureError::Stale { .. })));
    }
}
