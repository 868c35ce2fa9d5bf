//! Secret values in task parameters: how a task marks them, how views hide them, and how an
//! executor gets them in the clear.
//!
//! Two ways to mark a value secret, both inside `parameters` so the task's stored shape does not
//! change:
//!
//! - wrap it: `{"headers": {"Authorization": {"secret": "Bearer abc"}}}`, anywhere in the tree
//!   (an object whose only key is `secret`, with a string value);
//! - name top-level keys in `secret_keys`: `{"password": "abc", "secret_keys": ["password"]}`.
//!
//! Views for a caller below `operate` ([`crate::auth::Caller::sees_secrets`]) show
//! [`REDACTED`] instead ([`redact`]). The leader unwraps the wrappers before it sends a run to an
//! executor ([`reveal`]), so a job reads `"Bearer abc"` where the task says
//! `{"secret": "Bearer abc"}`. The node never logs parameters.

use serde_json::Value;

/// What a hidden value shows.
pub const REDACTED: &str = "***";
/// The top-level key that lists secret keys.
pub const SECRET_KEYS: &str = "secret_keys";
/// How deep [`redact`] and [`reveal`] walk (parameters are at most 64 KiB; JSON nesting in them
/// is bounded by the parser's own depth limit, 128).
const DEPTH_MAX: usize = 128;

/// Whether `v` is a wrapper `{"secret": "…"}`.
pub fn is_wrapper(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.len() == 1 && m.get("secret").is_some_and(Value::is_string))
}

/// Hides every secret value of `params` in place.
pub fn redact(params: &mut Value) {
    let listed: Vec<String> = match params.get(SECRET_KEYS) {
        Some(Value::Array(keys)) => keys.iter().filter_map(|k| k.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    };
    if let Value::Object(map) = params {
        for key in listed {
            if let Some(v) = map.get_mut(&key) {
                *v = Value::String(REDACTED.into());
            }
        }
    }
    walk(params, 0, &mut |v| *v = serde_json::json!({ "secret": REDACTED }));
}

/// Unwraps every `{"secret": "…"}` of `params` into its string, for the executor.
pub fn reveal(params: &mut Value) {
    walk(params, 0, &mut |v| {
        if let Some(s) = v.get("secret").and_then(Value::as_str) {
            *v = Value::String(s.to_string());
        }
    });
}

/// Calls `on_wrapper` on every wrapper, depth first.
fn walk(v: &mut Value, depth: usize, on_wrapper: &mut impl FnMut(&mut Value)) {
    if depth > DEPTH_MAX {
        return;
    }
    if is_wrapper(v) {
        on_wrapper(v);
        return;
    }
    match v {
        Value::Object(map) => map.values_mut().for_each(|x| walk(x, depth + 1, on_wrapper)),
        Value::Array(items) => items.iter_mut().for_each(|x| walk(x, depth + 1, on_wrapper)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrapped_and_listed_values_are_hidden_from_views_and_unwrapped_for_executors() {
        let task = json!({
            "command": "deploy",
            "password": "p4ss",
            "secret_keys": ["password", "absent"],
            "http": {"headers": {"Authorization": {"secret": "Bearer abc"}}, "list": [{"secret": "x"}]},
            "not_a_wrapper": {"secret": "y", "other": 1}
        });
        let mut shown = task.clone();
        redact(&mut shown);
        let text = shown.to_string();
        assert!(!text.contains("p4ss") && !text.contains("Bearer abc") && !text.contains("\"x\""), "{text}");
        assert_eq!(shown["http"]["headers"]["Authorization"], json!({"secret": REDACTED}));
        assert_eq!(shown["password"], json!(REDACTED));
        assert_eq!(shown["not_a_wrapper"], task["not_a_wrapper"], "only an object with just `secret` is a wrapper");
        let mut sent = task.clone();
        reveal(&mut sent);
        assert_eq!(sent["http"]["headers"]["Authorization"], json!("Bearer abc"));
        assert_eq!(sent["http"]["list"][0], json!("x"));
        assert_eq!(sent["password"], json!("p4ss"));
    }
}
