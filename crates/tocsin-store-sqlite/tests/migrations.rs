//! Tocsin boots on a database that a newer version migrated (extra migrations, tables and
//! columns), and refuses, naming what is wrong, one that lacks what this version needs.

use std::path::{Path, PathBuf};

use sqlx::{Connection, Executor, Row, SqliteConnection};
use tocsin_core::{EventAction, IncidentNumber, IncidentState, ResolvePolicy, ServiceId};
use tocsin_store::conformance::event;
use tocsin_store::{
    AlertFilter, EventFilter, IncidentStore, OutboxStore, PageRequest, Store, StoreError,
};
use tocsin_store_sqlite::{SqliteStore, DATABASE_FILE};

fn auto(_: &ServiceId) -> ResolvePolicy {
    ResolvePolicy::Auto
}

/// A data directory with a migrated database, the store that migrated it closed again.
async fn migrated_data_dir() -> tempfile::TempDir {
    // Under the target directory, so `cargo clean` removes what tests leave behind.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store = SqliteStore::open(dir.path()).await.expect("first open");
    store.close().await;
    dir
}

fn database_file(dir: &Path) -> PathBuf {
    dir.join(DATABASE_FILE)
}

async fn connection(dir: &Path) -> SqliteConnection {
    let url = format!("sqlite://{}", database_file(dir).display());
    SqliteConnection::connect(&url)
        .await
        .expect("connect to the database file")
}

async fn change(dir: &Path, statements: &str) {
    let mut conn = connection(dir).await;
    conn.execute(statements).await.expect("change the database");
    conn.close().await.expect("close");
}

async fn refusal(dir: &Path) -> String {
    match SqliteStore::open(dir).await {
        Err(StoreError::Schema(message)) => message,
        Err(other) => panic!("expected a schema error, got {other:?}"),
        Ok(_) => panic!("expected a schema error, the store opened"),
    }
}

#[tokio::test]
async fn boots_on_a_database_migrated_by_a_newer_version() {
    let dir = migrated_data_dir().await;
    change(
        dir.path(),
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (9999, 'from a newer tocsin', TRUE, X'0123456789abcdef', 1);
         CREATE TABLE postmortems (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
         ALTER TABLE alerts ADD COLUMN runbook_url TEXT;",
    )
    .await;

    let store = SqliteStore::open(dir.path())
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

    let mut conn = connection(dir.path()).await;
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY 1")
        .fetch_all(&mut conn)
        .await
        .expect("versions");
    assert_eq!(
        versions,
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 9999]
    );
}

#[tokio::test]
async fn refuses_a_database_missing_a_required_column() {
    let dir = migrated_data_dir().await;
    change(dir.path(), "ALTER TABLE alerts DROP COLUMN summary").await;
    let message = refusal(dir.path()).await;
    assert!(message.contains("alerts.summary"), "{message}");
}

#[tokio::test]
async fn refuses_a_database_missing_a_required_table() {
    let dir = migrated_data_dir().await;
    change(dir.path(), "DROP TABLE api_tokens").await;
    let message = refusal(dir.path()).await;
    assert!(message.contains("table `api_tokens`"), "{message}");
}

#[tokio::test]
async fn opening_again_keeps_the_data_and_migrates_once() {
    let dir = migrated_data_dir().await;
    let store = SqliteStore::open(dir.path()).await.expect("second open");
    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 0)], &auto)
        .await
        .expect("ingest");
    store.close().await;
    let mut conn = connection(dir.path()).await;
    let before = sqlx::query("SELECT version, installed_on FROM _sqlx_migrations")
        .fetch_all(&mut conn)
        .await
        .expect("migrations");

    let store = SqliteStore::open(dir.path()).await.expect("third open");
    let incident = store
        .incident(IncidentNumber(1))
        .await
        .expect("incident kept");
    assert_eq!(incident.title, "disk is broken (0)");
    store.close().await;
    let after = sqlx::query("SELECT version, installed_on FROM _sqlx_migrations")
        .fetch_all(&mut conn)
        .await
        .expect("migrations");
    assert_eq!(before.len(), 15);
    assert_eq!(after.len(), 15);
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
async fn an_alert_opened_before_migration_2_keeps_folding_and_logs_its_folds() {
    // The database as the version before migration 2 left it, with an open alert.
    let dir = migrated_data_dir().await;
    change(
        dir.path(),
        "DELETE FROM _sqlx_migrations WHERE version = 2;
         ALTER TABLE alerts DROP COLUMN unlogged_folds;
         ALTER TABLE alerts DROP COLUMN folds_logged_at;
         INSERT INTO incidents (number, service_id, dedup_key, title, severity, priority, state,
             open_alerts, created_at, impact_started_at, updated_at)
             VALUES (1, 'api', 'disk', 'disk is broken', 'error', 'P2', 'triggered', 1,
                     1800000000000000, 1800000000000000, 1800000000000000);
         INSERT INTO alerts (id, incident_number, service_id, dedup_key, state, count, first_seen,
             last_seen, severity, summary, source, details)
             VALUES (1, 1, 'api', 'disk', 'triggered', 3, 1800000000000000, 1800000000000000,
                     'error', 'disk is broken', 'db-1', '{}');",
    )
    .await;

    let store = SqliteStore::open(dir.path()).await.expect("migrates to 2");
    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 10)], &auto)
        .await
        .expect("fold");
    let alert = store.alert(tocsin_core::AlertId(1)).await.expect("alert");
    assert_eq!(
        alert.alert.count, 4,
        "the trigger folded into the old alert"
    );
    // Its folds wait from its first event (second 0): due at second 60.
    let at = |second: i64| {
        tocsin_core::Timestamp::from_second(1_800_000_000 + second).expect("timestamp")
    };
    assert_eq!(
        store.log_due_folds(at(-1), at(59), 10).await.expect("log"),
        0
    );
    assert_eq!(
        store.log_due_folds(at(0), at(60), 10).await.expect("log"),
        1
    );
    let timeline = store
        .timeline(IncidentNumber(1), PageRequest::default())
        .await
        .expect("timeline");
    assert_eq!(timeline.items.len(), 1);
    let tocsin_core::TimelineData::AlertFolded { events, count, .. } = &timeline.items[0].data
    else {
        panic!("not a fold entry: {:?}", timeline.items[0].data);
    };
    assert_eq!((*events, *count), (1, 4));
    store.close().await;
}

#[tokio::test]
async fn refuses_a_database_whose_migration_differs() {
    let dir = migrated_data_dir().await;
    change(
        dir.path(),
        "UPDATE _sqlx_migrations SET checksum = X'deadbeef' WHERE version = 1",
    )
    .await;
    let message = refusal(dir.path()).await;
    assert!(message.contains("migration 1"), "{message}");
    assert!(message.contains("different build of tocsin"), "{message}");
}

#[tokio::test]
async fn migration_9_rebuilds_the_outbox_keeping_its_rows_ids_and_sequence() {
    // The outbox as migration 5 made it (incident_number NOT NULL), with two rows and a third
    // deleted (its id is not to be handed out again).
    let dir = migrated_data_dir().await;
    change(
        dir.path(),
        "DELETE FROM _sqlx_migrations WHERE version = 9;
         DROP TABLE outbox;
         DROP TABLE server_keys;",
    )
    .await;
    change(dir.path(), include_str!("../migrations/0005_outbox.sql")).await;
    change(
        dir.path(),
        "INSERT INTO outbox (id, incident_number, recipient_kind, recipient, contact, method,
             kind, payload, idempotency_key, state, attempts, next_attempt_at, created_at,
             settled_at)
             VALUES (1, 7, 'user', 'ana', 'mail', 'email', 'page', '{\"level\":1}', 'page-7-a',
                     'sent', 1, 1800000000000000, 1800000000000000, 1800000001000000),
                    (2, 7, 'channel', 'chat', '', 'slack', 'incident.opened', '{}', 'update-7',
                     'pending', 0, 1800000000000000, 1800000000000000, NULL),
                    (3, 8, 'user', 'ben', 'mail', 'email', 'page', '{}', 'page-8-b',
                     'sent', 1, 1800000000000000, 1800000000000000, 1800000001000000);
         DELETE FROM outbox WHERE id = 3;",
    )
    .await;

    let store = SqliteStore::open(dir.path()).await.expect("migrates to 9");
    let kept = store.notification(1).await.expect("row 1 kept");
    assert_eq!(kept.incident, Some(IncidentNumber(7)));
    assert_eq!(kept.idempotency_key, "page-7-a");
    assert_eq!(kept.payload.to_string(), r#"{"level":1}"#);
    let waiting = store.notification(2).await.expect("row 2 kept");
    assert_eq!(waiting.recipient.to_string(), "channel:chat");
    assert_eq!(
        store.oldest_waiting_notification().await.expect("oldest"),
        Some(waiting.next_attempt_at),
        "the waiting index is back"
    );
    store.close().await;
    // A row about no incident is taken now, and the id sequence goes on from the deleted row.
    change(
        dir.path(),
        "INSERT INTO outbox (incident_number, recipient_kind, recipient, contact, method, kind,
             payload, idempotency_key, state, attempts, next_attempt_at, created_at)
             VALUES (NULL, 'user', 'ana', 'mail', 'email', 'test', '{}', 'test-1', 'pending', 0,
                     1800000000000000, 1800000000000000);",
    )
    .await;
    let store = SqliteStore::open(dir.path()).await.expect("open again");
    let notice = store.notification(4).await.expect("id 4");
    assert_eq!(notice.incident, None);
    assert_eq!(notice.idempotency_key, "test-1");
    store.close().await;
    let mut conn = connection(dir.path()).await;
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox'
         AND name LIKE 'outbox_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .expect("indexes");
    assert_eq!(indexes, ["outbox_by_incident", "outbox_waiting"]);
    let leftover: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE name = 'outbox_before_notices'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("tables");
    assert_eq!(leftover, 0);
}

#[tokio::test]
async fn migration_15_links_the_events_each_alert_had() {
    // Events written before migration 15: two alerts, their events interleaved, no chain.
    let dir = migrated_data_dir().await;
    let store = SqliteStore::open(dir.path()).await.expect("open");
    let mut batch = Vec::new();
    for second in 0..6 {
        batch.push(event("api", EventAction::Trigger, "disk", second));
        batch.push(event("api", EventAction::Trigger, "cpu", second));
    }
    store.ingest(&batch, &auto).await.expect("ingest");
    store.close().await;
    change(
        dir.path(),
        "DELETE FROM _sqlx_migrations WHERE version = 15;
         UPDATE events SET prev_event = NULL;
         ALTER TABLE events DROP COLUMN prev_event;
         ALTER TABLE alerts DROP COLUMN last_event;
         CREATE INDEX events_by_alert ON events (alert_id, id);",
    )
    .await;

    let store = SqliteStore::open(dir.path()).await.expect("migrates to 15");
    let alerts = store
        .alerts(&AlertFilter::default(), PageRequest::default())
        .await
        .expect("alerts");
    assert_eq!(alerts.items.len(), 2);
    for alert in &alerts.items {
        let events = store
            .events(
                &EventFilter {
                    alert: Some(alert.id),
                    ..EventFilter::default()
                },
                PageRequest::first(4),
            )
            .await
            .expect("events");
        assert_eq!(events.items.len(), 4);
        assert!(events
            .items
            .iter()
            .all(|event| event.alert == Some(alert.id)));
        assert!(events.items.windows(2).all(|pair| pair[0].id > pair[1].id));
        let rest = store
            .events(
                &EventFilter {
                    alert: Some(alert.id),
                    ..EventFilter::default()
                },
                PageRequest::new(events.next, 4),
            )
            .await
            .expect("second page");
        assert_eq!(rest.items.len(), 2, "six events per alert in all");
        assert_eq!(rest.next, None);
    }
    // New events join the chains the migration made.
    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 7)], &auto)
        .await
        .expect("ingest after");
    let disk = alerts
        .items
        .iter()
        .find(|alert| alert.dedup_key.as_str() == "disk")
        .expect("disk");
    let events = store
        .events(
            &EventFilter {
                alert: Some(disk.id),
                ..EventFilter::default()
            },
            PageRequest::first(100),
        )
        .await
        .expect("events after");
    assert_eq!(events.items.len(), 7);
    store.close().await;
    let mut conn = connection(dir.path()).await;
    let index: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'events_by_alert'")
            .fetch_one(&mut conn)
            .await
            .expect("indexes");
    assert_eq!(index, 0);
}
