//! Tocsin's scale-out store: PostgreSQL, shared by several replicas.
//!
//! Nothing here assumes a single writer. Every change runs in one transaction that first locks
//! the rows it decides on (`SELECT ... FOR UPDATE`): an incident command locks the incident, an
//! ingest batch locks the open incidents and alerts of its keys, logging due folds locks the
//! alerts it logs. Incidents are locked before alerts, and alerts in (service, dedup key) order.
//! New numbers come from the identity sequences. Migrations take PostgreSQL's advisory lock, so
//! replicas that start together migrate once.

mod due;
mod heartbeat;
mod ingest;
mod rows;
#[cfg(feature = "testsuite")]
pub mod testing;

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row;
use tocsin_store::{Inbound, IngestReport, ResolvePolicyOf, Store, StoreError};

use crate::ingest::IngestFailure;
use crate::rows::{db, Postgres};

/// Connections each replica keeps at most.
const MAX_CONNECTIONS: u32 = 10;

/// How many times an ingest batch is tried when it loses a race with another replica (both
/// opened the same alert, the other one opened an alert while this one was locking, or their
/// locks deadlocked). Each try starts from scratch.
const INGEST_ATTEMPTS: u32 = 5;

/// How many times logging due folds or an incident command is tried when its locks deadlock or
/// its transaction fails to serialize.
const WRITE_ATTEMPTS: u32 = 3;

/// The migrations this version knows, in order. Never edit one that has shipped: add one.
fn migrator() -> Migrator {
    let migrations = vec![
        Migration::new(
            1,
            Cow::Borrowed("core"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../migrations/0001_core.sql")),
            false,
        ),
        Migration::new(
            2,
            Cow::Borrowed("unlogged folds"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../migrations/0002_unlogged_folds.sql")),
            false,
        ),
        Migration::new(
            3,
            Cow::Borrowed("due work"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../migrations/0003_due_work.sql")),
            false,
        ),
        Migration::new(
            4,
            Cow::Borrowed("schedule overrides"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../migrations/0004_schedule_overrides.sql")),
            false,
        ),
        Migration::new(
            5,
            Cow::Borrowed("outbox"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../migrations/0005_outbox.sql")),
            false,
        ),
        Migration::new(
            6,
            Cow::Borrowed("monitor results"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../migrations/0006_monitor_results.sql")),
            false,
        ),
        Migration::new(
            7,
            Cow::Borrowed("heartbeats"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../migrations/0007_heartbeats.sql")),
            false,
        ),
        Migration::new(
            8,
            Cow::Borrowed("escalation turns"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../migrations/0008_escalation_turns.sql")),
            false,
        ),
        Migration::new(
            9,
            Cow::Borrowed("notices"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../migrations/0009_notices.sql")),
            false,
        ),
        Migration::new(
            10,
            Cow::Borrowed("monitor pauses"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../migrations/0010_monitor_pauses.sql")),
            false,
        ),
        Migration::new(
            11,
            Cow::Borrowed("compact monitor results"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!(
                "../migrations/0011_compact_monitor_results.sql"
            )),
            false,
        ),
        Migration::new(
            12,
            Cow::Borrowed("rule counts"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../migrations/0012_rule_counts.sql")),
            false,
        ),
        Migration::new(
            14,
            Cow::Borrowed("outbox contacts"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../migrations/0014_outbox_contacts.sql")),
            false,
        ),
        Migration::new(
            16,
            Cow::Borrowed("status page"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../migrations/0016_status_page.sql")),
            false,
        ),
    ];
    Migrator {
        migrations: Cow::Owned(migrations),
        // A newer tocsin may have applied migrations this one does not know: its changes are
        // additive, so this version still runs on that database.
        ignore_missing: true,
        locking: true,
        no_tx: false,
    }
}

/// PostgreSQL-backed [`Store`].
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// Where the database is, without credentials, for messages.
    location: String,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`),
    /// migrates it and checks that it has everything this version needs.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|error| {
            StoreError::Database(format!("the PostgreSQL URL is not valid: {error}").into())
        })?;
        let location = format!(
            "PostgreSQL database {} on {}:{}",
            options.get_database().unwrap_or(options.get_username()),
            options.get_host(),
            options.get_port()
        );
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.application_name("tocsin"))
            .await
            .map_err(|error| {
                StoreError::Database(format!("cannot connect to the {location}: {error}").into())
            })?;
        let migrator = migrator();
        migrator.run(&pool).await.map_err(|error| match error {
            sqlx::migrate::MigrateError::VersionMismatch(version) => StoreError::Schema(format!(
                "migration {version} in the database differs from the one this version ships; the database was migrated by a different build of tocsin"
            )),
            other => StoreError::Database(Box::new(other)),
        })?;
        let store = PostgresStore { pool, location };
        store.check_schema().await?;
        Ok(store)
    }

    async fn check_schema(&self) -> Result<(), StoreError> {
        let tables: Vec<&str> = tocsin_store::REQUIRED_SCHEMA
            .iter()
            .map(|(table, _)| *table)
            .collect();
        let rows = sqlx::query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = ANY($1)",
        )
        .bind(&tables)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut columns_of: HashMap<String, Vec<String>> = tables
            .iter()
            .map(|table| ((*table).to_owned(), Vec::new()))
            .collect();
        for row in rows {
            let table: String = row.try_get(0).map_err(db)?;
            let column: String = row.try_get(1).map_err(db)?;
            columns_of.entry(table).or_default().push(column);
        }
        match tocsin_store::missing_schema(&columns_of) {
            Some(problem) => Err(StoreError::Schema(format!("{}: {problem}", self.location))),
            None => Ok(()),
        }
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        self.pool.begin().await.map_err(db)
    }

    async fn read(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        self.pool.acquire().await.map_err(db)
    }
}

/// Runs `$body` with `$conn` bound to a connection of the pool.
macro_rules! read {
    ($store:expr, |$conn:ident| $body:expr) => {{
        let mut connection = $store.read().await?;
        let $conn = &mut Postgres(&mut connection);
        $body.await
    }};
}

/// Runs `$body` with `$conn` bound to a transaction and commits when it succeeds; a lost race
/// (deadlock, serialization failure) starts it again, up to [`WRITE_ATTEMPTS`] times.
macro_rules! write {
    ($store:expr, $what:literal, |$conn:ident| $body:expr) => {{
        let mut attempt = 1;
        loop {
            let mut tx = $store.begin().await?;
            let result = {
                let $conn = &mut Postgres(&mut tx);
                $body.await
            };
            let error = match result {
                Ok(value) => {
                    tx.commit().await.map_err(db)?;
                    break Ok(value);
                }
                Err(error) => error,
            };
            let _ = tx.rollback().await;
            match lost_race(&error) {
                Some(race) if attempt < WRITE_ATTEMPTS => {
                    tracing::warn!(
                        attempt,
                        race,
                        concat!($what, " raced another writer, trying again")
                    );
                    attempt += 1;
                }
                _ => break Err(error),
            }
        }
    }};
}

/// What kind of lost race an error is, when trying the same transaction again can cure it: a
/// unique violation (another replica opened the alert first), a deadlock or a serialization
/// failure.
fn lost_race(error: &StoreError) -> Option<&'static str> {
    let StoreError::Database(source) = error else {
        return None;
    };
    let Some(sqlx::Error::Database(error)) = source.downcast_ref::<sqlx::Error>() else {
        return None;
    };
    match error.code().as_deref() {
        Some("23505") => Some("unique_violation"),
        Some("40P01") => Some("deadlock_detected"),
        Some("40001") => Some("serialization_failure"),
        _ => None,
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use.
    async fn close(&self) {
        self.pool.close().await;
    }
}

impl PostgresStore {
    /// Ingest here is a conversation with the server, asynchronous throughout.
    fn blocking_ingest_path(&self) -> Option<&dyn tocsin_store::BlockingIngest> {
        None
    }

    /// This store's ingest path (the shared part, `tocsin_store::sql::check_batch`, comes
    /// first).
    async fn ingest_batch(
        &self,
        batch: &[Inbound],
        resolve_policy: ResolvePolicyOf<'_>,
    ) -> Result<IngestReport, StoreError> {
        let mut attempt = 1;
        loop {
            let mut tx = self.begin().await?;
            let failure = match ingest::ingest(&mut tx, batch, resolve_policy).await {
                Ok(report) => {
                    tx.commit().await.map_err(db)?;
                    return Ok(report);
                }
                Err(failure) => failure,
            };
            // Nothing of the batch is committed: give the connection back clean first.
            let _ = tx.rollback().await;
            let race = match &failure {
                IngestFailure::Raced => Some("alert_opened_meanwhile"),
                IngestFailure::Store(error) => lost_race(error),
            };
            match (race, failure) {
                (Some(race), _) if attempt < INGEST_ATTEMPTS => {
                    tracing::warn!(
                        attempt,
                        race,
                        "ingest batch raced another writer, trying again"
                    );
                    attempt += 1;
                }
                (_, IngestFailure::Store(error)) => return Err(error),
                (_, IngestFailure::Raced) => {
                    return Err(StoreError::Database(
                        format!(
                        "the ingest batch raced other writers {INGEST_ATTEMPTS} times; try again"
                    )
                        .into(),
                    ))
                }
            }
        }
    }
}

tocsin_store::impl_store_with_shared_sql!(PostgresStore);
tocsin_store::impl_override_store_with_shared_sql!(PostgresStore);
tocsin_store::impl_heartbeat_store!(PostgresStore);
tocsin_store::impl_rule_count_store!(PostgresStore);
tocsin_store::impl_status_store!(PostgresStore);
tocsin_store::impl_monitor_pause_store!(PostgresStore);
