//! The probes: one check of a monitor, answering up, degraded or down with the latency and,
//! when it is not up, why.

mod dns;
mod http;
mod tcp;
pub mod tls;

use std::time::{Duration, Instant};

use tocsin_config::{Monitor, MonitorKind};
use tocsin_core::Timestamp;

pub use dns::system_resolver;

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckStatus {
    Up,
    /// It answered correctly, but too slowly, or its certificate expires soon.
    Degraded,
    Down,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Up => "up",
            CheckStatus::Degraded => "degraded",
            CheckStatus::Down => "down",
        }
    }

    pub fn parse(text: &str) -> Option<CheckStatus> {
        match text {
            "up" => Some(CheckStatus::Up),
            "degraded" => Some(CheckStatus::Degraded),
            "down" => Some(CheckStatus::Down),
            _ => None,
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub status: CheckStatus,
    /// From the start of the check to its answer (or to the failure).
    pub latency: Duration,
    /// Why it is degraded or down; `None` when up.
    pub error: Option<String>,
    /// The HTTP status code, for http checks that got an answer.
    pub http_status: Option<u16>,
    /// When the server's certificate expires, for checks that made a TLS handshake.
    pub certificate_expires_at: Option<Timestamp>,
}

impl CheckResult {
    pub(crate) fn up(latency: Duration) -> CheckResult {
        CheckResult {
            status: CheckStatus::Up,
            latency,
            error: None,
            http_status: None,
            certificate_expires_at: None,
        }
    }

    pub(crate) fn down(latency: Duration, error: impl Into<String>) -> CheckResult {
        CheckResult {
            status: CheckStatus::Down,
            latency,
            error: Some(error.into()),
            http_status: None,
            certificate_expires_at: None,
        }
    }

    /// Marks an up result degraded for `reason` (a down result stays down).
    pub(crate) fn degrade(&mut self, reason: String) {
        match self.status {
            CheckStatus::Up => {
                self.status = CheckStatus::Degraded;
                self.error = Some(reason);
            }
            CheckStatus::Degraded => {
                if let Some(error) = &mut self.error {
                    error.push_str("; ");
                    error.push_str(&reason);
                }
            }
            CheckStatus::Down => {}
        }
    }

    /// Applies the latency threshold and the certificate expiry warning.
    pub(crate) fn judge(
        mut self,
        degraded_above: Option<Duration>,
        warn_days: Option<u32>,
        now: Timestamp,
    ) -> CheckResult {
        if let Some(limit) = degraded_above {
            if self.latency > limit {
                let reason = format!(
                    "slow: answered in {} ms, above the {} ms threshold",
                    self.latency.as_millis(),
                    limit.as_millis()
                );
                self.degrade(reason);
            }
        }
        if let (Some(days), Some(expires)) = (warn_days, self.certificate_expires_at) {
            let left = expires.as_second() - now.as_second();
            if left <= 0 {
                let reason = format!("the certificate expired at {expires}");
                self.status = CheckStatus::Down;
                self.error = Some(reason);
            } else if left < i64::from(days) * 86_400 {
                self.degrade(format!(
                    "the certificate expires at {expires}, in {} days (warning from {days} days before)",
                    left / 86_400
                ));
            }
        }
        self
    }
}

/// Runs checks. One per process: it holds the shared HTTP clients (connection reuse) and TLS
/// configurations.
#[derive(Debug, Default)]
pub struct Prober {
    http: http::HttpClients,
    tls: tls::TlsConfigs,
}

impl Prober {
    pub fn new() -> Prober {
        Prober::default()
    }

    /// Checks `monitor` once, within its timeout. Heartbeat monitors are not probed: their
    /// result is always down with an explanation, and callers do not ask.
    pub async fn check(&self, monitor: &Monitor, now: Timestamp) -> CheckResult {
        let Some(probe) = monitor.probe() else {
            return CheckResult::down(Duration::ZERO, "heartbeat monitors are not probed");
        };
        let started = Instant::now();
        let timeout = probe.timeout;
        let run = async {
            match &monitor.kind {
                MonitorKind::Http(check) => self.http.check(check, started).await,
                MonitorKind::Tcp(check) => tcp::check_tcp(check, &self.tls, started).await,
                MonitorKind::Tls(check) => tcp::check_tls(check, &self.tls, started).await,
                MonitorKind::Dns(check) => dns::check(check, started).await,
                MonitorKind::Heartbeat(_) => {
                    CheckResult::down(started.elapsed(), "heartbeat monitors are not probed")
                }
            }
        };
        let result = match tokio::time::timeout(timeout, run).await {
            Ok(result) => result,
            Err(_) => CheckResult::down(
                started.elapsed(),
                format!("no answer within the {} ms timeout", timeout.as_millis()),
            ),
        };
        let warn_days = match &monitor.kind {
            MonitorKind::Http(check) => check.tls_expiry_warn_days,
            MonitorKind::Tls(check) => Some(check.tls_expiry_warn_days),
            _ => None,
        };
        result.judge(probe.degraded_above, warn_days, now)
    }

    /// Drops the clients and TLS configurations that none of `monitors` uses (after a reload).
    pub fn retain_for(&self, monitors: &[Monitor]) {
        let http: Vec<(bool, tocsin_config::TlsTrust)> = monitors
            .iter()
            .filter_map(|monitor| match &monitor.kind {
                MonitorKind::Http(check) => Some((check.follow_redirects, check.tls.clone())),
                _ => None,
            })
            .collect();
        self.http
            .retain(|follow, trust| http.iter().any(|(f, t)| *f == follow && t == trust));
        let trusts: Vec<&tocsin_config::TlsTrust> = monitors
            .iter()
            .filter_map(|monitor| match &monitor.kind {
                MonitorKind::Tcp(check) if check.tls => Some(&check.tls_trust),
                MonitorKind::Tls(check) => Some(&check.tls_trust),
                _ => None,
            })
            .collect();
        self.tls.retain(|trust| trusts.contains(&trust));
    }
}

/// An error and its causes on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
