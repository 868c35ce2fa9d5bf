//! Every machine code the node answers in `{"error":{"code",..}}`, with its HTTP status and its
//! meaning, in one table.
//!
//! The table is one macro call so the code string, the status and the description cannot drift
//! apart: `ErrorCode::ALL` lists every variant (the OpenAPI document and the tests that compare
//! it with `docs/reference/api.md` iterate it). Codes are part of the API contract: a variant's
//! string never changes meaning.
//!
//! A code string may back two variants when the same condition is refused at two statuses: a
//! `status` or a missing field in a *query* is 400, in a *body* 422 (`InvalidStatusFilter` /
//! `InvalidStatus`, `MissingQueryField` / `MissingField`). Near-twins with different meanings stay
//! apart: `too_many_tasks` (422, one registration names over 100 tasks: fix the request) and
//! `task_limit_reached` (409, the cluster holds 1,000,000 tasks: the state refuses) are both
//! documented and both asserted by tests, so merging them would change what clients see (see
//! `docs/decisions.md`).

use axum::http::StatusCode;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($code:literal, $status:ident, $description:literal), )*) => {
        /// A stable machine code of an error answer.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* #[doc = $description] $variant, )*
        }

        impl ErrorCode {
            /// Every code, in the order of the table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The string clients branch on (`task_not_found`).
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status every answer with this code has.
            pub const fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status,)* }
            }

            /// One sentence for the reference documentation and the OpenAPI document.
            pub const fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => $description,)* }
            }
        }
    };
}

error_codes! {
    // 400: the request itself is unreadable.
    MalformedJson = ("malformed_json", BAD_REQUEST, "the body is not valid JSON, or is empty"),
    UnreadableBody = ("unreadable_body", BAD_REQUEST, "the body could not be read"),
    InvalidQuery = ("invalid_query", BAD_REQUEST, "unknown query parameter, a value of the wrong type, or a query string that is not valid"),
    InvalidPath = ("invalid_path", BAD_REQUEST, "a path segment is not valid (not UTF-8 once percent-decoded)"),
    InvalidIdempotencyKey = ("invalid_idempotency_key", BAD_REQUEST, "`Idempotency-Key` is empty, longer than 128, or not printable ASCII"),
    InvalidStatusFilter = ("invalid_status", BAD_REQUEST, "the `status` query is not a task status (tasks) or an execution status (executions)"),
    InvalidPage = ("invalid_page", BAD_REQUEST, "`page` is 0 or over 10,000,000"),
    InvalidPageSize = ("invalid_page_size", BAD_REQUEST, "`page_size` is 0 or over 500"),
    InvalidCount = ("invalid_count", BAD_REQUEST, "preview `count` is 0 or over 1000"),
    InvalidTime = ("invalid_time", BAD_REQUEST, "preview `after`, or executions `from` or `to`, is not RFC 3339"),
    InvalidTimeRange = ("invalid_time_range", BAD_REQUEST, "executions `from` is not before `to`"),
    InvalidNameFilter = ("invalid_name_filter", BAD_REQUEST, "tasks `name` (a part of the name to look for) is over 128 bytes"),
    InvalidMode = ("invalid_mode", BAD_REQUEST, "tasks `mode` is not an execution mode (`parallel`, `sequential`, `skip`, `replace`)"),
    InvalidLastResult = ("invalid_last_result", BAD_REQUEST, "tasks `last_result` is not a comma-separated list of final statuses (`success`, `failed`, `timeout`, `cancelled`, `skipped`, `missed`) and `none`"),
    InvalidSort = ("invalid_sort", BAD_REQUEST, "tasks `sort` is not `id`, `-id`, `name`, `-name`, `next_fire` or `-updated`"),
    InvalidTrigger = ("invalid_trigger", BAD_REQUEST, "executions `trigger` is not a trigger (`schedule`, `manual`, `retry`, `catchup`)"),
    InvalidNodeId = ("invalid_node_id", BAD_REQUEST, "a node id in the path is not a non-negative integer"),
    InvalidExecutionId = ("invalid_execution_id", BAD_REQUEST, "an execution id in the path is not a non-negative integer"),
    InvalidRuleId = ("invalid_rule_id", BAD_REQUEST, "a notification rule id in the path is not a non-negative integer"),
    MissingQueryField = ("missing_field", BAD_REQUEST, "a required query parameter is absent (preview `cron_expression`)"),
    // 422: well-formed, but a value breaks a rule.
    MissingField = ("missing_field", UNPROCESSABLE_ENTITY, "a required field of the body is absent"),
    InvalidField = ("invalid_field", UNPROCESSABLE_ENTITY, "unknown field, wrong type, bad enum value, or a value out of range"),
    InvalidStatus = ("invalid_status", UNPROCESSABLE_ENTITY, "the `status` field of an executor status change or a callback is not an allowed value"),
    EmptyUpdate = ("empty_update", UNPROCESSABLE_ENTITY, "a `PUT` that changes nothing"),
    InvalidName = ("invalid_name", UNPROCESSABLE_ENTITY, "the name breaks a naming rule"),
    InvalidCronExpression = ("invalid_cron_expression", UNPROCESSABLE_ENTITY, "the expression does not parse; the message says what to fix"),
    InvalidTimezone = ("invalid_timezone", UNPROCESSABLE_ENTITY, "not an IANA zone name"),
    InvalidParameters = ("invalid_parameters", UNPROCESSABLE_ENTITY, "`parameters` is not a JSON object"),
    ParametersTooLarge = ("parameters_too_large", UNPROCESSABLE_ENTITY, "`parameters` over 65,536 bytes"),
    InvalidAddress = ("invalid_address", UNPROCESSABLE_ENTITY, "a node address is not a connectable host:port (IP or host name; no 0.0.0.0, no port 0)"),
    InvalidUrl = ("invalid_url", UNPROCESSABLE_ENTITY, "an executor's `base_url` or `health_check_url` is not a plain `http://` URL with a host"),
    InvalidMetadata = ("invalid_metadata", UNPROCESSABLE_ENTITY, "an executor's `metadata` is not an object, or its `capacity` or `weight` is not an integer from 0 to 1,000,000"),
    MetadataTooLarge = ("metadata_too_large", UNPROCESSABLE_ENTITY, "`metadata` over 16,384 bytes"),
    TooManyTasks = ("too_many_tasks", UNPROCESSABLE_ENTITY, "a registration names more than 100 tasks"),
    ResultTooLarge = ("result_too_large", UNPROCESSABLE_ENTITY, "a callback's `result` over 65,536 bytes"),
    InvalidChannelUrl = ("invalid_channel_url", UNPROCESSABLE_ENTITY, "a notification channel's `url` is not an `http://` or `https://` URL with a host and no credentials, up to 2,048 bytes"),
    InvalidSecret = ("invalid_secret", UNPROCESSABLE_ENTITY, "a notification channel's `secret` is not 16 to 256 printable ASCII bytes"),
    UnknownPlaceholder = ("unknown_placeholder", UNPROCESSABLE_ENTITY, "a channel's `template` uses a `{{placeholder}}` that does not exist; the message lists the known ones"),
    InvalidTemplate = ("invalid_template", UNPROCESSABLE_ENTITY, "a channel's `template` is empty, over 4,096 bytes, or has a `{{` not closed by `}}`"),
    InvalidRule = ("invalid_rule", UNPROCESSABLE_ENTITY, "a notification rule names no channel or over 16, more than one of `task`, `task_prefix`, `group`, or a prefix or group that is empty or over 128 bytes"),
    UnknownChannel = ("unknown_channel", UNPROCESSABLE_ENTITY, "a notification rule names a channel that does not exist"),
    IdempotencyKeyReused = ("idempotency_key_reused", UNPROCESSABLE_ENTITY, "the key was used for a different request"),
    // 401, 403: who is asking (issue 17).
    Unauthenticated = ("unauthenticated", UNAUTHORIZED, "auth is on and the request has no `Authorization: Bearer` token, or an unknown or revoked one"),
    Forbidden = ("forbidden", FORBIDDEN, "the token's role does not allow this endpoint (the message names the role it needs)"),
    OutOfScope = ("out_of_scope", FORBIDDEN, "the token is limited to executor groups or task name prefixes, and this task or group is outside them"),
    // 403, 404, 405, 409, 413, 414, 415: the current state or the endpoint refuses it.
    InvalidCallbackToken = ("invalid_callback_token", FORBIDDEN, "the callback token does not match the execution's current attempt"),
    NotFound = ("not_found", NOT_FOUND, "no such endpoint"),
    TaskNotFound = ("task_not_found", NOT_FOUND, "no such task id, or no live task with this name"),
    NodeNotFound = ("node_not_found", NOT_FOUND, "not a member (for promote: not a learner)"),
    ExecutionNotFound = ("execution_not_found", NOT_FOUND, "no such execution id"),
    ExecutorNotFound = ("executor_not_found", NOT_FOUND, "no such executor id or `instance_id`"),
    TokenNotFound = ("token_not_found", NOT_FOUND, "no token has this name"),
    ChannelNotFound = ("channel_not_found", NOT_FOUND, "no notification channel has this name"),
    RuleNotFound = ("rule_not_found", NOT_FOUND, "no notification rule has this id"),
    MethodNotAllowed = ("method_not_allowed", METHOD_NOT_ALLOWED, "the endpoint exists, the method does not"),
    ExecutionFinished = ("execution_finished", CONFLICT, "the execution already ended: it cannot be stopped or reported on"),
    StaleAttempt = ("stale_attempt", CONFLICT, "a callback about an attempt that is not the execution's current running one"),
    TaskNameTaken = ("task_name_taken", CONFLICT, "another live task has this name"),
    TaskDeleted = ("task_deleted", CONFLICT, "the task is deleted"),
    VersionConflict = ("version_conflict", CONFLICT, "`version` is not the current version"),
    TaskLimitReached = ("task_limit_reached", CONFLICT, "1,000,000 active and paused tasks already"),
    MembershipChangeInProgress = ("membership_change_in_progress", CONFLICT, "another membership change is running"),
    AlreadyVoter = ("already_voter", CONFLICT, "the node is already a voter"),
    LearnerBehind = ("learner_behind", CONFLICT, "the learner is more than 1,000 entries behind, or has reported no progress yet"),
    LastVoter = ("last_voter", CONFLICT, "removing it would leave no voter"),
    AddressTaken = ("address_taken", CONFLICT, "another member already has this `http_addr` or `raft_addr`"),
    NodeIdTaken = ("node_id_taken", CONFLICT, "the id is a member at other addresses"),
    TokenNameTaken = ("token_name_taken", CONFLICT, "a token with this name exists (or this request created it before: its secret was shown once)"),
    TokenLimitReached = ("token_limit_reached", CONFLICT, "10,000 tokens already; revoke unused ones"),
    ChannelNameTaken = ("channel_name_taken", CONFLICT, "a notification channel with this name exists"),
    ChannelInUse = ("channel_in_use", CONFLICT, "a notification rule names the channel; change or delete the rule first"),
    ChannelLimitReached = ("channel_limit_reached", CONFLICT, "100 notification channels already"),
    RuleLimitReached = ("rule_limit_reached", CONFLICT, "1,000 notification rules already"),
    BackupInProgress = ("backup_in_progress", CONFLICT, "this node is already streaming a backup; wait for it to end or ask another node"),
    AuthOff = ("auth_off", CONFLICT, "tokens are made only while auth is on (a cluster secret): made with auth off, by anyone, they would still open the cluster once auth is turned on"),
    BodyTooLarge = ("body_too_large", PAYLOAD_TOO_LARGE, "body over 1 MiB"),
    UriTooLong = ("uri_too_long", URI_TOO_LONG, "the request target (path and query) is over 8,192 bytes"),
    UnsupportedMediaType = ("unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "`Content-Type` present and not JSON"),
    // 500, 503, 507: the node cannot answer now.
    Internal = ("internal", INTERNAL_SERVER_ERROR, "a bug or a storage failure; the node logs the details under the request id the message names"),
    NoLeader = ("no_leader", SERVICE_UNAVAILABLE, "write: no leader was reachable and nothing was written. Read: no leader is known, or it refused the read index."),
    Unavailable = ("unavailable", SERVICE_UNAVAILABLE, "a write may have taken effect; retry with the same key"),
    Timeout = ("timeout", SERVICE_UNAVAILABLE, "write: proposed but not confirmed in 5 s (outcome unknown). Read: no confirmation in 3 s. Membership: not finished in 10 s (may still take effect)."),
    NoQuorum = ("no_quorum", SERVICE_UNAVAILABLE, "the leader could not reach a quorum to confirm a read"),
    LeaderUnreachable = ("leader_unreachable", SERVICE_UNAVAILABLE, "a follower could not reach the leader for a read index"),
    NotLeader = ("not_leader", SERVICE_UNAVAILABLE, "internal: a forwarded request or a read-index request reached a node that does not lead"),
    LeadershipLost = ("leadership_lost", SERVICE_UNAVAILABLE, "internal: leadership changed while a write was pending; the forwarding node retries it"),
    Overloaded = ("overloaded", SERVICE_UNAVAILABLE, "the listener already handles `requests_inflight_max` requests; this one was not started: retry shortly"),
    StorageFull = ("storage_full", INSUFFICIENT_STORAGE, "the receiving node's storage is under its free-space floor or over its data quota (`[storage]`): nothing was written; reads still work, writes resume by themselves once there is room (or send it to another node)"),
    RequestTimeout = ("request_timeout", SERVICE_UNAVAILABLE, "the request ran past the listener's `request_timeout_ms` and was abandoned; a write may still take effect: retry with the same key"),
    // The embedded agent's own listener (`POST /execute`, `POST /stop`).
    InvalidBody = ("invalid_body", BAD_REQUEST, "agent: the body of `/execute` or `/stop` is not the protocol's JSON"),
    AtCapacity = ("at_capacity", SERVICE_UNAVAILABLE, "agent: it already runs its `--capacity` of runs; the cluster sends the run elsewhere"),
    ShuttingDown = ("shutting_down", SERVICE_UNAVAILABLE, "agent: it is shutting down and takes no new run"),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_string_is_shared_only_by_variants_of_one_meaning_at_two_statuses() {
        for a in ErrorCode::ALL {
            for b in ErrorCode::ALL {
                if a != b && a.as_str() == b.as_str() {
                    assert_ne!(a.status(), b.status(), "{a:?} and {b:?} are the same code at the same status");
                }
            }
            let s = a.as_str();
            assert!(s.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'), "{s} is not snake_case");
            assert!(!a.description().is_empty());
        }
    }
}
