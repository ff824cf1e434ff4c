//! `tocsin monitors`: the probed monitors of a running server and their state.

use std::process::ExitCode;

use clap::Subcommand;
use tocsin_web::monitors::{CheckResultBody, MonitorPage, MonitorStatus, PauseOutcome, ResultPage};

use super::client::{http_client, or_dash, send, url, ApiArgs};
use super::out;

#[derive(Debug, Subcommand)]
pub(crate) enum MonitorCommand {
    /// List monitors (http, tcp, dns, tls) with their state, in id order.
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// How many (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue after this monitor id (the `next_cursor` of a previous page).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one monitor: its state, last results and next check.
    Show {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Pause a monitor (probed or heartbeat): it is not checked until it is resumed; its open
    /// alert, if any, stays open.
    Pause {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Resume a paused monitor: its checks go on from the state it had.
    Resume {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A monitor's check results in a time range, oldest first.
    Results {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
        /// The earliest check time, RFC 3339 (default: 24 hours before `--to`).
        #[arg(long)]
        from: Option<String>,
        /// The end of the range (exclusive), RFC 3339 (default: now).
        #[arg(long)]
        to: Option<String>,
        /// How many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Continue after this cursor (the `next_cursor` of a previous page).
        #[arg(long)]
        cursor: Option<String>,
    },
}

fn result_text(result: Option<&CheckResultBody>) -> String {
    match result {
        None => "-".to_owned(),
        Some(result) => {
            let mut text = format!(
                "{} at {}, {} ms",
                result.status, result.at, result.latency_ms
            );
            if let Some(code) = result.http_status {
                text.push_str(&format!(", HTTP {code}"));
            }
            if let Some(error) = &result.error {
                text.push_str(&format!(": {error}"));
            }
            text
        }
    }
}

fn line(monitor: &MonitorStatus) -> String {
    let status = if monitor.flapping {
        format!("{} (flapping)", monitor.status)
    } else {
        monitor.status.clone()
    };
    format!(
        "{:<24} {:<20} {:<20} {}",
        monitor.id, status, monitor.service, monitor.target
    )
}

pub(crate) async fn run(command: MonitorCommand) -> anyhow::Result<ExitCode> {
    match command {
        MonitorCommand::List { api, limit, cursor } => {
            let client = http_client(&api.server)?;
            let mut query = vec![("limit", limit.to_string())];
            if let Some(cursor) = cursor {
                query.push(("cursor", cursor));
            }
            let page: MonitorPage = send(
                client
                    .get(url(&api.server, "/api/v1/monitors"))
                    .bearer_auth(&api.token)
                    .query(&query),
                "list monitors",
            )
            .await?;
            if api.json {
                out(serde_json::to_string_pretty(&page)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            out(format!(
                "{:<24} {:<20} {:<20} TARGET",
                "ID", "STATUS", "SERVICE"
            ))?;
            for monitor in &page.items {
                out(line(monitor))?;
            }
            if let Some(next) = &page.next_cursor {
                out(format!("(more: --cursor {next})"))?;
            }
        }
        MonitorCommand::Show { id, api } => {
            let client = http_client(&api.server)?;
            let path = format!("/api/v1/monitors/{id}");
            let monitor: MonitorStatus = send(
                client.get(url(&api.server, &path)).bearer_auth(&api.token),
                "show the monitor",
            )
            .await?;
            if api.json {
                out(serde_json::to_string_pretty(&monitor)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            out(format!(
                "{} ({}) — {}",
                monitor.id, monitor.kind, monitor.target
            ))?;
            out(format!("service:       {}", monitor.service))?;
            out(format!(
                "status:        {}{} since {}",
                monitor.status,
                if monitor.flapping { " (flapping)" } else { "" },
                or_dash(monitor.status_since.as_deref())
            ))?;
            if let Some(at) = &monitor.paused_at {
                out(format!(
                    "paused:        since {at} by {} (checks found it {} before)",
                    or_dash(monitor.paused_by.as_deref()),
                    monitor.checked_status
                ))?;
            }
            out(format!(
                "failing since: {}",
                or_dash(monitor.failing_since.as_deref())
            ))?;
            let alert = match &monitor.parent {
                Some(parent) => format!("recorded on the incident of {parent}"),
                None => monitor.alert.clone(),
            };
            out(format!("alert:         {alert}"))?;
            if !monitor.depends_on.is_empty() {
                out(format!("depends on:    {}", monitor.depends_on.join(", ")))?;
            }
            out(format!(
                "last result:   {}",
                result_text(monitor.last_result.as_ref())
            ))?;
            out(format!(
                "last good:     {}",
                result_text(monitor.last_good.as_ref())
            ))?;
            out(format!(
                "last failure:  {}",
                result_text(monitor.last_failure.as_ref())
            ))?;
            for (label, uptime) in [
                ("uptime 24h:", &monitor.uptime_24h),
                ("uptime 30d:", &monitor.uptime_30d),
            ] {
                let text = match uptime {
                    Some(uptime) => format!(
                        "{:.3}% of {} checks ({} degraded, {} down), p50/p95/p99 {}/{}/{} ms",
                        uptime.percent,
                        uptime.checks,
                        uptime.degraded,
                        uptime.down,
                        uptime.p50_ms,
                        uptime.p95_ms,
                        uptime.p99_ms
                    ),
                    None => "- (not rolled up yet)".to_owned(),
                };
                out(format!("{label:<15}{text}"))?;
            }
            out(format!(
                "next check:    {} (every {} s)",
                or_dash(monitor.next_check_at.as_deref()),
                monitor.interval_seconds
            ))?;
        }
        MonitorCommand::Results {
            id,
            api,
            from,
            to,
            limit,
            cursor,
        } => {
            let client = http_client(&api.server)?;
            let mut query = vec![("limit", limit.to_string())];
            for (name, value) in [("from", from), ("to", to), ("cursor", cursor)] {
                if let Some(value) = value {
                    query.push((name, value));
                }
            }
            let page: ResultPage = send(
                client
                    .get(url(&api.server, &format!("/api/v1/monitors/{id}/results")))
                    .bearer_auth(&api.token)
                    .query(&query),
                "read the results",
            )
            .await?;
            if api.json {
                out(serde_json::to_string_pretty(&page)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            out(format!(
                "{:<28} {:<9} {:>8} {:<5} ERROR",
                "AT", "STATUS", "LATENCY", "HTTP"
            ))?;
            for result in &page.items {
                out(format!(
                    "{:<28} {:<9} {:>6}ms {:<5} {}",
                    result.at,
                    result.status,
                    result.latency_ms,
                    result
                        .http_status
                        .map(|code| code.to_string())
                        .unwrap_or_default(),
                    result.error.as_deref().unwrap_or("")
                ))?;
            }
            if let Some(next) = &page.next_cursor {
                out(format!("(more: --cursor {next})"))?;
            }
        }
        MonitorCommand::Pause { id, api } => pause_or_resume(&id, &api, "pause").await?,
        MonitorCommand::Resume { id, api } => pause_or_resume(&id, &api, "resume").await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn pause_or_resume(id: &str, api: &ApiArgs, verb: &str) -> anyhow::Result<()> {
    let client = http_client(&api.server)?;
    let path = format!("/api/v1/monitors/{id}/{verb}");
    let outcome: PauseOutcome = send(
        client.post(url(&api.server, &path)).bearer_auth(&api.token),
        &format!("{verb} the monitor"),
    )
    .await?;
    if api.json {
        return out(serde_json::to_string_pretty(&outcome)?);
    }
    let text = match (outcome.paused, outcome.changed) {
        (true, true) => format!(
            "{} paused: it is not checked until `tocsin monitors resume {}`; an open alert stays open",
            outcome.id, outcome.id
        ),
        (true, false) => format!(
            "{} was paused already (since {} by {})",
            outcome.id,
            or_dash(outcome.paused_at.as_deref()),
            or_dash(outcome.paused_by.as_deref())
        ),
        (false, true) => format!("{} resumed: its checks go on", outcome.id),
        (false, false) => format!("{} was not paused", outcome.id),
    };
    out(text)
}
