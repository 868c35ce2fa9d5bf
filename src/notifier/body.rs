//! What one delivery sends: the body for the channel's kind, its headers, and the HMAC-SHA256
//! signature of a webhook body under the channel's secret.
//!
//! - `webhook`: a JSON object with the event's fields, `text` (the rendered template) and
//!   `status` (`firing`, or `resolved` for a recovery).
//! - `slack` (Slack and Mattermost incoming webhooks): `{"text": ...}`.
//! - `alertmanager`: Alertmanager's `POST /api/v2/alerts` body, an array of one alert. An
//!   event and its resolution carry the same labels, so `endsAt` on the resolution ends the
//!   alert the event started.
//!
//! Every request carries [`EVENT_ID_HEADER`]: receivers deduplicate by it (delivery is
//! at-least-once). The secret is only ever an HMAC key here; it is never logged or sent.

use aws_lc_rs::hmac;
use cronraft_raft::notify::{Channel, ChannelKind, Event, EventKind};
use serde_json::{json, Value};

/// The event id, the same on every delivery attempt and from every leader.
pub const EVENT_ID_HEADER: &str = "x-cronraft-event-id";
/// The event kind (`run_failed`, ...).
pub const EVENT_KIND_HEADER: &str = "x-cronraft-event";
/// `sha256=<hex of HMAC-SHA256(secret, body)>`, on webhook channels with a secret.
pub const SIGNATURE_HEADER: &str = "x-cronraft-signature";

/// One request, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub body: Vec<u8>,
    /// Header name and value, beyond `content-type: application/json`.
    pub headers: Vec<(&'static str, String)>,
}

/// The request `channel` gets for `event`.
pub fn outgoing(channel: &Channel, event: &Event) -> Outgoing {
    let text = event.render(channel.spec.template.as_deref());
    let body = match channel.spec.kind {
        ChannelKind::Webhook => webhook(event, &text),
        ChannelKind::Slack => json!({ "text": text }),
        ChannelKind::Alertmanager => alertmanager(event, &text),
    };
    let body = serde_json::to_vec(&body).expect("a JSON value serializes");
    let mut headers = vec![(EVENT_ID_HEADER, event.id.to_string()), (EVENT_KIND_HEADER, event.kind.as_str().into())];
    if let (ChannelKind::Webhook, Some(secret)) = (channel.spec.kind, &channel.spec.secret) {
        headers.push((SIGNATURE_HEADER, signature(secret.as_bytes(), &body)));
    }
    Outgoing { body, headers }
}

/// `sha256=` and the lowercase hex of HMAC-SHA256(`secret`, `body`).
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn status(kind: EventKind) -> &'static str {
    if kind.is_resolution() {
        "resolved"
    } else {
        "firing"
    }
}

fn webhook(e: &Event, text: &str) -> Value {
    json!({
        "event_id": e.id,
        "kind": e.kind.as_str(),
        "status": status(e.kind),
        "severity": e.kind.severity(),
        "time": e.field("time"),
        "subject": e.subject(),
        "task_id": e.task_id,
        "task": Some(&e.task_name).filter(|n| !n.is_empty()),
        "group": Some(&e.group).filter(|g| !g.is_empty()),
        "executor": Some(&e.executor).filter(|x| !x.is_empty()),
        "node_id": e.node_id,
        "execution_id": e.execution_id,
        "reason": e.reason,
        "slot_count": e.slot_count,
        "text": text,
    })
}

/// The severity label an event and its resolution share.
fn alert_severity(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Recovered => EventKind::RunFailed.severity(),
        EventKind::ExecutorHealthy => EventKind::ExecutorUnhealthy.severity(),
        EventKind::NodeReachable => EventKind::NodeUnreachable.severity(),
        k => k.severity(),
    }
}

fn alertmanager(e: &Event, text: &str) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), e.kind.alert_name().into());
    labels.insert("severity".into(), alert_severity(e.kind).into());
    for (name, value) in [("task", &e.task_name), ("group", &e.group), ("executor", &e.executor)] {
        if !value.is_empty() {
            labels.insert(name.into(), value.clone().into());
        }
    }
    if let Some(n) = e.node_id {
        labels.insert("node".into(), n.to_string().into());
    }
    let time = e.field("time");
    let mut alert = json!({
        "labels": labels,
        "annotations": { "summary": text, "event_id": e.id.to_string(), "event": e.kind.as_str() },
        "startsAt": time,
    });
    if e.kind.is_resolution() {
        alert["endsAt"] = Value::String(time);
    }
    json!([alert])
}

#[cfg(test)]
mod tests {
    use cronraft_raft::notify::ChannelSpec;

    use super::*;

    fn channel(kind: ChannelKind, secret: Option<&str>) -> Channel {
        let spec = ChannelSpec {
            name: "c".into(),
            kind,
            url: "http://127.0.0.1:9/".into(),
            secret: secret.map(Into::into),
            template: Some("{{task}} {{event}}".into()),
        };
        Channel { spec, created_ms: 0, updated_ms: 0 }
    }

    fn event(kind: EventKind) -> Event {
        Event {
            id: 41,
            kind,
            at_ms: 1_000,
            task_id: Some(3),
            task_name: "nightly".into(),
            group: "local".into(),
            executor: String::new(),
            node_id: None,
            execution_id: Some(8),
            reason: "executor_failed".into(),
            slot_count: 1,
        }
    }

    /// RFC 4231 test case 2: the signature is standard HMAC-SHA256, checkable by any receiver.
    #[test]
    fn the_signature_is_standard_hmac_sha256() {
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn each_kind_of_channel_gets_its_shape_and_the_event_id() {
        let hook = outgoing(&channel(ChannelKind::Webhook, Some("0123456789abcdef")), &event(EventKind::RunFailed));
        let body: Value = serde_json::from_slice(&hook.body).unwrap();
        assert_eq!((body["event_id"].as_u64(), body["text"].as_str()), (Some(41), Some("nightly run_failed")));
        assert_eq!(body["status"], "firing");
        let sig = hook.headers.iter().find(|(n, _)| *n == SIGNATURE_HEADER).unwrap();
        assert_eq!(sig.1, signature(b"0123456789abcdef", &hook.body));
        assert!(hook.headers.contains(&(EVENT_ID_HEADER, "41".into())));

        let slack = outgoing(&channel(ChannelKind::Slack, None), &event(EventKind::RunFailed));
        assert_eq!(serde_json::from_slice::<Value>(&slack.body).unwrap(), json!({"text": "nightly run_failed"}));
        assert!(slack.headers.iter().all(|(n, _)| *n != SIGNATURE_HEADER));

        let am = channel(ChannelKind::Alertmanager, None);
        let firing: Value = serde_json::from_slice(&outgoing(&am, &event(EventKind::RunFailed)).body).unwrap();
        let resolved: Value = serde_json::from_slice(&outgoing(&am, &event(EventKind::Recovered)).body).unwrap();
        assert_eq!(firing[0]["labels"], resolved[0]["labels"], "the resolution ends the same alert");
        assert_eq!(firing[0]["labels"]["alertname"], "CronraftTaskFailing");
        assert!(firing[0].get("endsAt").is_none() && resolved[0]["endsAt"].is_string());
    }
}
