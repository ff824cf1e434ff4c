//! PagerDuty's legacy generic events API v1 (`POST /generic/2010-04-15/create_event.json`).

use serde_json::{Map, Value};
use tocsin_core::{Event, EventAction, Integration, Severity, Timestamp};

use super::fields::{
    decode_object, dedup_key, integration_key, required_action, truncate_chars, Object,
    ParseErrors, Problems, ServiceLookup, MAX_SUMMARY_CHARS,
};

/// The source of a v1 trigger that names no `client`.
pub const V1_DEFAULT_SOURCE: &str = "events-api-v1";

/// Parses a legacy v1 event: `service_key`, `event_type` (trigger, acknowledge or resolve),
/// `incident_key` (the dedup key), `description`, `details`, `client`, `client_url`.
///
/// v1 has no severity: triggers are `error`. The source is the `client` when given. v1 events
/// come in through the same door as v2, so they are tagged [`Integration::EventsV2`].
pub fn parse_event_v1(
    body: &[u8],
    lookup: ServiceLookup<'_>,
    now: Timestamp,
) -> Result<Event, ParseErrors> {
    let map = decode_object(body)?;
    let root = Object::root(&map);
    let mut problems = Problems::default();

    let service = integration_key(&root, "service_key", None, lookup, &mut problems);
    let action = required_action(&root, "event_type", &mut problems);
    let dedup_key = dedup_key(&root, "incident_key", action, "event_type", &mut problems);
    let description = match action {
        Some(EventAction::Trigger) | None => root
            .required_text("description", Some(MAX_SUMMARY_CHARS), &mut problems)
            .map(str::to_owned),
        Some(EventAction::Acknowledge | EventAction::Resolve) => root
            .string("description", &mut problems)
            .map(|text| truncate_chars(text, MAX_SUMMARY_CHARS)),
    };

    let mut details = Map::new();
    if let Some(sent) = root.raw("details") {
        details.insert("details".to_owned(), sent);
    }
    let client = root.string("client", &mut problems);
    let client_url = root.string("client_url", &mut problems);
    for (key, text) in [("client", client), ("client_url", client_url)] {
        if let Some(text) = text {
            details.insert(key.to_owned(), Value::String(text.to_owned()));
        }
    }
    if let Some(contexts) = root.array("contexts", &mut problems) {
        details.insert("contexts".to_owned(), Value::Array(contexts.to_vec()));
    }

    let (Some(service), Some(action), Some(dedup_key)) = (service, action, dedup_key) else {
        return Err(problems.into_errors());
    };
    let (severity, summary, source) = match action {
        EventAction::Trigger => match description {
            Some(description) => (
                Severity::Error,
                description,
                client
                    .filter(|client| !client.is_empty())
                    .unwrap_or(V1_DEFAULT_SOURCE)
                    .to_owned(),
            ),
            None => return Err(problems.into_errors()),
        },
        EventAction::Acknowledge | EventAction::Resolve => (
            Severity::Info,
            description.unwrap_or_default(),
            String::new(),
        ),
    };
    if !problems.is_empty() {
        return Err(problems.into_errors());
    }
    Ok(Event {
        service,
        integration: Integration::EventsV2,
        action,
        dedup_key,
        severity,
        summary,
        source,
        occurred_at: None,
        received_at: now,
        details: Value::Object(details),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tocsin_core::ServiceId;

    use super::*;
    use crate::parse::testing::{lookup, now, KEY};

    fn parse(body: Value) -> Result<Event, ParseErrors> {
        parse_event_v1(body.to_string().as_bytes(), &lookup, now())
    }

    #[test]
    fn a_v1_trigger_parses() {
        let event = parse(json!({
            "service_key": KEY,
            "event_type": "trigger",
            "incident_key": "srv01/HTTP",
            "description": "FAILURE for production/HTTP on machine srv01.acme.com",
            "client": "Sample Monitoring Service",
            "client_url": "https://monitoring.service.com",
            "details": {"ping time": "1500ms", "load avg": 0.75}
        }))
        .unwrap();
        assert_eq!(event.service, ServiceId::new("db"));
        assert_eq!(event.action, EventAction::Trigger);
        assert_eq!(event.dedup_key.as_str(), "srv01/HTTP");
        assert_eq!(event.severity, Severity::Error);
        assert_eq!(
            event.summary,
            "FAILURE for production/HTTP on machine srv01.acme.com"
        );
        assert_eq!(event.source, "Sample Monitoring Service");
        assert_eq!(
            event.details,
            json!({
                "details": {"ping time": "1500ms", "load avg": 0.75},
                "client": "Sample Monitoring Service",
                "client_url": "https://monitoring.service.com"
            })
        );
    }

    #[test]
    fn a_v1_trigger_without_an_incident_key_gets_one() {
        let event = parse(json!({
            "service_key": KEY, "event_type": "trigger", "description": "down"
        }))
        .unwrap();
        assert!(uuid::Uuid::parse_str(event.dedup_key.as_str()).is_ok());
        assert_eq!(event.source, V1_DEFAULT_SOURCE);
    }

    #[test]
    fn a_v1_resolve_needs_only_the_incident_key() {
        let event = parse(json!({
            "service_key": KEY, "event_type": "resolve", "incident_key": "srv01/HTTP"
        }))
        .unwrap();
        assert_eq!(event.action, EventAction::Resolve);
        assert_eq!(event.severity, Severity::Info);
        assert_eq!(event.summary, "");
        assert_eq!(
            parse(json!({"service_key": KEY, "event_type": "acknowledge"}))
                .unwrap_err()
                .0,
            ["'incident_key' is required when 'event_type' is acknowledge"]
        );
    }

    #[test]
    fn a_v1_event_reports_every_problem() {
        assert_eq!(
            parse(json!({
                "service_key": "nope",
                "event_type": "page",
                "incident_key": 3,
                "description": "",
                "client": 1,
                "contexts": {}
            }))
            .unwrap_err()
            .0,
            [
                "'service_key' does not match any service's integration key",
                "'event_type' must be one of trigger, acknowledge, resolve (got \"page\")",
                "'incident_key' must be a string",
                "'description' must not be blank",
                "'client' must be a string",
                "'contexts' must be an array",
            ]
        );
        assert_eq!(
            parse(json!({})).unwrap_err().0,
            [
                "'service_key' is required",
                "'event_type' is required",
                "'description' is required",
            ]
        );
    }
}
