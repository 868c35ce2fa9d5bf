//! Linearizability per key, by the Wing–Gong search with Lowe's memoization (the algorithm of
//! Porcupine's `checkSingle`), over a register model.
//!
//! Each key's operations are checked independently (P-compositionality). An operation is a call
//! time, a return time (`None` = indeterminate: it may take effect at any point after its call, or
//! never — placing it after everything is the same as "never" for a register), an input and an
//! output. The search linearizes, in order, any pending call whose model step accepts its output,
//! and backtracks when it meets the return of an operation it has not linearized yet; the cache of
//! (linearized set, state) pairs makes it polynomial on realistic histories. A step budget turns a
//! runaway search into `Unknown`, never into a pass.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;

use serde_json::Value;

use super::{pair, CheckResult, Outcome, Verdict};
use crate::history::Event;

/// A sequential specification.
pub trait Model {
    type State: Clone + Eq + Hash;
    type Input;
    type Output;
    fn init(&self) -> Self::State;
    /// The state after `input` returned `output`, or `None` if that output is impossible.
    fn step(&self, state: &Self::State, input: &Self::Input, output: &Self::Output) -> Option<Self::State>;
}

/// One operation of a single key's sub-history.
#[derive(Debug, Clone)]
pub struct LinOp<I, O> {
    pub call: u64,
    pub ret: Option<u64>,
    pub input: I,
    pub output: O,
}

/// The search's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinResult {
    Linearizable,
    /// Not linearizable; the indices (into the input) of operations that no linearization of the
    /// longest prefix found could place.
    Illegal {
        stuck: Vec<usize>,
    },
    /// The step budget ran out.
    Unknown,
}

const NIL: usize = usize::MAX;

/// Decides whether `ops` are linearizable under `model`, giving up after `budget` search steps.
pub fn check_ops<M: Model>(model: &M, ops: &[LinOp<M::Input, M::Output>], budget: u64) -> LinResult {
    // Events: node 2i = call of op i, 2i+1 = its return. Sorted by time, calls before returns.
    let mut order: Vec<usize> = (0..ops.len() * 2).collect();
    let time = |n: usize| if n & 1 == 0 { ops[n / 2].call } else { ops[n / 2].ret.unwrap_or(u64::MAX) };
    order.sort_by_key(|&n| (time(n), n & 1));
    // Doubly linked list over the nodes, with a head sentinel at index 2n.
    let head = ops.len() * 2;
    let mut next = vec![NIL; head + 1];
    let mut prev = vec![NIL; head + 1];
    let mut last = head;
    for &n in &order {
        next[last] = n;
        prev[n] = last;
        last = n;
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        next[prev[x]] = next[x];
        if next[x] != NIL {
            prev[next[x]] = prev[x];
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        next[prev[x]] = x;
        if next[x] != NIL {
            prev[next[x]] = x;
        }
    };
    let words = ops.len().div_ceil(64).max(1);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut best: (usize, Vec<u64>) = (0, linearized.clone());
    let mut entry = next[head];
    let mut steps = 0u64;
    while next[head] != NIL {
        steps += 1;
        if steps > budget {
            return LinResult::Unknown;
        }
        if entry & 1 == 0 {
            let op = entry / 2;
            if let Some(s2) = model.step(&state, &ops[op].input, &ops[op].output) {
                let mut l2 = linearized.clone();
                l2[op / 64] |= 1 << (op % 64);
                if cache.insert((l2.clone(), s2.clone())) {
                    stack.push((entry, state));
                    state = s2;
                    linearized = l2;
                    if stack.len() > best.0 {
                        best = (stack.len(), linearized.clone());
                    }
                    unlink(&mut next, &mut prev, entry);
                    unlink(&mut next, &mut prev, entry + 1);
                    entry = next[head];
                    continue;
                }
            }
            entry = next[entry];
        } else {
            let Some((call, s)) = stack.pop() else {
                let stuck = (0..ops.len()).filter(|i| best.1[i / 64] & (1 << (i % 64)) == 0).collect();
                return LinResult::Illegal { stuck };
            };
            let op = call / 2;
            state = s;
            linearized[op / 64] &= !(1 << (op % 64));
            relink(&mut next, &mut prev, call + 1);
            relink(&mut next, &mut prev, call);
            entry = next[call];
        }
        if entry == NIL {
            // Only returns of linearized ops could follow; cannot happen, but never loop forever.
            entry = next[head];
        }
    }
    LinResult::Linearizable
}

/// A read/write register holding an optional string (`None` before the task exists).
pub struct Register;

/// A register operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegInput {
    Write(String),
    Read,
}

impl Model for Register {
    type State = Option<String>;
    type Input = RegInput;
    /// What a read returned (ignored for writes).
    type Output = Option<String>;
    fn init(&self) -> Option<String> {
        None
    }
    fn step(&self, state: &Option<String>, input: &RegInput, output: &Option<String>) -> Option<Option<String>> {
        match input {
            RegInput::Write(v) => Some(Some(v.clone())),
            RegInput::Read => (output == state).then(|| state.clone()),
        }
    }
}

/// A register operation with its recorded times.
type RegOp = LinOp<RegInput, Option<String>>;

/// Checks the register workload: per key, `create` and `write` are writes of their invoke value,
/// `read` returns its completion value. Failed operations are dropped (they had no effect); reads
/// that did not return `ok` are dropped (reads have no effect); indeterminate writes stay, with no
/// return time.
pub fn check(events: &[Event], budget_per_key: u64) -> CheckResult {
    let mut result = CheckResult::new("linearizable");
    let as_str = |v: &Value| v.as_str().map(String::from);
    let mut per_key: BTreeMap<String, Vec<(RegOp, String)>> = BTreeMap::new();
    for op in pair(events) {
        let Some(key) = op.key.clone() else { continue };
        let input = match op.f.as_str() {
            "create" | "write" => match as_str(&op.input) {
                Some(v) => RegInput::Write(v),
                None => continue,
            },
            "read" => RegInput::Read,
            _ => continue,
        };
        let is_read = input == RegInput::Read;
        match op.outcome {
            Outcome::Fail => continue,
            Outcome::Info if is_read => continue,
            Outcome::Info => result.count("indeterminate_writes", 1),
            Outcome::Ok => result.count(if is_read { "ok_reads" } else { "ok_writes" }, 1),
        }
        let output = if is_read { as_str(&op.output) } else { None };
        let desc = format!(
            "{:?} {} {} on n{} -> {} [{}..{}]",
            op.process,
            op.f,
            if is_read { String::new() } else { op.input.to_string() },
            op.node.unwrap_or(0),
            if is_read { format!("{output:?}") } else { format!("{:?}", op.outcome) },
            op.call_ns / 1_000_000,
            op.ret_ns.map(|t| (t / 1_000_000).to_string()).unwrap_or_else(|| "∞".into()),
        );
        per_key.entry(key).or_default().push((LinOp { call: op.call_ns, ret: op.ret_ns, input, output }, desc));
    }
    result.count("keys", per_key.len() as u64);
    for (key, entries) in &per_key {
        let ops: Vec<_> = entries.iter().map(|(o, _)| o.clone()).collect();
        match check_ops(&Register, &ops, budget_per_key) {
            LinResult::Linearizable => {}
            LinResult::Unknown => {
                result.count("unknown_keys", 1);
                if result.verdict == Verdict::Pass {
                    result.verdict = Verdict::Unknown;
                }
            }
            LinResult::Illegal { stuck } => {
                result.count("illegal_keys", 1);
                let shown: Vec<&str> = stuck.iter().take(6).map(|&i| entries[i].1.as_str()).collect();
                result.violation(format!("key {key}: not linearizable; cannot place: {}", shown.join("; ")));
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testutil::hist;
    use crate::history::Kind::{Info, Invoke, Ok as Okk};
    use serde_json::json;

    fn w(call: u64, ret: Option<u64>, v: &str) -> LinOp<RegInput, Option<String>> {
        LinOp { call, ret, input: RegInput::Write(v.into()), output: None }
    }
    fn r(call: u64, ret: u64, v: Option<&str>) -> LinOp<RegInput, Option<String>> {
        LinOp { call, ret: Some(ret), input: RegInput::Read, output: v.map(String::from) }
    }

    #[test]
    fn sequential_and_concurrent_legal_histories_pass() {
        let seq = [w(0, Some(1), "a"), r(2, 3, Some("a")), w(4, Some(5), "b"), r(6, 7, Some("b"))];
        assert_eq!(check_ops(&Register, &seq, 10_000), LinResult::Linearizable);
        // A read concurrent with a write may see either value.
        let conc = [w(0, Some(1), "a"), w(2, Some(10), "b"), r(3, 4, Some("b")), r(5, 6, Some("b"))];
        assert_eq!(check_ops(&Register, &conc, 10_000), LinResult::Linearizable);
    }

    #[test]
    fn stale_read_after_a_completed_write_is_illegal() {
        let h = [w(0, Some(1), "a"), w(2, Some(3), "b"), r(4, 5, Some("a"))];
        match check_ops(&Register, &h, 10_000) {
            LinResult::Illegal { stuck } => assert!(stuck.contains(&2)),
            other => panic!("expected illegal, got {other:?}"),
        }
    }

    #[test]
    fn reads_going_back_in_time_are_illegal_even_when_concurrent_with_the_write() {
        // b is being written; one read sees b, a later read sees a again.
        let h = [w(0, Some(1), "a"), w(2, Some(20), "b"), r(3, 4, Some("b")), r(5, 6, Some("a"))];
        assert!(matches!(check_ops(&Register, &h, 10_000), LinResult::Illegal { .. }));
    }

    #[test]
    fn indeterminate_write_may_or_may_not_take_effect() {
        let took = [w(0, Some(1), "a"), w(2, None, "b"), r(10, 11, Some("b"))];
        assert_eq!(check_ops(&Register, &took, 10_000), LinResult::Linearizable);
        let never = [w(0, Some(1), "a"), w(2, None, "b"), r(10, 11, Some("a"))];
        assert_eq!(check_ops(&Register, &never, 10_000), LinResult::Linearizable);
        // But it cannot take effect before it was called.
        let early = [w(0, Some(1), "a"), r(2, 3, Some("b")), w(5, None, "b")];
        assert!(matches!(check_ops(&Register, &early, 10_000), LinResult::Illegal { .. }));
    }

    #[test]
    fn a_value_never_written_is_illegal_and_budget_gives_unknown() {
        let h = [w(0, Some(1), "a"), r(2, 3, Some("zzz"))];
        assert!(matches!(check_ops(&Register, &h, 10_000), LinResult::Illegal { .. }));
        let many: Vec<_> = (0..12).map(|i| w(0, None, &i.to_string())).chain([r(1, 2, Some("x"))]).collect();
        assert_eq!(check_ops(&Register, &many, 50), LinResult::Unknown);
    }

    #[test]
    fn history_level_check_finds_the_stale_read_key_only() {
        let h = hist(&[
            (1, Invoke, "create", "t1", json!("v0"), 1, 0),
            (1, Okk, "create", "t1", json!(null), 1, 1),
            (1, Invoke, "write", "t1", json!("v1"), 2, 2),
            (1, Okk, "write", "t1", json!(null), 2, 3),
            (2, Invoke, "read", "t1", json!(null), 3, 4),
            (2, Okk, "read", "t1", json!("v0"), 3, 5), // stale
            (3, Invoke, "create", "t2", json!("v0"), 1, 0),
            (3, Okk, "create", "t2", json!(null), 1, 1),
            (3, Invoke, "write", "t2", json!("v1"), 1, 2),
            (3, Info, "write", "t2", json!(null), 1, 3),
            (4, Invoke, "read", "t2", json!(null), 2, 4),
            (4, Okk, "read", "t2", json!("v0"), 2, 5),
        ]);
        let res = check(&h, 100_000);
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(res.counts["illegal_keys"], 1);
        assert!(res.violations[0].starts_with("key t1"), "{:?}", res.violations);
    }
}
