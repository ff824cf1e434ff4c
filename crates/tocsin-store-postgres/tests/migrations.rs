//! Tocsin boots on a database that a newer version migrated (extra migrations, tables and
//! columns), and refuses, naming what is wrong, one that lacks what this version needs.

mod support;

use sqlx::{Executor, Row};
use tocsin_core::{
    AlertId, EventAction, IncidentNumber, IncidentState, ResolvePolicy, ServiceId, TimelineKind,
};
use tocsin_store::conformance::event;
use tocsin_store::{AlertFilter, IncidentStore, PageRequest, Store, StoreError};
use tocsin_store_postgres::PostgresStore;

use crate::support::TestDatabase;

fn auto(_: &ServiceId) -> ResolvePolicy {
    ResolvePolicy::Auto
}

/// A migrated database, with the store that migrated it closed again.
async fn migrated_database() -> Option<TestDatabase> {
    let database = TestDatabase::create().await?;
    let store = PostgresStore::connect(database.url())
        .await
        .expect("first connect");
    store.close().await;
    Some(database)
}

async fn change(database: &TestDatabase, statements: &str) {
    let mut conn = database.connection().await;
    conn.execute(statements).await.expect("change the database");
}

async fn refusal(database: &TestDatabase) -> String {
    match PostgresStore::connect(database.url()).await {
        Err(StoreError::Schema(message)) => message,
        Err(other) => panic!("expected a schema error, got {other:?}"),
        Ok(_) => panic!("expected a schema error, the store connected"),
    }
}

#[tokio::test]
async fn boots_on_a_database_migrated_by_a_newer_version() {
    let Some(database) = migrated_database().await else {
        return;
    };
    change(
        &database,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (9999, 'from a newer tocsin', TRUE, '\\x0123456789abcdef'::bytea, 1);
         CREATE TABLE postmortems (id BIGINT PRIMARY KEY, body TEXT NOT NULL);
         ALTER TABLE alerts ADD COLUMN runbook_url TEXT;",
    )
    .await;

    let store = PostgresStore::connect(database.url())
        .await
        .expect("boots on the newer schema");
    let report = store
        .ingest(&[event("api", EventAction::Trigger, "disk", 0)], &auto)
        .await
        .expect("ingest");
    assert_eq!(report.incidents_opened, 1);
    let incident = store.incident(IncidentNumber(1)).await.expect("incident");
    assert_eq!(incident.state, IncidentState::Triggered);
    let alerts = store
        .alerts(&AlertFilter::default(), PageRequest::default())
        .await
        .expect("alerts");
    assert_eq!(alerts.items.len(), 1);
    assert_eq!(alerts.items[0].summary, "disk is broken (0)");
    store.close().await;

    let mut conn = database.connection().await;
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY 1")
        .fetch_all(&mut conn)
        .await
        .expect("versions");
    assert_eq!(
        versions,
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 9999]
    );
}

#[tokio::test]
async fn refuses_a_database_missing_a_required_column() {
    let Some(database) = migrated_database().await else {
        return;
    };
    change(&database, "ALTER TABLE alerts DROP COLUMN summary").await;
    let message = refusal(&database).await;
    assert!(message.contains("alerts.summary"), "{message}");
}

#[tokio::test]
async fn refuses_a_database_missing_a_column_of_a_later_migration() {
    let Some(database) = migrated_database().await else {
        return;
    };
    change(&database, "ALTER TABLE alerts DROP COLUMN folds_logged_at").await;
    let message = refusal(&database).await;
    assert!(message.contains("alerts.folds_logged_at"), "{message}");
}

/// An alert opened and folded into before migration 2 has no `folds_logged_at`: its folds count
/// from its first event, and log like any other.
#[tokio::test]
async fn alerts_from_before_the_unlogged_folds_migration_fold_and_log() {
    let Some(database) = migrated_database().await else {
        return;
    };
    let store = PostgresStore::connect(database.url())
        .await
        .expect("connect");
    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 0)], &auto)
        .await
        .expect("ingest");
    store.close().await;
    // Back to the schema of migration 1, with the alert in it.
    change(
        &database,
        "ALTER TABLE alerts DROP COLUMN unlogged_folds, DROP COLUMN folds_logged_at;
         DELETE FROM _sqlx_migrations WHERE version = 2;",
    )
    .await;

    let store = PostgresStore::connect(database.url())
        .await
        .expect("migrates again");
    let mut conn = database.connection().await;
    let row = sqlx::query("SELECT unlogged_folds, folds_logged_at FROM alerts")
        .fetch_one(&mut conn)
        .await
        .expect("alert");
    assert_eq!(row.get::<i64, _>(0), 0);
    assert_eq!(row.get::<Option<i64>, _>(1), None);

    let fold = event("api", EventAction::Trigger, "disk", 1);
    let first_seen = store
        .alert(AlertId(1))
        .await
        .expect("alert")
        .alert
        .first_seen;
    store.ingest(&[fold], &auto).await.expect("fold");
    let alert = store.alert(AlertId(1)).await.expect("alert");
    assert_eq!(alert.alert.count, 2);
    let row = sqlx::query("SELECT unlogged_folds, folds_logged_at FROM alerts")
        .fetch_one(&mut conn)
        .await
        .expect("alert");
    assert_eq!(row.get::<i64, _>(0), 1);
    assert_eq!(
        row.get::<Option<i64>, _>(1),
        Some(first_seen.as_microsecond())
    );

    let now = alert.alert.last_seen;
    let logged = store
        .log_due_folds(first_seen, now, 10)
        .await
        .expect("log due folds");
    assert_eq!(logged, 1);
    let timeline = store
        .timeline(IncidentNumber(1), PageRequest::default())
        .await
        .expect("timeline");
    let folded: Vec<_> = timeline
        .items
        .iter()
        .filter(|entry| entry.kind() == TimelineKind::AlertFolded)
        .collect();
    assert_eq!(folded.len(), 1);
    let tocsin_core::TimelineData::AlertFolded { events, count, .. } = &folded[0].data else {
        panic!("not a fold entry: {:?}", folded[0].data);
    };
    assert_eq!((*events, *count), (1, 2));
    store.close().await;
}

#[tokio::test]
async fn refuses_a_database_missing_a_required_table() {
    let Some(database) = migrated_database().await else {
        return;
    };
    change(&database, "DROP TABLE api_tokens").await;
    let message = refusal(&database).await;
    assert!(message.contains("table `api_tokens`"), "{message}");
}

#[tokio::test]
async fn connecting_again_keeps_the_data_and_migrates_once() {
    let Some(database) = migrated_database().await else {
        return;
    };
    let store = PostgresStore::connect(database.url())
        .await
        .expect("second connect");
    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 0)], &auto)
        .await
        .expect("ingest");
    store.close().await;
    let mut conn = database.connection().await;
    let before = sqlx::query("SELECT version, installed_on::text FROM _sqlx_migrations")
        .fetch_all(&mut conn)
        .await
        .expect("migrations");

    let store = PostgresStore::connect(database.url())
        .await
        .expect("third connect");
    let incident = store
        .incident(IncidentNumber(1))
        .await
        .expect("incident kept");
    assert_eq!(incident.title, "disk is broken (0)");
    store.close().await;
    let after = sqlx::query("SELECT version, installed_on::text FROM _sqlx_migrations")
        .fetch_all(&mut conn)
        .await
        .expect("migrations");
    assert_eq!(before.len(), 14);
    assert_eq!(after.len(), 14);
    for (before, after) in before.iter().zip(&after) {
        assert_eq!(
            before.get::<String, _>(1),
            after.get::<String, _>(1),
            "migration {} ran once",
            before.get::<i64, _>(0)
        );
    }
}

#[tokio::test]
async fn refuses_a_database_whose_migration_differs() {
    let Some(database) = migrated_database().await else {
        return;
    };
    change(
        &database,
        "UPDATE _sqlx_migrations SET checksum = '\\xdeadbeef'::bytea WHERE version = 1",
    )
    .await;
    let message = refusal(&database).await;
    assert!(message.contains("migration 1"), "{message}");
    assert!(message.contains("different build of tocsin"), "{message}");
}
