//! Paused monitors: a monitor paused through the API or the CLI is not checked until it is
//! resumed. The pause is a row of its own (not part of the monitor's state), so it outlives
//! restarts and reloads, and every replica sees it.

use async_trait::async_trait;
use tocsin_core::Timestamp;

use crate::decode::{self, StoredRow};
use crate::sql::{check_text, Arg, Connection};
use crate::StoreError;

/// The most pauses one read returns.
pub const MAX_PAUSE_ROWS: usize = 1_000;

/// A paused monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorPause {
    pub monitor: String,
    pub paused_at: Timestamp,
    /// Who paused it, as the timeline names actors (e.g. `token:ops`).
    pub paused_by: String,
}

/// Paused monitors.
#[async_trait]
pub trait MonitorPauseStore: Send + Sync {
    /// Pauses a monitor; returns the pause in force (the earlier one when it was paused
    /// already: pausing twice changes nothing).
    async fn pause_monitor(
        &self,
        monitor: &str,
        by: &str,
        now: Timestamp,
    ) -> Result<MonitorPause, StoreError>;

    /// Resumes a monitor; returns whether it was paused.
    async fn resume_monitor(&self, monitor: &str) -> Result<bool, StoreError>;

    /// The pause of one monitor, when it is paused.
    async fn monitor_pause(&self, monitor: &str) -> Result<Option<MonitorPause>, StoreError>;

    /// Paused monitors in id order after `after`, at most `limit` (and [`MAX_PAUSE_ROWS`]).
    async fn monitor_pauses(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MonitorPause>, StoreError>;
}

const COLUMNS: &str = "monitor_id, paused_at, paused_by";

fn read_pause(row: &impl StoredRow) -> Result<MonitorPause, StoreError> {
    Ok(MonitorPause {
        monitor: row.text("monitor_id")?,
        paused_at: decode::timestamp("paused_at", row.integer("paused_at")?)?,
        paused_by: row.text("paused_by")?,
    })
}

pub async fn pause_monitor<C: Connection>(
    conn: &mut C,
    monitor: &str,
    by: &str,
    now: Timestamp,
) -> Result<MonitorPause, StoreError> {
    check_text("monitor", monitor)?;
    check_text("actor", by)?;
    conn.execute(
        &format!(
            "INSERT INTO monitor_pauses ({COLUMNS}) VALUES ($1, $2, $3)
             ON CONFLICT (monitor_id) DO NOTHING"
        ),
        &[
            Arg::Text(monitor),
            Arg::Integer(now.as_microsecond()),
            Arg::Text(by),
        ],
    )
    .await?;
    monitor_pause(conn, monitor).await?.ok_or_else(|| {
        StoreError::Corrupt(format!(
            "the pause of monitor {monitor} just written is gone"
        ))
    })
}

pub async fn resume_monitor<C: Connection>(
    conn: &mut C,
    monitor: &str,
) -> Result<bool, StoreError> {
    check_text("monitor", monitor)?;
    let deleted = conn
        .execute(
            "DELETE FROM monitor_pauses WHERE monitor_id = $1",
            &[Arg::Text(monitor)],
        )
        .await?;
    Ok(deleted > 0)
}

pub async fn monitor_pause<C: Connection>(
    conn: &mut C,
    monitor: &str,
) -> Result<Option<MonitorPause>, StoreError> {
    check_text("monitor", monitor)?;
    let row = conn
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM monitor_pauses WHERE monitor_id = $1"),
            &[Arg::Text(monitor)],
        )
        .await?;
    row.as_ref().map(read_pause).transpose()
}

pub async fn monitor_pauses<C: Connection>(
    conn: &mut C,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<MonitorPause>, StoreError> {
    let limit = i64::try_from(limit.clamp(1, MAX_PAUSE_ROWS)).unwrap_or(1);
    let rows = match after {
        Some(after) => {
            check_text("cursor", after)?;
            conn.fetch_all(
                &format!(
                    "SELECT {COLUMNS} FROM monitor_pauses WHERE monitor_id > $1
                     ORDER BY monitor_id LIMIT $2"
                ),
                &[Arg::Text(after), Arg::Integer(limit)],
            )
            .await?
        }
        None => {
            conn.fetch_all(
                &format!("SELECT {COLUMNS} FROM monitor_pauses ORDER BY monitor_id LIMIT $1"),
                &[Arg::Integer(limit)],
            )
            .await?
        }
    };
    rows.iter().map(read_pause).collect()
}

/// Implements [`MonitorPauseStore`] for a backend with the functions of this module; the
/// backend defines `read!(self, |conn| body)` and `write!(self, "what", |conn| body)` first (see
/// `impl_store_with_shared_sql!`).
#[macro_export]
macro_rules! impl_monitor_pause_store {
    ($store:ty) => {
        #[$crate::async_trait]
        impl $crate::monitor_pauses::MonitorPauseStore for $store {
            async fn pause_monitor(
                &self,
                monitor: &str,
                by: &str,
                now: tocsin_core::Timestamp,
            ) -> Result<$crate::monitor_pauses::MonitorPause, $crate::StoreError> {
                write!(self, "pausing a monitor", |conn| {
                    $crate::monitor_pauses::pause_monitor(conn, monitor, by, now)
                })
            }

            async fn resume_monitor(&self, monitor: &str) -> Result<bool, $crate::StoreError> {
                write!(self, "resuming a monitor", |conn| {
                    $crate::monitor_pauses::resume_monitor(conn, monitor)
                })
            }

            async fn monitor_pause(
                &self,
                monitor: &str,
            ) -> Result<Option<$crate::monitor_pauses::MonitorPause>, $crate::StoreError> {
                read!(self, |conn| $crate::monitor_pauses::monitor_pause(
                    conn, monitor
                ))
            }

            async fn monitor_pauses(
                &self,
                after: Option<&str>,
                limit: usize,
            ) -> Result<Vec<$crate::monitor_pauses::MonitorPause>, $crate::StoreError> {
                read!(self, |conn| $crate::monitor_pauses::monitor_pauses(
                    conn, after, limit
                ))
            }
        }
    };
}
