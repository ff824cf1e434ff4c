//! Properties every parser keeps: no input makes one panic, a rejection always says why, and a
//! valid event comes out as it went in.

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};
use tocsin_core::{EventAction, ServiceId, Severity, Timestamp};

use super::fields::parse_timestamp_leniently;
use super::testing::now;
use super::*;

/// Field names the parsers read, so that generated bodies reach past the first checks.
const KNOWN_KEYS: &[&str] = &[
    "routing_key",
    "event_action",
    "dedup_key",
    "payload",
    "summary",
    "source",
    "severity",
    "timestamp",
    "component",
    "group",
    "class",
    "custom_details",
    "images",
    "links",
    "src",
    "href",
    "text",
    "alt",
    "client",
    "client_url",
    "service_key",
    "event_type",
    "incident_key",
    "description",
    "details",
    "contexts",
    "action",
    "version",
    "status",
    "alerts",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
    "receiver",
    "externalURL",
    "groupKey",
    "title",
    "orgId",
    "values",
    "valueString",
    "dashboardURL",
    "panelURL",
    "silenceURL",
    "imageURL",
    "alertname",
    "instance",
    "job",
];

/// Values the parsers give meaning to.
const KNOWN_STRINGS: &[&str] = &[
    "0123456789abcdef0123456789abcdef",
    "trigger",
    "acknowledge",
    "resolve",
    "firing",
    "resolved",
    "critical",
    "error",
    "warning",
    "info",
    "page",
    "none",
    "4",
    "1",
    "",
    " ",
    "2026-11-22T02:20:13.97704578Z",
    "2026-11-22T02:20:13+00:00Z",
    "2026-11-22T02:20:13",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "-009999-01-01T00:00:00Z",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(KNOWN_KEYS).prop_map(str::to_owned),
        1 => ".{0,8}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(KNOWN_STRINGS).prop_map(str::to_owned),
        1 => ".{0,40}",
        1 => "\\PC{250,300}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("JSON numbers are finite", |number| {
            serde_json::Number::from_f64(number).map(Value::Number)
        }),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// The same value with every NUL character taken out of its strings and keys: bodies holding
/// one are refused, so a round trip needs values without.
fn without_nul(value: Value) -> Value {
    match value {
        Value::String(text) => Value::String(text.replace('\0', "")),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nul).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| (key.replace('\0', ""), without_nul(value)))
                .collect(),
        ),
        other => other,
    }
}

fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((key(), json_value()), 0..12)
        .prop_map(|fields| Value::Object(fields.into_iter().collect()))
}

fn any_service(_key: &str) -> Option<ServiceId> {
    Some(ServiceId::new("any"))
}

fn no_service(_key: &str) -> Option<ServiceId> {
    None
}

/// Runs every parser on a body; each must either succeed or say why not.
fn run_every_parser(body: &[u8]) {
    let service = ServiceId::new("any");
    let explained = |errors: &ParseErrors| !errors.0.is_empty();
    for lookup in [&any_service as ServiceLookup<'_>, &no_service] {
        if let Err(errors) = parse_event_v2(body, lookup, now()) {
            assert!(explained(&errors));
        }
        if let Err(errors) = parse_change_event(body, lookup, now()) {
            assert!(explained(&errors));
        }
        if let Err(errors) = parse_event_v1(body, lookup, now()) {
            assert!(explained(&errors));
        }
    }
    if let Err(errors) = parse_alertmanager(body, &service, now()) {
        assert!(explained(&errors));
    }
    if let Err(errors) = parse_grafana(body, &service, now()) {
        assert!(explained(&errors));
    }
    if let Err(errors) = parse_generic(body, &service, now()) {
        assert!(explained(&errors));
    }
}

proptest! {
    // A failing case is saved next to this file, so it is replayed first on the next run.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_parser_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        run_every_parser(&body);
        let _ = verify_grafana_signature(b"secret", &body, "00", None);
    }

    #[test]
    fn no_parser_panics_on_arbitrary_json(value in json_value()) {
        run_every_parser(value.to_string().as_bytes());
    }

    #[test]
    fn no_parser_panics_on_arbitrary_json_objects(value in json_object()) {
        run_every_parser(value.to_string().as_bytes());
    }

    #[test]
    fn no_parser_panics_on_alert_groups_of_arbitrary_alerts(
        alerts in prop::collection::vec(json_object(), 0..4),
        version in select(&["4", "1"][..]),
    ) {
        let body = json!({"version": version, "status": "firing", "alerts": alerts});
        run_every_parser(body.to_string().as_bytes());
    }

    #[test]
    fn no_parser_panics_on_v2_events_with_arbitrary_payloads(
        action in select(&["trigger", "acknowledge", "resolve"][..]),
        payload in json_object(),
        dedup_key in json_value(),
    ) {
        let body = json!({
            "routing_key": "0123456789abcdef0123456789abcdef",
            "event_action": action,
            "dedup_key": dedup_key,
            "payload": payload,
        });
        run_every_parser(body.to_string().as_bytes());
    }

    #[test]
    fn signature_checks_never_panic(
        secret in prop::collection::vec(any::<u8>(), 0..80),
        body in prop::collection::vec(any::<u8>(), 0..80),
        signature in ".{0,80}",
        timestamp in prop::option::of(".{0,12}"),
    ) {
        let _ = verify_grafana_signature(&secret, &body, &signature, timestamp.as_deref());
    }

    #[test]
    fn a_valid_v2_trigger_round_trips(
        summary in "[^\\s\\p{C}]\\PC{0,1023}",
        source in "[^\\s\\p{C}]\\PC{0,80}",
        severity in select(&[Severity::Critical, Severity::Error, Severity::Warning, Severity::Info][..]),
        dedup_key in "\\PC{1,255}",
        custom_details in json_object().prop_map(without_nul),
    ) {
        let body = json!({
            "routing_key": "0123456789abcdef0123456789abcdef",
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": {
                "summary": summary,
                "source": source,
                "severity": severity.as_str(),
                "custom_details": custom_details,
            }
        });
        let sent = body.to_string();
        // What the custom details are once through JSON text (floats may not survive exactly).
        let expected: Value = serde_json::from_str(&sent).unwrap();
        let event = parse_event_v2(sent.as_bytes(), &any_service, now()).unwrap();
        prop_assert_eq!(event.action, EventAction::Trigger);
        prop_assert_eq!(event.summary, summary);
        prop_assert_eq!(event.source, source);
        prop_assert_eq!(event.severity, severity);
        prop_assert_eq!(event.dedup_key.as_str(), dedup_key);
        prop_assert_eq!(&event.details["custom_details"], &expected["payload"]["custom_details"]);
        prop_assert_eq!(event.received_at, now());
    }

    #[test]
    fn timestamps_round_trip_in_every_accepted_form(
        second in -62_135_596_800_i64..253_402_300_799,
        nanosecond in 0_i32..1_000_000_000,
        form in 0_usize..4,
    ) {
        let timestamp = Timestamp::new(second, nanosecond).unwrap();
        let zulu = timestamp.to_string();
        let bare = zulu.trim_end_matches('Z');
        let text = match form {
            0 => zulu.clone(),
            1 => format!("{bare}+00:00"),
            2 => format!("{bare}+00:00Z"),
            _ => bare.to_owned(),
        };
        prop_assert_eq!(parse_timestamp_leniently(&text), Some(timestamp), "{}", text);
    }
}
