//! Reading rows back into the store's models, and preparing text for writing.

use std::borrow::Cow;

use sqlx::postgres::PgRow;
use sqlx::Row;
use tocsin_core::{
    Actor, AlertId, DedupKey, EventAction, IncidentNumber, Integration, ServiceId, TimelineKind,
    Timestamp,
};
use tocsin_store::{
    AlertRow, ApiToken, ChangeEventRow, IncidentRow, StoreError, StoredEvent, TimelineEntry,
};

use crate::parse_stored;

pub(crate) const INCIDENT_COLUMNS: &str = "number, service_id, dedup_key, title, severity, \
    priority, state, open_alerts, created_at, impact_started_at, acknowledged_at, resolved_at, \
    updated_at";

pub(crate) const ALERT_COLUMNS: &str = "id, incident_number, service_id, dedup_key, state, count, \
    first_seen, last_seen, severity, summary, source, details, acknowledged_at, resolved_at";

pub(crate) const EVENT_COLUMNS: &str = "id, service_id, integration, action, dedup_key, severity, \
    summary, source, occurred_at, received_at, alert_id, outcome, details";

pub(crate) fn db(error: sqlx::Error) -> StoreError {
    StoreError::database(error)
}

pub(crate) fn micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

pub(crate) fn timestamp(column: &str, value: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(value)
        .map_err(|_| StoreError::Corrupt(format!("column {column} holds {value}")))
}

fn optional_timestamp(column: &str, value: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    value.map(|value| timestamp(column, value)).transpose()
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(db)
}

fn json(column: &str, text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("column {column} is not JSON: {error}")))
}

fn dedup_key(value: &str) -> Result<DedupKey, StoreError> {
    DedupKey::parse(value)
        .map_err(|error| StoreError::Corrupt(format!("dedup_key {value:?} {error}")))
}

pub(crate) fn read_incident(row: &PgRow) -> Result<IncidentRow, StoreError> {
    Ok(IncidentRow {
        number: IncidentNumber(get(row, "number")?),
        service: ServiceId::new(get::<String>(row, "service_id")?),
        dedup_key: dedup_key(&get::<String>(row, "dedup_key")?)?,
        title: get(row, "title")?,
        severity: parse_stored("severity", &get::<String>(row, "severity")?)?,
        priority: parse_stored("priority", &get::<String>(row, "priority")?)?,
        state: parse_stored("state", &get::<String>(row, "state")?)?,
        open_alerts: get(row, "open_alerts")?,
        created_at: timestamp("created_at", get(row, "created_at")?)?,
        impact_started_at: timestamp("impact_started_at", get(row, "impact_started_at")?)?,
        acknowledged_at: optional_timestamp("acknowledged_at", get(row, "acknowledged_at")?)?,
        resolved_at: optional_timestamp("resolved_at", get(row, "resolved_at")?)?,
        updated_at: timestamp("updated_at", get(row, "updated_at")?)?,
    })
}

pub(crate) fn read_alert(row: &PgRow) -> Result<AlertRow, StoreError> {
    Ok(AlertRow {
        id: AlertId(get(row, "id")?),
        incident: IncidentNumber(get(row, "incident_number")?),
        service: ServiceId::new(get::<String>(row, "service_id")?),
        dedup_key: dedup_key(&get::<String>(row, "dedup_key")?)?,
        state: parse_stored("state", &get::<String>(row, "state")?)?,
        count: get(row, "count")?,
        first_seen: timestamp("first_seen", get(row, "first_seen")?)?,
        last_seen: timestamp("last_seen", get(row, "last_seen")?)?,
        severity: parse_stored("severity", &get::<String>(row, "severity")?)?,
        summary: get(row, "summary")?,
        source: get(row, "source")?,
        details: json("details", &get::<String>(row, "details")?)?,
        acknowledged_at: optional_timestamp("acknowledged_at", get(row, "acknowledged_at")?)?,
        resolved_at: optional_timestamp("resolved_at", get(row, "resolved_at")?)?,
    })
}

pub(crate) fn read_timeline_entry(row: &PgRow) -> Result<TimelineEntry, StoreError> {
    let kind: String = get(row, "kind")?;
    Ok(TimelineEntry {
        id: get(row, "id")?,
        incident: IncidentNumber(get(row, "incident_number")?),
        at: timestamp("at", get(row, "at")?)?,
        actor: Actor::from_stored(get(row, "actor")?),
        kind: TimelineKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("timeline kind {kind:?}")))?,
        data: json("data", &get::<String>(row, "data")?)?,
    })
}

pub(crate) fn read_event(row: &PgRow) -> Result<StoredEvent, StoreError> {
    let integration: String = get(row, "integration")?;
    let action: String = get(row, "action")?;
    Ok(StoredEvent {
        id: get(row, "id")?,
        service: ServiceId::new(get::<String>(row, "service_id")?),
        integration: Integration::parse(&integration)
            .ok_or_else(|| StoreError::Corrupt(format!("integration {integration:?}")))?,
        action: match action.as_str() {
            "trigger" => EventAction::Trigger,
            "acknowledge" => EventAction::Acknowledge,
            "resolve" => EventAction::Resolve,
            _ => return Err(StoreError::Corrupt(format!("event action {action:?}"))),
        },
        dedup_key: dedup_key(&get::<String>(row, "dedup_key")?)?,
        severity: parse_stored("severity", &get::<String>(row, "severity")?)?,
        summary: get(row, "summary")?,
        source: get(row, "source")?,
        occurred_at: optional_timestamp("occurred_at", get(row, "occurred_at")?)?,
        received_at: timestamp("received_at", get(row, "received_at")?)?,
        alert: get::<Option<i64>>(row, "alert_id")?.map(AlertId),
        outcome: get(row, "outcome")?,
        details: json("details", &get::<String>(row, "details")?)?,
    })
}

pub(crate) fn read_change_event(row: &PgRow) -> Result<ChangeEventRow, StoreError> {
    Ok(ChangeEventRow {
        id: get(row, "id")?,
        service: ServiceId::new(get::<String>(row, "service_id")?),
        summary: get(row, "summary")?,
        source: get(row, "source")?,
        occurred_at: optional_timestamp("occurred_at", get(row, "occurred_at")?)?,
        received_at: timestamp("received_at", get(row, "received_at")?)?,
        details: json("details", &get::<String>(row, "details")?)?,
        links: json("links", &get::<String>(row, "links")?)?,
    })
}

pub(crate) fn read_api_token(row: &PgRow) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: get(row, "id")?,
        name: get(row, "name")?,
        scope: parse_stored("scope", &get::<String>(row, "scope")?)?,
        created_at: timestamp("created_at", get(row, "created_at")?)?,
        revoked_at: optional_timestamp("revoked_at", get(row, "revoked_at")?)?,
    })
}

/// PostgreSQL text cannot hold NUL characters, which SQLite stores as sent; they become U+FFFD
/// so that one such event does not fail the whole batch it arrived in.
pub(crate) fn text(value: &str) -> Cow<'_, str> {
    if value.contains('\0') {
        Cow::Owned(value.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(value)
    }
}
