//! Lists return summaries: a page of alerts whose payloads are large costs neither the server's
//! memory nor the client's bandwidth (the details come from each alert's own endpoint).

use std::time::Duration;

use serde_json::json;

use crate::support::{spawn_app, API_KEY};

const ALERTS: usize = 500;
/// As close to the 512 KB body limit as one event can come with its envelope.
const DETAILS_BYTES: usize = 500 * 1024;

/// The resident memory of this process (where the app runs), in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kilobytes = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .expect("VmRSS in /proc/self/status");
    kilobytes * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_alerts_with_large_details_stays_small() {
    let app = spawn_app().await;
    let filler = "x".repeat(DETAILS_BYTES);
    for n in 0..ALERTS {
        let (status, body) = app
            .enqueue(&json!({
                "routing_key": API_KEY,
                "event_action": "trigger",
                "dedup_key": format!("big-{n}"),
                "payload": {
                    "summary": format!("alert {n}"),
                    "source": "web-1",
                    "severity": "error",
                    "custom_details": {"blob": filler},
                }
            }))
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let before = resident_bytes();

    // Eight full pages at once, while sampling the process's memory.
    let sampling = tokio::spawn(async {
        let mut peak = 0;
        for _ in 0..400 {
            peak = peak.max(resident_bytes());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        peak
    });
    let mut requests = Vec::new();
    for _ in 0..8 {
        let client = app.client.clone();
        let url = app.url("/api/v1/alerts?limit=500");
        let token = app.token.clone();
        requests.push(tokio::spawn(async move {
            let response = client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request");
            assert_eq!(response.status().as_u16(), 200);
            response.bytes().await.expect("body")
        }));
    }
    for request in requests {
        let body = request.await.expect("request task");
        assert!(body.len() < 1024 * 1024, "a page is {} bytes", body.len());
        let page: serde_json::Value = serde_json::from_slice(&body).expect("JSON page");
        let items = page["items"].as_array().expect("items");
        assert_eq!(items.len(), ALERTS);
        assert!(items.iter().all(|item| item.get("details").is_none()));
    }
    let peak = sampling.await.expect("sampling task");
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 300 * 1024 * 1024,
        "resident memory grew by {} MB serving the pages",
        grown / (1024 * 1024)
    );

    // One alert's own endpoint still has its details.
    let (status, alert) = app.get("/api/v1/alerts/1").await;
    assert_eq!(status, 200);
    assert_eq!(
        alert["details"]["custom_details"]["blob"]
            .as_str()
            .map(str::len),
        Some(DETAILS_BYTES)
    );
    app.stop().await;
}
