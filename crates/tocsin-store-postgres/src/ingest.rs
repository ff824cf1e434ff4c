//! The ingest transaction: lock what is open for the batch's keys, let
//! `tocsin_core::fold_batch` decide, write the plan with as few statements as possible
//! (multi-row inserts, one update per touched row).
//!
//! Several replicas may ingest into one database at once. The open incidents and alerts of the
//! batch's keys are locked (`FOR UPDATE`, incidents before alerts, each in key order: the order
//! the incident commands use too) before the fold reads them, so two batches touching the same
//! key take turns. Two batches that both open the first alert of a key cannot see each other's
//! rows; the second one fails on the unique open-alert index, or finds the first one's alert
//! when it locks alerts, and starts again.

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::{PgConnection, Postgres, QueryBuilder};
use tocsin_core::{
    fold_batch, AlertRef, ChangeEvent, DedupKey, Event, IncidentNumber, IncidentRef, IncidentState,
    KeySnapshot, ServiceId,
};
use tocsin_store::decode::{self, StoredRow};
use tocsin_store::heartbeat;
use tocsin_store::{AssignedIds, Inbound, IngestReport, ResolvePolicyOf, StoreError};

use crate::rows::{db, micros, Stored};

/// Why an ingest transaction must not be committed.
pub(crate) enum IngestFailure {
    /// Another writer committed an alert for a key of the batch between this transaction's
    /// locking statements; trying again from the start sees it.
    Raced,
    Store(StoreError),
}

impl From<StoreError> for IngestFailure {
    fn from(error: StoreError) -> Self {
        IngestFailure::Store(error)
    }
}

/// PostgreSQL accepts 65535 bound parameters per statement; stay below.
const MAX_BINDS: usize = 60_000;

pub(crate) async fn ingest(
    conn: &mut PgConnection,
    batch: &[Inbound],
    resolve_policy: ResolvePolicyOf<'_>,
) -> Result<IngestReport, IngestFailure> {
    // Heartbeat states are locked first (before incidents and alerts), in monitor order.
    let heartbeats = if batch
        .iter()
        .any(|inbound| matches!(inbound, Inbound::Heartbeat(_)))
    {
        let loaded = crate::heartbeat::lock_states(conn, &heartbeat::batch_monitors(batch)).await?;
        let writes = heartbeat::plan_heartbeats(batch, &loaded);
        let now = batch
            .iter()
            .filter_map(|inbound| match inbound {
                Inbound::Heartbeat(input) => Some(input.now),
                _ => None,
            })
            .max()
            .unwrap_or(tocsin_core::Timestamp::UNIX_EPOCH);
        crate::heartbeat::write(conn, &writes, now).await?;
        writes
    } else {
        heartbeat::HeartbeatWrites::default()
    };
    // Alert events in batch order, with the events heartbeat signals produced in their place.
    let mut events = Vec::new();
    let mut changes = Vec::new();
    let mut heartbeat_signals = 0;
    let mut derived = heartbeats.events.iter().peekable();
    for (index, inbound) in batch.iter().enumerate() {
        match inbound {
            Inbound::Alert(event) => events.push(event),
            Inbound::Change(change) => changes.push(change),
            Inbound::Heartbeat(_) => {
                heartbeat_signals += 1;
                while let Some((_, event)) = derived.next_if(|(at, _)| *at == index) {
                    events.push(event);
                }
            }
        }
    }
    let mut report = IngestReport {
        events: events.len(),
        change_events: changes.len(),
        heartbeat_signals,
        ..IngestReport::default()
    };
    insert_changes(conn, &changes).await?;
    if events.is_empty() {
        return Ok(report);
    }

    let Some(snapshots) = lock_snapshots(conn, &events).await? else {
        return Err(IngestFailure::Raced);
    };
    let plan = fold_batch(&events, &snapshots, &|service| {
        resolve_policy.resolve_policy(service)
    });

    // Numbers for new rows come from the identity sequences, so replicas never hand out the
    // same one; allocating them up front lets alerts and timeline entries refer to them.
    let new_incident_count = plan
        .incidents
        .iter()
        .filter(|record| matches!(record.incident, IncidentRef::New(_)))
        .count();
    let new_alert_count = plan
        .alerts
        .iter()
        .filter(|record| matches!(record.alert, AlertRef::New(_)))
        .count();
    let mut next_incidents = allocate(conn, "incidents", "number", new_incident_count)
        .await?
        .into_iter();
    let mut next_alerts = allocate(conn, "alerts", "id", new_alert_count)
        .await?
        .into_iter();

    let mut ids = AssignedIds::default();
    let mut new_incidents = Vec::new();
    let mut incident_updates = IncidentUpdates::default();
    for record in &plan.incidents {
        match (record.incident, &record.opened) {
            (IncidentRef::New(n), Some(opened)) => {
                let number = next_incidents.next().ok_or_else(|| {
                    StoreError::Corrupt("fewer incident numbers than new incidents".to_owned())
                })?;
                ids.assign_incident(n, number);
                new_incidents.push((number, record, opened));
                report.incidents_opened += 1;
            }
            (IncidentRef::Existing(number), _) => {
                let updated_at = record
                    .resolved_at
                    .or(record.acknowledged_at)
                    .unwrap_or_else(|| events[events.len() - 1].received_at);
                incident_updates.number.push(number.0);
                incident_updates.state.push(record.state.as_str());
                incident_updates.open_alerts.push(record.open_alerts);
                incident_updates
                    .acknowledged_at
                    .push(record.acknowledged_at.map(micros));
                incident_updates
                    .resolved_at
                    .push(record.resolved_at.map(micros));
                incident_updates.updated_at.push(micros(updated_at));
            }
            (IncidentRef::New(_), None) => {
                return Err(StoreError::Corrupt(
                    "fold produced a new incident without its opening".to_owned(),
                )
                .into())
            }
        }
        if record.state == IncidentState::Resolved {
            report.incidents_resolved += 1;
        }
    }
    if !incident_updates.number.is_empty() {
        sqlx::query(
            "UPDATE incidents AS i SET state = v.state, open_alerts = v.open_alerts,
                 acknowledged_at = v.acknowledged_at, resolved_at = v.resolved_at,
                 updated_at = v.updated_at
             FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                         $6::bigint[])
                  AS v(number, state, open_alerts, acknowledged_at, resolved_at, updated_at)
             WHERE i.number = v.number",
        )
        .bind(&incident_updates.number)
        .bind(&incident_updates.state)
        .bind(&incident_updates.open_alerts)
        .bind(&incident_updates.acknowledged_at)
        .bind(&incident_updates.resolved_at)
        .bind(&incident_updates.updated_at)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    for chunk in new_incidents.chunks(MAX_BINDS / 13) {
        let mut query = QueryBuilder::<Postgres>::new(
            "INSERT INTO incidents (number, service_id, dedup_key, title, severity, priority, state,
             open_alerts, created_at, impact_started_at, acknowledged_at, resolved_at, updated_at) ",
        );
        query.push_values(chunk, |mut row, (number, record, opened)| {
            row.push_bind(*number)
                .push_bind(opened.service.as_str())
                .push_bind(opened.dedup_key.as_str())
                .push_bind(opened.title.as_str())
                .push_bind(opened.severity.as_str())
                .push_bind(opened.priority.as_str())
                .push_bind(record.state.as_str())
                .push_bind(record.open_alerts)
                .push_bind(micros(opened.created_at))
                .push_bind(micros(opened.impact_started_at))
                .push_bind(record.acknowledged_at.map(micros))
                .push_bind(record.resolved_at.map(micros))
                .push_bind(micros(opened.created_at));
        });
        query.build().execute(&mut *conn).await.map_err(db)?;
    }
    // The first step of each triggered new incident's escalation, due at once, committed with
    // the incident (see `tocsin_store::due::FIRST_ESCALATION_STEP`).
    let escalations: Vec<(i64, i64)> = new_incidents
        .iter()
        .filter(|(_, record, _)| record.state == IncidentState::Triggered)
        .map(|(number, _, opened)| (*number, micros(opened.created_at)))
        .collect();
    if !escalations.is_empty() {
        let keys: Vec<String> = escalations
            .iter()
            .map(|(number, _)| number.to_string())
            .collect();
        let due: Vec<i64> = escalations.iter().map(|(_, at)| *at).collect();
        sqlx::query(
            "INSERT INTO due_work (kind, key, payload, due_at, created_at)
             SELECT $1, v.key, $2, v.due_at, v.due_at
             FROM UNNEST($3::text[], $4::bigint[]) AS v(key, due_at)
             ON CONFLICT (kind, key) DO NOTHING",
        )
        .bind(tocsin_core::ESCALATION_STEP_KIND)
        .bind(tocsin_store::due::FIRST_ESCALATION_STEP)
        .bind(&keys)
        .bind(&due)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }

    let mut new_alerts = Vec::new();
    let mut alert_updates = AlertUpdates::default();
    for record in &plan.alerts {
        if record.state == tocsin_core::AlertState::Resolved {
            report.alerts_resolved += 1;
        }
        let details = record.details.as_ref().map(|details| details.to_string());
        match record.alert {
            AlertRef::New(n) => {
                let id = next_alerts.next().ok_or_else(|| {
                    StoreError::Corrupt("fewer alert ids than new alerts".to_owned())
                })?;
                ids.assign_alert(n, id);
                new_alerts.push((id, ids.incident(record.incident)?, record, details));
                report.alerts_opened += 1;
            }
            AlertRef::Existing(id) => {
                alert_updates.id.push(id.0);
                alert_updates.state.push(record.state.as_str());
                alert_updates.count.push(record.count);
                alert_updates.last_seen.push(micros(record.last_seen));
                alert_updates.severity.push(record.severity.as_str());
                alert_updates.summary.push(record.summary.clone());
                alert_updates.source.push(record.source.clone());
                alert_updates.details.push(details);
                alert_updates
                    .acknowledged_at
                    .push(record.acknowledged_at.map(micros));
                alert_updates
                    .resolved_at
                    .push(record.resolved_at.map(micros));
                alert_updates.unlogged_folds.push(record.unlogged_folds);
                alert_updates
                    .folds_logged_at
                    .push(micros(record.folds_logged_at));
            }
        }
    }
    // One statement for every touched alert (and one for every touched incident): the cost of
    // a commit must not grow by a round trip per key. The rows are already locked.
    if !alert_updates.id.is_empty() {
        sqlx::query(
            "UPDATE alerts AS a SET state = v.state, count = v.count, last_seen = v.last_seen,
                 severity = v.severity, summary = v.summary, source = v.source,
                 details = COALESCE(v.details, a.details), acknowledged_at = v.acknowledged_at,
                 resolved_at = v.resolved_at, unlogged_folds = v.unlogged_folds,
                 folds_logged_at = v.folds_logged_at
             FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[],
                         $11::bigint[], $12::bigint[])
                  AS v(id, state, count, last_seen, severity, summary, source, details,
                       acknowledged_at, resolved_at, unlogged_folds, folds_logged_at)
             WHERE a.id = v.id",
        )
        .bind(&alert_updates.id)
        .bind(&alert_updates.state)
        .bind(&alert_updates.count)
        .bind(&alert_updates.last_seen)
        .bind(&alert_updates.severity)
        .bind(&alert_updates.summary)
        .bind(&alert_updates.source)
        .bind(&alert_updates.details)
        .bind(&alert_updates.acknowledged_at)
        .bind(&alert_updates.resolved_at)
        .bind(&alert_updates.unlogged_folds)
        .bind(&alert_updates.folds_logged_at)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    // Inserting in key order, as every writer does, means two batches that open alerts for the
    // same keys wait on each other's unique-index entries in one direction only: the later one
    // fails on the first shared key instead of both deadlocking.
    new_alerts.sort_by(|a, b| (&a.2.service, &a.2.dedup_key).cmp(&(&b.2.service, &b.2.dedup_key)));
    for chunk in new_alerts.chunks(MAX_BINDS / 16) {
        let mut query = QueryBuilder::<Postgres>::new(
            "INSERT INTO alerts (id, incident_number, service_id, dedup_key, state, count, first_seen,
             last_seen, severity, summary, source, details, acknowledged_at, resolved_at,
             unlogged_folds, folds_logged_at) ",
        );
        query.push_values(chunk, |mut row, (id, incident, record, details)| {
            row.push_bind(*id)
                .push_bind(*incident)
                .push_bind(record.service.as_str())
                .push_bind(record.dedup_key.as_str())
                .push_bind(record.state.as_str())
                .push_bind(record.count)
                .push_bind(micros(record.first_seen))
                .push_bind(micros(record.last_seen))
                .push_bind(record.severity.as_str())
                .push_bind(record.summary.as_str())
                .push_bind(record.source.as_str())
                .push_bind(details.as_deref().unwrap_or("{}"))
                .push_bind(record.acknowledged_at.map(micros))
                .push_bind(record.resolved_at.map(micros))
                .push_bind(record.unlogged_folds)
                .push_bind(micros(record.folds_logged_at));
        });
        query.build().execute(&mut *conn).await.map_err(db)?;
    }
    let timeline = plan
        .timeline
        .iter()
        .map(|entry| {
            Ok((
                ids.incident(entry.incident)?,
                entry,
                tocsin_store::encode::timeline_data(&entry.data),
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    for chunk in timeline.chunks(MAX_BINDS / 5) {
        let mut query = QueryBuilder::<Postgres>::new(
            "INSERT INTO timeline_entries (incident_number, at, actor, kind, data) ",
        );
        query.push_values(chunk, |mut row, (number, entry, data)| {
            row.push_bind(*number)
                .push_bind(micros(entry.at))
                .push_bind(entry.actor.as_str())
                .push_bind(entry.kind().as_str())
                .push_bind(data.as_str());
        });
        query.build().execute(&mut *conn).await.map_err(db)?;
    }

    insert_events(conn, &events, &plan.events, &ids).await?;
    let answers = tocsin_store::answered::batch_answers(&plan, &ids, resolve_policy)?;
    if !answers.is_empty() {
        tocsin_store::answered::apply(&mut crate::rows::Postgres(&mut *conn), &answers).await?;
    }
    let updates = tocsin_store::updates::batch_updates(&plan, &ids, resolve_policy)?;
    if !updates.is_empty() {
        let now = events[events.len() - 1].received_at;
        tocsin_store::updates::enqueue(&mut crate::rows::Postgres(&mut *conn), &updates, now)
            .await?;
    }
    Ok(report)
}

/// Takes `count` values from the identity sequence of `table.column`, in increasing order.
async fn allocate(
    conn: &mut PgConnection,
    table: &str,
    column: &str,
    count: usize,
) -> Result<Vec<i64>, StoreError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let count = i64::try_from(count)
        .map_err(|_| StoreError::Corrupt(format!("cannot allocate {count} ids")))?;
    let mut values: Vec<i64> = sqlx::query_scalar(
        "SELECT nextval(pg_get_serial_sequence($1, $2)) FROM generate_series(1, $3::bigint)",
    )
    .bind(table)
    .bind(column)
    .bind(count)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    values.sort_unstable();
    Ok(values)
}

/// Every event of the batch in one statement, whatever the batch size: one array per column.
async fn insert_events(
    conn: &mut PgConnection,
    events: &[&Event],
    records: &[tocsin_core::EventRecord],
    ids: &AssignedIds,
) -> Result<(), StoreError> {
    let mut service_ids = Vec::with_capacity(records.len());
    let mut integrations = Vec::with_capacity(records.len());
    let mut actions = Vec::with_capacity(records.len());
    let mut dedup_keys = Vec::with_capacity(records.len());
    let mut severities = Vec::with_capacity(records.len());
    let mut summaries = Vec::with_capacity(records.len());
    let mut sources = Vec::with_capacity(records.len());
    let mut occurred = Vec::with_capacity(records.len());
    let mut received = Vec::with_capacity(records.len());
    let mut alerts = Vec::with_capacity(records.len());
    let mut outcomes = Vec::with_capacity(records.len());
    let mut details = Vec::with_capacity(records.len());
    for record in records {
        let event = &events[record.index];
        service_ids.push(event.service.as_str());
        integrations.push(event.integration.as_str());
        actions.push(event.action.as_str());
        dedup_keys.push(event.dedup_key.as_str());
        severities.push(event.severity.as_str());
        summaries.push(event.summary.clone());
        sources.push(event.source.clone());
        occurred.push(event.occurred_at.map(micros));
        received.push(micros(event.received_at));
        alerts.push(ids.alert(record.alert));
        outcomes.push(record.outcome.as_str());
        details.push(event.details.to_string());
    }
    sqlx::query(
        "INSERT INTO events (service_id, integration, action, dedup_key, severity, summary,
         source, occurred_at, received_at, alert_id, outcome, details)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[],
                              $11::text[], $12::text[])",
    )
    .bind(service_ids)
    .bind(integrations)
    .bind(actions)
    .bind(dedup_keys)
    .bind(severities)
    .bind(summaries)
    .bind(sources)
    .bind(occurred)
    .bind(received)
    .bind(alerts)
    .bind(outcomes)
    .bind(details)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

async fn insert_changes(
    conn: &mut PgConnection,
    changes: &[&ChangeEvent],
) -> Result<(), StoreError> {
    for chunk in changes.chunks(MAX_BINDS / 7) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|change| {
                (
                    change,
                    change.details.to_string(),
                    tocsin_store::encode::change_links(&change.links),
                )
            })
            .collect();
        let mut query = QueryBuilder::<Postgres>::new(
            "INSERT INTO change_events (service_id, summary, source, occurred_at, received_at,
             details, links) ",
        );
        query.push_values(&rows, |mut row, (change, details, links)| {
            row.push_bind(change.service.as_str())
                .push_bind(change.summary.as_str())
                .push_bind(change.source.as_deref())
                .push_bind(change.occurred_at.map(micros))
                .push_bind(micros(change.received_at))
                .push_bind(details.as_str())
                .push_bind(links.as_str());
        });
        query.build().execute(&mut *conn).await.map_err(db)?;
    }
    Ok(())
}

type Key = (ServiceId, DedupKey);

/// Locks and loads, for every key of the batch, its open alert (with that alert's incident) or
/// else its open incident. `None` when another writer committed an alert for one of the keys
/// between the two locking statements.
async fn lock_snapshots(
    conn: &mut PgConnection,
    events: &[&Event],
) -> Result<Option<HashMap<Key, KeySnapshot>>, StoreError> {
    let keys: BTreeSet<(&ServiceId, &DedupKey)> = events
        .iter()
        .map(|event| (&event.service, &event.dedup_key))
        .collect();
    let services: Vec<&str> = keys.iter().map(|(service, _)| service.as_str()).collect();
    let dedup_keys: Vec<&str> = keys.iter().map(|(_, key)| key.as_str()).collect();
    let mut snapshots: HashMap<Key, KeySnapshot> = HashMap::new();

    // The incidents first: the open ones of the keys, and those their open alerts belong to.
    let rows = sqlx::query(
        "SELECT number, service_id, dedup_key, state, open_alerts, acknowledged_at FROM incidents
         WHERE number IN (
             SELECT number FROM incidents
             WHERE state <> 'resolved'
               AND (service_id, dedup_key) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
             UNION
             SELECT incident_number FROM alerts
             WHERE state <> 'resolved'
               AND (service_id, dedup_key) IN (SELECT * FROM UNNEST($1::text[], $2::text[])))
         ORDER BY service_id, dedup_key, number
         FOR UPDATE",
    )
    .bind(&services)
    .bind(&dedup_keys)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut locked = HashSet::new();
    for row in rows {
        let row = Stored(&row);
        let key = stored_key(&row)?;
        let incident = decode::open_incident(&row)?;
        locked.insert(incident.number);
        // Resolved while this transaction waited for its lock.
        if incident.state == IncidentState::Resolved {
            continue;
        }
        let snapshot = snapshots.entry(key).or_default();
        // The newest open incident of a key wins.
        if snapshot
            .open_incident
            .as_ref()
            .is_none_or(|held| held.number < incident.number)
        {
            snapshot.open_incident = Some(incident);
        }
    }

    let rows = sqlx::query(
        "SELECT a.id, a.incident_number, a.service_id, a.dedup_key, a.state, a.count,
                a.first_seen, a.last_seen, a.severity, a.summary, a.source, a.acknowledged_at,
                a.unlogged_folds, COALESCE(a.folds_logged_at, a.first_seen) AS folds_logged_at,
                i.number, i.state AS incident_state, i.open_alerts,
                i.acknowledged_at AS incident_acknowledged_at
         FROM alerts a JOIN incidents i ON i.number = a.incident_number
         WHERE a.state <> 'resolved'
           AND (a.service_id, a.dedup_key) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
         ORDER BY a.service_id, a.dedup_key, a.id
         FOR UPDATE OF a",
    )
    .bind(&services)
    .bind(&dedup_keys)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    for row in rows {
        let row = Stored(&row);
        let incident = IncidentNumber(row.integer("number")?);
        if !locked.contains(&incident) {
            // Its incident is not locked, and locking it now, after an alert, could deadlock
            // with a writer that holds it and waits for that alert.
            return Ok(None);
        }
        let key = stored_key(&row)?;
        let snapshot = snapshots.entry(key).or_default();
        snapshot.open_alert = Some(decode::open_alert(&row)?);
        // The incident an open alert belongs to is the key's incident.
        snapshot.open_incident = Some(decode::open_alert_incident(&row)?);
    }
    Ok(Some(snapshots))
}

fn stored_key(row: &Stored<&sqlx::postgres::PgRow>) -> Result<Key, StoreError> {
    let service = row.text("service_id")?;
    Ok((ServiceId::new(service), decode::snapshot_key(row)?))
}

/// Column arrays of the incidents one batch updates.
#[derive(Default)]
struct IncidentUpdates {
    number: Vec<i64>,
    state: Vec<&'static str>,
    open_alerts: Vec<i64>,
    acknowledged_at: Vec<Option<i64>>,
    resolved_at: Vec<Option<i64>>,
    updated_at: Vec<i64>,
}

/// Column arrays of the alerts one batch updates.
#[derive(Default)]
struct AlertUpdates {
    id: Vec<i64>,
    state: Vec<&'static str>,
    count: Vec<i64>,
    last_seen: Vec<i64>,
    severity: Vec<&'static str>,
    summary: Vec<String>,
    source: Vec<String>,
    details: Vec<Option<String>>,
    acknowledged_at: Vec<Option<i64>>,
    resolved_at: Vec<Option<i64>>,
    unlogged_folds: Vec<i64>,
    folds_logged_at: Vec<i64>,
}
