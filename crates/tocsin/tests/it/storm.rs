//! An event storm: a million events on one dedup key make one alert and one incident.

use std::sync::Arc;

use serde_json::json;
use tocsin_core::{DedupKey, Event, EventAction, Integration, ServiceId, Severity};
use tocsin_store::{AlertFilter, Inbound, IncidentFilter, PageRequest};

use crate::support::spawn_app_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_events_on_one_key_make_one_alert_and_one_incident() {
    const TOTAL: usize = 1_000_000;
    const PER_SUBMIT: usize = 1_000;
    const SENDERS: usize = 8;
    let app = spawn_app_with("[ingest]\nqueue_capacity = 20000\nmax_batch = 8192\n").await;
    let now = app.engine.now();
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let engine = Arc::clone(&app.engine);
        senders.push(tokio::spawn(async move {
            for round in 0..TOTAL / PER_SUBMIT / SENDERS {
                let batch: Vec<Inbound> = (0..PER_SUBMIT)
                    .map(|n| {
                        Inbound::Alert(Event {
                            service: ServiceId::new("checkout-api"),
                            integration: Integration::EventsV2,
                            action: EventAction::Trigger,
                            dedup_key: DedupKey::parse("error-storm").expect("key"),
                            severity: Severity::Error,
                            summary: "NullPointerException in CartController".to_owned(),
                            source: format!("web-{sender}"),
                            occurred_at: None,
                            received_at: now,
                            details: json!({"n": round * PER_SUBMIT + n}),
                        })
                    })
                    .collect();
                loop {
                    match engine.submit(batch.clone()).await {
                        Ok(()) => break,
                        Err(tocsin_engine::SubmitError::QueueFull) => {
                            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        }
                        Err(other) => panic!("submit failed: {other}"),
                    }
                }
            }
        }));
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    let incidents = app
        .engine
        .incidents(&IncidentFilter::default(), PageRequest::default())
        .await
        .expect("incidents");
    assert_eq!(incidents.items.len(), 1);
    let alerts = app
        .engine
        .alerts(&AlertFilter::default(), PageRequest::default())
        .await
        .expect("alerts");
    assert_eq!(alerts.items.len(), 1);
    assert_eq!(alerts.items[0].count, TOTAL as i64);
    // Folds reach the timeline at most once a minute, and all of them before a resolution.
    let number = incidents.items[0].number;
    app.engine
        .command(
            number,
            &tocsin_core::Command::Resolve,
            &tocsin_core::Actor::token("storm-test"),
        )
        .await
        .expect("resolve");
    let timeline = app
        .engine
        .timeline(number, PageRequest::first(500))
        .await
        .expect("timeline");
    let folded: i64 = timeline
        .items
        .iter()
        .filter_map(|entry| entry.data.folded_events())
        .sum();
    assert_eq!(folded, TOTAL as i64 - 1, "every fold is counted once");
    assert!(
        timeline.items.len() < 20,
        "{} entries",
        timeline.items.len()
    );
    app.stop().await;
}
