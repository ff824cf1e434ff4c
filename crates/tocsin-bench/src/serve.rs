//! A `tocsin serve` child process on a fresh store (SQLite, or a PostgreSQL database the caller
//! made) with a config the caller writes, for the monitor, heartbeat and paging benchmarks.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::client::{self, Target};

const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Served {
    child: Child,
    pub pid: Option<u32>,
    pub target: Target,
    data: tempfile::TempDir,
}

impl Served {
    /// Writes `config(listen address)` to `tocsin.toml` in a fresh data directory (under
    /// `work_dir`, default the system's temporary directory), starts `tocsin serve` on it and
    /// waits for `/readyz`.
    pub async fn start(
        tocsin: &Path,
        work_dir: Option<&Path>,
        config: impl FnOnce(SocketAddr) -> String,
    ) -> anyhow::Result<Served> {
        Served::start_on(tocsin, work_dir, None, config).await
    }

    /// [`Served::start`] on the PostgreSQL database at `database` (an empty one) when given,
    /// else on SQLite in the data directory.
    pub async fn start_on(
        tocsin: &Path,
        work_dir: Option<&Path>,
        database: Option<&str>,
        config: impl FnOnce(SocketAddr) -> String,
    ) -> anyhow::Result<Served> {
        let tocsin = std::fs::canonicalize(tocsin).with_context(|| {
            format!(
                "cannot find the tocsin binary at {}; build it with `cargo build --release --locked -p tocsin`",
                tocsin.display()
            )
        })?;
        let data = match work_dir {
            Some(parent) => tempfile::Builder::new()
                .prefix("tocsin-bench-")
                .tempdir_in(parent),
            None => tempfile::Builder::new().prefix("tocsin-bench-").tempdir(),
        }
        .context("cannot create a data directory")?;
        let address = free_port()?;
        let config_path = data.path().join("tocsin.toml");
        std::fs::write(&config_path, config(address))?;
        let log = std::fs::File::create(data.path().join("server.log"))?;
        let mut command = Command::new(&tocsin);
        if let Some(url) = database {
            command.env("TOCSIN_DATABASE", url);
        } else {
            command.env_remove("TOCSIN_DATABASE");
        }
        let child = command
            .arg("serve")
            .arg("--listen")
            .arg(address.to_string())
            .arg("--config")
            .arg(&config_path)
            .arg("--data")
            .arg(data.path().join("store"))
            .env_remove("TOCSIN_DATA")
            .env_remove("TOCSIN_CONFIG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", tocsin.display()))?;
        let mut served = Served {
            pid: child.id(),
            child,
            target: Target::from_address(address),
            data,
        };
        if let Err(error) = served.wait_ready().await {
            let log = served.log_tail();
            let _ = served.stop().await;
            return Err(error.context(format!("the server log ends with:\n{log}")));
        }
        Ok(served)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the server exited with {status} before it was ready");
            }
            if let Ok((status, _)) =
                client::get_once(&self.target, "/readyz", None, Duration::from_secs(5)).await
            {
                if status.is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the server was not ready within {READY_TIMEOUT:?}")
    }

    /// The store's directory.
    pub fn store_dir(&self) -> std::path::PathBuf {
        self.data.path().join("store")
    }

    /// The server's stdout and stderr.
    pub fn log_path(&self) -> std::path::PathBuf {
        self.data.path().join("server.log")
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, then SIGKILL if it takes too long; the data directory goes with `self`.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop_keeping_data().await.map(drop)
    }

    /// As [`Served::stop`], but hands back the data directory (it is removed when dropped), so
    /// the caller can still read the log.
    pub async fn stop_keeping_data(mut self) -> anyhow::Result<tempfile::TempDir> {
        if let (Some(pid), Ok(None)) = (self.pid, self.child.try_wait()) {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
                .await
                .is_err()
            {
                eprintln!("the server did not stop within {STOP_TIMEOUT:?}; killing it");
                self.child.kill().await?;
            }
        }
        Ok(self.data)
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?)
}

/// A process's resident memory now and at its peak (`VmRSS`, `VmHWM` of `/proc/<pid>/status`),
/// in bytes.
pub fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Bytes a process has caused to be written to storage (`write_bytes` of `/proc/<pid>/io`).
pub fn written_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes: "))?
        .trim()
        .parse()
        .ok()
}

/// utime + stime of a process (all its threads) in seconds, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every architecture Tocsin targets.
    Some((utime + stime) as f64 / 100.0)
}

/// The machine's load averages (`/proc/loadavg`), as printed.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "-".to_owned())
}
