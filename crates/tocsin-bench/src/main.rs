use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tocsin_bench::client::Target;
use tocsin_bench::load::{self, LoadPlan, Payload, RequestKind};
use tocsin_bench::monitors::{self, MonitorsPlan};
use tocsin_bench::paging::{
    self, Common, DispatchPlan, EscalationsPlan, LatencyPlan, PagingReport,
};
use tocsin_bench::parse_duration;
use tocsin_bench::pings::{self, PingsPlan};
use tocsin_bench::runner::{self, RunSettings, Scenario, ROUTING_KEY};
use tocsin_bench::storage::{self, StoragePlan};
use tocsin_bench::storm::{self, StormPlan};

/// Load generators for Tocsin's ingestion path (PagerDuty Events API v2 on /v2/enqueue), its
/// monitors and its paging.
#[derive(Debug, Parser)]
#[command(name = "tocsin-bench", version)]
struct Cli {
    /// Worker threads of the load generator (default: one per CPU).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive /v2/enqueue of a running server and report events/s and latency.
    Enqueue(EnqueueArgs),
    /// Send many events on one dedup key, then confirm through /api/v1 that they folded into
    /// one alert and one incident.
    Storm(StormArgs),
    /// Start the release `tocsin` binary on a fresh store for each scenario and run them all
    /// (the figures of docs/BENCHMARKS.md).
    Run(RunArgs),
    /// Write days of monitor results into a fresh SQLite store with rollups and retention
    /// applied, and report the bytes they take per monitor.
    Storage(StorageArgs),
    /// Run the release `tocsin` with many HTTP monitors against a local target and report check
    /// start lag, CPU and memory.
    Monitors(MonitorsArgs),
    /// Run the release `tocsin` with many heartbeat monitors and drive `/ping/<key>`: pings
    /// accepted durably per second, and CPU per ping.
    Pings(PingsArgs),
    /// Run the release `tocsin` against a local SMTP sink and webhook receiver in this process
    /// and measure pages: trigger to mail, outbox dispatch rate, escalation timing.
    #[command(subcommand)]
    Paging(PagingCommand),
}

#[derive(Debug, Subcommand)]
enum PagingCommand {
    /// From the 202 of a trigger to the mail accepted by the SMTP sink: incidents open on a
    /// jittered schedule, each paging one user by email (level 1 of its service's policy).
    Latency(LatencyArgs),
    /// Webhook notifications sent per second: incidents open as fast as the server takes them,
    /// each queuing one incident update per webhook channel of its service.
    Dispatch(DispatchArgs),
    /// Many escalations in flight: level 1 at once, level 2 after a wait; how late each
    /// level's webhook arrives.
    Escalations(EscalationsArgs),
}

#[derive(Debug, Args)]
struct PagingCommon {
    /// The tocsin binary (`cargo build --release --locked -p tocsin`).
    #[arg(long, default_value = "target/release/tocsin")]
    tocsin: PathBuf,
    /// Where the data directory goes (default: the system's temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// How long to wait for the last messages once they are due.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    wait: Duration,
    /// Copy the server's log here when the run ends.
    #[arg(long)]
    keep_log: Option<PathBuf>,
    /// Use PostgreSQL: the URL of a maintenance database (e.g.
    /// postgres://postgres@127.0.0.1:5432/postgres). The run gets a fresh database next to it,
    /// created with `createdb` and dropped with `dropdb`. Without it: SQLite.
    #[arg(long)]
    postgres: Option<String>,
    #[arg(long)]
    json: bool,
}

impl PagingCommon {
    fn common(&self) -> Common {
        Common {
            tocsin: self.tocsin.clone(),
            work_dir: self.work_dir.clone(),
            wait: self.wait,
            keep_log: self.keep_log.clone(),
            postgres: self.postgres.clone(),
        }
    }
}

#[derive(Debug, Args)]
struct LatencyArgs {
    #[command(flatten)]
    common: PagingCommon,
    /// Incidents (triggers with distinct dedup keys).
    #[arg(long, default_value_t = 100)]
    incidents: usize,
    /// The time the triggers are spread over.
    #[arg(long, default_value = "100s", value_parser = parse_duration)]
    over: Duration,
    /// Services, each with its own policy and user; incident n goes to service n % services.
    #[arg(long, default_value_t = 1)]
    services: usize,
    /// Connections the triggers are sent over.
    #[arg(long, default_value_t = 8)]
    connections: usize,
}

#[derive(Debug, Args)]
struct DispatchArgs {
    #[command(flatten)]
    common: PagingCommon,
    #[arg(long, default_value_t = 10_000)]
    incidents: usize,
    /// Webhook channels of every service: notifications per incident.
    #[arg(long, default_value_t = 2)]
    channels: usize,
    #[arg(long, default_value_t = 1)]
    services: usize,
    /// Concurrent trigger clients (closed loop).
    #[arg(long, default_value_t = 32)]
    clients: usize,
}

#[derive(Debug, Args)]
struct EscalationsArgs {
    #[command(flatten)]
    common: PagingCommon,
    #[arg(long, default_value_t = 10_000)]
    incidents: usize,
    /// The time the triggers are spread over.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    over: Duration,
    /// Services, each with its own policy and two users (default: one per incident, so that
    /// every page goes to a person nobody else pages and no step is folded into another's
    /// bundle); incident n goes to service n % services.
    #[arg(long)]
    services: Option<usize>,
    /// Minutes from level 1 to level 2.
    #[arg(long, default_value_t = 1)]
    escalate_after: u32,
    #[arg(long, default_value_t = 16)]
    connections: usize,
}

#[derive(Debug, Args)]
struct MonitorsArgs {
    /// The tocsin binary (`cargo build --release --locked -p tocsin`).
    #[arg(long, default_value = "target/release/tocsin")]
    tocsin: PathBuf,
    /// HTTP monitors.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// Each monitor's check interval.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    interval: Duration,
    /// Measured time after the warm-up.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    duration: Duration,
    /// Time before measuring (default: one interval and 10 s).
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Loopback addresses the monitors are spread over (127.0.0.1, 127.0.0.2, ...).
    #[arg(long, default_value_t = 1)]
    hosts: usize,
    /// Where the data directory goes (default: the system's temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct PingsArgs {
    /// The tocsin binary (`cargo build --release --locked -p tocsin`).
    #[arg(long, default_value = "target/release/tocsin")]
    tocsin: PathBuf,
    /// Heartbeat monitors (ping keys) the pings cycle over.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Concurrent clients, each with one keep-alive connection and one request in flight.
    #[arg(long, default_value_t = 256)]
    clients: usize,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// `[ingest] queue_capacity` of the server's config.
    #[arg(long, default_value_t = 20_000)]
    queue_capacity: usize,
    /// `[ingest] max_batch` of the server's config.
    #[arg(long, default_value_t = 2048)]
    max_batch: usize,
    #[arg(long)]
    work_dir: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct StorageArgs {
    /// Monitors whose results are written.
    #[arg(long, default_value_t = 20)]
    monitors: usize,
    /// Days of history.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// One check per monitor per interval.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    interval: Duration,
    /// Where the data directory goes (default: the system's temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct EnqueueArgs {
    /// Base URL of the server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    url: String,
    /// Concurrent clients, each with one keep-alive connection and one request in flight.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// How long to measure after the warm-up (default 10s unless --events is given).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many events (after the warm-up).
    #[arg(long)]
    events: Option<u64>,
    /// Target events/s over all clients (open loop); 0 sends as fast as the server answers.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Distinct dedup keys to cycle over; 0 sends none, so each trigger opens an incident.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Dedup keys are `<prefix>-<n>`.
    #[arg(long, default_value = "bench")]
    key_prefix: String,
    /// Load sent before measuring starts.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Integration key of the service to send to.
    #[arg(long, default_value = ROUTING_KEY)]
    routing_key: String,
    /// Give up on a request after this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// Hard limit on the measured time with --events.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    time_limit: Duration,
    /// The server's process id, to report its CPU use.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct StormArgs {
    /// Base URL of the server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    url: String,
    /// An API token with the read scope (`tocsin token create --name bench --scope read`).
    #[arg(long, env = "TOCSIN_BENCH_TOKEN", hide_env_values = true)]
    token: String,
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[arg(long, default_value = ROUTING_KEY)]
    routing_key: String,
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// Hard limit on the time spent sending.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    time_limit: Duration,
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The tocsin binary (`cargo build --release --locked -p tocsin`).
    #[arg(long, default_value = "target/release/tocsin")]
    tocsin: PathBuf,
    /// Use PostgreSQL: the URL of a maintenance database (e.g.
    /// postgres://postgres@127.0.0.1:5432/postgres). Each scenario gets a fresh database next
    /// to it, created with `createdb` and dropped with `dropdb`. Without it: SQLite.
    #[arg(long)]
    postgres: Option<String>,
    /// Where the scenarios' data directories go (default: the system's temporary directory).
    /// It must be on the disk being measured, not a tmpfs.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Comma-separated: closed:CLIENTS, open:RATE[:CLIENTS], either with :keys=N, and
    /// storm[:EVENTS].
    #[arg(
        long,
        default_value = "closed:16,closed:64,closed:128,closed:256,closed:512,closed:256:keys=100,closed:256:keys=1,closed:512:keys=1,closed:64:keys=0,open:5000,storm"
    )]
    scenarios: String,
    /// Measured time of each closed- and open-loop scenario.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load sent before measuring starts, in each closed- and open-loop scenario.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Distinct dedup keys, unless a scenario says otherwise.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Clients of open-loop scenarios that do not name a count.
    #[arg(long, default_value_t = 64)]
    open_clients: usize,
    /// Events of a storm scenario that does not name a count.
    #[arg(long, default_value_t = 1_000_000)]
    storm_events: u64,
    #[arg(long, default_value_t = 64)]
    storm_clients: usize,
    /// `[ingest] queue_capacity` of the server's config.
    #[arg(long, default_value_t = 20_000)]
    queue_capacity: usize,
    /// `[ingest] max_batch` of the server's config.
    #[arg(long, default_value_t = 2048)]
    max_batch: usize,
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    request_timeout: Duration,
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = cli.threads {
        runtime.worker_threads(threads.max(1));
    }
    let result = runtime
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli.command)));
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Enqueue(args) => {
            let duration = match (args.duration, args.events) {
                (None, None) => Some(Duration::from_secs(10)),
                (duration, _) => duration,
            };
            let report = load::run(LoadPlan {
                target: Target::parse(&args.url)?,
                clients: args.clients,
                rate: args.rate,
                warmup: args.warmup,
                duration,
                events: args.events,
                time_limit: args.time_limit,
                request_timeout: args.request_timeout,
                payload: Payload {
                    kind: RequestKind::Enqueue,
                    routing_key: args.routing_key,
                    keys: args.keys,
                    key_prefix: args.key_prefix,
                },
                server_pid: args.server_pid,
                progress: !args.json,
            })
            .await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report.to_json())?);
            } else {
                report.print("enqueue");
            }
            // A run in which the server accepted nothing measured nothing.
            Ok(if report.accepted > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Storm(args) => {
            let report = storm::run(StormPlan {
                target: Target::parse(&args.url)?,
                token: args.token,
                routing_key: args.routing_key,
                events: args.events,
                clients: args.clients,
                time_limit: args.time_limit,
                request_timeout: args.request_timeout,
                server_pid: args.server_pid,
            })
            .await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report.to_json())?);
            } else {
                report.print("storm");
            }
            Ok(if report.confirmed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Monitors(args) => {
            let report = monitors::run(MonitorsPlan {
                tocsin: args.tocsin,
                count: args.count,
                interval: args.interval,
                duration: args.duration,
                warmup: args.warmup,
                hosts: args.hosts,
                work_dir: args.work_dir,
            })
            .await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report.to_json())?);
            } else {
                report.print();
            }
            Ok(if report.target_requests > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Pings(args) => {
            let report = pings::run(PingsPlan {
                tocsin: args.tocsin,
                keys: args.keys,
                clients: args.clients,
                duration: args.duration,
                warmup: args.warmup,
                queue_capacity: args.queue_capacity,
                max_batch: args.max_batch,
                work_dir: args.work_dir,
            })
            .await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report.to_json())?);
            } else {
                report.print();
            }
            Ok(if report.load.accepted > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Paging(command) => paging_command(command).await,
        Command::Storage(args) => {
            let report = storage::run(StoragePlan {
                monitors: args.monitors,
                days: args.days,
                interval: args.interval,
                work_dir: args.work_dir,
            })
            .await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report.to_json())?);
            } else {
                report.print();
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let confirmed = runner::run(RunSettings {
                tocsin: args.tocsin,
                postgres: args.postgres,
                work_dir: args.work_dir,
                scenarios: Scenario::parse_list(&args.scenarios)?,
                duration: args.duration,
                warmup: args.warmup,
                keys: args.keys,
                open_clients: args.open_clients,
                storm_events: args.storm_events,
                storm_clients: args.storm_clients,
                queue_capacity: args.queue_capacity,
                max_batch: args.max_batch,
                request_timeout: args.request_timeout,
                json: args.json,
            })
            .await?;
            Ok(if confirmed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

async fn paging_command(command: PagingCommand) -> anyhow::Result<ExitCode> {
    let (json, report): (bool, Box<dyn PagingReport>) = match command {
        PagingCommand::Latency(args) => (
            args.common.json,
            Box::new(
                paging::latency(LatencyPlan {
                    common: args.common.common(),
                    incidents: args.incidents,
                    over: args.over,
                    services: args.services,
                    connections: args.connections,
                })
                .await?,
            ),
        ),
        PagingCommand::Dispatch(args) => (
            args.common.json,
            Box::new(
                paging::dispatch(DispatchPlan {
                    common: args.common.common(),
                    incidents: args.incidents,
                    channels: args.channels,
                    services: args.services,
                    clients: args.clients,
                })
                .await?,
            ),
        ),
        PagingCommand::Escalations(args) => (
            args.common.json,
            Box::new(
                paging::escalations(EscalationsPlan {
                    common: args.common.common(),
                    incidents: args.incidents,
                    over: args.over,
                    services: args.services.unwrap_or(args.incidents),
                    escalate_after_minutes: args.escalate_after,
                    connections: args.connections,
                })
                .await?,
            ),
        ),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        report.print();
    }
    Ok(if report.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
