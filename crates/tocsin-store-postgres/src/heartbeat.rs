//! The heartbeat part of the ingest transaction (see `tocsin_store::heartbeat`).
//!
//! The states of the batch's monitors are locked (`FOR UPDATE`, in monitor order) before they
//! are read, so two replicas apply pings of one monitor one after the other. A monitor's first
//! state is inserted without `ON CONFLICT`: two replicas inserting it at once make the second
//! fail on the primary key, and its batch starts again and finds the first one's row.

use std::collections::HashMap;

use sqlx::PgConnection;
use tocsin_core::heartbeat::HeartbeatState;
use tocsin_core::Timestamp;
use tocsin_store::heartbeat::{
    deadline_key, deadline_payload, read_state, HeartbeatWrites, HEARTBEAT_DEADLINE, STATE_COLUMNS,
};
use tocsin_store::StoreError;

use crate::rows::{db, micros, Stored};

/// The stored states of `monitors` (sorted), locked.
pub(crate) async fn lock_states(
    conn: &mut PgConnection,
    monitors: &[String],
) -> Result<HashMap<String, HeartbeatState>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {STATE_COLUMNS} FROM heartbeat_states WHERE monitor_id = ANY($1)
         ORDER BY monitor_id FOR UPDATE"
    ))
    .bind(monitors)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut states = HashMap::with_capacity(rows.len());
    for row in rows {
        let stored = read_state(&Stored(&row))?;
        states.insert(stored.monitor, stored.state);
    }
    Ok(states)
}

/// Writes the pings, the states and the deadlines of `writes`.
pub(crate) async fn write(
    conn: &mut PgConnection,
    writes: &HeartbeatWrites,
    now: Timestamp,
) -> Result<(), StoreError> {
    for (monitor, ping) in &writes.pings {
        sqlx::query(
            "INSERT INTO heartbeat_pings (monitor_id, kind, at, rid, exit_code, duration_ms,
             body, remote, method) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(monitor)
        .bind(ping.kind.as_str())
        .bind(micros(ping.at))
        .bind(ping.rid.as_deref())
        .bind(ping.exit_code.map(i64::from))
        .bind(
            ping.duration
                .map(|duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)),
        )
        .bind(&ping.body)
        .bind(ping.remote.as_deref())
        .bind(&ping.method)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    for write in &writes.states {
        let state = &write.after;
        let last = state.last_ping.as_ref();
        let sql = if write.before.is_none() {
            "INSERT INTO heartbeat_states (monitor_id, status, since, deadline, last_ping_kind,
             last_ping_at, last_ping_exit_code, last_ping_body, last_success_at, started_at,
             started_rid, starts_without_success, crash_looping, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        } else {
            "UPDATE heartbeat_states SET status = $2, since = $3, deadline = $4,
             last_ping_kind = $5, last_ping_at = $6, last_ping_exit_code = $7,
             last_ping_body = $8, last_success_at = $9, started_at = $10, started_rid = $11,
             starts_without_success = $12, crash_looping = $13, created_at = $14,
             updated_at = $15 WHERE monitor_id = $1"
        };
        sqlx::query(sql)
            .bind(&write.monitor)
            .bind(state.status.as_str())
            .bind(micros(state.since))
            .bind(state.deadline.map(micros))
            .bind(last.map(|ping| ping.kind.as_str()))
            .bind(last.map(|ping| micros(ping.at)))
            .bind(last.and_then(|ping| ping.exit_code).map(i64::from))
            .bind(last.map(|ping| ping.body.as_str()))
            .bind(state.last_success_at.map(micros))
            .bind(state.started_at.map(micros))
            .bind(state.started_rid.as_deref())
            .bind(i64::from(state.starts_without_success))
            .bind(i64::from(state.crash_looping))
            .bind(micros(state.created_at))
            .bind(micros(now))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        // A monitor without a deadline (down) keeps its item: when it comes due it finds the
        // monitor down and goes. Cancelling it here could take it from a runner in the middle
        // of running it.
        let (true, Some(deadline)) = (write.write_deadline, state.deadline) else {
            continue;
        };
        let key = deadline_key(&write.monitor)?;
        sqlx::query(
            "INSERT INTO due_work (kind, key, payload, due_at, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (kind, key) DO UPDATE SET due_at = excluded.due_at,
             payload = excluded.payload, parked_at = NULL, attempts = 0,
             revision = due_work.revision + 1
             WHERE due_work.due_at <> excluded.due_at OR due_work.payload <> excluded.payload
             OR due_work.parked_at IS NOT NULL",
        )
        .bind(HEARTBEAT_DEADLINE.as_str())
        .bind(key.as_str())
        .bind(deadline_payload(&write.monitor))
        .bind(micros(deadline))
        .bind(micros(now))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    Ok(())
}
