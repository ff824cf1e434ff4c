//! `tocsin heartbeats`: heartbeat monitors and their pings, from a running server.

use std::process::ExitCode;

use clap::Subcommand;
use tocsin_web::heartbeats::{Heartbeat, HeartbeatPage, PingPage};

use super::client::{http_client, send, url, ApiArgs};
use super::out;

#[derive(Debug, Subcommand)]
pub(crate) enum HeartbeatCommand {
    /// List heartbeat monitors with their state, in config order.
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// How many (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// A heartbeat monitor's pings, newest first.
    Pings {
        /// The monitor's id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
        /// How many (1 to 500).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

pub(crate) async fn run(command: HeartbeatCommand) -> anyhow::Result<ExitCode> {
    match command {
        HeartbeatCommand::List { api, limit } => {
            let client = http_client(&api.server)?;
            let page: HeartbeatPage = send(
                client
                    .get(url(&api.server, "/api/v1/heartbeats"))
                    .bearer_auth(&api.token)
                    .query(&[("limit", limit.to_string())]),
                "list heartbeat monitors",
            )
            .await?;
            if api.json {
                out(serde_json::to_string_pretty(&page)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            out(format!(
                "{:<24} {:<8} {:<24} {:<26} LAST PING",
                "ID", "STATUS", "EXPECTED", "DEADLINE"
            ))?;
            for heartbeat in &page.items {
                out(line(heartbeat))?;
            }
            if page.next_cursor.is_some() {
                out("(more: raise --limit)")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        HeartbeatCommand::Pings { id, api, limit } => {
            let client = http_client(&api.server)?;
            let page: PingPage = send(
                client
                    .get(url(&api.server, &format!("/api/v1/heartbeats/{id}/pings")))
                    .bearer_auth(&api.token)
                    .query(&[("limit", limit.to_string())]),
                "list pings",
            )
            .await?;
            if api.json {
                out(serde_json::to_string_pretty(&page)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            out(format!(
                "{:<28} {:<8} {:<5} {:<10} {:<6} LOG",
                "AT", "KIND", "EXIT", "DURATION", "METHOD"
            ))?;
            for ping in &page.items {
                let log: String = ping
                    .body
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(60)
                    .collect();
                out(format!(
                    "{:<28} {:<8} {:<5} {:<10} {:<6} {}",
                    ping.at,
                    ping.kind,
                    ping.exit_code
                        .map(|code| code.to_string())
                        .unwrap_or_default(),
                    ping.duration_ms
                        .map(|ms| format!("{ms}ms"))
                        .unwrap_or_default(),
                    ping.method,
                    log
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn line(heartbeat: &Heartbeat) -> String {
    let expected = match &heartbeat.time_zone {
        Some(zone) => format!("{} {} ({zone})", heartbeat.schedule, heartbeat.expected),
        None => format!("{} {}", heartbeat.schedule, heartbeat.expected),
    };
    let last = heartbeat
        .last_ping
        .as_ref()
        .map(|ping| format!("{} {}", ping.kind, ping.at))
        .unwrap_or_else(|| "-".to_owned());
    let crash_loop = if heartbeat.crash_looping {
        " (crash-looping)"
    } else {
        ""
    };
    format!(
        "{:<24} {:<8} {:<24} {:<26} {}{}",
        heartbeat.id,
        heartbeat.status,
        expected,
        heartbeat.deadline.as_deref().unwrap_or("-"),
        last,
        crash_loop
    )
}
