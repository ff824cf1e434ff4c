//! Heartbeat monitors in the store: their pings and state.
//!
//! Pings, deadlines and config watches are written by the ingest transaction
//! ([`Inbound::Heartbeat`](crate::Inbound::Heartbeat)): each backend loads the state of the
//! batch's monitors (locked on PostgreSQL), lets [`plan_heartbeats`] decide (which calls
//! `tocsin_core::heartbeat::plan_heartbeat` for each signal in order), and writes the pings,
//! the states, the deadlines (due work of kind [`HEARTBEAT_DEADLINE`], key = monitor id) and
//! the alert events it produced, which the fold of the same transaction takes in. A ping is
//! therefore durable, its deadline moved and its alert resolved in one commit.
//!
//! Reads ([`HeartbeatStore`]) share their SQL across backends.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use tocsin_core::heartbeat::{
    plan_heartbeat, HeartbeatSignal, HeartbeatState, HeartbeatStatus, LastPing, PingKind,
    PingRecord,
};
use tocsin_core::{Event, Timestamp};

use crate::decode::{self, StoredRow};
use crate::due::{DueKey, DueKind};
use crate::sql::{Arg, Connection};
use crate::{Inbound, Page, PageRequest, StoreError};

/// The due work that makes a heartbeat monitor late when no success came in time.
pub const HEARTBEAT_DEADLINE: DueKind = DueKind::from_static("heartbeat.deadline");

/// A stored ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingRow {
    pub id: i64,
    pub monitor: String,
    pub kind: PingKind,
    pub at: Timestamp,
    pub rid: Option<String>,
    pub exit_code: Option<u8>,
    pub duration: Option<Duration>,
    pub body: String,
    pub remote: Option<String>,
    pub method: String,
}

/// A heartbeat monitor's state as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatStateRow {
    pub monitor: String,
    pub state: HeartbeatState,
    pub updated_at: Timestamp,
}

/// Heartbeat reads. (Writes go through ingest.)
#[async_trait]
pub trait HeartbeatStore: Send + Sync {
    /// The stored states of these monitors (those that have one), at most
    /// [`PageRequest::MAX_LIMIT`] monitors per call.
    async fn heartbeat_states(
        &self,
        monitors: &[String],
    ) -> Result<Vec<HeartbeatStateRow>, StoreError>;

    /// A monitor's pings, newest first.
    async fn pings(&self, monitor: &str, page: PageRequest) -> Result<Page<PingRow>, StoreError>;

    /// Deletes a monitor's pings older than its newest `keep`, at most `limit` of them per
    /// call (the oldest first); returns how many it deleted. A monitor with `keep` pings or
    /// fewer loses none.
    async fn prune_pings(&self, monitor: &str, keep: u32, limit: u32) -> Result<u64, StoreError>;
}

/// The columns of `heartbeat_states` that [`read_state`] reads.
pub const STATE_COLUMNS: &str = "monitor_id, status, since, deadline, last_ping_kind, \
    last_ping_at, last_ping_exit_code, last_ping_body, last_success_at, started_at, started_rid, \
    starts_without_success, crash_looping, created_at, updated_at";

/// The columns of `heartbeat_pings` that [`read_ping`] reads.
pub const PING_COLUMNS: &str =
    "id, monitor_id, kind, at, rid, exit_code, duration_ms, body, remote, method";

/// Reads a row of [`STATE_COLUMNS`].
pub fn read_state(row: &impl StoredRow) -> Result<HeartbeatStateRow, StoreError> {
    let status = row.text("status")?;
    let status = HeartbeatStatus::parse(&status)
        .map_err(|_| StoreError::Corrupt(format!("heartbeat status {status:?}")))?;
    let last_ping = match row.optional_text("last_ping_kind")? {
        None => None,
        Some(kind) => Some(LastPing {
            kind: ping_kind(&kind)?,
            at: decode::timestamp("last_ping_at", row.integer("last_ping_at")?)?,
            exit_code: exit_code(row.optional_integer("last_ping_exit_code")?)?,
            body: row.optional_text("last_ping_body")?.unwrap_or_default(),
        }),
    };
    let starts = row.integer("starts_without_success")?;
    Ok(HeartbeatStateRow {
        monitor: row.text("monitor_id")?,
        state: HeartbeatState {
            status,
            since: decode::timestamp("since", row.integer("since")?)?,
            deadline: decode::optional_timestamp("deadline", row.optional_integer("deadline")?)?,
            last_ping,
            last_success_at: decode::optional_timestamp(
                "last_success_at",
                row.optional_integer("last_success_at")?,
            )?,
            started_at: decode::optional_timestamp(
                "started_at",
                row.optional_integer("started_at")?,
            )?,
            started_rid: row.optional_text("started_rid")?,
            starts_without_success: u32::try_from(starts).map_err(|_| {
                StoreError::Corrupt(format!("starts_without_success holds {starts}"))
            })?,
            crash_looping: row.integer("crash_looping")? != 0,
            created_at: decode::timestamp("created_at", row.integer("created_at")?)?,
        },
        updated_at: decode::timestamp("updated_at", row.integer("updated_at")?)?,
    })
}

/// Reads a row of [`PING_COLUMNS`].
pub fn read_ping(row: &impl StoredRow) -> Result<PingRow, StoreError> {
    let duration = row.optional_integer("duration_ms")?;
    Ok(PingRow {
        id: row.integer("id")?,
        monitor: row.text("monitor_id")?,
        kind: ping_kind(&row.text("kind")?)?,
        at: decode::timestamp("at", row.integer("at")?)?,
        rid: row.optional_text("rid")?,
        exit_code: exit_code(row.optional_integer("exit_code")?)?,
        duration: duration.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        body: row.text("body")?,
        remote: row.optional_text("remote")?,
        method: row.text("method")?,
    })
}

fn ping_kind(value: &str) -> Result<PingKind, StoreError> {
    PingKind::parse(value).map_err(|_| StoreError::Corrupt(format!("ping kind {value:?}")))
}

fn exit_code(value: Option<i64>) -> Result<Option<u8>, StoreError> {
    value
        .map(|code| {
            u8::try_from(code).map_err(|_| StoreError::Corrupt(format!("exit code {code}")))
        })
        .transpose()
}

/// A state to write: inserted when `before` is none, else updated.
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    pub monitor: String,
    pub before: Option<HeartbeatState>,
    pub after: HeartbeatState,
    /// The monitor's due-work deadline must be scheduled at `after.deadline` (when there is
    /// one); see [`plan_heartbeats`] for when. A monitor without a deadline keeps its item,
    /// which finds it down when it comes due.
    pub write_deadline: bool,
}

/// What the heartbeat signals of a batch write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeartbeatWrites {
    /// One per monitor of the batch, in the order first seen.
    pub states: Vec<StateWrite>,
    /// (monitor, ping), in batch order.
    pub pings: Vec<(String, PingRecord)>,
    /// (index of the signal in the batch, event): alert events for the fold.
    pub events: Vec<(usize, Event)>,
}

/// The monitors the batch's heartbeat signals name, sorted and without repeats (the order to
/// lock their rows in).
pub fn batch_monitors(batch: &[Inbound]) -> Vec<String> {
    let mut monitors: Vec<String> = batch
        .iter()
        .filter_map(|inbound| match inbound {
            Inbound::Heartbeat(input) => Some(input.monitor.clone()),
            _ => None,
        })
        .collect();
    monitors.sort();
    monitors.dedup();
    monitors
}

/// Applies the batch's heartbeat signals, in order, to the states `loaded` (by monitor id;
/// a monitor absent from it has no state yet).
///
/// A monitor's due-work deadline is kept at or before its state's deadline, and is rewritten
/// only when that no longer holds or it may be missing: when the monitor was watched, when its
/// deadline came back (it was down), when it moved earlier (a start), and when a deadline
/// came due early (a success had moved the state's deadline on since). A success that only
/// moves the deadline later leaves the item where it is: it comes due early, finds the monitor
/// on time and moves itself to the state's deadline then. So a job pinging every few seconds
/// costs one item write per deadline, not one per ping.
pub fn plan_heartbeats(
    batch: &[Inbound],
    loaded: &HashMap<String, HeartbeatState>,
) -> HeartbeatWrites {
    struct Slot<'a> {
        monitor: &'a str,
        before: Option<HeartbeatState>,
        current: Option<HeartbeatState>,
        watched: bool,
        /// A deadline signal came before the deadline of the state it found.
        early: bool,
    }
    let mut slots: Vec<Slot<'_>> = Vec::new();
    let mut index_of: HashMap<&str, usize> = HashMap::new();
    let mut writes = HeartbeatWrites::default();
    for (index, inbound) in batch.iter().enumerate() {
        let Inbound::Heartbeat(input) = inbound else {
            continue;
        };
        let slot = *index_of.entry(input.monitor.as_str()).or_insert_with(|| {
            let before = loaded.get(&input.monitor).cloned();
            slots.push(Slot {
                monitor: &input.monitor,
                current: before.clone(),
                before,
                watched: false,
                early: false,
            });
            slots.len() - 1
        });
        let slot = &mut slots[slot];
        let plan = plan_heartbeat(slot.current.as_ref(), input);
        slot.early |= matches!(input.signal, HeartbeatSignal::Deadline)
            && plan
                .state
                .deadline
                .is_some_and(|deadline| deadline > input.now);
        slot.current = Some(plan.state);
        slot.watched |= matches!(input.signal, HeartbeatSignal::Watch);
        if let Some(ping) = plan.ping {
            writes.pings.push((input.monitor.clone(), ping));
        }
        writes
            .events
            .extend(plan.events.into_iter().map(|event| (index, event)));
    }
    writes.states = slots
        .into_iter()
        .filter_map(|slot| {
            let after = slot.current?;
            let deadline_before = slot.before.as_ref().and_then(|state| state.deadline);
            let moved = match (deadline_before, after.deadline) {
                // Later: the item, at or before the old deadline, still comes first.
                (Some(before), Some(after)) => after < before,
                (before, after) => after != before,
            };
            Some(StateWrite {
                monitor: slot.monitor.to_owned(),
                write_deadline: slot.watched || slot.early || moved,
                before: slot.before,
                after,
            })
        })
        .collect();
    writes
}

/// The due-work key of a monitor's deadline.
pub fn deadline_key(monitor: &str) -> Result<DueKey, StoreError> {
    DueKey::parse(monitor).map_err(|error| StoreError::Invalid(error.to_string()))
}

/// The payload of a monitor's deadline item.
pub fn deadline_payload(monitor: &str) -> String {
    serde_json::json!({ "monitor": monitor }).to_string()
}

/// The stored states of `monitors` (at most [`PageRequest::MAX_LIMIT`] of them are read).
pub async fn heartbeat_states<C: Connection>(
    conn: &mut C,
    monitors: &[String],
) -> Result<Vec<HeartbeatStateRow>, StoreError> {
    let monitors = &monitors[..monitors.len().min(PageRequest::MAX_LIMIT as usize)];
    if monitors.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = format!("SELECT {STATE_COLUMNS} FROM heartbeat_states WHERE monitor_id IN (");
    let mut args = Vec::with_capacity(monitors.len());
    for (index, monitor) in monitors.iter().enumerate() {
        if index > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${}", index + 1));
        args.push(Arg::Text(monitor));
    }
    sql.push_str(") ORDER BY monitor_id");
    conn.fetch_all(&sql, &args)
        .await?
        .iter()
        .map(read_state)
        .collect()
}

/// A monitor's pings, newest first.
pub async fn pings<C: Connection>(
    conn: &mut C,
    monitor: &str,
    page: PageRequest,
) -> Result<Page<PingRow>, StoreError> {
    let limit = i64::from(page.limit()) + 1;
    let rows = match page.after {
        Some(after) => {
            conn.fetch_all(
                &format!(
                    "SELECT {PING_COLUMNS} FROM heartbeat_pings WHERE monitor_id = $1 AND id < $2
                     ORDER BY id DESC LIMIT $3"
                ),
                &[Arg::Text(monitor), Arg::Integer(after), Arg::Integer(limit)],
            )
            .await?
        }
        None => {
            conn.fetch_all(
                &format!(
                    "SELECT {PING_COLUMNS} FROM heartbeat_pings WHERE monitor_id = $1
                     ORDER BY id DESC LIMIT $2"
                ),
                &[Arg::Text(monitor), Arg::Integer(limit)],
            )
            .await?
        }
    };
    let rows = rows.iter().map(read_ping).collect::<Result<Vec<_>, _>>()?;
    Ok(page.finish(rows, |ping| ping.id))
}

/// Deletes the pings of `monitor` older than its newest `keep` (at most `limit`, oldest first).
pub async fn prune_pings<C: Connection>(
    conn: &mut C,
    monitor: &str,
    keep: u32,
    limit: u32,
) -> Result<u64, StoreError> {
    // The newest ping that goes: the one after the `keep` newest. None: nothing to prune.
    let Some(row) = conn
        .fetch_optional(
            "SELECT id FROM heartbeat_pings WHERE monitor_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2",
            &[Arg::Text(monitor), Arg::Integer(i64::from(keep))],
        )
        .await?
    else {
        return Ok(0);
    };
    let newest_pruned = row.integer("id")?;
    conn.execute(
        "DELETE FROM heartbeat_pings WHERE id IN (SELECT id FROM heartbeat_pings
         WHERE monitor_id = $1 AND id <= $2 ORDER BY id LIMIT $3)",
        &[
            Arg::Text(monitor),
            Arg::Integer(newest_pruned),
            Arg::Integer(i64::from(limit.max(1))),
        ],
    )
    .await
}

/// Implements [`HeartbeatStore`] for a backend with the functions of this module; the backend
/// defines `read!(self, |conn| body)` and `write!(self, "what", |conn| body)` first (see
/// `impl_store_with_shared_sql!`).
#[macro_export]
macro_rules! impl_heartbeat_store {
    ($store:ty) => {
        #[$crate::async_trait]
        impl $crate::heartbeat::HeartbeatStore for $store {
            async fn heartbeat_states(
                &self,
                monitors: &[String],
            ) -> Result<Vec<$crate::heartbeat::HeartbeatStateRow>, $crate::StoreError> {
                read!(self, |conn| $crate::heartbeat::heartbeat_states(
                    conn, monitors
                ))
            }

            async fn pings(
                &self,
                monitor: &str,
                page: $crate::PageRequest,
            ) -> Result<$crate::Page<$crate::heartbeat::PingRow>, $crate::StoreError> {
                read!(self, |conn| $crate::heartbeat::pings(conn, monitor, page))
            }

            async fn prune_pings(
                &self,
                monitor: &str,
                keep: u32,
                limit: u32,
            ) -> Result<u64, $crate::StoreError> {
                write!(
                    self,
                    "pruning pings",
                    |conn| $crate::heartbeat::prune_pings(conn, monitor, keep, limit)
                )
            }
        }
    };
}
