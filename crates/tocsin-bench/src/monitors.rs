//! `tocsin-bench monitors`: many HTTP monitors against a local target. Starts a target HTTP
//! server in this process (hyper on loopback, `200 ok` to every request), writes a config with
//! `count` http monitors pointing at it, starts the release `tocsin serve` on a fresh SQLite
//! store, lets one interval pass (every monitor's first check is spread over it), and then
//! measures over `duration`: how late checks start (the server's
//! `tocsin_due_item_lag_seconds{kind="monitor.check"}` histogram), the checks the target saw,
//! the server's CPU time (`/proc/<pid>/stat`), its resident memory (`VmRSS`, sampled every
//! second, and `VmHWM`) and the bytes it wrote (`/proc/<pid>/io`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::{json, Value};

use crate::client::{self, Target};
use crate::receiver;
use crate::serve::{self, Served};

/// The due-work kind of monitor checks.
const MONITOR_CHECK: &str = "monitor.check";

#[derive(Debug, Clone)]
pub struct MonitorsPlan {
    pub tocsin: PathBuf,
    pub count: usize,
    pub interval: Duration,
    /// Measured time, after the warm-up.
    pub duration: Duration,
    /// Before measuring; default one interval and 10 s.
    pub warmup: Option<Duration>,
    /// Loopback addresses (127.0.0.1, 127.0.0.2, ...) the monitors are spread over; the
    /// scheduler runs at most 4 checks at once per host.
    pub hosts: usize,
    pub work_dir: Option<PathBuf>,
}

/// A cumulative histogram as Prometheus prints it: (upper bound, count at or below it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    pub bounds: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Buckets {
    /// The `{kind="..."}` series of histogram `name` in a `/metrics` text.
    pub fn parse(text: &str, name: &str, kind: &str) -> Option<Buckets> {
        let label = format!("kind=\"{kind}\"");
        let mut buckets = Buckets::default();
        let mut found = false;
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            if !series.contains(&label) {
                continue;
            }
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if series.starts_with(&format!("{name}_bucket{{")) {
                let le = series.split("le=\"").nth(1)?.split('"').next()?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                buckets.bounds.push((bound, value));
                found = true;
            } else if series.starts_with(&format!("{name}_sum{{")) {
                buckets.sum = value;
            } else if series.starts_with(&format!("{name}_count{{")) {
                buckets.count = value;
            }
        }
        buckets.bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        found.then_some(buckets)
    }

    /// What was observed between `earlier` and `self`.
    pub fn since(&self, earlier: &Buckets) -> Buckets {
        Buckets {
            bounds: self
                .bounds
                .iter()
                .map(|(bound, count)| {
                    let before = earlier
                        .bounds
                        .iter()
                        .find(|(b, _)| b == bound)
                        .map_or(0.0, |(_, c)| *c);
                    (*bound, count - before)
                })
                .collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    /// The `q`-quantile (0..1): the upper bound of its bucket, and a linear interpolation
    /// inside the bucket (as Prometheus' `histogram_quantile`).
    pub fn quantile(&self, q: f64) -> Option<(f64, f64)> {
        let total = self.bounds.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(bound, count) in &self.bounds {
            if count >= rank {
                if bound.is_infinite() {
                    return Some((bound, lower.0));
                }
                let share = if count > lower.1 {
                    (rank - lower.1) / (count - lower.1)
                } else {
                    1.0
                };
                return Some((bound, lower.0 + (bound - lower.0) * share));
            }
            lower = (bound, count);
        }
        None
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The mean in whole milliseconds, or `-`.
    pub fn mean_ms_text(&self) -> String {
        self.mean()
            .map_or_else(|| "-".to_owned(), |mean| format!("{:.0}", mean * 1e3))
    }

    /// `412 ms (bucket ≤ 512 ms)` for the `q`-quantile, or `-`.
    pub fn quantile_text(&self, q: f64) -> String {
        self.quantile(q).map_or_else(
            || "-".to_owned(),
            |(bucket, estimate)| {
                format!("{:.0} ms (bucket ≤ {:.0} ms)", estimate * 1e3, bucket * 1e3)
            },
        )
    }
}

#[derive(Debug, Clone)]
pub struct MonitorsReport {
    pub plan: MonitorsPlan,
    pub load_before: String,
    pub load_after: String,
    pub window: Duration,
    pub target_requests: u64,
    pub lag: Option<Buckets>,
    pub cpu_seconds: Option<f64>,
    pub bench_cpu_seconds: Option<f64>,
    pub rss_mean: Option<f64>,
    pub rss_max: Option<u64>,
    pub hwm: Option<u64>,
    pub written: Option<u64>,
}

impl MonitorsReport {
    fn expected_per_second(&self) -> f64 {
        self.plan.count as f64 / self.plan.interval.as_secs_f64()
    }

    fn checks_per_second(&self) -> f64 {
        self.target_requests as f64 / self.window.as_secs_f64().max(1e-9)
    }

    fn core_share(&self) -> Option<f64> {
        Some(self.cpu_seconds? / self.window.as_secs_f64().max(1e-9))
    }

    fn cpu_us_per_check(&self) -> Option<f64> {
        (self.target_requests > 0).then_some(self.cpu_seconds? * 1e6 / self.target_requests as f64)
    }

    pub fn print(&self) {
        let plan = &self.plan;
        println!(
            "{} http monitors every {:?} over {} host(s); measured {:.1} s; load average {} before, {} after",
            plan.count,
            plan.interval,
            plan.hosts,
            self.window.as_secs_f64(),
            self.load_before,
            self.load_after
        );
        println!(
            "checks: {:.1}/s seen by the target (expected {:.1}/s)",
            self.checks_per_second(),
            self.expected_per_second()
        );
        match &self.lag {
            Some(lag) => {
                println!(
                    "start lag over {} checks: mean {} ms, p50 {}, p99 {}, p99.9 {}",
                    lag.count,
                    lag.mean_ms_text(),
                    lag.quantile_text(0.5),
                    lag.quantile_text(0.99),
                    lag.quantile_text(0.999)
                );
            }
            None => println!("start lag: the server's /metrics had no monitor.check lag"),
        }
        let mb = |bytes: Option<f64>| {
            bytes.map_or_else(|| "-".to_owned(), |b| format!("{:.1} MB", b / 1e6))
        };
        println!(
            "server CPU: {} of one core ({} µs per check); bench process {}",
            self.core_share()
                .map_or_else(|| "-".to_owned(), |s| format!("{:.1} %", s * 100.0)),
            self.cpu_us_per_check()
                .map_or_else(|| "-".to_owned(), |u| format!("{u:.0}")),
            self.bench_cpu_seconds.map_or_else(
                || "-".to_owned(),
                |s| format!("{:.1} % of one core", s / self.window.as_secs_f64() * 100.0)
            ),
        );
        println!(
            "server memory: RSS mean {}, max {}, peak (VmHWM) {}; wrote {} ({} per check)",
            mb(self.rss_mean),
            mb(self.rss_max.map(|b| b as f64)),
            mb(self.hwm.map(|b| b as f64)),
            mb(self.written.map(|b| b as f64)),
            match (self.written, self.target_requests) {
                (Some(written), checks) if checks > 0 =>
                    format!("{:.0} bytes", written as f64 / checks as f64),
                _ => "-".to_owned(),
            }
        );
    }

    pub fn to_json(&self) -> Value {
        let quantile = |q: f64| {
            self.lag
                .as_ref()
                .and_then(|lag| lag.quantile(q))
                .map(|(bucket, estimate)| json!({"bucket_upper_seconds": bucket, "estimate_seconds": estimate}))
        };
        json!({
            "monitors": self.plan.count,
            "interval_seconds": self.plan.interval.as_secs_f64(),
            "hosts": self.plan.hosts,
            "window_seconds": self.window.as_secs_f64(),
            "load_before": self.load_before,
            "load_after": self.load_after,
            "target_requests": self.target_requests,
            "checks_per_second": self.checks_per_second(),
            "expected_per_second": self.expected_per_second(),
            "lag": {
                "count": self.lag.as_ref().map(|lag| lag.count),
                "mean_seconds": self.lag.as_ref().and_then(Buckets::mean),
                "p50": quantile(0.5),
                "p99": quantile(0.99),
                "p99_9": quantile(0.999),
            },
            "server_cpu_seconds": self.cpu_seconds,
            "server_core_share": self.core_share(),
            "server_cpu_us_per_check": self.cpu_us_per_check(),
            "bench_cpu_seconds": self.bench_cpu_seconds,
            "rss_mean_bytes": self.rss_mean,
            "rss_max_bytes": self.rss_max,
            "vm_hwm_bytes": self.hwm,
            "written_bytes": self.written,
        })
    }
}

/// The target: one listener per host address, `200 ok` to everything, counting requests.
struct TargetServer {
    addresses: Vec<SocketAddr>,
    requests: Arc<AtomicU64>,
}

async fn start_target(hosts: usize) -> anyhow::Result<TargetServer> {
    let requests = Arc::new(AtomicU64::new(0));
    let mut addresses = Vec::new();
    for host in 0..hosts {
        let ip = Ipv4Addr::new(
            127,
            0,
            0,
            u8::try_from(host + 1).context("at most 254 hosts")?,
        );
        let requests = Arc::clone(&requests);
        addresses.push(
            receiver::serve_http(ip.into(), move |_request| {
                requests.fetch_add(1, Ordering::Relaxed);
                async { Response::new(Full::new(Bytes::from_static(b"ok"))) }
            })
            .await?,
        );
    }
    Ok(TargetServer {
        addresses,
        requests,
    })
}

fn config_file(listen: SocketAddr, plan: &MonitorsPlan, targets: &[SocketAddr]) -> String {
    let mut config = format!(
        "[server]\nlisten = \"{listen}\"\n\n[[services]]\nid = \"bench\"\nname = \"Bench\"\n"
    );
    let interval = format!("{}s", plan.interval.as_secs().max(1));
    for n in 0..plan.count {
        let target = targets[n % targets.len()];
        config.push_str(&format!(
            "\n[[monitors]]\nid = \"m-{n:05}\"\nservice = \"bench\"\nkind = \"http\"\nurl = \"http://{target}/m/{n}\"\ninterval = \"{interval}\"\ntimeout = \"5s\"\n"
        ));
    }
    config
}

/// The server's `tocsin_due_item_lag_seconds` histogram of due work of `kind` (how late items
/// were claimed), from its `/metrics`.
pub async fn lag_histogram(target: &Target, kind: &str) -> Option<Buckets> {
    let (status, body) = client::get_once(target, "/metrics", None, Duration::from_secs(10))
        .await
        .ok()?;
    if !status.is_success() {
        return None;
    }
    Buckets::parse(
        &String::from_utf8_lossy(&body),
        "tocsin_due_item_lag_seconds",
        kind,
    )
}

pub async fn run(plan: MonitorsPlan) -> anyhow::Result<MonitorsReport> {
    anyhow::ensure!(plan.count > 0, "--count must be at least 1");
    anyhow::ensure!(
        (1..=254).contains(&plan.hosts),
        "--hosts must be between 1 and 254"
    );
    anyhow::ensure!(
        plan.interval >= Duration::from_secs(1),
        "--interval must be at least 1s"
    );
    let target = start_target(plan.hosts).await?;
    let server = Served::start(&plan.tocsin, plan.work_dir.as_deref(), |listen| {
        config_file(listen, &plan, &target.addresses)
    })
    .await?;
    let outcome = measure(&plan, &target, &server).await;
    if outcome.is_err() {
        eprintln!("server log:\n{}", server.log_tail());
    }
    server.stop().await?;
    outcome
}

async fn measure(
    plan: &MonitorsPlan,
    target: &TargetServer,
    server: &Served,
) -> anyhow::Result<MonitorsReport> {
    let pid = server.pid.context("the server has no process id")?;
    let warmup = plan
        .warmup
        .unwrap_or(plan.interval + Duration::from_secs(10));
    eprintln!(
        "server up (pid {pid}); warming up for {:.0} s, then measuring for {:.0} s",
        warmup.as_secs_f64(),
        plan.duration.as_secs_f64()
    );
    tokio::time::sleep(warmup).await;

    let load_before = serve::load_average();
    let lag_before = lag_histogram(&server.target, MONITOR_CHECK).await;
    let cpu_before = serve::cpu_seconds(pid);
    let bench_before = serve::cpu_seconds(std::process::id());
    let written_before = serve::written_bytes(pid);
    let requests_before = target.requests.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut rss_samples = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    while started.elapsed() < plan.duration {
        ticker.tick().await;
        if let Some((rss, _)) = serve::memory(pid) {
            rss_samples.push(rss);
        }
        let elapsed = started.elapsed().as_secs();
        if elapsed % 15 == 0 {
            eprintln!(
                "  {elapsed:>4} s  checks seen {}",
                target.requests.load(Ordering::Relaxed) - requests_before
            );
        }
    }
    let window = started.elapsed();
    let requests = target.requests.load(Ordering::Relaxed) - requests_before;
    let cpu_after = serve::cpu_seconds(pid);
    let bench_after = serve::cpu_seconds(std::process::id());
    let written_after = serve::written_bytes(pid);
    let lag_after = lag_histogram(&server.target, MONITOR_CHECK).await;
    let hwm = serve::memory(pid).map(|(_, hwm)| hwm);
    let load_after = serve::load_average();
    Ok(MonitorsReport {
        plan: plan.clone(),
        load_before,
        load_after,
        window,
        target_requests: requests,
        lag: match (lag_before, lag_after) {
            (Some(before), Some(after)) => Some(after.since(&before)),
            (None, Some(after)) => Some(after),
            _ => None,
        },
        cpu_seconds: cpu_before.zip(cpu_after).map(|(a, b)| b - a),
        bench_cpu_seconds: bench_before.zip(bench_after).map(|(a, b)| b - a),
        rss_mean: (!rss_samples.is_empty())
            .then(|| rss_samples.iter().sum::<u64>() as f64 / rss_samples.len() as f64),
        rss_max: rss_samples.iter().copied().max(),
        hwm,
        written: written_before
            .zip(written_after)
            .map(|(a, b)| b.saturating_sub(a)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "# TYPE tocsin_due_item_lag_seconds histogram\n\
        tocsin_due_item_lag_seconds_sum{kind=\"monitor.check\"} 30.0\n\
        tocsin_due_item_lag_seconds_count{kind=\"monitor.check\"} 100\n\
        tocsin_due_item_lag_seconds_bucket{le=\"0.1\",kind=\"monitor.check\"} 50\n\
        tocsin_due_item_lag_seconds_bucket{le=\"0.2\",kind=\"monitor.check\"} 90\n\
        tocsin_due_item_lag_seconds_bucket{le=\"0.4\",kind=\"monitor.check\"} 100\n\
        tocsin_due_item_lag_seconds_bucket{le=\"+Inf\",kind=\"monitor.check\"} 100\n\
        tocsin_due_item_lag_seconds_bucket{le=\"0.1\",kind=\"other\"} 7\n";

    #[test]
    fn lag_quantiles_come_from_the_buckets() {
        let lag = Buckets::parse(METRICS, "tocsin_due_item_lag_seconds", "monitor.check").unwrap();
        assert_eq!(lag.count, 100.0);
        assert_eq!(lag.bounds.len(), 4);
        let (bucket, estimate) = lag.quantile(0.5).unwrap();
        assert_eq!(bucket, 0.1);
        assert!((estimate - 0.1).abs() < 1e-9);
        let (bucket, estimate) = lag.quantile(0.99).unwrap();
        assert_eq!(bucket, 0.4);
        assert!((estimate - 0.38).abs() < 1e-9, "{estimate}");
        assert_eq!(lag.mean(), Some(0.3));
        let none = lag.since(&lag);
        assert_eq!(none.quantile(0.5), None);
        assert!(Buckets::parse(METRICS, "tocsin_due_item_lag_seconds", "absent").is_none());
    }

    #[test]
    fn the_config_names_every_monitor() {
        let plan = MonitorsPlan {
            tocsin: PathBuf::new(),
            count: 3,
            interval: Duration::from_secs(30),
            duration: Duration::from_secs(1),
            warmup: None,
            hosts: 2,
            work_dir: None,
        };
        let targets = [
            "127.0.0.1:9000".parse().unwrap(),
            "127.0.0.2:9001".parse().unwrap(),
        ];
        let config = config_file("127.0.0.1:8080".parse().unwrap(), &plan, &targets);
        assert_eq!(config.matches("[[monitors]]").count(), 3);
        assert!(config.contains("url = \"http://127.0.0.2:9001/m/1\""));
        assert!(config.contains("interval = \"30s\""));
    }
}
