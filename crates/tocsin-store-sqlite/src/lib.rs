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
use serde_json::json;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use tocsin_core::{
    Actor, AlertId, IncidentNumber, Priority, ServiceId, TimelineKind, Timestamp, Transition,
    UnloggedFolds,
};
use tocsin_store::decode;
use tocsin_store::{
    AlertFilter, AlertRow, ApiToken, ChangeEventRow, CommandOutcome, Counts, EventFilter, Inbound,
    IncidentFilter, IncidentRow, IngestReport, Page, PageRequest, ResolvePolicyOf, Store,
    StoreError, StoredEvent, TimelineEntry, TokenScope,
};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::rows::{
    db, micros, read_alert, read_api_token, read_change_event, read_event, read_incident,
    read_timeline_entry, Stored, ALERT_COLUMNS, EVENT_COLUMNS, INCIDENT_COLUMNS,
};

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
        tokio::spawn(checkpoint_loop(checkpoint_pool, stop.clone()));
        let store = SqliteStore {
            writer,
            reader,
            ingest,
            path: path.to_owned(),
            stop_checkpointer: stop.clone(),
            _checkpointer: Arc::new(stop.drop_guard()),
        };
        store.check_schema().await?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the ingest thread and the checkpointer and closes the pools, waiting for
    /// connections in use. Calls made after it fail.
    pub async fn close(&self) {
        self.ingest.close();
        self.stop_checkpointer.cancel();
        self.reader.close().await;
        self.writer.close().await;
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

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }
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

async fn incident_in(
    conn: &mut SqliteConnection,
    number: IncidentNumber,
) -> Result<IncidentRow, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE number = ?"
    ))
    .bind(number.0)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?
    .ok_or_else(|| StoreError::not_found(format!("incident {number}")))?;
    read_incident(&row)
}

async fn append_timeline(
    conn: &mut SqliteConnection,
    number: IncidentNumber,
    at: Timestamp,
    actor: &Actor,
    kind: TimelineKind,
    data: &serde_json::Value,
) -> Result<TimelineEntry, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO timeline_entries (incident_number, at, actor, kind, data) VALUES (?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(number.0)
    .bind(micros(at))
    .bind(actor.as_str())
    .bind(kind.as_str())
    .bind(data.to_string())
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    Ok(TimelineEntry {
        id,
        incident: number,
        at,
        actor: actor.clone(),
        kind,
        data: data.clone(),
    })
}

/// Writes the `alert.folded` entries of `folds` (at `now`, by the system) and marks those alerts
/// logged.
async fn log_folds(
    conn: &mut SqliteConnection,
    folds: &[UnloggedFolds],
    now: Timestamp,
) -> Result<(), StoreError> {
    for fold in folds {
        let entry = fold.entry(now, Actor::system());
        append_timeline(
            conn,
            fold.incident,
            now,
            &entry.actor,
            entry.kind,
            &entry.data,
        )
        .await?;
        sqlx::query("UPDATE alerts SET unlogged_folds = 0, folds_logged_at = ? WHERE id = ?")
            .bind(micros(now))
            .bind(fold.alert.0)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// The unlogged folds of an incident's open alerts.
async fn unlogged_folds_of(
    conn: &mut SqliteConnection,
    number: IncidentNumber,
) -> Result<Vec<UnloggedFolds>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {UNLOGGED_FOLDS_COLUMNS} FROM alerts
         WHERE incident_number = ? AND state <> 'resolved' AND unlogged_folds > 0 ORDER BY id"
    ))
    .bind(number.0)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| decode::unlogged_folds(&Stored(row)))
        .collect()
}

const UNLOGGED_FOLDS_COLUMNS: &str =
    "id, incident_number, dedup_key, unlogged_folds, count, summary, last_seen";

/// What acknowledging or resolving an incident changes, beyond what every command does.
struct StateChange {
    /// Updates the incident; binds the time twice, then the number.
    incident: &'static str,
    /// Updates its alerts; binds the time, then the number.
    alerts: &'static str,
    kind: TimelineKind,
    /// The timeline entry's field that counts the alerts changed.
    alerts_field: &'static str,
}

/// Acknowledges or resolves an incident and its alerts: first the `alert.folded` entries of
/// their waiting folds, then the updates, then the command's timeline entry.
async fn change_state(
    conn: &mut SqliteConnection,
    number: IncidentNumber,
    actor: &Actor,
    now: Timestamp,
    change: StateChange,
) -> Result<(), StoreError> {
    let folds = unlogged_folds_of(conn, number).await?;
    log_folds(conn, &folds, now).await?;
    sqlx::query(change.incident)
        .bind(micros(now))
        .bind(micros(now))
        .bind(number.0)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let alerts = sqlx::query(change.alerts)
        .bind(micros(now))
        .bind(number.0)
        .execute(&mut *conn)
        .await
        .map_err(db)?
        .rows_affected();
    append_timeline(
        conn,
        number,
        now,
        actor,
        change.kind,
        &json!({ change.alerts_field: alerts }),
    )
    .await?;
    Ok(())
}

/// Reads the incident as the command left it and commits.
async fn finish_command(
    mut tx: sqlx::Transaction<'static, Sqlite>,
    number: IncidentNumber,
    transition: Transition,
) -> Result<CommandOutcome, StoreError> {
    let incident = incident_in(&mut tx, number).await?;
    tx.commit().await.map_err(db)?;
    Ok(CommandOutcome {
        incident,
        transition,
    })
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

    #[tracing::instrument(skip_all, fields(batch = batch.len()), err)]
    async fn ingest(
        &self,
        batch: &[Inbound],
        resolve_policy: ResolvePolicyOf<'_>,
    ) -> Result<IngestReport, StoreError> {
        self.ingest.ingest(batch, resolve_policy).await
    }

    #[tracing::instrument(skip_all, err)]
    async fn log_due_folds(
        &self,
        due: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin_write().await?;
        // Only open alerts hold unlogged folds: their partial index is the short list to read.
        let rows = sqlx::query(&format!(
            "SELECT {UNLOGGED_FOLDS_COLUMNS} FROM alerts INDEXED BY alerts_one_open_per_key
             WHERE state <> 'resolved' AND unlogged_folds > 0
               AND COALESCE(folds_logged_at, first_seen) <= ?
             ORDER BY id LIMIT ?"
        ))
        .bind(micros(due))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let folds = rows
            .iter()
            .map(|row| decode::unlogged_folds(&Stored(row)))
            .collect::<Result<Vec<_>, _>>()?;
        log_folds(&mut tx, &folds, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(folds.len())
    }

    async fn incident(&self, number: IncidentNumber) -> Result<IncidentRow, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(db)?;
        incident_in(&mut conn, number).await
    }

    async fn incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<IncidentRow>, StoreError> {
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE 1 = 1"
        ));
        if !filter.states.is_empty() {
            query.push(" AND state IN (");
            let mut list = query.separated(", ");
            for state in &filter.states {
                list.push_bind(state.as_str());
            }
            list.push_unseparated(")");
        }
        if let Some(service) = &filter.service {
            query.push(" AND service_id = ").push_bind(service.as_str());
        }
        if let Some(priority) = filter.priority {
            query.push(" AND priority = ").push_bind(priority.as_str());
        }
        if let Some(after) = page.after {
            query.push(" AND number < ").push_bind(after);
        }
        query
            .push(" ORDER BY number DESC LIMIT ")
            .push_bind(i64::from(page.limit()) + 1);
        let rows = query.build().fetch_all(&self.reader).await.map_err(db)?;
        let items = rows
            .iter()
            .map(read_incident)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |incident| incident.number.0))
    }

    async fn alert(&self, id: AlertId) -> Result<AlertRow, StoreError> {
        let row = sqlx::query(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::not_found(format!("alert {id}")))?;
        read_alert(&row)
    }

    async fn alerts(
        &self,
        filter: &AlertFilter,
        page: PageRequest,
    ) -> Result<Page<AlertRow>, StoreError> {
        let mut query =
            QueryBuilder::<Sqlite>::new(format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE 1 = 1"));
        if let Some(state) = filter.state {
            query.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(service) = &filter.service {
            query.push(" AND service_id = ").push_bind(service.as_str());
        }
        if let Some(incident) = filter.incident {
            query.push(" AND incident_number = ").push_bind(incident.0);
        }
        if let Some(after) = page.after {
            query.push(" AND id < ").push_bind(after);
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(page.limit()) + 1);
        let rows = query.build().fetch_all(&self.reader).await.map_err(db)?;
        let items = rows.iter().map(read_alert).collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |alert| alert.id.0))
    }

    async fn timeline(
        &self,
        number: IncidentNumber,
        page: PageRequest,
    ) -> Result<Page<TimelineEntry>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(db)?;
        incident_in(&mut conn, number).await?;
        let rows = sqlx::query(
            "SELECT id, incident_number, at, actor, kind, data FROM timeline_entries
             WHERE incident_number = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(number.0)
        .bind(page.after.unwrap_or(0))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        let items = rows
            .iter()
            .map(read_timeline_entry)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |entry| entry.id))
    }

    async fn events(
        &self,
        filter: &EventFilter,
        page: PageRequest,
    ) -> Result<Page<StoredEvent>, StoreError> {
        let mut query =
            QueryBuilder::<Sqlite>::new(format!("SELECT {EVENT_COLUMNS} FROM events WHERE 1 = 1"));
        if let Some(service) = &filter.service {
            query.push(" AND service_id = ").push_bind(service.as_str());
        }
        if let Some(key) = &filter.dedup_key {
            query.push(" AND dedup_key = ").push_bind(key.as_str());
        }
        if let Some(alert) = filter.alert {
            query.push(" AND alert_id = ").push_bind(alert.0);
        }
        if let Some(after) = page.after {
            query.push(" AND id < ").push_bind(after);
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(page.limit()) + 1);
        let rows = query.build().fetch_all(&self.reader).await.map_err(db)?;
        let items = rows.iter().map(read_event).collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |event| event.id))
    }

    async fn change_events(
        &self,
        service: &ServiceId,
        page: PageRequest,
    ) -> Result<Page<ChangeEventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, service_id, summary, source, occurred_at, received_at, details, links
             FROM change_events WHERE service_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(service.as_str())
        .bind(page.after.unwrap_or(i64::MAX))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.reader)
        .await
        .map_err(db)?;
        let items = rows
            .iter()
            .map(read_change_event)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |change| change.id))
    }

    #[tracing::instrument(skip_all, fields(incident = %number), err(level = "debug"))]
    async fn acknowledge_incident(
        &self,
        number: IncidentNumber,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<CommandOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        let incident = incident_in(&mut tx, number).await?;
        let transition = tocsin_core::acknowledge_incident(number, incident.state)
            .map_err(|error| StoreError::Conflict(error.to_string()))?;
        if transition == Transition::Changed {
            change_state(
                &mut tx,
                number,
                actor,
                now,
                StateChange {
                    incident: "UPDATE incidents SET state = 'acknowledged', acknowledged_at = ?, updated_at = ? WHERE number = ?",
                    alerts: "UPDATE alerts SET state = 'acknowledged', acknowledged_at = ? WHERE incident_number = ? AND state = 'triggered'",
                    kind: TimelineKind::IncidentAcknowledged,
                    alerts_field: "alerts_acknowledged",
                },
            )
            .await?;
        }
        finish_command(tx, number, transition).await
    }

    #[tracing::instrument(skip_all, fields(incident = %number), err(level = "debug"))]
    async fn resolve_incident(
        &self,
        number: IncidentNumber,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<CommandOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        let incident = incident_in(&mut tx, number).await?;
        let transition = tocsin_core::resolve_incident(incident.state);
        if transition == Transition::Changed {
            change_state(
                &mut tx,
                number,
                actor,
                now,
                StateChange {
                    incident: "UPDATE incidents SET state = 'resolved', open_alerts = 0, resolved_at = ?, updated_at = ? WHERE number = ?",
                    alerts: "UPDATE alerts SET state = 'resolved', resolved_at = ? WHERE incident_number = ? AND state <> 'resolved'",
                    kind: TimelineKind::IncidentResolved,
                    alerts_field: "alerts_resolved",
                },
            )
            .await?;
        }
        finish_command(tx, number, transition).await
    }

    #[tracing::instrument(skip_all, fields(incident = %number), err(level = "debug"))]
    async fn set_incident_priority(
        &self,
        number: IncidentNumber,
        priority: Priority,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<CommandOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        let incident = incident_in(&mut tx, number).await?;
        let transition = tocsin_core::set_priority(incident.priority, priority);
        if transition == Transition::Changed {
            sqlx::query("UPDATE incidents SET priority = ?, updated_at = ? WHERE number = ?")
                .bind(priority.as_str())
                .bind(micros(now))
                .bind(number.0)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            append_timeline(
                &mut tx,
                number,
                now,
                actor,
                TimelineKind::PriorityChanged,
                &json!({ "from": incident.priority.as_str(), "to": priority.as_str() }),
            )
            .await?;
        }
        finish_command(tx, number, transition).await
    }

    #[tracing::instrument(skip_all, fields(incident = %number), err(level = "debug"))]
    async fn add_note(
        &self,
        number: IncidentNumber,
        text: &str,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<TimelineEntry, StoreError> {
        let mut tx = self.begin_write().await?;
        incident_in(&mut tx, number).await?;
        sqlx::query("UPDATE incidents SET updated_at = ? WHERE number = ?")
            .bind(micros(now))
            .bind(number.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let entry = append_timeline(
            &mut tx,
            number,
            now,
            actor,
            TimelineKind::NoteAdded,
            &json!({ "text": text }),
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(entry)
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM incidents WHERE state <> 'resolved'),
                    (SELECT COUNT(*) FROM alerts WHERE state <> 'resolved')",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(db)?;
        Ok(Counts {
            open_incidents: row.try_get(0).map_err(db)?,
            open_alerts: row.try_get(1).map_err(db)?,
        })
    }

    async fn create_api_token(
        &self,
        name: &str,
        scope: TokenScope,
        secret_hash: &str,
        now: Timestamp,
    ) -> Result<ApiToken, StoreError> {
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (name, scope, secret_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(scope.as_str())
        .bind(secret_hash)
        .bind(micros(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(ApiToken {
            id,
            name: name.to_owned(),
            scope,
            created_at: now,
            revoked_at: None,
        })
    }

    async fn api_token_by_hash(&self, secret_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, scope, created_at, revoked_at FROM api_tokens
             WHERE secret_hash = ? AND revoked_at IS NULL",
        )
        .bind(secret_hash)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        row.as_ref().map(read_api_token).transpose()
    }

    async fn api_tokens(&self, page: PageRequest) -> Result<Page<ApiToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, scope, created_at, revoked_at FROM api_tokens
             WHERE id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(page.after.unwrap_or(i64::MAX))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.reader)
        .await
        .map_err(db)?;
        let items = rows
            .iter()
            .map(read_api_token)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |token| token.id))
    }

    async fn revoke_api_token(&self, id: i64, now: Timestamp) -> Result<ApiToken, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
            .bind(micros(now))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let row = sqlx::query(
            "SELECT id, name, scope, created_at, revoked_at FROM api_tokens WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::not_found(format!("API token {id}")))?;
        let token = read_api_token(&row)?;
        tx.commit().await.map_err(db)?;
        Ok(token)
    }
}
