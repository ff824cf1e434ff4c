//! Grafana's webhook contact point (version "1"): the Alertmanager shape plus Grafana's
//! additions, and the optional HMAC signature over the body.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tocsin_core::{Event, ServiceId, Timestamp};

use super::alertmanager::{parse_alert_group, Flavour};
use super::fields::ParseErrors;

/// Parses a Grafana webhook notification into one event per alert, with the rules of
/// [`parse_alertmanager`](super::parse_alertmanager). The summary falls back to the
/// notification's `title` when an alert has neither a summary, a description nor a name; the
/// details also keep the evaluated `values` and the dashboard, panel, silence and image URLs.
pub fn parse_grafana(
    body: &[u8],
    service: &ServiceId,
    now: Timestamp,
) -> Result<Vec<Event>, ParseErrors> {
    parse_alert_group(body, service, now, Flavour::Grafana)
}

/// Checks the `X-Grafana-Alerting-Signature` header: the hex HMAC-SHA256 of the body, or of
/// `"<timestamp>:" + body` when Grafana is configured to send a timestamp header. The comparison
/// takes the same time whatever the signature; a malformed one (not hex, wrong length) fails.
pub fn verify_grafana_signature(
    secret: &[u8],
    body: &[u8],
    signature_hex: &str,
    timestamp: Option<&str>,
) -> bool {
    let signature_hex = signature_hex.trim();
    let signature_hex = signature_hex
        .strip_prefix("sha256=")
        .unwrap_or(signature_hex);
    let Ok(signature) = hex::decode(signature_hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    if let Some(timestamp) = timestamp {
        mac.update(timestamp.as_bytes());
        mac.update(b":");
    }
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use tocsin_core::{EventAction, Integration, Severity};

    use super::*;
    use crate::parse::testing::now;

    fn service() -> ServiceId {
        ServiceId::new("web")
    }

    /// A notification as Grafana 10 and 11 send it: two firing alerts (one with a panel and an
    /// image, one whose query returned no data) and one resolved.
    const GRAFANA_11_NOTIFICATION: &str = r#"{
  "receiver": "tocsin",
  "status": "firing",
  "orgId": 1,
  "alerts": [
    {
      "status": "firing",
      "labels": {
        "alertname": "High CPU",
        "grafana_folder": "Infra",
        "instance": "web-1:9100",
        "severity": "warning"
      },
      "annotations": {
        "description": "CPU above 90% for 5 minutes",
        "runbook_url": "https://runbooks.example.net/cpu",
        "summary": "CPU 97% on web-1"
      },
      "startsAt": "2026-11-22T02:51:30+01:00",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "https://grafana.example.net/alerting/grafana/cdx8a1/view?orgId=1",
      "fingerprint": "8a3a9b5a7c8e1d21",
      "silenceURL": "https://grafana.example.net/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DHigh+CPU&orgId=1",
      "dashboardURL": "https://grafana.example.net/d/node/node-exporter?orgId=1",
      "panelURL": "https://grafana.example.net/d/node/node-exporter?orgId=1&viewPanel=3",
      "values": {"A": 97.21875, "C": 1},
      "valueString": "[ var='A' labels={instance=web-1:9100} value=97.21875 ], [ var='C' labels={instance=web-1:9100} value=1 ]",
      "imageURL": "https://grafana.example.net/public/img/attachments/8a3a9b5a.png"
    },
    {
      "status": "firing",
      "labels": {
        "alertname": "DatasourceNoData",
        "datasource_uid": "prometheus",
        "grafana_folder": "Infra",
        "ref_id": "A",
        "rulename": "Request rate"
      },
      "annotations": {},
      "startsAt": "2026-11-22T02:55:00Z",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "https://grafana.example.net/alerting/grafana/e1f0b2/view?orgId=1",
      "fingerprint": "4e1e7d8f5b2c9a06",
      "silenceURL": "https://grafana.example.net/alerting/silence/new?alertmanager=grafana&orgId=1",
      "dashboardURL": "",
      "panelURL": "",
      "values": null,
      "valueString": ""
    },
    {
      "status": "resolved",
      "labels": {"alertname": "Disk almost full", "grafana_folder": "Infra", "job": "node",
                 "severity": "critical"},
      "annotations": {"summary": "Disk 91% on web-2"},
      "startsAt": "2026-11-22T01:10:00.123456789Z",
      "endsAt": "2026-11-22T02:40:00Z",
      "generatorURL": "https://grafana.example.net/alerting/grafana/b77d10/view?orgId=1",
      "fingerprint": "f1d5d2a6a0b3c4e5",
      "silenceURL": "https://grafana.example.net/alerting/silence/new?alertmanager=grafana&orgId=1",
      "dashboardURL": "",
      "panelURL": "",
      "values": {"B": 88.5}
    }
  ],
  "groupLabels": {"alertname": "High CPU", "grafana_folder": "Infra"},
  "commonLabels": {"grafana_folder": "Infra"},
  "commonAnnotations": {},
  "externalURL": "https://grafana.example.net/",
  "version": "1",
  "groupKey": "{}/{__grafana_autogenerated__=\"true\"}/{__grafana_receiver__=\"tocsin\"}:{alertname=\"High CPU\", grafana_folder=\"Infra\"}",
  "truncatedAlerts": 0,
  "title": "[FIRING:2] (Infra)",
  "state": "alerting",
  "message": "**Firing**\n\nValue: A=97.21875, C=1\nLabels:\n - alertname = High CPU\n"
}"#;

    #[test]
    fn a_grafana_11_notification_parses_alert_by_alert() {
        let events = parse_grafana(GRAFANA_11_NOTIFICATION.as_bytes(), &service(), now()).unwrap();
        assert_eq!(events.len(), 3);
        assert!(events
            .iter()
            .all(|event| event.integration == Integration::Grafana && event.service == service()));

        let cpu = &events[0];
        assert_eq!(cpu.action, EventAction::Trigger);
        assert_eq!(cpu.dedup_key.as_str(), "8a3a9b5a7c8e1d21");
        assert_eq!(cpu.severity, Severity::Warning);
        assert_eq!(cpu.summary, "CPU 97% on web-1");
        assert_eq!(cpu.source, "web-1:9100");
        assert_eq!(
            cpu.occurred_at,
            Some("2026-11-22T01:51:30Z".parse().unwrap())
        );
        assert_eq!(cpu.details["values"], json!({"A": 97.21875, "C": 1}));
        assert_eq!(
            cpu.details["panel_url"],
            "https://grafana.example.net/d/node/node-exporter?orgId=1&viewPanel=3"
        );
        assert_eq!(
            cpu.details["dashboard_url"],
            "https://grafana.example.net/d/node/node-exporter?orgId=1"
        );
        assert_eq!(
            cpu.details["image_url"],
            "https://grafana.example.net/public/img/attachments/8a3a9b5a.png"
        );
        assert!(cpu.details["silence_url"]
            .as_str()
            .unwrap()
            .starts_with("https://grafana.example.net/alerting/silence/new"));
        assert!(cpu.details["value_string"]
            .as_str()
            .unwrap()
            .starts_with("[ var='A'"));
        assert_eq!(cpu.details["org_id"], 1);
        assert_eq!(cpu.details["receiver"], "tocsin");
        assert_eq!(cpu.details["external_url"], "https://grafana.example.net/");
        assert_eq!(cpu.details["labels"]["grafana_folder"], "Infra");
        assert!(cpu.details.get("ends_at").is_none());

        let no_data = &events[1];
        assert_eq!(no_data.action, EventAction::Trigger);
        assert_eq!(no_data.severity, Severity::Error);
        assert_eq!(no_data.summary, "DatasourceNoData");
        assert_eq!(no_data.source, "https://grafana.example.net/");
        assert!(no_data.details.get("values").is_none());
        assert!(no_data.details.get("dashboard_url").is_none());

        let disk = &events[2];
        assert_eq!(disk.action, EventAction::Resolve);
        assert_eq!(disk.dedup_key.as_str(), "f1d5d2a6a0b3c4e5");
        assert_eq!(disk.severity, Severity::Critical);
        assert_eq!(disk.summary, "Disk 91% on web-2");
        assert_eq!(disk.source, "node");
        assert_eq!(disk.details["ends_at"], "2026-11-22T02:40:00Z");
        assert_eq!(
            disk.occurred_at,
            Some("2026-11-22T01:10:00.123456789Z".parse().unwrap())
        );
    }

    fn notification() -> Value {
        serde_json::from_str(GRAFANA_11_NOTIFICATION).unwrap()
    }

    fn errors(body: &Value) -> Vec<String> {
        parse_grafana(body.to_string().as_bytes(), &service(), now())
            .unwrap_err()
            .0
    }

    #[test]
    fn the_grafana_title_is_the_last_summary_before_the_fingerprint() {
        let mut body = notification();
        body["alerts"][1]["labels"] = json!({});
        let events = parse_grafana(body.to_string().as_bytes(), &service(), now()).unwrap();
        assert_eq!(events[1].summary, "[FIRING:2] (Infra)");
        body.as_object_mut().unwrap().remove("title");
        let events = parse_grafana(body.to_string().as_bytes(), &service(), now()).unwrap();
        assert_eq!(events[1].summary, "alert 4e1e7d8f5b2c9a06");
        body.as_object_mut().unwrap().remove("externalURL");
        let events = parse_grafana(body.to_string().as_bytes(), &service(), now()).unwrap();
        assert_eq!(events[1].source, "grafana");
    }

    #[test]
    fn grafana_fields_are_checked() {
        let mut body = notification();
        body["version"] = json!("4");
        body["orgId"] = json!("one");
        body["alerts"][0]["values"] = json!({"A": "97", "B": null});
        body["alerts"][0]["panelURL"] = json!(3);
        body["alerts"][2]["values"] = json!([88.5]);
        assert_eq!(
            errors(&body),
            [
                "'version' must be \"1\" for a Grafana webhook (got \"4\"); this looks like an Alertmanager notification: use an Alertmanager integration",
                "'orgId' must be a number",
                "'alerts[0].values.A' must be a number",
                "'alerts[0].panelURL' must be a string",
                "'alerts[2].values' must be an object",
            ]
        );
    }

    #[test]
    fn an_empty_grafana_notification_yields_no_events() {
        let mut body = notification();
        body["alerts"] = json!([]);
        assert_eq!(
            parse_grafana(body.to_string().as_bytes(), &service(), now()).unwrap(),
            []
        );
    }

    fn sign(secret: &[u8], message: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(message);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn grafana_signatures_over_the_body_verify() {
        let secret = b"s3cret";
        let body = GRAFANA_11_NOTIFICATION.as_bytes();
        let signature = sign(secret, body);
        assert!(verify_grafana_signature(secret, body, &signature, None));
        assert!(verify_grafana_signature(
            secret,
            body,
            &signature.to_uppercase(),
            None
        ));
        assert!(verify_grafana_signature(
            secret,
            body,
            &format!("sha256={signature}"),
            None
        ));
        assert!(!verify_grafana_signature(b"other", body, &signature, None));
        assert!(!verify_grafana_signature(secret, b"{}", &signature, None));
        assert!(!verify_grafana_signature(
            secret,
            body,
            &signature,
            Some("1795314014")
        ));
        assert!(!verify_grafana_signature(
            secret,
            body,
            &signature[..32],
            None
        ));
        assert!(!verify_grafana_signature(secret, body, "", None));
        assert!(!verify_grafana_signature(secret, body, "not hex", None));
        assert!(!verify_grafana_signature(
            secret,
            body,
            &format!("{signature}00"),
            None
        ));
    }

    #[test]
    fn grafana_signatures_with_a_timestamp_verify() {
        let secret = b"s3cret";
        let body = GRAFANA_11_NOTIFICATION.as_bytes();
        let timestamp = "1795314014";
        let signed = [timestamp.as_bytes(), b":", body].concat();
        let signature = sign(secret, &signed);
        assert!(verify_grafana_signature(
            secret,
            body,
            &signature,
            Some(timestamp)
        ));
        assert!(!verify_grafana_signature(secret, body, &signature, None));
        assert!(!verify_grafana_signature(
            secret,
            body,
            &signature,
            Some("1795314015")
        ));
        assert!(verify_grafana_signature(
            b"",
            b"",
            &sign(b"", b"0:"),
            Some("0")
        ));
    }
}
