//! `cronraft config check`: what `serve` would find wrong with a configuration before it starts,
//! all at once, and the configuration it would run with.
//!
//! `serve` stops at the first bad value. The check runs every group of `validate()`'s checks
//! ([`Config::problems`], which also reads the TLS files), reads the cluster secret and the
//! bootstrap token as the node would, and looks at the data directory (writable, or creatable
//! by this user) without creating or changing anything. [`render`] prints the effective
//! configuration as a TOML file of every key of the table: the configuration holds no secret
//! values (secrets are files it names), and a URL's `user:password@` is hidden all the same.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use cronraft_raft::cluster_secret::ClusterSecret;

use super::keys::KEYS;
use super::Config;
use crate::admin_token::BOOTSTRAP_TOKEN_BYTES_MIN;

/// Every problem of `config` (each naming its key), or none.
pub fn problems(config: &Config) -> Vec<String> {
    let mut out: Vec<String> = config.problems().iter().map(ToString::to_string).collect();
    if let Some(path) = &config.auth.cluster_secret_file {
        if let Err(e) = ClusterSecret::read_file(path) {
            out.push(format!("auth.cluster_secret_file: {e}"));
        }
    }
    if let Some(path) = &config.auth.bootstrap_token_file {
        match crate::cli::read_token(None, Some(path)) {
            Err(e) => out.push(format!("auth.bootstrap_token_file: {e}")),
            Ok(t) if t.as_deref().map_or(0, str::len) < BOOTSTRAP_TOKEN_BYTES_MIN => out.push(format!(
                "auth.bootstrap_token_file: {} holds fewer than {BOOTSTRAP_TOKEN_BYTES_MIN} bytes; use random ones",
                path.display()
            )),
            Ok(_) => {}
        }
    }
    if let Err(e) = data_dir_usable(&config.data_dir) {
        out.push(format!("data_dir: {e}"));
    }
    out
}

/// Whether this user may write in `dir`, or create it: the nearest existing ancestor must be a
/// writable directory. Nothing is created.
fn data_dir_usable(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    let mut at = dir;
    loop {
        match std::fs::metadata(at) {
            Ok(m) if !m.is_dir() => return Err(format!("{} is not a directory", at.display())),
            Ok(_) if writable(at) => return Ok(()),
            Ok(_) if at == dir => return Err(format!("{shown} is not writable by this user")),
            Ok(_) => return Err(format!("{shown} does not exist and {} is not writable by this user", at.display())),
            Err(_) if at == Path::new(".") || at == Path::new("/") => {
                return Err(format!("{shown}: no ancestor exists"))
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {}
            Err(e) => return Err(format!("{}: {e}", at.display())),
        }
        at = match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
    }
}

/// `access(2)` with write and search permission, as this process's real user.
fn writable(dir: &Path) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else { return false };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// The effective configuration as TOML: every key of the table with its value (an unset key as
/// a comment), grouped by table.
pub fn render(config: &Config) -> String {
    let mut out = String::new();
    let mut section = "";
    for key in KEYS.iter() {
        let (table, name) = key.toml.rsplit_once('.').unwrap_or(("", key.toml));
        if table != section {
            out.push_str(&format!("\n[{table}]\n"));
            section = table;
        }
        match hide_credentials(&(key.show)(config)) {
            v if v.is_empty() => out.push_str(&format!("# {name} is unset\n")),
            v => out.push_str(&format!("{name} = {v}\n")),
        }
    }
    out
}

/// `scheme://user:password@host` becomes `scheme://***@host` (in one value or a list of them).
fn hide_credentials(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let authority_end = after.find(['/', '"', ',', ' ']).unwrap_or(after.len());
        match after[..authority_end].rfind('@') {
            Some(userinfo) => {
                out.push_str("***");
                rest = &after[userinfo..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_hidden_and_the_rest_is_kept() {
        let list = r#"["http://ops:hunter2@10.0.0.1:7340", "http://10.0.0.2:7340/x@y"]"#;
        assert_eq!(hide_credentials(list), r#"["http://***@10.0.0.1:7340", "http://10.0.0.2:7340/x@y"]"#);
        assert_eq!(hide_credentials("\"plain\""), "\"plain\"");
    }

    #[test]
    fn a_data_dir_is_usable_when_it_or_its_nearest_ancestor_is_writable() {
        let dir = tempfile::tempdir().unwrap();
        data_dir_usable(dir.path()).unwrap();
        data_dir_usable(&dir.path().join("a/b/c")).unwrap();
        assert!(!dir.path().join("a").exists(), "the check creates nothing");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(data_dir_usable(&file.join("sub")).unwrap_err().contains("not a directory"));
    }

    #[test]
    fn the_rendered_configuration_is_a_toml_file_of_the_same_configuration() {
        let mut c = Config { join: vec!["http://10.0.0.1:7340".into()], ..Config::default() };
        c.listeners.raft.connections_max = Some(9);
        let text = render(&c);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, &text).unwrap();
        let back = Config::from_file(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
        // The listener limits come back as explicit overrides of their defaults: equal limits.
        assert_eq!(back.listeners.raft(), c.listeners.raft());
        assert_eq!(back.listeners.api(), c.listeners.api());
        assert_eq!((back.join, back.node_id, back.tls), (c.join, c.node_id, c.tls));
        assert!(text.contains("# cluster_secret_file is unset"), "{text}");
    }
}
