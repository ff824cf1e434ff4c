//! `tocsin alerts` and `tocsin services`: read-only views of a running server's alerts and
//! services over `/api/v1`.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;
use tocsin_web::api::{Alert, AlertItem, AlertPage, ChangePage, EventPage, ServicePage};

use super::client::{all_pages, http_client, require_service, send, url, ApiArgs};
use super::{out, render};

#[derive(Debug, Subcommand)]
pub(crate) enum AlertCommand {
    /// List alerts (events folded by service and dedup key), newest first.
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// triggered, acknowledged or resolved.
        #[arg(long)]
        state: Option<String>,
        /// Only this service (its id; `tocsin services list` shows them).
        #[arg(long)]
        service: Option<String>,
        /// Only the alerts of this incident number.
        #[arg(long)]
        incident: Option<i64>,
        /// How many (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show an alert, its latest details and its most recent events.
    Show {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
        /// How many of its events, newest first (1 to 500).
        #[arg(long, default_value_t = 20)]
        events: u32,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCommand {
    /// List the services the server's config declares.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List a service's change events (deploys, config pushes), newest first.
    Changes {
        /// The service id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
        /// How many (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

fn alert_line(alert: &AlertItem) -> String {
    format!(
        "{:<6} #{:<7} {:<13} {:<9} {:>7} {:<20} {:<19}  {}",
        alert.id,
        alert.incident,
        alert.state.as_str(),
        alert.severity.as_str(),
        alert.count,
        alert.service,
        render::time(&alert.last_seen),
        alert.summary,
    )
}

fn alert_header() -> String {
    format!(
        "{:<6} {:<8} {:<13} {:<9} {:>7} {:<20} {:<19}  SUMMARY",
        "ID", "INCIDENT", "STATE", "SEVERITY", "COUNT", "SERVICE", "LAST SEEN (UTC)"
    )
}

pub(crate) async fn alerts(command: AlertCommand) -> anyhow::Result<ExitCode> {
    match command {
        AlertCommand::List {
            api,
            state,
            service,
            incident,
            limit,
        } => {
            let client = http_client(&api.server)?;
            let mut query = vec![("limit", limit.to_string())];
            if let Some(state) = state {
                query.push(("state", state));
            }
            if let Some(service) = &service {
                query.push(("service", service.clone()));
            }
            if let Some(incident) = incident {
                query.push(("incident", incident.to_string()));
            }
            let page: AlertPage = send(
                client
                    .get(url(&api.server, "/api/v1/alerts"))
                    .bearer_auth(&api.token)
                    .query(&query),
                "list alerts",
            )
            .await?;
            if page.items.is_empty() {
                if let Some(service) = &service {
                    require_service(&client, &api, service).await?;
                }
            }
            if api.json {
                out(serde_json::to_string_pretty(&page)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            out(alert_header())?;
            for alert in &page.items {
                out(alert_line(alert))?;
            }
            if let Some(cursor) = &page.next_cursor {
                out(format!("(more: cursor {cursor})"))?;
            }
        }
        AlertCommand::Show { id, api, events } => {
            let client = http_client(&api.server)?;
            let alert: Alert = send(
                client
                    .get(url(&api.server, &format!("/api/v1/alerts/{id}")))
                    .bearer_auth(&api.token),
                &format!("show alert {id}"),
            )
            .await?;
            let page: EventPage = send(
                client
                    .get(url(&api.server, &format!("/api/v1/alerts/{id}/events")))
                    .bearer_auth(&api.token)
                    .query(&[("limit", events.to_string())]),
                &format!("list the events of alert {id}"),
            )
            .await?;
            if api.json {
                out(serde_json::to_string_pretty(
                    &json!({ "alert": alert, "events": page }),
                )?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let item = &alert.alert;
            out(format!(
                "Alert {}: {}\n  state         {}\n  severity      {}\n  service       {}\n  incident      #{}\n  dedup key     {}\n  source        {}\n  events        {}\n  first seen    {} UTC\n  last seen     {} UTC\n  details       {}",
                item.id,
                item.summary,
                item.state.as_str(),
                item.severity.as_str(),
                item.service,
                item.incident,
                item.dedup_key,
                item.source,
                item.count,
                render::time(&item.first_seen),
                render::time(&item.last_seen),
                alert.details,
            ))?;
            out(format!(
                "\nEvents (newest first, {} shown):\n  {:<19}  {:<12} {:<13} {:<9} SUMMARY",
                page.items.len(),
                "RECEIVED (UTC)",
                "ACTION",
                "OUTCOME",
                "SEVERITY"
            ))?;
            for event in &page.items {
                out(format!(
                    "  {:<19}  {:<12} {:<13} {:<9} {}",
                    render::time(&event.received_at),
                    event.action.as_str(),
                    event.outcome,
                    event.severity.as_str(),
                    event.summary
                ))?;
            }
            if page.next_cursor.is_some() {
                out(format!(
                    "  (more: `tocsin alerts show {id} --events 500`, or the API's cursors)"
                ))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn services(command: ServiceCommand) -> anyhow::Result<ExitCode> {
    match command {
        ServiceCommand::List { api } => {
            let client = http_client(&api.server)?;
            let pages = all_pages::<ServicePage, _>(
                &client,
                &api,
                "/api/v1/services",
                "list services",
                |page| page.next_cursor.clone(),
            )
            .await?;
            let services: Vec<_> = pages.into_iter().flat_map(|page| page.items).collect();
            if api.json {
                out(serde_json::to_string_pretty(
                    &json!({ "items": services, "next_cursor": null }),
                )?)?;
                return Ok(ExitCode::SUCCESS);
            }
            out(format!("{:<24} {:<8} NAME", "ID", "RESOLVE"))?;
            for service in &services {
                out(format!(
                    "{:<24} {:<8} {}",
                    service.id,
                    service.resolve.as_str(),
                    service.name
                ))?;
            }
        }
        ServiceCommand::Changes { id, api, limit } => {
            let client = http_client(&api.server)?;
            require_service(&client, &api, &id).await?;
            let page: ChangePage = send(
                client
                    .get(url(&api.server, &format!("/api/v1/services/{id}/changes")))
                    .bearer_auth(&api.token)
                    .query(&[("limit", limit.to_string())]),
                &format!("list the changes of service `{id}`"),
            )
            .await?;
            if api.json {
                out(serde_json::to_string_pretty(&page)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            out(format!(
                "{:<19}  {:<16} SUMMARY",
                "RECEIVED (UTC)", "SOURCE"
            ))?;
            for change in &page.items {
                out(format!(
                    "{:<19}  {:<16} {}",
                    render::time(&change.received_at),
                    change.source.as_deref().unwrap_or("-"),
                    change.summary
                ))?;
            }
            if let Some(cursor) = &page.next_cursor {
                out(format!("(more: cursor {cursor})"))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
