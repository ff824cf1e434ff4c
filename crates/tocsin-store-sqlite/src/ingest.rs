//! The ingest transaction, as one blocking call.
//!
//! Ingest is the one write that must be fast: a batch is hundreds of statements (a lookup per
//! key, a write per touched row and per event). Through sqlx every statement is a round trip to
//! its worker thread; here the whole transaction is one blocking call on a `rusqlite`
//! connection that keeps its statements prepared. The engine's ingest writer has a thread of its
//! own and runs that call there itself ([`tocsin_store::IncidentStore::blocking_ingest`]), so a
//! batch changes threads only on its way in and its answers on their way out; other callers go
//! through [`IngestWriter::ingest`], which runs it on the blocking pool. The rest of the store
//! (reads, commands, migrations) stays on sqlx; SQLite's write lock orders the two writers.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tocsin_core::{
    fold_batch, AlertId, AlertRef, BatchPlan, ChangeEvent, DedupKey, Event, IncidentNumber,
    IncidentRef, IncidentState, KeySnapshot, OpenAlert, OpenIncident, ServiceId,
};
use tocsin_store::answered::{Answer, Answered};
use tocsin_store::decode::{self, StoredRow};
use tocsin_store::heartbeat;
use tocsin_store::outbox::{NewNotification, Recipient};
use tocsin_store::updates::{CollectedPolicies, ServicePolicy};
use tocsin_store::{
    AssignedIds, BlockingIngest, Inbound, IngestReport, ResolvePolicyOf, StoreError,
};

use crate::rows::micros;

/// The ingest connection and what it remembers between batches.
struct Writer {
    conn: Connection,
    open_keys: OpenKeys,
}

/// The ingest connection, used by one batch at a time. Closing it drops the connection.
#[derive(Debug)]
pub(crate) struct IngestWriter {
    writer: Mutex<Option<Writer>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl IngestWriter {
    /// Opens a connection to the (already migrated) database at `path`.
    pub(crate) fn start(path: &Path) -> Result<IngestWriter, StoreError> {
        let conn = open(path).map_err(|error| {
            StoreError::Database(
                format!(
                    "cannot open the SQLite database {} for ingest: {error}",
                    path.display()
                )
                .into(),
            )
        })?;
        Ok(IngestWriter {
            writer: Mutex::new(Some(Writer {
                conn,
                open_keys: OpenKeys::default(),
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Writer>> {
        self.writer.lock().unwrap_or_else(|poisoned| {
            // A batch panicked half-way: its transaction rolled back when it was dropped, but
            // what the connection remembers of open keys may be half-updated.
            let mut writer = poisoned.into_inner();
            if let Some(writer) = writer.as_mut() {
                writer.open_keys = OpenKeys::default();
            }
            writer
        })
    }

    /// Runs the batch in one transaction on the blocking pool and waits for its outcome.
    pub(crate) async fn ingest(
        self: &Arc<Self>,
        batch: &[Inbound],
        resolve_policy: ResolvePolicyOf<'_>,
    ) -> Result<IngestReport, StoreError> {
        // The blocking pool needs the batch and the policies of its services for itself.
        let mut policies = CollectedPolicies::default();
        for inbound in batch {
            if matches!(inbound, Inbound::Alert(_) | Inbound::Heartbeat(_)) {
                policies.collect(resolve_policy, inbound.service());
            }
        }
        let batch = batch.to_vec();
        let writer = Arc::clone(self);
        tokio::task::spawn_blocking(move || writer.run(&batch, &policies))
            .await
            .map_err(|_| StoreError::Database("the SQLite ingest call panicked".into()))?
    }

    /// Runs the batch in one transaction on this thread.
    fn run(
        &self,
        batch: &[Inbound],
        policy: &dyn ServicePolicy,
    ) -> Result<IngestReport, StoreError> {
        let mut writer = self.lock();
        let writer = writer.as_mut().ok_or_else(closed)?;
        ingest(&mut writer.conn, &mut writer.open_keys, batch, policy)
    }

    /// Waits for the batch in progress, if any, and closes the connection; batches after it
    /// fail.
    pub(crate) async fn close(self: &Arc<Self>) {
        let writer = Arc::clone(self);
        let _ = tokio::task::spawn_blocking(move || drop(writer.lock().take())).await;
    }
}

impl BlockingIngest for IngestWriter {
    fn ingest_blocking(
        &self,
        batch: &[Inbound],
        resolve_policy: ResolvePolicyOf<'_>,
    ) -> Result<IngestReport, StoreError> {
        tocsin_store::sql::check_batch(batch)?;
        self.run(batch, resolve_policy)
    }
}

fn closed() -> StoreError {
    StoreError::Database("the SQLite store is closed".into())
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // The same settings as the store's other connections (see `SqliteStore::open_file`).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = OFF;
         PRAGMA cache_size = -65536;
         PRAGMA mmap_size = 268435456;
         PRAGMA temp_store = MEMORY;
         PRAGMA wal_autocheckpoint = 0;",
    )?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

pub(crate) fn db(error: rusqlite::Error) -> StoreError {
    StoreError::database(error)
}

/// Loads what is open for the batch's keys, lets `tocsin_core::fold_batch` decide, writes the
/// plan, commits. On any error the transaction rolls back whole, and `open_keys` starts over.
fn ingest(
    conn: &mut Connection,
    open_keys: &mut OpenKeys,
    batch: &[Inbound],
    policy: &dyn ServicePolicy,
) -> Result<IngestReport, StoreError> {
    let outcome = ingest_transaction(conn, open_keys, batch, policy);
    if outcome.is_err() {
        // Whether or not the failure left anything behind, the cache no longer knows.
        *open_keys = OpenKeys::default();
    }
    outcome
}

fn ingest_transaction(
    conn: &mut Connection,
    open_keys: &mut OpenKeys,
    batch: &[Inbound],
    policy: &dyn ServicePolicy,
) -> Result<IngestReport, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let mut report = IngestReport::default();
    open_keys.check(&tx)?;
    let heartbeats = if batch
        .iter()
        .any(|inbound| matches!(inbound, Inbound::Heartbeat(_)))
    {
        crate::heartbeat::load_states(
            &tx,
            &heartbeat::batch_monitors(batch),
            &mut open_keys.heartbeats,
        )?;
        let writes = heartbeat::plan_heartbeats(batch, &open_keys.heartbeats);
        let now = batch
            .iter()
            .filter_map(|inbound| match inbound {
                Inbound::Heartbeat(input) => Some(input.now),
                _ => None,
            })
            .max()
            .unwrap_or(tocsin_core::Timestamp::UNIX_EPOCH);
        crate::heartbeat::write(&tx, &writes, now)?;
        writes
    } else {
        heartbeat::HeartbeatWrites::default()
    };
    // Alert events in batch order, with the events heartbeat signals produced in their place.
    let mut events = Vec::new();
    let mut derived = heartbeats.events.iter().peekable();
    for (index, inbound) in batch.iter().enumerate() {
        match inbound {
            Inbound::Alert(event) => events.push(event),
            Inbound::Change(change) => {
                insert_change(&tx, change)?;
                report.change_events += 1;
            }
            Inbound::Heartbeat(_) => {
                report.heartbeat_signals += 1;
                while let Some((_, event)) = derived.next_if(|(at, _)| *at == index) {
                    events.push(event);
                }
            }
        }
    }
    report.events = events.len();
    if events.is_empty() {
        tx.commit().map_err(db)?;
        open_keys.remember_states(&heartbeats);
        return Ok(report);
    }
    open_keys.load(&tx, &events)?;
    let plan = fold_batch(&events, &open_keys.open, &|service| {
        policy.resolve_policy(service)
    });
    let ids = write_plan(&tx, &events, &plan, &mut open_keys.last_events, &mut report)?;
    let answers = tocsin_store::answered::batch_answers(&plan, &ids, policy)?;
    write_answers(&tx, &answers)?;
    let updates = tocsin_store::updates::batch_updates(&plan, &ids, policy)?;
    insert_updates(&tx, &updates, events[events.len() - 1].received_at)?;
    tx.commit().map_err(db)?;
    open_keys.remember_states(&heartbeats);
    open_keys.apply(&plan, &ids)?;
    Ok(report)
}

/// Stops the paging of the incidents the batch acknowledged or resolved
/// (`tocsin_store::answered::apply`, here).
fn write_answers(conn: &Connection, answers: &[Answered]) -> Result<(), StoreError> {
    if answers.is_empty() {
        return Ok(());
    }
    let mut remove = conn
        .prepare_cached("DELETE FROM due_work WHERE kind = ?1 AND key = ?2")
        .map_err(db)?;
    let mut cancel = conn
        .prepare_cached(
            "UPDATE outbox SET state = 'cancelled', settled_at = ?2
             WHERE incident_number = ?1 AND state = 'pending' AND recipient_kind = 'user'",
        )
        .map_err(db)?;
    let mut schedule = conn
        .prepare_cached(
            "INSERT INTO due_work (kind, key, payload, due_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (kind, key) DO UPDATE SET payload = excluded.payload,
                 due_at = excluded.due_at, revision = due_work.revision + 1,
                 parked_at = NULL, attempts = 0",
        )
        .map_err(db)?;
    for answered in answers {
        let key = answered.incident.0.to_string();
        remove
            .execute(params![tocsin_core::ESCALATION_STEP_KIND, key])
            .map_err(db)?;
        cancel
            .execute(params![answered.incident.0, micros(answered.at)])
            .map_err(db)?;
        match answered.answer {
            Answer::Acknowledged {
                ack_timeout_due: Some(due_at),
            } => {
                schedule
                    .execute(params![
                        tocsin_core::ACK_TIMEOUT_KIND,
                        key,
                        tocsin_store::due::ack_timeout_payload(answered.at),
                        micros(due_at),
                        micros(answered.at),
                    ])
                    .map_err(db)?;
            }
            Answer::Acknowledged {
                ack_timeout_due: None,
            } => {}
            Answer::Resolved => {
                remove
                    .execute(params![tocsin_core::ACK_TIMEOUT_KIND, key])
                    .map_err(db)?;
            }
        }
    }
    Ok(())
}

/// Queues the channel updates of the batch (`tocsin_store::updates::enqueue`, here).
fn insert_updates(
    conn: &Connection,
    updates: &[NewNotification],
    now: tocsin_core::Timestamp,
) -> Result<(), StoreError> {
    if updates.is_empty() {
        return Ok(());
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO outbox (incident_number, recipient_kind, recipient, contact, method,
                 kind, payload, idempotency_key, state, attempts, next_attempt_at, created_at)
             VALUES (?1, 'channel', ?2, '', ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?8)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .map_err(db)?;
    for update in updates {
        let Recipient::Channel { channel } = &update.recipient else {
            return Err(StoreError::Invalid(
                "an incident update is for a channel".to_owned(),
            ));
        };
        insert
            .execute(params![
                update.incident.map(|number| number.0),
                channel,
                update.method,
                update.kind,
                update.payload.to_string(),
                update.idempotency_key,
                micros(update.not_before),
                micros(now),
            ])
            .map_err(db)?;
    }
    Ok(())
}

fn insert_change(conn: &Connection, change: &ChangeEvent) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO change_events (service_id, summary, source, occurred_at, received_at,
         details, links) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            change.service.as_str(),
            change.summary,
            change.source,
            change.occurred_at.map(micros),
            micros(change.received_at),
            change.details.to_string(),
            tocsin_store::encode::change_links(&change.links),
        ])
    })
    .map_err(db)?;
    Ok(())
}

type Key = (ServiceId, DedupKey);

/// What is open for the keys the ingest connection has seen, as its own commits left them: the
/// snapshots a batch needs without a lookup per key; and the same for the states of the
/// heartbeat monitors it has seen ping. The cache holds only while no other
/// connection writes; `PRAGMA data_version` tells, and the cache starts over when it moved
/// (commands and the fold logger write through the store's other connection), after a failed
/// transaction, and beyond [`MAX_CACHED_KEYS`].
#[derive(Default)]
struct OpenKeys {
    /// Keys with an open incident (and maybe an open alert).
    open: HashMap<Key, KeySnapshot>,
    /// Keys known to have nothing open.
    nothing_open: HashSet<Key>,
    /// Heartbeat monitors' states, by monitor id.
    heartbeats: HashMap<String, tocsin_core::heartbeat::HeartbeatState>,
    /// The newest event of each open alert this connection wrote to or looked up (the head of
    /// the alert's event chain, `alerts.last_event`), by alert id.
    last_events: HashMap<i64, i64>,
    /// `PRAGMA data_version` when the cache was last known to be the database's state.
    data_version: Option<i64>,
}

/// Keys the cache holds at most; beyond it, it starts over (a storm of new keys then costs a
/// lookup per key, as without the cache).
const MAX_CACHED_KEYS: usize = 100_000;

impl OpenKeys {
    /// Starts over unless the database is as this connection left it. Called inside the write
    /// transaction, so nobody else can write until it ends.
    fn check(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let version: i64 = conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .map_err(db)?;
        if self.data_version != Some(version)
            || self.open.len()
                + self.nothing_open.len()
                + self.heartbeats.len()
                + self.last_events.len()
                > MAX_CACHED_KEYS
        {
            self.open.clear();
            self.nothing_open.clear();
            self.heartbeats.clear();
            self.last_events.clear();
            self.data_version = Some(version);
        }
        Ok(())
    }

    /// Keeps the heartbeat states a committed batch wrote.
    fn remember_states(&mut self, writes: &heartbeat::HeartbeatWrites) {
        for write in &writes.states {
            self.heartbeats
                .insert(write.monitor.clone(), write.after.clone());
        }
    }

    /// Reads, for every key of the batch the cache does not know, its open alert (with that
    /// alert's incident), or else its newest open incident.
    fn load(&mut self, conn: &Connection, events: &[&Event]) -> Result<(), StoreError> {
        let mut alert_query = conn
            .prepare_cached(
                // The hints keep SQLite on the partial indexes of open rows, rather than on
                // indexes that hold every alert or incident the service ever had.
                "SELECT a.id, a.incident_number, a.state, a.count, a.first_seen, a.last_seen,
                        a.severity, a.summary, a.source, a.acknowledged_at, a.unlogged_folds,
                        COALESCE(a.folds_logged_at, a.first_seen) AS folds_logged_at,
                        i.number, i.state AS incident_state, i.open_alerts,
                        i.acknowledged_at AS incident_acknowledged_at
                 FROM alerts a INDEXED BY alerts_one_open_per_key
                 JOIN incidents i ON i.number = a.incident_number
                 WHERE a.state <> 'resolved' AND a.service_id = ?1 AND a.dedup_key = ?2",
            )
            .map_err(db)?;
        let mut incident_query = conn
            .prepare_cached(
                "SELECT number, state, open_alerts, acknowledged_at
                 FROM incidents INDEXED BY incidents_open_by_key
                 WHERE state <> 'resolved' AND service_id = ?1 AND dedup_key = ?2
                 ORDER BY number DESC LIMIT 1",
            )
            .map_err(db)?;
        let mut seen: HashSet<(&ServiceId, &DedupKey)> = HashSet::new();
        for event in events {
            // A storm repeats one key: look each up in the cache once per batch.
            if !seen.insert((&event.service, &event.dedup_key)) {
                continue;
            }
            let key = (event.service.clone(), event.dedup_key.clone());
            if self.open.contains_key(&key) || self.nothing_open.contains(&key) {
                continue;
            }
            let values = [event.service.as_str(), event.dedup_key.as_str()];
            let open_alert = alert_query
                .query_row(values, |row| {
                    let row = Row(row);
                    Ok(decode::open_alert(&row)
                        .and_then(|alert| Ok((alert, decode::open_alert_incident(&row)?))))
                })
                .optional()
                .map_err(db)?
                .transpose()?;
            let snapshot = match open_alert {
                Some((alert, incident)) => KeySnapshot {
                    open_alert: Some(alert),
                    open_incident: Some(incident),
                },
                None => KeySnapshot {
                    open_alert: None,
                    open_incident: incident_query
                        .query_row(values, |row| Ok(decode::open_incident(&Row(row))))
                        .optional()
                        .map_err(db)?
                        .transpose()?,
                },
            };
            if snapshot.open_incident.is_some() {
                self.open.insert(key, snapshot);
            } else {
                self.nothing_open.insert(key);
            }
        }
        Ok(())
    }

    /// Brings the cache to what the committed `plan` left open. Every incident a plan changes
    /// comes with a changed alert of its key; should one not, the cache starts over.
    fn apply(&mut self, plan: &BatchPlan, ids: &AssignedIds) -> Result<(), StoreError> {
        let mut key_of: HashMap<IncidentRef, (&ServiceId, &DedupKey)> = HashMap::new();
        for record in &plan.alerts {
            key_of.insert(record.incident, (&record.service, &record.dedup_key));
        }
        let mut touched = Vec::new();
        for record in &plan.incidents {
            let key = match (&record.opened, key_of.get(&record.incident)) {
                (Some(opened), _) => (opened.service.clone(), opened.dedup_key.clone()),
                (None, Some((service, dedup_key))) => ((*service).clone(), (*dedup_key).clone()),
                (None, None) => {
                    *self = OpenKeys::default();
                    return Ok(());
                }
            };
            let number = IncidentNumber(ids.incident(record.incident)?);
            let snapshot = self.entry(&key);
            if record.state != IncidentState::Resolved {
                snapshot.open_incident = Some(OpenIncident {
                    number,
                    state: record.state,
                    open_alerts: record.open_alerts,
                    acknowledged_at: record.acknowledged_at,
                });
            } else if snapshot
                .open_incident
                .as_ref()
                .is_some_and(|open| open.number == number)
            {
                snapshot.open_incident = None;
            }
            touched.push(key);
        }
        for record in &plan.alerts {
            let key = (record.service.clone(), record.dedup_key.clone());
            let Some(id) = ids.alert(Some(record.alert)) else {
                *self = OpenKeys::default();
                return Ok(());
            };
            let incident = IncidentNumber(ids.incident(record.incident)?);
            let snapshot = self.entry(&key);
            if record.state.is_open() {
                snapshot.open_alert = Some(OpenAlert {
                    id: AlertId(id),
                    incident,
                    state: record.state,
                    count: record.count,
                    first_seen: record.first_seen,
                    last_seen: record.last_seen,
                    severity: record.severity,
                    summary: record.summary.clone(),
                    source: record.source.clone(),
                    acknowledged_at: record.acknowledged_at,
                    unlogged_folds: record.unlogged_folds,
                    folds_logged_at: record.folds_logged_at,
                });
            } else if snapshot
                .open_alert
                .as_ref()
                .is_some_and(|open| open.id.0 == id)
            {
                snapshot.open_alert = None;
            }
            touched.push(key);
        }
        for key in touched {
            let Some(snapshot) = self.open.get(&key) else {
                continue;
            };
            match (&snapshot.open_alert, &snapshot.open_incident) {
                (_, Some(_)) => {}
                (None, None) => {
                    self.open.remove(&key);
                    self.nothing_open.insert(key);
                }
                // An open alert without its incident: not a state the fold makes.
                (Some(_), None) => {
                    *self = OpenKeys::default();
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The key's snapshot, created empty (and no longer "nothing open") when absent.
    fn entry(&mut self, key: &Key) -> &mut KeySnapshot {
        self.nothing_open.remove(key);
        self.open.entry(key.clone()).or_default()
    }
}

/// Writes the plan and returns the ids its new rows got. Each event joins its alert's chain
/// (`events.prev_event`, `alerts.last_event`); `last_events` holds the chains' heads this
/// connection knows, and gains those the plan moved.
fn write_plan(
    conn: &Connection,
    events: &[&Event],
    plan: &BatchPlan,
    last_events: &mut HashMap<i64, i64>,
    report: &mut IngestReport,
) -> Result<AssignedIds, StoreError> {
    let mut ids = AssignedIds::default();
    let received_last = events[events.len() - 1].received_at;
    let mut insert_incident = conn
        .prepare_cached(
            "INSERT INTO incidents (service_id, dedup_key, title, severity, priority,
             state, open_alerts, created_at, impact_started_at, acknowledged_at,
             resolved_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .map_err(db)?;
    // The first step of the incident's escalation, due at once: its runner pages level 1 of
    // the service's policy (or finds it has none). Committed with the incident, so no
    // triggered incident is left without it.
    let mut schedule_escalation = conn
        .prepare_cached(
            "INSERT INTO due_work (kind, key, payload, due_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (kind, key) DO NOTHING",
        )
        .map_err(db)?;
    let mut update_incident = conn
        .prepare_cached(
            "UPDATE incidents SET state = ?2, open_alerts = ?3, acknowledged_at = ?4,
             resolved_at = ?5, updated_at = ?6 WHERE number = ?1",
        )
        .map_err(db)?;
    let mut insert_alert = conn
        .prepare_cached(
            "INSERT INTO alerts (incident_number, service_id, dedup_key, state, count,
             first_seen, last_seen, severity, summary, source, details, acknowledged_at,
             resolved_at, unlogged_folds, folds_logged_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )
        .map_err(db)?;
    let mut change_alert = conn
        .prepare_cached(
            "UPDATE alerts SET state = ?2, count = ?3, last_seen = ?4, severity = ?5,
             summary = ?6, source = ?7, details = COALESCE(?8, details),
             acknowledged_at = ?9, resolved_at = ?10, unlogged_folds = ?11,
             folds_logged_at = ?12, last_event = COALESCE(?13, last_event) WHERE id = ?1",
        )
        .map_err(db)?;
    let mut fold_alert = conn
        .prepare_cached(
            "UPDATE alerts SET count = ?2, last_seen = ?3, severity = ?4, summary = ?5,
             source = ?6, details = COALESCE(?7, details), unlogged_folds = ?8,
             folds_logged_at = ?9, last_event = COALESCE(?10, last_event) WHERE id = ?1",
        )
        .map_err(db)?;
    let mut link_new_alert = conn
        .prepare_cached("UPDATE alerts SET last_event = ?2 WHERE id = ?1")
        .map_err(db)?;
    for record in &plan.incidents {
        match (record.incident, &record.opened) {
            (IncidentRef::New(n), Some(opened)) => {
                insert_incident
                    .execute(params![
                        opened.service.as_str(),
                        opened.dedup_key.as_str(),
                        opened.title,
                        opened.severity.as_str(),
                        opened.priority.as_str(),
                        record.state.as_str(),
                        record.open_alerts,
                        micros(opened.created_at),
                        micros(opened.impact_started_at),
                        record.acknowledged_at.map(micros),
                        record.resolved_at.map(micros),
                        micros(opened.created_at),
                    ])
                    .map_err(db)?;
                let number = conn.last_insert_rowid();
                ids.assign_incident(n, number);
                report.incidents_opened += 1;
                if record.state == IncidentState::Triggered {
                    schedule_escalation
                        .execute(params![
                            tocsin_core::ESCALATION_STEP_KIND,
                            number.to_string(),
                            tocsin_store::due::FIRST_ESCALATION_STEP,
                            micros(opened.created_at),
                        ])
                        .map_err(db)?;
                }
            }
            (IncidentRef::Existing(number), _) => {
                let updated_at = record
                    .resolved_at
                    .or(record.acknowledged_at)
                    .unwrap_or(received_last);
                update_incident
                    .execute(params![
                        number.0,
                        record.state.as_str(),
                        record.open_alerts,
                        record.acknowledged_at.map(micros),
                        record.resolved_at.map(micros),
                        micros(updated_at),
                    ])
                    .map_err(db)?;
            }
            (IncidentRef::New(_), None) => {
                return Err(StoreError::Corrupt(
                    "fold produced a new incident without its opening".to_owned(),
                ))
            }
        }
        if record.state == IncidentState::Resolved {
            report.incidents_resolved += 1;
        }
    }

    // New alerts first (their events name them), the events next, and then the alerts'
    // updates, which carry the new heads of their chains.
    for record in &plan.alerts {
        let AlertRef::New(n) = record.alert else {
            continue;
        };
        let details = record.details.as_ref().map(|details| details.to_string());
        let incident = ids.incident(record.incident)?;
        insert_alert
            .execute(params![
                incident,
                record.service.as_str(),
                record.dedup_key.as_str(),
                record.state.as_str(),
                record.count,
                micros(record.first_seen),
                micros(record.last_seen),
                record.severity.as_str(),
                record.summary,
                record.source,
                details.as_deref().unwrap_or("{}"),
                record.acknowledged_at.map(micros),
                record.resolved_at.map(micros),
                record.unlogged_folds,
                micros(record.folds_logged_at),
            ])
            .map_err(db)?;
        ids.assign_alert(n, conn.last_insert_rowid());
        report.alerts_opened += 1;
    }

    insert_events(conn, events, plan, &ids, last_events)?;

    for record in &plan.alerts {
        let id = ids.alert(Some(record.alert));
        let head = id.and_then(|id| last_events.get(&id).copied());
        let details = record.details.as_ref().map(|details| details.to_string());
        match record.alert {
            AlertRef::New(_) => {
                if let (Some(id), Some(head)) = (id, head) {
                    link_new_alert.execute(params![id, head]).map_err(db)?;
                }
            }
            AlertRef::Existing(id) if record.state_changed => {
                change_alert
                    .execute(params![
                        id.0,
                        record.state.as_str(),
                        record.count,
                        micros(record.last_seen),
                        record.severity.as_str(),
                        record.summary,
                        record.source,
                        details,
                        record.acknowledged_at.map(micros),
                        record.resolved_at.map(micros),
                        record.unlogged_folds,
                        micros(record.folds_logged_at),
                        head,
                    ])
                    .map_err(db)?;
            }
            AlertRef::Existing(id) => {
                // Only folds: the state stays, and leaving it out of the statement spares
                // SQLite the upkeep of the partial index that depends on it.
                fold_alert
                    .execute(params![
                        id.0,
                        record.count,
                        micros(record.last_seen),
                        record.severity.as_str(),
                        record.summary,
                        record.source,
                        details,
                        record.unlogged_folds,
                        micros(record.folds_logged_at),
                        head,
                    ])
                    .map_err(db)?;
            }
        }
        if record.state == tocsin_core::AlertState::Resolved {
            report.alerts_resolved += 1;
            // Nothing joins a resolved alert's chain any more.
            if let Some(id) = id {
                last_events.remove(&id);
            }
        }
    }

    {
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO timeline_entries (incident_number, at, actor, kind, data)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(db)?;
        for entry in &plan.timeline {
            insert
                .execute(params![
                    ids.incident(entry.incident)?,
                    micros(entry.at),
                    entry.actor.as_str(),
                    entry.kind().as_str(),
                    tocsin_store::encode::timeline_data(&entry.data),
                ])
                .map_err(db)?;
        }
    }

    Ok(ids)
}

/// Inserts the plan's events, each linked to the previous event of its alert; `last_events`
/// ends with every touched alert's newest event.
fn insert_events(
    conn: &Connection,
    events: &[&Event],
    plan: &BatchPlan,
    ids: &AssignedIds,
    last_events: &mut HashMap<i64, i64>,
) -> Result<(), StoreError> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (service_id, integration, action, dedup_key, severity, summary,
             source, occurred_at, received_at, alert_id, outcome, details, prev_event)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )
        .map_err(db)?;
    let mut head_of = conn
        .prepare_cached("SELECT last_event FROM alerts WHERE id = ?1")
        .map_err(db)?;
    for record in &plan.events {
        let event = events[record.index];
        let alert = ids.alert(record.alert);
        let previous = match alert {
            None => None,
            Some(alert) => match last_events.get(&alert) {
                Some(head) => Some(*head),
                // A new alert's first event starts its chain.
                None if matches!(record.alert, Some(AlertRef::New(_))) => None,
                None => head_of
                    .query_row([alert], |row| row.get::<_, Option<i64>>(0))
                    .optional()
                    .map_err(db)?
                    .flatten(),
            },
        };
        insert
            .execute(params![
                event.service.as_str(),
                event.integration.as_str(),
                event.action.as_str(),
                event.dedup_key.as_str(),
                event.severity.as_str(),
                event.summary,
                event.source,
                event.occurred_at.map(micros),
                micros(event.received_at),
                alert,
                record.outcome.as_str(),
                event.details.to_string(),
                previous,
            ])
            .map_err(db)?;
        if let Some(alert) = alert {
            last_events.insert(alert, conn.last_insert_rowid());
        }
    }
    Ok(())
}

/// A rusqlite row as `tocsin_store::decode` reads it.
pub(crate) struct Row<'a, 'r>(pub(crate) &'a rusqlite::Row<'r>);

impl StoredRow for Row<'_, '_> {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.0.get(column).map_err(db)
    }

    fn optional_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.0.get(column).map_err(db)
    }

    fn integer(&self, column: &str) -> Result<i64, StoreError> {
        self.0.get(column).map_err(db)
    }

    fn optional_integer(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.0.get(column).map_err(db)
    }
}
