//! The public status page end to end: a running application with a `[status_page]`, a monitor
//! watching a real HTTP server on loopback, and plain HTTP requests for the page and its JSON.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header;
use serde_json::Value;

use crate::support::{spawn_app_with, spawn_status_target, wait_for, TestApp};

fn config(address: std::net::SocketAddr) -> String {
    format!(
        r#"
[status_page]
title = "Shop status"
public_url = "https://status.shop.example"

[[components]]
id = "checkout"
name = "Checkout"
group = "Payments"

[[components]]
id = "search"
name = "Search"

[[services]]
id = "shop"
name = "Shop"
components = ["checkout"]

[[monitors]]
id = "shop-health"
service = "shop"
kind = "http"
url = "http://{address}/healthz"
interval = "1s"
timeout = "500ms"
confirm = 1
confirm_up = 1
"#
    )
}

/// `components.json`, once the first snapshot is built (503 until then).
async fn components(app: &TestApp) -> Option<Value> {
    let response = app
        .client
        .get(app.url("/api/v2/components.json"))
        .send()
        .await
        .expect("components.json");
    if response.status() == 503 {
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        return None;
    }
    assert_eq!(response.status(), 200);
    Some(response.json().await.expect("json"))
}

async fn status_of(app: &TestApp, id: &str) -> Option<String> {
    let document = components(app).await?;
    document["components"]
        .as_array()?
        .iter()
        .find(|component| component["id"] == id)
        .and_then(|component| component["status"].as_str())
        .map(str::to_owned)
}

/// Waits up to `seconds` for `components.json` to give the component `status`.
async fn wait_for_status(app: &TestApp, id: &str, status: &str, seconds: u64) {
    let seen = wait_for(Duration::from_secs(seconds), || async {
        status_of(app, id).await.filter(|seen| seen == status)
    })
    .await;
    assert_eq!(seen.as_deref(), Some(status), "component {id}");
}

#[tokio::test]
async fn the_page_and_its_json_follow_the_monitors_and_are_served_from_the_snapshot() {
    let (address, target) = spawn_status_target().await;
    let app = spawn_app_with(&config(address)).await;

    wait_for_status(&app, "checkout", "operational", 15).await;
    // A component without monitors is operational too.
    assert_eq!(
        status_of(&app, "search").await.as_deref(),
        Some("operational")
    );

    // The page: HTML, no credentials, cacheable, with the title, the components and the
    // uptime formula.
    let page = app
        .client
        .get(app.url("/status"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(headers[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let html = page.text().await.expect("body");
    for expected in [
        "Shop status",
        "Checkout",
        "Search",
        "All systems operational",
    ] {
        assert!(html.contains(expected), "the page lacks {expected:?}");
    }
    assert!(html.contains("Uptime is"), "the page states its formula");

    // Asked again with its ETag: 304 and no body.
    let again = app
        .client
        .get(app.url("/status"))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());

    // Compressed bodies, each with an ETag of its own, smaller than the page.
    for encoding in ["br", "gzip"] {
        let response = app
            .client
            .get(app.url("/status"))
            .header(header::ACCEPT_ENCODING, encoding)
            .send()
            .await
            .expect("compressed");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[header::CONTENT_ENCODING], encoding);
        assert_ne!(response.headers()[header::ETAG].to_str().unwrap(), etag);
        let body = response.bytes().await.unwrap();
        assert!(
            body.len() * 2 < html.len(),
            "{encoding}: {} of {} bytes",
            body.len(),
            html.len()
        );
    }

    // The Statuspage API: CORS for widgets, the page and its status.
    let summary = app
        .client
        .get(app.url("/api/v2/summary.json"))
        .send()
        .await
        .expect("summary");
    assert_eq!(summary.status(), 200);
    assert_eq!(summary.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let summary: Value = summary.json().await.unwrap();
    assert_eq!(summary["page"]["name"], "Shop status", "{summary}");
    assert_eq!(summary["page"]["url"], "https://status.shop.example");
    assert_eq!(summary["status"]["indicator"], "none", "{summary}");
    assert_eq!(
        summary["components"].as_array().unwrap().len(),
        3,
        "{summary}"
    );

    // `/` is the page on the status page's host only.
    let root = app
        .client
        .get(app.url("/"))
        .header(header::HOST, "status.shop.example")
        .send()
        .await
        .expect("root");
    assert_eq!(root.status(), 200);
    assert!(root.text().await.unwrap().contains("Shop status"));
    let elsewhere = app.client.get(app.url("/")).send().await.expect("root");
    assert_eq!(elsewhere.status(), 404);

    // The monitor fails: the component is in an outage within a few seconds, on the page and
    // in the JSON; the incident it opened stays internal.
    target.store(500, Ordering::SeqCst);
    wait_for_status(&app, "checkout", "major_outage", 20).await;
    let html = app
        .client
        .get(app.url("/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Major outage"), "the page shows the outage");
    let incidents: Value = app
        .client
        .get(app.url("/api/v2/incidents.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(incidents["incidents"], serde_json::json!([]), "{incidents}");

    // Recovered: operational again.
    target.store(200, Ordering::SeqCst);
    wait_for_status(&app, "checkout", "operational", 20).await;
    app.stop().await;
}

#[tokio::test]
async fn without_a_status_page_its_routes_say_how_to_add_one() {
    let app = spawn_app_with("").await;
    for path in ["/status", "/api/v2/summary.json"] {
        let (code, body) = app.get(path).await;
        assert_eq!(code, 404, "{path}: {body}");
        assert!(body.to_string().contains("[status_page]"), "{path}: {body}");
    }
    app.stop().await;
}
