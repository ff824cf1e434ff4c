//! Tocsin's embedded store: one SQLite file in WAL mode.
//!
//! Writes go through a single connection (SQLite has one writer at a time anyway), each in a
//! `BEGIN IMMEDIATE` transaction so a write never has to upgrade a read lock; reads use a small
//! pool of read-only connections that never wait for the writer. Commits are durable
//! (`synchronous = FULL`): when `ingest` returns, the batch is on disk.

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
use tocsin_core::{Actor, AlertId, Command, IncidentNumber, ServiceId, Timestamp};
use tocsin_store::sql;
use tocsin_store::{
    AlertFilter, AlertRow, AlertSummary, ApiToken, ChangeEventRow, CommandOutcome, Counts,
    EventFilter, EventSummary, Inbound, IncidentFilter, IncidentRow, IncidentStore, IngestReport,
    Page, PageRequest, ResolvePolicyOf, Store, StoreError, StoredEvent, TimelineEntry, TokenScope,
    TokenStore,
};
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

/// Runs `$body` with `$conn` bound to a `BEGIN IMMEDIATE` transaction, and commits when it
/// succeeds (on an error the transaction rolls back as it is dropped).
macro_rules! write {
    ($store:expr, |$conn:ident| $body:expr) => {{
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

    /// Stops the ingest thread (after the batches handed to it) and the checkpointer, which
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

#[async_trait]
impl IncidentStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(batch = batch.len()), err)]
    async fn ingest(
        &self,
        batch: &[Inbound],
        resolve_policy: ResolvePolicyOf<'_>,
    ) -> Result<IngestReport, StoreError> {
        sql::check_batch(batch)?;
        self.ingest.ingest(batch, resolve_policy).await
    }

    async fn incident(&self, number: IncidentNumber) -> Result<IncidentRow, StoreError> {
        read!(self, |conn| sql::incident(conn, number, false))
    }

    async fn incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<IncidentRow>, StoreError> {
        read!(self, |conn| sql::incidents(conn, filter, page))
    }

    async fn alert(&self, id: AlertId) -> Result<AlertRow, StoreError> {
        read!(self, |conn| sql::alert(conn, id))
    }

    async fn alerts(
        &self,
        filter: &AlertFilter,
        page: PageRequest,
    ) -> Result<Page<AlertSummary>, StoreError> {
        read!(self, |conn| sql::alerts(conn, filter, page))
    }

    async fn timeline(
        &self,
        number: IncidentNumber,
        page: PageRequest,
    ) -> Result<Page<TimelineEntry>, StoreError> {
        read!(self, |conn| sql::timeline(conn, number, page))
    }

    async fn event(&self, id: i64) -> Result<StoredEvent, StoreError> {
        read!(self, |conn| sql::event(conn, id))
    }

    async fn events(
        &self,
        filter: &EventFilter,
        page: PageRequest,
    ) -> Result<Page<EventSummary>, StoreError> {
        read!(self, |conn| sql::events(conn, filter, page))
    }

    async fn change_events(
        &self,
        service: &ServiceId,
        page: PageRequest,
    ) -> Result<Page<ChangeEventRow>, StoreError> {
        read!(self, |conn| sql::change_events(conn, service, page))
    }

    #[tracing::instrument(skip_all, fields(limit = limit), err)]
    async fn log_due_folds(
        &self,
        due: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<usize, StoreError> {
        write!(self, |conn| sql::log_due_folds(conn, due, now, limit))
    }

    #[tracing::instrument(skip_all, fields(incident = %number, command = command.name()), err)]
    async fn command(
        &self,
        number: IncidentNumber,
        command: &Command,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<CommandOutcome, StoreError> {
        write!(self, |conn| sql::run_command(
            conn, number, command, actor, now
        ))
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        read!(self, |conn| sql::counts(conn))
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn create_api_token(
        &self,
        name: &str,
        scope: TokenScope,
        secret_hash: &str,
        now: Timestamp,
    ) -> Result<ApiToken, StoreError> {
        write!(self, |conn| sql::create_api_token(
            conn,
            name,
            scope,
            secret_hash,
            now
        ))
    }

    async fn api_token_by_hash(&self, secret_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        read!(self, |conn| sql::api_token_by_hash(conn, secret_hash))
    }

    async fn api_tokens(&self, page: PageRequest) -> Result<Page<ApiToken>, StoreError> {
        read!(self, |conn| sql::api_tokens(conn, page))
    }

    async fn revoke_api_token(&self, id: i64, now: Timestamp) -> Result<ApiToken, StoreError> {
        write!(self, |conn| sql::revoke_api_token(conn, id, now))
    }
}
