//! Results of monitor checks and their hourly and daily rollups.
//!
//! A rollup is computed from the raw results of its period and written whole (replacing an
//! earlier one of the same period), so computing it again is harmless. Retention deletes raw
//! results only where the day's rollup exists, so a rollup that failed or found nothing never
//! leads to results being deleted.

use std::collections::HashMap;

use async_trait::async_trait;
use tocsin_core::Timestamp;

use crate::decode::StoredRow;
use crate::due::{ClaimedDueItem, NewDueItem, Settled};
use crate::sql::{check_text, Arg, Connection};
use crate::StoreError;

/// The longest error text stored with a result, in characters.
pub const MAX_RESULT_ERROR_CHARS: usize = 500;
/// The most results or rollups one read returns.
pub const MAX_RESULT_ROWS: usize = 10_000;
/// The most checks one [`MonitorResultStore::settle_checks`] settles.
pub const MAX_SETTLE_BATCH: usize = 512;
/// The most monitors one [`MonitorResultStore::roll_up_many`] rolls up.
pub const MAX_ROLLUP_BATCH: usize = 500;
/// Rows per multi-row statement.
const ROWS_PER_STATEMENT: usize = 200;

/// A check to settle: the claimed item, its next schedule, and the result to store.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSettlement {
    pub item: ClaimedDueItem,
    pub next: NewDueItem,
    pub result: CheckResultRow,
}

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
        let outcomes: Vec<(ResultStatus, i64)> = results
            .iter()
            .map(|result| (result.status, result.latency_ms))
            .collect();
        Rollup::of_outcomes(monitor, period, start, &outcomes)
    }

    /// The rollup of (status, latency in ms) pairs; `None` when there are none.
    pub fn of_outcomes(
        monitor: &str,
        period: RollupPeriod,
        start: Timestamp,
        outcomes: &[(ResultStatus, i64)],
    ) -> Option<Rollup> {
        if outcomes.is_empty() {
            return None;
        }
        let count = |status| outcomes.iter().filter(|(s, _)| *s == status).count() as i64;
        let mut latencies: Vec<i64> = outcomes.iter().map(|(_, latency)| *latency).collect();
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
            checks: outcomes.len() as i64,
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
    async fn record_result(&self, result: &CheckResultRow) -> Result<(), StoreError> {
        self.record_results(std::slice::from_ref(result)).await
    }

    /// Stores results in one transaction (at most [`MAX_RESULT_ROWS`]); a result of a monitor
    /// at a time already stored is ignored.
    async fn record_results(&self, results: &[CheckResultRow]) -> Result<(), StoreError>;

    /// Settles monitors' checks in one transaction (at most [`MAX_SETTLE_BATCH`]): for each
    /// whose claimer still holds the claim of its item (no other claimer took it over), stores
    /// its result and schedules the item's next run as `next` (its due time and payload, which
    /// replace whatever a schedule made while it ran) with its lease freed and its attempts
    /// reset; the others change nothing and are [`Settled::LeaseLost`]. One answer per check,
    /// in order.
    async fn settle_checks(&self, checks: &[CheckSettlement]) -> Result<Vec<Settled>, StoreError>;

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

    /// [`MonitorResultStore::roll_up`] for several monitors (at most [`MAX_ROLLUP_BATCH`]):
    /// their results are read outside the write transaction, and the rollups are written in
    /// one. Returns how many rollups were written.
    async fn roll_up_many(
        &self,
        monitors: &[String],
        period: RollupPeriod,
        start: Timestamp,
    ) -> Result<usize, StoreError>;

    /// A monitor's rollups of one kind starting at or after `from`, oldest first.
    async fn rollups(
        &self,
        monitor: &str,
        period: RollupPeriod,
        from: Timestamp,
        limit: usize,
    ) -> Result<Vec<Rollup>, StoreError>;

    /// Deletes up to `limit` raw results older than `before` whose day has a stored rollup
    /// (and the error texts no result refers to any more); returns how many results went.
    async fn delete_rolled_up_results(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<usize, StoreError>;

    /// Deletes up to `limit` rollups that started before `before`; returns how many went.
    async fn delete_rollups(&self, before: Timestamp, limit: usize) -> Result<usize, StoreError>;
}

// Stored form (migration 0011): a monitor's id once in `monitor_keys`, results in
// `monitor_checks` by (key, time in ms), each distinct error text of a monitor once in
// `monitor_errors`, rollups in `monitor_check_rollups` (period 0 hour, 1 day; start in ms).

const RESULT_COLUMNS: &str = "c.at, c.status, c.latency_ms, c.http_status, e.text AS error";
const ROLLUP_COLUMNS: &str = "u.period, u.start, u.checks, u.up, u.degraded, u.down, u.p50_ms, \
    u.p95_ms, u.p99_ms";
const DAY_MS: i64 = 86_400_000;

fn limit_arg(limit: usize) -> i64 {
    i64::try_from(limit.clamp(1, MAX_RESULT_ROWS)).unwrap_or(1)
}

/// Microseconds to the stored milliseconds, rounded up: a stored time `t` (ms) is at or after
/// `at` exactly when `t >= ms_ceil(at)`.
fn ms_ceil(at: Timestamp) -> i64 {
    let micros = at.as_microsecond();
    micros.div_euclid(1000) + i64::from(micros.rem_euclid(1000) != 0)
}

fn stored_ms(column: &str, ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms)
        .map_err(|error| StoreError::Corrupt(format!("{column} {ms} is not a time: {error}")))
}

fn period_code(period: RollupPeriod) -> i64 {
    match period {
        RollupPeriod::Hour => 0,
        RollupPeriod::Day => 1,
    }
}

fn read_result(monitor: &str, row: &impl StoredRow) -> Result<CheckResultRow, StoreError> {
    Ok(CheckResultRow {
        monitor: monitor.to_owned(),
        at: stored_ms("at", row.integer("at")?)?,
        status: ResultStatus::from_code(row.integer("status")?)?,
        latency_ms: row.integer("latency_ms")?,
        http_status: row.optional_integer("http_status")?,
        error: row.optional_text("error")?,
    })
}

fn read_rollup(monitor: &str, row: &impl StoredRow) -> Result<Rollup, StoreError> {
    let period = match row.integer("period")? {
        0 => RollupPeriod::Hour,
        1 => RollupPeriod::Day,
        other => {
            return Err(StoreError::Corrupt(format!(
                "rollup period {other} is not 0 (hour) or 1 (day)"
            )))
        }
    };
    Ok(Rollup {
        monitor: monitor.to_owned(),
        period,
        start: stored_ms("start", row.integer("start")?)?,
        checks: row.integer("checks")?,
        up: row.integer("up")?,
        degraded: row.integer("degraded")?,
        down: row.integer("down")?,
        p50_ms: row.integer("p50_ms")?,
        p95_ms: row.integer("p95_ms")?,
        p99_ms: row.integer("p99_ms")?,
    })
}

/// The stored number of a monitor's id, if it has one.
async fn monitor_key<C: Connection>(
    conn: &mut C,
    monitor: &str,
) -> Result<Option<i64>, StoreError> {
    let row = conn
        .fetch_optional(
            "SELECT id FROM monitor_keys WHERE name = $1",
            &[Arg::Text(monitor)],
        )
        .await?;
    row.map(|row| row.integer("id")).transpose()
}

/// The stored number of a monitor's id, given one if it has none yet.
async fn monitor_key_or_new<C: Connection>(conn: &mut C, monitor: &str) -> Result<i64, StoreError> {
    if let Some(key) = monitor_key(conn, monitor).await? {
        return Ok(key);
    }
    conn.execute(
        "INSERT INTO monitor_keys (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        &[Arg::Text(monitor)],
    )
    .await?;
    monitor_key(conn, monitor).await?.ok_or_else(|| {
        StoreError::Corrupt(format!("the key of monitor {monitor:?} was not stored"))
    })
}

pub async fn record_results<C: Connection>(
    conn: &mut C,
    results: &[CheckResultRow],
) -> Result<(), StoreError> {
    if results.len() > MAX_RESULT_ROWS {
        return Err(StoreError::Invalid(format!(
            "{} results in one write; at most {MAX_RESULT_ROWS}",
            results.len()
        )));
    }
    for result in results {
        check_text("monitor", &result.monitor)?;
    }
    // The monitors' keys: looked up together, and given to those that have none.
    let mut keys: HashMap<&str, i64> = HashMap::new();
    let mut names: Vec<&str> = results
        .iter()
        .map(|result| result.monitor.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    for chunk in names.chunks(ROWS_PER_STATEMENT * 4) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let args: Vec<Arg<'_>> = chunk.iter().map(|name| Arg::Text(name)).collect();
        let rows = conn
            .fetch_all(
                &format!(
                    "SELECT id, name FROM monitor_keys WHERE name IN ({})",
                    placeholders.join(", ")
                ),
                &args,
            )
            .await?;
        for row in rows {
            let name = row.text("name")?;
            if let Some(known) = chunk.iter().find(|candidate| **candidate == name) {
                keys.insert(known, row.integer("id")?);
            }
        }
    }
    for name in names {
        if !keys.contains_key(name) {
            keys.insert(name, monitor_key_or_new(conn, name).await?);
        }
    }
    // Error texts, once per monitor and text.
    let mut errors: Vec<Option<i64>> = Vec::with_capacity(results.len());
    for result in results {
        let key = keys[result.monitor.as_str()];
        let at = result.at.as_millisecond();
        errors.push(match &result.error {
            Some(error) => {
                let text: String = error
                    .chars()
                    .take(MAX_RESULT_ERROR_CHARS)
                    .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
                    .collect();
                let row = conn
                    .fetch_one(
                        "INSERT INTO monitor_errors (monitor, text, last_at) VALUES ($1, $2, $3)
                         ON CONFLICT (monitor, text) DO UPDATE SET last_at = CASE
                             WHEN monitor_errors.last_at < excluded.last_at
                             THEN excluded.last_at ELSE monitor_errors.last_at END
                         RETURNING id",
                        &[Arg::Integer(key), Arg::Text(&text), Arg::Integer(at)],
                    )
                    .await?;
                Some(row.integer("id")?)
            }
            None => None,
        });
    }
    // The results, many rows per statement.
    let rows: Vec<(&CheckResultRow, Option<i64>)> = results.iter().zip(errors).collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(
            "INSERT INTO monitor_checks (monitor, at, status, latency_ms, http_status, error) VALUES ",
        );
        let mut args = Vec::with_capacity(chunk.len() * 6);
        for (n, (result, error)) in chunk.iter().enumerate() {
            push_values_row(&mut sql, n, 6);
            args.extend([
                Arg::Integer(keys[result.monitor.as_str()]),
                Arg::Integer(result.at.as_millisecond()),
                Arg::Integer(result.status.code()),
                Arg::Integer(result.latency_ms),
                Arg::OptionalInteger(result.http_status),
                Arg::OptionalInteger(*error),
            ]);
        }
        sql.push_str(" ON CONFLICT (monitor, at) DO NOTHING");
        conn.execute(&sql, &args).await?;
    }
    Ok(())
}

/// Appends the `n`-th row (from 0) of `width` parameters to a `VALUES` list: `($1, $2)`, then
/// `, ($3, $4)`, ...
fn push_values_row(sql: &mut String, n: usize, width: usize) {
    if n > 0 {
        sql.push_str(", ");
    }
    let placeholders: Vec<String> = (1..=width).map(|k| format!("${}", n * width + k)).collect();
    sql.push('(');
    sql.push_str(&placeholders.join(", "));
    sql.push(')');
}

pub async fn settle_checks<C: Connection>(
    conn: &mut C,
    checks: &[CheckSettlement],
) -> Result<Vec<Settled>, StoreError> {
    if checks.len() > MAX_SETTLE_BATCH {
        return Err(StoreError::Invalid(format!(
            "{} checks in one settlement; at most {MAX_SETTLE_BATCH}",
            checks.len()
        )));
    }
    for check in checks {
        if check.next.kind != check.item.kind || check.next.key != check.item.key {
            return Err(StoreError::Invalid(format!(
                "a check of {} {} cannot schedule {} {}",
                check.item.kind, check.item.key, check.next.kind, check.next.key
            )));
        }
    }
    let mut moved = std::collections::HashSet::new();
    for chunk in checks.chunks(ROWS_PER_STATEMENT) {
        // One statement moves every item whose claim is still held: (id, due_at, payload,
        // claim, claimer) per row.
        let mut sql = String::from(
            "UPDATE due_work SET due_at = v.column2, payload = v.column3, attempts = 0,
                 last_error = NULL, parked_at = NULL, claimed_by = NULL, lease_until = NULL,
                 revision = revision + 1
             FROM (VALUES ",
        );
        let mut args = Vec::with_capacity(chunk.len() * 5);
        for (n, check) in chunk.iter().enumerate() {
            push_values_row(&mut sql, n, 5);
            args.extend([
                Arg::Integer(check.item.id),
                Arg::Integer(check.next.due_at.as_microsecond()),
                Arg::Text(check.next.payload_text()),
                Arg::Integer(check.item.lease.claim),
                Arg::Text(check.item.lease.claimer.as_str()),
            ]);
        }
        sql.push_str(
            ") AS v WHERE due_work.id = v.column1 AND due_work.claims = v.column4
               AND due_work.claimed_by = v.column5 RETURNING id",
        );
        for row in conn.fetch_all(&sql, &args).await? {
            moved.insert(row.integer("id")?);
        }
    }
    let results: Vec<CheckResultRow> = checks
        .iter()
        .filter(|check| moved.contains(&check.item.id))
        .map(|check| check.result.clone())
        .collect();
    record_results(conn, &results).await?;
    Ok(checks
        .iter()
        .map(|check| {
            if moved.contains(&check.item.id) {
                Settled::Applied
            } else {
                Settled::LeaseLost
            }
        })
        .collect())
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
                "SELECT {RESULT_COLUMNS} FROM monitor_keys k
                 JOIN monitor_checks c ON c.monitor = k.id
                 LEFT JOIN monitor_errors e ON e.id = c.error
                 WHERE k.name = $1 AND c.at >= $2 AND c.at < $3 ORDER BY c.at LIMIT $4"
            ),
            &[
                Arg::Text(monitor),
                Arg::Integer(ms_ceil(from)),
                Arg::Integer(ms_ceil(to)),
                Arg::Integer(limit_arg(limit)),
            ],
        )
        .await?;
    rows.iter().map(|row| read_result(monitor, row)).collect()
}

/// A monitor's rollup for the period starting at `start` computed from its raw results, with
/// the monitor's stored number; `None` when the period has no results.
pub async fn compute_rollup<C: Connection>(
    conn: &mut C,
    monitor: &str,
    period: RollupPeriod,
    start: Timestamp,
) -> Result<Option<(i64, Rollup)>, StoreError> {
    check_text("monitor", monitor)?;
    let start = period.start_of(start);
    let Some(key) = monitor_key(conn, monitor).await? else {
        return Ok(None);
    };
    let from = start.as_millisecond();
    let to = from + period.micros() / 1000;
    // A day at a 1 s interval is 86,400 results: read them all, not a page.
    let rows = conn
        .fetch_all(
            "SELECT status, latency_ms FROM monitor_checks
             WHERE monitor = $1 AND at >= $2 AND at < $3",
            &[Arg::Integer(key), Arg::Integer(from), Arg::Integer(to)],
        )
        .await?;
    let mut outcomes = Vec::with_capacity(rows.len());
    for row in &rows {
        outcomes.push((
            ResultStatus::from_code(row.integer("status")?)?,
            row.integer("latency_ms")?,
        ));
    }
    Ok(Rollup::of_outcomes(monitor, period, start, &outcomes).map(|rollup| (key, rollup)))
}

/// Writes a rollup computed by [`compute_rollup`], replacing the one of the same period.
pub async fn store_rollup<C: Connection>(
    conn: &mut C,
    key: i64,
    rollup: &Rollup,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO monitor_check_rollups (monitor, period, start, checks, up, degraded, down,
             p50_ms, p95_ms, p99_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (monitor, period, start) DO UPDATE SET checks = excluded.checks,
         up = excluded.up, degraded = excluded.degraded, down = excluded.down,
         p50_ms = excluded.p50_ms, p95_ms = excluded.p95_ms, p99_ms = excluded.p99_ms",
        &[
            Arg::Integer(key),
            Arg::Integer(period_code(rollup.period)),
            Arg::Integer(rollup.start.as_millisecond()),
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
    Ok(())
}

pub async fn roll_up<C: Connection>(
    conn: &mut C,
    monitor: &str,
    period: RollupPeriod,
    start: Timestamp,
) -> Result<Option<Rollup>, StoreError> {
    let Some((key, rollup)) = compute_rollup(conn, monitor, period, start).await? else {
        return Ok(None);
    };
    store_rollup(conn, key, &rollup).await?;
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
                "SELECT {ROLLUP_COLUMNS} FROM monitor_keys k
                 JOIN monitor_check_rollups u ON u.monitor = k.id
                 WHERE k.name = $1 AND u.period = $2 AND u.start >= $3 ORDER BY u.start LIMIT $4"
            ),
            &[
                Arg::Text(monitor),
                Arg::Integer(period_code(period)),
                Arg::Integer(ms_ceil(from)),
                Arg::Integer(limit_arg(limit)),
            ],
        )
        .await?;
    rows.iter().map(|row| read_rollup(monitor, row)).collect()
}

pub async fn delete_rolled_up_results<C: Connection>(
    conn: &mut C,
    before: Timestamp,
    limit: usize,
) -> Result<usize, StoreError> {
    let before = ms_ceil(before);
    // Only results whose day (start = at - at % day; times are never negative) has a rollup.
    // Each monitor's old results are a range of the primary key: found through the keys.
    let deleted = conn
        .execute(
            "DELETE FROM monitor_checks WHERE (monitor, at) IN (
                 SELECT c.monitor, c.at FROM monitor_keys k
                 JOIN monitor_checks c ON c.monitor = k.id AND c.at < $1
                 WHERE EXISTS (
                     SELECT 1 FROM monitor_check_rollups u WHERE u.monitor = c.monitor
                     AND u.period = 1 AND u.start = c.at - (c.at % $2))
                 LIMIT $3)",
            &[
                Arg::Integer(before),
                Arg::Integer(DAY_MS),
                Arg::Integer(limit_arg(limit)),
            ],
        )
        .await?;
    // Texts last used before the cutoff that no remaining result refers to.
    conn.execute(
        "DELETE FROM monitor_errors WHERE last_at < $1 AND NOT EXISTS (
             SELECT 1 FROM monitor_checks c WHERE c.monitor = monitor_errors.monitor
             AND c.at <= monitor_errors.last_at AND c.error = monitor_errors.id)",
        &[Arg::Integer(before)],
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
            "DELETE FROM monitor_check_rollups WHERE (monitor, period, start) IN (
                 SELECT u.monitor, u.period, u.start FROM monitor_keys k
                 JOIN monitor_check_rollups u ON u.monitor = k.id AND u.period IN (0, 1)
                     AND u.start < $1
                 LIMIT $2)",
            &[
                Arg::Integer(ms_ceil(before)),
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
