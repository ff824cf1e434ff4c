//! Reading stored rows back into the store's models, the same way for every backend.
//!
//! A backend implements [`StoredRow`] for its rows and calls the functions here. Times are
//! stored as microseconds since the Unix epoch, JSON as text and enums by their `as_str`
//! names; a value that does not read back is [`StoreError::Corrupt`].

use std::str::FromStr;

use tocsin_core::{
    Actor, AlertId, AlertSnapshot, DedupKey, EventAction, IncidentNumber, Integration, OpenAlert,
    OpenIncident, ServiceId, TimelineData, TimelineKind, Timestamp, UnloggedFolds,
};

use crate::{
    AlertRow, AlertSummary, ApiToken, ChangeEventRow, EventSummary, IncidentRow, StoreError,
    StoredEvent, TimelineEntry,
};

/// One row of a query result, read by column name. A column that is missing or of another type
/// is the backend's database error.
pub trait StoredRow {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn optional_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn integer(&self, column: &str) -> Result<i64, StoreError>;
    fn optional_integer(&self, column: &str) -> Result<Option<i64>, StoreError>;
}

/// Parses a stored enum value, reporting a corrupt row instead of panicking.
pub fn parse_stored<T: FromStr>(column: &str, value: &str) -> Result<T, StoreError> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("column {column} holds {value:?}")))
}

/// A time stored as microseconds since the Unix epoch.
pub fn timestamp(column: &str, value: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(value)
        .map_err(|_| StoreError::Corrupt(format!("column {column} holds {value}")))
}

pub fn optional_timestamp(
    column: &str,
    value: Option<i64>,
) -> Result<Option<Timestamp>, StoreError> {
    value.map(|value| timestamp(column, value)).transpose()
}

/// JSON stored as text.
pub fn json(column: &str, text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("column {column} is not JSON: {error}")))
}

pub fn dedup_key(value: &str) -> Result<DedupKey, StoreError> {
    DedupKey::parse(value)
        .map_err(|error| StoreError::Corrupt(format!("dedup_key {value:?} {error}")))
}

fn enum_column<T: FromStr>(row: &impl StoredRow, column: &str) -> Result<T, StoreError> {
    parse_stored(column, &row.text(column)?)
}

fn time_column(row: &impl StoredRow, column: &str) -> Result<Timestamp, StoreError> {
    timestamp(column, row.integer(column)?)
}

fn optional_time_column(
    row: &impl StoredRow,
    column: &str,
) -> Result<Option<Timestamp>, StoreError> {
    optional_timestamp(column, row.optional_integer(column)?)
}

fn json_column(row: &impl StoredRow, column: &str) -> Result<serde_json::Value, StoreError> {
    json(column, &row.text(column)?)
}

fn dedup_key_column(row: &impl StoredRow) -> Result<DedupKey, StoreError> {
    dedup_key(&row.text("dedup_key")?)
}

/// An `incidents` row with all of its columns.
pub fn incident(row: &impl StoredRow) -> Result<IncidentRow, StoreError> {
    Ok(IncidentRow {
        number: IncidentNumber(row.integer("number")?),
        service: ServiceId::new(row.text("service_id")?),
        dedup_key: dedup_key_column(row)?,
        title: row.text("title")?,
        severity: enum_column(row, "severity")?,
        priority: enum_column(row, "priority")?,
        state: enum_column(row, "state")?,
        open_alerts: row.integer("open_alerts")?,
        created_at: time_column(row, "created_at")?,
        impact_started_at: time_column(row, "impact_started_at")?,
        acknowledged_at: optional_time_column(row, "acknowledged_at")?,
        resolved_at: optional_time_column(row, "resolved_at")?,
        updated_at: time_column(row, "updated_at")?,
    })
}

/// An `alerts` row with all of its columns.
pub fn alert(row: &impl StoredRow) -> Result<AlertRow, StoreError> {
    Ok(AlertRow {
        alert: alert_summary(row)?,
        details: json_column(row, "details")?,
    })
}

/// An `alerts` row with the columns of [`AlertSummary`] (all but `details`).
pub fn alert_summary(row: &impl StoredRow) -> Result<AlertSummary, StoreError> {
    Ok(AlertSummary {
        id: AlertId(row.integer("id")?),
        incident: IncidentNumber(row.integer("incident_number")?),
        service: ServiceId::new(row.text("service_id")?),
        dedup_key: dedup_key_column(row)?,
        state: enum_column(row, "state")?,
        count: row.integer("count")?,
        first_seen: time_column(row, "first_seen")?,
        last_seen: time_column(row, "last_seen")?,
        severity: enum_column(row, "severity")?,
        summary: row.text("summary")?,
        source: row.text("source")?,
        acknowledged_at: optional_time_column(row, "acknowledged_at")?,
        resolved_at: optional_time_column(row, "resolved_at")?,
    })
}

/// A `timeline_entries` row with all of its columns.
pub fn timeline_entry(row: &impl StoredRow) -> Result<TimelineEntry, StoreError> {
    let kind = row.text("kind")?;
    let kind = TimelineKind::parse(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("timeline kind {kind:?}")))?;
    Ok(TimelineEntry {
        id: row.integer("id")?,
        incident: IncidentNumber(row.integer("incident_number")?),
        at: time_column(row, "at")?,
        actor: Actor::from_stored(row.text("actor")?),
        data: timeline_data(kind, &row.text("data")?)?,
    })
}

/// The `data` of a timeline entry of `kind`, as stored.
pub fn timeline_data(kind: TimelineKind, text: &str) -> Result<TimelineData, StoreError> {
    crate::timeline::decode(kind, text)
}

/// An `events` row with all of its columns.
pub fn event(row: &impl StoredRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        event: event_summary(row)?,
        details: json_column(row, "details")?,
    })
}

/// An `events` row with the columns of [`EventSummary`] (all but `details`).
pub fn event_summary(row: &impl StoredRow) -> Result<EventSummary, StoreError> {
    let integration = row.text("integration")?;
    let action = row.text("action")?;
    Ok(EventSummary {
        id: row.integer("id")?,
        service: ServiceId::new(row.text("service_id")?),
        integration: Integration::parse(&integration)
            .ok_or_else(|| StoreError::Corrupt(format!("integration {integration:?}")))?,
        action: match action.as_str() {
            "trigger" => EventAction::Trigger,
            "acknowledge" => EventAction::Acknowledge,
            "resolve" => EventAction::Resolve,
            _ => return Err(StoreError::Corrupt(format!("event action {action:?}"))),
        },
        dedup_key: dedup_key_column(row)?,
        severity: enum_column(row, "severity")?,
        summary: row.text("summary")?,
        source: row.text("source")?,
        occurred_at: optional_time_column(row, "occurred_at")?,
        received_at: time_column(row, "received_at")?,
        alert: row.optional_integer("alert_id")?.map(AlertId),
        outcome: row.text("outcome")?,
    })
}

/// A `change_events` row with all of its columns.
pub fn change_event(row: &impl StoredRow) -> Result<ChangeEventRow, StoreError> {
    Ok(ChangeEventRow {
        id: row.integer("id")?,
        service: ServiceId::new(row.text("service_id")?),
        summary: row.text("summary")?,
        source: row.optional_text("source")?,
        occurred_at: optional_time_column(row, "occurred_at")?,
        received_at: time_column(row, "received_at")?,
        details: json_column(row, "details")?,
        links: json_column(row, "links")?,
    })
}

/// An `api_tokens` row with its `id, name, scope, created_at, revoked_at` columns.
pub fn api_token(row: &impl StoredRow) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: row.integer("id")?,
        name: row.text("name")?,
        scope: enum_column(row, "scope")?,
        created_at: time_column(row, "created_at")?,
        revoked_at: optional_time_column(row, "revoked_at")?,
    })
}

/// An open alert for an incident command, from its `id, dedup_key, state, acknowledged_at,
/// count, summary, last_seen, unlogged_folds, folds_logged_at` columns.
pub fn alert_snapshot(row: &impl StoredRow) -> Result<AlertSnapshot, StoreError> {
    Ok(AlertSnapshot {
        id: AlertId(row.integer("id")?),
        dedup_key: dedup_key_column(row)?,
        state: enum_column(row, "state")?,
        acknowledged_at: optional_time_column(row, "acknowledged_at")?,
        count: row.integer("count")?,
        summary: row.text("summary")?,
        last_seen: time_column(row, "last_seen")?,
        unlogged_folds: row.integer("unlogged_folds")?,
        folds_logged_at: optional_time_column(row, "folds_logged_at")?,
    })
}

/// The `dedup_key` column of an open incident or alert loaded for the fold.
pub fn snapshot_key(row: &impl StoredRow) -> Result<DedupKey, StoreError> {
    let value = row.text("dedup_key")?;
    DedupKey::parse(&value).map_err(|error| StoreError::Corrupt(format!("dedup_key {error}")))
}

/// An open incident for the fold, from its `number, state, open_alerts, acknowledged_at`
/// columns.
pub fn open_incident(row: &impl StoredRow) -> Result<OpenIncident, StoreError> {
    Ok(OpenIncident {
        number: IncidentNumber(row.integer("number")?),
        state: enum_column(row, "state")?,
        open_alerts: row.integer("open_alerts")?,
        acknowledged_at: optional_time_column(row, "acknowledged_at")?,
    })
}

/// An open alert for the fold, from its `id, incident_number, state, count, first_seen,
/// last_seen, severity, summary, source, acknowledged_at, unlogged_folds` columns and
/// `folds_logged_at` (which the query must give as the first event's time when it is NULL).
pub fn open_alert(row: &impl StoredRow) -> Result<OpenAlert, StoreError> {
    Ok(OpenAlert {
        id: AlertId(row.integer("id")?),
        incident: IncidentNumber(row.integer("incident_number")?),
        state: enum_column(row, "state")?,
        count: row.integer("count")?,
        first_seen: time_column(row, "first_seen")?,
        last_seen: time_column(row, "last_seen")?,
        severity: enum_column(row, "severity")?,
        summary: row.text("summary")?,
        source: row.text("source")?,
        acknowledged_at: optional_time_column(row, "acknowledged_at")?,
        unlogged_folds: row.integer("unlogged_folds")?,
        folds_logged_at: time_column(row, "folds_logged_at")?,
    })
}

/// Unlogged folds of an open alert: `id`, `incident_number`, `dedup_key`, `unlogged_folds`,
/// `count`, `summary` and `last_seen`.
pub fn unlogged_folds(row: &impl StoredRow) -> Result<UnloggedFolds, StoreError> {
    Ok(UnloggedFolds {
        alert: AlertId(row.integer("id")?),
        incident: IncidentNumber(row.integer("incident_number")?),
        dedup_key: snapshot_key(row)?,
        events: row.integer("unlogged_folds")?,
        count: row.integer("count")?,
        last_summary: row.text("summary")?,
        last_seen: time_column(row, "last_seen")?,
    })
}

/// The incident an open alert belongs to, from the alert row joined with it: `number`,
/// `incident_state`, `open_alerts` and `incident_acknowledged_at`.
pub fn open_alert_incident(row: &impl StoredRow) -> Result<OpenIncident, StoreError> {
    Ok(OpenIncident {
        number: IncidentNumber(row.integer("number")?),
        state: parse_stored("state", &row.text("incident_state")?)?,
        open_alerts: row.integer("open_alerts")?,
        acknowledged_at: optional_timestamp(
            "acknowledged_at",
            row.optional_integer("incident_acknowledged_at")?,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A row of text and integer columns; NULL is a column that is absent.
    #[derive(Default)]
    struct Row(HashMap<&'static str, Value>);

    enum Value {
        Text(&'static str),
        Integer(i64),
    }

    impl Row {
        fn with_text(mut self, column: &'static str, value: &'static str) -> Self {
            self.0.insert(column, Value::Text(value));
            self
        }

        fn with_integer(mut self, column: &'static str, value: i64) -> Self {
            self.0.insert(column, Value::Integer(value));
            self
        }
    }

    fn wrong_type(column: &str) -> StoreError {
        StoreError::Corrupt(format!(
            "test row: column {column} has another type or is NULL"
        ))
    }

    impl StoredRow for Row {
        fn text(&self, column: &str) -> Result<String, StoreError> {
            self.optional_text(column)?
                .ok_or_else(|| wrong_type(column))
        }

        fn optional_text(&self, column: &str) -> Result<Option<String>, StoreError> {
            match self.0.get(column) {
                None => Ok(None),
                Some(Value::Text(value)) => Ok(Some((*value).to_owned())),
                Some(Value::Integer(_)) => Err(wrong_type(column)),
            }
        }

        fn integer(&self, column: &str) -> Result<i64, StoreError> {
            self.optional_integer(column)?
                .ok_or_else(|| wrong_type(column))
        }

        fn optional_integer(&self, column: &str) -> Result<Option<i64>, StoreError> {
            match self.0.get(column) {
                None => Ok(None),
                Some(Value::Integer(value)) => Ok(Some(*value)),
                Some(Value::Text(_)) => Err(wrong_type(column)),
            }
        }
    }

    fn token() -> Row {
        Row::default()
            .with_integer("id", 7)
            .with_text("name", "ci")
            .with_text("scope", "write")
            .with_integer("created_at", 1_800_000_000_000_000)
    }

    fn corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
        match result {
            Err(StoreError::Corrupt(message)) => message,
            other => panic!("expected a corrupt row, got {other:?}"),
        }
    }

    #[test]
    fn reads_a_row() {
        let token = api_token(&token()).unwrap();
        assert_eq!(token.id, 7);
        assert_eq!(token.name, "ci");
        assert_eq!(token.scope, crate::TokenScope::Write);
        assert_eq!(token.created_at.as_microsecond(), 1_800_000_000_000_000);
        assert_eq!(token.revoked_at, None);
    }

    #[test]
    fn reports_corrupt_values_by_column() {
        assert_eq!(
            corrupt(api_token(&token().with_text("scope", "admin"))),
            r#"column scope holds "admin""#
        );
        assert_eq!(
            corrupt(api_token(&token().with_integer("revoked_at", i64::MAX))),
            format!("column revoked_at holds {}", i64::MAX)
        );
        assert!(corrupt(json("links", "[")).starts_with("column links is not JSON: "));
        assert_eq!(corrupt(dedup_key("")), r#"dedup_key "" must not be empty"#);
    }

    #[test]
    fn reports_unknown_kinds() {
        let entry = Row::default()
            .with_text("kind", "shrug")
            .with_integer("id", 1)
            .with_integer("incident_number", 1)
            .with_integer("at", 0)
            .with_text("actor", "system")
            .with_text("data", "{}");
        assert_eq!(corrupt(timeline_entry(&entry)), r#"timeline kind "shrug""#);
    }

    #[test]
    fn snapshot_rows_keep_their_messages() {
        assert_eq!(
            corrupt(snapshot_key(&Row::default().with_text("dedup_key", ""))),
            "dedup_key must not be empty"
        );
        let row = Row::default()
            .with_integer("number", 3)
            .with_text("incident_state", "triggered")
            .with_integer("open_alerts", 1)
            .with_integer("incident_acknowledged_at", i64::MIN);
        assert_eq!(
            corrupt(open_alert_incident(&row)),
            format!("column acknowledged_at holds {}", i64::MIN)
        );
        let row = Row::default()
            .with_integer("number", 3)
            .with_text("incident_state", "gone")
            .with_integer("open_alerts", 1);
        assert_eq!(
            corrupt(open_alert_incident(&row)),
            r#"column state holds "gone""#
        );
    }
}
