//! Results of monitor checks and their hourly and daily rollups.
//!
//! A rollup is computed from the raw results of its period and written whole (replacing an
//! earlier one of the same period), so computing it again is harmless. Retention deletes raw
//! results only where the day's rollup exists, so a rollup that failed or found nothing never
//! leads to results being deleted.

use async_trait::async_trait;
use tocsin_core::Timestamp;

use crate::decode::{self, StoredRow};
use crate::sql::{check_text, Arg, Connection};
use crate::StoreError;

/// The longest error text stored with a result, in characters.
pub const MAX_RESULT_ERROR_CHARS: usize = 500;
/// The most results or rollups one read returns.
pub const MAX_RESULT_ROWS: usize = 10_000;

/// A check's outcome as stored: 0 up, 1 degraded, 2 down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultStatus {
    Up,
    Degraded,
    Down,
}

impl ResultStatus {
    fn code(self) -> i64 {
        match self {
            ResultStatus::Up => 0,
            ResultStatus::Degraded => 1,
            ResultStatus::Down => 2,
        }
    }

    fn from_code(code: i64) -> Result<ResultStatus, StoreError> {
        match code {
            0 => Ok(ResultStatus::Up),
            1 => Ok(ResultStatus::Degraded),
            2 => Ok(ResultStatus::Down),
            other => Err(StoreError::Corrupt(format!(
                "monitor result status {other} is not 0, 1 or 2"
            ))),
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResultRow {
    pub monitor: String,
    pub at: Timestamp,
    pub status: ResultStatus,
    pub latency_ms: i64,
    pub http_status: Option<i64>,
    pub error: Option<String>,
}

/// The length of a rollup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RollupPeriod {
    Hour,
    Day,
}

impl RollupPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            RollupPeriod::Hour => "hour",
            RollupPeriod::Day => "day",
        }
    }

    pub fn micros(self) -> i64 {
        match self {
            RollupPeriod::Hour => 3_600_000_000,
            RollupPeriod::Day => 86_400_000_000,
        }
    }

    /// The start (UTC) of the period that holds `at`.
    pub fn start_of(self, at: Timestamp) -> Timestamp {
        let micros = at.as_microsecond();
        let start = micros - micros.rem_euclid(self.micros());
        Timestamp::from_microsecond(start).unwrap_or(at)
    }
}

/// A monitor's results over one hour or day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollup {
    pub monitor: String,
    pub period: RollupPeriod,
    pub start: Timestamp,
    pub checks: i64,
    pub up: i64,
    pub degraded: i64,
    pub down: i64,
    pub p50_ms: i64,
    pub p95_ms: i64,
    pub p99_ms: i64,
}

impl Rollup {
    /// The rollup of `results` (all of one monitor and period); `None` when there are none.
    pub fn of(
        monitor: &str,
        period: RollupPeriod,
        start: Timestamp,
        results: &[CheckResultRow],
    ) -> Option<Rollup> {
        if results.is_empty() {
            return None;
        }
        let count = |status| results.iter().filter(|r| r.status == status).count() as i64;
        let mut latencies: Vec<i64> = results.iter().map(|r| r.latency_ms).collect();
        latencies.sort_unstable();
        // Nearest rank: the smallest latency at or above the given share of the checks.
        let rank = |percent: usize| {
            let index = (latencies.len() * percent).div_ceil(100).max(1) - 1;
            latencies[index.min(latencies.len() - 1)]
        };
        Some(Rollup {
            monitor: monitor.to_owned(),
            period,
            start,
            checks: results.len() as i64,
            up: count(ResultStatus::Up),
            degraded: count(ResultStatus::Degraded),
            down: count(ResultStatus::Down),
            p50_ms: rank(50),
            p95_ms: rank(95),
            p99_ms: rank(99),
        })
    }
}

/// Results of monitor checks.
#[async_trait]
pub trait MonitorResultStore: Send + Sync {
    /// Stores a result; a second result of the same monitor at the same time is ignored.
    async fn record_result(&self, result: &CheckResultRow) -> Result<(), StoreError>;

    /// A monitor's results at or after `from` and before `to`, oldest first, at most `limit`
    /// (and [`MAX_RESULT_ROWS`]).
    async fn results(
        &self,
        monitor: &str,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<CheckResultRow>, StoreError>;

    /// Computes and stores the rollup of `monitor` for the period starting at `start` from its
    /// raw results; returns it (`None`, writing nothing, when the period has no results).
    async fn roll_up(
        &self,
        monitor: &str,
        period: RollupPeriod,
        start: Timestamp,
    ) -> Result<Option<Rollup>, StoreError>;

    /// A monitor's rollups of one kind starting at or after `from`, oldest first.
    async fn rollups(
        &self,
        monitor: &str,
        period: RollupPeriod,
        from: Timestamp,
        limit: usize,
    ) -> Result<Vec<Rollup>, StoreError>;

    /// Deletes up to `limit` raw results older than `before` whose day has a stored rollup;
    /// returns how many went.
    async fn delete_rolled_up_results(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<usize, StoreError>;

    /// Deletes up to `limit` rollups that started before `before`; returns how many went.
    async fn delete_rollups(&self, before: Timestamp, limit: usize) -> Result<usize, StoreError>;
}

const RESULT_COLUMNS: &str = "monitor_id, at, status, latency_ms, http_status, error";
const ROLLUP_COLUMNS: &str =
    "monitor_id, period, start, checks, up, degraded, down, p50_ms, p95_ms, p99_ms";

fn limit_arg(limit: usize) -> i64 {
    i64::try_from(limit.clamp(1, MAX_RESULT_ROWS)).unwrap_or(1)
}

fn read_result(row: &impl StoredRow) -> Result<CheckResultRow, StoreError> {
    Ok(CheckResultRow {
        monitor: row.text("monitor_id")?,
        at: decode::timestamp("at", row.integer("at")?)?,
        status: ResultStatus::from_code(row.integer("status")?)?,
        latency_ms: row.integer("latency_ms")?,
        http_status: row.optional_integer("http_status")?,
        error: row.optional_text("error")?,
    })
}

fn read_rollup(row: &impl StoredRow) -> Result<Rollup, StoreError> {
    let period = match row.text("period")?.as_str() {
        "hour" => RollupPeriod::Hour,
        "day" => RollupPeriod::Day,
        other => {
            return Err(StoreError::Corrupt(format!(
                "rollup period {other:?} is not hour or day"
            )))
        }
    };
    Ok(Rollup {
        monitor: row.text("monitor_id")?,
        period,
        start: decode::timestamp("start", row.integer("start")?)?,
        checks: row.integer("checks")?,
        up: row.integer("up")?,
        degraded: row.integer("degraded")?,
        down: row.integer("down")?,
        p50_ms: row.integer("p50_ms")?,
        p95_ms: row.integer("p95_ms")?,
        p99_ms: row.integer("p99_ms")?,
    })
}

pub async fn record_result<C: Connection>(
    conn: &mut C,
    result: &CheckResultRow,
) -> Result<(), StoreError> {
    check_text("monitor", &result.monitor)?;
    let error: Option<String> = result.error.as_ref().map(|error| {
        error
            .chars()
            .take(MAX_RESULT_ERROR_CHARS)
            .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
            .collect()
    });
    let mut args = vec![
        Arg::Text(&result.monitor),
        Arg::Integer(result.at.as_microsecond()),
        Arg::Integer(result.status.code()),
        Arg::Integer(result.latency_ms),
        Arg::OptionalInteger(result.http_status),
    ];
    let sql = match &error {
        Some(error) => {
            args.push(Arg::Text(error));
            format!(
                "INSERT INTO monitor_results ({RESULT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (monitor_id, at) DO NOTHING"
            )
        }
        None => format!(
            "INSERT INTO monitor_results ({RESULT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL)
             ON CONFLICT (monitor_id, at) DO NOTHING"
        ),
    };
    conn.execute(&sql, &args).await?;
    Ok(())
}

pub async fn results<C: Connection>(
    conn: &mut C,
    monitor: &str,
    from: Timestamp,
    to: Timestamp,
    limit: usize,
) -> Result<Vec<CheckResultRow>, StoreError> {
    check_text("monitor", monitor)?;
    let rows = conn
        .fetch_all(
            &format!(
                "SELECT {RESULT_COLUMNS} FROM monitor_results
                 WHERE monitor_id = $1 AND at >= $2 AND at < $3 ORDER BY at LIMIT $4"
            ),
            &[
                Arg::Text(monitor),
                Arg::Integer(from.as_microsecond()),
                Arg::Integer(to.as_microsecond()),
                Arg::Integer(limit_arg(limit)),
            ],
        )
        .await?;
    rows.iter().map(read_result).collect()
}

pub async fn roll_up<C: Connection>(
    conn: &mut C,
    monitor: &str,
    period: RollupPeriod,
    start: Timestamp,
) -> Result<Option<Rollup>, StoreError> {
    check_text("monitor", monitor)?;
    let start = period.start_of(start);
    let end = Timestamp::from_microsecond(start.as_microsecond() + period.micros())
        .map_err(|error| StoreError::Invalid(error.to_string()))?;
    // A day at a 1 s interval is 86,400 results: read them all, not a page.
    let rows = conn
        .fetch_all(
            &format!(
                "SELECT {RESULT_COLUMNS} FROM monitor_results
                 WHERE monitor_id = $1 AND at >= $2 AND at < $3 ORDER BY at"
            ),
            &[
                Arg::Text(monitor),
                Arg::Integer(start.as_microsecond()),
                Arg::Integer(end.as_microsecond()),
            ],
        )
        .await?;
    let results = rows
        .iter()
        .map(read_result)
        .collect::<Result<Vec<_>, _>>()?;
    let Some(rollup) = Rollup::of(monitor, period, start, &results) else {
        return Ok(None);
    };
    conn.execute(
        &format!(
            "INSERT INTO monitor_rollups ({ROLLUP_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (monitor_id, period, start) DO UPDATE SET checks = excluded.checks,
             up = excluded.up, degraded = excluded.degraded, down = excluded.down,
             p50_ms = excluded.p50_ms, p95_ms = excluded.p95_ms, p99_ms = excluded.p99_ms"
        ),
        &[
            Arg::Text(monitor),
            Arg::Text(period.as_str()),
            Arg::Integer(start.as_microsecond()),
            Arg::Integer(rollup.checks),
            Arg::Integer(rollup.up),
            Arg::Integer(rollup.degraded),
            Arg::Integer(rollup.down),
            Arg::Integer(rollup.p50_ms),
            Arg::Integer(rollup.p95_ms),
            Arg::Integer(rollup.p99_ms),
        ],
    )
    .await?;
    Ok(Some(rollup))
}

pub async fn rollups<C: Connection>(
    conn: &mut C,
    monitor: &str,
    period: RollupPeriod,
    from: Timestamp,
    limit: usize,
) -> Result<Vec<Rollup>, StoreError> {
    check_text("monitor", monitor)?;
    let rows = conn
        .fetch_all(
            &format!(
                "SELECT {ROLLUP_COLUMNS} FROM monitor_rollups
                 WHERE monitor_id = $1 AND period = $2 AND start >= $3 ORDER BY start LIMIT $4"
            ),
            &[
                Arg::Text(monitor),
                Arg::Text(period.as_str()),
                Arg::Integer(from.as_microsecond()),
                Arg::Integer(limit_arg(limit)),
            ],
        )
        .await?;
    rows.iter().map(read_rollup).collect()
}

pub async fn delete_rolled_up_results<C: Connection>(
    conn: &mut C,
    before: Timestamp,
    limit: usize,
) -> Result<usize, StoreError> {
    let day = RollupPeriod::Day.micros();
    // Only results whose day (start = at - at % day; times are never negative) has a rollup.
    let deleted = conn
        .execute(
            "DELETE FROM monitor_results WHERE (monitor_id, at) IN (
                 SELECT r.monitor_id, r.at FROM monitor_results r
                 WHERE r.at < $1 AND EXISTS (
                     SELECT 1 FROM monitor_rollups u WHERE u.monitor_id = r.monitor_id
                     AND u.period = 'day' AND u.start = r.at - (r.at % $2))
                 ORDER BY r.at LIMIT $3)",
            &[
                Arg::Integer(before.as_microsecond()),
                Arg::Integer(day),
                Arg::Integer(limit_arg(limit)),
            ],
        )
        .await?;
    Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
}

pub async fn delete_rollups<C: Connection>(
    conn: &mut C,
    before: Timestamp,
    limit: usize,
) -> Result<usize, StoreError> {
    let deleted = conn
        .execute(
            "DELETE FROM monitor_rollups WHERE (monitor_id, period, start) IN (
                 SELECT monitor_id, period, start FROM monitor_rollups WHERE start < $1
                 ORDER BY start LIMIT $2)",
            &[
                Arg::Integer(before.as_microsecond()),
                Arg::Integer(limit_arg(limit)),
            ],
        )
        .await?;
    Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(latency_ms: i64, status: ResultStatus) -> CheckResultRow {
        CheckResultRow {
            monitor: "m".to_owned(),
            at: Timestamp::UNIX_EPOCH,
            status,
            latency_ms,
            http_status: None,
            error: None,
        }
    }

    #[test]
    fn rollups_count_and_rank() {
        let mut results: Vec<CheckResultRow> = (1..=100)
            .map(|latency| result(latency, ResultStatus::Up))
            .collect();
        results[0].status = ResultStatus::Down;
        results[1].status = ResultStatus::Degraded;
        let rollup = Rollup::of("m", RollupPeriod::Hour, Timestamp::UNIX_EPOCH, &results).unwrap();
        assert_eq!(
            (rollup.checks, rollup.up, rollup.degraded, rollup.down),
            (100, 98, 1, 1)
        );
        assert_eq!((rollup.p50_ms, rollup.p95_ms, rollup.p99_ms), (50, 95, 99));
        let one = Rollup::of("m", RollupPeriod::Day, Timestamp::UNIX_EPOCH, &results[..1]).unwrap();
        assert_eq!((one.p50_ms, one.p99_ms), (1, 1));
        assert_eq!(
            Rollup::of("m", RollupPeriod::Day, Timestamp::UNIX_EPOCH, &[]),
            None
        );
    }

    #[test]
    fn periods_start_on_utc_boundaries() {
        let at: Timestamp = "2026-12-02T15:42:10Z".parse().unwrap();
        assert_eq!(
            RollupPeriod::Hour.start_of(at).to_string(),
            "2026-12-02T15:00:00Z"
        );
        assert_eq!(
            RollupPeriod::Day.start_of(at).to_string(),
            "2026-12-02T00:00:00Z"
        );
    }
}
