//! Temporary stand-in for the schedule module (replaced by the full dialect).
use chrono::{DateTime, Utc};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DstPolicy {
    #[default]
    Shift,
    Skip,
    Twice,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid cron expression {expression:?}: {reason}")]
    InvalidExpression { expression: String, reason: String },
    #[error("unknown time zone {0:?}")]
    UnknownTimezone(String),
}

#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    timezone: String,
    tz: chrono_tz::Tz,
    inner: cron::Schedule,
}

impl Schedule {
    pub fn parse(expression: &str, timezone: &str) -> Result<Schedule, ScheduleError> {
        Self::parse_with_policy(expression, timezone, DstPolicy::Shift)
    }
    pub fn parse_with_policy(expression: &str, timezone: &str, _dst: DstPolicy) -> Result<Schedule, ScheduleError> {
        let tz = chrono_tz::Tz::from_str(timezone).map_err(|_| ScheduleError::UnknownTimezone(timezone.into()))?;
        let inner = cron::Schedule::from_str(expression)
            .map_err(|e| ScheduleError::InvalidExpression { expression: expression.into(), reason: e.to_string() })?;
        Ok(Schedule { expression: expression.into(), timezone: timezone.into(), tz, inner })
    }
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.inner.after(&after.with_timezone(&self.tz)).next().map(|t| t.with_timezone(&Utc))
    }
    pub fn preview(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = after;
        while out.len() < count {
            match self.next_after(t) {
                Some(n) => {
                    out.push(n);
                    t = n;
                }
                None => break,
            }
        }
        out
    }
    pub fn expression(&self) -> &str {
        &self.expression
    }
    pub fn timezone(&self) -> &str {
        &self.timezone
    }
}
