//! Tocsin's own generic JSON endpoint (`POST /integrations/generic/<key>`), for senders that
//! speak no established format: a shell script with curl, a cron job, a small service.

use serde_json::{Map, Value};
use tocsin_core::{Event, EventAction, Integration, ServiceId, Severity, Timestamp};

use super::fields::{
    check_length, decode_object, dedup_key, parse_action, severity, timestamp, Object, ParseErrors,
    Problems, ACTIONS_ALLOWED, MAX_SUMMARY_CHARS,
};

/// The source of a generic event that names none.
pub const GENERIC_DEFAULT_SOURCE: &str = "generic";

/// Parses a generic event:
///
/// ```json
/// {"action": "trigger", "dedup_key": "backup/db1", "severity": "error",
///  "summary": "Nightly backup failed", "source": "cron@db1",
///  "timestamp": "2026-01-31T02:00:00Z", "details": {"exit_status": 2}}
/// ```
///
/// `action` defaults to trigger, `severity` to error, `source` to "generic". `summary` is
/// required for a trigger and `dedup_key` for acknowledge and resolve; a trigger without one
/// gets a generated key.
pub fn parse_generic(
    body: &[u8],
    service: &ServiceId,
    now: Timestamp,
) -> Result<Event, ParseErrors> {
    let map = decode_object(body)?;
    let root = Object::root(&map);
    let mut problems = Problems::default();

    let action = match root.string("action", &mut problems) {
        None if root.get("action").is_some() => None,
        None => Some(EventAction::Trigger),
        Some(text) => {
            let action = parse_action(text);
            if action.is_none() {
                problems.not_one_of("action", ACTIONS_ALLOWED, text);
            }
            action
        }
    };
    let dedup_key = dedup_key(&root, "dedup_key", action, "action", &mut problems);
    let severity = severity(&root, "severity", &mut problems);
    let summary = match action {
        Some(EventAction::Trigger) | None => {
            root.required_text("summary", Some(MAX_SUMMARY_CHARS), &mut problems)
        }
        Some(EventAction::Acknowledge | EventAction::Resolve) => {
            root.string("summary", &mut problems).filter(|summary| {
                check_length("summary", summary, MAX_SUMMARY_CHARS, &mut problems).is_some()
            })
        }
    };
    let source = root.non_empty_string("source", &mut problems);
    let occurred_at = timestamp(&root, "timestamp", &mut problems);
    let details = match root.object("details", &mut problems) {
        Some(details) => details.as_value(),
        None => Value::Object(Map::new()),
    };

    let (Some(action), Some(dedup_key)) = (action, dedup_key) else {
        return Err(problems.into_errors());
    };
    if !problems.is_empty() || (action == EventAction::Trigger && summary.is_none()) {
        return Err(problems.into_errors());
    }
    let default_severity = match action {
        EventAction::Trigger => Severity::Error,
        EventAction::Acknowledge | EventAction::Resolve => Severity::Info,
    };
    Ok(Event {
        service: service.clone(),
        integration: Integration::Generic,
        action,
        dedup_key,
        severity: severity.unwrap_or(default_severity),
        summary: summary.unwrap_or_default().to_owned(),
        source: source.unwrap_or(GENERIC_DEFAULT_SOURCE).to_owned(),
        occurred_at,
        received_at: now,
        details,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::parse::testing::now;

    fn service() -> ServiceId {
        ServiceId::new("backups")
    }

    fn parse(body: Value) -> Result<Event, ParseErrors> {
        parse_generic(body.to_string().as_bytes(), &service(), now())
    }

    #[test]
    fn a_bare_summary_is_a_trigger_with_defaults() {
        let event = parse(json!({"summary": "Nightly backup failed"})).unwrap();
        assert_eq!(event.service, service());
        assert_eq!(event.integration, Integration::Generic);
        assert_eq!(event.action, EventAction::Trigger);
        assert_eq!(event.severity, Severity::Error);
        assert_eq!(event.summary, "Nightly backup failed");
        assert_eq!(event.source, "generic");
        assert_eq!(event.occurred_at, None);
        assert_eq!(event.received_at, now());
        assert_eq!(event.details, json!({}));
        assert!(uuid::Uuid::parse_str(event.dedup_key.as_str()).is_ok());
    }

    #[test]
    fn a_full_generic_event_keeps_what_was_sent() {
        let event = parse(json!({
            "action": "trigger",
            "dedup_key": "backup/db1",
            "severity": "warning",
            "summary": "Nightly backup slow",
            "source": "cron@db1",
            "timestamp": "2026-11-22T02:00:00+01:00",
            "details": {"exit_status": 0, "duration_s": 7200}
        }))
        .unwrap();
        assert_eq!(event.dedup_key.as_str(), "backup/db1");
        assert_eq!(event.severity, Severity::Warning);
        assert_eq!(event.source, "cron@db1");
        assert_eq!(
            event.occurred_at,
            Some("2026-11-22T01:00:00Z".parse().unwrap())
        );
        assert_eq!(event.details, json!({"exit_status": 0, "duration_s": 7200}));
    }

    #[test]
    fn a_generic_resolve_needs_a_dedup_key_only() {
        let event = parse(json!({"action": "resolve", "dedup_key": "backup/db1"})).unwrap();
        assert_eq!(event.action, EventAction::Resolve);
        assert_eq!(event.severity, Severity::Info);
        assert_eq!(event.summary, "");
        assert_eq!(
            parse(json!({"action": "acknowledge"})).unwrap_err().0,
            ["'dedup_key' is required when 'action' is acknowledge"]
        );
    }

    #[test]
    fn a_generic_event_reports_every_problem() {
        assert_eq!(
            parse(json!({
                "action": "page",
                "dedup_key": "d".repeat(256),
                "severity": "high",
                "source": 1,
                "timestamp": "tomorrow",
                "details": "none"
            }))
            .unwrap_err()
            .0,
            [
                "'action' must be one of trigger, acknowledge, resolve (got \"page\")",
                "'dedup_key' is 256 characters long; the limit is 255",
                "'severity' must be one of critical, error, warning, info (got \"high\")",
                "'summary' is required",
                "'source' must be a string",
                "'timestamp' must be an ISO 8601 timestamp such as \"2026-01-31T23:59:59Z\" (got \"tomorrow\")",
                "'details' must be an object",
            ]
        );
        assert_eq!(
            parse(json!({"summary": "s".repeat(1025)})).unwrap_err().0,
            ["'summary' must be at most 1024 characters (got 1025)"]
        );
        assert_eq!(
            parse(json!({"action": "resolve", "dedup_key": "k", "summary": "s".repeat(1025)}))
                .unwrap_err()
                .0,
            ["'summary' must be at most 1024 characters (got 1025)"]
        );
        assert_eq!(
            parse(json!({"action": 1, "summary": "x"})).unwrap_err().0,
            ["'action' must be a string"]
        );
    }
}
