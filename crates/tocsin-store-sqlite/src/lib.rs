//! Tocsin's embedded store: one SQLite file in WAL mode.
//!
//! Writes go through a single connection (SQLite has one writer at a time anyway), each in a
//! `BEGIN IMMEDIATE` transaction so a write never has to upgrade a read lock; reads use a small
//! pool of read-only connections that never wait for the writer. Commits are durable
//! (`synchronous = FULL`): when `ingest` returns, the batch is on disk.

mod due;
mod heartbeat;
mod ingest;
mod rows;

use ingest::IngestWriter;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use tocsin_store::{Inbound, IngestReport, ResolvePolicyOf, Store, StoreError};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::rows::{db, Sqlite};

/// The file name inside the data directory.
pub const DATABASE_FILE: &str = "tocsin.sqlite";

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
            15,
            Cow::Borrowed("event chains"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../migrations/0015_event_chains.sql")),
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
        // additive, so this version still runs on that database. (Since migration 15 one is
        // not: an older version runs, but the events it writes stay out of their alerts'
        // event chains, so `/api/v1/alerts/{id}/events` does not list them; `/api/v1/events`
        // does.)
        ignore_missing: true,
        locking: true,
        no_tx: false,
    }
}

/// SQLite-backed [`Store`].
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    ingest: Arc<IngestWriter>,
    path: PathBuf,
    /// Stops the checkpointer (on `close`).
    stop_checkpointer: CancellationToken,
    /// Becomes true once the checkpointer has made its last checkpoint and closed.
    checkpointer_done: tokio::sync::watch::Receiver<bool>,
    /// Stops the checkpointer when the last clone of the store is dropped.
    _checkpointer: Arc<DropGuard>,
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);
/// WAL pages (4 KiB) beyond which the checkpointer waits for readers and restarts the WAL
/// rather than let it grow (256 MiB).
const WAL_RESTART_PAGES: i64 = 65_536;

impl SqliteStore {
    /// Opens (creating if needed) `tocsin.sqlite` in `data_dir`, migrates it and checks that it
    /// has everything this version needs.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|error| {
            StoreError::Database(
                format!(
                    "cannot create the data directory {}: {error}",
                    data_dir.display()
                )
                .into(),
            )
        })?;
        Self::open_file(&data_dir.join(DATABASE_FILE)).await
    }

    /// Opens (creating if needed) the database file at `path`.
    pub async fn open_file(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(false)
            .pragma("cache_size", "-65536")
            .pragma("mmap_size", "268435456")
            .pragma("temp_store", "memory")
            // Checkpoints run on their own connection (see `checkpoint_loop`), not inside the
            // writer's commits, so the serial ingest path does not pay for them.
            .pragma("wal_autocheckpoint", "0");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(|error| open_error(path, error))?;
        let migrator = migrator();
        migrator.run(&writer).await.map_err(|error| match error {
            sqlx::migrate::MigrateError::VersionMismatch(version) => StoreError::Schema(format!(
                "migration {version} in the database differs from the one this version ships; the database was migrated by a different build of tocsin"
            )),
            other => StoreError::Database(Box::new(other)),
        })?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().read_only(true))
            .await
            .map_err(|error| open_error(path, error))?;
        let checkpoint_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|error| open_error(path, error))?;
        let ingest = Arc::new(IngestWriter::start(path)?);
        let stop = CancellationToken::new();
        let stop_checkpointer = stop.clone();
        let (done, checkpointer_done) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            checkpoint_loop(checkpoint_pool, stop_checkpointer).await;
            let _ = done.send(true);
        });
        let store = SqliteStore {
            writer,
            reader,
            ingest,
            path: path.to_owned(),
            stop_checkpointer: stop.clone(),
            checkpointer_done,
            _checkpointer: Arc::new(stop.drop_guard()),
        };
        store.check_schema().await?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn check_schema(&self) -> Result<(), StoreError> {
        let mut columns_of = HashMap::new();
        for (table, _) in tocsin_store::REQUIRED_SCHEMA {
            let rows = sqlx::query("SELECT name FROM pragma_table_info(?)")
                .bind(*table)
                .fetch_all(&self.reader)
                .await
                .map_err(db)?;
            let columns = rows
                .iter()
                .map(|row| row.try_get::<String, _>(0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(db)?;
            columns_of.insert((*table).to_owned(), columns);
        }
        match tocsin_store::missing_schema(&columns_of) {
            Some(problem) => Err(StoreError::Schema(format!(
                "{}: {problem}",
                self.path.display()
            ))),
            None => Ok(()),
        }
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }

    async fn read(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, StoreError> {
        self.reader.acquire().await.map_err(db)
    }
}

/// Runs `$body` with `$conn` bound to a read-only connection of the pool.
macro_rules! read {
    ($store:expr, |$conn:ident| $body:expr) => {{
        let mut connection = $store.read().await?;
        let $conn = &mut Sqlite(&mut connection);
        $body.await
    }};
}

/// Runs `$body` (`$what`, for messages) with `$conn` bound to a `BEGIN IMMEDIATE` transaction, and commits when it
/// succeeds (on an error the transaction rolls back as it is dropped).
macro_rules! write {
    ($store:expr, $what:literal, |$conn:ident| $body:expr) => {{
        let mut tx = $store.begin_write().await?;
        let result = {
            let $conn = &mut Sqlite(&mut tx);
            $body.await?
        };
        tx.commit().await.map_err(db)?;
        Ok(result)
    }};
}

/// Copies the WAL back into the database file in the background, on its own connection (and so
/// on its own thread), until `stop` is cancelled.
async fn checkpoint_loop(pool: SqlitePool, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(CHECKPOINT_INTERVAL) => {}
        }
        let result: Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await;
        match result {
            Ok((_, wal_pages, _)) if wal_pages > WAL_RESTART_PAGES => {
                tracing::info!(wal_pages, "restarting a large write-ahead log");
                if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(error = %error, "checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "checkpoint failed"),
        }
    }
    // A last full checkpoint leaves a compact database behind on a clean shutdown.
    let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await;
    pool.close().await;
}

fn open_error(path: &Path, error: sqlx::Error) -> StoreError {
    StoreError::Database(
        format!(
            "cannot open the SQLite database {}: {error}",
            path.display()
        )
        .into(),
    )
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Closes the ingest connection (after the batch in progress) and stops the checkpointer, which
    /// copies the write-ahead log into the database file one last time, and closes the pools,
    /// waiting for connections in use.
    async fn close(&self) {
        self.ingest.close().await;
        self.reader.close().await;
        self.writer.close().await;
        // Last, so that no other connection holds the log while it is copied and truncated.
        self.stop_checkpointer.cancel();
        let mut done = self.checkpointer_done.clone();
        let _ = done.wait_for(|done| *done).await;
    }
}

impl SqliteStore {
    /// The ingest transaction is one blocking call on the ingest connection.
    fn blocking_ingest_path(&self) -> Option<&dyn tocsin_store::BlockingIngest> {
        Some(self.ingest.as_ref())
    }

    /// This store's ingest path (the shared part, `tocsin_store::sql::check_batch`, comes
    /// first).
    async fn ingest_batch(
        &self,
        batch: &[Inbound],
        resolve_policy: ResolvePolicyOf<'_>,
    ) -> Result<IngestReport, StoreError> {
        self.ingest.ingest(batch, resolve_policy).await
    }
}

tocsin_store::impl_store_with_shared_sql!(SqliteStore);
tocsin_store::impl_override_store_with_shared_sql!(SqliteStore);
tocsin_store::impl_heartbeat_store!(SqliteStore);
tocsin_store::impl_rule_count_store!(SqliteStore);
tocsin_store::impl_status_store!(SqliteStore);
tocsin_store::impl_monitor_pause_store!(SqliteStore);
