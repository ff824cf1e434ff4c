//! The `/api/v1` REST API over real HTTP.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{spawn_app, API_KEY, DB_KEY};

#[tokio::test]
async fn incident_lifecycle_through_the_api() {
    let app = spawn_app().await;
    app.trigger(API_KEY, "disk-full", "Disk 99% on db1").await;
    app.trigger(API_KEY, "disk-full", "Disk 99.5% on db1").await;

    let (status, list) = app.get("/api/v1/incidents").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    let incident = &list["items"][0];
    assert_eq!(incident["number"], 1);
    assert_eq!(incident["state"], "triggered");
    assert_eq!(incident["priority"], "P1");
    assert_eq!(incident["title"], "Disk 99% on db1");
    assert_eq!(incident["service"], "checkout-api");
    assert_eq!(list["next_cursor"], Value::Null);

    let (status, alerts) = app.get("/api/v1/incidents/1/alerts").await;
    assert_eq!(status, 200);
    assert_eq!(alerts["items"][0]["count"], 2);
    assert_eq!(alerts["items"][0]["summary"], "Disk 99.5% on db1");
    let alert_id = alerts["items"][0]["id"].as_i64().expect("alert id");
    let (status, events) = app.get(&format!("/api/v1/alerts/{alert_id}/events")).await;
    assert_eq!(status, 200);
    assert_eq!(events["items"].as_array().map(Vec::len), Some(2));

    let (status, acked) = app.post("/api/v1/incidents/1/acknowledge", None).await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["changed"], true);
    assert_eq!(acked["incident"]["state"], "acknowledged");
    assert!(acked["incident"]["time_to_acknowledge_seconds"]
        .as_f64()
        .is_some());
    let (_, again) = app.post("/api/v1/incidents/1/acknowledge", None).await;
    assert_eq!(again["changed"], false);

    let (status, note) = app
        .post(
            "/api/v1/incidents/1/notes",
            Some(json!({"text": "failing over to db2"})),
        )
        .await;
    assert_eq!(status, 201, "{note}");
    assert_eq!(note["actor"], "token:tester");

    let (status, changed) = app
        .request(
            Method::PUT,
            "/api/v1/incidents/1/priority",
            Some(json!({"priority": "P3"})),
            Some(&app.token),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["incident"]["priority"], "P3");

    let (status, resolved) = app.post("/api/v1/incidents/1/resolve", None).await;
    assert_eq!(status, 200);
    assert_eq!(resolved["incident"]["state"], "resolved");
    assert_eq!(resolved["incident"]["open_alerts"], 0);
    let (status, conflict) = app.post("/api/v1/incidents/1/acknowledge", None).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["error"], "conflict");

    let (status, timeline) = app.get("/api/v1/incidents/1/timeline").await;
    assert_eq!(status, 200);
    let kinds: Vec<&str> = timeline["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|entry| entry["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "incident.triggered",
            "alert.folded",
            "incident.acknowledged",
            "note.added",
            "incident.priority_changed",
            "incident.resolved"
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn api_requires_tokens_with_the_right_scope() {
    let app = spawn_app().await;
    app.trigger(API_KEY, "k", "x").await;
    let (status, body) = app
        .request(Method::GET, "/api/v1/incidents", None, None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");
    let (status, _) = app
        .request(
            Method::GET,
            "/api/v1/incidents",
            None,
            Some("tcn_not-a-token"),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = app
        .request(
            Method::GET,
            "/api/v1/incidents/1",
            None,
            Some(&app.read_token),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .request(
            Method::POST,
            "/api/v1/incidents/1/acknowledge",
            None,
            Some(&app.read_token),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    // Nothing changed.
    let (_, incident) = app.get("/api/v1/incidents/1").await;
    assert_eq!(incident["state"], "triggered");
    app.stop().await;
}

#[tokio::test]
async fn lists_paginate_with_a_hard_maximum_and_filters() {
    let app = spawn_app().await;
    for n in 0..130 {
        let key = if n % 2 == 0 { API_KEY } else { DB_KEY };
        app.trigger(key, &format!("key-{n}"), &format!("problem {n}"))
            .await;
    }
    let mut numbers = Vec::new();
    let mut path = "/api/v1/incidents?limit=50".to_owned();
    loop {
        let (status, page) = app.get(&path).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 50);
        numbers.extend(items.iter().filter_map(|item| item["number"].as_i64()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/incidents?limit=50&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(numbers, (1..=130).rev().collect::<Vec<i64>>());

    let (_, page) = app.get("/api/v1/incidents").await;
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(50),
        "default 50"
    );
    let (status, error) = app.get("/api/v1/incidents?limit=501").await;
    assert_eq!(status, 400);
    assert_eq!(error["field"], "limit");
    let (status, error) = app.get("/api/v1/incidents?cursor=abc").await;
    assert_eq!(status, 400);
    assert_eq!(error["field"], "cursor");
    let (status, error) = app.get("/api/v1/incidents?state=sleeping").await;
    assert_eq!(status, 400);
    assert_eq!(error["field"], "state");
    let (status, page) = app
        .get("/api/v1/incidents?service=checkout-db&limit=500")
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(65));
    let (status, page) = app
        .get("/api/v1/alerts?service=checkout-api&limit=500")
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(65));
    let (status, error) = app.get("/api/v1/incidents/0").await;
    assert_eq!(status, 400);
    assert_eq!(error["field"], "number");
    let (status, _) = app.get("/api/v1/incidents/9999").await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn racing_acknowledge_and_resolve_over_http_leave_a_consistent_timeline() {
    let app = spawn_app().await;
    app.trigger(API_KEY, "race", "racing").await;
    let mut tasks = Vec::new();
    for n in 0..24 {
        let client = app.client.clone();
        let url = app.url(if n % 2 == 0 {
            "/api/v1/incidents/1/acknowledge"
        } else {
            "/api/v1/incidents/1/resolve"
        });
        let token = app.token.clone();
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("json");
            (n % 2 == 0, status, body)
        }));
    }
    let mut resolves_changed = 0;
    let mut acks_changed = 0;
    for task in tasks {
        let (is_ack, status, body) = task.await.expect("task");
        match (is_ack, status) {
            (true, 200) => acks_changed += i32::from(body["changed"] == true),
            (true, 409) => {}
            (false, 200) => resolves_changed += i32::from(body["changed"] == true),
            other => panic!("unexpected answer {other:?}: {body}"),
        }
    }
    assert_eq!(resolves_changed, 1);
    assert!(acks_changed <= 1);
    let (_, timeline) = app.get("/api/v1/incidents/1/timeline").await;
    let kinds: Vec<&str> = timeline["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|entry| entry["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "incident.resolved").count(),
        1
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "incident.acknowledged")
            .count(),
        acks_changed as usize
    );
    assert_eq!(kinds.last(), Some(&"incident.resolved"));
    let (_, incident) = app.get("/api/v1/incidents/1").await;
    assert_eq!(incident["state"], "resolved");
    app.stop().await;
}

#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let app = spawn_app().await;
    let (status, document) = app
        .request(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, 200);
    assert!(document["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    let paths: BTreeSet<String> = document["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    let expected: BTreeSet<String> = [
        "/api/v1/incidents",
        "/api/v1/incidents/{number}",
        "/api/v1/incidents/{number}/acknowledge",
        "/api/v1/incidents/{number}/resolve",
        "/api/v1/incidents/{number}/escalate",
        "/api/v1/incidents/{number}/reassign",
        "/api/v1/incidents/{number}/priority",
        "/api/v1/incidents/{number}/notes",
        "/api/v1/incidents/{number}/timeline",
        "/api/v1/incidents/{number}/alerts",
        "/api/v1/incidents/{number}/status",
        "/api/v1/maintenance",
        "/api/v1/maintenance/{id}",
        "/api/v1/maintenance/{id}/cancel",
        "/api/v1/components",
        "/api/v1/components/{id}/override",
        "/api/v1/status/files",
        "/api/v1/alerts",
        "/api/v1/alerts/{id}",
        "/api/v1/alerts/{id}/events",
        "/api/v1/events/{id}",
        "/api/v1/services",
        "/api/v1/services/{id}/changes",
        "/api/v1/monitors",
        "/api/v1/monitors/{id}",
        "/api/v1/monitors/{id}/pause",
        "/api/v1/monitors/{id}/resume",
        "/api/v1/monitors/{id}/results",
        "/api/v1/config/reload",
        "/api/v1/oncall",
        "/api/v1/schedules/{id}/gaps",
        "/api/v1/schedules/{id}/overrides",
        "/api/v1/schedules/{id}/overrides/{override_id}",
        "/api/v1/users/{id}/shifts",
        "/api/v1/users/{id}/test-page",
        "/api/v1/notifications/{id}",
        "/api/v1/heartbeats",
        "/api/v1/heartbeats/{id}",
        "/api/v1/heartbeats/{id}/pings",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(paths, expected);
    // Every documented operation answers (not 404/405) with a valid token.
    for (path, operations) in document["paths"].as_object().expect("paths") {
        let concrete = path
            .replace("{number}", "1")
            .replace("{override_id}", "1")
            .replace("{id}", "checkout-api");
        for method in operations.as_object().expect("operations").keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let (status, body) = app
                .request(method.clone(), &concrete, None, Some(&app.token))
                .await;
            assert!(
                status != 405
                    && !(status == 404
                        && body["message"]
                            .as_str()
                            .is_some_and(|m| m.starts_with("no route"))),
                "{method} {concrete} answered {status}: {body}"
            );
        }
    }
    // Undeclared methods answer 405.
    let (status, _) = app
        .request(Method::DELETE, "/api/v1/incidents", None, Some(&app.token))
        .await;
    assert_eq!(status, 405);
    let (status, _) = app.request(Method::GET, "/v2/enqueue", None, None).await;
    assert_eq!(status, 405);
    app.stop().await;
}

#[tokio::test]
async fn health_and_metrics() {
    let app = spawn_app().await;
    let (status, body) = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(body, Value::String("ok\n".to_owned()));
    let (status, body) = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["store"], "sqlite");
    app.trigger(API_KEY, "m", "metrics").await;
    let (status, _) = app.enqueue(&json!({"routing_key": "short"})).await;
    assert_eq!(status, 400);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("tocsin_events_accepted_total{integration=\"events-v2\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "tocsin_events_rejected_total{integration=\"events-v2\",reason=\"invalid\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("tocsin_open_incidents 1"), "{metrics}");
    assert!(metrics.contains("tocsin_ingest_queue_depth 0"), "{metrics}");
    assert!(
        metrics.contains("tocsin_store_latency_seconds_bucket{le="),
        "{metrics}"
    );
    app.stop().await;
}
