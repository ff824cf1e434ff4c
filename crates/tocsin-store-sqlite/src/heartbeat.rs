//! The heartbeat part of the ingest transaction (see `tocsin_store::heartbeat`), on the
//! ingest `rusqlite` connection.

use std::collections::HashMap;

use rusqlite::{params, Connection};
use tocsin_core::heartbeat::HeartbeatState;
use tocsin_core::Timestamp;
use tocsin_store::heartbeat::{
    deadline_key, deadline_payload, read_state, HeartbeatWrites, HEARTBEAT_DEADLINE, STATE_COLUMNS,
};
use tocsin_store::StoreError;

use crate::ingest::{db, Row};
use crate::rows::micros;

/// Adds to `states` the stored states of those of `monitors` it does not hold (a monitor that
/// has none stays absent).
pub(crate) fn load_states(
    conn: &Connection,
    monitors: &[String],
    states: &mut HashMap<String, HeartbeatState>,
) -> Result<(), StoreError> {
    let mut query = conn
        .prepare_cached(&format!(
            "SELECT {STATE_COLUMNS} FROM heartbeat_states WHERE monitor_id = ?1"
        ))
        .map_err(db)?;
    for monitor in monitors {
        if states.contains_key(monitor) {
            continue;
        }
        let mut rows = query.query([monitor.as_str()]).map_err(db)?;
        if let Some(row) = rows.next().map_err(db)? {
            let stored = read_state(&Row(row))?;
            states.insert(stored.monitor, stored.state);
        }
    }
    Ok(())
}

/// Writes the pings, the states and the deadlines of `writes`.
pub(crate) fn write(
    conn: &Connection,
    writes: &HeartbeatWrites,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut insert_ping = conn
        .prepare_cached(
            "INSERT INTO heartbeat_pings (monitor_id, kind, at, rid, exit_code, duration_ms,
             body, remote, method) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(db)?;
    for (monitor, ping) in &writes.pings {
        insert_ping
            .execute(params![
                monitor,
                ping.kind.as_str(),
                micros(ping.at),
                ping.rid,
                ping.exit_code,
                ping.duration
                    .map(|duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)),
                ping.body,
                ping.remote,
                ping.method,
            ])
            .map_err(db)?;
    }
    let mut upsert_state = conn
        .prepare_cached(
            "INSERT INTO heartbeat_states (monitor_id, status, since, deadline, last_ping_kind,
             last_ping_at, last_ping_exit_code, last_ping_body, last_success_at, started_at,
             started_rid, starts_without_success, crash_looping, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT (monitor_id) DO UPDATE SET status = excluded.status,
             since = excluded.since, deadline = excluded.deadline,
             last_ping_kind = excluded.last_ping_kind, last_ping_at = excluded.last_ping_at,
             last_ping_exit_code = excluded.last_ping_exit_code,
             last_ping_body = excluded.last_ping_body, last_success_at = excluded.last_success_at,
             started_at = excluded.started_at, started_rid = excluded.started_rid,
             starts_without_success = excluded.starts_without_success,
             crash_looping = excluded.crash_looping, updated_at = excluded.updated_at",
        )
        .map_err(db)?;
    let mut schedule = conn
        .prepare_cached(
            "INSERT INTO due_work (kind, key, payload, due_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (kind, key) DO UPDATE SET due_at = excluded.due_at,
             payload = excluded.payload, parked_at = NULL, attempts = 0,
             revision = revision + 1
             WHERE due_work.due_at <> excluded.due_at OR due_work.payload <> excluded.payload
             OR due_work.parked_at IS NOT NULL",
        )
        .map_err(db)?;
    for write in &writes.states {
        let state = &write.after;
        let last = state.last_ping.as_ref();
        upsert_state
            .execute(params![
                write.monitor,
                state.status.as_str(),
                micros(state.since),
                state.deadline.map(micros),
                last.map(|ping| ping.kind.as_str()),
                last.map(|ping| micros(ping.at)),
                last.and_then(|ping| ping.exit_code),
                last.map(|ping| ping.body.as_str()),
                state.last_success_at.map(micros),
                state.started_at.map(micros),
                state.started_rid,
                i64::from(state.starts_without_success),
                i64::from(state.crash_looping),
                micros(state.created_at),
                micros(now),
            ])
            .map_err(db)?;
        if !write.write_deadline {
            continue;
        }
        // A monitor without a deadline (down) keeps its item: when it comes due it finds the
        // monitor down and goes. Cancelling it here could take it from a runner in the middle
        // of running it.
        if let Some(deadline) = state.deadline {
            let key = deadline_key(&write.monitor)?;
            schedule
                .execute(params![
                    HEARTBEAT_DEADLINE.as_str(),
                    key.as_str(),
                    deadline_payload(&write.monitor),
                    micros(deadline),
                    micros(now),
                ])
                .map_err(db)?;
        }
    }
    Ok(())
}
