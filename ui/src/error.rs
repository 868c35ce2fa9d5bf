//! What a page shows when something fails: the API's own error (its status, stable code and
//! message), or the console's few own refusals (a forged form, a bad form field).
//!
//! The console adds no error codes of its own to the API's table; the ones below exist only in
//! HTML pages and are listed in `docs/ui.md`: `csrf` (a form without this session's token, or
//! from another site) and `invalid_form` (a form field the console could not read, such as a
//! number that is not one).

use axum::http::StatusCode;

/// A failed page or form.
#[derive(Debug, Clone)]
pub struct UiError {
    pub status: StatusCode,
    /// The API's machine code (`task_not_found`, `no_leader`, …), or `csrf` / `invalid_form`.
    pub code: String,
    pub message: String,
}

impl UiError {
    pub fn api(status: StatusCode, code: String, message: String) -> Self {
        UiError { status, code, message }
    }

    pub fn internal(message: String) -> Self {
        UiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "internal".into(), message }
    }

    pub fn csrf(message: &str) -> Self {
        UiError { status: StatusCode::FORBIDDEN, code: "csrf".into(), message: message.into() }
    }

    pub fn invalid_form(message: String) -> Self {
        UiError { status: StatusCode::UNPROCESSABLE_ENTITY, code: "invalid_form".into(), message }
    }

    pub fn not_found(message: String) -> Self {
        UiError { status: StatusCode::NOT_FOUND, code: "not_found".into(), message }
    }

    /// The task form field an error is about, so the form shows it next to that field: from the
    /// code where it names one, else from the first `` `field` `` the message quotes.
    pub fn field(&self, fields: &[&'static str]) -> Option<&'static str> {
        let by_code = match self.code.as_str() {
            "invalid_name" | "task_name_taken" => Some("name"),
            "invalid_cron_expression" => Some("cron_expression"),
            "invalid_timezone" => Some("timezone"),
            "invalid_parameters" | "parameters_too_large" => Some("parameters"),
            "invalid_address" => Some("http_addr"),
            "invalid_node_id" | "node_id_taken" => Some("id"),
            _ => None,
        };
        if let Some(f) = by_code.filter(|f| fields.contains(f)) {
            return Some(f);
        }
        let quoted = self.message.split('`').skip(1).step_by(2);
        quoted.filter_map(|q| fields.iter().find(|f| **f == q).copied()).next()
    }

    /// A sentence saying what to do about it, for the codes a person meets.
    pub fn advice(&self) -> Option<&'static str> {
        Some(match self.code.as_str() {
            "no_leader" | "unavailable" | "leader_unreachable" | "no_quorum" => {
                "The cluster has no reachable leader right now. Pages that need the leader's view wait for one; try again in a few seconds, or check the Cluster page."
            }
            "forbidden" | "out_of_scope" => "Your token's role or scope does not allow this. Ask an admin for a token that does.",
            "unauthenticated" => "Your session is no longer valid (the token may have been revoked). Sign in again.",
            "csrf" => "The form did not come from this console session. Reload the page and submit it again.",
            "version_conflict" => "Someone changed this task after you opened the form. Reload it to see their change.",
            _ => return None,
        })
    }
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status.as_u16(), self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_quoting_a_field_names_it_and_a_code_wins_over_the_message() {
        let fields = &["name", "max_retry", "cron_expression"];
        let e = UiError::api(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field".into(),
            "`max_retry` must be 0 to 10".into(),
        );
        assert_eq!(e.field(fields), Some("max_retry"));
        let e = UiError::api(StatusCode::UNPROCESSABLE_ENTITY, "invalid_cron_expression".into(), "`name` bad".into());
        assert_eq!(e.field(fields), Some("cron_expression"));
        let e = UiError::api(StatusCode::CONFLICT, "version_conflict".into(), "stale".into());
        assert_eq!(e.field(fields), None);
    }
}
