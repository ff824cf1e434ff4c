//! `tocsin-bench run`: starts the release `tocsin` binary on a fresh store for each scenario,
//! waits for `/readyz`, drives the load, stops the server, and prints a summary table, so one
//! command reproduces the figures of docs/BENCHMARKS.md.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::client::{self, Target};
use crate::load::{self, millis, LoadPlan, LoadReport, Payload, RequestKind};
use crate::storm::{self, StormPlan, StormReport};

pub const ROUTING_KEY: &str = "0123456789abcdef0123456789abcdef";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One measurement against a freshly started server.
#[derive(Debug, Clone, PartialEq)]
pub enum Scenario {
    /// As fast as the server answers, with this many clients.
    Closed { clients: usize, keys: Option<u64> },
    /// At a fixed rate in events/s, spread over this many clients.
    Open {
        rate: f64,
        clients: Option<usize>,
        keys: Option<u64>,
    },
    /// This many events on one dedup key, then read back.
    Storm { events: Option<u64> },
}

impl Scenario {
    /// Parses `closed:64`, `closed:64:keys=0`, `open:5000`, `open:5000:32`, `storm`,
    /// `storm:100000`.
    pub fn parse(text: &str) -> anyhow::Result<Scenario> {
        let mut parts = text.trim().split(':');
        let kind = parts.next().unwrap_or_default();
        let mut numbers = Vec::new();
        let mut keys = None;
        for part in parts {
            if let Some(value) = part.strip_prefix("keys=") {
                keys = Some(
                    value
                        .parse()
                        .with_context(|| format!("`{text}`: keys= takes a number"))?,
                );
            } else {
                numbers.push(
                    part.parse::<f64>()
                        .ok()
                        .filter(|number| *number > 0.0 && number.is_finite())
                        .with_context(|| format!("`{text}`: `{part}` is not a positive number"))?,
                );
            }
        }
        let scenario = match (kind, numbers.as_slice()) {
            ("closed", [clients]) => Scenario::Closed {
                clients: *clients as usize,
                keys,
            },
            ("open", [rate]) => Scenario::Open {
                rate: *rate,
                clients: None,
                keys,
            },
            ("open", [rate, clients]) => Scenario::Open {
                rate: *rate,
                clients: Some(*clients as usize),
                keys,
            },
            ("storm", []) if keys.is_none() => Scenario::Storm { events: None },
            ("storm", [events]) if keys.is_none() => Scenario::Storm {
                events: Some(*events as u64),
            },
            _ => anyhow::bail!(
                "`{text}`: expected closed:CLIENTS, open:RATE[:CLIENTS] (both with an optional \
                 :keys=N) or storm[:EVENTS]"
            ),
        };
        Ok(scenario)
    }

    pub fn parse_list(text: &str) -> anyhow::Result<Vec<Scenario>> {
        text.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(Scenario::parse)
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct RunSettings {
    pub tocsin: PathBuf,
    /// A PostgreSQL URL of a maintenance database (e.g. `.../postgres`); each scenario gets a
    /// database of its own next to it, dropped afterwards. Without it: SQLite.
    pub postgres: Option<String>,
    /// Parent of the scenarios' data directories.
    pub work_dir: Option<PathBuf>,
    pub scenarios: Vec<Scenario>,
    pub duration: Duration,
    pub warmup: Duration,
    pub keys: u64,
    pub open_clients: usize,
    pub storm_events: u64,
    pub storm_clients: usize,
    pub queue_capacity: usize,
    pub max_batch: usize,
    pub request_timeout: Duration,
    pub json: bool,
}

enum Outcome {
    Load(LoadReport),
    Storm(StormReport),
}

struct Row {
    label: String,
    outcome: Outcome,
}

pub async fn run(settings: RunSettings) -> anyhow::Result<bool> {
    let tocsin = std::fs::canonicalize(&settings.tocsin).with_context(|| {
        format!(
            "cannot find the tocsin binary at {}; build it with `cargo build --release --locked -p tocsin`",
            settings.tocsin.display()
        )
    })?;
    let backend = if settings.postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let mut rows = Vec::new();
    for (number, scenario) in settings.scenarios.iter().enumerate() {
        let label = label(scenario, &settings);
        eprintln!("== {backend} {label}");
        let server = Server::start(&tocsin, &settings, number).await?;
        let outcome = drive(scenario, &settings, &server).await;
        let stopped = server.stop().await;
        let outcome = outcome?;
        stopped?;
        if !settings.json {
            match &outcome {
                Outcome::Load(report) => report.print(backend),
                Outcome::Storm(report) => report.print(backend),
            }
            println!();
        }
        rows.push(Row { label, outcome });
    }
    let storms_confirmed = rows.iter().all(|row| match &row.outcome {
        Outcome::Storm(report) => report.confirmed(),
        Outcome::Load(_) => true,
    });
    if settings.json {
        let results: Vec<Value> = rows
            .iter()
            .map(|row| {
                let mut value = match &row.outcome {
                    Outcome::Load(report) => report.to_json(),
                    Outcome::Storm(report) => report.to_json(),
                };
                value["scenario"] = json!(row.label);
                value["backend"] = json!(backend);
                value
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "backend": backend,
                "queue_capacity": settings.queue_capacity,
                "max_batch": settings.max_batch,
                "results": results,
            }))?
        );
    } else {
        print_table(backend, &rows);
    }
    Ok(storms_confirmed)
}

fn label(scenario: &Scenario, settings: &RunSettings) -> String {
    let keys = |keys: Option<u64>| match keys {
        Some(keys) if keys != settings.keys => format!(", keys={keys}"),
        _ => String::new(),
    };
    match scenario {
        Scenario::Closed { clients, keys: k } => {
            format!("closed loop, {clients} clients{}", keys(*k))
        }
        Scenario::Open {
            rate,
            clients,
            keys: k,
        } => format!(
            "open loop {rate} events/s, {} clients{}",
            clients.unwrap_or(settings.open_clients),
            keys(*k)
        ),
        Scenario::Storm { events } => format!(
            "storm, {} events on one key",
            events.unwrap_or(settings.storm_events)
        ),
    }
}

async fn drive(
    scenario: &Scenario,
    settings: &RunSettings,
    server: &Server,
) -> anyhow::Result<Outcome> {
    let plan = |clients: usize, rate: f64, keys: Option<u64>| LoadPlan {
        target: server.target.clone(),
        clients,
        rate,
        warmup: settings.warmup,
        duration: Some(settings.duration),
        events: None,
        time_limit: settings.duration,
        request_timeout: settings.request_timeout,
        payload: Payload {
            kind: RequestKind::Enqueue,
            routing_key: ROUTING_KEY.to_owned(),
            keys: keys.unwrap_or(settings.keys),
            key_prefix: "bench".to_owned(),
        },
        server_pid: server.pid,
        progress: false,
    };
    Ok(match scenario {
        Scenario::Closed { clients, keys } => {
            Outcome::Load(load::run(plan(*clients, 0.0, *keys)).await?)
        }
        Scenario::Open {
            rate,
            clients,
            keys,
        } => Outcome::Load(
            load::run(plan(clients.unwrap_or(settings.open_clients), *rate, *keys)).await?,
        ),
        Scenario::Storm { events } => {
            let token = server
                .token
                .clone()
                .context("the server was started without an API token")?;
            Outcome::Storm(
                storm::run(StormPlan {
                    target: server.target.clone(),
                    token,
                    routing_key: ROUTING_KEY.to_owned(),
                    events: events.unwrap_or(settings.storm_events),
                    clients: settings.storm_clients,
                    time_limit: Duration::from_secs(3600),
                    request_timeout: settings.request_timeout,
                    server_pid: server.pid,
                })
                .await?,
            )
        }
    })
}

fn print_table(backend: &str, rows: &[Row]) {
    println!(
        "| store | scenario | sent | accepted | 429 | errors | accepted/s | p50 ms | p90 ms | p99 ms | max ms | server cores | bench cores | events/commit |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let (report, label) = match &row.outcome {
            Outcome::Load(report) => (report, row.label.clone()),
            Outcome::Storm(storm) => (
                &storm.load,
                format!(
                    "{} ({:.1} s; {} incident, {} alert, count {}: {})",
                    row.label,
                    storm.elapsed.as_secs_f64(),
                    storm.incidents,
                    storm.alerts,
                    storm
                        .alert_count
                        .map_or_else(|| "-".to_owned(), |count| count.to_string()),
                    if storm.confirmed() {
                        "confirmed"
                    } else {
                        "NOT confirmed"
                    }
                ),
            ),
        };
        let cpu = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        println!(
            "| {backend} | {label} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
            report.sent,
            report.accepted,
            report.throttled,
            report.errors(),
            report.accepted_per_second(),
            millis(report.latency.percentile(50.0)),
            millis(report.latency.percentile(90.0)),
            millis(report.latency.percentile(99.0)),
            millis(report.latency.max()),
            cpu(report.cpu.and_then(|cpu| cpu.server)),
            cpu(report.cpu.and_then(|cpu| cpu.bench)),
            report
                .commits
                .map_or_else(|| "-".to_owned(), |c| format!("{:.1}", c.events_per_commit())),
        );
    }
}

/// A `tocsin serve` child process on a fresh store.
struct Server {
    child: Child,
    pid: Option<u32>,
    target: Target,
    token: Option<String>,
    data: tempfile::TempDir,
    database: Option<Database>,
}

impl Server {
    async fn start(tocsin: &Path, settings: &RunSettings, number: usize) -> anyhow::Result<Server> {
        let data = match &settings.work_dir {
            Some(parent) => tempfile::Builder::new()
                .prefix("tocsin-bench-")
                .tempdir_in(parent),
            None => tempfile::Builder::new().prefix("tocsin-bench-").tempdir(),
        }
        .context("cannot create a data directory")?;
        let database = match &settings.postgres {
            Some(admin) => Some(Database::create(admin, number).await?),
            None => None,
        };
        let address = free_port()?;
        let needs_token = settings
            .scenarios
            .get(number)
            .is_some_and(|scenario| matches!(scenario, Scenario::Storm { .. }));
        let launched = launch(
            tocsin,
            settings,
            data.path(),
            database.as_ref(),
            address,
            needs_token,
        )
        .await;
        let (child, token) = match launched {
            Ok(launched) => launched,
            Err(error) => {
                if let Some(database) = database {
                    let _ = database.drop_database().await;
                }
                return Err(error);
            }
        };
        let mut server = Server {
            pid: child.id(),
            child,
            target: Target::from_address(address),
            token,
            data,
            database,
        };
        if let Err(error) = server.wait_ready().await {
            let log = server.log_tail();
            let _ = server.stop().await;
            return Err(error.context(format!("the server log ends with:\n{log}")));
        }
        Ok(server)
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

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM (a graceful shutdown drains the ingest queue), then SIGKILL if it takes too long;
    /// then the data directory and the database go.
    async fn stop(mut self) -> anyhow::Result<()> {
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
        if let Some(database) = self.database.take() {
            database.drop_database().await?;
        }
        Ok(())
    }
}

/// Writes the config, creates the API token if asked, and starts `tocsin serve`.
async fn launch(
    tocsin: &Path,
    settings: &RunSettings,
    data: &Path,
    database: Option<&Database>,
    address: SocketAddr,
    needs_token: bool,
) -> anyhow::Result<(Child, Option<String>)> {
    let config = data.join("tocsin.toml");
    std::fs::write(&config, config_file(address, settings))?;
    let store_args = |command: &mut Command| {
        command
            .arg("--config")
            .arg(&config)
            .arg("--data")
            .arg(data.join("store"))
            .env_remove("TOCSIN_DATABASE")
            .env_remove("TOCSIN_DATA")
            .env_remove("TOCSIN_CONFIG");
        if let Some(database) = database {
            command.arg("--database").arg(&database.url);
        }
    };

    let token = if needs_token {
        let mut command = Command::new(tocsin);
        command.args(["token", "create", "--name", "bench", "--scope", "read"]);
        store_args(&mut command);
        let output = tokio::time::timeout(COMMAND_TIMEOUT, command.kill_on_drop(true).output())
            .await
            .context("`tocsin token create` did not finish")??;
        if !output.status.success() {
            anyhow::bail!(
                "`tocsin token create` failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Some(String::from_utf8(output.stdout)?.trim().to_owned())
    } else {
        None
    };

    let log = std::fs::File::create(data.join("server.log"))?;
    let mut command = Command::new(tocsin);
    command
        .arg("serve")
        .arg("--listen")
        .arg(address.to_string());
    store_args(&mut command);
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", tocsin.display()))?;
    Ok((child, token))
}

/// The smallest config that serves the load: one service with the benchmark's integration key.
fn config_file(address: SocketAddr, settings: &RunSettings) -> String {
    let RunSettings {
        queue_capacity,
        max_batch,
        ..
    } = settings;
    format!(
        r#"[server]
listen = "{address}"

[ingest]
queue_capacity = {queue_capacity}
max_batch = {max_batch}

[[services]]
id = "bench"
name = "Bench"
integration_keys = ["{ROUTING_KEY}"]
"#
    )
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?)
}

/// A PostgreSQL database of one scenario, created and dropped with the PostgreSQL client tools.
pub(crate) struct Database {
    admin: String,
    name: String,
    pub(crate) url: String,
}

impl Database {
    pub(crate) async fn create(admin: &str, number: usize) -> anyhow::Result<Database> {
        let name = format!("tocsin_bench_{}_{number}", std::process::id());
        let database = Database {
            admin: admin.to_owned(),
            url: database_url(admin, &name)?,
            name,
        };
        database.tool("dropdb", &["--if-exists"]).await?;
        database.tool("createdb", &[]).await?;
        Ok(database)
    }

    pub(crate) async fn drop_database(self) -> anyhow::Result<()> {
        self.tool("dropdb", &["--if-exists"]).await
    }

    async fn tool(&self, program: &str, options: &[&str]) -> anyhow::Result<()> {
        let mut command = Command::new(program);
        command
            .arg(format!("--maintenance-db={}", self.admin))
            .args(options)
            .arg(&self.name)
            .kill_on_drop(true);
        let output = tokio::time::timeout(COMMAND_TIMEOUT, command.output())
            .await
            .with_context(|| format!("`{program}` did not finish"))?
            .with_context(|| {
                format!("cannot run `{program}` (install the PostgreSQL client tools)")
            })?;
        if !output.status.success() {
            anyhow::bail!(
                "`{program} {}` failed: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }
}

/// `postgres://user@host:5432/postgres?x=y` with its database replaced by `name`.
fn database_url(admin: &str, name: &str) -> anyhow::Result<String> {
    let (scheme, rest) = admin
        .split_once("://")
        .context("--postgres must be a postgres:// URL")?;
    anyhow::ensure!(
        scheme == "postgres" || scheme == "postgresql",
        "--postgres must be a postgres:// URL"
    );
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let authority = location
        .split_once('/')
        .map_or(location, |(authority, _)| authority);
    let mut url = format!("{scheme}://{authority}/{name}");
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_parse() {
        assert_eq!(
            Scenario::parse_list("closed:16, open:5000,open:5000:32:keys=0,storm,storm:1000")
                .unwrap(),
            vec![
                Scenario::Closed {
                    clients: 16,
                    keys: None
                },
                Scenario::Open {
                    rate: 5000.0,
                    clients: None,
                    keys: None
                },
                Scenario::Open {
                    rate: 5000.0,
                    clients: Some(32),
                    keys: Some(0)
                },
                Scenario::Storm { events: None },
                Scenario::Storm { events: Some(1000) },
            ]
        );
        assert!(Scenario::parse("closed").is_err());
        assert!(Scenario::parse("closed:-1").is_err());
        assert!(Scenario::parse("burst:3").is_err());
        assert!(Scenario::parse("storm:10:keys=3").is_err());
    }

    #[test]
    fn database_urls_keep_credentials_and_options() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "b").unwrap(),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            database_url("postgresql://u:p@localhost?sslmode=disable", "b").unwrap(),
            "postgresql://u:p@localhost/b?sslmode=disable"
        );
        assert!(database_url("mysql://localhost/x", "b").is_err());
    }
}
