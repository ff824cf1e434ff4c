//! The shared conformance suite on PostgreSQL, each case in a database of its own, plus what
//! only PostgreSQL does: several replicas writing to one database.

mod support;

use std::sync::Arc;

use tocsin_core::{
    Actor, AlertState, Command, EventAction, IncidentNumber, ResolvePolicy, ServiceId,
    TimelineKind, Timestamp,
};
use tocsin_store::conformance::event;
use tocsin_store::{
    AlertFilter, EventFilter, IncidentFilter, IncidentStore, PageRequest, Store, StoreError,
};
use tocsin_store_postgres::PostgresStore;

use crate::support::TestDatabase;

/// A store on a database of its own, dropped with the guard after the case.
async fn fresh_store() -> Option<(Arc<dyn Store>, TestDatabase)> {
    let database = TestDatabase::create().await?;
    let store = PostgresStore::connect(database.url())
        .await
        .expect("connect store");
    Some((Arc::new(store), database))
}

tocsin_store::conformance_suite!(fresh_store);
tocsin_store::override_suite!(fresh_store);
tocsin_store::status_suite!(fresh_store);

fn auto(_: &ServiceId) -> ResolvePolicy {
    ResolvePolicy::Auto
}

/// Two stores on one database, as two replicas of tocsin would have.
async fn two_replicas(database: &TestDatabase) -> [PostgresStore; 2] {
    [
        PostgresStore::connect(database.url())
            .await
            .expect("replica a"),
        PostgresStore::connect(database.url())
            .await
            .expect("replica b"),
    ]
}

/// `writers` tasks, alternating between the replicas, each ingesting `batches` batches of one
/// trigger per key; batch `b` of writer `w` is received at second `b * spacing + w`.
fn spawn_writers(
    replicas: &[PostgresStore; 2],
    writers: i64,
    batches: i64,
    keys: i64,
    spacing: i64,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..writers)
        .map(|writer| {
            let store = replicas[(writer % 2) as usize].clone();
            tokio::spawn(async move {
                for batch in 0..batches {
                    // Writers walk the keys in opposite orders, so their locks would cross if
                    // they were taken in batch order.
                    let events: Vec<_> = (0..keys)
                        .map(|n| if writer % 2 == 0 { n } else { keys - 1 - n })
                        .map(|key| {
                            event(
                                "api",
                                EventAction::Trigger,
                                &format!("key-{key}"),
                                batch * spacing + writer,
                            )
                        })
                        .collect();
                    store.ingest(&events, &auto).await.expect("ingest");
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_ingesting_the_same_keys_fold_every_event_once() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let replicas = two_replicas(&database).await;
    const WRITERS: i64 = 4;
    const BATCHES: i64 = 25;
    const KEYS: i64 = 10;
    for task in spawn_writers(&replicas, WRITERS, BATCHES, KEYS, 100) {
        task.await.expect("writer");
    }
    let store = &replicas[0];
    let alerts = store
        .alerts(&AlertFilter::default(), PageRequest::first(500))
        .await
        .expect("alerts");
    assert_eq!(alerts.items.len(), KEYS as usize, "one alert per key");
    assert!(alerts
        .items
        .iter()
        .all(|alert| alert.count == WRITERS * BATCHES && alert.state == AlertState::Triggered));
    let incidents = store
        .incidents(&IncidentFilter::default(), PageRequest::first(500))
        .await
        .expect("incidents");
    assert_eq!(incidents.items.len(), KEYS as usize, "one incident per key");
    assert!(incidents
        .items
        .iter()
        .all(|incident| incident.open_alerts == 1));
    let counts = store.counts().await.expect("counts");
    assert_eq!(counts.open_alerts, KEYS);
    let mut stored = 0;
    let mut page = PageRequest::first(500);
    loop {
        let events = store
            .events(&EventFilter::default(), page)
            .await
            .expect("events");
        stored += events.items.len() as i64;
        match events.next {
            Some(next) => page = PageRequest::new(Some(next), 500),
            None => break,
        }
    }
    assert_eq!(stored, WRITERS * BATCHES * KEYS);
    for replica in &replicas {
        replica.close().await;
    }
}

/// Replicas folding events into alerts while others log due folds and acknowledge the incidents:
/// every fold is counted once, by an `alert.folded` entry or as still unlogged on its alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_logging_folds_while_others_fold_count_every_fold_once() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let replicas = two_replicas(&database).await;
    const WRITERS: i64 = 2;
    const BATCHES: i64 = 40;
    const KEYS: i64 = 6;
    // Ten seconds apart, so ingest logs folds of its own once a minute of them.
    let mut tasks = spawn_writers(&replicas, WRITERS, BATCHES, KEYS, 10);
    for logger in 0..2_i64 {
        let store = replicas[(logger % 2) as usize].clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..BATCHES {
                let now = second(round * 10);
                store
                    .log_due_folds(second(1_000_000), now, 2)
                    .await
                    .expect("log due folds");
            }
        }));
    }
    {
        let store = replicas[1].clone();
        tasks.push(tokio::spawn(async move {
            for number in 1..=KEYS {
                match store
                    .command(
                        IncidentNumber(number),
                        &Command::Acknowledge,
                        &Actor::system(),
                        second(200),
                    )
                    .await
                {
                    Ok(_) | Err(StoreError::NotFound { .. }) => {}
                    Err(error) => panic!("acknowledge: {error}"),
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }

    let store = &replicas[0];
    let mut conn = database.connection().await;
    let alerts = store
        .alerts(&AlertFilter::default(), PageRequest::first(500))
        .await
        .expect("alerts");
    assert_eq!(alerts.items.len(), KEYS as usize, "one alert per key");
    for alert in &alerts.items {
        assert_eq!(alert.count, WRITERS * BATCHES);
        let unlogged: i64 = sqlx::query_scalar("SELECT unlogged_folds FROM alerts WHERE id = $1")
            .bind(alert.id.0)
            .fetch_one(&mut conn)
            .await
            .expect("unlogged folds");
        let timeline = store
            .timeline(alert.incident, PageRequest::first(500))
            .await
            .expect("timeline");
        let logged: i64 = timeline
            .items
            .iter()
            .filter(|entry| entry.kind() == TimelineKind::AlertFolded)
            .map(|entry| entry.data.folded_events().expect("events"))
            .sum();
        assert_eq!(
            logged + unlogged,
            alert.count - 1,
            "alert {} counts every fold once",
            alert.id
        );
    }
    for replica in &replicas {
        replica.close().await;
    }
}

fn second(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).expect("valid timestamp")
}
