//! Ingestion endpoints over real HTTP: what is accepted is stored, what is refused is not.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tocsin_store::{EventFilter, IncidentFilter, PageRequest};

use crate::support::{
    spawn_app, TestApp, API_KEY, DB_KEY, GRAFANA_KEY, GRAFANA_SECRET, MANUAL_KEY,
};

async fn stored_events(app: &TestApp) -> usize {
    app.engine
        .events(&EventFilter::default(), PageRequest::first(500))
        .await
        .expect("events")
        .items
        .len()
}

#[tokio::test]
async fn events_v2_trigger_acknowledge_resolve() {
    let app = spawn_app().await;
    let (status, body) = app
        .enqueue(&json!({
            "routing_key": API_KEY,
            "event_action": "trigger",
            "payload": {"summary": "CPU 98% on web-3", "source": "web-3", "severity": "warning",
                        "timestamp": "2026-11-22T02:20:13.977+00:00Z",
                        "custom_details": {"cpu": "98"}},
            "links": [{"href": "https://grafana.example/d/1", "text": "dashboard"}]
        }))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["message"], "Event processed");
    let dedup_key = body["dedup_key"]
        .as_str()
        .expect("generated dedup key")
        .to_owned();
    assert_eq!(dedup_key.len(), 36, "a UUID");

    for action in ["acknowledge", "resolve"] {
        let (status, body) = app
            .post_json(
                "/v2/enqueue/",
                &json!({"routing_key": API_KEY, "event_action": action, "dedup_key": dedup_key}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(
            body["dedup_key"],
            dedup_key.as_str(),
            "every 202 carries the dedup key"
        );
    }
    let (_, incident) = app.get("/api/v1/incidents/1").await;
    assert_eq!(incident["state"], "resolved");
    assert_eq!(incident["priority"], "P3");
    assert_eq!(incident["impact_started_at"], "2026-11-22T02:20:13.977Z");
    assert!(incident["time_to_acknowledge_seconds"].as_f64().is_some());

    // Acknowledge and resolve for a key with nothing open: accepted, nothing changes.
    let (status, body) = app
        .enqueue(
            &json!({"routing_key": API_KEY, "event_action": "resolve", "dedup_key": "never-seen"}),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(body["dedup_key"], "never-seen");
    let incidents = app
        .engine
        .incidents(&IncidentFilter::default(), PageRequest::default())
        .await
        .expect("incidents");
    assert_eq!(incidents.items.len(), 1);

    // After resolution, the same key opens a new incident.
    app.trigger(API_KEY, &dedup_key, "CPU again").await;
    let (_, incident) = app.get("/api/v1/incidents/2").await;
    assert_eq!(incident["state"], "triggered");
    app.stop().await;
}

#[tokio::test]
async fn invalid_events_get_a_400_naming_the_field_and_store_nothing() {
    let app = spawn_app().await;
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "not valid JSON"),
        (b"[1,2,3]".to_vec(), 400, "object"),
        (vec![0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d], 400, "UTF-8"),
        (
            json!({"event_action": "trigger"}).to_string().into_bytes(),
            400,
            "routing_key",
        ),
        (
            json!({"routing_key": "short", "event_action": "trigger"})
                .to_string()
                .into_bytes(),
            400,
            "Length of 'routing_key' is incorrect (should be 32 characters)",
        ),
        (
            json!({"routing_key": "x".repeat(32), "event_action": "trigger",
                "payload": {"summary": "s", "source": "s", "severity": "error"}})
            .to_string()
            .into_bytes(),
            400,
            "routing_key",
        ),
        (
            json!({"routing_key": API_KEY, "event_action": "explode"})
                .to_string()
                .into_bytes(),
            400,
            "event_action",
        ),
        (
            json!({"routing_key": API_KEY, "event_action": "trigger",
                "payload": {"summary": 5, "source": "s", "severity": "error"}})
            .to_string()
            .into_bytes(),
            400,
            "payload.summary",
        ),
        (
            json!({"routing_key": API_KEY, "event_action": "trigger",
                "payload": {"summary": "s", "source": "s", "severity": "fatal"}})
            .to_string()
            .into_bytes(),
            400,
            "payload.severity",
        ),
        (
            json!({"routing_key": API_KEY, "event_action": "trigger",
                "payload": {"summary": "s", "severity": "error"}})
            .to_string()
            .into_bytes(),
            400,
            "payload.source",
        ),
        (
            json!({"routing_key": API_KEY, "event_action": "trigger", "dedup_key": "k".repeat(256),
                "payload": {"summary": "s", "source": "s", "severity": "error"}})
            .to_string()
            .into_bytes(),
            400,
            "dedup_key",
        ),
        (
            json!({"routing_key": API_KEY, "event_action": "trigger",
                "payload": {"summary": "s".repeat(1025), "source": "s", "severity": "error"}})
            .to_string()
            .into_bytes(),
            400,
            "payload.summary",
        ),
        (
            json!({"routing_key": API_KEY, "event_action": "resolve"})
                .to_string()
                .into_bytes(),
            400,
            "dedup_key",
        ),
    ];
    for (body, expected_status, expected_text) in cases {
        let (status, answer) = app.post_raw("/v2/enqueue", body.clone()).await;
        assert_eq!(
            status,
            expected_status,
            "{} -> {answer}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(answer["status"], "invalid event");
        let errors = answer["errors"].to_string();
        assert!(
            errors.contains(expected_text),
            "{expected_text:?} not in {errors}"
        );
    }
    // Several problems at once are all reported.
    let (status, answer) = app
        .enqueue(&json!({"routing_key": API_KEY, "event_action": "trigger",
                         "payload": {"summary": 1, "source": 2, "severity": "nope"}}))
        .await;
    assert_eq!(status, 400);
    assert!(
        answer["errors"].as_array().map_or(0, Vec::len) >= 3,
        "{answer}"
    );

    // Over 512 KB.
    let big = json!({"routing_key": API_KEY, "event_action": "trigger",
                     "payload": {"summary": "s", "source": "s", "severity": "error",
                                 "custom_details": {"blob": "x".repeat(600 * 1024)}}});
    let (status, answer) = app.enqueue(&big).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["errors"].to_string().contains("512 KB"));

    assert_eq!(stored_events(&app).await, 0, "nothing was stored");
    // A 255-character dedup key is fine.
    app.trigger(API_KEY, &"k".repeat(255), "long key").await;
    assert_eq!(stored_events(&app).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn change_events_go_to_the_service_timeline() {
    let app = spawn_app().await;
    let (status, body) = app
        .post_json(
            "/v2/change/enqueue",
            &json!({"routing_key": DB_KEY,
                    "payload": {"summary": "Migrated schema to v42", "source": "deployer",
                                "timestamp": "2026-11-22T01:00:00Z"},
                    "links": [{"href": "https://ci.example/42"}]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["message"], "Change event processed");
    let (status, changes) = app.get("/api/v1/services/checkout-db/changes").await;
    assert_eq!(status, 200);
    assert_eq!(changes["items"][0]["summary"], "Migrated schema to v42");
    assert_eq!(
        changes["items"][0]["links"][0]["href"],
        "https://ci.example/42"
    );
    let (_, incidents) = app.get("/api/v1/incidents").await;
    assert_eq!(incidents["items"].as_array().map(Vec::len), Some(0));
    let (status, _) = app
        .post_json("/v2/change/enqueue", &json!({"routing_key": DB_KEY}))
        .await;
    assert_eq!(status, 400);
    app.stop().await;
}

#[tokio::test]
async fn alertmanager_webhook_replays_real_payloads_idempotently() {
    let app = spawn_app().await;
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/alertmanager-0.25.jsonl"
    ))
    .expect("fixture");
    let path = format!("/integrations/alertmanager/{API_KEY}");
    let mut firing = std::collections::BTreeSet::new();
    for line in fixture.lines().filter(|line| !line.trim().is_empty()) {
        let request: Value = serde_json::from_str(line).expect("fixture line");
        let body = request["body"].as_str().expect("body").to_owned();
        let parsed: Value = serde_json::from_str(&body).expect("body");
        // The capture also holds what Alertmanager sent its chat receivers: not ours.
        let target = match request["path"].as_str() {
            Some("/hook/alertmanager") => {
                for alert in parsed["alerts"].as_array().into_iter().flatten() {
                    if alert["status"] == "firing" {
                        firing.insert(
                            alert["fingerprint"]
                                .as_str()
                                .expect("fingerprint")
                                .to_owned(),
                        );
                    }
                }
                path.clone()
            }
            Some("/v2/enqueue") => {
                if parsed["event_action"] == "trigger" {
                    firing.insert(parsed["dedup_key"].as_str().expect("dedup key").to_owned());
                }
                "/v2/enqueue".to_owned()
            }
            _ => continue,
        };
        // Alertmanager re-sends the same group: sending twice must not double anything.
        for _ in 0..2 {
            let (status, answer) = app.post_raw(&target, body.clone()).await;
            assert!(
                status == 200 || status == 202,
                "{target}: {status} {answer}"
            );
        }
    }
    assert!(!firing.is_empty());
    let (_, alerts) = app.get("/api/v1/alerts?limit=500").await;
    let keys: std::collections::BTreeSet<String> = alerts["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|alert| alert["dedup_key"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(keys, firing, "one alert per fingerprint");
    let (status, _) = app
        .post_raw(
            "/integrations/alertmanager/not-a-key-not-a-key-not-a-key-12",
            "{}",
        )
        .await;
    assert_eq!(status, 404);
    let (status, answer) = app
        .post_raw(&path, r#"{"version":"4","alerts":"nope"}"#)
        .await;
    assert_eq!(status, 400);
    assert!(answer["errors"].to_string().contains("alerts"), "{answer}");
    app.stop().await;
}

fn grafana_body(status: &str) -> String {
    json!({
        "receiver": "tocsin", "status": status, "orgId": 1, "version": "1",
        "title": "[FIRING:1] HighLatency", "state": if status == "firing" { "alerting" } else { "ok" },
        "message": "p99 above 2s", "groupKey": "{}:{alertname=\"HighLatency\"}", "truncatedAlerts": 0,
        "groupLabels": {"alertname": "HighLatency"}, "commonLabels": {"alertname": "HighLatency"},
        "commonAnnotations": {}, "externalURL": "http://grafana.example/",
        "alerts": [{
            "status": status, "labels": {"alertname": "HighLatency", "severity": "critical", "instance": "web-1"},
            "annotations": {"summary": "p99 latency above 2s on web-1"},
            "startsAt": "2026-11-22T02:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://grafana.example/alerting/1/view", "fingerprint": "a1b2c3d4e5f60718",
            "silenceURL": "http://grafana.example/silence", "dashboardURL": "", "panelURL": "",
            "values": {"B": 2.4}, "valueString": "[ var='B' value=2.4 ]"
        }]
    })
    .to_string()
}

fn sign(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(GRAFANA_SECRET.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn grafana_webhook_checks_the_signature() {
    let app = spawn_app().await;
    let url = app.url(&format!("/integrations/grafana/{GRAFANA_KEY}"));
    let body = grafana_body("firing");
    let unsigned = app
        .client
        .post(&url)
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(unsigned.status().as_u16(), 401);
    let forged = app
        .client
        .post(&url)
        .header("X-Grafana-Alerting-Signature", "00".repeat(32))
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(forged.status().as_u16(), 401);
    assert_eq!(stored_events(&app).await, 0);
    let signed = app
        .client
        .put(&url)
        .header("X-Grafana-Alerting-Signature", sign(&body))
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(signed.status().as_u16(), 200);
    let (_, incident) = app.get("/api/v1/incidents/1").await;
    assert_eq!(incident["title"], "p99 latency above 2s on web-1");
    assert_eq!(incident["priority"], "P1");
    let resolved = grafana_body("resolved");
    let answer = app
        .client
        .post(&url)
        .header("X-Grafana-Alerting-Signature", sign(&resolved))
        .body(resolved.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(answer.status().as_u16(), 200);
    let (_, incident) = app.get("/api/v1/incidents/1").await;
    assert_eq!(incident["state"], "resolved");
    app.stop().await;
}

#[tokio::test]
async fn generic_endpoint_and_manual_resolution() {
    let app = spawn_app().await;
    let path = format!("/integrations/generic/{MANUAL_KEY}");
    let (status, body) = app
        .post_json(
            &path,
            &json!({"summary": "nightly export failed", "dedup_key": "export"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = app
        .post_json(&path, &json!({"action": "resolve", "dedup_key": "export"}))
        .await;
    assert_eq!(status, 202);
    // The service resolves incidents by hand: the alert is resolved, the incident is not.
    let (_, incident) = app.get("/api/v1/incidents/1").await;
    assert_eq!(incident["state"], "triggered");
    assert_eq!(incident["open_alerts"], 0);
    let (status, body) = app.post_json(&path, &json!({"action": "trigger"})).await;
    assert_eq!(status, 400);
    assert!(body["errors"].to_string().contains("summary"), "{body}");
    app.stop().await;
}
