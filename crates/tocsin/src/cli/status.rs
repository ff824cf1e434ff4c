//! `tocsin status`: what the public status page says — public incident updates, maintenance
//! windows and component overrides — on a running server.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;
use tocsin_web::api::AffectedComponent;
use tocsin_web::status_admin::{
    ComponentItem, ComponentList, MaintenanceCreate, MaintenanceItem, MaintenanceList, OverrideSet,
    PublicIncidentItem, StatusUpdateCreate,
};

use super::client::{http_client, send, url, ApiArgs};
use super::out;

#[derive(Debug, Subcommand)]
pub(crate) enum StatusCommand {
    /// Post a public update on an incident; the first one publishes it (give --title and
    /// --impact then). Readers see only the title, the message, the impact and the components.
    Update {
        /// The incident's number.
        number: i64,
        /// What readers are told.
        message: String,
        /// investigating, identified, monitoring or resolved.
        #[arg(long)]
        status: String,
        /// The public title (required to publish; the internal title is never shown).
        #[arg(long)]
        title: Option<String>,
        /// none, minor, major or critical (required to publish).
        #[arg(long)]
        impact: Option<String>,
        /// A component the incident affects and its status, as ID=STATUS (e.g.
        /// checkout=partial_outage); repeat for several.
        #[arg(long = "component", value_name = "ID=STATUS")]
        components: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show an incident as the status page shows it, with its public updates.
    Show {
        number: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The status page's components and their overrides.
    Components {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Override a component's status (operational, degraded_performance, partial_outage,
    /// major_outage, under_maintenance), or clear the override with --clear.
    Override {
        component: String,
        /// The status to show; omit with --clear.
        status: Option<String>,
        #[arg(long, conflicts_with = "status")]
        clear: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Schedule, list and cancel maintenance windows.
    #[command(subcommand)]
    Maintenance(MaintenanceCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum MaintenanceCommand {
    /// Schedule a window: shown ahead of time; while it runs, its components are under
    /// maintenance.
    Create {
        /// What the maintenance is.
        name: String,
        /// RFC 3339 with an offset, e.g. 2026-12-06T02:00:00Z.
        #[arg(long)]
        start: String,
        /// RFC 3339 with an offset, after --start.
        #[arg(long)]
        end: String,
        /// A component it takes down; repeat for several.
        #[arg(long = "component", value_name = "ID", required = true)]
        components: Vec<String>,
        /// What readers are told.
        #[arg(long, default_value = "")]
        message: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Windows that have not ended, by start.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Cancel a window: one that has not begun is never shown; one that runs ends now.
    Cancel {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn parse_component(text: &str) -> anyhow::Result<AffectedComponent> {
    let (component, status) = text.split_once('=').with_context(|| {
        format!("--component {text:?} is not ID=STATUS (e.g. checkout=partial_outage)")
    })?;
    Ok(AffectedComponent {
        component: component.trim().to_owned(),
        status: status.trim().to_owned(),
    })
}

fn print_json(api: &ApiArgs, value: &impl Serialize) -> anyhow::Result<bool> {
    if api.json {
        out(serde_json::to_string_pretty(value)?)?;
    }
    Ok(api.json)
}

fn print_incident(incident: &PublicIncidentItem) -> anyhow::Result<()> {
    out(format!(
        "incident {} on the status page as {:?} ({}, impact {})\n  page: /status/incidents/{}",
        incident.incident, incident.name, incident.status, incident.impact, incident.public_id
    ))?;
    for update in &incident.updates {
        let components = update
            .components
            .iter()
            .map(|c| format!("{}={}", c.component, c.status))
            .collect::<Vec<_>>()
            .join(", ");
        out(format!(
            "  {}  {:<13} {}{}",
            update.created_at,
            update.status,
            update.message,
            if components.is_empty() {
                String::new()
            } else {
                format!(" [{components}]")
            }
        ))?;
    }
    Ok(())
}

fn maintenance_line(item: &MaintenanceItem) -> String {
    format!(
        "{:<5} {:<12} {} → {}  {}  [{}]",
        item.id,
        item.state,
        item.start,
        item.end,
        item.name,
        item.components.join(", ")
    )
}

fn component_line(item: &ComponentItem) -> String {
    match (&item.override_status, &item.override_set_by) {
        (Some(status), by) => format!(
            "{:<24} override {status} (by {})",
            item.id,
            by.as_deref().unwrap_or("-")
        ),
        _ => format!("{:<24} derived (monitors, incidents, maintenance)", item.id),
    }
}

pub(crate) async fn run(command: StatusCommand) -> anyhow::Result<ExitCode> {
    match command {
        StatusCommand::Update {
            number,
            message,
            status,
            title,
            impact,
            components,
            api,
        } => {
            let components = components
                .iter()
                .map(|text| parse_component(text))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let client = http_client(&api.server)?;
            let incident: PublicIncidentItem = send(
                client
                    .post(url(
                        &api.server,
                        &format!("/api/v1/incidents/{number}/status"),
                    ))
                    .bearer_auth(&api.token)
                    .json(&StatusUpdateCreate {
                        status,
                        message,
                        name: title,
                        impact,
                        components,
                    }),
                "post the status update",
            )
            .await?;
            if !print_json(&api, &incident)? {
                print_incident(&incident)?;
            }
        }
        StatusCommand::Show { number, api } => {
            let client = http_client(&api.server)?;
            let incident: PublicIncidentItem = send(
                client
                    .get(url(
                        &api.server,
                        &format!("/api/v1/incidents/{number}/status"),
                    ))
                    .bearer_auth(&api.token),
                "read the published incident",
            )
            .await?;
            if !print_json(&api, &incident)? {
                print_incident(&incident)?;
            }
        }
        StatusCommand::Components { api } => {
            let client = http_client(&api.server)?;
            let list: ComponentList = send(
                client
                    .get(url(&api.server, "/api/v1/components"))
                    .bearer_auth(&api.token),
                "list the components",
            )
            .await?;
            if !print_json(&api, &list)? {
                for item in &list.items {
                    out(component_line(item))?;
                }
            }
        }
        StatusCommand::Override {
            component,
            status,
            clear,
            api,
        } => {
            let client = http_client(&api.server)?;
            let path = format!("/api/v1/components/{component}/override");
            let request = match (status, clear) {
                (_, true) => client.delete(url(&api.server, &path)),
                (Some(status), false) => client
                    .put(url(&api.server, &path))
                    .json(&OverrideSet { status }),
                (None, false) => anyhow::bail!(
                    "give the status to show (e.g. `tocsin status override {component} \
                     major_outage`) or --clear"
                ),
            };
            let item: ComponentItem =
                send(request.bearer_auth(&api.token), "set the override").await?;
            if !print_json(&api, &item)? {
                out(component_line(&item))?;
            }
        }
        StatusCommand::Maintenance(command) => maintenance(command).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn maintenance(command: MaintenanceCommand) -> anyhow::Result<()> {
    match command {
        MaintenanceCommand::Create {
            name,
            start,
            end,
            components,
            message,
            api,
        } => {
            let client = http_client(&api.server)?;
            let item: MaintenanceItem = send(
                client
                    .post(url(&api.server, "/api/v1/maintenance"))
                    .bearer_auth(&api.token)
                    .json(&MaintenanceCreate {
                        name,
                        message,
                        components,
                        start,
                        end,
                    }),
                "schedule the maintenance",
            )
            .await?;
            if !print_json(&api, &item)? {
                out(maintenance_line(&item))?;
            }
        }
        MaintenanceCommand::List { api } => {
            let client = http_client(&api.server)?;
            let list: MaintenanceList = send(
                client
                    .get(url(&api.server, "/api/v1/maintenance"))
                    .bearer_auth(&api.token)
                    .query(&[("limit", "500")]),
                "list maintenance",
            )
            .await?;
            if !print_json(&api, &list)? {
                if list.items.is_empty() {
                    out("no maintenance scheduled".to_owned())?;
                }
                for item in &list.items {
                    out(maintenance_line(item))?;
                }
            }
        }
        MaintenanceCommand::Cancel { id, api } => {
            let client = http_client(&api.server)?;
            let item: MaintenanceItem = send(
                client
                    .post(url(
                        &api.server,
                        &format!("/api/v1/maintenance/{id}/cancel"),
                    ))
                    .bearer_auth(&api.token),
                "cancel the maintenance",
            )
            .await?;
            if !print_json(&api, &item)? {
                out(maintenance_line(&item))?;
            }
        }
    }
    Ok(())
}
