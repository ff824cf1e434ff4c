//! What the API and the CLI show of a monitor: its settings and its state, read from its due
//! item.

use std::sync::Arc;

use tocsin_config::Monitor;
use tocsin_core::Timestamp;
use tocsin_store::due::DueKey;
use tocsin_store::monitor_pauses::MonitorPause;
use tocsin_store::monitor_results::{Rollup, RollupPeriod};
use tocsin_store::{Store, StoreError};

use crate::runner::{Monitors, MONITOR_CHECK};
use crate::state::MonitorState;
use crate::stored;

/// The most monitors one [`Monitors::views`] call returns.
pub const MAX_VIEWS: usize = 500;

/// A monitor and where it stands.
#[derive(Debug, Clone)]
pub struct MonitorView {
    pub monitor: Arc<Monitor>,
    /// `Pending` with no results before its first check.
    pub state: MonitorState,
    /// When its next check is due, once it is scheduled.
    pub next_check_at: Option<Timestamp>,
    /// Set while the monitor is paused (not checked).
    pub paused: Option<MonitorPause>,
    /// Over the last 24 hours (hourly rollups) and 30 days (daily rollups).
    pub last_day: Option<Uptime>,
    pub last_30_days: Option<Uptime>,
}

/// Availability over a span, from rollups: degraded checks count as up (the service answered
/// correctly, if slowly); down checks count against it. Latency percentiles are the highest of
/// the span's periods (a conservative bound, not a recomputation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uptime {
    pub checks: i64,
    pub up: i64,
    pub degraded: i64,
    pub down: i64,
    /// `(up + degraded) / checks`, in percent.
    pub percent: f64,
    pub p50_ms: i64,
    pub p95_ms: i64,
    pub p99_ms: i64,
}

impl Uptime {
    fn of(rollups: &[Rollup]) -> Option<Uptime> {
        let checks: i64 = rollups.iter().map(|r| r.checks).sum();
        if checks == 0 {
            return None;
        }
        let up: i64 = rollups.iter().map(|r| r.up).sum();
        let degraded: i64 = rollups.iter().map(|r| r.degraded).sum();
        let down: i64 = rollups.iter().map(|r| r.down).sum();
        Some(Uptime {
            checks,
            up,
            degraded,
            down,
            percent: (up + degraded) as f64 * 100.0 / checks as f64,
            p50_ms: rollups.iter().map(|r| r.p50_ms).max().unwrap_or(0),
            p95_ms: rollups.iter().map(|r| r.p95_ms).max().unwrap_or(0),
            p99_ms: rollups.iter().map(|r| r.p99_ms).max().unwrap_or(0),
        })
    }
}

impl Monitors {
    /// The monitor's view, or `None` when no probed monitor has that id.
    pub async fn view(
        &self,
        store: &dyn Store,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<MonitorView>, StoreError> {
        let Some(monitor) = self.get(id) else {
            return Ok(None);
        };
        view_of(store, monitor, now).await.map(Some)
    }

    /// Monitors in id order after `after`, at most `limit` (and [`MAX_VIEWS`]); the second value
    /// is the id to continue after, when there are more.
    pub async fn views(
        &self,
        store: &dyn Store,
        after: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<(Vec<MonitorView>, Option<String>), StoreError> {
        let limit = limit.clamp(1, MAX_VIEWS);
        let all = self.all();
        let mut selected: Vec<Arc<Monitor>> = all
            .into_iter()
            .filter(|monitor| after.is_none_or(|after| monitor.id.as_str() > after))
            .take(limit + 1)
            .collect();
        let next = if selected.len() > limit {
            selected.truncate(limit);
            selected.last().map(|monitor| monitor.id.clone())
        } else {
            None
        };
        let mut views = Vec::with_capacity(selected.len());
        for monitor in selected {
            views.push(view_of(store, monitor, now).await?);
        }
        Ok((views, next))
    }
}

async fn view_of(
    store: &dyn Store,
    monitor: Arc<Monitor>,
    now: Timestamp,
) -> Result<MonitorView, StoreError> {
    let key = DueKey::parse(&monitor.id).map_err(|error| StoreError::Invalid(error.to_string()))?;
    let row = store.due_item(&MONITOR_CHECK, &key).await?;
    let hours_ago =
        |hours: i64| Timestamp::from_second(now.as_second() - hours * 3_600).unwrap_or(now);
    let hours = store
        .rollups(
            &monitor.id,
            RollupPeriod::Hour,
            RollupPeriod::Hour.start_of(hours_ago(23)),
            24,
        )
        .await?;
    let days = store
        .rollups(
            &monitor.id,
            RollupPeriod::Day,
            RollupPeriod::Day.start_of(hours_ago(29 * 24)),
            30,
        )
        .await?;
    let paused = store.monitor_pause(&monitor.id).await?;
    Ok(MonitorView {
        paused,
        last_day: Uptime::of(&hours),
        last_30_days: Uptime::of(&days),
        state: row
            .as_ref()
            .map(|row| stored::decode(&row.payload))
            .unwrap_or_default(),
        next_check_at: row.map(|row| row.due_at),
        monitor,
    })
}
