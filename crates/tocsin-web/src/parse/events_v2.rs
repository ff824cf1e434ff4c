//! PagerDuty Events API v2: alert events (`POST /v2/enqueue`) and change events
//! (`POST /v2/change/enqueue`).

use serde_json::{Map, Value};
use tocsin_core::{ChangeEvent, Event, EventAction, EventLink, Integration, Severity, Timestamp};

use super::fields::{
    decode_object, dedup_key, integration_key, parse_timestamp_leniently, required_action,
    severity, timestamp, truncate_chars, Object, ParseErrors, Problems, ServiceLookup,
    MAX_SUMMARY_CHARS,
};

/// The length of a `routing_key`, in characters.
pub const ROUTING_KEY_CHARS: usize = 32;

/// Parses a PagerDuty Events API v2 event (`POST /v2/enqueue`).
///
/// A trigger needs a payload with `summary`, `source` and `severity`; acknowledge and resolve
/// need a `dedup_key` and may carry a payload, which is then checked for types only. Unknown
/// fields are ignored.
pub fn parse_event_v2(
    body: &[u8],
    lookup: ServiceLookup<'_>,
    now: Timestamp,
) -> Result<Event, ParseErrors> {
    let map = decode_object(body)?;
    let root = Object::root(&map);
    let mut problems = Problems::default();

    let service = integration_key(
        &root,
        "routing_key",
        Some(ROUTING_KEY_CHARS),
        lookup,
        &mut problems,
    );
    let action = required_action(&root, "event_action", &mut problems);
    let dedup_key = dedup_key(&root, "dedup_key", action, "event_action", &mut problems);
    let payload = read_payload(&root, action, &mut problems);

    let mut details = payload.details;
    if let Some(links) = links(&root, &mut problems) {
        details.insert("links".to_owned(), links.sent);
    }
    if let Some(images) = images(&root, &mut problems) {
        details.insert("images".to_owned(), images);
    }
    for key in ["client", "client_url"] {
        if let Some(text) = root.string(key, &mut problems) {
            details.insert(key.to_owned(), Value::String(text.to_owned()));
        }
    }

    let (Some(service), Some(action), Some(dedup_key)) = (service, action, dedup_key) else {
        return Err(problems.into_errors());
    };
    let described = match action {
        EventAction::Trigger => match (payload.severity, payload.summary, payload.source) {
            (Some(severity), Some(summary), Some(source)) => Some((severity, summary, source)),
            _ => None,
        },
        EventAction::Acknowledge | EventAction::Resolve => Some((
            payload.severity.unwrap_or(Severity::Info),
            payload.summary.unwrap_or_default(),
            payload.source.unwrap_or_default(),
        )),
    };
    let Some((severity, summary, source)) = described.filter(|_| problems.is_empty()) else {
        return Err(problems.into_errors());
    };
    Ok(Event {
        service,
        integration: Integration::EventsV2,
        action,
        dedup_key,
        severity,
        summary,
        source,
        occurred_at: payload.occurred_at,
        received_at: now,
        details: Value::Object(details),
    })
}

/// Parses a PagerDuty change event (`POST /v2/change/enqueue`).
pub fn parse_change_event(
    body: &[u8],
    lookup: ServiceLookup<'_>,
    now: Timestamp,
) -> Result<ChangeEvent, ParseErrors> {
    let map = decode_object(body)?;
    let root = Object::root(&map);
    let mut problems = Problems::default();

    let service = integration_key(
        &root,
        "routing_key",
        Some(ROUTING_KEY_CHARS),
        lookup,
        &mut problems,
    );
    let payload = root.object("payload", &mut problems);
    if root.get("payload").is_none() {
        problems.required("payload");
    }
    let mut summary = None;
    let mut source = None;
    let mut occurred_at = None;
    let mut details = Map::new();
    if let Some(payload) = &payload {
        summary = payload.required_text("summary", Some(MAX_SUMMARY_CHARS), &mut problems);
        source = payload.non_empty_string("source", &mut problems);
        occurred_at = timestamp(payload, "timestamp", &mut problems);
        if let Some(custom_details) = payload.raw("custom_details") {
            details.insert("custom_details".to_owned(), custom_details);
        }
    }
    let links = links(&root, &mut problems);

    match (service, summary) {
        (Some(service), Some(summary)) if problems.is_empty() => Ok(ChangeEvent {
            service,
            summary: summary.to_owned(),
            source: source.map(str::to_owned),
            occurred_at,
            received_at: now,
            details: Value::Object(details),
            links: links.map(|links| links.parsed).unwrap_or_default(),
        }),
        _ => Err(problems.into_errors()),
    }
}

/// What a v2 payload says, as far as it could be read.
#[derive(Debug, Default)]
struct Payload {
    severity: Option<Severity>,
    summary: Option<String>,
    source: Option<String>,
    occurred_at: Option<Timestamp>,
    details: Map<String, Value>,
}

/// Reads `payload`. For a trigger (or an event whose action is unknown) it is checked fully;
/// acknowledge and resolve events may carry one, which is checked for types only.
fn read_payload(
    root: &Object<'_>,
    action: Option<EventAction>,
    problems: &mut Problems,
) -> Payload {
    let mut read = Payload::default();
    let payload = root.object("payload", problems);
    if root.get("payload").is_none() && action == Some(EventAction::Trigger) {
        problems.push("'payload' is required when 'event_action' is trigger");
    }
    let Some(payload) = payload else {
        return read;
    };

    let complete = matches!(action, Some(EventAction::Trigger) | None);
    if complete {
        read.summary = payload
            .required_text("summary", Some(MAX_SUMMARY_CHARS), problems)
            .map(str::to_owned);
        read.source = payload
            .required_text("source", None, problems)
            .map(str::to_owned);
        read.severity = severity(&payload, "severity", problems);
        if payload.get("severity").is_none() {
            problems.required(&payload.path("severity"));
        }
        read.occurred_at = timestamp(&payload, "timestamp", problems);
    } else {
        read.summary = payload
            .string("summary", problems)
            .map(|summary| truncate_chars(summary, MAX_SUMMARY_CHARS));
        read.source = payload.string("source", problems).map(str::to_owned);
        read.severity = payload
            .string("severity", problems)
            .and_then(|text| text.parse().ok());
        read.occurred_at = payload
            .string("timestamp", problems)
            .and_then(parse_timestamp_leniently);
    }

    if let Some(custom_details) = payload.raw("custom_details") {
        read.details
            .insert("custom_details".to_owned(), custom_details);
    }
    for key in ["component", "group", "class"] {
        if let Some(text) = payload.string(key, problems) {
            read.details
                .insert(key.to_owned(), Value::String(text.to_owned()));
        }
    }
    read
}

/// `links[]` as sent (for details) and as domain links.
pub(crate) struct Links {
    pub(crate) sent: Value,
    pub(crate) parsed: Vec<EventLink>,
}

/// Reads `links[]`: objects with a string `href` and an optional string `text`.
pub(crate) fn links(root: &Object<'_>, problems: &mut Problems) -> Option<Links> {
    let sent = root.raw("links")?;
    let mut parsed = Vec::new();
    root.for_each_object("links", problems, |link, problems| {
        let href = link.required_string("href", problems);
        let text = link.string("text", problems);
        if let Some(href) = href {
            parsed.push(EventLink {
                href: href.to_owned(),
                text: text.map(str::to_owned),
            });
        }
    });
    Some(Links { sent, parsed })
}

/// Reads `images[]`: objects with a string `src` and optional string `href` and `alt`. Returns
/// them as sent.
fn images(root: &Object<'_>, problems: &mut Problems) -> Option<Value> {
    let sent = root.raw("images")?;
    root.for_each_object("images", problems, |image, problems| {
        image.required_string("src", problems);
        image.string("href", problems);
        image.string("alt", problems);
    });
    Some(sent)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tocsin_core::ServiceId;

    use super::*;
    use crate::parse::testing::{lookup, now, KEY};

    fn parse(body: &Value) -> Result<Event, ParseErrors> {
        parse_event_v2(body.to_string().as_bytes(), &lookup, now())
    }

    fn errors(body: &Value) -> Vec<String> {
        parse(body).expect_err("the body should be rejected").0
    }

    fn trigger() -> Value {
        json!({
            "routing_key": KEY,
            "event_action": "trigger",
            "payload": {"summary": "Disk 99% on db1", "source": "db1", "severity": "critical"}
        })
    }

    #[test]
    fn a_minimal_trigger_gets_a_generated_uuid_dedup_key() {
        let event = parse(&trigger()).unwrap();
        assert_eq!(event.service, ServiceId::new("db"));
        assert_eq!(event.integration, Integration::EventsV2);
        assert_eq!(event.action, EventAction::Trigger);
        assert_eq!(event.severity, Severity::Critical);
        assert_eq!(event.summary, "Disk 99% on db1");
        assert_eq!(event.source, "db1");
        assert_eq!(event.occurred_at, None);
        assert_eq!(event.received_at, now());
        assert_eq!(event.details, json!({}));
        let generated = uuid::Uuid::parse_str(event.dedup_key.as_str()).unwrap();
        assert_eq!(generated.get_version_num(), 4);
        assert_eq!(event.dedup_key.as_str().len(), 36);
        assert_ne!(parse(&trigger()).unwrap().dedup_key, event.dedup_key);
    }

    #[test]
    fn a_full_trigger_keeps_everything_worth_keeping() {
        let body = json!({
            "routing_key": KEY,
            "event_action": "trigger",
            "dedup_key": "disk/db1",
            "payload": {
                "summary": "Disk 99% on db1",
                "source": "db1.example.net",
                "severity": "warning",
                "timestamp": "2026-11-22T02:20:13.977Z",
                "component": "postgres",
                "group": "prod-db",
                "class": "disk",
                "custom_details": {"free": "1%", "nested": {"a": [1, 2]}}
            },
            "images": [{"src": "https://img/1.png", "href": "https://dash", "alt": "graph"}],
            "links": [{"href": "https://runbooks/disk", "text": "Runbook"}, {"href": "https://x"}],
            "client": "Monitoring",
            "client_url": "https://monitoring.example.net",
            "some_future_field": {"ignored": true}
        });
        let event = parse(&body).unwrap();
        assert_eq!(event.dedup_key.as_str(), "disk/db1");
        assert_eq!(event.severity, Severity::Warning);
        assert_eq!(event.source, "db1.example.net");
        assert_eq!(
            event.occurred_at,
            Some("2026-11-22T02:20:13.977Z".parse().unwrap())
        );
        assert_eq!(
            event.details,
            json!({
                "custom_details": {"free": "1%", "nested": {"a": [1, 2]}},
                "component": "postgres",
                "group": "prod-db",
                "class": "disk",
                "images": [{"src": "https://img/1.png", "href": "https://dash", "alt": "graph"}],
                "links": [{"href": "https://runbooks/disk", "text": "Runbook"}, {"href": "https://x"}],
                "client": "Monitoring",
                "client_url": "https://monitoring.example.net"
            })
        );
    }

    #[test]
    fn a_routing_key_of_the_wrong_length_is_named() {
        for key in ["", "short", "0123456789abcdef0123456789abcdef0"] {
            let mut body = trigger();
            body["routing_key"] = json!(key);
            assert_eq!(
                errors(&body),
                ["Length of 'routing_key' is incorrect (should be 32 characters)"]
            );
        }
    }

    #[test]
    fn an_unknown_routing_key_is_named() {
        let mut body = trigger();
        body["routing_key"] = json!("ffffffffffffffffffffffffffffffff");
        assert_eq!(
            errors(&body),
            ["'routing_key' does not match any service's integration key"]
        );
    }

    #[test]
    fn a_missing_or_mistyped_routing_key_is_named() {
        let mut body = trigger();
        body.as_object_mut().unwrap().remove("routing_key");
        assert_eq!(errors(&body), ["'routing_key' is required"]);
        body["routing_key"] = json!(12345);
        assert_eq!(errors(&body), ["'routing_key' must be a string"]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let body = json!({
            "routing_key": "too-short",
            "event_action": "explode",
            "dedup_key": 42,
            "payload": {"summary": 7, "severity": "fatal", "timestamp": "last tuesday"},
            "links": [{"text": "no href"}],
            "images": "not a list",
            "client": false
        });
        assert_eq!(
            errors(&body),
            [
                "Length of 'routing_key' is incorrect (should be 32 characters)",
                "'event_action' must be one of trigger, acknowledge, resolve (got \"explode\")",
                "'dedup_key' must be a string",
                "'payload.summary' must be a string",
                "'payload.source' is required",
                "'payload.severity' must be one of critical, error, warning, info (got \"fatal\")",
                "'payload.timestamp' must be an ISO 8601 timestamp such as \"2026-01-31T23:59:59Z\" (got \"last tuesday\")",
                "'links[0].href' is required",
                "'images' must be an array",
                "'client' must be a string",
            ]
        );
    }

    #[test]
    fn each_payload_field_is_checked() {
        let mut body = trigger();
        body["payload"] = json!({"summary": "", "source": " ", "severity": "fatal"});
        assert_eq!(
            errors(&body),
            [
                "'payload.summary' must not be blank",
                "'payload.source' must not be blank",
                "'payload.severity' must be one of critical, error, warning, info (got \"fatal\")",
            ]
        );
        body["payload"] = json!({
            "summary": ["x"], "source": 1, "severity": null,
            "component": 1, "group": {}, "class": [], "timestamp": 1700000000
        });
        assert_eq!(
            errors(&body),
            [
                "'payload.summary' must be a string",
                "'payload.source' must be a string",
                "'payload.severity' is required",
                "'payload.timestamp' must be a string",
                "'payload.component' must be a string",
                "'payload.group' must be a string",
                "'payload.class' must be a string",
            ]
        );
    }

    #[test]
    fn a_trigger_needs_a_payload_object() {
        let mut body = trigger();
        body.as_object_mut().unwrap().remove("payload");
        assert_eq!(
            errors(&body),
            ["'payload' is required when 'event_action' is trigger"]
        );
        body["payload"] = json!("Disk full");
        assert_eq!(errors(&body), ["'payload' must be an object"]);
    }

    #[test]
    fn event_action_is_required_and_checked() {
        let mut body = trigger();
        body.as_object_mut().unwrap().remove("event_action");
        assert_eq!(errors(&body), ["'event_action' is required"]);
        body["event_action"] = json!("Trigger");
        assert_eq!(
            errors(&body),
            ["'event_action' must be one of trigger, acknowledge, resolve (got \"Trigger\")"]
        );
    }

    #[test]
    fn summaries_are_limited_to_1024_characters() {
        let mut body = trigger();
        body["payload"]["summary"] = json!("é".repeat(1024));
        assert_eq!(parse(&body).unwrap().summary.chars().count(), 1024);
        body["payload"]["summary"] = json!("é".repeat(1025));
        assert_eq!(
            errors(&body),
            ["'payload.summary' must be at most 1024 characters (got 1025)"]
        );
    }

    #[test]
    fn a_python_style_timestamp_with_offset_and_zulu_is_accepted() {
        let mut body = trigger();
        body["payload"]["timestamp"] = json!("2026-11-22T02:20:13.123456+00:00Z");
        let event = parse(&body).unwrap();
        assert_eq!(
            event.occurred_at,
            Some("2026-11-22T02:20:13.123456Z".parse().unwrap())
        );
        body["payload"]["timestamp"] = json!("2026-11-22T02:20:13");
        assert_eq!(
            parse(&body).unwrap().occurred_at,
            Some("2026-11-22T02:20:13Z".parse().unwrap())
        );
    }

    #[test]
    fn dedup_keys_are_limited_to_255_characters_never_truncated() {
        let mut body = trigger();
        body["dedup_key"] = json!("k".repeat(255));
        assert_eq!(parse(&body).unwrap().dedup_key.as_str(), "k".repeat(255));
        body["dedup_key"] = json!("ü".repeat(255));
        assert_eq!(parse(&body).unwrap().dedup_key.as_str(), "ü".repeat(255));
        body["dedup_key"] = json!("k".repeat(256));
        assert_eq!(
            errors(&body),
            ["'dedup_key' is 256 characters long; the limit is 255"]
        );
        body["dedup_key"] = json!("a\nb");
        assert_eq!(
            errors(&body),
            ["'dedup_key' must not contain control characters"]
        );
    }

    #[test]
    fn a_trigger_with_an_empty_or_null_dedup_key_gets_one_generated() {
        for dedup_key in [json!(""), Value::Null] {
            let mut body = trigger();
            body["dedup_key"] = dedup_key;
            let event = parse(&body).unwrap();
            assert!(uuid::Uuid::parse_str(event.dedup_key.as_str()).is_ok());
        }
    }

    #[test]
    fn acknowledge_and_resolve_need_a_dedup_key() {
        let body = json!({"routing_key": KEY, "event_action": "resolve"});
        assert_eq!(
            errors(&body),
            ["'dedup_key' is required when 'event_action' is resolve"]
        );
        let body = json!({"routing_key": KEY, "event_action": "acknowledge", "dedup_key": ""});
        assert_eq!(errors(&body), ["'dedup_key' must not be empty"]);
    }

    #[test]
    fn acknowledge_without_a_payload_gets_neutral_values() {
        let body = json!({"routing_key": KEY, "event_action": "acknowledge", "dedup_key": "k1"});
        let event = parse(&body).unwrap();
        assert_eq!(event.action, EventAction::Acknowledge);
        assert_eq!(event.dedup_key.as_str(), "k1");
        assert_eq!(event.severity, Severity::Info);
        assert_eq!(event.summary, "");
        assert_eq!(event.source, "");
        assert_eq!(event.details, json!({}));
    }

    #[test]
    fn acknowledge_with_a_payload_is_accepted_and_checked_for_types_only() {
        let body = json!({
            "routing_key": KEY,
            "event_action": "acknowledge",
            "dedup_key": "k1",
            "payload": {"summary": "looking", "severity": "not-a-severity", "timestamp": "soon",
                        "custom_details": {"by": "alice"}}
        });
        let event = parse(&body).unwrap();
        assert_eq!(event.action, EventAction::Acknowledge);
        assert_eq!(event.summary, "looking");
        assert_eq!(event.source, "");
        assert_eq!(event.severity, Severity::Info);
        assert_eq!(event.occurred_at, None);
        assert_eq!(event.details, json!({"custom_details": {"by": "alice"}}));

        let body = json!({
            "routing_key": KEY,
            "event_action": "acknowledge",
            "dedup_key": "k1",
            "payload": {"summary": 1, "severity": "critical", "source": "db1"}
        });
        assert_eq!(errors(&body), ["'payload.summary' must be a string"]);
        let body = json!({"routing_key": KEY, "event_action": "resolve", "dedup_key": "k1",
                          "payload": []});
        assert_eq!(errors(&body), ["'payload' must be an object"]);
    }

    #[test]
    fn images_and_links_are_checked_item_by_item() {
        let mut body = trigger();
        body["images"] = json!([{"src": "a"}, {"href": "b"}, "c", {"src": 1, "alt": 2}]);
        body["links"] = json!([{"href": 1, "text": []}, {"href": "ok"}]);
        assert_eq!(
            errors(&body),
            [
                "'links[0].href' must be a string",
                "'links[0].text' must be a string",
                "'images[1].src' is required",
                "'images[2]' must be an object",
                "'images[3].src' must be a string",
                "'images[3].alt' must be a string",
            ]
        );
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_rejected() {
        assert_eq!(
            parse_event_v2(b"{\"routing_key\": \"\xc3\x28\"}", &lookup, now())
                .unwrap_err()
                .0,
            ["body is not valid UTF-8 (at byte 17)"]
        );
        let malformed = parse_event_v2(b"{\"routing_key\": ", &lookup, now()).unwrap_err();
        assert_eq!(malformed.0.len(), 1);
        assert!(
            malformed.0[0].starts_with("body is not valid JSON: EOF while parsing"),
            "{malformed}"
        );
        for (body, kind) in [
            ("[]", "an array"),
            ("null", "null"),
            ("42", "a number"),
            ("true", "a boolean"),
        ] {
            assert_eq!(
                parse_event_v2(body.as_bytes(), &lookup, now())
                    .unwrap_err()
                    .0,
                [format!("body must be a JSON object (got {kind})")]
            );
        }
    }

    fn fixture_bodies(path: &str) -> Vec<Value> {
        include_str!("testdata/alertmanager-0.25.jsonl")
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|request| request["path"] == path)
            .map(|request| serde_json::from_str(request["body"].as_str().unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn alertmanager_pagerduty_receiver_events_parse() {
        let bodies = fixture_bodies("/v2/enqueue");
        assert_eq!(bodies.len(), 2);
        let events: Vec<Event> = bodies.iter().map(|body| parse(body).unwrap()).collect();
        let hash = "94643ba4e872e5c956190c10659a123e9bbe9a72662543f6f195dae92694675b";
        assert_eq!(events[0].action, EventAction::Trigger);
        assert_eq!(events[0].dedup_key.as_str(), hash);
        assert_eq!(events[0].severity, Severity::Critical);
        assert_eq!(events[0].source, "Alertmanager");
        assert_eq!(
            events[0].summary,
            "[FIRING:1] DiskFull db (db1:9100 critical)"
        );
        assert_eq!(events[0].details["client"], "Alertmanager");
        assert_eq!(events[0].details["custom_details"]["num_firing"], "1");
        // Alertmanager sends the payload on resolve too.
        assert_eq!(events[1].action, EventAction::Resolve);
        assert_eq!(events[1].dedup_key.as_str(), hash);
    }

    fn change() -> Value {
        json!({
            "routing_key": KEY,
            "payload": {
                "summary": "Deployed v1.4.2",
                "source": "ci",
                "timestamp": "2026-11-22T02:00:00+00:00Z",
                "custom_details": {"commit": "abc123"}
            },
            "links": [{"href": "https://ci/builds/7", "text": "Build 7"}, {"href": "https://git/abc123"}]
        })
    }

    #[test]
    fn a_change_event_parses_with_its_links() {
        let body = change().to_string();
        let change = parse_change_event(body.as_bytes(), &lookup, now()).unwrap();
        assert_eq!(
            change,
            ChangeEvent {
                service: ServiceId::new("db"),
                summary: "Deployed v1.4.2".to_owned(),
                source: Some("ci".to_owned()),
                occurred_at: Some("2026-11-22T02:00:00Z".parse().unwrap()),
                received_at: now(),
                details: json!({"custom_details": {"commit": "abc123"}}),
                links: vec![
                    EventLink {
                        href: "https://ci/builds/7".to_owned(),
                        text: Some("Build 7".to_owned())
                    },
                    EventLink {
                        href: "https://git/abc123".to_owned(),
                        text: None
                    },
                ],
            }
        );
        let minimal = json!({"routing_key": KEY, "payload": {"summary": "Flag on"}}).to_string();
        let change = parse_change_event(minimal.as_bytes(), &lookup, now()).unwrap();
        assert_eq!(change.source, None);
        assert_eq!(change.links, []);
        assert_eq!(change.details, json!({}));
    }

    #[test]
    fn a_change_event_reports_every_problem() {
        let check = |body: Value| {
            parse_change_event(body.to_string().as_bytes(), &lookup, now())
                .unwrap_err()
                .0
        };
        assert_eq!(
            check(json!({"routing_key": "x"})),
            [
                "Length of 'routing_key' is incorrect (should be 32 characters)",
                "'payload' is required",
            ]
        );
        assert_eq!(
            check(json!({
                "routing_key": KEY,
                "payload": {"summary": "x".repeat(1025), "source": 3, "timestamp": "noon"},
                "links": [{"text": "no href"}]
            })),
            [
                "'payload.summary' must be at most 1024 characters (got 1025)",
                "'payload.source' must be a string",
                "'payload.timestamp' must be an ISO 8601 timestamp such as \"2026-01-31T23:59:59Z\" (got \"noon\")",
                "'links[0].href' is required",
            ]
        );
        assert_eq!(
            check(json!({"routing_key": KEY, "payload": {}})),
            ["'payload.summary' is required"]
        );
    }
}
