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
    /// One heartbeat monitor with its state (and its pause, while it is paused).
    Show {
        /// The monitor's id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
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
        HeartbeatCommand::Show { id, api } => {
            let client = http_client(&api.server)?;
            let heartbeat: Heartbeat = send(
                client
                    .get(url(&api.server, &format!("/api/v1/heartbeats/{id}")))
                    .bearer_auth(&api.token),
                "show the heartbeat monitor",
            )
            .await?;
            if api.json {
                out(serde_json::to_string_pretty(&heartbeat)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            for text in details(&heartbeat) {
                out(text)?;
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

fn expected(heartbeat: &Heartbeat) -> String {
    match &heartbeat.time_zone {
        Some(zone) => format!("{} {} ({zone})", heartbeat.schedule, heartbeat.expected),
        None => format!("{} {}", heartbeat.schedule, heartbeat.expected),
    }
}

/// The lines of `tocsin heartbeats show`.
fn details(heartbeat: &Heartbeat) -> Vec<String> {
    let or_dash = |value: Option<&str>| value.unwrap_or("-").to_owned();
    let mut lines = vec![
        format!("{} (heartbeat)", heartbeat.id),
        format!("service:        {}", heartbeat.service),
        format!(
            "status:         {}{} since {}",
            heartbeat.status,
            if heartbeat.crash_looping {
                " (crash-looping)"
            } else {
                ""
            },
            or_dash(heartbeat.since.as_deref())
        ),
    ];
    if let Some(at) = &heartbeat.paused_at {
        lines.push(format!(
            "paused:         since {at} by {} (it was {} before; it does not go late while paused)",
            or_dash(heartbeat.paused_by.as_deref()),
            heartbeat.checked_status
        ));
    }
    lines.extend([
        format!(
            "expected:       {}, grace {} s{}",
            expected(heartbeat),
            heartbeat.grace_seconds,
            if heartbeat.post_only {
                ", POST only"
            } else {
                ""
            }
        ),
        format!("deadline:       {}", or_dash(heartbeat.deadline.as_deref())),
        format!(
            "last ping:      {}",
            heartbeat.last_ping.as_ref().map_or_else(
                || "-".to_owned(),
                |ping| match ping.exit_code {
                    Some(code) => format!("{} {} (exit code {code})", ping.kind, ping.at),
                    None => format!("{} {}", ping.kind, ping.at),
                }
            )
        ),
        format!(
            "last success:   {}",
            or_dash(heartbeat.last_success_at.as_deref())
        ),
        format!(
            "run started:    {}",
            or_dash(heartbeat.started_at.as_deref())
        ),
        format!(
            "starts without success: {}{}",
            heartbeat.starts_without_success,
            heartbeat
                .max_starts_without_success
                .map_or_else(String::new, |max| format!(" (crash loop after {max})"))
        ),
    ]);
    lines
}

fn line(heartbeat: &Heartbeat) -> String {
    let expected = expected(heartbeat);
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
