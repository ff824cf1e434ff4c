//! Results kept after each check, rolled up per hour and per day, and aged out: the recurring
//! due-work item `monitor.results` (every 10 minutes, one replica at a time).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tocsin_core::Timestamp;
use tocsin_engine::due::{DueError, DueHandler, DueOutcome};
use tocsin_store::due::{ClaimedDueItem, DueKey, DueKind, NewDueItem};
use tocsin_store::monitor_results::{CheckResultRow, ResultStatus, RollupPeriod};
use tocsin_store::Store;

use crate::probe::{CheckResult, CheckStatus};
use crate::runner::Monitors;

/// The recurring item that rolls up and ages out results.
pub const MONITOR_RESULTS: DueKind = DueKind::from_static("monitor.results");
/// How often it runs.
pub const RESULTS_EVERY: Duration = Duration::from_secs(600);
/// Raw results are kept this long (once their day is rolled up).
pub const RAW_RETENTION: Duration = Duration::from_secs(14 * 86_400);
/// Rollups are kept this long.
pub const ROLLUP_RETENTION: Duration = Duration::from_secs(400 * 86_400);
/// Rows deleted per statement.
const DELETE_BATCH: usize = 5_000;

/// The stored form of a check's result.
pub fn result_row(monitor: &str, result: &CheckResult, at: Timestamp) -> CheckResultRow {
    CheckResultRow {
        monitor: monitor.to_owned(),
        at,
        status: match result.status {
            CheckStatus::Up => ResultStatus::Up,
            CheckStatus::Degraded => ResultStatus::Degraded,
            CheckStatus::Down => ResultStatus::Down,
        },
        latency_ms: i64::try_from(result.latency.as_millis()).unwrap_or(i64::MAX),
        http_status: result.http_status.map(i64::from),
        error: result.error.clone(),
    }
}

/// Rolls up the current and the previous hour and day of every monitor, then deletes raw
/// results older than [`RAW_RETENTION`] whose day is rolled up, and rollups older than
/// [`ROLLUP_RETENTION`]. Idempotent: rolling up again rewrites the same numbers.
pub struct ResultsMaintenance {
    store: Arc<dyn Store>,
    monitors: Arc<Monitors>,
}

impl ResultsMaintenance {
    pub fn new(store: Arc<dyn Store>, monitors: Arc<Monitors>) -> ResultsMaintenance {
        ResultsMaintenance { store, monitors }
    }

    /// One pass, at `now`; returns the raw results and rollups deleted.
    pub async fn run_once(&self, now: Timestamp) -> Result<(usize, usize), DueError> {
        let back = |period: RollupPeriod| {
            Timestamp::from_microsecond(period.start_of(now).as_microsecond() - 1).unwrap_or(now)
        };
        for monitor in self.monitors.all() {
            for (period, at) in [
                (RollupPeriod::Hour, back(RollupPeriod::Hour)),
                (RollupPeriod::Hour, now),
                (RollupPeriod::Day, back(RollupPeriod::Day)),
                (RollupPeriod::Day, now),
            ] {
                self.store.roll_up(&monitor.id, period, at).await?;
            }
        }
        let mut results = 0;
        let raw_cutoff = now.checked_sub(RAW_RETENTION).unwrap_or(now);
        loop {
            let deleted = self
                .store
                .delete_rolled_up_results(raw_cutoff, DELETE_BATCH)
                .await?;
            results += deleted;
            if deleted < DELETE_BATCH {
                break;
            }
        }
        let mut rollups = 0;
        let rollup_cutoff = now.checked_sub(ROLLUP_RETENTION).unwrap_or(now);
        loop {
            let deleted = self
                .store
                .delete_rollups(rollup_cutoff, DELETE_BATCH)
                .await?;
            rollups += deleted;
            if deleted < DELETE_BATCH {
                break;
            }
        }
        Ok((results, rollups))
    }
}

#[async_trait]
impl DueHandler for ResultsMaintenance {
    fn kind(&self) -> DueKind {
        MONITOR_RESULTS
    }

    async fn run(&self, _item: &ClaimedDueItem, now: Timestamp) -> Result<DueOutcome, DueError> {
        let (results, rollups) = self.run_once(now).await?;
        if results + rollups > 0 {
            tracing::debug!(results, rollups, "aged out monitor results");
        }
        Ok(DueOutcome::RunAgainAt(
            now.checked_add(RESULTS_EVERY).unwrap_or(Timestamp::MAX),
        ))
    }

    /// Never gives up: it retries at the longest backoff.
    fn max_attempts(&self) -> Option<i64> {
        None
    }

    fn recurring(&self, now: Timestamp) -> Option<NewDueItem> {
        let key = DueKey::parse("all").ok()?;
        NewDueItem::new(MONITOR_RESULTS, key, &serde_json::json!({}), now).ok()
    }
}
