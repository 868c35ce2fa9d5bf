//! Where a process's logs go and how they look: `--log-format text|json` (also `log_format` in
//! the config file and `CRONRAFT_LOG_FORMAT`), filtered by `CRONRAFT_LOG`.
//!
//! Logs go to stderr: stdout carries the one machine-readable `listening` line. `text` is
//! tracing's human format (colours only on a terminal); `json` is one JSON object per line, with
//! the event's fields at the top level (`message`, `request_id`, `status`, ...) and the fields of
//! the span it happened in under `span`, so a log shipper can index them without parsing prose.

use serde::Deserialize;

/// The default filter when `CRONRAFT_LOG` is not set: openraft's own INFO lines are chatty.
pub const FILTER_DEFAULT: &str = "info,openraft=warn";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// tracing's human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The name used in the config file, the variable and the flag.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json".into()),
        }
    }
}

/// Installs the process's subscriber: `format` lines on stderr, filtered by `CRONRAFT_LOG`.
pub fn init(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CRONRAFT_LOG").unwrap_or_else(|_| FILTER_DEFAULT.into());
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_by_name_and_refuse_others() {
        for f in [LogFormat::Text, LogFormat::Json] {
            assert_eq!(f.as_str().parse::<LogFormat>().unwrap(), f);
        }
        assert!("yaml".parse::<LogFormat>().unwrap_err().contains("text or json"));
    }
}
