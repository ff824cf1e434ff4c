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

const STORM_RULE: &str = r#"
[[rules]]
id = "error-storm"
service = "checkout-api"
kind = "rate"
match = { severity = "error" }
above = 3
window = "10m"
"#;

async fn send_errors(app: &crate::support::TestApp, prefix: &str, count: usize) {
    for n in 0..count {
        let (status, body) = app
            .enqueue(&json!({
                "routing_key": API_KEY, "event_action": "trigger",
                "dedup_key": format!("{prefix}-{n}"),
                "payload": {"summary": "boom", "source": "web-1", "severity": "error"}
            }))
            .await;
        assert_eq!(status, 202, "{body}");
    }
}

/// The rule's incidents (an incident per dedup key `rule:error-storm`).
async fn storm_incidents(app: &crate::support::TestApp) -> Vec<serde_json::Value> {
    let (_, incidents) = app.get("/api/v1/incidents?limit=100").await;
    incidents["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|incident| incident["dedup_key"] == "rule:error-storm")
        .cloned()
        .collect()
}

async fn wait_for_storm(app: &crate::support::TestApp) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        if let Some(incident) = storm_incidents(app).await.pop() {
            return incident;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no rule incident"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for the rule's incident and checks that it counted four events.
async fn wait_for_four_errors(app: &crate::support::TestApp) {
    let incident = wait_for_storm(app).await;
    assert!(
        incident["title"]
            .as_str()
            .unwrap()
            .contains("4 matching events in 10m"),
        "{incident}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_rule_counts_the_events_of_before_a_restart() {
    let dir = crate::support::temp_dir();
    let path = dir.join("tocsin.toml");
    std::fs::write(&path, crate::support::test_config(STORM_RULE)).expect("write config");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let app = crate::support::start_app_at(&path, &data, None).await;
    send_errors(&app, "before", 3).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        storm_incidents(&app).await.is_empty(),
        "3 is not more than 3"
    );
    app.stop().await;

    let app = crate::support::start_app_at(&path, &data, None).await;
    send_errors(&app, "after", 1).await;
    wait_for_four_errors(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres_fire_a_rate_rule_once() {
    let Some(database) = tocsin_store_postgres::testing::TestDatabase::create().await else {
        return;
    };
    let dir = crate::support::temp_dir();
    let path = dir.join("tocsin.toml");
    std::fs::write(&path, crate::support::test_config(STORM_RULE)).expect("write config");
    let (one_dir, two_dir) = (dir.join("one"), dir.join("two"));
    std::fs::create_dir_all(&one_dir).expect("data dir");
    std::fs::create_dir_all(&two_dir).expect("data dir");
    let one = crate::support::start_app_at(&path, &one_dir, Some(database.url())).await;
    let two = crate::support::start_app_at(&path, &two_dir, Some(database.url())).await;
    // Neither replica alone sees more than 3.
    send_errors(&one, "one", 2).await;
    send_errors(&two, "two", 2).await;
    wait_for_four_errors(&one).await;
    // Both replicas keep evaluating; the rule's alert was triggered once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let incidents = storm_incidents(&two).await;
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let number = incidents[0]["number"].as_i64().unwrap();
    let (_, alerts) = two.get(&format!("/api/v1/incidents/{number}/alerts")).await;
    let alerts = alerts["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        alerts[0]["count"], 1,
        "one trigger, not one per replica: {alerts:?}"
    );
    one.stop().await;
    two.stop().await;
}
