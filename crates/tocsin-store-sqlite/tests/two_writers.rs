//! Two stores on one database file (two tocsin processes, or a command tool next to the server):
//! each sees what the other committed, whatever it remembers of what is open.

use tocsin_core::{
    Actor, Command, EventAction, IncidentNumber, ResolvePolicy, ServiceId, Timestamp,
};
use tocsin_store::conformance::event;
use tocsin_store::{AlertFilter, EventFilter, IncidentStore, PageRequest, Store};
use tocsin_store_sqlite::SqliteStore;

fn auto(_: &ServiceId) -> ResolvePolicy {
    ResolvePolicy::Auto
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).expect("valid timestamp")
}

#[tokio::test]
async fn stores_on_one_file_fold_into_each_others_alerts() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let a = SqliteStore::open(dir.path()).await.expect("store a");
    let b = SqliteStore::open(dir.path()).await.expect("store b");

    a.ingest(&[event("api", EventAction::Trigger, "disk", 0)], &auto)
        .await
        .expect("open");
    let folds: Vec<_> = (1..=5)
        .map(|second| event("api", EventAction::Trigger, "disk", second))
        .collect();
    b.ingest(&folds, &auto).await.expect("fold through b");
    a.ingest(&[event("api", EventAction::Trigger, "disk", 6)], &auto)
        .await
        .expect("fold through a");
    let alerts = a
        .alerts(&AlertFilter::default(), PageRequest::default())
        .await
        .expect("alerts");
    assert_eq!(alerts.items.len(), 1);
    assert_eq!(alerts.items[0].count, 7, "a saw the five folds b wrote");

    // A command through the other store: the next acknowledge event finds it done.
    b.command(
        IncidentNumber(1),
        &Command::Acknowledge,
        &Actor::token("ops"),
        at(7),
    )
    .await
    .expect("acknowledge");
    a.ingest(&[event("api", EventAction::Acknowledge, "disk", 8)], &auto)
        .await
        .expect("acknowledge event");
    let events = a
        .events(&EventFilter::default(), PageRequest::first(1))
        .await
        .expect("events");
    assert_eq!(events.items[0].outcome, "ignored_already_acknowledged");

    // Resolved through b; a trigger through a opens a new alert and incident.
    b.ingest(&[event("api", EventAction::Resolve, "disk", 9)], &auto)
        .await
        .expect("resolve");
    let report = a
        .ingest(&[event("api", EventAction::Trigger, "disk", 10)], &auto)
        .await
        .expect("reopen");
    assert_eq!(report.incidents_opened, 1);
    assert_eq!(report.alerts_opened, 1);
    let alerts = b
        .alerts(&AlertFilter::default(), PageRequest::default())
        .await
        .expect("alerts");
    assert_eq!(alerts.items.len(), 2);
    assert_eq!(alerts.items[0].count, 1);
    a.close().await;
    b.close().await;
}
