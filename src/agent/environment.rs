//! The environment a `command` job starts with: only the variables an allowlist names, taken
//! from the agent's own environment when it starts, then the job's own `env`.
//!
//! A node's environment can hold credentials (`CRONRAFT_TOKEN`, cloud keys, a service's
//! passwords), and a job runs whatever a task's author wrote, so it gets none of them unless an
//! operator lists them (`[agent] env_allow`, `cronraft agent --env-allow`). An entry ending in `*`
//! names a prefix (`LC_*`). `CRONRAFT_*` variables are never passed, whatever the list says.

/// The default allowlist: what a shell and common tools need to behave normally.
pub const DEFAULT_ALLOW: &[&str] =
    &["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR", "TERM"];

/// Whether `name` is on `allow` (and not a cronraft variable).
pub fn allowed(name: &str, allow: &[String]) -> bool {
    if name.starts_with("CRONRAFT_") {
        return false;
    }
    allow.iter().any(|a| match a.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => a == name,
    })
}

/// The allowlisted part of `vars` (pass `std::env::vars()`), in name order.
pub fn base(vars: impl Iterator<Item = (String, String)>, allow: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vars.filter(|(k, _)| allowed(k, allow)).collect();
    out.sort();
    out
}

/// The default allowlist as owned strings.
pub fn default_allow() -> Vec<String> {
    DEFAULT_ALLOW.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_variables_pass_and_never_cronraft_ones() {
        let vars = [("PATH", "/bin"), ("LC_TIME", "C"), ("AWS_SECRET_ACCESS_KEY", "k"), ("CRONRAFT_TOKEN", "crt_x")]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let got = base(vars.clone().into_iter(), &default_allow());
        assert_eq!(got, [("LC_TIME".to_string(), "C".to_string()), ("PATH".to_string(), "/bin".to_string())]);
        let everything = base(vars.into_iter(), &["*".to_string()]);
        assert!(everything.iter().all(|(k, _)| !k.starts_with("CRONRAFT_")), "{everything:?}");
        assert_eq!(everything.len(), 3);
    }
}
