//! Results kept after each check, rolled up per hour and per day, and aged out: the recurring
//! due-work item `monitor.results` (every 10 minutes, one replica at a time).

use std::sync::{Arc, Mutex};
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
/// Monitors rolled up per write transaction.
const ROLLUP_CHUNK: usize = 200;
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

/// The current day's rollups are computed again at most this often (each reads the day's
/// results so far); the current hour's at every pass.
pub const CURRENT_DAY_EVERY: Duration = Duration::from_secs(3_600);

/// Rolls up every monitor's current hour (and, at most every [`CURRENT_DAY_EVERY`], its current
/// day), and the previous hour and day once after they ended, then deletes raw results older
/// than [`RAW_RETENTION`] whose day is rolled up, and rollups older than [`ROLLUP_RETENTION`].
/// Idempotent: rolling up again rewrites the same numbers.
///
/// Which periods were rolled up after they ended is remembered by the process: after a start,
/// the first pass rolls up all four; with several replicas, one that has not run the item for a
/// while rolls up a finished period again (extra work, never a missed period).
pub struct ResultsMaintenance {
    store: Arc<dyn Store>,
    monitors: Arc<Monitors>,
    passes: Mutex<Passes>,
}

/// What this process's passes have done.
#[derive(Debug, Default, Clone, Copy)]
struct Passes {
    /// When a pass last completed.
    last: Option<Timestamp>,
    /// When a pass last rolled up the current day.
    day: Option<Timestamp>,
}

impl ResultsMaintenance {
    pub fn new(store: Arc<dyn Store>, monitors: Arc<Monitors>) -> ResultsMaintenance {
        ResultsMaintenance {
            store,
            monitors,
            passes: Mutex::new(Passes::default()),
        }
    }

    /// The periods (with a time inside each) a pass at `now` rolls up, after the passes
    /// recorded in `passes`.
    fn periods(passes: Passes, now: Timestamp) -> Vec<(RollupPeriod, Timestamp)> {
        let back = |period: RollupPeriod| {
            Timestamp::from_microsecond(period.start_of(now).as_microsecond() - 1).unwrap_or(now)
        };
        // A finished period is rolled up once by a pass that ran after it ended.
        let ended_since_last =
            |period: RollupPeriod| passes.last.is_none_or(|last| last < period.start_of(now));
        let mut periods = vec![(RollupPeriod::Hour, now)];
        if ended_since_last(RollupPeriod::Hour) {
            periods.push((RollupPeriod::Hour, back(RollupPeriod::Hour)));
        }
        let day_due = passes.day.is_none_or(|day| {
            day.checked_add(CURRENT_DAY_EVERY)
                .is_ok_and(|next| next <= now)
        });
        if day_due {
            periods.push((RollupPeriod::Day, now));
        }
        if ended_since_last(RollupPeriod::Day) {
            periods.push((RollupPeriod::Day, back(RollupPeriod::Day)));
        }
        periods
    }

    /// One pass, at `now`; returns the raw results and rollups deleted.
    pub async fn run_once(&self, now: Timestamp) -> Result<(usize, usize), DueError> {
        let passes = *self
            .passes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let periods = Self::periods(passes, now);
        let ids: Vec<String> = self
            .monitors
            .all()
            .iter()
            .map(|monitor| monitor.id.clone())
            .collect();
        // Many monitors per write transaction, so checks settle in between.
        for chunk in ids.chunks(ROLLUP_CHUNK) {
            for &(period, at) in &periods {
                self.store.roll_up_many(chunk, period, at).await?;
            }
        }
        {
            let mut passes = self
                .passes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            passes.last = Some(now);
            if periods.contains(&(RollupPeriod::Day, now)) {
                passes.day = Some(now);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn finished_periods_once_and_the_current_day_hourly() {
        let first = ResultsMaintenance::periods(Passes::default(), at("2026-12-02T15:42:00Z"));
        assert_eq!(
            first.len(),
            4,
            "a first pass rolls up everything: {first:?}"
        );
        let passes = Passes {
            last: Some(at("2026-12-02T15:42:00Z")),
            day: Some(at("2026-12-02T15:42:00Z")),
        };
        // Ten minutes later: only the current hour.
        assert_eq!(
            ResultsMaintenance::periods(passes, at("2026-12-02T15:52:00Z")),
            vec![(RollupPeriod::Hour, at("2026-12-02T15:52:00Z"))]
        );
        // The next hour: the previous hour once more, after it ended.
        let next_hour = ResultsMaintenance::periods(passes, at("2026-12-02T16:02:00Z"));
        assert_eq!(
            next_hour,
            vec![
                (RollupPeriod::Hour, at("2026-12-02T16:02:00Z")),
                (RollupPeriod::Hour, at("2026-12-02T15:59:59.999999Z")),
            ]
        );
        // An hour after the day was last rolled up: the current day again (and the hour
        // that ended meanwhile), not the day before.
        let hourly = ResultsMaintenance::periods(passes, at("2026-12-02T16:42:00Z"));
        assert!(hourly.contains(&(RollupPeriod::Day, at("2026-12-02T16:42:00Z"))));
        assert_eq!(hourly.len(), 3, "{hourly:?}");
        // After midnight: the day that ended and the hour that ended with it.
        let midnight = ResultsMaintenance::periods(
            Passes {
                last: Some(at("2026-12-02T23:55:00Z")),
                day: Some(at("2026-12-02T23:30:00Z")),
            },
            at("2026-12-03T00:05:00Z"),
        );
        assert!(midnight.contains(&(RollupPeriod::Day, at("2026-12-02T23:59:59.999999Z"))));
        assert!(midnight.contains(&(RollupPeriod::Hour, at("2026-12-02T23:59:59.999999Z"))));
        assert!(!midnight.contains(&(RollupPeriod::Day, at("2026-12-03T00:05:00Z"))));
    }
}
