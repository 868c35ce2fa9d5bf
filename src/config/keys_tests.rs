//! Tests of the key table: it covers every key of the file, every key is accepted by file,
//! variable and flag, and the reference's table is the generated one.

use std::collections::BTreeSet;

use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};

/// The fields of the struct at `path` in the file (`""`: the top level, `listeners.api`), as
/// serde names them in its error for an unknown field; `None` for a leaf value.
fn fields_at(path: &str) -> Option<Vec<String>> {
    let text = if path.is_empty() { "zz_unknown = 1\n".to_string() } else { format!("[{path}]\nzz_unknown = 1\n") };
    let err = toml::from_str::<Config>(&text).expect_err("an unknown key").to_string();
    if !err.contains("unknown field `zz_unknown`") {
        return None;
    }
    let list = err.split("expected ").nth(1)?.lines().next()?.to_string();
    Some(list.split('`').skip(1).step_by(2).map(String::from).collect())
}

fn leaves(path: &str, out: &mut BTreeSet<String>) {
    for field in fields_at(path).expect("a table") {
        let child = if path.is_empty() { field } else { format!("{path}.{field}") };
        match fields_at(&child) {
            Some(_) => leaves(&child, out),
            None => {
                out.insert(child);
            }
        }
    }
}

/// Every key of the file is in the table, and nothing else is: a new field must get its
/// variable, flag and documentation row.
#[test]
fn the_table_has_every_key_of_the_file() {
    let mut file_keys = BTreeSet::new();
    leaves("", &mut file_keys);
    let table: BTreeSet<String> = KEYS.iter().map(|k| k.toml.to_string()).collect();
    assert!(file_keys.len() > 40, "the file's keys were found: {file_keys:?}");
    assert_eq!(file_keys, table);
    let envs: BTreeSet<_> = KEYS.iter().map(|k| k.env).collect();
    let flags: BTreeSet<_> = KEYS.iter().map(|k| k.flag.name()).collect();
    assert_eq!((envs.len(), flags.len()), (KEYS.len(), KEYS.len()), "one variable and one flag per key");
    assert!(envs.iter().all(|e| e.starts_with("CRONRAFT_")));
}

/// Each key set from its example by the file, the variable and the flag: the same value,
/// different from the default.
#[test]
fn every_key_is_accepted_by_file_variable_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    for key in KEYS.iter() {
        let name = key.toml;
        let mut wanted = Config::default();
        (key.set)(&mut wanted, key.example).unwrap_or_else(|e| panic!("{name}: example refused: {e}"));
        let wanted = (key.show)(&wanted);
        assert_ne!(wanted, (key.show)(&Config::default()), "{name}: the example is the default");

        std::fs::write(&path, format!("{name} = {wanted}\n")).unwrap();
        let from_file = Config::from_file(&path).unwrap_or_else(|e| panic!("{name}: file: {e}"));
        assert_eq!((key.show)(&from_file), wanted, "{name} by file");

        let mut from_env = Config::default();
        from_env.apply_env(std::iter::once((key.env.to_string(), key.example.to_string()))).unwrap();
        assert_eq!((key.show)(&from_env), wanted, "{name} by {}", key.env);

        let flag = match key.flag {
            Flag::Switch(n) => format!("--{n}"),
            Flag::Table(n) | Flag::Own(n) => format!("--{n}={}", key.example),
        };
        let cli = Cli::try_parse_from(["cronraft", "serve", flag.as_str()]).unwrap_or_else(|e| panic!("{flag}: {e}"));
        let Some(Command::Serve(serve)) = cli.command else { panic!("{flag}: not serve") };
        let (from_flag, refused) = serve.load(std::iter::empty()).unwrap();
        assert!(refused.is_empty(), "{flag}: {refused:?}");
        assert_eq!((key.show)(&from_flag), wanted, "{name} by {flag}");
    }
}

#[test]
fn a_refused_variable_or_flag_names_itself_and_the_others_still_apply() {
    let mut c = Config::default();
    let err = c.apply_env(std::iter::once(("CRONRAFT_ALLOW_CIDRS".into(), "10.0.0.1".into()))).unwrap_err();
    assert!(err.to_string().contains("CRONRAFT_ALLOW_CIDRS"), "{err}");
    let args = ["cronraft", "serve", "--heartbeat-ms=fast", "--failure-threshold", "7", "--deny-cidrs", "fd00::/8"];
    let Some(Command::Serve(serve)) = Cli::try_parse_from(args).unwrap().command else { panic!("serve") };
    let (c, refused) = serve.load(std::iter::empty()).unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].to_string().contains("--heartbeat-ms"), "{}", refused[0]);
    assert_eq!((c.executors.failure_threshold, c.executors.deny_cidrs.len()), (7, 1));
    assert!(serve.to_config(std::iter::empty()).unwrap_err().to_string().contains("--heartbeat-ms"));
}

/// The table in docs/reference/cli.md is this one (`CRONRAFT_WRITE_DOCS=1` rewrites it; or
/// paste `cronraft config table` between the markers).
#[test]
fn the_reference_has_the_generated_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference/cli.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (begin, end) = ("<!-- config-table:begin -->\n", "<!-- config-table:end -->");
    let start = doc.find(begin).expect("the begin marker") + begin.len();
    let stop = doc.find(end).expect("the end marker");
    let table = markdown_table();
    if std::env::var_os("CRONRAFT_WRITE_DOCS").is_some() {
        std::fs::write(&path, format!("{}{table}{}", &doc[..start], &doc[stop..])).unwrap();
        return;
    }
    assert!(
        doc[start..stop] == table,
        "docs/reference/cli.md's key table differs from the code: run `CRONRAFT_WRITE_DOCS=1 cargo test -p \
         cronraft --lib the_reference_has_the_generated_table` and commit the file"
    );
}
