//! The state modules call one way: no module calls back into one that calls it.
//!
//! Issue 16 reshaped `state` so one execution's life reads in one pass (fire → run, dispatch →
//! run) instead of zig-zagging between `fire` and `dispatch`, which called each other. This test
//! reads the modules' sources and fails if any `super::<module>` use (outside comments) closes
//! a cycle again.

use std::collections::{BTreeMap, BTreeSet};

/// Each module of `state` and its source.
const MODULES: [(&str, &str); 15] = [
    ("alerts", include_str!("../alerts.rs")),
    ("balance", include_str!("../balance.rs")),
    ("dedupe", include_str!("../dedupe.rs")),
    ("dispatch", include_str!("../dispatch.rs")),
    ("executions", include_str!("../executions.rs")),
    ("fire", include_str!("../fire.rs")),
    ("keys", include_str!("../keys.rs")),
    ("listing", include_str!("../listing.rs")),
    ("notify", include_str!("../notify.rs")),
    ("registry", include_str!("../registry.rs")),
    ("retention", include_str!("../retention.rs")),
    ("run", include_str!("../run.rs")),
    ("stats", include_str!("../stats.rs")),
    ("tasks", include_str!("../tasks.rs")),
    ("view", include_str!("../view.rs")),
];

/// The sibling modules `source` uses through `super::`, comments left out.
fn uses(source: &str) -> BTreeSet<&'static str> {
    let code: Vec<&str> = source.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
    let code = code.join("\n");
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("super::") {
        let rest = &code[at + "super::".len()..];
        // `super::name…` or `super::{a, b::c, …}`: the first word of each path.
        let paths = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(group.len())].split(',').collect(),
            None => vec![rest],
        };
        for path in paths {
            let first = path.trim().split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("");
            if let Some((name, _)) = MODULES.iter().find(|(name, _)| *name == first) {
                out.insert(*name);
            }
        }
    }
    out
}

#[test]
fn state_modules_form_no_cycle() {
    let graph: BTreeMap<&str, BTreeSet<&str>> = MODULES
        .iter()
        .map(|(name, source)| (*name, uses(source).into_iter().filter(|d| d != name).collect()))
        .collect();
    // The fire path: fire and run use the lifecycle, nothing uses fire or dispatch.
    assert!(graph["fire"].contains("run") && graph["dispatch"].contains("run"), "{graph:?}");
    for (name, deps) in &graph {
        assert!(!deps.contains("fire") && !deps.contains("dispatch"), "{name} calls back into fire/dispatch");
    }
    // No cycle at all: repeatedly remove modules whose uses are all removed.
    let mut left = graph.clone();
    while !left.is_empty() {
        let leaves: Vec<&str> =
            left.iter().filter(|(_, deps)| deps.iter().all(|d| !left.contains_key(d))).map(|(n, _)| *n).collect();
        assert!(!leaves.is_empty(), "a cycle among {:?}", left.keys().collect::<Vec<_>>());
        for leaf in leaves {
            left.remove(leaf);
        }
    }
}
