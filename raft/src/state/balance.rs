//! The five balance strategies, decided in apply from replicated state.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `l/c/` | task id | round-robin cursor (u64) |
//! | `l/s/` | task id | sticky executor id (u64) |
//! | `l/w/` | task id | [`SmoothWeights`]: smooth weighted round-robin state |
//!
//! Everything a choice depends on is either replicated (cursors, bindings, loads) or carried in
//! the command (`random`'s seed), so every replica picks the same instance and a new leader
//! continues the same rotation. Candidates arrive in executor-id order, which makes "the n-th
//! candidate" well defined.

use serde::{Deserialize, Serialize};

use super::keys::{self, get_u64, put_u64};
use crate::codec;
use crate::error::StoreError;
use crate::model::{BalanceStrategy, Executor};
use crate::txn::WriteSet;

/// Current weights of nginx's smooth weighted round-robin, per executor id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SmoothWeights {
    current: Vec<(u64, i64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum StoredWeights {
    V1(SmoothWeights),
}

/// splitmix64: a fixed, portable mix (every replica must compute the same number).
pub(super) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Picks one of `candidates` (executor, weight) for an execution of `task`; `None` if empty.
pub(super) fn pick(
    ws: &mut WriteSet<'_>,
    task: u64,
    strategy: BalanceStrategy,
    candidates: &[(Executor, u32)],
    seed: u64,
) -> Result<Option<Executor>, StoreError> {
    if candidates.is_empty() {
        return Ok(None);
    }
    let chosen = match strategy {
        BalanceStrategy::RoundRobin => next_in_rotation(ws, task, candidates.len())?,
        BalanceStrategy::Random => (mix(seed) % candidates.len() as u64) as usize,
        BalanceStrategy::WeightedRoundRobin => smooth_weighted(ws, task, candidates)?,
        BalanceStrategy::Sticky => {
            let key = keys::sticky(task);
            let bound = get_u64(ws, &key)?;
            match candidates.iter().position(|(e, _)| e.id == bound) {
                Some(i) => i,
                None => {
                    // The sticky instance is gone or unhealthy: a new binding, chosen in rotation.
                    let i = next_in_rotation(ws, task, candidates.len())?;
                    put_u64(ws, &key, candidates[i].0.id);
                    i
                }
            }
        }
        BalanceStrategy::LeastLoaded => {
            let mut loads = Vec::with_capacity(candidates.len());
            for (e, _) in candidates {
                loads.push(get_u64(ws, &keys::load(e.id))?);
            }
            let least = loads.iter().copied().min().unwrap_or(0);
            let tied: Vec<usize> = (0..candidates.len()).filter(|i| loads[*i] == least).collect();
            // Ties rotate, so idle instances share the work instead of the lowest id taking all.
            tied[next_in_rotation(ws, task, tied.len())?]
        }
    };
    Ok(Some(candidates[chosen].0.clone()))
}

fn next_in_rotation(ws: &mut WriteSet<'_>, task: u64, len: usize) -> Result<usize, StoreError> {
    let key = keys::cursor(task);
    let cursor = get_u64(ws, &key)?;
    put_u64(ws, &key, cursor.wrapping_add(1));
    Ok((cursor % len as u64) as usize)
}

/// Each candidate gains its weight; the highest current weight wins and pays the total. Over a
/// cycle every instance is picked in proportion to its weight, interleaved rather than in runs.
fn smooth_weighted(ws: &mut WriteSet<'_>, task: u64, candidates: &[(Executor, u32)]) -> Result<usize, StoreError> {
    let key = keys::weights(task);
    let state = match ws.get(&key)? {
        Some(b) => {
            let StoredWeights::V1(s) = codec::decode(&b)?;
            s
        }
        None => SmoothWeights::default(),
    };
    let mut current: Vec<i64> = candidates
        .iter()
        .map(|(e, _)| state.current.iter().find(|(id, _)| *id == e.id).map(|(_, w)| *w).unwrap_or(0))
        .collect();
    let total: i64 = candidates.iter().map(|(_, w)| (*w).max(1) as i64).sum();
    for (c, (_, w)) in current.iter_mut().zip(candidates) {
        *c += (*w).max(1) as i64;
    }
    let mut best = 0;
    for i in 1..current.len() {
        if current[i] > current[best] {
            best = i;
        }
    }
    current[best] -= total;
    let next = SmoothWeights { current: candidates.iter().map(|(e, _)| e.id).zip(current).collect() };
    ws.insert(key, codec::encode(&StoredWeights::V1(next))?);
    Ok(best)
}

/// Forgets a task's balance state (the task was deleted).
pub(super) fn forget(ws: &mut WriteSet<'_>, task: u64) {
    ws.remove(keys::cursor(task));
    ws.remove(keys::sticky(task));
    ws.remove(keys::weights(task));
}
