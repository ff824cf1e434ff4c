//! The ingest transaction: load what is open for the batch's keys, let `tocsin_core::fold_batch`
//! decide, write the plan with as few statements as possible (multi-row inserts, one update per
//! touched row).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use tocsin_core::{
    fold_batch, AlertRef, ChangeEvent, DedupKey, Event, IncidentRef, IncidentState, KeySnapshot,
    ServiceId,
};
use tocsin_store::decode;
use tocsin_store::{AssignedIds, Inbound, IngestReport, ResolvePolicyOf, StoreError};

use crate::rows::{db, micros, Stored};

/// Rows per multi-row statement, largest first. Batches are cut into these sizes only, so every
/// statement's text is one of a few, prepared once per connection and reused, instead of a new
/// (and, for hundreds of rows, costly) preparation for every batch size. 256 rows of the widest
/// row (16 columns) stay far below SQLite's limit of 32,766 parameters.
const ROWS_PER_STATEMENT: [usize; 5] = [256, 64, 16, 4, 1];
/// Keys per `IN (...)` list when loading snapshots.
const KEYS_PER_QUERY: usize = 500;

pub(crate) async fn ingest(
    conn: &mut SqliteConnection,
    batch: &[Inbound],
    resolve_policy: ResolvePolicyOf<'_>,
) -> Result<IngestReport, StoreError> {
    let mut events = Vec::new();
    let mut changes = Vec::new();
    for inbound in batch {
        match inbound {
            Inbound::Alert(event) => events.push(event),
            Inbound::Change(change) => changes.push(change),
        }
    }
    let mut report = IngestReport {
        events: events.len(),
        change_events: changes.len(),
        ..IngestReport::default()
    };
    insert_changes(conn, &changes).await?;
    if events.is_empty() {
        return Ok(report);
    }

    let snapshots = load_snapshots(conn, &events).await?;
    let plan = fold_batch(&events, &snapshots, resolve_policy);

    // Ids for new rows are allocated here: the transaction holds SQLite's write lock, so nobody
    // else can take them.
    let mut next_incident: i64 = sqlx::query_scalar(
        "SELECT MAX(COALESCE((SELECT MAX(number) FROM incidents), 0),
                    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'incidents'), 0)) + 1",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    let mut next_alert: i64 = sqlx::query_scalar(
        "SELECT MAX(COALESCE((SELECT MAX(id) FROM alerts), 0),
                    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'alerts'), 0)) + 1",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;

    let mut ids = AssignedIds::default();
    let mut new_incidents = Vec::new();
    let mut incident_updates = Vec::new();
    for record in &plan.incidents {
        match (record.incident, &record.opened) {
            (IncidentRef::New(n), Some(opened)) => {
                let number = next_incident;
                next_incident += 1;
                ids.assign_incident(n, number);
                new_incidents.push((number, record, opened));
                report.incidents_opened += 1;
            }
            (IncidentRef::Existing(number), _) => {
                let updated_at = record
                    .resolved_at
                    .or(record.acknowledged_at)
                    .unwrap_or_else(|| events[events.len() - 1].received_at);
                incident_updates.push((number.0, record, micros(updated_at)));
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
    // One statement for every touched incident (and one below for every touched alert): the
    // cost of a commit must not grow by a statement per key.
    for chunk in statement_chunks(&incident_updates) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "UPDATE incidents SET state = v.column2, open_alerts = v.column3,
             acknowledged_at = v.column4, resolved_at = v.column5, updated_at = v.column6 FROM (",
        );
        query.push_values(chunk, |mut row, (number, record, updated_at)| {
            row.push_bind(*number)
                .push_bind(record.state.as_str())
                .push_bind(record.open_alerts)
                .push_bind(record.acknowledged_at.map(micros))
                .push_bind(record.resolved_at.map(micros))
                .push_bind(*updated_at);
        });
        query.push(") AS v WHERE incidents.number = v.column1");
        query.build().execute(&mut *conn).await.map_err(db)?;
    }
    for chunk in statement_chunks(&new_incidents) {
        let mut query = QueryBuilder::<Sqlite>::new(
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

    let mut new_alerts = Vec::new();
    let mut alert_changes = Vec::new();
    let mut alert_folds = Vec::new();
    for record in &plan.alerts {
        let details = record.details.as_ref().map(|details| details.to_string());
        match record.alert {
            AlertRef::New(n) => {
                let id = next_alert;
                next_alert += 1;
                ids.assign_alert(n, id);
                new_alerts.push((id, ids.incident(record.incident)?, record, details));
                report.alerts_opened += 1;
            }
            AlertRef::Existing(id) if record.state_changed => {
                alert_changes.push((id.0, record, details));
            }
            AlertRef::Existing(id) => alert_folds.push((id.0, record, details)),
        }
    }
    // Alerts that only folded events keep their state: leaving `state` out of the statement
    // spares SQLite the upkeep of the partial index that depends on it.
    for chunk in statement_chunks(&alert_folds) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "UPDATE alerts SET count = v.column2, last_seen = v.column3, severity = v.column4,
             summary = v.column5, source = v.column6,
             details = COALESCE(v.column7, alerts.details), unlogged_folds = v.column8,
             folds_logged_at = v.column9 FROM (",
        );
        query.push_values(chunk, |mut row, (id, record, details)| {
            row.push_bind(*id)
                .push_bind(record.count)
                .push_bind(micros(record.last_seen))
                .push_bind(record.severity.as_str())
                .push_bind(record.summary.as_str())
                .push_bind(record.source.as_str())
                .push_bind(details.as_deref())
                .push_bind(record.unlogged_folds)
                .push_bind(micros(record.folds_logged_at));
        });
        query.push(") AS v WHERE alerts.id = v.column1");
        query.build().execute(&mut *conn).await.map_err(db)?;
    }
    for chunk in statement_chunks(&alert_changes) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "UPDATE alerts SET state = v.column2, count = v.column3, last_seen = v.column4,
             severity = v.column5, summary = v.column6, source = v.column7,
             details = COALESCE(v.column8, alerts.details), acknowledged_at = v.column9,
             resolved_at = v.column10, unlogged_folds = v.column11, folds_logged_at = v.column12
             FROM (",
        );
        query.push_values(chunk, |mut row, (id, record, details)| {
            row.push_bind(*id)
                .push_bind(record.state.as_str())
                .push_bind(record.count)
                .push_bind(micros(record.last_seen))
                .push_bind(record.severity.as_str())
                .push_bind(record.summary.as_str())
                .push_bind(record.source.as_str())
                .push_bind(details.as_deref())
                .push_bind(record.acknowledged_at.map(micros))
                .push_bind(record.resolved_at.map(micros))
                .push_bind(record.unlogged_folds)
                .push_bind(micros(record.folds_logged_at));
        });
        query.push(") AS v WHERE alerts.id = v.column1");
        query.build().execute(&mut *conn).await.map_err(db)?;
    }
    for chunk in statement_chunks(&new_alerts) {
        let mut query = QueryBuilder::<Sqlite>::new(
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
        .map(|entry| Ok((ids.incident(entry.incident)?, entry, entry.data.to_string())))
        .collect::<Result<Vec<_>, StoreError>>()?;
    for chunk in statement_chunks(&timeline) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO timeline_entries (incident_number, at, actor, kind, data) ",
        );
        query.push_values(chunk, |mut row, (number, entry, data)| {
            row.push_bind(*number)
                .push_bind(micros(entry.at))
                .push_bind(entry.actor.as_str())
                .push_bind(entry.kind.as_str())
                .push_bind(data.as_str());
        });
        query.build().execute(&mut *conn).await.map_err(db)?;
    }

    let rows: Vec<_> = plan
        .events
        .iter()
        .map(|record| {
            let event = &events[record.index];
            (
                event,
                ids.alert(record.alert),
                record.outcome.as_str(),
                event.details.to_string(),
            )
        })
        .collect();
    for chunk in statement_chunks(&rows) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (service_id, integration, action, dedup_key, severity, summary,
             source, occurred_at, received_at, alert_id, outcome, details) ",
        );
        query.push_values(chunk, |mut row, (event, alert, outcome, details)| {
            row.push_bind(event.service.as_str())
                .push_bind(event.integration.as_str())
                .push_bind(event.action.as_str())
                .push_bind(event.dedup_key.as_str())
                .push_bind(event.severity.as_str())
                .push_bind(event.summary.as_str())
                .push_bind(event.source.as_str())
                .push_bind(event.occurred_at.map(micros))
                .push_bind(micros(event.received_at))
                .push_bind(*alert)
                .push_bind(*outcome)
                .push_bind(details.as_str());
        });
        query.build().execute(&mut *conn).await.map_err(db)?;
    }
    Ok(report)
}

async fn insert_changes(
    conn: &mut SqliteConnection,
    changes: &[&ChangeEvent],
) -> Result<(), StoreError> {
    for chunk in statement_chunks(changes) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|change| {
                let links: Vec<_> = change
                    .links
                    .iter()
                    .map(|link| match &link.text {
                        Some(text) => serde_json::json!({ "href": link.href, "text": text }),
                        None => serde_json::json!({ "href": link.href }),
                    })
                    .collect();
                (
                    change,
                    change.details.to_string(),
                    serde_json::Value::Array(links).to_string(),
                )
            })
            .collect();
        let mut query = QueryBuilder::<Sqlite>::new(
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

/// Loads, for every key of the batch, its open alert (with that alert's incident) or else its
/// open incident.
async fn load_snapshots(
    conn: &mut SqliteConnection,
    events: &[&Event],
) -> Result<HashMap<Key, KeySnapshot>, StoreError> {
    let mut keys_by_service: BTreeMap<&ServiceId, BTreeSet<&DedupKey>> = BTreeMap::new();
    for event in events {
        keys_by_service
            .entry(&event.service)
            .or_default()
            .insert(&event.dedup_key);
    }
    let mut snapshots: HashMap<Key, KeySnapshot> = HashMap::new();
    for (service, keys) in keys_by_service {
        let keys: Vec<_> = keys.into_iter().collect();
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let mut query = QueryBuilder::<Sqlite>::new(
                // Without the hint SQLite prefers `incidents_by_service` and reads every incident
                // the service ever had; the partial index holds only the open ones.
                "SELECT number, dedup_key, state, open_alerts, acknowledged_at
                 FROM incidents INDEXED BY incidents_open_by_key
                 WHERE state <> 'resolved' AND service_id = ",
            );
            query
                .push_bind(service.as_str())
                .push(" AND dedup_key IN (");
            let mut list = query.separated(", ");
            for key in chunk {
                list.push_bind(key.as_str());
            }
            list.push_unseparated(") ORDER BY number");
            for row in query.build().fetch_all(&mut *conn).await.map_err(db)? {
                let row = Stored(&row);
                let key = (service.clone(), decode::snapshot_key(&row)?);
                // The newest open incident of a key wins.
                snapshots.entry(key).or_default().open_incident =
                    Some(decode::open_incident(&row)?);
            }

            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT a.id, a.incident_number, a.dedup_key, a.state, a.count, a.first_seen,
                        a.last_seen, a.severity, a.summary, a.source, a.acknowledged_at,
                        a.unlogged_folds,
                        COALESCE(a.folds_logged_at, a.first_seen) AS folds_logged_at, i.number, i.state AS incident_state, i.open_alerts,
                        i.acknowledged_at AS incident_acknowledged_at
                 FROM alerts a INDEXED BY alerts_one_open_per_key
                 JOIN incidents i ON i.number = a.incident_number
                 WHERE a.state <> 'resolved' AND a.service_id = ",
            );
            query
                .push_bind(service.as_str())
                .push(" AND a.dedup_key IN (");
            let mut list = query.separated(", ");
            for key in chunk {
                list.push_bind(key.as_str());
            }
            list.push_unseparated(")");
            for row in query.build().fetch_all(&mut *conn).await.map_err(db)? {
                let row = Stored(&row);
                let key = (service.clone(), decode::snapshot_key(&row)?);
                let snapshot = snapshots.entry(key).or_default();
                snapshot.open_alert = Some(decode::open_alert(&row)?);
                // The incident an open alert belongs to is the key's incident.
                snapshot.open_incident = Some(decode::open_alert_incident(&row)?);
            }
        }
    }
    Ok(snapshots)
}

/// Cuts `rows` into consecutive chunks whose lengths are all in [`ROWS_PER_STATEMENT`].
fn statement_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let size = ROWS_PER_STATEMENT
            .iter()
            .copied()
            .find(|size| *size <= rest.len())?;
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::statement_chunks;

    #[test]
    fn chunks_cover_every_row_in_order_with_few_sizes() {
        for total in [0usize, 1, 3, 5, 63, 64, 65, 300, 2048, 2049] {
            let rows: Vec<usize> = (0..total).collect();
            let chunks: Vec<&[usize]> = statement_chunks(&rows).collect();
            let joined: Vec<usize> = chunks
                .iter()
                .flat_map(|chunk| chunk.iter().copied())
                .collect();
            assert_eq!(joined, rows);
            assert!(chunks
                .iter()
                .all(|chunk| [256, 64, 16, 4, 1].contains(&chunk.len())));
        }
    }
}
