//! Tocsin's scale-out store: PostgreSQL, shared by several replicas.
//!
//! Nothing here assumes a single writer. Every change runs in one transaction that first locks
//! the rows it decides on (`SELECT ... FOR UPDATE`): an incident command locks the incident, an
//! ingest batch locks the open incidents and alerts of its keys, logging due folds locks the
//! alerts it logs. Incidents are locked before alerts, and alerts in (service, dedup key) order.
//! New numbers come from the identity sequences. Migrations take PostgreSQL's advisory lock, so
//! replicas that start together migrate once.

mod ingest;
mod rows;
pub mod testing;

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
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

use crate::ingest::IngestFailure;
use crate::rows::{
    db, micros, read_alert, read_api_token, read_change_event, read_event, read_incident,
    read_timeline_entry, text, Stored, ALERT_COLUMNS, EVENT_COLUMNS, INCIDENT_COLUMNS,
    UNLOGGED_FOLDS_COLUMNS,
};

/// Connections each replica keeps at most.
const MAX_CONNECTIONS: u32 = 10;

/// How many times an ingest batch is tried when it loses a race with another replica (both
/// opened the same alert, the other one opened an alert while this one was locking, or their
/// locks deadlocked). Each try starts from scratch.
const INGEST_ATTEMPTS: u32 = 5;

/// How many times logging due folds is tried when its locks deadlock or its transaction fails
/// to serialize.
const LOG_FOLDS_ATTEMPTS: u32 = 3;

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

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        self.pool.close().await;
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

    async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(db)
    }
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

/// The incident, locked until the transaction ends when `lock` is set.
async fn incident_in(
    conn: &mut PgConnection,
    number: IncidentNumber,
    lock: bool,
) -> Result<IncidentRow, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE number = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    ))
    .bind(number.0)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?
    .ok_or_else(|| StoreError::not_found(format!("incident {number}")))?;
    read_incident(&row)
}

async fn append_timeline(
    conn: &mut PgConnection,
    number: IncidentNumber,
    at: Timestamp,
    actor: &Actor,
    kind: TimelineKind,
    data: &serde_json::Value,
) -> Result<TimelineEntry, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO timeline_entries (incident_number, at, actor, kind, data)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(number.0)
    .bind(micros(at))
    .bind(text(actor.as_str()))
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

/// Locks and reads the folds that no timeline entry counts yet of the incident's open alerts.
/// The caller holds the incident's lock.
async fn unlogged_folds_of(
    conn: &mut PgConnection,
    number: IncidentNumber,
) -> Result<Vec<UnloggedFolds>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {UNLOGGED_FOLDS_COLUMNS} FROM alerts
         WHERE incident_number = $1 AND state <> 'resolved' AND unlogged_folds > 0
         ORDER BY service_id, dedup_key, id
         FOR UPDATE"
    ))
    .bind(number.0)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| decode::unlogged_folds(&Stored(row)))
        .collect()
}

/// Writes the `alert.folded` entries of `folds` (at `now`, by the system), in order, and marks
/// their alerts logged. The alerts must be locked.
async fn log_folds(
    conn: &mut PgConnection,
    folds: &[UnloggedFolds],
    now: Timestamp,
) -> Result<(), StoreError> {
    if folds.is_empty() {
        return Ok(());
    }
    let mut incidents = Vec::with_capacity(folds.len());
    let mut actors = Vec::with_capacity(folds.len());
    let mut kinds = Vec::with_capacity(folds.len());
    let mut data = Vec::with_capacity(folds.len());
    let mut alerts = Vec::with_capacity(folds.len());
    for fold in folds {
        let entry = fold.entry(now, Actor::system());
        incidents.push(fold.incident.0);
        actors.push(text(entry.actor.as_str()).into_owned());
        kinds.push(entry.kind.as_str());
        data.push(entry.data.to_string());
        alerts.push(fold.alert.0);
    }
    sqlx::query(
        "INSERT INTO timeline_entries (incident_number, at, actor, kind, data)
         SELECT v.incident_number, $2, v.actor, v.kind, v.data
         FROM UNNEST($1::bigint[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY
              AS v(incident_number, actor, kind, data, position)
         ORDER BY v.position",
    )
    .bind(&incidents)
    .bind(micros(now))
    .bind(&actors)
    .bind(&kinds)
    .bind(&data)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    sqlx::query("UPDATE alerts SET unlogged_folds = 0, folds_logged_at = $1 WHERE id = ANY($2)")
        .bind(micros(now))
        .bind(&alerts)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// One try of [`Store::log_due_folds`]: locks the due alerts, in the order ingest locks alerts,
/// and logs their folds.
async fn log_due_folds_in(
    conn: &mut PgConnection,
    due: Timestamp,
    now: Timestamp,
    limit: usize,
) -> Result<usize, StoreError> {
    // The open alerts are the short list to read (the partial index `alerts_one_open_per_key`,
    // in lock order). A row another writer changed while this one waited for its lock is
    // checked again, and skipped when it is no longer due.
    let rows = sqlx::query(&format!(
        "SELECT {UNLOGGED_FOLDS_COLUMNS} FROM alerts
         WHERE state <> 'resolved' AND unlogged_folds > 0
           AND COALESCE(folds_logged_at, first_seen) <= $1
         ORDER BY service_id, dedup_key, id
         LIMIT $2
         FOR UPDATE"
    ))
    .bind(micros(due))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let folds = rows
        .iter()
        .map(|row| decode::unlogged_folds(&Stored(row)))
        .collect::<Result<Vec<_>, _>>()?;
    log_folds(conn, &folds, now).await?;
    Ok(folds.len())
}

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
    conn: &mut PgConnection,
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
    mut tx: sqlx::Transaction<'static, Postgres>,
    number: IncidentNumber,
    transition: Transition,
) -> Result<CommandOutcome, StoreError> {
    let incident = incident_in(&mut tx, number, false).await?;
    tx.commit().await.map_err(db)?;
    Ok(CommandOutcome {
        incident,
        transition,
    })
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

    #[tracing::instrument(skip_all, fields(batch = batch.len()), err)]
    async fn ingest(
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

    #[tracing::instrument(skip_all, fields(limit = limit), err)]
    async fn log_due_folds(
        &self,
        due: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<usize, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        let mut attempt = 1;
        loop {
            let mut tx = self.begin().await?;
            let error = match log_due_folds_in(&mut tx, due, now, limit).await {
                Ok(logged) => {
                    tx.commit().await.map_err(db)?;
                    return Ok(logged);
                }
                Err(error) => error,
            };
            let _ = tx.rollback().await;
            match lost_race(&error) {
                Some(race) if attempt < LOG_FOLDS_ATTEMPTS => {
                    tracing::warn!(
                        attempt,
                        race,
                        "logging due folds raced another writer, trying again"
                    );
                    attempt += 1;
                }
                _ => return Err(error),
            }
        }
    }

    async fn incident(&self, number: IncidentNumber) -> Result<IncidentRow, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        incident_in(&mut conn, number, false).await
    }

    async fn incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<IncidentRow>, StoreError> {
        let mut query = QueryBuilder::<Postgres>::new(format!(
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
        let rows = query.build().fetch_all(&self.pool).await.map_err(db)?;
        let items = rows
            .iter()
            .map(read_incident)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |incident| incident.number.0))
    }

    async fn alert(&self, id: AlertId) -> Result<AlertRow, StoreError> {
        let row = sqlx::query(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
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
        let mut query = QueryBuilder::<Postgres>::new(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE 1 = 1"
        ));
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
        let rows = query.build().fetch_all(&self.pool).await.map_err(db)?;
        let items = rows.iter().map(read_alert).collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |alert| alert.id.0))
    }

    async fn timeline(
        &self,
        number: IncidentNumber,
        page: PageRequest,
    ) -> Result<Page<TimelineEntry>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        incident_in(&mut conn, number, false).await?;
        let rows = sqlx::query(
            "SELECT id, incident_number, at, actor, kind, data FROM timeline_entries
             WHERE incident_number = $1 AND id > $2 ORDER BY id LIMIT $3",
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
        let mut query = QueryBuilder::<Postgres>::new(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE 1 = 1"
        ));
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
        let rows = query.build().fetch_all(&self.pool).await.map_err(db)?;
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
             FROM change_events WHERE service_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(service.as_str())
        .bind(page.after.unwrap_or(i64::MAX))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.pool)
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
        let mut tx = self.begin().await?;
        let incident = incident_in(&mut tx, number, true).await?;
        let transition = tocsin_core::acknowledge_incident(number, incident.state)
            .map_err(|error| StoreError::Conflict(error.to_string()))?;
        if transition == Transition::Changed {
            change_state(
                &mut tx,
                number,
                actor,
                now,
                StateChange {
                    incident: "UPDATE incidents SET state = 'acknowledged', acknowledged_at = $1, updated_at = $2
                 WHERE number = $3",
                    alerts: "UPDATE alerts SET state = 'acknowledged', acknowledged_at = $1
                 WHERE incident_number = $2 AND state = 'triggered'",
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
        let mut tx = self.begin().await?;
        let incident = incident_in(&mut tx, number, true).await?;
        let transition = tocsin_core::resolve_incident(incident.state);
        if transition == Transition::Changed {
            change_state(
                &mut tx,
                number,
                actor,
                now,
                StateChange {
                    incident:
                        "UPDATE incidents SET state = 'resolved', open_alerts = 0, resolved_at = $1,
                 updated_at = $2 WHERE number = $3",
                    alerts: "UPDATE alerts SET state = 'resolved', resolved_at = $1
                 WHERE incident_number = $2 AND state <> 'resolved'",
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
        let mut tx = self.begin().await?;
        let incident = incident_in(&mut tx, number, true).await?;
        let transition = tocsin_core::set_priority(incident.priority, priority);
        if transition == Transition::Changed {
            sqlx::query("UPDATE incidents SET priority = $1, updated_at = $2 WHERE number = $3")
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
        let mut tx = self.begin().await?;
        incident_in(&mut tx, number, true).await?;
        sqlx::query("UPDATE incidents SET updated_at = $1 WHERE number = $2")
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
        .fetch_one(&self.pool)
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
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (name, scope, secret_hash, created_at)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(text(name))
        .bind(scope.as_str())
        .bind(secret_hash)
        .bind(micros(now))
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(ApiToken {
            id,
            name: text(name).into_owned(),
            scope,
            created_at: now,
            revoked_at: None,
        })
    }

    async fn api_token_by_hash(&self, secret_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, scope, created_at, revoked_at FROM api_tokens
             WHERE secret_hash = $1 AND revoked_at IS NULL",
        )
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(read_api_token).transpose()
    }

    async fn api_tokens(&self, page: PageRequest) -> Result<Page<ApiToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, scope, created_at, revoked_at FROM api_tokens
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(page.after.unwrap_or(i64::MAX))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let items = rows
            .iter()
            .map(read_api_token)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |token| token.id))
    }

    async fn revoke_api_token(&self, id: i64, now: Timestamp) -> Result<ApiToken, StoreError> {
        let row = sqlx::query(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2
             RETURNING id, name, scope, created_at, revoked_at",
        )
        .bind(micros(now))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::not_found(format!("API token {id}")))?;
        read_api_token(&row)
    }
}
