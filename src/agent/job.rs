//! What a task's `parameters` ask the agent to do: a shell command or an HTTP request.
//!
//! The agent reads only the keys it understands and ignores the rest, so one task definition can
//! carry parameters for other executors too. A task naming neither kind (or both) fails at once
//! with a sentence saying what to write, rather than being guessed at.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// What the message says when `parameters` names no kind of job.
pub const NO_JOB: &str = r#"parameters must contain "command" (a shell command line) or "http" (a request)"#;

/// One run's work.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    Command(CommandJob),
    Http(HttpJob),
}

/// `{"command": "…", "env": {…}, "cwd": "…"}`: a line for `sh -c`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CommandJob {
    pub command: String,
    /// Added to the agent's own environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: the agent's).
    #[serde(default)]
    pub cwd: Option<String>,
}

/// `{"http": {"method", "url", "headers", "body", "expected_status"}}` (seed 002's HTTP task).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpJob {
    #[serde(default = "default_method")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A string is sent as it is; any other JSON value is sent as JSON.
    #[serde(default)]
    pub body: Option<Value>,
    /// One status or a list; default: any 2xx.
    #[serde(default)]
    pub expected_status: Option<ExpectedStatus>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ExpectedStatus {
    One(u16),
    Any(Vec<u16>),
}

fn default_method() -> String {
    "GET".to_string()
}

impl ExpectedStatus {
    pub fn matches(expected: Option<&ExpectedStatus>, status: u16) -> bool {
        match expected {
            None => (200..300).contains(&status),
            Some(ExpectedStatus::One(s)) => *s == status,
            Some(ExpectedStatus::Any(list)) => list.contains(&status),
        }
    }

    /// For messages: `2xx`, `201` or `200, 204`.
    pub fn describe(expected: Option<&ExpectedStatus>) -> String {
        match expected {
            None => "2xx".to_string(),
            Some(ExpectedStatus::One(s)) => s.to_string(),
            Some(ExpectedStatus::Any(list)) => list.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
        }
    }
}

impl Job {
    /// Reads the job from a task's parameters; the error is the message to report.
    pub fn parse(parameters: &Value) -> Result<Job, String> {
        let command = parameters.get("command");
        let http = parameters.get("http");
        match (command, http) {
            (Some(_), Some(_)) => Err(r#"parameters contain both "command" and "http"; keep one"#.to_string()),
            (Some(_), None) => serde_json::from_value::<CommandJob>(parameters.clone())
                .map(Job::Command)
                .map_err(|e| format!("parameters of a command job: {e}")),
            (None, Some(h)) => {
                let job: HttpJob = serde_json::from_value(h.clone()).map_err(|e| format!("parameters.http: {e}"))?;
                job.check()?;
                Ok(Job::Http(job))
            }
            (None, None) => Err(NO_JOB.to_string()),
        }
    }
}

impl HttpJob {
    fn check(&self) -> Result<(), String> {
        if !self.url.starts_with("http://") && !self.url.starts_with("https://") {
            return Err(format!("parameters.http.url {:?} must start with http:// or https://", self.url));
        }
        reqwest::Method::from_bytes(self.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("parameters.http.method {:?} is not an HTTP method", self.method))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_command_with_env_and_cwd() {
        let job = Job::parse(&json!({"command": "echo hi", "env": {"A": "1"}, "cwd": "/tmp", "other": 1})).unwrap();
        let Job::Command(c) = job else { panic!("{job:?}") };
        assert_eq!((c.command.as_str(), c.env["A"].as_str(), c.cwd.as_deref()), ("echo hi", "1", Some("/tmp")));
    }

    #[test]
    fn an_http_request_with_defaults() {
        let Job::Http(h) = Job::parse(&json!({"http": {"url": "http://x/y"}})).unwrap() else { panic!() };
        assert_eq!(h.method, "GET");
        assert!(ExpectedStatus::matches(h.expected_status.as_ref(), 204));
        assert!(!ExpectedStatus::matches(h.expected_status.as_ref(), 301));
        let Job::Http(h) = Job::parse(&json!({"http": {"url": "http://x", "expected_status": [200, 404]}})).unwrap()
        else {
            panic!()
        };
        assert!(ExpectedStatus::matches(h.expected_status.as_ref(), 404));
        assert_eq!(ExpectedStatus::describe(h.expected_status.as_ref()), "200, 404");
    }

    #[test]
    fn bad_parameters_say_what_to_write() {
        assert_eq!(Job::parse(&json!({"script": "x"})).unwrap_err(), NO_JOB);
        assert_eq!(Job::parse(&json!(null)).unwrap_err(), NO_JOB);
        assert!(Job::parse(&json!({"command": 3})).unwrap_err().contains("command"));
        assert!(Job::parse(&json!({"command": "x", "http": {}})).unwrap_err().contains("both"));
        assert!(Job::parse(&json!({"http": {"url": "https://x"}})).is_ok(), "https jobs run (rustls)");
        assert!(Job::parse(&json!({"http": {"url": "ftp://x"}})).unwrap_err().contains("https://"));
        assert!(Job::parse(&json!({"http": {"url": "http://x", "method": "GE T"}})).unwrap_err().contains("method"));
    }
}
