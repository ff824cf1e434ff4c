mod alerts;
mod client;
mod config;
mod heartbeats;
mod links;
mod monitors;
mod oncall;
mod page;
mod render;
mod serve;
mod status;
mod token;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Tocsin: alerts in, incidents out. Self-hosted incident response in one binary: ingestion,
/// incidents and their timelines, paging by escalation policy (console, webhook, ntfy, Slack,
/// email), incident updates to each service's channels, who is on call, monitors (http, tcp,
/// dns, tls and heartbeats) and rules today; the status page (and Discord and Teams channels)
/// are configured and validated but not acted on yet.
#[derive(Debug, Parser)]
#[command(name = "tocsin", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Run a ready-made demo (its own config, demo data, a temporary directory) and print the
    /// URLs to try.
    Demo(serve::DemoArgs),
    /// Validate or print configuration files, or make a running server reload its own.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Send an event to a running server (PagerDuty Events API v2).
    #[command(subcommand)]
    Event(client::EventCommand),
    /// List, show and act on incidents of a running server.
    #[command(subcommand, alias = "incident")]
    Incidents(client::IncidentCommand),
    /// List and show alerts (events folded by dedup key) of a running server.
    #[command(subcommand, alias = "alert")]
    Alerts(alerts::AlertCommand),
    /// List the services of a running server and their change events.
    #[command(subcommand, alias = "service")]
    Services(alerts::ServiceCommand),
    /// Who is on call now or at a time, and the gaps of the schedules.
    Oncall(oncall::OncallArgs),
    /// Create, list and delete overrides of on-call schedules.
    #[command(subcommand)]
    Override(oncall::OverrideCommand),
    /// Send test pages through a running server and see what each contact method did.
    #[command(subcommand)]
    Page(page::PageCommand),
    /// List heartbeat monitors with their state, and their pings, on a running server.
    #[command(subcommand, alias = "heartbeat")]
    Heartbeats(heartbeats::HeartbeatCommand),
    /// List and show the monitors of a running server with their state.
    #[command(subcommand, alias = "monitor")]
    Monitors(monitors::MonitorCommand),
    /// What the public status page says: post incident updates, schedule maintenance,
    /// override component statuses.
    #[command(subcommand)]
    Status(status::StatusCommand),
    /// Create, list and revoke API tokens (works on the database directly).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Manage the key of signed acknowledge and resolve links (works on the database directly).
    #[command(subcommand)]
    Links(links::LinksCommand),
}

/// Where the database is, for commands that open it directly.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// Config file (read for `server.database`).
    #[arg(long, short = 'c', env = "TOCSIN_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory of the embedded SQLite store: the server's `--data`.
    #[arg(long, env = "TOCSIN_DATA", default_value = "./tocsin-data")]
    data: PathBuf,
    /// Create the data directory (and an empty database) when it does not exist yet.
    #[arg(long)]
    create: bool,
    /// PostgreSQL URL (postgres://...); overrides `server.database`.
    #[arg(long, env = "TOCSIN_DATABASE", hide_env_values = true)]
    database: Option<String>,
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Demo(args) => serve::demo(args).await,
        Command::Config(command) => config::run(command).await,
        Command::Event(command) => client::event(command).await,
        Command::Incidents(command) => client::incidents(command).await,
        Command::Alerts(command) => alerts::alerts(command).await,
        Command::Services(command) => alerts::services(command).await,
        Command::Heartbeats(command) => heartbeats::run(command).await,
        Command::Monitors(command) => monitors::run(command).await,
        Command::Status(command) => status::run(command).await,
        Command::Token(command) => token::run(command).await,
        Command::Oncall(args) => oncall::oncall(args).await,
        Command::Override(command) => oncall::overrides(command).await,
        Command::Page(command) => page::run(command).await,
        Command::Links(command) => links::run(command).await,
    }
}

/// Writes to stdout; a closed pipe (`tocsin incidents list | head`) ends the command quietly.
pub(crate) fn out(text: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    Ok(())
}

pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
