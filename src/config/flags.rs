//! The `serve` flags made from the key table ([`super::keys`]): one per key that has no
//! hand-written field in `ServeArgs` (`--heartbeat-ms`, `--log-format`, ...), so every key can be
//! given on the command line without a field and a doc comment per key.
//!
//! [`ConfigFlags`] implements clap's `Args` by hand: it adds an argument per [`Flag::Table`] key,
//! with the table's meaning as its help, and collects what was given as `(key, text)` pairs that
//! `ServeArgs::to_config` sets last, with the other flags. A list key takes its flag repeated or
//! comma-separated; a boolean key takes `--flag` alone (true) or `--flag=false`.

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use super::keys::{ConfigKey, Flag, KEYS};
use super::{Config, ConfigError};

/// The table-made flags given on a command line.
#[derive(Debug, Clone, Default)]
pub struct ConfigFlags {
    /// `(the key's TOML name, the text given)`, in table order.
    pub values: Vec<(&'static str, String)>,
}

/// The help heading the table-made flags are listed under.
const HEADING: &str = "Settings (also `CRONRAFT_*` variables and config file keys; see docs/reference/cli.md)";

fn table_keys() -> impl Iterator<Item = (&'static ConfigKey, &'static str)> {
    KEYS.iter().filter_map(|k| match k.flag {
        Flag::Table(name) => Some((k, name)),
        _ => None,
    })
}

impl ConfigFlags {
    /// Sets every given flag's key on `config`; returns the values refused (each naming its
    /// flag), which are left out.
    pub fn apply(&self, config: &mut Config) -> Vec<ConfigError> {
        let mut refused = Vec::new();
        for (toml, text) in &self.values {
            let key = super::keys::by_toml(toml).expect("a table key");
            if let Err(reason) = (key.set)(config, text) {
                let flag = format!("--{}", key.flag.name());
                refused.push(ConfigError::Flag { flag, value: text.clone(), reason });
            }
        }
        refused
    }
}

impl FromArgMatches for ConfigFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = ConfigFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for (key, name) in table_keys() {
            if let Some(given) = matches.get_many::<String>(name) {
                let text = given.cloned().collect::<Vec<_>>().join(",");
                self.values.retain(|(k, _)| *k != key.toml);
                self.values.push((key.toml, text));
            }
        }
        Ok(())
    }
}

impl Args for ConfigFlags {
    fn augment_args(cmd: Command) -> Command {
        let mut cmd = cmd.next_help_heading(HEADING);
        for (key, name) in table_keys() {
            let mut arg = Arg::new(name)
                .long(name)
                .help(format!("{} [env: {}] [file: {}]", key.meaning, key.env, key.toml))
                .value_parser(clap::value_parser!(String));
            arg = match key.kind {
                "boolean" => arg
                    .action(ArgAction::Set)
                    .num_args(0..=1)
                    .require_equals(true)
                    .default_missing_value("true")
                    .value_name("true|false"),
                k if k.starts_with("list") => arg.action(ArgAction::Append).value_delimiter(',').value_name("A,B"),
                "integer" => arg.action(ArgAction::Set).value_name("N"),
                "path" => arg.action(ArgAction::Set).value_name("FILE"),
                _ => arg.action(ArgAction::Set).value_name("TEXT"),
            };
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}
