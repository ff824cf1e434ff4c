//! Reading rows back into the store's models (`tocsin_store::decode`), and preparing text for
//! writing.

use std::borrow::Cow;

use sqlx::postgres::PgRow;
use sqlx::Row;
use tocsin_core::Timestamp;
use tocsin_store::decode::{self, StoredRow};
use tocsin_store::{
    AlertRow, ApiToken, ChangeEventRow, IncidentRow, StoreError, StoredEvent, TimelineEntry,
};

pub(crate) const INCIDENT_COLUMNS: &str = "number, service_id, dedup_key, title, severity, \
    priority, state, open_alerts, created_at, impact_started_at, acknowledged_at, resolved_at, \
    updated_at";

pub(crate) const ALERT_COLUMNS: &str = "id, incident_number, service_id, dedup_key, state, count, \
    first_seen, last_seen, severity, summary, source, details, acknowledged_at, resolved_at";

/// What `tocsin_store::decode::unlogged_folds` reads of an alert.
pub(crate) const UNLOGGED_FOLDS_COLUMNS: &str =
    "id, incident_number, dedup_key, unlogged_folds, count, summary, last_seen";

pub(crate) const EVENT_COLUMNS: &str = "id, service_id, integration, action, dedup_key, severity, \
    summary, source, occurred_at, received_at, alert_id, outcome, details";

pub(crate) fn db(error: sqlx::Error) -> StoreError {
    StoreError::database(error)
}

pub(crate) fn micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

/// A PostgreSQL row as `tocsin_store::decode` reads it.
pub(crate) struct Stored<'r>(pub(crate) &'r PgRow);

impl StoredRow for Stored<'_> {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.0.try_get(column).map_err(db)
    }

    fn optional_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.0.try_get(column).map_err(db)
    }

    fn integer(&self, column: &str) -> Result<i64, StoreError> {
        self.0.try_get(column).map_err(db)
    }

    fn optional_integer(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.0.try_get(column).map_err(db)
    }
}

pub(crate) fn read_incident(row: &PgRow) -> Result<IncidentRow, StoreError> {
    decode::incident(&Stored(row))
}

pub(crate) fn read_alert(row: &PgRow) -> Result<AlertRow, StoreError> {
    decode::alert(&Stored(row))
}

pub(crate) fn read_timeline_entry(row: &PgRow) -> Result<TimelineEntry, StoreError> {
    decode::timeline_entry(&Stored(row))
}

pub(crate) fn read_event(row: &PgRow) -> Result<StoredEvent, StoreError> {
    decode::event(&Stored(row))
}

pub(crate) fn read_change_event(row: &PgRow) -> Result<ChangeEventRow, StoreError> {
    decode::change_event(&Stored(row))
}

pub(crate) fn read_api_token(row: &PgRow) -> Result<ApiToken, StoreError> {
    decode::api_token(&Stored(row))
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
