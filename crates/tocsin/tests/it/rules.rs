//! Stream rules end to end: events over HTTP make a rate rule open an incident through the
//! pipeline.

use std::time::Duration;

use serde_json::json;

use crate::support::{spawn_app_with, API_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_rule_opens_an_incident_when_matching_events_exceed_the_limit() {
    let app = spawn_app_with(
        r#"
[[rules]]
id = "error-storm"
service = "checkout-api"
kind = "rate"
match = { severity = "error" }
above = 2
window = "1m"
"#,
    )
    .await;
    // Warnings do not match.
    for n in 0..3 {
        let (status, body) = app
            .enqueue(&json!({
                "routing_key": API_KEY, "event_action": "trigger", "dedup_key": format!("w{n}"),
                "payload": {"summary": "slow", "source": "web-1", "severity": "warning"}
            }))
            .await;
        assert_eq!(status, 202, "{body}");
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let rule_incident = |items: &serde_json::Value| {
        items["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|incident| incident["dedup_key"] == "rule:error-storm")
            .cloned()
    };
    let (_, incidents) = app.get("/api/v1/incidents").await;
    assert!(rule_incident(&incidents).is_none(), "{incidents}");
    for n in 0..3 {
        let (status, body) = app
            .enqueue(&json!({
                "routing_key": API_KEY, "event_action": "trigger", "dedup_key": format!("e{n}"),
                "payload": {"summary": "boom", "source": "web-1", "severity": "error"}
            }))
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let started = std::time::Instant::now();
    let incident = loop {
        let (_, incidents) = app.get("/api/v1/incidents").await;
        if let Some(incident) = rule_incident(&incidents) {
            break incident;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{incidents}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(incident["state"], "triggered");
    assert!(
        incident["title"]
            .as_str()
            .unwrap()
            .contains("3 matching events in 1m"),
        "{incident}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absence_rule_opens_an_incident_when_a_source_goes_quiet_and_resolves_it() {
    let app = spawn_app_with(
        r#"
[[rules]]
id = "shipper-quiet"
service = "checkout-api"
kind = "absence"
match = { source = "log-shipper" }
window = "2s"
"#,
    )
    .await;
    let send = |source: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app
                .enqueue(&json!({
                    "routing_key": API_KEY, "event_action": "trigger", "dedup_key": "logs",
                    "payload": {"summary": "log line", "source": source, "severity": "info"}
                }))
                .await;
            assert_eq!(status, 202, "{body}");
        }
    };
    send("log-shipper").await;
    let rule_incident = |items: &serde_json::Value| {
        items["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|incident| incident["dedup_key"] == "rule:shipper-quiet")
            .cloned()
    };
    let started = std::time::Instant::now();
    let incident = loop {
        // Another source does not count.
        send("web-1").await;
        let (_, incidents) = app.get("/api/v1/incidents").await;
        if let Some(incident) = rule_incident(&incidents) {
            break incident;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{incidents}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(started.elapsed() >= Duration::from_millis(1_500));
    assert!(
        incident["title"]
            .as_str()
            .unwrap()
            .contains("no matching event for 2s"),
        "{incident}"
    );
    let number = incident["number"].as_i64().unwrap();
    send("log-shipper").await;
    let started = std::time::Instant::now();
    loop {
        let (_, incident) = app.get(&format!("/api/v1/incidents/{number}")).await;
        if incident["state"] == "resolved" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{incident}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}
