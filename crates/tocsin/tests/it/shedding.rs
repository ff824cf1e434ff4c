//! Load shedding: a full ingest queue answers 429 with Retry-After instead of growing, and
//! liveness keeps answering while ingestion is saturated.

use std::time::{Duration, Instant};

use serde_json::json;
use tocsin_store::{EventFilter, PageRequest};

use crate::support::{spawn_app_with, API_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_answers_429_and_healthz_stays_fast() {
    // A queue of 4 events and batches of 1: a burst of concurrent senders must overflow it.
    let app = spawn_app_with("[ingest]\nqueue_capacity = 4\nmax_batch = 1\n").await;
    let mut senders = Vec::new();
    for n in 0..400 {
        let client = app.client.clone();
        let url = app.url("/v2/enqueue");
        senders.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .json(&json!({"routing_key": API_KEY, "event_action": "trigger",
                              "dedup_key": format!("burst-{n}"),
                              "payload": {"summary": "burst", "source": "s", "severity": "info"}}))
                .send()
                .await
                .expect("send");
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            (n, status, retry_after)
        }));
    }
    // While the burst is in flight, liveness answers.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let response = app
            .client
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(response.status().as_u16(), 200);
        slowest = slowest.max(started.elapsed());
    }
    let mut accepted = Vec::new();
    let mut throttled = 0;
    for sender in senders {
        let (n, status, retry_after) = sender.await.expect("sender");
        match status {
            202 => accepted.push(n),
            429 => {
                throttled += 1;
                assert_eq!(retry_after.as_deref(), Some("1"));
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(throttled > 0, "the queue never filled");
    assert!(!accepted.is_empty());
    // Generous bound: it only rules out liveness waiting behind ingestion.
    assert!(slowest < Duration::from_secs(2), "healthz took {slowest:?}");
    // Exactly the accepted events were stored.
    let stored = app
        .engine
        .events(&EventFilter::default(), PageRequest::first(500))
        .await
        .expect("events");
    assert_eq!(stored.items.len(), accepted.len());
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    assert!(
        metrics.contains(&format!(
            "tocsin_events_rejected_total{{integration=\"events-v2\",reason=\"queue_full\"}} {throttled}"
        )),
        "{metrics}"
    );
    app.stop().await;
}
