//! Where the CPU went during a run (Linux `/proc`), and what the server says about its group
//! commits (`/metrics`). Both are read at the start and the end of the measured window.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{self, Target};

/// Linux reports process CPU time in clock ticks of `USER_HZ`, which is 100 on every
/// architecture Tocsin targets.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    server_ticks: Option<u64>,
    bench_ticks: Option<u64>,
    /// (busy, total) ticks of the whole machine.
    machine_ticks: Option<(u64, u64)>,
    server: Option<ServerCounters>,
}

impl Snapshot {
    pub async fn take(server_pid: Option<u32>, target: &Target) -> Snapshot {
        let server = match client::get_once(target, "/metrics", None, Duration::from_secs(5)).await
        {
            Ok((status, body)) if status.is_success() => {
                ServerCounters::parse(&String::from_utf8_lossy(&body))
            }
            _ => None,
        };
        Snapshot {
            at: Instant::now(),
            server_ticks: server_pid.and_then(|pid| process_ticks(&pid.to_string())),
            bench_ticks: process_ticks("self"),
            machine_ticks: machine_ticks(),
            server,
        }
    }
}

/// CPU use between two snapshots, in cores (1.0 = one core busy all the time).
#[derive(Debug, Clone, Copy)]
pub struct CpuShare {
    pub cores: usize,
    pub server: Option<f64>,
    pub bench: Option<f64>,
    pub machine_busy: Option<f64>,
}

impl CpuShare {
    pub fn between(start: &Snapshot, end: &Snapshot) -> CpuShare {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let wall = end.at.duration_since(start.at).as_secs_f64().max(1e-9);
        let cores_used = |a: Option<u64>, b: Option<u64>| {
            Some(b?.saturating_sub(a?) as f64 / TICKS_PER_SECOND / wall)
        };
        let machine_busy = match (start.machine_ticks, end.machine_ticks) {
            (Some((busy_a, total_a)), Some((busy_b, total_b))) if total_b > total_a => Some(
                busy_b.saturating_sub(busy_a) as f64 / (total_b - total_a) as f64 * cores as f64,
            ),
            _ => None,
        };
        CpuShare {
            cores,
            server: cores_used(start.server_ticks, end.server_ticks),
            bench: cores_used(start.bench_ticks, end.bench_ticks),
            machine_busy,
        }
    }

    /// Busy CPU that is neither the server process nor the load generator: the kernel's share
    /// not charged to either, PostgreSQL's processes, anything else running.
    pub fn other(&self) -> Option<f64> {
        Some((self.machine_busy? - self.server.unwrap_or(0.0) - self.bench?).max(0.0))
    }

    pub fn to_json(self) -> Value {
        json!({
            "cores": self.cores,
            "server": self.server,
            "bench": self.bench,
            "other": self.other(),
            "machine_busy": self.machine_busy,
        })
    }
}

/// Totals from the server's `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerCounters {
    batches: f64,
    batch_events: f64,
    ingest_seconds: f64,
    ingest_calls: f64,
}

impl ServerCounters {
    fn parse(text: &str) -> Option<ServerCounters> {
        Some(ServerCounters {
            batches: sample(text, "tocsin_ingest_batches_total")?,
            batch_events: sample(text, "tocsin_ingest_batch_events_sum")?,
            ingest_seconds: sample(
                text,
                "tocsin_store_latency_seconds_sum{operation=\"ingest\"}",
            )
            .unwrap_or(0.0),
            ingest_calls: sample(
                text,
                "tocsin_store_latency_seconds_count{operation=\"ingest\"}",
            )
            .unwrap_or(0.0),
        })
    }
}

/// Group commits during the measured window.
#[derive(Debug, Clone, Copy)]
pub struct CommitStats {
    pub commits: f64,
    pub events: f64,
    pub commit_seconds: f64,
    pub store_calls: f64,
}

impl CommitStats {
    pub fn between(start: &Snapshot, end: &Snapshot) -> Option<CommitStats> {
        let (a, b) = (start.server?, end.server?);
        Some(CommitStats {
            commits: b.batches - a.batches,
            events: b.batch_events - a.batch_events,
            commit_seconds: b.ingest_seconds - a.ingest_seconds,
            store_calls: b.ingest_calls - a.ingest_calls,
        })
    }

    pub fn events_per_commit(&self) -> f64 {
        if self.commits > 0.0 {
            self.events / self.commits
        } else {
            0.0
        }
    }

    pub fn mean_commit_ms(&self) -> f64 {
        if self.store_calls > 0.0 {
            self.commit_seconds / self.store_calls * 1000.0
        } else {
            0.0
        }
    }

    pub fn to_json(self) -> Value {
        json!({
            "commits": self.commits,
            "events": self.events,
            "events_per_commit": self.events_per_commit(),
            "mean_commit_ms": self.mean_commit_ms(),
        })
    }
}

/// The value of one series, matched by its full name and labels as the server prints them.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// utime + stime of a process (all its threads), from `/proc/<pid>/stat`.
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; the fields after it do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// (busy, total) ticks of all CPUs, from the first line of `/proc/stat`; iowait counts as idle.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .take(8)
        .map(|value| value.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = values.iter().sum();
    let idle = values.get(3)? + values.get(4)?;
    Some((total - idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_matched_by_full_name() {
        let text = "# HELP x\ntocsin_ingest_batches_total 12\n\
                    tocsin_ingest_batch_events_sum 3400.0\n\
                    tocsin_store_latency_seconds_sum{operation=\"list\"} 9.0\n\
                    tocsin_store_latency_seconds_sum{operation=\"ingest\"} 1.5\n\
                    tocsin_store_latency_seconds_count{operation=\"ingest\"} 12\n";
        let counters = ServerCounters::parse(text).unwrap();
        assert_eq!(counters.batches, 12.0);
        assert_eq!(counters.batch_events, 3400.0);
        assert_eq!(counters.ingest_seconds, 1.5);
        assert_eq!(counters.ingest_calls, 12.0);
    }

    #[test]
    fn this_process_has_cpu_time_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(process_ticks("self").is_some());
            let (busy, total) = machine_ticks().unwrap();
            assert!(busy <= total);
        }
    }
}
