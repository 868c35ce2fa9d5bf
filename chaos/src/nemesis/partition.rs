//! The partition faults, in three shapes on the network sandbox ([`crate::net::Net`]): the target
//! isolated from every peer, a bridge (two halves that cannot talk and one node that talks to
//! both), and a one-way cut (the target mute or deaf towards its peers).

use serde_json::{json, Value};

use super::{Detail, Step, Targets};

/// Cuts the network around `node` in the step's shape; returns the shape actually applied.
pub(super) async fn begin(targets: &Targets, step: &Step, node: u64) -> Result<Value, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let c = targets.cluster.lock().await;
    let Some(net) = c.net() else { return Err("partition unsupported without the network sandbox".into()) };
    let ids = c.ids();
    let others: Vec<u64> = ids.iter().copied().filter(|i| *i != node).collect();
    match step.detail {
        Some(Detail::Bridge { pick }) if !others.is_empty() => {
            let bridge = others[(pick % others.len() as u64) as usize];
            // The target's half: itself and (for more than three nodes) every other
            // node below the bridge's position; the far half: the rest.
            let rest: Vec<u64> = others.iter().copied().filter(|o| *o != bridge).collect();
            let (near, far) = rest.split_at(rest.len() / 2);
            let a: Vec<u64> = std::iter::once(node).chain(near.iter().copied()).collect();
            net.bridge(&a, far).map_err(|e| err(&e))?;
            Ok(json!({"halves": [a, far], "bridge": bridge}))
        }
        Some(Detail::Oneway { mute }) => {
            for o in &others {
                let (from, to) = if mute { (node, *o) } else { (*o, node) };
                net.one_way(from, to).map_err(|e| err(&e))?;
            }
            let dropped: Vec<[u64; 2]> = others.iter().map(|o| if mute { [node, *o] } else { [*o, node] }).collect();
            Ok(json!({"dropped": dropped, "mute": mute}))
        }
        _ => {
            net.isolate(&[node]).map_err(|e| err(&e))?;
            Ok(Value::Null)
        }
    }
}

/// Heals every partition.
pub(super) async fn end(targets: &Targets) -> Result<(), String> {
    let c = targets.cluster.lock().await;
    c.net().map_or(Ok(()), |n| n.heal()).map_err(|e| e.to_string())
}
