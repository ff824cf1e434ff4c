//! The blocking ingest call the engine's writer thread makes: the same transaction as the
//! async `ingest`, sharing what the connection remembers, and refused once the store is closed.

use tocsin_core::{EventAction, ResolvePolicy, ServiceId};
use tocsin_store::conformance::event;
use tocsin_store::{AlertFilter, Inbound, IncidentStore, PageRequest, Store};
use tocsin_store_sqlite::SqliteStore;

fn auto(_: &ServiceId) -> ResolvePolicy {
    ResolvePolicy::Auto
}

#[tokio::test]
async fn the_blocking_call_and_the_async_one_fold_into_one_alert() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store = SqliteStore::open(dir.path()).await.expect("store");

    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 0)], &auto)
        .await
        .expect("open through ingest");
    let blocking = store
        .blocking_ingest()
        .expect("SQLite ingest is a blocking call");
    let folds: Vec<_> = (1..=3)
        .map(|second| event("api", EventAction::Trigger, "disk", second))
        .collect();
    let report = blocking
        .ingest_blocking(&folds, &auto)
        .expect("fold through the blocking call");
    assert_eq!(report.events, 3);
    assert_eq!(
        report.alerts_opened, 0,
        "the open alert was found, not a new one"
    );
    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 4)], &auto)
        .await
        .expect("fold through ingest");
    let alerts = store
        .alerts(&AlertFilter::default(), PageRequest::default())
        .await
        .expect("alerts");
    assert_eq!(alerts.items.len(), 1);
    assert_eq!(alerts.items[0].count, 5);

    // The shared checks come first: a NUL byte is refused whole, nothing stored.
    let mut bad = event("api", EventAction::Trigger, "disk", 5);
    if let Inbound::Alert(alert) = &mut bad {
        alert.summary = "bad\0summary".to_owned();
    }
    let good = event("api", EventAction::Trigger, "disk", 5);
    assert!(blocking.ingest_blocking(&[good, bad], &auto).is_err());
    let alerts = store
        .alerts(&AlertFilter::default(), PageRequest::default())
        .await
        .expect("alerts");
    assert_eq!(
        alerts.items[0].count, 5,
        "nothing of the refused batch was stored"
    );

    store.close().await;
    let error = blocking
        .ingest_blocking(&[event("api", EventAction::Trigger, "disk", 6)], &auto)
        .expect_err("closed");
    let cause = std::error::Error::source(&error).map(ToString::to_string);
    assert_eq!(cause.as_deref(), Some("the SQLite store is closed"));
}
