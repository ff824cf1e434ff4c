//! `tocsin-bench storage`: how many bytes monitor history takes in SQLite. Writes `days` of
//! results for `monitors` monitors at one check per `interval` each, through the store's own
//! write path, in time order (all monitors' results interleaved, as the scheduler writes them),
//! rolls them up at the end of every hour and day, and applies the retention of
//! `tocsin_checks::results` (raw results 14 days once their day is rolled up, rollups 400 days)
//! at the end of every day; then closes the store (a full checkpoint) and measures the file and
//! each table's pages (`dbstat`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use tocsin_checks::results::{RAW_RETENTION, ROLLUP_RETENTION};
use tocsin_core::Timestamp;
use tocsin_store::monitor_results::{CheckResultRow, ResultStatus, RollupPeriod};
use tocsin_store::{MonitorResultStore, Store};
use tocsin_store_sqlite::SqliteStore;

/// Results per write transaction.
const WRITE_BATCH: usize = 2_000;

#[derive(Debug, Clone)]
pub struct StoragePlan {
    pub monitors: usize,
    pub days: u32,
    pub interval: Duration,
    /// Parent of the data directory (default: the system's temporary directory).
    pub work_dir: Option<PathBuf>,
}

/// Pages and bytes of one table or index.
#[derive(Debug, Clone)]
pub struct TableSize {
    pub name: String,
    pub pages: i64,
    pub bytes: i64,
    pub payload: i64,
    pub rows: i64,
}

#[derive(Debug, Clone)]
pub struct StorageReport {
    pub plan: StoragePlan,
    pub results_written: u64,
    pub raw_kept: i64,
    pub rollups_kept: i64,
    pub file_bytes: u64,
    pub page_size: i64,
    pub pages: i64,
    pub free_pages: i64,
    pub tables: Vec<TableSize>,
    pub elapsed: Duration,
}

impl StorageReport {
    pub fn bytes_per_monitor(&self) -> f64 {
        self.file_bytes as f64 / self.plan.monitors.max(1) as f64
    }

    pub fn print(&self) {
        let plan = &self.plan;
        println!(
            "{} monitors, {} days at one check per {:?}: {} results written ({:.1} s); kept {} raw results and {} rollups",
            plan.monitors,
            plan.days,
            plan.interval,
            self.results_written,
            self.elapsed.as_secs_f64(),
            self.raw_kept,
            self.rollups_kept
        );
        println!(
            "file {} bytes ({} pages of {} bytes, {} free): {:.2} MB per monitor",
            self.file_bytes,
            self.pages,
            self.page_size,
            self.free_pages,
            self.bytes_per_monitor() / 1e6
        );
        println!("| table or index | pages | bytes | payload bytes | rows | bytes per row | bytes per monitor |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for table in &self.tables {
            let per_row = if table.rows > 0 {
                format!("{:.1}", table.bytes as f64 / table.rows as f64)
            } else {
                "-".to_owned()
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {:.0} |",
                table.name,
                table.pages,
                table.bytes,
                table.payload,
                table.rows,
                per_row,
                table.bytes as f64 / plan.monitors.max(1) as f64
            );
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "monitors": self.plan.monitors,
            "days": self.plan.days,
            "interval_seconds": self.plan.interval.as_secs_f64(),
            "results_written": self.results_written,
            "raw_kept": self.raw_kept,
            "rollups_kept": self.rollups_kept,
            "file_bytes": self.file_bytes,
            "bytes_per_monitor": self.bytes_per_monitor(),
            "page_size": self.page_size,
            "pages": self.pages,
            "free_pages": self.free_pages,
            "elapsed_seconds": self.elapsed.as_secs_f64(),
            "tables": self.tables.iter().map(|table| json!({
                "name": table.name,
                "pages": table.pages,
                "bytes": table.bytes,
                "payload": table.payload,
                "rows": table.rows,
            })).collect::<Vec<_>>(),
        })
    }
}

/// A small deterministic generator (xorshift64*), so every run writes the same history.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One check's result: mostly up and fast, 1 % degraded (slow), 0.5 % down with one of two
/// errors.
fn result(monitor: &str, at: Timestamp, noise: &mut Noise) -> CheckResultRow {
    let roll = noise.next() % 1000;
    let latency = 1 + (noise.next() % 250) as i64;
    let (status, latency_ms, http_status, error) = match roll {
        0..=4 => (
            ResultStatus::Down,
            latency,
            Some(500),
            Some("HTTP 500, expected 2xx".to_owned()),
        ),
        5..=14 => (ResultStatus::Degraded, 800 + latency * 4, Some(200), None),
        15 => (
            ResultStatus::Down,
            10_000,
            None,
            Some("timed out after 10s".to_owned()),
        ),
        _ => (ResultStatus::Up, latency, Some(200), None),
    };
    CheckResultRow {
        monitor: monitor.to_owned(),
        at,
        status,
        latency_ms,
        http_status,
        error,
    }
}

pub async fn run(plan: StoragePlan) -> anyhow::Result<StorageReport> {
    anyhow::ensure!(plan.monitors > 0, "--monitors must be at least 1");
    anyhow::ensure!(plan.days > 0, "--days must be at least 1");
    let interval_ms = i64::try_from(plan.interval.as_millis()).unwrap_or(i64::MAX);
    anyhow::ensure!(interval_ms >= 1000, "--interval must be at least 1s");
    let data = match &plan.work_dir {
        Some(parent) => tempfile::Builder::new()
            .prefix("tocsin-bench-storage-")
            .tempdir_in(parent),
        None => tempfile::Builder::new()
            .prefix("tocsin-bench-storage-")
            .tempdir(),
    }
    .context("cannot create a data directory")?;
    let store = Arc::new(SqliteStore::open(data.path()).await?);
    let started = Instant::now();
    let ids: Vec<String> = (0..plan.monitors)
        .map(|n| format!("monitor-{n:05}"))
        .collect();
    // Each monitor's checks fall at its own phase of the interval, as the scheduler spreads them.
    let phase = |n: usize| (n as i64 * interval_ms) / plan.monitors as i64;
    let origin: Timestamp = "2026-09-01T00:00:00Z".parse()?;
    let hour_ms = RollupPeriod::Hour.micros() / 1000;
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut written = 0u64;
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    for hour in 0..i64::from(plan.days) * 24 {
        let hour_start = origin.as_millisecond() + hour * hour_ms;
        let mut tick = hour_start;
        while tick < hour_start + hour_ms {
            for (n, id) in ids.iter().enumerate() {
                let at = Timestamp::from_millisecond(tick + phase(n))?;
                batch.push(result(id, at, &mut noise));
                if batch.len() == WRITE_BATCH {
                    store.record_results(&batch).await?;
                    written += batch.len() as u64;
                    batch.clear();
                }
            }
            tick += interval_ms;
        }
        store.record_results(&batch).await?;
        written += batch.len() as u64;
        batch.clear();
        let start = Timestamp::from_millisecond(hour_start)?;
        for id in &ids {
            store.roll_up(id, RollupPeriod::Hour, start).await?;
        }
        if (hour + 1) % 24 == 0 {
            let now = Timestamp::from_millisecond(hour_start + hour_ms)?;
            for id in &ids {
                store.roll_up(id, RollupPeriod::Day, start).await?;
            }
            let raw_cutoff = now.checked_sub(RAW_RETENTION)?;
            while store.delete_rolled_up_results(raw_cutoff, 5_000).await? == 5_000 {}
            let rollup_cutoff = now.checked_sub(ROLLUP_RETENTION)?;
            while store.delete_rollups(rollup_cutoff, 5_000).await? == 5_000 {}
        }
    }
    let elapsed = started.elapsed();
    let path = store.path().to_owned();
    store.close().await;
    drop(store);
    let mut report = measure(&path)?;
    report.plan = plan;
    report.results_written = written;
    report.elapsed = elapsed;
    Ok(report)
}

/// The file's size and pages, and each table's pages and rows, read with a connection of its
/// own after the store has closed.
fn measure(path: &Path) -> anyhow::Result<StorageReport> {
    let file_bytes = std::fs::metadata(path)?.len();
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let pragma = |name: &str| -> anyhow::Result<i64> {
        Ok(db.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))?)
    };
    let page_size = pragma("page_size")?;
    let pages = pragma("page_count")?;
    let free_pages = pragma("freelist_count")?;
    let mut statement = db.prepare(
        "SELECT name, count(*), sum(pgsize), sum(payload) FROM dbstat GROUP BY name
         ORDER BY sum(pgsize) DESC",
    )?;
    let mut tables: Vec<TableSize> = statement
        .query_map([], |row| {
            Ok(TableSize {
                name: row.get(0)?,
                pages: row.get(1)?,
                bytes: row.get(2)?,
                payload: row.get(3)?,
                rows: 0,
            })
        })?
        .collect::<Result<_, _>>()?;
    for table in &mut tables {
        let is_table: bool = db.query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [&table.name],
            |row| row.get(0),
        )?;
        if is_table {
            table.rows = db.query_row(
                &format!("SELECT count(*) FROM \"{}\"", table.name),
                [],
                |row| row.get(0),
            )?;
        }
    }
    let count = |table: &str| {
        tables
            .iter()
            .find(|t| t.name == table)
            .map_or(0, |t| t.rows)
    };
    Ok(StorageReport {
        plan: StoragePlan {
            monitors: 0,
            days: 0,
            interval: Duration::ZERO,
            work_dir: None,
        },
        results_written: 0,
        raw_kept: count("monitor_checks"),
        rollups_kept: count("monitor_check_rollups"),
        file_bytes,
        page_size,
        pages,
        free_pages,
        tables,
        elapsed: Duration::ZERO,
    })
}
