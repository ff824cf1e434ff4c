//! Prometheus Alertmanager's webhook (version "4"), and the reading of the alert-group shape it
//! shares with Grafana's webhook contact point.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tocsin_core::{DedupKey, Event, EventAction, Integration, ServiceId, Severity, Timestamp};

use super::fields::{
    decode_object, echo, timestamp, truncate_chars, Object, ParseErrors, Problems,
    MAX_SUMMARY_CHARS,
};

/// Parses an Alertmanager webhook notification into one event per alert: `firing` alerts
/// trigger, `resolved` ones resolve. The service comes from the URL the notification was sent
/// to. An empty `alerts` array yields no events.
///
/// The dedup key is the alert's `fingerprint`, else a hash of its label set; the severity comes
/// from the `severity` label; the summary from the `summary` or `description` annotation, else
/// the alert name; the source from the `instance` or `job` label, else the external URL.
pub fn parse_alertmanager(
    body: &[u8],
    service: &ServiceId,
    now: Timestamp,
) -> Result<Vec<Event>, ParseErrors> {
    parse_alert_group(body, service, now, Flavour::Alertmanager)
}

/// Maps a `severity` label to a severity. Unknown values are `error`, as are alerts without
/// the label.
pub fn severity_from_label(label: Option<&str>) -> Severity {
    let Some(label) = label else {
        return Severity::Error;
    };
    match label.trim().to_ascii_lowercase().as_str() {
        "critical" | "page" => Severity::Critical,
        "error" => Severity::Error,
        "warning" => Severity::Warning,
        "info" | "none" => Severity::Info,
        _ => Severity::Error,
    }
}

/// The dedup key of an alert without a fingerprint: the first 32 hex digits of the SHA-256 of
/// its label set, sorted by name and written as a JSON object (which, unlike `name=value`
/// lines, cannot make two label sets collide through a value containing a separator).
pub fn label_set_dedup_key(labels: &BTreeMap<&str, &str>) -> DedupKey {
    let encoded = serde_json::to_string(labels).unwrap_or_default();
    let digest = hex::encode(Sha256::digest(encoded.as_bytes()));
    DedupKey::parse(&digest[..32]).expect("32 hex digits are a valid dedup key")
}

/// Which sender's variant of the alert-group shape is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    Alertmanager,
    Grafana,
}

impl Flavour {
    fn version(self) -> &'static str {
        match self {
            Flavour::Alertmanager => "4",
            Flavour::Grafana => "1",
        }
    }

    fn webhook(self) -> &'static str {
        match self {
            Flavour::Alertmanager => "an Alertmanager webhook",
            Flavour::Grafana => "a Grafana webhook",
        }
    }

    fn integration(self) -> Integration {
        match self {
            Flavour::Alertmanager => Integration::Alertmanager,
            Flavour::Grafana => Integration::Grafana,
        }
    }

    fn default_source(self) -> &'static str {
        match self {
            Flavour::Alertmanager => "alertmanager",
            Flavour::Grafana => "grafana",
        }
    }
}

/// The group-level fields every alert of a notification shares.
struct Group<'v> {
    flavour: Flavour,
    status: Option<EventAction>,
    receiver: Option<&'v str>,
    external_url: Option<&'v str>,
    group_key: Option<&'v str>,
    title: Option<&'v str>,
    org_id: Option<&'v Value>,
}

pub(crate) fn parse_alert_group(
    body: &[u8],
    service: &ServiceId,
    now: Timestamp,
    flavour: Flavour,
) -> Result<Vec<Event>, ParseErrors> {
    let map = decode_object(body)?;
    let root = Object::root(&map);
    let mut problems = Problems::default();

    check_version(&root, flavour, &mut problems);
    let group = Group {
        flavour,
        status: root.string("status", &mut problems).and_then(status_action),
        receiver: root.non_empty_string("receiver", &mut problems),
        external_url: root.non_empty_string("externalURL", &mut problems),
        group_key: root.non_empty_string("groupKey", &mut problems),
        title: match flavour {
            Flavour::Grafana => root.non_empty_string("title", &mut problems),
            Flavour::Alertmanager => None,
        },
        org_id: match flavour {
            Flavour::Grafana => root.number("orgId", &mut problems),
            Flavour::Alertmanager => None,
        },
    };
    if root.get("alerts").is_none() {
        problems.required("alerts");
    }
    let mut events = Vec::new();
    root.for_each_object("alerts", &mut problems, |alert, problems| {
        events.push(parse_alert(&alert, &group, service, now, problems));
    });

    if !problems.is_empty() {
        return Err(problems.into_errors());
    }
    events
        .into_iter()
        .collect::<Option<Vec<Event>>>()
        .ok_or_else(|| problems.into_errors())
}

fn check_version(root: &Object<'_>, flavour: Flavour, problems: &mut Problems) {
    let Some(version) = root.get("version") else {
        // Hand-written senders and a few proxies leave it out.
        return;
    };
    let expected = flavour.version();
    if version.as_str() == Some(expected) {
        return;
    }
    let got = match version {
        Value::String(text) => echo(text),
        other => truncate_chars(&other.to_string(), 64),
    };
    let hint = match (flavour, version.as_str()) {
        (Flavour::Alertmanager, Some("1")) => {
            "; this looks like a Grafana notification: use a Grafana integration"
        }
        (Flavour::Grafana, Some("4")) => {
            "; this looks like an Alertmanager notification: use an Alertmanager integration"
        }
        _ => "",
    };
    problems.push(format!(
        "'version' must be \"{expected}\" for {} (got {got}){hint}",
        flavour.webhook()
    ));
}

fn status_action(status: &str) -> Option<EventAction> {
    match status {
        "firing" => Some(EventAction::Trigger),
        "resolved" => Some(EventAction::Resolve),
        _ => None,
    }
}

/// Reads an object whose values must all be strings (labels, annotations).
fn string_map<'v>(
    alert: &Object<'v>,
    key: &str,
    problems: &mut Problems,
) -> Option<BTreeMap<&'v str, &'v str>> {
    let object = alert.object(key, problems)?;
    let mut strings = BTreeMap::new();
    for (name, value) in object.entries() {
        match value {
            Value::String(text) => {
                strings.insert(name.as_str(), text.as_str());
            }
            _ => problems.wrong_type(&object.path(name), "a string"),
        }
    }
    Some(strings)
}

/// Go's zero time, which Alertmanager sends as `endsAt` for "no end".
fn is_zero_time(timestamp: Timestamp) -> bool {
    timestamp.as_second() <= -62_135_596_800
}

fn parse_alert(
    alert: &Object<'_>,
    group: &Group<'_>,
    service: &ServiceId,
    now: Timestamp,
    problems: &mut Problems,
) -> Option<Event> {
    let flavour = group.flavour;
    let status_path = alert.path("status");
    let action = match alert.string("status", problems) {
        Some(status) => {
            let action = status_action(status);
            if action.is_none() {
                problems.not_one_of(&status_path, "firing, resolved", status);
            }
            action
        }
        None if alert.get("status").is_some() => None,
        None => {
            if group.status.is_none() {
                problems.required(&status_path);
            }
            group.status
        }
    };
    let labels = string_map(alert, "labels", problems);
    let annotations = string_map(alert, "annotations", problems);
    let starts_at = timestamp(alert, "startsAt", problems).filter(|at| !is_zero_time(*at));
    let ends_at = timestamp(alert, "endsAt", problems)
        .filter(|at| !is_zero_time(*at))
        .and_then(|_| alert.get("endsAt").and_then(Value::as_str));
    let generator_url = alert.non_empty_string("generatorURL", problems);
    let fingerprint = alert.non_empty_string("fingerprint", problems);

    let empty = BTreeMap::new();
    let label_values = labels.as_ref().unwrap_or(&empty);
    let annotation_values = annotations.as_ref().unwrap_or(&empty);
    let dedup_key = match fingerprint {
        Some(fingerprint) => match DedupKey::parse(fingerprint) {
            Ok(dedup_key) => Some(dedup_key),
            Err(error) => {
                problems.push(format!("'{}' {error}", alert.path("fingerprint")));
                None
            }
        },
        None => Some(label_set_dedup_key(label_values)),
    };

    let mut details = Map::new();
    for (key, value) in [
        ("labels", alert.raw("labels")),
        ("annotations", alert.raw("annotations")),
        ("generator_url", generator_url.map(Value::from)),
        ("ends_at", ends_at.map(Value::from)),
        ("external_url", group.external_url.map(Value::from)),
        ("group_key", group.group_key.map(Value::from)),
        ("receiver", group.receiver.map(Value::from)),
    ] {
        if let Some(value) = value {
            details.insert(key.to_owned(), value);
        }
    }
    if flavour == Flavour::Grafana {
        read_grafana_alert_details(alert, group, &mut details, problems);
    }

    let (action, dedup_key) = (action?, dedup_key?);
    let present = |text: &&str| !text.trim().is_empty();
    let annotation = |key: &str| annotation_values.get(key).copied().filter(present);
    let label = |key: &str| label_values.get(key).copied().filter(present);
    let summary = annotation("summary")
        .or_else(|| annotation("description"))
        .or_else(|| label("alertname"))
        .or(group.title.filter(present))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("alert {dedup_key}"));
    let source = label("instance")
        .or_else(|| label("job"))
        .or(group.external_url)
        .unwrap_or(flavour.default_source());
    Some(Event {
        service: service.clone(),
        integration: flavour.integration(),
        action,
        dedup_key,
        severity: severity_from_label(label_values.get("severity").copied()),
        summary: truncate_chars(&summary, MAX_SUMMARY_CHARS),
        source: source.to_owned(),
        occurred_at: starts_at,
        received_at: now,
        details: Value::Object(details),
    })
}

/// Grafana's additions to each alert: the evaluated values and links to act on it.
fn read_grafana_alert_details(
    alert: &Object<'_>,
    group: &Group<'_>,
    details: &mut Map<String, Value>,
    problems: &mut Problems,
) {
    if let Some(values) = alert.object("values", problems) {
        for (name, value) in values.entries() {
            if !(value.is_number() || value.is_null()) {
                problems.wrong_type(&values.path(name), "a number");
            }
        }
        details.insert("values".to_owned(), values.as_value());
    }
    for (key, field) in [
        ("value_string", "valueString"),
        ("dashboard_url", "dashboardURL"),
        ("panel_url", "panelURL"),
        ("silence_url", "silenceURL"),
        ("image_url", "imageURL"),
    ] {
        if let Some(text) = alert.non_empty_string(field, problems) {
            details.insert(key.to_owned(), Value::from(text));
        }
    }
    if let Some(org_id) = group.org_id {
        details.insert("org_id".to_owned(), org_id.clone());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::parse::testing::now;

    fn service() -> ServiceId {
        ServiceId::new("db")
    }

    fn parse(body: &Value) -> Result<Vec<Event>, ParseErrors> {
        parse_alertmanager(body.to_string().as_bytes(), &service(), now())
    }

    fn errors(body: &Value) -> Vec<String> {
        parse(body).expect_err("the body should be rejected").0
    }

    /// The captured requests whose path matches, as (path, body bytes).
    fn fixture_requests() -> Vec<(String, String)> {
        include_str!("testdata/alertmanager-0.25.jsonl")
            .lines()
            .map(|line| {
                let request: Value = serde_json::from_str(line).unwrap();
                (
                    request["path"].as_str().unwrap().to_owned(),
                    request["body"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn every_captured_alertmanager_webhook_parses() {
        let bodies: Vec<String> = fixture_requests()
            .into_iter()
            .filter(|(path, _)| path == "/hook/alertmanager")
            .map(|(_, body)| body)
            .collect();
        assert_eq!(bodies.len(), 2);
        let mut actions = Vec::new();
        for body in &bodies {
            let events = parse_alertmanager(body.as_bytes(), &service(), now()).unwrap();
            assert_eq!(events.len(), 1);
            let event = &events[0];
            assert_eq!(event.dedup_key.as_str(), "e5cb976153386091");
            assert_eq!(event.integration, Integration::Alertmanager);
            assert_eq!(event.service, service());
            assert_eq!(event.severity, Severity::Critical);
            assert_eq!(event.summary, "Disk 99% on db1");
            assert_eq!(event.source, "db1:9100");
            assert_eq!(
                event.occurred_at,
                Some("2026-11-22T02:20:13.97704578Z".parse().unwrap())
            );
            assert_eq!(event.received_at, now());
            actions.push(event.action);
        }
        assert_eq!(actions, [EventAction::Trigger, EventAction::Resolve]);

        let firing = parse_alertmanager(bodies[0].as_bytes(), &service(), now()).unwrap();
        assert_eq!(
            firing[0].details,
            json!({
                "labels": {"alertname": "DiskFull", "instance": "db1:9100", "service": "db",
                           "severity": "critical"},
                "annotations": {"runbook_url": "https://runbooks/disk",
                                "summary": "Disk 99% on db1"},
                "generator_url": "http://prometheus:9090/graph?g0.expr=x",
                "external_url": "http://vm:19093",
                "group_key": "{}/{}:{alertname=\"DiskFull\", service=\"db\"}",
                "receiver": "webhook"
            })
        );
        let resolved = parse_alertmanager(bodies[1].as_bytes(), &service(), now()).unwrap();
        assert_eq!(resolved[0].details["ends_at"], "2026-11-22T02:20:15Z");
        assert!(resolved[0].details.get("generator_url").is_none());
    }

    #[test]
    fn captured_chat_notifications_are_not_mistaken_for_webhooks() {
        for (path, body) in fixture_requests() {
            if path.starts_with("/api/webhooks/") || path.starts_with("/slack/") {
                assert_eq!(
                    parse_alertmanager(body.as_bytes(), &service(), now())
                        .unwrap_err()
                        .0,
                    ["'alerts' is required"],
                    "{path}"
                );
            }
        }
    }

    fn alert(labels: Value, annotations: Value) -> Value {
        json!({
            "status": "firing",
            "labels": labels,
            "annotations": annotations,
            "startsAt": "2026-11-22T02:20:13.97704578Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": "0123456789abcdef"
        })
    }

    fn group(alerts: Vec<Value>) -> Value {
        json!({
            "receiver": "tocsin",
            "status": "firing",
            "alerts": alerts,
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://am:9093",
            "version": "4",
            "groupKey": "{}:{}",
            "truncatedAlerts": 0,
            "notification_reason": "new_alerts",
            "routeLabels": {"team": "db"}
        })
    }

    #[test]
    fn an_empty_alert_list_yields_no_events() {
        assert_eq!(parse(&group(vec![])).unwrap(), []);
    }

    #[test]
    fn a_missing_version_is_accepted_and_a_wrong_one_rejected() {
        let mut body = group(vec![alert(json!({"alertname": "A"}), json!({}))]);
        body.as_object_mut().unwrap().remove("version");
        assert_eq!(parse(&body).unwrap().len(), 1);
        body["version"] = json!("3");
        assert_eq!(
            errors(&body),
            ["'version' must be \"4\" for an Alertmanager webhook (got \"3\")"]
        );
        body["version"] = json!("1");
        assert_eq!(
            errors(&body),
            ["'version' must be \"4\" for an Alertmanager webhook (got \"1\"); this looks like a Grafana notification: use a Grafana integration"]
        );
        body["version"] = json!(4);
        assert_eq!(
            errors(&body),
            ["'version' must be \"4\" for an Alertmanager webhook (got 4)"]
        );
    }

    #[test]
    fn severity_labels_map_to_severities() {
        for (label, expected) in [
            (Some("critical"), Severity::Critical),
            (Some("page"), Severity::Critical),
            (Some("error"), Severity::Error),
            (Some("warning"), Severity::Warning),
            (Some("info"), Severity::Info),
            (Some("none"), Severity::Info),
            (Some("Critical"), Severity::Critical),
            (Some("major"), Severity::Error),
            (Some(""), Severity::Error),
            (None, Severity::Error),
        ] {
            assert_eq!(severity_from_label(label), expected, "{label:?}");
        }
    }

    #[test]
    fn summary_and_source_fall_back_in_order() {
        let cases = [
            (
                json!({"alertname": "A", "instance": "h:1", "job": "node"}),
                json!({"summary": "S", "description": "D"}),
                "S",
                "h:1",
            ),
            (
                json!({"alertname": "A", "job": "node"}),
                json!({"summary": "", "description": "D"}),
                "D",
                "node",
            ),
            (json!({"alertname": "A"}), json!({}), "A", "http://am:9093"),
            (
                json!({}),
                json!({}),
                "alert 0123456789abcdef",
                "http://am:9093",
            ),
        ];
        for (labels, annotations, summary, source) in cases {
            let events = parse(&group(vec![alert(labels, annotations)])).unwrap();
            assert_eq!(events[0].summary, summary);
            assert_eq!(events[0].source, source);
        }
        let mut body = group(vec![alert(json!({}), json!({}))]);
        body.as_object_mut().unwrap().remove("externalURL");
        assert_eq!(parse(&body).unwrap()[0].source, "alertmanager");
    }

    #[test]
    fn long_summaries_are_cut_to_1024_characters() {
        let long = "ü".repeat(3000);
        let events = parse(&group(vec![alert(json!({}), json!({"summary": long}))])).unwrap();
        assert_eq!(events[0].summary, "ü".repeat(1024));
    }

    #[test]
    fn without_a_fingerprint_the_label_set_is_the_key() {
        let mut first = alert(json!({"b": "2", "a": "1"}), json!({}));
        first.as_object_mut().unwrap().remove("fingerprint");
        let mut same = alert(json!({"a": "1", "b": "2"}), json!({"summary": "other"}));
        same["fingerprint"] = json!("");
        let mut different = alert(json!({"a": "1", "b": "3"}), json!({}));
        different.as_object_mut().unwrap().remove("fingerprint");
        let events = parse(&group(vec![first, same, different])).unwrap();
        assert_eq!(events[0].dedup_key, events[1].dedup_key);
        assert_ne!(events[0].dedup_key, events[2].dedup_key);
        assert_eq!(events[0].dedup_key.as_str().len(), 32);
        assert!(events[0]
            .dedup_key
            .as_str()
            .chars()
            .all(|c| c.is_ascii_hexdigit()));
        assert_eq!(events[0].summary, format!("alert {}", events[0].dedup_key));

        let tricky = BTreeMap::from([("a", "1\nb=2")]);
        let plain = BTreeMap::from([("a", "1"), ("b", "2")]);
        assert_ne!(label_set_dedup_key(&tricky), label_set_dedup_key(&plain));
    }

    #[test]
    fn a_missing_alert_status_falls_back_to_the_group_status() {
        let mut firing = alert(json!({}), json!({}));
        firing.as_object_mut().unwrap().remove("status");
        let mut body = group(vec![firing.clone()]);
        body["status"] = json!("resolved");
        assert_eq!(parse(&body).unwrap()[0].action, EventAction::Resolve);
        body.as_object_mut().unwrap().remove("status");
        assert_eq!(errors(&body), ["'alerts[0].status' is required"]);
    }

    #[test]
    fn problems_name_the_alert_and_field() {
        let good = alert(json!({"alertname": "A"}), json!({}));
        let mut bad = alert(
            json!({"alertname": "B", "severity": 3}),
            json!({"summary": []}),
        );
        bad["status"] = json!("pending");
        bad["startsAt"] = json!("yesterday");
        bad["fingerprint"] = json!("f".repeat(300));
        let mut mistyped = alert(json!([]), json!("text"));
        mistyped["endsAt"] = json!(0);
        mistyped["generatorURL"] = json!(1);
        let body = group(vec![
            good.clone(),
            good,
            json!("not an alert"),
            bad,
            mistyped,
        ]);
        assert_eq!(
            errors(&body),
            [
                "'alerts[2]' must be an object",
                "'alerts[3].status' must be one of firing, resolved (got \"pending\")",
                "'alerts[3].labels.severity' must be a string",
                "'alerts[3].annotations.summary' must be a string",
                "'alerts[3].startsAt' must be an ISO 8601 timestamp such as \"2026-01-31T23:59:59Z\" (got \"yesterday\")",
                "'alerts[3].fingerprint' is 300 characters long; the limit is 255",
                "'alerts[4].labels' must be an object",
                "'alerts[4].annotations' must be an object",
                "'alerts[4].endsAt' must be a string",
                "'alerts[4].generatorURL' must be a string",
            ]
        );
        assert_eq!(
            errors(&json!({"version": "4", "alerts": {}})),
            ["'alerts' must be an array"]
        );
        assert_eq!(errors(&json!({"version": "4"})), ["'alerts' is required"]);
    }

    #[test]
    fn a_fingerprint_of_255_characters_is_kept_whole() {
        let mut long = alert(json!({}), json!({}));
        long["fingerprint"] = json!("f".repeat(255));
        let events = parse(&group(vec![long])).unwrap();
        assert_eq!(events[0].dedup_key.as_str(), "f".repeat(255));
    }
}
